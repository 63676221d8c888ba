"""Where two videos match: the best-scoring monotonic path on a frame-to-frame similarity map.

A copied excerpt shows up as a (near-)diagonal ridge of high similarity. Cells are scored relative to
the map's own background (its median) and peak, and a local alignment (Smith-Waterman style dynamic
programming) finds the monotonic path with the highest total score. Steps (1,1), (1,2) and (2,1) let the
copy play at half to double speed. The path's first and last cells give the two time ranges.

Every copied part (a compilation of excerpts, a clip shown twice) is found the same way, one after another:
once a path is found its rectangle is blocked and the alignment runs again, so the segments of one pair
never overlap in the (query time, target time) plane (Waterman-Eggert style declumping).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Where a cell counts as matching: this far from the background (median) towards the peak (max).
MATCH_LEVEL = 0.5
# Cost of an off-diagonal step (speed change), as a fraction of the peak-to-background range.
SPEED_CHANGE_COST = 0.25

# Moves into a cell, by index: start a path, or come from (i-1, j-1), (i-1, j-2) or (i-2, j-1).
_START = 0
_STEP_BACK = {1: (1, 1), 2: (1, 2), 3: (2, 1)}


@dataclass(frozen=True)
class Segment:
    """Best-matching frame ranges, inclusive, on a [Tq, Tt] map, and the path's score."""

    query_first: int
    query_last: int
    target_first: int
    target_last: int
    score: float                       # evidence along the path (see match_scores), what ranks segments
    path: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)  # its (row, column) cells

    def mean_similarity(self, similarity: np.ndarray) -> float:
        """The map's mean value along the path: the segment's score in the map's own units."""
        rows, columns = zip(*self.path)
        return float(np.mean(np.asarray(similarity)[list(rows), list(columns)]))


@dataclass(frozen=True)
class SegmentTimes:
    """A matching segment in seconds: [start, end) in the query and in the target."""

    query_start: float
    query_end: float
    target_start: float
    target_end: float

    def as_dict(self) -> dict[str, float]:
        return {"query_start": self.query_start, "query_end": self.query_end,
                "target_start": self.target_start, "target_end": self.target_end}


@dataclass(frozen=True)
class Match:
    """One copied part: where it is in both videos (seconds) and its score, the map's mean along it."""

    times: SegmentTimes
    score: float

    def as_dict(self) -> dict[str, float]:
        return self.times.as_dict() | {"score": self.score}


