"""What a review of a VSC22 evaluation shows beside the metrics (report/vsc_review.py draws it): the predictions
as they were scored, and per query (one with predictions or copies) its pairs, the errors first.

VSC 2022 has no per-query AP: pair_uAP and matching_uAP rank every prediction together. What a researcher
checks per query is then: its predicted pairs that are not copies ("negative ranked high", the highest scored
first), the ground truth's copies it did not predict ("copy missed"), and its correct pairs ("positive"). At
most PAIRS_SHOWN pairs a query, the errors kept first. The evaluation (jobs/evaluate_vsc.py) locates the pairs
`review_queries` shows, so the benchmark, not the page, decides them.
Library code: the standard library and the package's own modules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .evaluation_result import EvaluationResult
from .vsc import CopiedSegment, ScoredPair

PAIRS_SHOWN = 20       # pairs a query: a query without copies may have dozens of predictions
NEGATIVE_FLAG = "negative ranked high"
MISSED_FLAG = "copy missed"


@dataclass
class VSCReview:
    """The predictions as they were scored and, from features, the pairs shown located with their heatmaps."""

    truth: tuple[CopiedSegment, ...]              # the ground truth's copied segments
    queries: list[str]                            # the benchmark's queries
    pairs: list[ScoredPair]                       # the predicted pairs (from segments: each pair's best segment)
    segments: list[CopiedSegment] | None = None   # the predicted segments; None when only pairs were predicted
    true_scores: dict[tuple[str, str], float] = field(default_factory=dict)  # the true pairs' scores, when known
    # The shown pairs, located from features (scoring/pair.LocatedPair: matches, heatmap, durations).
    located: dict[tuple[str, str], Any] = field(default_factory=dict)
    source: str | None = None                     # the saved predictions read (no features at hand)


@dataclass
class VSCEvaluationResult(EvaluationResult):
    """A VSC22 evaluation's report, with what its review shows when one was asked for."""

    review: VSCReview | None = None


@dataclass(frozen=True)
class ShownPair:
    """One pair of a query as the review shows it."""

    ref_id: str
    score: float             # the predicted pair's score; a copy missed: its own score, or the lowest predicted
    rank: int | None         # 1-based among the query's predicted pairs; None for a copy missed
    label: str               # "positive" (a copy in the ground truth) or "negative"
    flag: str | None         # NEGATIVE_FLAG, MISSED_FLAG or None (a positive)


@dataclass
class QueryPairs:
    """A query's pairs in the review: those shown, in order, and how many of each kind it has in all."""

    query_id: str
    pairs: list[ShownPair]
    predicted: int
    positives: int
    negatives: int
    missed: int


def review_queries(review: VSCReview, shown: int = PAIRS_SHOWN) -> list[QueryPairs]:
    """Each query with predictions or copies, in the benchmark's order, with at most `shown` pairs: kept first
    the copies missed, then the negatives (highest score first), then the positives; listed negatives first."""
    true_pairs = {segment.pair for segment in review.truth}
    lowest = min((pair.score for pair in review.pairs), default=0.0)
    predicted: dict[str, list] = {}
    for pair in review.pairs:
        predicted.setdefault(pair.query_id, []).append(pair)
    copies: dict[str, list[str]] = {}
    for query, ref in sorted(true_pairs):
        copies.setdefault(query, []).append(ref)
    queries = []
    for query in dict.fromkeys([*review.queries, *predicted, *copies]):
        ranked = sorted(predicted.get(query, ()), key=lambda p: -p.score)  # stable: ties keep the file's order
        if not ranked and query not in copies:
            continue
        done = {p.ref_id for p in ranked}
        kinds = {"positive": [], "negative": []}
        for rank, pair in enumerate(ranked, 1):
            label = "positive" if (query, pair.ref_id) in true_pairs else "negative"
            kinds[label].append(ShownPair(pair.ref_id, pair.score, rank, label,
                                          NEGATIVE_FLAG if label == "negative" else None))
        missed = [ShownPair(ref, review.true_scores.get((query, ref), lowest), None, "positive", MISSED_FLAG)
                  for ref in copies.get(query, ()) if ref not in done]
        missed.sort(key=lambda p: -p.score)
        kept = {p.ref_id for p in [*missed, *kinds["negative"], *kinds["positive"]][:shown]}  # each ref once
        order = [*kinds["negative"], *missed, *kinds["positive"]]
        queries.append(QueryPairs(query, [p for p in order if p.ref_id in kept], len(ranked), len(kinds["positive"]),
                                  len(kinds["negative"]), len(missed)))
    return queries
