"""How a collection's CommonFrames are found (the rules are in common_frames.py), streaming over its frame
descriptors with memory of 4·TABLES + 4 bytes a frame and the candidates, and extended as videos are appended.

1. Each frame gets TABLES keys of `key_bits` signs of seeded random projections (on planes with the mean
   direction projected out, which gives the signs of the centred vectors without centring a frame); a key
   held by frames of MIN_VIDEOS videos or more is a crowded bucket, and its first frame a candidate.
2. Each frame of a crowded bucket is compared with its bucket's candidate (centred cosines): the distinct
   videos within THRESHOLD are counted, and so is each video's share of frames near some candidate. A
   candidate of MIN_VIDEOS videos whose median video has at most MAX_SHARE of its frames near candidates is
   a prototype (boilerplate of otherwise unrelated videos; a video copied into many others is content).
Frames found near a prototype in pass 2 are recorded (`CommonFrames.fitted_common`): search's frame-level
stage and its stored candidates use them instead of a product with the prototypes.

A fit is a FitState, and `extend` adds the frames of videos appended after those it holds: they are hashed,
the buckets they fall in recounted (a bucket's videos only grow, so a crowded bucket stays crowded and keeps its
candidate), they are compared with their crowded buckets' candidates, and the earlier frames of the buckets
crowded only now (fewer than MIN_VIDEOS videos' worth each) are read again and compared. Keys are worked out
HASH_ROWS frames at a time on a fixed grid of the collection's frames (the last piece padded) and cosines row
by row, so no result depends on how the frames were batched: a fit extended piece by piece equals one made on
all at once, for the same mean direction and key bits (common_frames_index.py keeps those within an epoch).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..progress import SILENT, Progress
from ..storage.index_prefix import epoch
from .common_frames import MIN_VIDEOS, THRESHOLD, CommonFrames, float32_vectors, centred, mean_direction

TABLES = 8                # hash tables of random-projection keys
HASH_ROWS = 8192          # frames hashed at a time (a fixed grid over the collection's frames)
MAX_PROTOTYPES = 65536    # the most prototypes kept (the most widespread first)
MAX_SHARE = 0.5           # boilerplate's videos are otherwise unrelated: at most this share of their frames common
LOOKUP_BITS = 26          # keys of at most this many bits are looked up in a table of 2^bits flags, longer searched
SEED = 0

Blocks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]  # (descriptors [n, D], video numbers [n]) pieces
RowReader = Callable[[np.ndarray], np.ndarray]  # frame numbers -> their descriptors [n, D]


def fit_common_frames(descriptors: np.ndarray, video_of: np.ndarray, min_videos: int = MIN_VIDEOS,
                      threshold: float = THRESHOLD, progress: Progress = SILENT) -> CommonFrames:
    """CommonFrames fitted on frame descriptors held in memory: [N, D] and each frame's video number [N]."""
    descriptors, video_of = np.asarray(descriptors), np.asarray(video_of, dtype=np.int64)
    step = 1 << 16

    def blocks():
        for start in range(0, len(descriptors), step):
            yield descriptors[start:start + step], video_of[start:start + step]

    return fit_streaming(blocks, mean_direction(descriptors) if len(descriptors) else None, len(descriptors),
                         min_videos, threshold, progress)


def key_bits(frames: int, min_videos: int) -> int:
    """Bits of a hash key for a collection of `frames` (the same within its epoch): enough that unrelated frames
    share a key with fewer than a quarter of MIN_VIDEOS others on average (uniform keys), so a crowded bucket is
    most likely near-duplicates."""
    return int(min(30, max(8, math.ceil(math.log2((1 << epoch(frames)) * 4 / max(min_videos, 1))))))


def fit_streaming(blocks: Blocks, direction: np.ndarray | None, frames: int, min_videos: int = MIN_VIDEOS,
                  threshold: float = THRESHOLD, progress: Progress = SILENT) -> CommonFrames:
    """Fit on `frames` descriptors read twice through `blocks()` (in the same order each time), `direction`
    projected out."""
    if direction is None:
        return CommonFrames(np.zeros(0, np.float32), np.zeros((0, 0), np.float32), np.zeros(0, np.int64),
                            threshold, min_videos)
    state = FitState.empty(direction, key_bits(frames, min_videos), min_videos, threshold)
    state.extend(blocks, 0, frames, None, progress)
    return state.model()


