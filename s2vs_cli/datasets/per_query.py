"""Each query's AP and its ranking errors, by the benchmark's headline metric (what a reviewer looks at first).

The headline metric is the first the benchmark reports: mAP for a custom ground truth, DSVR for FIVR,
VCDB_mAP, EVVE_mAP, mAP for CC_WEB_VIDEO. Each query is ranked and judged exactly as that metric does (the
same aligned matrix, rankable cells, relevant sets and AP formula), so the mean of the per-query APs is the
reported mAP. The errors of a query's ranking:
- positives ranked low: relevant videos ranked below the number of relevant videos (the R-precision cut);
- negatives ranked high: other videos ranked above the last relevant one.
Library code: numpy, the standard library and the package's own modules.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .benchmark import Benchmark, Similarities
from .cc_web import CC_WEB_POSITIVE, CCWebBenchmark
from .custom import CustomBenchmark
from .evve import EVVEBenchmark
from .fivr import FIVR_TASKS, FIVRBenchmark
from .retrieval_metrics import average_precision, trapezoid_average_precision
from .scores import AlignedScores, Rankings, align, relevance
from .vcdb import VCDBBenchmark

ERRORS_SHOWN = 10  # errors of each kind kept per query, the worst first


@dataclass(frozen=True)
class RankedVideo:
    """A video in a query's ranking: its id, 1-based rank and similarity."""

    id: str
    rank: int
    similarity: float

    def as_dict(self) -> dict:
        """JSON-ready: id, rank, similarity."""
        return {"id": self.id, "rank": self.rank, "similarity": self.similarity}


@dataclass(frozen=True)
class QueryRanking:
    """One query's ranking as its headline metric sees it, and its AP."""

    query: str
    columns: list[str]         # the videos of the score matrix (shared by every query)
    row: np.ndarray            # the ranked videos' columns, best first
    scores: np.ndarray         # their similarities
    relevant: np.ndarray       # bool: each ranked video is relevant
    n_relevant: int            # relevant videos, ranked or not (unranked ones lower the AP)
    ap: float

    def positives_ranked_low(self) -> list[RankedVideo]:
        """Relevant videos ranked below the number of relevant videos, the lowest first."""
        places = [p for p in np.flatnonzero(self.relevant) if p >= self.n_relevant]
        return [self._video(p) for p in reversed(places)]

    def negatives_ranked_high(self) -> list[RankedVideo]:
        """Other videos ranked above the last relevant one, the highest first."""
        hits = np.flatnonzero(self.relevant)
        if not len(hits):
            return []
        return [self._video(p) for p in np.flatnonzero(~self.relevant[:hits[-1]])]

    def errors(self, shown: int = ERRORS_SHOWN) -> dict | None:
        """JSON-ready: the relevant count and, of each kind of error, the worst `shown` and their total;
        None when the ranking has no error."""
        low, high = self.positives_ranked_low(), self.negatives_ranked_high()
        if not low and not high:
            return None
        return {"positives": self.n_relevant,
                "positives_ranked_low": [v.as_dict() for v in low[:shown]],
                "negatives_ranked_high": [v.as_dict() for v in high[:shown]],
                "positives_ranked_low_total": len(low), "negatives_ranked_high_total": len(high)}

    def _video(self, place: int) -> RankedVideo:
        return RankedVideo(self.columns[self.row[place]], int(place) + 1, float(self.scores[place]))


@dataclass(frozen=True)
class PerQuery:
    """The queries the headline metric averages, each with its ranking and AP."""

    metric: str                     # the headline metric the rankings and APs are those of
    rankings: list[QueryRanking]

    def aps(self) -> dict[str, float]:
        """Query -> AP; their mean is the headline metric."""
        return {r.query: r.ap for r in self.rankings}

    def errors(self, shown: int = ERRORS_SHOWN) -> dict[str, dict]:
        """Query -> its errors (QueryRanking.errors), for the queries that have any."""
        found = ((r.query, r.errors(shown)) for r in self.rankings)
        return {query: errors for query, errors in found if errors is not None}

    def error_pairs(self, shown: int = ERRORS_SHOWN) -> list[tuple[str, str]]:
        """The (query, video) pairs `errors(shown)` lists, each once."""
        pairs = ((r.query, v.id) for r in self.rankings
                 for v in [*r.positives_ranked_low()[:shown], *r.negatives_ranked_high()[:shown]])
        return list(dict.fromkeys(pairs))


