"""Retrieval metrics of the standard benchmarks (SPEC §6) and of a user's own ground truth.

Similarities come in the original tool's layout, {query: {target: score}}. A benchmark query that is
not a key, and a database video that no query has a score for (and that is not a present query), are
*missing*: they failed to decode or are not in the feature file. As the original does, a missing video
leaves the database and the relevant sets, so it neither counts against a query nor is ranked; every
result says which videos were missing, so a caller can report them. A target one query has a score
for but another has not is simply not ranked for the second query (it stays relevant to it).

Conventions shared by every metric:
- Ranking: targets by descending score; equal scores keep the benchmark's database order (for pooled
  pairs: query order, then database order). The original's order for ties is arbitrary; this one is
  deterministic. NaN scores are refused.
- A ranking with no relevant video has AP 0.0 (the original divides 0 by 0); FIVR and custom ground
  truths leave such queries out of their mean, VCDB keeps them in (SPEC §6).
- Metric names are those the original prints (DSVR, ..., DSVR_h, EVVE_mAP, mAP_star, VCDB_uAP, ...).

Library code: numpy, the standard library and the package's own modules.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .annotations import Benchmark, CCWebBenchmark, EVVEBenchmark, FIVRBenchmark, Segment, VCDBBenchmark
from ..errors import S2VSError

Similarities = Mapping[str, Mapping[str, float]]  # {query: {target: score}}

# FIVR tasks: the labels whose union is relevant (retrieval -> mAP, detection -> uAP).
FIVR_TASKS = {"DS": ("ND", "DS"), "CS": ("ND", "DS", "CS"), "IS": ("ND", "DS", "CS", "IS")}
# CC_WEB_VIDEO labels that make a video a positive of its query set (X and x are not).
CC_WEB_POSITIVE = frozenset("ESLMV")


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
    without_positives: tuple[str, ...] = ()   # custom: queries left out of mAP and recall@k

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


# ---------------------------------------------------------------------------------------------
# Building blocks


def ranking(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Indices of `scores` from highest to lowest; equal scores keep their input order."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if np.isnan(scores).any():
        raise ValueError("cannot rank NaN scores")
    # A plain (unstable) argsort is about twice as fast as a stable one at FIVR-200K scale; runs of
    # equal scores, rare in practice, are put back in input order afterwards.
    order = np.argsort(-scores)
    ordered = scores[order]
    tied = ordered[1:] == ordered[:-1]
    if tied.any():
        in_run = np.zeros(len(order), dtype=bool)
        in_run[1:] |= tied
        in_run[:-1] |= tied
        run = np.cumsum(np.concatenate(([True], ~tied)))  # run number of each sorted position
        at = np.flatnonzero(in_run)
        members = order[at]
        order[at] = members[np.lexsort((members, run[at]))]
    return order


def average_precision(ranked_relevance: Sequence[bool] | np.ndarray, n_relevant: int | None = None) -> float:
    """AP = Σ_k precision@k · rel_k / n_relevant over a ranking; 0.0 when nothing is relevant.

    `n_relevant` defaults to the relevant items in the ranking; relevant items the ranking lacks
    (never retrieved) count in it and lower the AP.
    """
    hits = np.flatnonzero(np.asarray(ranked_relevance, dtype=bool).ravel())
    return average_precision_from_ranks(hits, len(hits) if n_relevant is None else n_relevant)


def average_precision_from_ranks(ranks: Sequence[int] | np.ndarray, n_relevant: int) -> float:
    """The same AP from the increasing 0-based ranks of the relevant items retrieved."""
    ranks = np.asarray(ranks, dtype=np.float64).ravel()
    if n_relevant < len(ranks):
        raise ValueError(f"n_relevant={n_relevant} but {len(ranks)} relevant items are ranked")
    if n_relevant == 0:
        return 0.0
    # Precision at the k-th hit (k = 1, 2, ...) is k over its 1-based rank.
    return float(np.sum(np.arange(1, len(ranks) + 1) / (ranks + 1)) / n_relevant)


def micro_average_precision(
    scores: Sequence[float] | np.ndarray, relevance: Sequence[bool] | np.ndarray, n_relevant: int | None = None
) -> float:
    """uAP: the AP of one ranking of pooled (query, target) pairs by score; ties keep the input order."""
    relevance = np.asarray(relevance, dtype=bool).ravel()
    if len(relevance) != np.size(scores):
        raise ValueError(f"{np.size(scores)} scores but {len(relevance)} relevance flags")
    return average_precision(relevance[ranking(scores)], n_relevant)


def trapezoid_average_precision(positive_ranks: Sequence[int] | np.ndarray, n_positives: int) -> float:
    """EVVE's AP: trapezoids under the precision-recall curve, from the 0-based ranks of the positives.

    AP = Σ_k [(k / r_k, or 1 when r_k = 0) + (k + 1) / (r_k + 1)] / (2 · n_positives), r_k being the
    rank of the k-th positive retrieved (k = 0, 1, ...); 0.0 when there are no positives.
    """
    ranks = np.asarray(positive_ranks, dtype=np.float64).ravel()
    if len(ranks) > n_positives:
        raise ValueError(f"{len(ranks)} positive ranks but n_positives={n_positives}")
    if n_positives == 0 or len(ranks) == 0:
        return 0.0
    k = np.arange(len(ranks), dtype=np.float64)
    if np.any(ranks < k) or np.any(np.diff(ranks) <= 0):
        raise ValueError("positive ranks must be distinct 0-based ranks in increasing order")
    before = np.divide(k, ranks, out=np.ones_like(ranks), where=ranks > 0)  # precision just before the hit
    after = (k + 1) / (ranks + 1)                                              # precision at the hit
    return float(np.sum(before + after) / (2 * n_positives))


def recall_at_k(ranked_relevance: Sequence[bool] | np.ndarray, k: int, n_relevant: int | None = None) -> float:
    """Fraction of the relevant items within the top k of a ranking; 0.0 when nothing is relevant."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevance = np.asarray(ranked_relevance, dtype=bool).ravel()
    total = int(np.count_nonzero(relevance))
    n = total if n_relevant is None else int(n_relevant)
    if n < total:
        raise ValueError(f"n_relevant={n} but the ranking holds {total} relevant items")
    return float(np.count_nonzero(relevance[:k]) / n) if n else 0.0


