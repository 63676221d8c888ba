"""The datasets by name (`--dataset`), and what is done by name: find one's class, load one, evaluate one.

Adding a dataset is one module (a `Benchmark` subclass with its loader and metrics, and its annotation file
in s2vs_cli/artifacts.py, or a ground truth the user gives) and one line in DATASETS. The table names each
class as text, imported when used: the names alone (`--dataset`'s help, the unknown-name error) load nothing.
Library code: the standard library and the package's own modules.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..progress import SILENT, Progress
from .benchmark import Benchmark, Evaluation, EvaluationError, Similarities

class Registered(NamedTuple):
    """A registry line: where the benchmark's class is ("module:Class"), and what the commands that only read
    names need to know of it (the tests check both against the class)."""

    path: str
    lists_videos: bool = True   # an annotation file names its videos: extract-features/-frames --dataset
    labels_copies: bool = True  # its labels are copies, which `s2vs calibrate` fits thresholds on


DATASETS: dict[str, Registered] = {
    "FIVR-5K": Registered("s2vs_cli.datasets.fivr:FIVRBenchmark"),
    "FIVR-200K": Registered("s2vs_cli.datasets.fivr:FIVRBenchmark"),
    "VCDB": Registered("s2vs_cli.datasets.vcdb:VCDBBenchmark"),
    "EVVE": Registered("s2vs_cli.datasets.evve:EVVEBenchmark", labels_copies=False),  # events, not copies
    "CC_WEB_VIDEO": Registered("s2vs_cli.datasets.cc_web:CCWebBenchmark"),
    "custom": Registered("s2vs_cli.datasets.custom:CustomBenchmark", lists_videos=False),
    "VSC22": Registered("s2vs_cli.datasets.vsc22:VSC22Benchmark", lists_videos=False),
}
DATASET_NAMES = tuple(DATASETS)  # for help text
VIDEO_LIST_NAMES = tuple(name for name, entry in DATASETS.items() if entry.lists_videos)
COPY_LABEL_NAMES = tuple(name for name, entry in DATASETS.items() if entry.labels_copies)


def benchmark_class(name: str) -> type[Benchmark]:
    """The class of the benchmark `name` (see `canonical_name`); ConfigError if unknown."""
    return _imported(DATASETS[canonical_name(name)].path)


def canonical_name(name: str) -> str:
    """The DATASET_NAMES spelling of `name` or of an alias of it, ignoring case and '-' versus '_';
    ConfigError if unknown."""
    found = find_name(name)
    if found is None:
        raise ConfigError(f"unknown benchmark '{name}'; use one of: {', '.join(DATASETS)}")
    return found


def find_name(name: str) -> str | None:
    """`canonical_name`, or None for a name no benchmark has."""
    key = _key(name)
    for known in DATASETS:
        if _key(known) == key:
            return known
    for known, entry in DATASETS.items():  # aliases are their classes': imported only now
        if key in {_key(alias) for alias in _imported(entry.path).aliases}:
            return known
    return None


def _key(name: str) -> str:
    return name.strip().upper().replace("_", "-")


def _imported(path: str) -> type[Benchmark]:
    """The class DATASETS names as "module:Class"."""
    module, _, cls = path.partition(":")
    return getattr(importlib.import_module(module), cls)


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
    from . import files  # late: pickle and urllib, which `s2vs --help` (reading the registry) need not load

    name = canonical_name(name)
    kind = benchmark_class(name)
    if not kind.annotation_file:
        raise ConfigError(f"{name} has no annotation file: give its videos as paths and its ground truth to "
                          f"`s2vs evaluate --dataset {name} --ground-truth {kind.ground_truth_file}`")
    if annotations is None:
        path = files.annotation_path(kind.annotation_file, progress=progress, offline=offline)
    else:
        path = files.user_file(annotations)
    data = files.expect(files.read_pickle(path), dict, path, "a dict")
    with files.layout_errors(path, name):
        return kind.from_annotation(name, data, path, distractors=distractors)


def load_ground_truth(dataset: str, annotations: str | Path | None = None, ground_truth: str | Path | None = None,
                      distractors: bool = False, progress: Progress = SILENT, available: Iterable[str] = ()
                      ) -> Benchmark:
    """The benchmark named `dataset`: from its annotation file, or from the ground truth the user gives
    (`ground_truth`, with `annotations` and `available` as its class's `from_ground_truth` reads them)."""
    name = canonical_name(dataset)
    kind = benchmark_class(name)
    check_ground_truth(name, ground_truth)
    if kind.ground_truth_file:
        return kind.from_ground_truth(ground_truth, annotations, available=available)
    return load_benchmark(name, annotations=annotations, distractors=distractors, progress=progress)


def check_ground_truth(dataset: str, ground_truth: str | Path | None) -> None:
    """ConfigError unless --ground-truth is given exactly to the benchmarks that read one."""
    name = canonical_name(dataset)
    kind = benchmark_class(name)
    if kind.ground_truth_file and ground_truth is None:
        note = f", {kind.ground_truth_note}" if kind.ground_truth_note else ""
        raise ConfigError(f"--dataset {name} needs --ground-truth {kind.ground_truth_file}{note}")
    if not kind.ground_truth_file and ground_truth is not None:
        readers = [known for known in DATASETS if benchmark_class(known).ground_truth_file]
        raise ConfigError(f"--ground-truth goes with --dataset {' or '.join(readers)}")


def evaluate(benchmark: Benchmark, similarities: Similarities, **options: Any) -> Evaluation:
    """Evaluate with the metrics of `benchmark`'s kind; `options` go to its evaluate method."""
    if isinstance(benchmark, Benchmark):
        return benchmark.evaluate(similarities, **options)
    if hasattr(benchmark, "positives"):  # a custom ground truth held in another object
        from .custom import evaluate_custom  # late: numpy, which the names in DATASETS do not need

        return evaluate_custom(benchmark, similarities, **options)
    raise EvaluationError(f"no metrics for benchmark '{getattr(benchmark, 'name', benchmark)}'")