def match_scores(similarity: np.ndarray) -> np.ndarray:
    """Per-cell evidence of a match: > 0 above the midpoint between background and peak, in peak units."""
    sim = np.asarray(similarity, dtype=np.float32)
    # The median of an even sample of a million cells is as good a background level and much cheaper.
    sample = sim.ravel()[::max(1, sim.size // 1_000_000)]
    background, peak = float(np.median(sample)), float(sim.max())
    spread = peak - background
    if spread <= 1e-9:  # a flat map: every cell is as good as any other
        return np.ones_like(sim)
    return (sim - background) / np.float32(spread) - np.float32(MATCH_LEVEL)


# Every copied part: at most this many segments per pair, and alignments run at most this many times per
# segment reported (a path that overlaps a found one is blocked and the search goes on).
MAX_SEGMENTS = 10
_TRIES_PER_SEGMENT = 3


def best_segment(similarity: np.ndarray) -> Segment:
    """The highest-scoring monotonic path on a [Tq, Tt] map (rows: query frames, columns: target frames)."""
    return _best_path(match_scores(similarity))


def all_segments(similarity: np.ndarray, min_frames: int = 2, min_evidence: float = 0.0,
                 max_segments: int = MAX_SEGMENTS) -> list[Segment]:
    """Every matching segment of a [Tq, Tt] map, best first, none overlapping another in the plane.

    A segment shorter than `min_frames` on either axis, or whose path score (evidence above the map's
    midpoint between background and peak, in peak units) is at most `min_evidence`, is not reported.
    """
    scores = match_scores(similarity)
    blocked = np.zeros(scores.shape, dtype=bool)
    found: list[Segment] = []
    for _ in range(_TRIES_PER_SEGMENT * max_segments):
        if len(found) == max_segments or blocked.all():
            break
        segment = _best_path(scores, blocked)
        if not segment.score > min_evidence:
            break
        if min(segment.query_last - segment.query_first, segment.target_last - segment.target_first) + 1 < min_frames:
            break  # the strongest path left is too short: what remains is scattered cells, not copies
        if not any(_overlap(segment, other) for other in found):
            found.append(segment)
        blocked[segment.query_first:segment.query_last + 1, segment.target_first:segment.target_last + 1] = True
    return sorted(found, key=lambda s: -s.score)


def _overlap(a: Segment, b: Segment) -> bool:
    return (a.query_first <= b.query_last and b.query_first <= a.query_last
            and a.target_first <= b.target_last and b.target_first <= a.target_last)


def _best_path(scores: np.ndarray, blocked: np.ndarray | None = None) -> Segment:
    """Local alignment on per-cell evidence; no path enters a `blocked` cell."""
    tq, tt = scores.shape
    moves = np.zeros((tq, tt), dtype=np.uint8)
    row_before_previous = np.full(tt + 2, -np.inf, dtype=np.float32)  # index j + 2 = column j
    previous = np.full(tt + 2, -np.inf, dtype=np.float32)
    best_score, best_cell = -np.inf, (0, 0)
    for i in range(tq):
        candidates = np.stack([
            np.zeros(tt, dtype=np.float32),                # start a new path here
            previous[1:tt + 1],                            # from (i-1, j-1)
            previous[0:tt] - SPEED_CHANGE_COST,            # from (i-1, j-2): target runs faster
            row_before_previous[1:tt + 1] - SPEED_CHANGE_COST,  # from (i-2, j-1): query runs faster
        ])
        moves[i] = candidates.argmax(0)
        row = scores[i] if blocked is None else np.where(blocked[i], np.float32(-np.inf), scores[i])
        best = row + candidates.max(0)
        j = int(best.argmax())
        if best[j] > best_score:
            best_score, best_cell = float(best[j]), (i, j)
        row_before_previous, previous = previous, np.concatenate([previous[:2], best])
    i, j = last = best_cell
    path = [last]
    while moves[i, j] != _START:
        di, dj = _STEP_BACK[int(moves[i, j])]
        i, j = i - di, j - dj
        path.append((i, j))
    return Segment(query_first=i, query_last=last[0], target_first=j, target_last=last[1], score=best_score,
                   path=tuple(path[::-1]))


def segment_times(segment: Segment, query_times: np.ndarray, target_times: np.ndarray,
                  frame_duration: float) -> SegmentTimes:
    """Seconds covered by a segment; each sampled frame stands for `frame_duration` seconds from its time.

    Works on repeated short videos too (times may repeat): the range spans the frames' times.
    """
    q = np.asarray(query_times)[segment.query_first:segment.query_last + 1]
    t = np.asarray(target_times)[segment.target_first:segment.target_last + 1]
    return SegmentTimes(query_start=float(q.min()), query_end=float(q.max() + frame_duration),
                        target_start=float(t.min()), target_end=float(t.max() + frame_duration))


def locate_matches(similarity: np.ndarray, query_times: np.ndarray, target_times: np.ndarray, fps: float,
                   min_seconds: float = 2.0, max_segments: int = MAX_SEGMENTS) -> list[Match]:
    """Every copied part of a [Tq, Tt] map in seconds, best first; parts shorter than `min_seconds` (at
    `fps` frames a second) on either axis are left out."""
    min_frames = max(1, round(min_seconds * fps))
    return [Match(segment_times(s, query_times, target_times, 1.0 / fps), s.mean_similarity(similarity))
            for s in all_segments(similarity, min_frames=min_frames, max_segments=max_segments)]
