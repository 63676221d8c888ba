"""A benchmark evaluation from start to end: ground truth, similarities (computed or read), metrics."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .benchmarks import Benchmark, FIVRBenchmark, load_benchmark, load_custom_ground_truth
from .errors import ConfigError, S2VSError
from .metrics import Evaluation, evaluate
from .retrieval import ScoredCollection, Similarities, VideoScorer, score_store

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


def extract_benchmark_features(benchmark: Benchmark, dataset_path: str, pattern: str | None, loader: str,
                               output: str | Path, extractor, identity, version: str, options,
                               progress: Callable | None = None):
    """Extract the benchmark's videos found under `dataset_path` into `output` (resuming) -> the summary.

    Videos that are absent or fail to decode are simply not in the file: scoring counts them as missing.
    """
    from .extraction import extract_features
    from .inputs import collect_inputs
    from .runs import Failure

    found = collect_inputs(dataset_path=dataset_path, pattern=pattern, ids=benchmark.video_ids(), loader=loader)
    missing = [Failure(video_id, where, reason) for video_id, where, reason in found.missing]
    return extract_features(found.inputs, output, extractor, identity, version, options, missing=missing,
                            progress=progress)
