"""`s2vs dedup --previous duplicates.json`: after videos were added to the store, only the pairs that touch them
are looked for and scored; the earlier run's pairs among the other videos are reused as they are.

A result records what an increment needs (`collection` in its JSON): the store's identity and, for every video,
its frame count and the CRC-32 of its indexed frame descriptors (its content), and a digest of the frames it kept
for matching: those the self-join's frame-level stage kept (`kept`) and, for the videos the pairs' stage read,
those it scored (`scored`). An earlier result is refused, in one line naming the difference, when a setting that
shapes pairs differs, when the store's identity differs, or when one of its videos is gone or changed.

Touched videos: the new ones (in the store, not in the earlier collection) and the earlier ones whose kept
frames changed: the common frames (boilerplate) are fitted on the whole collection (the fit kept beside the index
is extended with the new videos: scoring/common_frames_index.py), and a fit that leaves out other frames of a
video changes its pairs, so they are looked for and scored again. The frames the pairs' stage kept are checked
by reading the video only when the common frames changed (`common`: their digest, recorded too). Pairs between
untouched videos are reused; every pair with a touched video comes from the self-join (scoring/self_join.py:
the touched videos' segments against all, the others' against theirs only). Groups are made anew; a grouped
video's facts are the earlier result's while still true (jobs/dedup.py).
"""
from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..scoring.common_frames import CommonFrames
from ..scoring.duplicate_groups import DuplicatePair, PairMatch
from ..scoring.join_lists import JoinLists
from ..storage.decisions import NOT_COPY, Decisions, DecisionsError, decisions_from
from ..storage.index import VideoIndex
from .dedup_collection import Collection

UNCHECKED_SETTINGS = ("stores", "keep", "decisions")  # a moved file, another keeper rule, decisions: applied anew


def mask_digest(mask: np.ndarray) -> int:
    """CRC-32 of a bool mask's packed bits: which of a video's frames were kept."""
    return zlib.crc32(np.packbits(np.asarray(mask, dtype=bool), bitorder="little").tobytes())


