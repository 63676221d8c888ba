"""EVVE: events, their queries and positives, and EVVE_mAP (trapezoid AP, per event too) / EVVE_uAP.
Library code: numpy, the standard library and the package's own modules.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .benchmark import Benchmark, Evaluation, EvaluationError, Similarities
from .files import require
from .retrieval_metrics import trapezoid_average_precision
from .scores import Rankings, align, mean_or_nan, relevance, result


@dataclass(frozen=True)
class EVVEBenchmark(Benchmark):
    """EVVE: queries and database sorted and disjoint; a query's positives are those of its event."""

    annotation_file: ClassVar[str] = "evve"

    events: dict[str, tuple[frozenset[str], frozenset[str]]]   # event -> (its queries, its positives)

    @classmethod
    def from_annotation(cls, name: str, data: Mapping, path: Path, *, distractors: bool = False) -> EVVEBenchmark:
        """EVVE from its pickle: events, queries and database."""
        require(data, ("annotation", "queries", "database"), path, "EVVE")
        return cls(
            name="EVVE",
            queries=sorted(data["queries"]),
            database=sorted(data["database"]),
            source=path,
            # The third set of each event (null videos) is empty and unused.
            events={e: (frozenset(sets[0]), frozenset(sets[1])) for e, sets in data["annotation"].items()},
        )

    def evaluate(self, similarities: Similarities, *, scored_from: str | None = None) -> Evaluation:
        """EVVE_mAP and EVVE_uAP, per-event mAP (see `evaluate_evve`)."""
        return evaluate_evve(self, similarities, scored_from=scored_from)


def evaluate_evve(benchmark: EVVEBenchmark, similarities: Similarities, *,
                  scored_from: str | None = None) -> Evaluation:
    """EVVE: EVVE_mAP (trapezoid AP) and EVVE_uAP; per-event mAP in `per_event`.

    all_db = database ∪ queries (those that loaded). Every target in all_db is ranked, the query
    itself included, as the original does. An event none of whose queries loaded has no per-event mAP.
    """
    in_database = set(benchmark.database)
    columns = benchmark.database + [q for q in benchmark.queries if q not in in_database]
    scores = align(similarities, benchmark.queries, columns, benchmark.name, scored_from)
    event_of = {q: e for e, (queries, _) in benchmark.events.items() for q in queries}
    unknown = [q for q in scores.queries if q not in event_of]
    if unknown:
        raise EvaluationError(f"EVVE query '{unknown[0]}' belongs to no event of {benchmark.source}")
    rankings = Rankings(scores.matrix, ~np.isnan(scores.matrix))
    relevant = relevance(scores, (benchmark.events[event_of[q]][1] for q in scores.queries)) & scores.present
    counts = relevant.sum(axis=1)
    aps = np.array([
        trapezoid_average_precision(np.flatnonzero(relevant[i, row]), counts[i]) for i, row in enumerate(rankings.rows)
    ])
    per_event = {}
    for event in sorted(benchmark.events):
        event_queries = benchmark.events[event][0]
        loaded = int(np.count_nonzero(scores.mask(event_queries) & scores.present))
        if loaded:
            # Σ AP of its present queries / |event queries ∩ all_db| (docs/METHOD.md §6).
            per_event[event] = float(sum(ap for q, ap in zip(scores.queries, aps) if q in event_queries) / loaded)
    metrics = {"EVVE_mAP": mean_or_nan(aps), "EVVE_uAP": rankings.micro_average_precision(relevant)}
    return result(benchmark.name, benchmark.database, scores, metrics, per_event=per_event)
