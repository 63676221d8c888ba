"""A person's decisions (storage/decisions.py) applied to what dedup and search score.

- dedup's candidate pairs: a pair marked `not_copy` is dropped before it is scored, so never listed; a pair
  marked `copy` is scored even when the self-join did not propose it (and then listed and grouped whatever
  its score: jobs/dedup.py, scoring/duplicate_groups.py);
- search's scores for a stored query: those of videos marked `not_copy` with it are dropped before the ranking
  (the top hits are others), those marked `copy` say so.
Each counts what it did; entries about videos not in the collection are kept in the file and only counted.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence

from ..storage.decisions import COPY, NOT_COPY, Decisions
from .duplicate_groups import DuplicatePair


def decided_candidates(candidates: Sequence[tuple[int, int]], ids: Sequence[str], scorable: Collection[int],
                       decisions: Decisions) -> tuple[list[tuple[int, int]], dict[str, int]]:
    """(the candidate pairs (positions i < j in `ids`) without those marked not_copy and with every pair marked
    copy of two `scorable` videos, sorted; what the decisions did)."""
    position = {video: n for n, video in enumerate(ids)}

    def positions(label: str) -> set[tuple[int, int]]:
        return {tuple(sorted((position[a], position[b]))) for a, b in decisions.pairs(label)
                if a in position and b in position}

    scorable = set(scorable)
    not_copy, copy = positions(NOT_COPY), {pair for pair in positions(COPY) if set(pair) <= scorable}
    kept = [pair for pair in candidates if pair not in not_copy]
    added = copy.difference(kept)
    missing = len(decisions.not_in(position))
    return sorted([*kept, *added]), {
        "applied": len(decisions.labels) + len(decisions.keep) - missing,
        "not_copy_dropped": len(candidates) - len(kept),  # proposed pairs never scored
        "copy_forced": len(copy),                          # listed and grouped whatever their score
        "copy_added": len(added),                          # of those, the self-join had not proposed
        "not_in_collection": missing}                      # entries naming a video the collection lacks


def decided_reused(pairs: list[DuplicatePair], scored: Collection[frozenset], decisions: Decisions
                   ) -> list[DuplicatePair]:
    """An earlier run's pairs kept by `dedup --previous`, under today's decisions: those marked not_copy dropped,
    those this run scored again (`scored`: {a, b} sets) left to their new score, those listed only because they
    were marked copy (no copied part) dropped once unmarked, the others labelled as marked."""
    kept = [pair for pair in pairs if frozenset((pair.a, pair.b)) not in scored
            and (decisions.label(pair.a, pair.b) == COPY or (pair.matches and decisions.label(pair.a, pair.b) is None))]
    for pair in kept:
        pair.decision = decisions.label(pair.a, pair.b)
    return kept


def decided_scores(query: str | None, scores: dict[str, float], decisions: Decisions | None
                   ) -> tuple[dict[str, float], dict[str, str], int]:
    """(a stored query's scores by video without those marked not_copy with it, {video: "copy"} of those marked
    copy, how many were dropped); a query that is not a stored id (None), or no decisions, changes nothing."""
    if query is None or decisions is None:
        return scores, {}, 0
    kept = {video: score for video, score in scores.items() if decisions.label(query, video) != NOT_COPY}
    return kept, {video: COPY for video in kept if decisions.label(query, video) == COPY}, len(scores) - len(kept)
