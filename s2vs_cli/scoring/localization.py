"""Where two videos match: the best-scoring monotonic path on a frame-to-frame similarity map.

A copied excerpt shows up as a (near-)diagonal ridge of high similarity. Cells are scored relative to
the map's own background (its median) and peak, and a local alignment (Smith-Waterman style dynamic
programming) finds the monotonic path with the highest total score. Steps (1,1), (1,2) and (2,1) let the
copy play at half to double speed. The path's first and last cells give the two time ranges.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    score: float


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


def best_segment(similarity: np.ndarray) -> Segment:
    """The highest-scoring monotonic path on a [Tq, Tt] map (rows: query frames, columns: target frames)."""
    scores = match_scores(similarity)
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
        best = scores[i] + candidates.max(0)
        j = int(best.argmax())
        if best[j] > best_score:
            best_score, best_cell = float(best[j]), (i, j)
        row_before_previous, previous = previous, np.concatenate([previous[:2], best])
    i, j = last = best_cell
    while moves[i, j] != _START:
        di, dj = _STEP_BACK[int(moves[i, j])]
        i, j = i - di, j - dj
    return Segment(query_first=i, query_last=last[0], target_first=j, target_last=last[1], score=best_score)


def segment_times(segment: Segment, query_times: np.ndarray, target_times: np.ndarray,
                  frame_duration: float) -> SegmentTimes:
    """Seconds covered by a segment; each sampled frame stands for `frame_duration` seconds from its time.

    Works on repeated short videos too (times may repeat): the range spans the frames' times.
    """
    q = np.asarray(query_times)[segment.query_first:segment.query_last + 1]
    t = np.asarray(target_times)[segment.target_first:segment.target_last + 1]
    return SegmentTimes(query_start=float(q.min()), query_end=float(q.max() + frame_duration),
                        target_start=float(t.min()), target_end=float(t.max() + frame_duration))
