"""`s2vs evaluate --dataset VSC22`: the Video Similarity Challenge 2022's two tracks, from features, raw
videos, saved similarities, the challenge's candidate pairs or its segment predictions.

From features (docs/METHOD.md §6.8): every query is scored against every reference; the best
25 × (queries) pairs are the descriptor track's predictions (the official limit), and the same pairs are
located, every copied part of each becoming a predicted segment (the matching track's predictions).

For a review report (`review`) the predictions are kept as scored (`VSCReview`), and from features the pairs the
review shows (datasets/vsc22_review.py chooses them) are located with their heatmaps (the copies missed too),
the predictions unchanged.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from itertools import groupby
from pathlib import Path

from ..datasets.benchmark import Evaluation, Similarities
from ..datasets.registry import check_ground_truth
from ..datasets.vsc import (CopiedSegment, ScoredPair, best_per_pair, read_pairs, read_segments, write_pairs,
                              write_segments)
from ..datasets.vsc22 import NAME, VSC22Benchmark, load_vsc22, predicted_pairs, video_sets
from ..datasets.vsc22_review import VSCEvaluationResult, VSCReview, review_queries
from ..config import EvaluateConfig
from ..errors import ConfigError
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..scoring.pair import HeatmapMaker, LocatedPair, locate_pair, locate_stored_pairs, stored_video_features
from ..scoring.retrieval import VideoScorer, load_similarities, save_similarities
from ..storage.store import FeatureStore, made_with_random_weights, stored_ids
from .evaluation_steps import (check_complete, extraction_options, feature_file, normalize_scores,
                               score_benchmark)
from .extract_features import extract_benchmark_features

MATCHING_NOTE = ("the matching track (matching_uAP) needs segments: --from-matches FILE.csv, or features "
                 "(--dataset-hdf5, --dataset-path)")


def run_vsc_evaluation(cfg: EvaluateConfig, runtime: Runtime, *, from_similarities: str | None = None,
                       from_matches: str | None = None, save_similarities_to: str | None = None,
                       save_matches_to: str | None = None, heatmap: HeatmapMaker | None = None,
                       progress: Progress = SILENT) -> VSCEvaluationResult:
    """Both tracks as `cfg` says (see the module's docstring); saved predictions are scored as given. With a
    `heatmap` maker (a review page's: report/document.heatmap_entry), the predictions are kept for the review
    (and, from features, the shown pairs located with their heatmaps)."""
    check_ground_truth(NAME, cfg.ground_truth)  # before anything is read
    review = heatmap is not None
    if from_matches is not None:
        sets = video_sets(cfg.annotations)
        segments = read_segments(from_matches, sets=sets)
        benchmark = load_vsc22(cfg.ground_truth, sets, predictions=segments)
        report = _saved_report(benchmark, benchmark.evaluate_predictions(segments=segments),
                               f"matches from {from_matches}", {"predicted_pairs": len({s.pair for s in segments}),
                                                                "predicted_segments": len(segments)})
        if review:
            report.review = VSCReview(benchmark.truth, list(benchmark.queries), best_per_pair(segments), segments,
                                      source=str(from_matches))
        return report
    if from_similarities is not None and Path(from_similarities).suffix.lower() == ".csv":
        sets = video_sets(cfg.annotations)
        pairs = read_pairs(from_similarities, sets=sets)
        benchmark = load_vsc22(cfg.ground_truth, sets, predictions=pairs)
        report = _saved_report(benchmark, benchmark.evaluate_predictions(pairs=pairs),
                               f"candidate pairs from {from_similarities}", {"predicted_pairs": len(pairs)})
        report.segment_note = MATCHING_NOTE
        if review:
            report.review = VSCReview(benchmark.truth, list(benchmark.queries), pairs, source=str(from_similarities))
        return report
    if from_similarities is not None:
        similarities = load_similarities(from_similarities)
        ids = [*similarities, *{r for scores in similarities.values() for r in scores}]
        benchmark = load_vsc22(cfg.ground_truth, video_sets(cfg.annotations), available=ids)
        pairs = predicted_pairs(similarities, benchmark.queries, benchmark.database, cfg.pairs_per_query)
        _save_pairs(save_similarities_to, similarities, pairs)
        evaluation = check_complete(benchmark.evaluate(similarities, pairs_per_query=cfg.pairs_per_query,
                                                       scored_from=str(from_similarities)), cfg.strict)
        kept = VSCReview(benchmark.truth, list(benchmark.queries), pairs, source=str(from_similarities),
                         true_scores=_true_scores(benchmark, similarities)) if review else None
        return VSCEvaluationResult(evaluation=evaluation, dataset=NAME, model=f"similarities from {from_similarities}",
                                   segment_note=MATCHING_NOTE, counts={"predicted_pairs": len(pairs)}, review=kept)
    return _from_features(cfg, runtime, save_similarities_to, save_matches_to, heatmap, progress)


def _from_features(cfg: EvaluateConfig, runtime: Runtime, save_similarities_to: str | None,
                   save_matches_to: str | None, heatmap: HeatmapMaker | None,
                   progress: Progress) -> VSCEvaluationResult:
    """Score, cut to the official number of pairs, locate every copied part of those pairs, evaluate; for a
    review, keep the heatmaps of the pairs it shows (the copies missed located too)."""
    pattern = cfg.pattern or VSC22Benchmark.video_pattern(cfg.loader)
    benchmark = _benchmark_of_source(cfg, pattern)  # a malformed ground truth fails before the models load
    runtime.prepare(cfg, videos=cfg.dataset_path is not None)  # the extractor for raw videos only
    scorer = VideoScorer(runtime.network, runtime.device, runtime.precision)
    extraction = None
    with feature_file(cfg) as features:
        if cfg.dataset_path is not None:
            extraction = extract_benchmark_features(benchmark, cfg.dataset_path, pattern, features, runtime,
                                                    extraction_options(cfg), progress)
        similarities = score_benchmark(benchmark, features, scorer, progress).similarities
        random_weights = runtime.random_weights or made_with_random_weights(features)  # before a temporary goes
        similarities, normalization = normalize_scores(cfg, similarities, features, benchmark.queries, scorer,
                                                       progress)
        pairs = predicted_pairs(similarities, benchmark.queries, benchmark.database, cfg.pairs_per_query)
        kept = VSCReview(benchmark.truth, list(benchmark.queries), pairs,
                         true_scores=_true_scores(benchmark, similarities)) if heatmap is not None else None
        shown = _shown_pairs(kept) if kept is not None else set()
        segments, located = locate_copies(pairs, features, scorer, cfg.min_match_seconds, progress,
                                          heatmap=heatmap, heatmaps_for=shown)
        if kept is not None and heatmap is not None:
            missed = _locate_missed(shown - located.keys(), features, scorer, heatmap, progress)
            kept.segments, kept.located = segments, located | missed
    _save_pairs(save_similarities_to, similarities, pairs)
    if save_matches_to is not None:
        write_segments(save_matches_to, segments)
    scored_from = str(cfg.dataset_hdf5 or cfg.save_features or "the extracted features")
    evaluation = check_complete(benchmark.evaluate(similarities, pairs_per_query=cfg.pairs_per_query,
                                                   segments=segments, scored_from=scored_from), cfg.strict)
    model = "features only" if runtime.network is None else runtime.network.label
    return VSCEvaluationResult(evaluation=evaluation, dataset=NAME, model=model,
                               random_weights=random_weights, extraction=extraction,
                               features_kept=cfg.save_features if extraction else None, normalization=normalization,
                               counts={"predicted_pairs": len(pairs), "predicted_segments": len(segments)},
                               review=kept)


def _true_scores(benchmark: VSC22Benchmark, similarities: Similarities) -> dict[tuple[str, str], float]:
    """The scores of the ground truth's pairs that were scored (a copy missed is shown with its own)."""
    return {(q, r): float(similarities[q][r]) for q, r in benchmark.true_pairs()
            if r in similarities.get(q, {})}


def _shown_pairs(review: VSCReview) -> set[tuple[str, str]]:
    """The (query, reference) pairs the review shows: those located with a heatmap."""
    return {(shown.query_id, pair.ref_id) for shown in review_queries(review) for pair in shown.pairs}


def _locate_missed(pairs: Collection[tuple[str, str]], features: str | Path, scorer: VideoScorer,
                   heatmap: HeatmapMaker, progress: Progress) -> dict[tuple[str, str], LocatedPair]:
    """The heatmaps of the shown pairs that were not predicted (the copies missed); their matches are no
    prediction and are not shown."""
    if not pairs:
        return {}
    return locate_stored_pairs(features, sorted(pairs), scorer.network, scorer.precision, scorer.device,
                               heatmap, progress=progress)


def _benchmark_of_source(cfg: EvaluateConfig, pattern: str) -> VSC22Benchmark:
    """The ground truth with the sets of the videos' folder (its metadata, or the ids `pattern` finds) or of
    the feature file (--annotations' metadata, or its ids)."""
    if cfg.dataset_path is not None:
        sets = video_sets(cfg.annotations or cfg.dataset_path, required=cfg.annotations is not None)
        found = [] if sets.queries is not None else discover_ids(cfg.dataset_path, pattern)
        return load_vsc22(cfg.ground_truth, sets, available=found)
    return load_vsc22(cfg.ground_truth, video_sets(cfg.annotations), available=stored_ids([cfg.dataset_hdf5]))


def segment_score(pair_similarity: float, match_score: float) -> float:
    """A predicted segment's confidence: the mean of its pair's video similarity and its own score (the
    frame map's mean along it). The first says whether the videos are copies at all; the second how
    strongly this part matches, and is not diluted when the copy is a short part of a long video."""
    return 0.5 * (pair_similarity + match_score)


def locate_copies(pairs: Sequence[ScoredPair], features: str | Path, scorer: VideoScorer,
                  min_match_seconds: float = 2.0, progress: Progress = SILENT, *,
                  heatmap: HeatmapMaker | None = None, heatmaps_for: Collection[tuple[str, str]] = frozenset()
                  ) -> tuple[list[CopiedSegment], dict[tuple[str, str], LocatedPair]]:
    """Every copied part of each pair, found as `s2vs compare` finds them, as the challenge's segments; and the
    located pair (its heatmap made by `heatmap` from the same map) of each (query, reference) pair in
    `heatmaps_for`."""
    segments: list[CopiedSegment] = []
    located: dict[tuple[str, str], LocatedPair] = {}
    progress.stage("locating copies", len(pairs), unit="pairs")
    done = 0
    with FeatureStore(features) as store:
        fps = store.identity.fps if store.identity is not None else 1.0  # the published files: 1 fps
        ordered = sorted(pairs, key=lambda p: p.query_id)  # each query read once
        for query_id, group in groupby(ordered, key=lambda p: p.query_id):
            query = stored_video_features(store, query_id, fps, scorer.device)
            for pair in group:
                reference = stored_video_features(store, pair.ref_id, fps, scorer.device)
                # The heatmap comes from the map the matches are located on: the predictions stay the same.
                kept = (pair.query_id, pair.ref_id) in heatmaps_for
                found = locate_pair(query, reference, scorer.network, scorer.precision, min_match_seconds,
                                    heatmap=heatmap if kept else None)
                matches = found.matches
                if kept:
                    located[(pair.query_id, pair.ref_id)] = found
                segments += [CopiedSegment(pair.query_id, pair.ref_id, m.times.query_start, m.times.query_end,
                                           m.times.target_start, m.times.target_end,
                                           segment_score(pair.score, m.score)) for m in matches]
                done += 1
                progress.update(done)
    return segments, located


def discover_ids(root: str | Path, pattern: str) -> list[str]:
    """Ids of the videos `pattern` finds under `root`, {id} standing for a name without '/' (the pattern's
    other wildcards too), e.g. '*/{id}.mp4' -> query/Q100001.mp4 gives Q100001."""
    root = Path(root)
    if pattern.count("{id}") != 1:
        raise ConfigError(f"--pattern must contain {{id}} exactly once, e.g. '*/{{id}}.mp4' (got '{pattern}')")
    if not root.is_dir():
        raise ConfigError(f"{root}: dataset folder not found")
    prefix, suffix = (_glob_regex(part) for part in pattern.split("{id}"))
    matcher = re.compile(f"{prefix}([^/]+){suffix}")
    found = (matcher.fullmatch(path.relative_to(root).as_posix())
             for path in root.glob(pattern.replace("{id}", "*")))
    return sorted({m.group(1) for m in found if m and not m.group(1).startswith(".")})


def _glob_regex(text: str) -> str:
    return "".join({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)) for char in text)


def _saved_report(benchmark: VSC22Benchmark, evaluation: Evaluation, model: str,
                  counts: dict[str, int]) -> VSCEvaluationResult:
    """The report on saved predictions (no model ran)."""
    return VSCEvaluationResult(evaluation=evaluation, dataset=benchmark.name, model=model, counts=counts)


def _save_pairs(path: str | None, similarities: Similarities, pairs: Sequence[ScoredPair]) -> None:
    """--save-similarities: a .csv holds the predicted pairs (the challenge's candidates layout); .json and
    .h5 hold every score (the cut is made again when they are read back)."""
    if path is None:
        return
    if Path(path).suffix.lower() == ".csv":
        write_pairs(path, pairs)
    else:
        save_similarities(path, similarities)