# ---------------------------------------------------------------------------------------------
# Similarities as a matrix, and the rankings all metrics of a benchmark share


@dataclass
class _Scores:
    """The similarities of the present queries as a dense matrix over a benchmark's videos."""

    queries: list[str]                 # present queries, in the benchmark's order
    columns: list[str]                 # the videos that may be ranked, in tie-break order
    column: dict[str, int]             # video id -> column
    matrix: np.ndarray                 # float64 [queries, columns]; NaN where a query has no score
    present: np.ndarray                # bool [columns]: loaded (scored for some query, or a present query)
    missing_queries: tuple[str, ...]   # benchmark queries without a row

    def mask(self, ids: Iterable[str]) -> np.ndarray:
        """Bool [columns]: the columns of `ids` (ids outside the columns are ignored)."""
        out = np.zeros(len(self.columns), dtype=bool)
        out[[self.column[v] for v in ids if v in self.column]] = True
        return out

    def own_column(self) -> np.ndarray:
        """Bool [queries, columns]: each query's own column, if it has one."""
        own = np.zeros(self.matrix.shape, dtype=bool)
        for i, query in enumerate(self.queries):
            if query in self.column:
                own[i, self.column[query]] = True
        return own

    def missing(self, database: Sequence[str]) -> tuple[str, ...]:
        """Videos of `database` (all among the columns) that did not load."""
        return tuple(v for v in database if not self.present[self.column[v]])


def _align(similarities: Similarities, queries: Sequence[str], columns: Sequence[str], name: str) -> _Scores:
    """Lay the rows of `queries` out over `columns`; targets outside the columns are ignored."""
    if not isinstance(similarities, Mapping):
        raise EvaluationError(f"similarities must map query -> {{target: score}}, got {type(similarities).__name__}")
    queries = list(dict.fromkeys(queries))
    present_queries = [q for q in queries if q in similarities]
    if not present_queries:
        raise EvaluationError(f"none of the {len(queries)} {name} queries is in the similarities")
    columns = list(columns)
    column = {v: j for j, v in enumerate(columns)}
    matrix = np.full((len(present_queries), len(columns)), np.nan)
    previous_keys: list | None = None
    for i, query in enumerate(present_queries):
        row = similarities[query]
        if not isinstance(row, Mapping):
            raise EvaluationError(f"similarities['{query}'] must map target -> score, got {type(row).__name__}")
        keys = list(row)
        # Rows of one run list the same targets in the same order: look their columns up once.
        if keys != previous_keys:
            where = np.fromiter((column.get(k, -1) for k in keys), dtype=np.intp, count=len(keys))
            known = where >= 0
            previous_keys = keys
        values = np.fromiter(row.values(), dtype=np.float64, count=len(keys))
        if np.isnan(values).any():
            target = keys[int(np.flatnonzero(np.isnan(values))[0])]
            raise EvaluationError(f"the similarity of '{query}' to '{target}' is NaN")
        matrix[i, where[known]] = values[known]
    present = ~np.isnan(matrix).all(axis=0)
    present[[column[q] for q in present_queries if q in column]] = True  # a query that loaded is in all_db
    missing = tuple(q for q in queries if q not in similarities)
    return _Scores(present_queries, columns, column, matrix, present, missing)


