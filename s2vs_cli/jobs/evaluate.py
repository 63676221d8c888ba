"""`s2vs evaluate` from start to end: the ground truth, the similarities (read from a file, or scored from a
feature file, or from raw videos extracted first), the segments located on annotated pairs, the metrics.

`run_evaluation(cfg, runtime)` is the one entry point; the pieces it combines are public for scripts
(evaluation_steps.py holds those every flow shares). A benchmark with a flow of its own is named in FLOWS:
VSC 2022 (`--dataset VSC22`), in evaluate_vsc.py; the others are ranked here. Beside the metrics: each query's
AP and its ranking errors by the headline metric (datasets/per_query.py), and for a review report (given a `heatmap` maker)
the error pairs located on their features, with heatmaps. The report is datasets/evaluation_result.py's.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..datasets.benchmark import Benchmark, Evaluation, Similarities
from ..datasets.evaluation_result import EvaluationResult, SegmentEvaluation
from ..datasets.fivr import FIVRBenchmark
from ..datasets.per_query import rank_queries
from ..datasets.registry import benchmark_class, evaluate, load_ground_truth
from ..datasets.segments import SegmentBounds, segment_precision_recall
from ..datasets.vsc22 import VSC22Benchmark
from ..config import EvaluateConfig
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..scoring.pair import HeatmapMaker, locate_pair, locate_stored_pairs, stored_video_features
from ..scoring.retrieval import VideoScorer, load_similarities, save_similarities
from ..storage.store import FeatureStore, made_with_random_weights
from .evaluate_vsc import run_vsc_evaluation
from .evaluation_steps import (check_complete, check_sources, extraction_options, feature_file, normalize_scores,
                               score_benchmark)
from .extract_features import extract_benchmark_features

SEGMENT_NOTE = "segment metrics need features (--dataset-hdf5 or --dataset-path), not saved similarities"
# Benchmarks evaluated by a flow of their own (same arguments as run_evaluation); the others are ranked here.
FLOWS: dict[type[Benchmark], Callable[..., EvaluationResult]] = {VSC22Benchmark: run_vsc_evaluation}


def run_evaluation(cfg: EvaluateConfig, runtime: Runtime, *, from_similarities: str | None = None,
                   save_similarities_to: str | None = None, from_matches: str | None = None,
                   save_matches_to: str | None = None, heatmap: HeatmapMaker | None = None,
                   progress: Progress = SILENT) -> EvaluationResult:
    """Evaluate as `cfg` says: choose the source, load the models it needs onto `runtime`, extract (from
    raw videos), score, locate annotated segments, save the similarities if asked, compute the metrics and
    each query's AP and errors; with a `heatmap` maker (a review page's: report/document.heatmap_entry) and
    features at hand, locate the error pairs too, with their heatmaps.

    `from_matches` and `save_matches_to` (segment predictions in the challenge's CSV layout) are VSC22's."""
    check_sources(cfg, from_similarities, from_matches, save_matches_to)
    flow = FLOWS.get(benchmark_class(cfg.dataset))
    if flow is not None:
        return flow(cfg, runtime, from_similarities=from_similarities, from_matches=from_matches,
                    save_similarities_to=save_similarities_to, save_matches_to=save_matches_to, heatmap=heatmap,
                    progress=progress)
    benchmark = load_ground_truth(cfg.dataset, cfg.annotations, cfg.ground_truth, cfg.distractors, progress)
    annotated = getattr(benchmark, "segments", None) or {}
    if from_similarities is not None:
        similarities = load_similarities(from_similarities)
        return _evaluated(cfg, benchmark, similarities, save_similarities_to, str(from_similarities), progress,
                          model=f"similarities from {from_similarities}", annotated=annotated,
                          segment_note=SEGMENT_NOTE if annotated else None, from_similarities=str(from_similarities))
    runtime.prepare(cfg, videos=cfg.dataset_path is not None)  # the extractor for raw videos only
    model = "features only" if runtime.network is None else runtime.network.label
    scorer = VideoScorer(runtime.network, runtime.device, runtime.precision)
    extraction = segments = None
    with feature_file(cfg) as features:
        if cfg.dataset_path is not None:
            extraction = extract_benchmark_features(benchmark, cfg.dataset_path, cfg.pattern, features,
                                                    runtime, extraction_options(cfg), progress)
        similarities = score_benchmark(benchmark, features, scorer, progress).similarities
        similarities, normalization = normalize_scores(cfg, similarities, features, benchmark.queries, scorer,
                                                       progress)
        scored_from = str(cfg.dataset_hdf5 or cfg.save_features or "the extracted features")
        if annotated:
            segments = evaluate_segments(annotated, features, scorer, progress, cfg.min_match_seconds)
        report = _evaluated(cfg, benchmark, similarities, save_similarities_to, scored_from, progress, model=model,
                            random_weights=runtime.random_weights or made_with_random_weights(features),
                            segments=segments, annotated=annotated,
                            paper=benchmark.paper(cfg.model) if model == cfg.model else None,
                            extraction=extraction, normalization=normalization,
                            features_kept=cfg.save_features if extraction is not None else None)
        if heatmap is not None:  # while the features are at hand (a temporary file is deleted after this block)
            report.located = locate_stored_pairs(features, report.per_query.error_pairs(), scorer.network,
                                                 scorer.precision, scorer.device, heatmap, progress=progress)
    return report


def _evaluated(cfg: EvaluateConfig, benchmark: Benchmark, similarities: Similarities, save_to: str | None,
               scored_from: str, progress: Progress, **report: Any) -> EvaluationResult:
    """Save the similarities if asked, then the metrics and each query's AP and errors, as a report."""
    if save_to is not None:
        save_similarities(save_to, similarities)
    evaluation = evaluate_benchmark(benchmark, similarities, cfg.strict, cfg.easy_duplicates,
                                    scored_from=scored_from, progress=progress)
    return EvaluationResult(evaluation=evaluation, dataset=benchmark.name,
                            per_query=rank_queries(benchmark, similarities), **report)


def evaluate_benchmark(benchmark: Benchmark, similarities: Similarities, strict: bool = False,
                       easy_duplicates: str | None = None, *, scored_from: str | None = None,
                       progress: Progress = SILENT) -> Evaluation:
    """The benchmark's metrics; with `strict`, any missing query or database video is an error.

    `scored_from` names where the similarities came from, for the error when no query is in them.
    """
    options: dict[str, Any] = {"scored_from": scored_from}
    if isinstance(benchmark, FIVRBenchmark):
        options["easy_duplicates"] = benchmark.easy_duplicates(easy_duplicates, progress=progress)
    return check_complete(evaluate(benchmark, similarities, **options), strict)


def evaluate_segments(annotated: dict[tuple[str, str], list[SegmentBounds]], features: str | Path,
                      scorer: VideoScorer, progress: Progress = SILENT,
                      min_match_seconds: float = 2.0) -> SegmentEvaluation:
    """Locate every copied part of each annotated (query, target) pair as `s2vs compare` lists them (on the
    frame-to-frame map of the same network, or of raw features; parts shorter than `min_match_seconds` left
    out) and score them all against all of the pair's annotated parts (datasets/segments.py). Pairs with a
    video missing from the feature file are counted and left out."""
    predicted: dict[tuple[str, str], list[SegmentBounds]] = {}
    missing: list[tuple[str, str]] = []
    progress.stage("locating segments", len(annotated), unit="pairs")
    with FeatureStore(features) as store:
        stored = set(store.ids())
        fps = store.identity.fps if store.identity is not None else 1.0  # the published files: 1 fps
        for done, (query, target) in enumerate(annotated, 1):
            if query not in stored or target not in stored:
                missing.append((query, target))
            else:
                found = locate_pair(stored_video_features(store, query, fps, scorer.device),
                                    stored_video_features(store, target, fps, scorer.device),
                                    scorer.network, scorer.precision, min_match_seconds)
                predicted[(query, target)] = [(m.times.query_start, m.times.query_end,
                                               m.times.target_start, m.times.target_end) for m in found.matches]
            progress.update(done)
    located = {pair: segments for pair, segments in annotated.items() if pair in predicted}
    return SegmentEvaluation(segment_precision_recall(predicted, located), len(predicted), missing, predicted)
