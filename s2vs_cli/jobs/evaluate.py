"""A benchmark evaluation from start to end: ground truth, similarities (computed or read), metrics."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..benchmarks.annotations import Benchmark, FIVRBenchmark, Segment, load_benchmark, load_custom_ground_truth
from ..errors import ConfigError, S2VSError
from ..benchmarks.metrics import Evaluation, evaluate, segment_precision_recall
from ..scoring.retrieval import ScoredCollection, Similarities, VideoScorer, score_store

# The paper's numbers for the published s2vs_dns model (SPEC §6), shown beside ours.
PAPER_RESULTS = {("s2vs_dns", "FIVR-200K"): {"DSVR": 0.925, "CSVR": 0.913, "ISVR": 0.841}}


def load_ground_truth(dataset: str, annotations: str | None = None, ground_truth: str | None = None,
                      distractors: bool = False, progress: Callable | None = None) -> Benchmark:
    """The benchmark named `dataset`, or a custom ground truth file with `dataset` 'custom'."""
    if dataset.lower() == "custom":
        if ground_truth is None:
            raise ConfigError("--dataset custom needs --ground-truth GT.json")
        return load_custom_ground_truth(ground_truth)
    if ground_truth is not None:
        raise ConfigError("--ground-truth goes with --dataset custom")
    return load_benchmark(dataset, annotations=annotations, distractors=distractors, progress=progress)


def score_benchmark(benchmark: Benchmark, features: str | Path, scorer: VideoScorer,
                    progress: Callable[[int, int], None] | None = None) -> ScoredCollection:
    """Similarities of the benchmark's queries to its database, from a feature file."""
    if not Path(features).is_file():
        raise S2VSError(f"{features}: feature file not found")
    return score_store(str(features), benchmark.queries, benchmark.database, scorer, progress)


def evaluate_benchmark(benchmark: Benchmark, similarities: Similarities, strict: bool = False,
                       easy_duplicates: str | None = None) -> Evaluation:
    """The benchmark's metrics; with `strict`, any missing query or database video is an error."""
    options = {}
    if isinstance(benchmark, FIVRBenchmark):
        options["easy_duplicates"] = benchmark.easy_duplicates(easy_duplicates)
    result = evaluate(benchmark, similarities, **options)
    if strict and (result.missing_queries or result.missing_database):
        missing = [*result.missing_queries, *result.missing_database]
        raise S2VSError(f"{len(result.missing_queries)} queries and {len(result.missing_database)} database "
                        f"videos have no similarities (e.g. '{missing[0]}'); --strict refuses to evaluate "
                        "without them")
    return result


@dataclass
class SegmentEvaluation:
    """Segment-level precision/recall of the segments `s2vs compare` reports on the annotated pairs."""

    metrics: dict[str, float]
    pairs: int                                          # annotated pairs located
    missing_pairs: list[tuple[str, str]] = field(default_factory=list)  # a video not in the feature file
    predicted: dict[tuple[str, str], list[Segment]] = field(default_factory=dict)


def evaluate_segments(annotated: dict[tuple[str, str], list[Segment]], features: str | Path, scorer: VideoScorer,
                      progress: Callable[[int, int], None] | None = None) -> SegmentEvaluation:
    """Locate each annotated (query, target) pair's best-matching segment as `s2vs compare` does (on the
    frame-to-frame map of the same network, or of raw features) and score the segments against the
    annotation. Pairs with a video missing from the feature file are counted and left out."""
    from .compare import locate_match, stored_video_features
    from ..storage.store import FeatureStore

    predicted: dict[tuple[str, str], list[Segment]] = {}
    missing: list[tuple[str, str]] = []
    with FeatureStore(features) as store:
        stored = set(store.ids())
        fps = store.identity.fps if store.identity is not None else 1.0  # the published files: 1 fps
        for done, (query, target) in enumerate(annotated, 1):
            if query not in stored or target not in stored:
                missing.append((query, target))
            else:
                found = locate_match(stored_video_features(store, query, fps, scorer.device),
                                     stored_video_features(store, target, fps, scorer.device), scorer.network,
                                     scorer.precision)
                predicted[(query, target)] = [(found.query_start, found.query_end,
                                               found.target_start, found.target_end)]
            if progress is not None:
                progress(done, len(annotated))
    located = {pair: segments for pair, segments in annotated.items() if pair in predicted}
    return SegmentEvaluation(segment_precision_recall(predicted, located), len(predicted), missing, predicted)


def extract_benchmark_features(benchmark: Benchmark, dataset_path: str, pattern: str | None, loader: str,
                               output: str | Path, extractor, identity, version: str, options,
                               progress: Callable | None = None):
    """Extract the benchmark's videos found under `dataset_path` into `output` (resuming) -> the summary.

    Videos that are absent or fail to decode are simply not in the file: scoring counts them as missing.
    """
    from .extract_features import extract_features
    from ..media.inputs import collect_inputs
    from ..storage.runs import Failure

    found = collect_inputs(dataset_path=dataset_path, pattern=pattern, ids=benchmark.video_ids(), loader=loader)
    missing = [Failure(video_id, where, reason) for video_id, where, reason in found.missing]
    return extract_features(found.inputs, output, extractor, identity, version, options, missing=missing,
                            progress=progress)
