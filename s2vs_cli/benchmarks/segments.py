"""Segment metrics: how well reported matching time ranges overlap the annotated ones.

A segment is (query start, query end, target start, target end) in seconds, [start, end) on each video.
Library code: numpy and the standard library.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Where two videos match, in seconds: (query start, query end, target start, target end). The frame ranges
# the localiser finds are scoring.localization.Segment; this is their (or an annotation's) time span.
SegmentBounds = tuple[float, float, float, float]


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


def segment_precision_recall(predicted: Mapping[tuple[str, str], Sequence[SegmentBounds]],
                             annotated: Mapping[tuple[str, str], Sequence[SegmentBounds]]) -> dict[str, float]:
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