class _Rankings:
    """Each query's ranking over the rankable cells of a score matrix, and the metrics read from them."""

    def __init__(self, matrix: np.ndarray, rankable: np.ndarray):
        self._matrix = matrix
        self.rows: list[np.ndarray] = []  # per query: its columns, best first
        for i in range(matrix.shape[0]):
            cells = np.flatnonzero(rankable[i])
            self.rows.append(cells[ranking(matrix[i, cells])])

    def restricted(self, keep: np.ndarray) -> _Rankings:
        """The same rankings with only the columns `keep` marks (their order is unchanged)."""
        out = _Rankings.__new__(_Rankings)
        out._matrix = self._matrix
        out.rows = [row[keep[row]] for row in self.rows]
        return out

    def average_precisions(self, relevant: np.ndarray) -> np.ndarray:
        """AP of each query; `relevant` [queries, columns] marks its relevant set, ranked or not."""
        counts = relevant.sum(axis=1)
        return np.array([average_precision(relevant[i, row], counts[i]) for i, row in enumerate(self.rows)])

    def micro_average_precision(self, relevant: np.ndarray) -> float:
        """uAP of all pooled pairs (ties: earlier query first); unranked relevant pairs count too.

        The same value as `micro_average_precision` over the pooled pairs. With few relevant pairs among
        many (FIVR-200K: ~24K of 22M) it does not sort them all: AP needs only the rank of each relevant
        pair, that is its place in its own ranking plus, for every other query, how many of its pairs
        score higher (or as high, for an earlier query), found by binary search in that query's ranking.
        """
        n_relevant = int(relevant.sum())
        hits = [np.flatnonzero(relevant[i, row]) for i, row in enumerate(self.rows)]  # places in own ranking
        n_hits, n_pairs = sum(len(h) for h in hits), sum(len(row) for row in self.rows)
        if 2 * len(self.rows) * n_hits >= n_pairs:  # binary searches would cost more than one sort
            flags = np.concatenate([relevant[i, row] for i, row in enumerate(self.rows)] + [np.zeros(0, bool)])
            return micro_average_precision(-np.concatenate(self._ascending + [np.zeros(0)]), flags, n_relevant)
        hit_query = np.repeat(np.arange(len(hits)), [len(h) for h in hits])
        keys = np.concatenate([ascending[h] for ascending, h in zip(self._ascending, hits)])
        ranks = np.concatenate(hits).astype(np.int64)
        by_key = np.argsort(keys)  # binary searches run faster with sorted keys
        keys, hit_query, ranks = keys[by_key], hit_query[by_key], ranks[by_key]
        for query, ascending in enumerate(self._ascending):
            higher = np.searchsorted(ascending, keys, side="left")
            as_high = np.searchsorted(ascending, keys, side="right")
            ranks += np.where(hit_query > query, as_high, np.where(hit_query < query, higher, 0))
        return average_precision_from_ranks(np.sort(ranks), n_relevant)

    @cached_property
    def _ascending(self) -> list[np.ndarray]:
        """Each ranking's negated scores: ascending, as binary search wants them."""
        return [-self._matrix[i, row] for i, row in enumerate(self.rows)]


def _mean(values: np.ndarray) -> float:
    """Mean, or NaN for no values (no warning)."""
    return float(np.mean(values)) if len(values) else float("nan")


def _relevance(scores: _Scores, sets: Iterable[Iterable[str]]) -> np.ndarray:
    """Bool [queries, columns]: row i marks the ids of the i-th set."""
    relevant = np.zeros(scores.matrix.shape, dtype=bool)
    for i, ids in enumerate(sets):
        relevant[i] = scores.mask(ids)
    return relevant


# ---------------------------------------------------------------------------------------------
# The benchmarks


