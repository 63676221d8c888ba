"""What one `s2vs evaluate` run found: the metrics and what a reader must know about them (the `EvaluationResult`
jobs/evaluate.py returns, the JSON `--json` prints, what report/evaluate_review.py shows).

Below the jobs that make it and the pages that show it, so that neither imports the other.
Library code: the standard library and the package's own modules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .benchmark import Evaluation
from .per_query import PerQuery
from .segments import SegmentBounds

if TYPE_CHECKING:
    from ..scoring.normalization import NoiseNormalization
    from ..storage.bookkeeping import ExtractionSummary


@dataclass
class SegmentEvaluation:
    """Segment-level precision/recall of the copied parts `s2vs compare` reports on the annotated pairs."""

    metrics: dict[str, float]
    pairs: int                                          # annotated pairs located
    missing_pairs: list[tuple[str, str]] = field(default_factory=list)  # a video not in the feature file
    predicted: dict[tuple[str, str], list[SegmentBounds]] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    """Everything one `s2vs evaluate` run found: the metrics and what a reader must know about them."""

    evaluation: Evaluation
    dataset: str                                    # the benchmark's registry name
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
    # For a review: the error pairs, located (scoring/pair.LocatedPair: matches, heatmap, durations).
    located: dict[tuple[str, str], Any] | None = None
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