class Increment:
    """The record of the collection a run scored, and, given an earlier run's, what this run needs to score."""

    def __init__(self, previous: str | None = None, exhaustive: bool = False):
        if previous is not None and exhaustive:
            raise ConfigError("previous needs the self-join: an --exhaustive run scores every pair anyway")
        self.path = previous
        self.earlier = _read_previous(previous) if previous is not None else None
        self.pairs = _earlier_pairs(previous, self.earlier["pairs"]) if self.earlier is not None else []
        self.videos: dict[str, dict[str, Any]] = {}  # this run's record of each video
        self.touched: set[str] = set()
        self.common: int | None = None  # common_digest of this run's common frames
        self.unmarked: set[str] = set()  # videos of pairs marked not_copy for the earlier run and no longer
        self.join: str | None = None  # join_digest of this run's self-join lists
        self.rejoin = False  # the lists changed since the earlier run: every video's pairs are looked for again
        self._carried: list[DuplicatePair] = []  # with `rejoin`: earlier pairs found again between unchanged videos

    @property
    def name(self) -> str:
        """The earlier result's file name, as the refusals name it."""
        return Path(self.path).name if self.path is not None else ""

    def check_settings(self, settings: dict[str, Any], identity: dict[str, Any] | None) -> None:
        """Refuse an earlier result made with other settings that shape pairs, or from another extractor."""
        if self.earlier is None:
            return
        before = self.earlier["settings"]
        for key, value in settings.items():
            if key not in UNCHECKED_SETTINGS and before.get(key) != _as_json(value):
                raise ConfigError(f"{self.name} was made with {key} {_shown(before.get(key))} (this run: "
                                  f"{_shown(value)}): run dedup without --previous, or with its settings")
        recorded = self.earlier["collection"].get("identity")
        if recorded != _as_json(identity):
            difference = next((f"{key} {_shown((recorded or {}).get(key))} (this store: {_shown(value)})"
                               for key, value in (identity or {}).items() if (recorded or {}).get(key) != value),
                              f"{_shown(recorded)} (this store: {_shown(identity)})")
            raise ConfigError(f"{self.name} was made from features of another extractor: {difference}")

    def touching(self, index: VideoIndex, collection: Collection) -> Callable[[np.ndarray | None], np.ndarray | None]:
        """The self-join's hook: records each video's content and kept frames, and, with an earlier result,
        checks its videos and gives the touched ones (None: a full run, every pair)."""
        def touched(kept: np.ndarray | None) -> np.ndarray | None:
            self.common = common_digest(collection.common)
            self._record(index, kept)
            if self.earlier is None:
                return None
            self._check_content()
            self.touched = self._touched(collection)
            # other lists find other pairs, among the earlier videos too: every video's are looked for again
            self.rejoin = self.earlier["collection"].get("join") != self.join
            return np.array([self.rejoin or video in self.touched for video in index.catalogue.ids], dtype=bool)
        return touched

    def apply_decisions(self, decisions: Decisions) -> None:
        """Today's decisions: a pair the earlier run was told was not a copy, and today's file no longer says so,
        was never looked for; its two videos count as touched, so their pairs are looked for as a full run would."""
        if self.earlier is None or self.earlier.get("decisions") is None:
            return
        try:
            given = decisions_from(self.earlier["decisions"], f"{self.name}: decisions")
        except DecisionsError as error:
            raise ConfigError(f"previous: {error}") from None
        for a, b in given.pairs(NOT_COPY):
            if decisions.label(a, b) != NOT_COPY:
                self.unmarked |= {a, b}

    def reused(self) -> list[DuplicatePair]:
        """The earlier result's pairs between untouched videos, as they were (with `rejoin`: those the self-join
        found again, `to_score`)."""
        return self._carried if self.rejoin else self._untouched_pairs()

    def to_score(self, candidates: list[tuple[int, int]], ids: Sequence[str]) -> list[tuple[int, int]]:
        """The candidate pairs (positions in `ids`) stage 3 scores: with `rejoin` (every pair looked for again),
        those that are not an earlier pair between untouched videos, which is reused as it was; else all."""
        if not self.rejoin:
            return candidates
        earlier = {frozenset((pair.a, pair.b)): pair for pair in self._untouched_pairs()}
        scored, self._carried = [], []
        for i, j in candidates:
            pair = earlier.get(frozenset((ids[i], ids[j])))
            (scored.append((i, j)) if pair is None else self._carried.append(pair))
        return scored

    def record(self, collection: Collection, scored: set[str]) -> dict[str, Any]:
        """The `collection` object of the result's JSON: the store's identity and each video's record, the frames
        the pairs' stage kept included (this run's reading, else the earlier run's for an untouched video).
        `scored`: the videos of this run's candidate pairs (under torchrun another rank may have read them)."""
        earlier = self.earlier["collection"]["videos"] if self.earlier is not None else {}
        carried = {video for pair in self._carried for video in (pair.a, pair.b)}
        videos = {}
        for video, entry in self.videos.items():
            if video in scored and collection.common is not None and collection.kept(video) is None:
                collection.features(video)  # scored by another rank: which frames it keeps, read here too
            kept = collection.kept(video)
            digest = mask_digest(kept) if kept is not None else \
                None if video in self.touched or (self.rejoin and video not in carried) else \
                earlier.get(video, {}).get("scored")
            videos[video] = entry | {"scored": digest}
        identity = collection.identity
        return {"identity": None if identity is None else _as_json(identity.as_attrs()), "common": self.common,
                "join": self.join, "videos": videos}

    def earlier_facts(self) -> dict[str, dict[str, Any]]:
        """Each grouped video's facts as the earlier result read them (jobs/dedup.py reuses those still true)."""
        if self.earlier is None:
            return {}
        groups = self.earlier.get("groups")
        return {video: facts for group in (groups if isinstance(groups, list) else []) if isinstance(group, dict)
                for video, facts in (group.get("facts") or {}).items() if isinstance(facts, dict)}

    def stages(self, reused: int) -> dict[str, Any]:
        """What the increment did: its earlier file, new and touched videos, pairs reused."""
        earlier = self.earlier["collection"]["videos"]
        return {"previous": str(self.path), "new": sum(video not in earlier for video in self.videos),
                "touched": len(self.touched), "reused": reused} | ({"rejoined": True} if self.rejoin else {})

    def _untouched_pairs(self) -> list[DuplicatePair]:
        """The earlier result's pairs between untouched videos."""
        return [pair for pair in self.pairs if pair.a not in self.touched and pair.b not in self.touched]

    def _record(self, index: VideoIndex, kept: np.ndarray | None) -> None:
        """Each indexed video's frames, content CRC and kept-frames digest (None: every frame kept)."""
        offsets, crcs = index.frames.offsets, index.frames.crcs
        for number, video in enumerate(index.catalogue.ids):
            start, end = int(offsets[number]), int(offsets[number + 1])
            self.videos[video] = {"frames": end - start, "crc": int(crcs[number]),
                                  "kept": None if kept is None else mask_digest(kept[start:end])}

    def _check_content(self) -> None:
        """Refuse an earlier result whose videos are not all here as they were."""
        for video, entry in self.earlier["collection"]["videos"].items():
            now = self.videos.get(video)
            if now is None:
                raise ConfigError(f"'{video}' of {self.name} is no longer in the store: run dedup without --previous")
            if (now["frames"], now["crc"]) != (entry["frames"], entry["crc"]):
                raise ConfigError(f"'{video}' changed since {self.name} (its features differ): run dedup without "
                                  "--previous")

    def _touched(self, collection: Collection) -> set[str]:
        """New videos, and earlier ones whose kept frames changed (the self-join's, or the pairs' stage's)."""
        earlier = self.earlier["collection"]["videos"]
        touched = {video for video in self.videos if video not in earlier} | (self.unmarked & set(self.videos))
        # the same common frames (and each video's features, checked): the frames stage 3 keeps are the same
        same_rule = self.common is not None and self.earlier["collection"].get("common") == self.common
        for video, entry in earlier.items():
            if entry["kept"] != self.videos[video]["kept"]:
                touched.add(video)
            elif entry.get("scored") is not None and not same_rule:
                collection.features(video)  # reads which frames it keeps now
                kept = collection.kept(video)
                if kept is None or mask_digest(kept) != entry["scored"]:
                    touched.add(video)
        return touched


