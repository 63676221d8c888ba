"""The standard benchmarks by name, and the two things done by name: load one, evaluate one.

Adding a benchmark is one module (a `Benchmark` subclass with its loader and metrics, its annotation
file in s2vs_cli/artifacts.py) and one line in BENCHMARKS. VSC 2022 is not among them: it has no annotation
file to download, its ground truth is a CSV the user gives (vsc22.py, `s2vs evaluate --dataset VSC22`).
Library code: the standard library and the package's own modules.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..progress import SILENT, Progress
from . import files
from .benchmark import Benchmark, Evaluation, EvaluationError, Similarities
from .cc_web import CCWebBenchmark
from .custom import evaluate_custom
from .evve import EVVEBenchmark
from .fivr import FIVRBenchmark
from .vcdb import VCDBBenchmark
from .vsc22 import is_vsc22

BENCHMARKS: dict[str, type[Benchmark]] = {
    "FIVR-5K": FIVRBenchmark,
    "FIVR-200K": FIVRBenchmark,
    "VCDB": VCDBBenchmark,
    "EVVE": EVVEBenchmark,
    "CC_WEB_VIDEO": CCWebBenchmark,
}
BENCHMARK_NAMES = tuple(BENCHMARKS)


def canonical_name(name: str) -> str:
    """The BENCHMARK_NAMES spelling of `name`, ignoring case and '-' versus '_'; ConfigError if unknown."""
    key = name.strip().upper().replace("_", "-")
    for known in BENCHMARK_NAMES:
        if known.replace("_", "-") == key:
            return known
    raise ConfigError(f"unknown benchmark '{name}'; use one of: {', '.join(BENCHMARK_NAMES)}")


def load_benchmark(
    name: str,
    annotations: str | Path | None = None,
    distractors: bool = False,
    progress: Progress = SILENT,
    offline: bool | None = None,
) -> Benchmark:
    """Load a benchmark from `annotations` if given, else from its verified (downloaded) annotation file.

    `distractors` adds VCDB's distractors to its database; the other benchmarks ignore it.
    """
    if is_vsc22(name):
        raise ConfigError("VSC22 has no annotation file: give its videos as paths (e.g. DIR/query DIR/reference) "
                          "and its ground truth CSV to `s2vs evaluate --dataset VSC22 --ground-truth GT.csv`")
    name = canonical_name(name)
    kind = BENCHMARKS[name]
    if annotations is None:
        path = files.annotation_path(kind.annotation_file, progress=progress, offline=offline)
    else:
        path = files.user_file(annotations)
    data = files.expect(files.read_pickle(path), dict, path, "a dict")
    with files.layout_errors(path, name):
        return kind.from_annotation(name, data, path, distractors=distractors)


def evaluate(benchmark: Benchmark, similarities: Similarities, **options: Any) -> Evaluation:
    """Evaluate with the metrics of `benchmark`'s kind; `options` go to its evaluate method."""
    if isinstance(benchmark, Benchmark):
        return benchmark.evaluate(similarities, **options)
    if hasattr(benchmark, "positives"):  # a custom ground truth held in another object
        return evaluate_custom(benchmark, similarities, **options)
    raise EvaluationError(f"no metrics for benchmark '{getattr(benchmark, 'name', benchmark)}'")