@dataclass
class FitState:
    """What a fit found, kept so that appended videos extend it (module docstring)."""

    direction: np.ndarray   # float32 [D]
    bits: int
    min_videos: int
    threshold: float
    keys: np.ndarray        # uint32 [frames, TABLES]
    video_of: np.ndarray    # int32 [frames]: each frame's video number
    crowded: list[tuple[np.ndarray, np.ndarray]]  # per table: its crowded keys (sorted), each one's first frame
    firsts: np.ndarray      # int64 [C]: the candidates' frame numbers, sorted
    vectors: np.ndarray     # float32 [C, D]: the candidates, centred, where `known`
    near: np.ndarray        # int64 [M, 3]: (candidate frame, video, frame) within threshold, each once, sorted
    known: np.ndarray | None = None  # bool [C]: which vectors are worked out (None: all); others are read when needed
    read_rows: RowReader | None = None  # reads earlier frames (the fit's collection's) when they are needed

    @classmethod
    def empty(cls, direction: np.ndarray, bits: int, min_videos: int = MIN_VIDEOS,
              threshold: float = THRESHOLD) -> FitState:
        """A fit of no frames yet."""
        direction = np.asarray(direction, dtype=np.float32)
        return cls(direction, bits, min_videos, threshold, np.zeros((0, TABLES), np.uint32), np.zeros(0, np.int32),
                   [(np.zeros(0, np.uint32), np.zeros(0, np.int64)) for _ in range(TABLES)], np.zeros(0, np.int64),
                   np.zeros((0, len(direction)), np.float32), np.zeros((0, 3), np.int64))

    @property
    def frames(self) -> int:
        return len(self.keys)

    def planes(self) -> np.ndarray:
        """The seeded random planes of the keys, with the direction projected out (float32 [D, TABLES·bits])."""
        planes = np.random.default_rng(SEED).standard_normal((len(self.direction), TABLES * self.bits))
        planes = planes.astype(np.float32)
        # A sign of a centred vector's projection is that of the raw vector on a plane with `direction` projected
        # out (norms change no sign): so hashing needs neither centring nor normalising.
        return planes - np.outer(self.direction, self.direction @ planes)

    def extend(self, blocks: Blocks, start: int, frames: int, read_rows: RowReader | None,
               progress: Progress = SILENT) -> None:
        """Add the frames after those held: `blocks()` gives the collection's frames from frame `start` (a video's
        first, at most the held frames rounded down to HASH_ROWS) to `frames`; `read_rows` reads earlier ones."""
        old = self.frames
        self.read_rows = read_rows or self.read_rows
        grid = old // HASH_ROWS * HASH_ROWS
        if start > grid:
            raise ValueError(f"extend needs the frames from {grid} on, given from {start}")
        progress.stage("common frames: hashing", frames - grid, unit="frames")
        keys, video_of = _hashed(blocks(), start, grid, self.planes(), self.bits, progress)
        self.keys = np.concatenate([self.keys[:grid], keys])
        self.video_of = np.concatenate([self.video_of[:grid], video_of.astype(np.int32)])
        if len(self.keys) != frames:
            raise ValueError(f"the blocks gave {len(self.keys)} frames, {frames} expected")
        earlier = self._recount(old)  # per table: the earlier frames of buckets crowded only now
        self._add_candidates()
        progress.stage("common frames: counting videos", frames - old, unit="frames")
        found = [self._earlier_near(earlier)] if old else []
        row = start
        for block, _ in blocks():  # pass 2: the new frames, compared with their crowded buckets' candidates
            skip = max(0, old - row)
            if skip < len(block):
                found.append(self._compare(np.arange(row + skip, row + len(block)), block[skip:]))
            row += len(block)
            progress.update(max(0, row - old))
        self.near = _unique_rows(np.concatenate([self.near, *found]))

    def model(self) -> CommonFrames:
        """The CommonFrames this fit finds."""
        candidate = np.searchsorted(self.firsts, self.near[:, 0])
        chosen, counts = _boilerplate(candidate, self.near, self.video_of, len(self.firsts), self.min_videos)
        chosen = chosen[np.argsort(-counts[chosen], kind="stable")][:MAX_PROTOTYPES]
        self._vectors_of(chosen)
        flagged = np.zeros(self.frames, dtype=bool)
        flagged[self.near[np.isin(candidate, chosen), 2]] = True
        return CommonFrames(self.direction, self.vectors[chosen], counts[chosen].astype(np.int64), self.threshold,
                            self.min_videos, fitted_common=np.packbits(flagged, bitorder="little"))

    def _recount(self, old: int) -> list[np.ndarray]:
        """Each table's crowded buckets with the new frames counted; returns per table the earlier frames of the
        buckets crowded only now."""
        earlier = []
        new_videos = self.video_of[old:].astype(np.uint64)
        for table, (crowded, firsts) in enumerate(self.crowded):
            column = self.keys[:, table]
            held, new_count = _distinct_videos(column[old:], new_videos)  # keys the new frames hold, their videos
            rows = np.flatnonzero(_member(column[:old], held, self.bits))  # earlier frames holding one of them
            before, old_count = _distinct_videos(column[rows], self.video_of[rows].astype(np.uint64))
            count = new_count.copy()
            count[np.searchsorted(held, before)] += old_count
            now = held[(count >= self.min_videos) & ~_member(held, crowded, 64)]  # crowded only now
            first = np.full(len(now), -1, dtype=np.int64)
            for where in (rows, np.arange(old, len(column))):  # the first frame holding each: earlier, else new
                holding = where[_member(column[where], now, self.bits)]
                keys, at = np.unique(column[holding], return_index=True)
                slot = np.searchsorted(now, keys)
                unset = first[slot] < 0
                first[slot[unset]] = holding[at][unset]
            order = np.argsort(np.concatenate([crowded, now]), kind="stable")
            self.crowded[table] = (np.concatenate([crowded, now])[order], np.concatenate([firsts, first])[order])
            earlier.append(rows[_member(column[rows], now, self.bits)])
        return earlier

    def _add_candidates(self) -> None:
        """The new crowded buckets' first frames as candidates: their vectors worked out when first needed (new
        frames' as pass 2 reaches them, before any frame is compared with them; earlier frames' read then)."""
        firsts = np.unique(np.concatenate([self.firsts, *(first for _, first in self.crowded)]))
        vectors = np.zeros((len(firsts), len(self.direction)), np.float32)
        known = np.zeros(len(firsts), dtype=bool)
        at = np.searchsorted(firsts, self.firsts)
        vectors[at] = self.vectors
        known[at] = True if self.known is None else self.known
        self.firsts, self.vectors, self.known = firsts, vectors, known

    def _vectors_of(self, candidates: np.ndarray) -> np.ndarray:
        """The vectors of candidates (their numbers), those not yet worked out read (earlier frames) first."""
        if self.known is not None:
            missing = candidates[~self.known[candidates]]
            if len(missing):
                missing = np.unique(missing)
                self.vectors[missing] = _centred_rows(self.read_rows(self.firsts[missing]), self.direction)
                self.known[missing] = True
        return self.vectors[candidates]

    def _earlier_near(self, earlier: list[np.ndarray]) -> np.ndarray:
        """The earlier frames of buckets crowded only now, compared with their candidates."""
        rows = np.unique(np.concatenate(earlier))
        if not len(rows):
            return np.zeros((0, 3), np.int64)
        return self._compare(rows, self.read_rows(rows), only=earlier)

    def _compare(self, rows: np.ndarray, descriptors: np.ndarray,
                 only: list[np.ndarray] | None = None) -> np.ndarray:
        """(candidate frame, video, frame) of the frames `rows` (descriptors given) within threshold of the
        candidate of a crowded bucket they are in (each table's `only` rows, when given)."""
        here = np.isin(self.firsts, rows)  # candidates among these frames
        needed = np.zeros(len(rows), dtype=bool)
        slots, members = [], []
        for table, (crowded, firsts) in enumerate(self.crowded):
            member = _member(self.keys[rows, table], crowded, self.bits)
            if only is not None:
                member &= np.isin(rows, only[table])
            slots.append(np.searchsorted(crowded, self.keys[rows[member], table]))
            members.append(member)
            needed |= member
        needed |= np.isin(rows, self.firsts[here])
        if not needed.any():  # most frames of a large collection are in no crowded bucket: none is centred
            return np.zeros((0, 3), np.int64)
        vectors = np.zeros((len(rows), len(self.direction)), np.float32)
        vectors[needed] = _centred_rows(descriptors[needed], self.direction)
        if here.any():  # candidates among these frames: their vectors, before any frame is compared with them
            self.vectors[here] = vectors[np.searchsorted(rows, self.firsts[here])]
            if self.known is not None:
                self.known[here] = True
        found = []
        for (_, firsts), slot, member in zip(self.crowded, slots, members):
            candidate = firsts[slot]
            near = np.einsum("nd,nd->n", vectors[member], self._vectors_of(np.searchsorted(self.firsts, candidate)))
            near = near >= self.threshold
            found.append(np.stack([candidate[near], self.video_of[rows[member][near]].astype(np.int64),
                                   rows[member][near]], 1))
        return np.concatenate(found)