def evaluate_fivr(
    benchmark: FIVRBenchmark,
    similarities: Similarities,
    hard: bool | None = None,
    easy_duplicates: Collection[str] | None = None,
) -> Evaluation:
    """FIVR-5K/200K: DSVR/CSVR/ISVR mAP and DSVD/CSVD/ISVD uAP; `hard` True/False/None (both, `_h`).

    The hard variant removes `easy_duplicates` (read with `benchmark.easy_duplicates()` when not
    given) from the database, for the targets and the relevant sets alike.
    """
    scores = _align(similarities, benchmark.queries, benchmark.database, benchmark.name)
    own = scores.own_column()  # a query is never its own target nor relevant to itself
    rankings = _Rankings(scores.matrix, ~np.isnan(scores.matrix) & ~own)
    variants = [(suffix, h) for suffix, h in (("", False), ("_h", True)) if hard is None or hard == h]
    if hard is not False and easy_duplicates is None:
        easy_duplicates = benchmark.easy_duplicates()
    relevant = {
        task: _relevance(scores, (
            (v for label in labels for v in benchmark.annotation.get(q, {}).get(label, ())) for q in scores.queries
        )) & scores.present & ~own
        for task, labels in FIVR_TASKS.items()
    }
    metrics: dict[str, float] = {}
    for suffix, is_hard in variants:
        keep = scores.present & ~scores.mask(easy_duplicates) if is_hard else scores.present
        ranked = rankings.restricted(keep) if is_hard else rankings
        for task in FIVR_TASKS:
            rel = relevant[task] & keep
            # mAP over the queries with at least one relevant video (SPEC §6).
            metrics[f"{task}VR{suffix}"] = _mean(ranked.average_precisions(rel)[rel.any(axis=1)])
        for task in FIVR_TASKS:
            metrics[f"{task}VD{suffix}"] = ranked.micro_average_precision(relevant[task] & keep)
    return _result(benchmark.name, benchmark.database, scores, metrics)


def evaluate_vcdb(benchmark: VCDBBenchmark, similarities: Similarities) -> Evaluation:
    """VCDB: VCDB_mAP (mean over every present query, even one left without positives) and VCDB_uAP."""
    scores = _align(similarities, benchmark.queries, benchmark.database, benchmark.name)
    own = scores.own_column()
    rankings = _Rankings(scores.matrix, ~np.isnan(scores.matrix) & ~own)
    relevant = _relevance(scores, (benchmark.positives.get(q, ()) for q in scores.queries)) & scores.present & ~own
    metrics = {
        "VCDB_mAP": _mean(rankings.average_precisions(relevant)),
        "VCDB_uAP": rankings.micro_average_precision(relevant),
    }
    return _result(benchmark.name, benchmark.database, scores, metrics)


def evaluate_evve(benchmark: EVVEBenchmark, similarities: Similarities) -> Evaluation:
    """EVVE: EVVE_mAP (trapezoid AP) and EVVE_uAP; per-event mAP in `per_event`.

    all_db = database ∪ queries (those that loaded). Every target in all_db is ranked, the query
    itself included, as the original does. An event none of whose queries loaded has no per-event mAP.
    """
    in_database = set(benchmark.database)
    columns = benchmark.database + [q for q in benchmark.queries if q not in in_database]
    scores = _align(similarities, benchmark.queries, columns, benchmark.name)
    event_of = {q: e for e, (queries, _) in benchmark.events.items() for q in queries}
    unknown = [q for q in scores.queries if q not in event_of]
    if unknown:
        raise EvaluationError(f"EVVE query '{unknown[0]}' belongs to no event of {benchmark.source}")
    rankings = _Rankings(scores.matrix, ~np.isnan(scores.matrix))
    relevant = _relevance(scores, (benchmark.events[event_of[q]][1] for q in scores.queries)) & scores.present
    counts = relevant.sum(axis=1)
    aps = np.array([
        trapezoid_average_precision(np.flatnonzero(relevant[i, row]), counts[i]) for i, row in enumerate(rankings.rows)
    ])
    per_event = {}
    for event in sorted(benchmark.events):
        event_queries = benchmark.events[event][0]
        loaded = int(np.count_nonzero(scores.mask(event_queries) & scores.present))
        if loaded:
            # Σ AP of its present queries / |event queries ∩ all_db| (SPEC §6).
            per_event[event] = float(sum(ap for q, ap in zip(scores.queries, aps) if q in event_queries) / loaded)
    metrics = {"EVVE_mAP": _mean(aps), "EVVE_uAP": rankings.micro_average_precision(relevant)}
    return _result(benchmark.name, benchmark.database, scores, metrics, per_event=per_event)


