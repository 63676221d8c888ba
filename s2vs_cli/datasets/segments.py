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


def overlaps_in_plane(a: SegmentBounds, b: SegmentBounds) -> bool:
    """Whether two segments share some area of the (query time, target time) plane."""
    return min(a[1], b[1]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[2], b[2])


def pair_coverage(reported: Sequence[SegmentBounds], annotated: Sequence[SegmentBounds]) -> np.ndarray:
    """One pair's seconds, on the query axis (row 0) and the target axis (row 1): covered, reported, annotated.

    reported = the union of the reported segments' intervals; annotated = the union of the annotated ones';
    covered = reported ∩ the union of the annotated segments that some reported segment overlaps in the
    (query, target) plane (VSC 2022's matching-track rule: a part found at the right query time but the
    wrong target time covers no copy).
    """
    reached = [t for t in annotated if any(overlaps_in_plane(t, r) for r in reported)]
    coverage = np.zeros((2, 3))
    for axis, (start, end) in enumerate(((0, 1), (2, 3))):
        mine = [(s[start], s[end]) for s in reported]
        coverage[axis] = (overlap_time(mine, [(t[start], t[end]) for t in reached]), covered_time(mine),
                          covered_time((t[start], t[end]) for t in annotated))
    return coverage


def segment_precision_recall(predicted: Mapping[tuple[str, str], Sequence[SegmentBounds]],
                             annotated: Mapping[tuple[str, str], Sequence[SegmentBounds]]) -> dict[str, float]:
    """Segment-level precision, recall and F1 of every reported segment against every annotated one.

    The VSC 2022 matching track's measure with every prediction in (docs/METHOD.md §6.9): per (query,
    target) pair and time axis, `pair_coverage`; covered, reported and annotated seconds are summed over
    the pairs (a reported segment on a pair with no annotation only adds reported seconds), precision =
    covered / reported and recall = covered / annotated on each axis, and the two axes combine by geometric
    mean. Nothing reported gives precision 0. precision × recall is the matching track's µAP of the same
    predictions, all given one score.
    """
    totals = np.zeros((2, 3))  # axis (query, target) x (covered, reported, annotated)
    for pair in set(predicted) | set(annotated):
        totals += pair_coverage(predicted.get(pair, ()), annotated.get(pair, ()))
    overlap, reported, truth = totals.T
    precision = float(np.sqrt(np.prod(np.divide(overlap, reported, out=np.zeros(2), where=reported > 0))))
    recall = float(np.sqrt(np.prod(np.divide(overlap, truth, out=np.zeros(2), where=truth > 0))))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"segment_precision": precision, "segment_recall": recall, "segment_F1": f1}