def _hashed(blocks: Iterable[tuple[np.ndarray, np.ndarray]], start: int, grid: int, planes: np.ndarray,
            bits: int, progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """(keys uint32 [n, TABLES], video numbers [n]) of the frames from `grid` on (blocks start at `start` <= grid),
    hashed HASH_ROWS at a time on the grid, the last piece padded with zeros."""
    keys, videos, pending, row = [], [], [], start
    for block, video_of in blocks:
        skip = max(0, grid - row)
        row += len(block)
        if skip >= len(block):
            continue
        pending.append(float32_vectors(block[skip:]))
        videos.append(np.asarray(video_of[skip:]))
        if sum(map(len, pending)) >= HASH_ROWS:
            data = np.concatenate(pending)
            whole = len(data) // HASH_ROWS * HASH_ROWS
            keys += [_keys(data[at:at + HASH_ROWS], planes, bits) for at in range(0, whole, HASH_ROWS)]
            pending = [data[whole:]]
        progress.update(max(0, row - grid))
    rest = np.concatenate(pending) if pending else np.zeros((0, len(planes)), np.float32)
    if len(rest):
        padded = np.zeros((HASH_ROWS, rest.shape[1]), np.float32)
        padded[:len(rest)] = rest
        keys.append(_keys(padded, planes, bits)[:len(rest)])
    return (np.concatenate(keys) if keys else np.zeros((0, TABLES), np.uint32),
            np.concatenate(videos) if videos else np.zeros(0, np.int64))


def _keys(vectors: np.ndarray, planes: np.ndarray, bits: int) -> np.ndarray:
    """TABLES keys of `bits` signs of random projections each, of vectors [n, D] -> uint32 [n, TABLES]."""
    signs = (vectors @ planes > 0).reshape(len(vectors), TABLES, bits).astype(np.uint32)
    return (signs << np.arange(bits, dtype=np.uint32)).sum(2, dtype=np.uint32)


def _centred_rows(descriptors: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """`centred`, row by row (an einsum: no matrix product whose rounding could depend on how many rows)."""
    vectors = float32_vectors(descriptors)
    vectors = vectors - np.einsum("nd,d->n", vectors, direction)[:, None] * direction
    return centred(vectors, None)


def _distinct_videos(keys: np.ndarray, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct keys, sorted; how many distinct videos hold each) of frames' keys and video numbers."""
    pairs = np.sort((keys.astype(np.uint64) << np.uint64(32)) | videos)
    pairs = pairs[np.concatenate([[True], pairs[1:] != pairs[:-1]])] if len(pairs) else pairs
    held = (pairs >> np.uint64(32)).astype(np.uint32)
    starts = np.flatnonzero(np.concatenate([[True], held[1:] != held[:-1]])) if len(held) else np.zeros(0, np.int64)
    return held[starts], np.diff(np.append(starts, len(held)))


def _member(values: np.ndarray, keys: np.ndarray, bits: int) -> np.ndarray:
    """bool [len(values)]: which values are among the sorted `keys` (keys of `bits` bits)."""
    if not len(keys):
        return np.zeros(len(values), dtype=bool)
    if bits <= LOOKUP_BITS:
        table = np.zeros(1 << bits, dtype=bool)
        table[keys] = True
        return table[values]
    return keys[np.minimum(np.searchsorted(keys, values), len(keys) - 1)] == values


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """int64 [M, 3] rows each once, sorted."""
    return np.unique(rows, axis=0) if len(rows) else rows.reshape(0, 3)


def _boilerplate(candidate: np.ndarray, near: np.ndarray, video_of: np.ndarray, candidates: int,
                 min_videos: int) -> tuple[np.ndarray, np.ndarray]:
    """The candidates that are boilerplate (their numbers) and each candidate's distinct videos.

    One is when near-duplicates of it occur in `min_videos` videos or more, and those videos are otherwise
    unrelated: in the median of them, at most MAX_SHARE of the frames are near a candidate. A video copied in
    many others shares (nearly) all its frames with them, an intro a few seconds of each."""
    pairs = np.unique(np.stack([candidate, near[:, 1]], 1), axis=0) if len(near) else np.zeros((0, 2), np.int64)
    counts = np.bincount(pairs[:, 0], minlength=candidates) if len(pairs) else np.zeros(candidates, np.int64)
    frames_of = np.bincount(video_of).astype(np.float64)
    near_frames = np.bincount(video_of[np.unique(near[:, 2])], minlength=len(frames_of)) if len(near) else 0
    share = near_frames / np.maximum(frames_of, 1)  # [videos]: their frames near some candidate
    chosen = np.flatnonzero(counts >= min_videos)
    starts = np.searchsorted(pairs[:, 0], chosen)
    medians = np.array([np.median(share[pairs[start:start + counts[c], 1]]) for c, start in zip(chosen, starts)])
    return chosen[medians <= MAX_SHARE] if len(chosen) else chosen, counts
