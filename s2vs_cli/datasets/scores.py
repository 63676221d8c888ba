"""Similarities as a matrix over a benchmark's videos, and the rankings every benchmark's metrics share.

A benchmark query that is not a key of the similarities, and a database video that no query has a score
for (and that is not a present query), are *missing*: they failed to decode or are not in the feature
file. As the original does, a missing video leaves the database and the relevant sets, so it neither
counts against a query nor is ranked; every result says which videos were missing. A target one query
has a score for but another has not is simply not ranked for the second query (it stays relevant to it).
Ties keep the benchmark's database order (for pooled pairs: query order, then database order).
Library code: numpy, the standard library and the package's own modules.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from .benchmark import Evaluation, EvaluationError, Similarities
from .retrieval_metrics import average_precision, average_precision_from_ranks, micro_average_precision, ranking

SHOWN_IDS = 5  # ids named in a message before "and N more"


@dataclass
class AlignedScores:
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


def align(similarities: Similarities, queries: Sequence[str], columns: Sequence[str], name: str,
          scored_from: str | None = None) -> AlignedScores:
    """Lay the rows of `queries` out over `columns`; targets outside the columns are ignored.

    `scored_from` names the file the similarities came from, for the error when no query is in them.
    """
    if not isinstance(similarities, Mapping):
        raise EvaluationError(f"similarities must map query -> {{target: score}}, got {type(similarities).__name__}")
    queries = list(dict.fromkeys(queries))
    present_queries = [q for q in queries if q in similarities]
    if not present_queries:
        raise EvaluationError(_no_query_present(queries, name, scored_from))
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
    if not present.any():  # nothing to rank: every metric would be NaN
        raise EvaluationError(_no_database_present(columns, name, scored_from))
    missing = tuple(q for q in queries if q not in similarities)
    return AlignedScores(present_queries, columns, column, matrix, present, missing)


class Rankings:
    """Each query's ranking over the rankable cells of a score matrix, and the metrics read from them."""

    def __init__(self, matrix: np.ndarray, rankable: np.ndarray):
        self._matrix = matrix
        self.rows: list[np.ndarray] = []  # per query: its columns, best first
        for i in range(matrix.shape[0]):
            cells = np.flatnonzero(rankable[i])
            self.rows.append(cells[ranking(matrix[i, cells])])

    def restricted(self, keep: np.ndarray) -> Rankings:
        """The same rankings with only the columns `keep` marks (their order is unchanged)."""
        out = Rankings.__new__(Rankings)
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


def mean_or_nan(values: np.ndarray) -> float:
    """Mean, or NaN for no values (no warning)."""
    return float(np.mean(values)) if len(values) else float("nan")


def relevance(scores: AlignedScores, sets: Iterable[Iterable[str]]) -> np.ndarray:
    """Bool [queries, columns]: row i marks the ids of the i-th set."""
    relevant = np.zeros(scores.matrix.shape, dtype=bool)
    for i, ids in enumerate(sets):
        relevant[i] = scores.mask(ids)
    return relevant


def result(name: str, database: Sequence[str], scores: AlignedScores, metrics: dict[str, float],
           **extra: Any) -> Evaluation:
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


def listing(ids: Sequence[str], shown: int = SHOWN_IDS) -> str:
    """'a', 'b', 'c' and 4 more: the first few ids of a list, quoted."""
    named = ", ".join(f"'{i}'" for i in ids[:shown])
    return f"{named} and {len(ids) - shown} more" if len(ids) > shown else named


def _no_database_present(columns: Sequence[str], name: str, scored_from: str | None) -> str:
    where = scored_from or "the similarities"
    return (f"none of the {len(columns)} {name} database videos is in {where}: all {len(columns)} are missing "
            f"(looked for {listing(columns)})")


def _no_query_present(queries: Sequence[str], name: str, scored_from: str | None) -> str:
    where = scored_from or "the similarities"
    if len(queries) == 1:
        return f"the {name} query '{queries[0]}' is not in {where}"
    return f"none of the {len(queries)} {name} queries is in {where} (looked for {listing(queries)})"
