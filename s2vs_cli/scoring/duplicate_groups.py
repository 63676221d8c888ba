"""What `s2vs dedup` makes of its scored pairs: each pair's relation, groups of duplicates and their keepers.

Pure functions on numbers and ids (jobs/dedup.py scores and locates the pairs):
- a pair's relation follows from how much of each video its copied parts cover (`pair_relation`): `duplicate`
  when they cover at least `duplicate_coverage` of both, `contains` when of one only (the other video holds
  it: an excerpt), `overlap` when of neither (a part of each);
- groups are the connected components of duplicate pairs (union-find, `duplicate_groups`); a `contains` or
  `overlap` pair never merges two groups, it links them (`DuplicateGroup.links`). A pair a person marked
  `copy` (storage/decisions.py) joins its videos as duplicates whatever its relation, score or verdict. Every
  video of a listed pair is in exactly one group, a video that only contains or overlaps others in a group of
  its own;
- each group suggests a keeper by a rule (`choose_keeper`): resolution (width x height, then duration), duration,
  size (of the file) or first (in the collection's order); ties then go to the higher bitrate (a re-encode at the
  same size and length is most often the worse copy: keeping it would suggest deleting the original), then to the
  first in that order.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..storage.decisions import COPY  # a verdict's word for a copy is a person's decision's too

DUPLICATE, CONTAINS, OVERLAP = "duplicate", "contains", "overlap"
RELATIONS = (DUPLICATE, CONTAINS, OVERLAP)


@dataclass(frozen=True)
class PairMatch:
    """One copied part of a pair, in seconds on both videos, and its score (the frame map's mean along it)."""

    a_start: float
    a_end: float
    b_start: float
    b_end: float
    score: float

    def as_dict(self) -> dict[str, float]:
        return {"a_start": self.a_start, "a_end": self.a_end, "b_start": self.b_start, "b_end": self.b_end,
                "score": self.score}


@dataclass
class DuplicatePair:
    """Two videos that share copied content (`a` before `b` in the collection's order), scored both ways."""

    a: str
    b: str
    similarity: float                   # the mean of both directions (ViSiL is asymmetric)
    directions: tuple[float, float]     # (a as query against b, b as query against a)
    matches: list[PairMatch]            # every copied part, best first
    coverage: tuple[float, float]       # share of a's and of b's sampled duration inside the matches
    relation: str                       # duplicate, contains or overlap (pair_relation)
    container: str | None = None        # contains: the video that holds the other
    verdict: str | None = None          # with thresholds: "copy" or "not a copy" (of `similarity`)
    decision: str | None = None         # a person's: "copy" (listed and grouped whatever the rest says) or None

    @property
    def decided(self) -> bool:
        """Whether the pair joins groups: marked copy, or without thresholds, or with them judged a copy."""
        return self.decision == COPY or self.verdict is None or self.verdict == COPY

    @property
    def joins(self) -> bool:
        """Whether the pair makes its videos one group: a decided duplicate, or marked copy by a person."""
        return self.decided and (self.relation == DUPLICATE or self.decision == COPY)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ids, similarity (and both directions), relation (and container), coverage, matches, verdict."""
        summary = {"a": self.a, "b": self.b, "similarity": self.similarity,
                   "directions": {"a_to_b": self.directions[0], "b_to_a": self.directions[1]},
                   "relation": self.relation}
        if self.container is not None:
            summary["container"] = self.container
        summary |= {"coverage": {"a": self.coverage[0], "b": self.coverage[1]},
                    "matches": [m.as_dict() for m in self.matches]}
        if self.verdict is not None:
            summary["verdict"] = self.verdict
        return summary | {"decision": self.decision}


def pair_relation(coverage_a: float, coverage_b: float, duplicate_coverage: float) -> tuple[str, str | None]:
    """(relation, container side: 'a', 'b' or None) of a pair whose copied parts cover these shares of each video."""
    a_covered, b_covered = coverage_a >= duplicate_coverage, coverage_b >= duplicate_coverage
    if a_covered and b_covered:
        return DUPLICATE, None
    if a_covered:  # a lies (almost) whole inside the copied parts: b holds it
        return CONTAINS, "b"
    if b_covered:
        return CONTAINS, "a"
    return OVERLAP, None


@dataclass
class DuplicateGroup:
    """Videos that duplicate each other (or one video linked to a group), the suggested keeper, their facts."""

    members: list[str]                  # in the collection's order
    keep: str
    facts: dict[str, dict] = field(default_factory=dict)   # id -> what its source file says (jobs/dedup.py)
    links: list[int] = field(default_factory=list)         # indices of the groups linked by contains/overlap

    @property
    def removable(self) -> list[str]:
        """The members other than the keeper."""
        return [member for member in self.members if member != self.keep]

    def as_dict(self) -> dict[str, Any]:
        return {"members": list(self.members), "keep": self.keep, "facts": dict(self.facts),
                "links": list(self.links)}


def duplicate_groups(order: Sequence[str], pairs: Sequence[DuplicatePair]) -> tuple[list[list[str]], list[list[int]]]:
    """(groups, links): the connected components of the decided duplicate pairs, with every other video of a
    decided pair as a group of its own, in the order of their first member; and for each group the indices of
    the groups its contains/overlap pairs link it to. Pairs not decided (judged not a copy) are left out."""
    position = {video: n for n, video in enumerate(order)}
    parent = {video: video for pair in pairs if pair.decided for video in (pair.a, pair.b)}

    def root(video: str) -> str:
        while parent[video] != video:
            parent[video] = parent[parent[video]]  # path halving keeps the trees flat
            video = parent[video]
        return video

    for pair in pairs:
        if pair.joins:
            first, second = sorted((root(pair.a), root(pair.b)), key=position.__getitem__)
            parent[second] = first  # the root is always the component's first video
    members: dict[str, list[str]] = {}
    for video in sorted(parent, key=position.__getitem__):
        members.setdefault(root(video), []).append(video)
    groups = list(members.values())  # roots come in order of their first member
    index = {video: n for n, group in enumerate(groups) for video in group}
    links: list[set[int]] = [set() for _ in groups]
    for pair in pairs:
        if pair.decided and not pair.joins and index[pair.a] != index[pair.b]:
            links[index[pair.a]].add(index[pair.b])
            links[index[pair.b]].add(index[pair.a])
    return groups, [sorted(linked) for linked in links]


def _number(facts: Mapping[str, Any], key: str) -> float:
    """A fact as a number to rank by; absent (None, missing) ranks below any value."""
    value = facts.get(key)
    return float("-inf") if value is None else float(value)


def _pixels(facts: Mapping[str, Any]) -> float:
    return _number(facts, "width") * _number(facts, "height") if facts.get("width") and facts.get("height") \
        else float("-inf")


_RANKS: dict[str, Callable[[Mapping[str, Any]], tuple]] = {
    "resolution": lambda f: (_pixels(f), _number(f, "duration"), _number(f, "bitrate")),
    "duration": lambda f: (_number(f, "duration"), _pixels(f), _number(f, "bitrate")),
    "size": lambda f: (_number(f, "size"), _pixels(f), _number(f, "duration"), _number(f, "bitrate")),
    "first": lambda f: (),
}


def choose_keeper(members: Sequence[str], facts: Mapping[str, Mapping[str, Any]], rule: str,
                  chosen: Collection[str] = ()) -> str:
    """The member to keep: the first a person `chosen` to keep, else by `rule` (config.KEEP_RULES) the highest by
    its facts (missing ones rank lowest), ties to the higher bitrate, then to the first member (`members` come in
    the collection's order)."""
    for member in members:
        if member in chosen:
            return member
    rank = _RANKS[rule]
    best = max(range(len(members)), key=lambda n: (rank(facts.get(members[n], {})), -n))
    return members[best]
