"""`s2vs evaluate` from start to end: the ground truth, the similarities (read from a file, or scored from a
feature file, or from raw videos extracted first), the segments located on annotated pairs, the metrics.

`run_evaluation(cfg, runtime)` is the one entry point; the pieces it combines are public for scripts and
for training's evaluator. VSC 2022 (`--dataset VSC22`) has its own flow, in evaluate_vsc.py.
Beside the metrics: each query's AP and its ranking errors by the headline metric (benchmarks/per_query.py),
and for a review report (`review`) the error pairs located on their features, with heatmaps.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..benchmarks import (Benchmark, Evaluation, FIVRBenchmark, SegmentBounds, Similarities, evaluate,
                          load_benchmark, load_custom_ground_truth, segment_precision_recall)
from ..benchmarks.per_query import PerQuery, rank_queries
from ..benchmarks.vsc22 import is_vsc22, load_vsc22, video_sets
from ..config import EvaluateConfig
from ..errors import ConfigError, FeatureStoreError, S2VSError
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..scoring.normalization import NoiseNormalization, normalize_with_noise
from ..scoring.retrieval import ScoredCollection, VideoScorer, load_similarities, save_similarities, score_store
from ..storage.store import made_with_random_weights

if TYPE_CHECKING:
    from .extract_features import ExtractionOptions, ExtractionSummary
    from ..scoring.pair import LocatedPair

# The paper's numbers for the published s2vs_dns model (docs/METHOD.md §6), shown beside ours.
PAPER_RESULTS = {("s2vs_dns", "FIVR-200K"): {"DSVR": 0.925, "CSVR": 0.913, "ISVR": 0.841}}
SEGMENT_NOTE = "segment metrics need features (--dataset-hdf5 or --dataset-path), not saved similarities"


@dataclass
class SegmentEvaluation:
    """Segment-level precision/recall of the copied parts `s2vs compare` reports on the annotated pairs."""

    metrics: dict[str, float]
    pairs: int                                          # annotated pairs located
    missing_pairs: list[tuple[str, str]] = field(default_factory=list)  # a video not in the feature file
    predicted: dict[tuple[str, str], list[SegmentBounds]] = field(default_factory=dict)


@dataclass
class EvaluationReport:
    """Everything one `s2vs evaluate` run found: the metrics and what a reader must know about them."""

    evaluation: Evaluation
    dataset: str                                    # the benchmark's name, or "custom"
    model: str                                      # the network's label, "features only" or the similarities file
    random_weights: bool = False                    # a model with seeded random weights: the numbers mean nothing
    segments: SegmentEvaluation | None = None       # located on the annotated pairs (custom ground truth)
    annotated: dict[tuple[str, str], list[SegmentBounds]] = field(default_factory=dict)
    segment_note: str | None = None                 # why annotated segments were not evaluated
    paper: dict[str, float] | None = None           # the paper's numbers for this model and benchmark
    extraction: ExtractionSummary | None = None     # with --dataset-path: what the extraction did
    features_kept: str | None = None                # with --dataset-path --save-features: the feature file
    counts: dict[str, int] = field(default_factory=dict)  # VSC22: predicted pairs and segments
    normalization: NoiseNormalization | None = None  # --normalize-with: how the scores were normalized
    per_query: PerQuery | None = None               # each query's AP and ranking errors (not VSC22)
    located: dict[tuple[str, str], LocatedPair] | None = None  # for a review: the error pairs, located
    from_similarities: str | None = None            # the saved similarities scored (no features at hand)

    def as_dict(self) -> dict[str, Any]:
        """The JSON summary `s2vs evaluate --json` prints and `--output` writes."""
        summary = self.evaluation.as_dict() | {"model": self.model, "dataset": self.dataset,
                                               "random_weights": self.random_weights}
        if self.segments is not None:
            summary["metrics"] |= self.segments.metrics
            summary["segment_pairs"] = self.segments.pairs
            summary["segment_pairs_missing"] = [list(pair) for pair in self.segments.missing_pairs]
            summary["segments"] = [{"query": q, "target": t, "reported": [list(s) for s in segments],
                                    "annotated": [list(s) for s in self.annotated[(q, t)]]}
                                   for (q, t), segments in self.segments.predicted.items()]
        if self.segment_note:
            summary["segment_note"] = self.segment_note
        if self.paper:
            summary["paper"] = self.paper
        if self.counts:
            summary["predictions"] = dict(self.counts)
        if self.normalization is not None:
            summary["normalization"] = self.normalization.as_dict()
        if self.per_query is not None:
            summary |= {"per_query": self.per_query.aps(), "errors_for": self.per_query.metric,
                        "errors": self.per_query.errors()}
        return summary


def run_evaluation(cfg: EvaluateConfig, runtime: Runtime, *, from_similarities: str | None = None,
                   save_similarities_to: str | None = None, from_matches: str | None = None,
                   save_matches_to: str | None = None, review: bool = False,
                   progress: Progress = SILENT) -> EvaluationReport:
    """Evaluate as `cfg` says: choose the source, load the models it needs onto `runtime`, extract (from
    raw videos), score, locate annotated segments, save the similarities if asked, compute the metrics and
    each query's AP and errors; with `review` and features at hand, locate the error pairs too.

    `from_matches` and `save_matches_to` (segment predictions in the challenge's CSV layout) are VSC22's."""
    check_sources(cfg, from_similarities, from_matches, save_matches_to)
    if is_vsc22(cfg.dataset):
        from .evaluate_vsc import run_vsc_evaluation

        return run_vsc_evaluation(cfg, runtime, from_similarities=from_similarities, from_matches=from_matches,
                                  save_similarities_to=save_similarities_to, save_matches_to=save_matches_to,
                                  review=review, progress=progress)
    benchmark = load_ground_truth(cfg.dataset, cfg.annotations, cfg.ground_truth, cfg.distractors, progress)
    annotated = getattr(benchmark, "segments", None) or {}
    if from_similarities is not None:
        similarities = load_similarities(from_similarities)
        return _evaluated(cfg, benchmark, similarities, save_similarities_to, str(from_similarities), progress,
                          model=f"similarities from {from_similarities}", annotated=annotated,
                          segment_note=SEGMENT_NOTE if annotated else None, from_similarities=str(from_similarities))
    prepare_models(cfg, runtime)
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
                            paper=PAPER_RESULTS.get((cfg.model, benchmark.name)) if model == cfg.model else None,
                            extraction=extraction, normalization=normalization,
                            features_kept=cfg.save_features if extraction is not None else None)
        if review:  # while the features are at hand (a temporary file is deleted after this block)
            from ..report.document import heatmap_entry
            from ..scoring.pair import locate_stored_pairs

            report.located = locate_stored_pairs(features, report.per_query.error_pairs(), scorer.network,
                                                 scorer.precision, scorer.device, heatmap_entry, progress=progress)
    return report


def _evaluated(cfg: EvaluateConfig, benchmark: Benchmark, similarities: Similarities, save_to: str | None,
               scored_from: str, progress: Progress, **report: Any) -> EvaluationReport:
    """Save the similarities if asked, then the metrics and each query's AP and errors, as a report."""
    if save_to is not None:
        save_similarities(save_to, similarities)
    evaluation = evaluate_benchmark(benchmark, similarities, cfg.strict, cfg.easy_duplicates,
                                    scored_from=scored_from, progress=progress)
    return EvaluationReport(evaluation=evaluation, dataset=benchmark.name,
                            per_query=rank_queries(benchmark, similarities), **report)


def check_sources(cfg: EvaluateConfig, from_similarities: str | None = None, from_matches: str | None = None,
                  save_matches: str | None = None) -> None:
    """ConfigError unless exactly one source is given (features, videos, saved similarities or, for VSC22,
    saved matches) and exists."""
    vsc22 = is_vsc22(cfg.dataset)
    if not vsc22 and (from_matches is not None or save_matches is not None):
        raise ConfigError(f"--{'from' if from_matches is not None else 'save'}-matches goes with --dataset VSC22")
    sources = [cfg.dataset_hdf5, cfg.dataset_path, from_similarities, from_matches]
    if sum(source is not None for source in sources) != 1:
        raise ConfigError("give the features (--dataset-hdf5 FILE), the videos (--dataset-path DIR) or saved "
                          "similarities (--from-similarities FILE)" + (" or matches (--from-matches FILE.csv)"
                                                                       if vsc22 else "") + ", one of them")
    if cfg.save_features is not None and cfg.dataset_path is None:
        raise ConfigError("--save-features goes with --dataset-path")
    if cfg.normalize_with is not None and cfg.dataset_hdf5 is None and cfg.dataset_path is None:
        raise ConfigError("--normalize-with scores the queries' features against the noise: give --dataset-hdf5 "
                          "or --dataset-path, not saved similarities or matches")
    if save_matches is not None and cfg.dataset_hdf5 is None and cfg.dataset_path is None:
        raise ConfigError("--save-matches writes the segments located on features: give --dataset-hdf5 or "
                          "--dataset-path")
    for name, path in (("--save-matches", save_matches), ("--from-matches", from_matches)):
        if path is not None and Path(path).suffix.lower() != ".csv":
            raise ConfigError(f"{name} takes the challenge's CSV layout: a .csv file, not '{path}'")
    if cfg.dataset_hdf5 is not None and Path(cfg.dataset_hdf5).is_dir():
        raise FeatureStoreError(f"{cfg.dataset_hdf5}: is a folder; give the feature file (FEATURES.hdf5)")
    if cfg.dataset_hdf5 is not None and not Path(cfg.dataset_hdf5).is_file():
        raise FeatureStoreError(f"{cfg.dataset_hdf5}: feature file not found")  # now, not after loading the model


def normalize_scores(cfg: EvaluateConfig, similarities: Similarities, features: str | Path, queries: Sequence[str],
                     scorer: VideoScorer, progress: Progress = SILENT
                     ) -> tuple[Similarities, NoiseNormalization | None]:
    """`similarities` normalized with cfg's noise set (--normalize-with), or as they are without one."""
    if cfg.normalize_with is None:
        return similarities, None
    return normalize_with_noise(similarities, features, queries, cfg.normalize_with, scorer, cfg.normalize_k,
                                cfg.normalize_beta, progress)


def load_ground_truth(dataset: str, annotations: str | None = None, ground_truth: str | None = None,
                      distractors: bool = False, progress: Progress = SILENT, available: Sequence[str] = ()
                      ) -> Benchmark:
    """The benchmark named `dataset`, a custom ground truth file with `dataset` 'custom', or VSC22's CSV.

    VSC22: `annotations` is the folder of the challenge's metadata files; without it the queries and
    references are the ids of the challenge's form among `available` (e.g. a feature file's) and the ground truth's.
    """
    if dataset.lower() == "custom":
        if ground_truth is None:
            raise ConfigError("--dataset custom needs --ground-truth GT.json")
        return load_custom_ground_truth(ground_truth)
    if is_vsc22(dataset):
        if ground_truth is None:
            raise ConfigError("--dataset VSC22 needs --ground-truth GT.csv, the challenge's copied segments")
        return load_vsc22(ground_truth, video_sets(annotations), available=available)
    if ground_truth is not None:
        raise ConfigError("--ground-truth goes with --dataset custom or VSC22")
    return load_benchmark(dataset, annotations=annotations, distractors=distractors, progress=progress)


def score_benchmark(benchmark: Benchmark, features: str | Path, scorer: VideoScorer,
                    progress: Progress = SILENT) -> ScoredCollection:
    """Similarities of the benchmark's queries to its database, from a feature file."""
    if not Path(features).is_file():
        raise S2VSError(f"{features}: feature file not found")
    progress.stage("scoring", len(benchmark.database), unit="videos")
    return score_store(str(features), benchmark.queries, benchmark.database, scorer, progress)


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


def check_complete(result: Evaluation, strict: bool = True) -> Evaluation:
    """`result` as it is; with `strict`, S2VSError when a query or database video was missing."""
    if strict and (result.missing_queries or result.missing_database):
        missing = [*result.missing_queries, *result.missing_database]
        raise S2VSError(f"{_count(len(result.missing_queries), 'queries')} and "
                        f"{_count(len(result.missing_database), 'database videos')} have no similarities "
                        f"(e.g. '{missing[0]}'); --strict refuses to evaluate without them")
    return result


def evaluate_segments(annotated: dict[tuple[str, str], list[SegmentBounds]], features: str | Path,
                      scorer: VideoScorer, progress: Progress = SILENT,
                      min_match_seconds: float = 2.0) -> SegmentEvaluation:
    """Locate every copied part of each annotated (query, target) pair as `s2vs compare` lists them (on the
    frame-to-frame map of the same network, or of raw features; parts shorter than `min_match_seconds` left
    out) and score them all against all of the pair's annotated parts (benchmarks/segments.py). Pairs with a
    video missing from the feature file are counted and left out."""
    from ..storage.store import FeatureStore
    from ..scoring.pair import locate_pair, stored_video_features

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


def extract_benchmark_features(benchmark: Benchmark, dataset_path: str, pattern: str | None, output: str | Path,
                               runtime: Runtime, options: ExtractionOptions,
                               progress: Progress = SILENT) -> ExtractionSummary:
    """Extract the benchmark's videos found under `dataset_path` (read by `options.loader`) into `output`
    with `runtime.extractor`, resuming -> the extraction's summary.

    Videos that are absent or fail to decode are simply not in the file: scoring counts them as missing.
    """
    from ..media.inputs import collect_inputs
    from ..storage.runs import Failure
    from .extract_features import extract_features

    found = collect_inputs(dataset_path=dataset_path, pattern=pattern, ids=benchmark.video_ids(),
                           loader=options.loader)
    missing = [Failure(video_id, where, reason) for video_id, where, reason in found.missing]
    return extract_features(found.inputs, output, runtime, options, missing=missing, progress=progress)


# ---------------------------------------------------------------------------------------------


def prepare_models(cfg: EvaluateConfig, runtime: Runtime) -> None:
    """What scoring needs: the network (unless features only), and the extractor for raw videos."""
    if cfg.dataset_path is not None:
        runtime.load_models(cfg.backbone_weights, cfg.pca, cfg.model, cfg.features_only)
    elif not cfg.features_only:
        runtime.load_network(cfg.model)


def extraction_options(cfg: EvaluateConfig) -> ExtractionOptions:
    """The extraction options of `cfg` (decoding workers: one per CPU core, at most 8, by default)."""
    from .extract_features import ExtractionOptions
    from .parallel import default_workers

    return ExtractionOptions(fps=cfg.fps, loader=cfg.loader, frames_per_batch=cfg.frames_per_batch,
                             workers=default_workers() if cfg.workers is None else cfg.workers)


@contextmanager
def feature_file(cfg: EvaluateConfig) -> Iterator[Path]:
    """The feature file to score: --dataset-hdf5, --save-features, or a temporary one deleted afterwards."""
    if cfg.dataset_path is None:
        yield Path(cfg.dataset_hdf5)
    elif cfg.save_features is not None:
        yield Path(cfg.save_features)
    else:
        with tempfile.TemporaryDirectory(prefix="s2vs-evaluate-") as folder:
            yield Path(folder) / "features.hdf5"


def _count(count: int, noun: str) -> str:
    """'1 query', '2 queries', '1 database video' (`noun` given in the plural)."""
    if count != 1:
        return f"{count} {noun}"
    return f"{count} {noun[:-3] + 'y' if noun.endswith('ies') else noun[:-1]}"
