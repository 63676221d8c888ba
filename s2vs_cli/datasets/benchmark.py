"""What every benchmark is: its query and database ids, how it is read from its annotation file, its
metrics, and the result an evaluation returns.

A benchmark is one module (fivr.py, vcdb.py, ...) holding a `Benchmark` subclass that implements
`from_annotation` (the file's layout -> ids and ground truth) or `from_ground_truth` (a file the user gives)
and `evaluate` (similarities -> metrics); registry.py names it. What differs between benchmarks beyond that
(the paper's numbers, aliases, where its videos are) is a class attribute or method of its class.
Similarities come in the original tool's layout, {query: {target: score}}.
Library code: stdlib and the package's own modules only.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import S2VSError
from ..scoring.similarity_range import Similarities

class EvaluationError(S2VSError):
    """Similarities or a ground truth cannot be evaluated (no query present, a NaN score, a bad layout)."""


@dataclass(frozen=True)
class Evaluation:
    """The metrics of one evaluation, and which videos were missing from the similarities."""

    benchmark: str
    metrics: dict[str, float]                 # metric name -> value, in the original's order
    queries: int                              # queries evaluated
    database: int                             # database videos present
    missing_queries: tuple[str, ...] = ()     # queries the similarities have no row for
    missing_database: tuple[str, ...] = ()    # database videos no query was scored against
    per_event: dict[str, float] = field(default_factory=dict)  # EVVE: event -> mAP
    without_positives: tuple[str, ...] = ()   # queries left out of a mean: nothing relevant to them loaded

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the metrics, the counts and the missing ids."""
        summary: dict[str, Any] = {
            "benchmark": self.benchmark,
            "metrics": dict(self.metrics),
            "queries": self.queries,
            "database": self.database,
            "missing_queries": list(self.missing_queries),
            "missing_database": list(self.missing_database),
        }
        if self.per_event:
            summary["per_event"] = dict(self.per_event)
        if self.without_positives:
            summary["without_positives"] = list(self.without_positives)
        return summary


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's query and database video ids; subclasses add the ground truth their metrics read."""

    # The artifacts-table entry of the annotation file this benchmark is read from (s2vs_cli/artifacts.py);
    # "" for one whose ground truth the user gives instead (--ground-truth, read by `from_ground_truth`).
    annotation_file: ClassVar[str] = ""
    # Without an annotation file: what --ground-truth takes, as the usage error names it ("GT.json").
    ground_truth_file: ClassVar[str] = ""
    ground_truth_note: ClassVar[str] = ""  # what that file is, when its name does not say
    # Other spellings of its registry name (case and '-' versus '_' are ignored anyway).
    aliases: ClassVar[tuple[str, ...]] = ()
    # The paper's numbers (docs/METHOD.md §6), shown beside ours: (model, registry name) -> metric -> value.
    paper_results: ClassVar[Mapping[tuple[str, str], Mapping[str, float]]] = {}
    # Whether it scores saved segment predictions (--from-matches, --save-matches; VSC22's CSV layout).
    segment_predictions: ClassVar[bool] = False

    name: str              # its registry name (registry.DATASET_NAMES)
    queries: list[str]     # query video ids, in the order the metrics walk them
    database: list[str]    # video ids ranked for each query
    source: Path | None    # the annotation file read (None: a ground truth built in memory)

    def video_ids(self) -> list[str]:
        """Every video the benchmark needs features for: queries first, then the database, no repeats."""
        return list(dict.fromkeys([*self.queries, *self.database]))

    @classmethod
    def from_annotation(cls, name: str, data: Mapping, path: Path, *, distractors: bool = False) -> Benchmark:
        """Build the benchmark `name` from its annotation file's contents (`distractors`: VCDB only)."""
        raise NotImplementedError(f"{cls.__name__} is not read from an annotation file")

    @classmethod
    def from_ground_truth(cls, ground_truth: str | Path, annotations: str | Path | None = None,
                          available: Iterable[str] = ()) -> Benchmark:
        """Build the benchmark from the ground truth the user gives (`annotations`, `available`: see VSC22)."""
        raise NotImplementedError(f"{cls.__name__} is read from its annotation file, not a ground truth")

    @classmethod
    def video_pattern(cls, loader: str) -> str | None:
        """Where a video is under --dataset-path when --pattern is not given (None: collect_inputs' default)."""
        return None

    def paper(self, model: str) -> dict[str, float] | None:
        """The paper's numbers for `model` on this benchmark, when the paper reports them."""
        numbers = self.paper_results.get((model, self.name))
        return dict(numbers) if numbers is not None else None

    def evaluate(self, similarities: Similarities, **options: Any) -> Evaluation:
        """The benchmark's metrics on `similarities` (`options`: those of its evaluate_* function)."""
        raise NotImplementedError(f"{type(self).__name__} has no metrics")

    def copies(self) -> dict[str, frozenset[str]]:
        """For each query, the database videos that are copies of it: the positive pairs `s2vs calibrate`
        fits a threshold on (every other query-database pair is a negative). A benchmark whose labels are
        not copies (EVVE's events) raises EvaluationError."""
        raise EvaluationError(f"{self.name} has no copy labels to calibrate on; use a benchmark that labels "
                              "copies (VCDB, FIVR, CC_WEB_VIDEO, VSC22) or your own (--ground-truth GT.json)")