def evaluate_cc_web(benchmark: CCWebBenchmark, similarities: Similarities) -> Evaluation:
    """CC_WEB_VIDEO: mAP, mAP_star (every video counts), and both 'clean' (mAP_c, mAP_c_star).

    The denominators are the positive labels of each query set (less the excluded ones when clean),
    whether or not those videos loaded, as the original counts them.
    """
    scores = _align(similarities, benchmark.queries, benchmark.database, benchmark.name)
    numbers = np.array([benchmark.index[v] for v in scores.columns])  # video number of each column
    rankings = _Rankings(scores.matrix, ~np.isnan(scores.matrix))
    row_of = {q: i for i, q in enumerate(scores.queries)}
    variants = {"mAP": (False, False), "mAP_star": (True, False), "mAP_c": (False, True), "mAP_c_star": (True, True)}
    totals = dict.fromkeys(variants, 0.0)
    for query, labels, excluded in zip(benchmark.queries, benchmark.ground_truth, benchmark.excluded):
        if query not in row_of:
            continue
        ranked = numbers[rankings.rows[row_of[query]]]  # video numbers, best first
        labelled = np.isin(ranked, list(labels))
        positive = np.isin(ranked, [v for v, label in labels.items() if label in CC_WEB_POSITIVE])
        left_out = np.isin(ranked, list(excluded))
        for name, (star, clean) in variants.items():
            # A video takes a rank when it is labelled (or any video, star) and not excluded (clean).
            counted = (labelled | star) & ~(left_out & clean)
            n_positive = sum(1 for v, label in labels.items()
                             if label in CC_WEB_POSITIVE and not (clean and v in excluded))
            totals[name] += average_precision(positive[counted], n_positive)
    # Divided by the present queries, each query set counted once per distinct query id.
    metrics = {name: total / len(row_of) for name, total in totals.items()}
    return _result(benchmark.name, benchmark.database, scores, metrics)


# ---------------------------------------------------------------------------------------------
# A user's own ground truth


@dataclass(frozen=True)
class _GroundTruth:
    name: str
    queries: list[str]
    database: list[str]
    positives: dict[str, frozenset[str]]
    negatives: dict[str, frozenset[str]] | None


def _ground_truth(data: Any) -> _GroundTruth:
    """The parts of a custom ground truth the metrics read, from a mapping or a loaded benchmark."""
    get = data.get if isinstance(data, Mapping) else lambda key, default=None: getattr(data, key, default)
    queries, database, positives, negatives = get("queries"), get("database"), get("positives"), get("negatives")
    for key, value in (("queries", queries), ("database", database)):
        if not isinstance(value, Sequence) or isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise EvaluationError(f"ground truth '{key}' must be a list of video ids")
    for key, value in (("positives", positives), ("negatives", negatives)):
        if value is not None and not isinstance(value, Mapping):
            raise EvaluationError(f"ground truth '{key}' must map each query to a list of video ids")
    if positives is None:
        raise EvaluationError("ground truth has no 'positives'")

    def sets(value: Mapping) -> dict[str, frozenset[str]]:
        return {q: frozenset([ids] if isinstance(ids, str) else ids) for q, ids in value.items()}

    name = data.get("name", "custom") if isinstance(data, Mapping) else getattr(data, "name", "custom")
    return _GroundTruth(str(name), list(queries), list(database), sets(positives),
                        None if negatives is None else sets(negatives))


def evaluate_custom(
    ground_truth: Mapping[str, Any] | Benchmark, similarities: Similarities, ks: Sequence[int] = (1, 5, 10)
) -> Evaluation:
    """mAP, uAP and recall@k for a user's ground truth {queries, database, positives[, negatives]}.

    As for FIVR: relevant(q) = positives(q) ∩ loaded database − {q}, ranked over the loaded database
    other than q (positives outside the database are never ranked and leave the relevant set); mAP and
    recall@k are means over the queries with ≥ 1 relevant video (the others are listed in
    `without_positives`); uAP pools the pairs of all present queries. When `negatives` lists a query,
    only its positives and negatives are ranked for it (unjudged videos are left out); a query it does
    not list is ranked against the whole database.
    """
    gt = _ground_truth(ground_truth)
    if any(k < 1 for k in ks):
        raise EvaluationError(f"recall@k needs k ≥ 1, got {list(ks)}")
    scores = _align(similarities, gt.queries, gt.database, "ground truth")
    own = scores.own_column()
    rankable = ~np.isnan(scores.matrix) & ~own
    for i, query in enumerate(scores.queries):
        if gt.negatives is not None and query in gt.negatives:
            rankable[i] &= scores.mask(gt.positives.get(query, frozenset()) | gt.negatives[query])
    rankings = _Rankings(scores.matrix, rankable)
    relevant = _relevance(scores, (gt.positives.get(q, ()) for q in scores.queries)) & scores.present & ~own
    counts = relevant.sum(axis=1)
    judged = counts > 0
    metrics = {
        "mAP": _mean(rankings.average_precisions(relevant)[judged]),
        "uAP": rankings.micro_average_precision(relevant),
    }
    for k in ks:
        recalls = [recall_at_k(relevant[i, row], k, counts[i]) for i, row in enumerate(rankings.rows) if judged[i]]
        metrics[f"recall@{k}"] = _mean(np.array(recalls))
    without = tuple(q for q, has in zip(scores.queries, judged) if not has)
    return _result(gt.name, gt.database, scores, metrics, without_positives=without)