def common_digest(common: CommonFrames | None) -> int | None:
    """CRC-32 of what decides the frames stage 3 keeps of a video: the common frames' direction, prototypes (in any
    order) and thresholds (None: every frame kept)."""
    if common is None:
        return None
    crc = zlib.crc32(np.ascontiguousarray(common.direction, dtype="<f4").tobytes())
    rows = sorted(zlib.crc32(row.tobytes()) for row in np.ascontiguousarray(common.prototypes, dtype="<f4"))
    crc = zlib.crc32(np.asarray(rows, dtype="<u4").tobytes(), crc)
    return zlib.crc32(json.dumps([common.threshold, common.low_information_threshold]).encode(), crc)


def join_digest(lists: JoinLists | None) -> str:
    """What says which pairs the self-join can find: "exact" (a whole scan), else the lists' count and CRC-32."""
    if lists is None:
        return "exact"
    return f"{len(lists.centroids)} lists, {zlib.crc32(np.ascontiguousarray(lists.centroids, dtype='<f4').tobytes())}"


def pair_from_dict(pair: dict[str, Any]) -> DuplicatePair:
    """A listed pair as an earlier result's JSON holds it (DuplicatePair.as_dict), keys it does not know ignored."""
    return DuplicatePair(pair["a"], pair["b"], pair["similarity"],
                         (pair["directions"]["a_to_b"], pair["directions"]["b_to_a"]),
                         [PairMatch(m["a_start"], m["a_end"], m["b_start"], m["b_end"], m["score"])
                          for m in pair["matches"]],
                         (pair["coverage"]["a"], pair["coverage"]["b"]), pair["relation"],
                         container=pair.get("container"), verdict=pair.get("verdict"))


def _read_previous(path: str) -> dict[str, Any]:
    """An earlier result's JSON, with what an increment needs; one line naming what is wrong otherwise."""
    name = Path(path).name
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"previous: {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"previous: {path} is not a dedup result ({error})") from None
    if not isinstance(data, dict) or not {"pairs", "settings"} <= set(data):
        raise ConfigError(f"previous: {path} is not a dedup result (no pairs and settings)")
    if not isinstance(data.get("collection"), dict) or not isinstance(data["collection"].get("videos"), dict):
        raise ConfigError(f"previous: {name} records no collection (made with --exhaustive, or by an earlier "
                          "s2vs): run dedup without --previous")
    for video, entry in data["collection"]["videos"].items():
        if not isinstance(entry, dict) or not {"frames", "crc", "kept"} <= set(entry):
            raise ConfigError(f"previous: {name}: collection.videos['{video}'] needs frames, crc and kept")
    return data


def _earlier_pairs(path: str, pairs: Any) -> list[DuplicatePair]:
    """An earlier result's listed pairs; one line naming the first that is not one."""
    read = []
    for number, pair in enumerate(pairs if isinstance(pairs, list) else [pairs]):
        try:
            read.append(pair_from_dict(pair))
        except (KeyError, TypeError, AttributeError, IndexError):
            raise ConfigError(f"previous: {Path(path).name}: pairs[{number}] is not a pair of a dedup result (a, b, "
                              "similarity, directions, matches, coverage, relation)") from None
    return read


def _as_json(value: Any) -> Any:
    """A value as it reads back from JSON (tuples as lists), for comparing with an earlier result's."""
    return json.loads(json.dumps(value))


def _shown(value: Any) -> str:
    """A setting's value as a refusal shows it."""
    return json.dumps(value)