def rank_queries(benchmark: Benchmark, similarities: Similarities) -> PerQuery:
    """Each query the headline metric averages, ranked and judged as that metric does."""
    if isinstance(benchmark, FIVRBenchmark):
        relevant_ids = {q: [v for label in FIVR_TASKS["DS"] for v in benchmark.annotation.get(q, {}).get(label, ())]
                        for q in benchmark.queries}
        return PerQuery("DSVR", list(_ap_rankings(benchmark, similarities, relevant_ids, judged_only=True)))
    if isinstance(benchmark, VCDBBenchmark):
        return PerQuery("VCDB_mAP", list(_ap_rankings(benchmark, similarities, benchmark.positives,
                                                      judged_only=False)))
    if isinstance(benchmark, EVVEBenchmark):
        return PerQuery("EVVE_mAP", list(_evve_rankings(benchmark, similarities)))
    if isinstance(benchmark, CCWebBenchmark):
        return PerQuery("mAP", _cc_web_rankings(benchmark, similarities))
    if isinstance(benchmark, CustomBenchmark):
        return PerQuery("mAP", list(_ap_rankings(benchmark, similarities, benchmark.positives, judged_only=True,
                                                 negatives=benchmark.negatives)))
    # Another benchmark: its copy labels, ranked as a custom ground truth ranks them.
    return PerQuery("copies", list(_ap_rankings(benchmark, similarities, benchmark.copies(), judged_only=True)))


def _ap_rankings(benchmark: Benchmark, similarities: Similarities, positives, judged_only: bool,
                 negatives: dict | None = None) -> Iterator[QueryRanking]:
    """Rankings over the database less the query itself (FIVR, VCDB, custom); `negatives` (custom) limits a
    query it lists to its judged videos; `judged_only` leaves out queries with nothing relevant."""
    scores = align(similarities, benchmark.queries, benchmark.database, benchmark.name)
    own = scores.own_column()
    rankable = ~np.isnan(scores.matrix) & ~own
    for i, query in enumerate(scores.queries):
        if negatives is not None and query in negatives:
            rankable[i] &= scores.mask(positives.get(query, frozenset()) | negatives[query])
    rankings = Rankings(scores.matrix, rankable)
    relevant = relevance(scores, (positives.get(q, ()) for q in scores.queries)) & scores.present & ~own
    counts = relevant.sum(axis=1)
    for i, row in enumerate(rankings.rows):
        if counts[i] or not judged_only:
            yield _ranking(scores, i, row, relevant[i, row], int(counts[i]),
                           average_precision(relevant[i, row], counts[i]))


def _evve_rankings(benchmark: EVVEBenchmark, similarities: Similarities) -> Iterator[QueryRanking]:
    """EVVE: every loaded video ranked, the query itself included; trapezoid AP."""
    in_database = set(benchmark.database)
    columns = benchmark.database + [q for q in benchmark.queries if q not in in_database]
    scores = align(similarities, benchmark.queries, columns, benchmark.name)
    event_of = {q: e for e, (queries, _) in benchmark.events.items() for q in queries}
    rankings = Rankings(scores.matrix, ~np.isnan(scores.matrix))
    relevant = relevance(scores, (benchmark.events[event_of[q]][1] if q in event_of else ()
                                  for q in scores.queries)) & scores.present
    counts = relevant.sum(axis=1)
    for i, row in enumerate(rankings.rows):
        flags = relevant[i, row]
        yield _ranking(scores, i, row, flags, int(counts[i]),
                       trapezoid_average_precision(np.flatnonzero(flags), counts[i]))


def _cc_web_rankings(benchmark: CCWebBenchmark, similarities: Similarities) -> list[QueryRanking]:
    """CC_WEB_VIDEO's mAP: each query set ranks its labelled videos; a query heading two sets gets the sum
    of their APs (mAP divides the sum over sets by the distinct queries) and the first set's ranking."""
    scores = align(similarities, benchmark.queries, benchmark.database, benchmark.name)
    numbers = np.array([benchmark.index[v] for v in scores.columns])
    rankings = Rankings(scores.matrix, ~np.isnan(scores.matrix))
    row_of = {q: i for i, q in enumerate(scores.queries)}
    found: dict[str, QueryRanking] = {}
    for query, labels, _ in zip(benchmark.queries, benchmark.ground_truth, benchmark.excluded):
        if query not in row_of:
            continue
        row = rankings.rows[row_of[query]]
        labelled = row[np.isin(numbers[row], list(labels))]
        positive = np.isin(numbers[labelled], [v for v, label in labels.items() if label in CC_WEB_POSITIVE])
        n_positive = sum(1 for label in labels.values() if label in CC_WEB_POSITIVE)
        ranking = _ranking(scores, row_of[query], labelled, positive, n_positive,
                           average_precision(positive, n_positive))
        if query in found:
            ranking = dataclasses.replace(found[query], ap=found[query].ap + ranking.ap)
        found[query] = ranking
    return list(found.values())


def _ranking(scores: AlignedScores, i: int, row: np.ndarray, flags: np.ndarray, n_relevant: int,
             ap: float) -> QueryRanking:
    return QueryRanking(scores.queries[i], scores.columns, row, scores.matrix[i, row],
                        np.asarray(flags, dtype=bool), n_relevant, float(ap))