# ---------------------------------------------------------------------------------------------
# Segments: how well reported matching time ranges overlap the annotated ones


def interval_union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Disjoint, sorted intervals covering the same time as `intervals` ([start, end) pairs)."""
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def covered_time(intervals: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by `intervals` (overlaps counted once)."""
    return sum(end - start for start, end in interval_union(intervals))


def overlap_time(a: Iterable[tuple[float, float]], b: Iterable[tuple[float, float]]) -> float:
    """Seconds covered by both sets of intervals."""
    a, b = interval_union(a), interval_union(b)
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def segment_precision_recall(predicted: Mapping[tuple[str, str], Sequence[Segment]],
                             annotated: Mapping[tuple[str, str], Sequence[Segment]]) -> dict[str, float]:
    """Segment-level precision, recall and F1 of reported segments against annotated ones.

    In the spirit of the VSC 2022 matching track: per (query, target) pair, segments are projected on
    the query's time axis and on the target's; on each axis, precision = overlapping seconds / reported
    seconds and recall = overlapping seconds / annotated seconds, both summed over all pairs (a reported
    segment on a pair with no annotation only adds reported seconds). The two axes combine by
    geometric mean. Nothing reported gives precision 0.
    """
    totals = np.zeros((2, 3))  # axis (query, target) x (overlap, reported, annotated)
    for pair in set(predicted) | set(annotated):
        reported, truth = predicted.get(pair, ()), annotated.get(pair, ())
        for axis, (start, end) in enumerate(((0, 1), (2, 3))):
            mine = [(s[start], s[end]) for s in reported]
            theirs = [(s[start], s[end]) for s in truth]
            totals[axis] += (overlap_time(mine, theirs), covered_time(mine), covered_time(theirs))
    overlap, reported, truth = totals.T
    precision = float(np.sqrt(np.prod(np.divide(overlap, reported, out=np.zeros(2), where=reported > 0))))
    recall = float(np.sqrt(np.prod(np.divide(overlap, truth, out=np.zeros(2), where=truth > 0))))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"segment_precision": precision, "segment_recall": recall, "segment_F1": f1}


# ---------------------------------------------------------------------------------------------


def evaluate(benchmark: Benchmark, similarities: Similarities, **options: Any) -> Evaluation:
    """Evaluate with the metrics of `benchmark`'s kind; `options` go to that evaluate_* function."""
    if isinstance(benchmark, FIVRBenchmark):
        return evaluate_fivr(benchmark, similarities, **options)
    if isinstance(benchmark, VCDBBenchmark):
        return evaluate_vcdb(benchmark, similarities, **options)
    if isinstance(benchmark, EVVEBenchmark):
        return evaluate_evve(benchmark, similarities, **options)
    if isinstance(benchmark, CCWebBenchmark):
        return evaluate_cc_web(benchmark, similarities, **options)
    if hasattr(benchmark, "positives"):  # a custom ground truth
        return evaluate_custom(benchmark, similarities, **options)
    raise EvaluationError(f"no metrics for benchmark '{getattr(benchmark, 'name', benchmark)}'")


def _result(name: str, database: Sequence[str], scores: _Scores, metrics: dict[str, float], **extra: Any) -> Evaluation:
    """Package the metrics with the counts and the ids of what was missing."""
    missing = scores.missing(database)
    return Evaluation(
        benchmark=name,
        metrics=metrics,
        queries=len(scores.queries),
        database=len(database) - len(missing),
        missing_queries=scores.missing_queries,
        missing_database=missing,
        **extra,
    )
