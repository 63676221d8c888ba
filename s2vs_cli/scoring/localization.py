"""Where two videos match: monotonic paths of high similarity on a frame-to-frame similarity map.

A copied excerpt shows up as a (near-)diagonal ridge of high similarity. A local alignment (Smith-Waterman
style dynamic programming) finds the monotonic path with the highest total of per-cell evidence; steps
(1,1), (1,2) and (2,1) let the copy play at half to double speed. The path's first and last cells give
the two time ranges.

The best segment (`best_segment`) scores each cell against the map's background (its median) and peak: a
cell counts as matching above the midpoint between them.

Every copied part (`all_segments`: a compilation of excerpts, a clip shown twice) cannot be judged against
the map's peak alone: a re-encoded copy can reach 0.8 while a cropped or colour-shifted copy of the same
source stays at 0.4, below the midpoint. So each cell is judged against its own frames' best matches (the
best cell of its row and of its column): it matches above the midpoint between background and that best
match, and scores +0.5 at it, as best_segment's cells do at the peak. Two floors keep frames that match
nothing from matching each other: the midpoint is at least a fifth of the way from background to the
map's peak, and at least four robust sigmas of the background above it. A cell
that only echoes a stronger match of its frame (a static scene resembles the copied frame's neighbours)
stays below its row's or column's midpoint. Paths are then found one after another (Waterman-Eggert style
declumping): each found path is split where its matching cells lie more than GAP_FRAMES frames apart
(two copies with unrelated footage between them are two parts), its parts long enough are kept, and their
rows and columns are blocked in a band of diagonals as wide as the part is long, so that no later path
overlaps them or echoes them on a neighbouring diagonal. The dynamic programme is kept whole, so blocking
re-aligns only the rows it changes.

`locate` is what every command reports for a pair, so that the same pair gives the same times everywhere:
the matches (all_segments in seconds) and the segment, which is the first match. It works on the videos'
frames as sampled; a short video's repetition for the network (docs/METHOD.md §1.5) is cut off first.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# best_segment: a cell counts as matching this far from the background (median) towards the peak (max).
MATCH_LEVEL = 0.5
# Cost of an off-diagonal step (speed change), in units of the cells' evidence scale (see match_scores).
SPEED_CHANGE_COST = 0.25
# all_segments: a cell's midpoint is at least this fraction of the way from background to the map's peak,
# and this many robust sigmas above background (chosen on planted copies, benchmarks/bench_planted.py; no
# noise-only map of up to 3,000 x 3,000 Gaussian cells gave a part at 4 sigmas, at 3 some did).
PART_FLOOR = 0.2
NOISE_SIGMAS = 4.0
# A path is split where two matching cells in a row lie more than this many frames apart on either video.
GAP_FRAMES = 2
# At most this many segments per pair, and this many alignments per segment reported.
MAX_SEGMENTS = 10
_TRIES_PER_SEGMENT = 3

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
    score: float                       # evidence along the path (match_scores or part_scores), what ranks segments
    path: tuple[tuple[int, int], ...] = field(default=(), compare=False, repr=False)  # its (row, column) cells

    @property
    def frames(self) -> int:
        """Its length in frames on the shorter side."""
        return min(self.query_last - self.query_first, self.target_last - self.target_first) + 1

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


def _background(sim: np.ndarray) -> tuple[float, float]:
    """The map's background level (median) and robust spread (1.4826 x median absolute deviation)."""
    # An even sample of a million cells gives both as well, and much cheaper on a 2-hour map.
    sample = sim.ravel()[::max(1, sim.size // 1_000_000)]
    background = float(np.median(sample))
    return background, 1.4826 * float(np.median(np.abs(sample - background)))


def match_scores(similarity: np.ndarray) -> np.ndarray:
    """Per-cell evidence of a match: > 0 above the midpoint between background and peak, in peak units."""
    sim = np.asarray(similarity, dtype=np.float32)
    background, _ = _background(sim)
    spread = float(sim.max()) - background
    if spread <= 1e-9:  # a flat map: every cell is as good as any other
        return np.ones_like(sim)
    return (sim - background) / np.float32(spread) - np.float32(MATCH_LEVEL)


def part_scores(similarity: np.ndarray) -> np.ndarray:
    """Per-cell evidence that the cell belongs to some copied part: > 0 above the midpoint between background
    and its frames' best match (floored, see the module docstring), in units of that match's height."""
    sim = np.asarray(similarity, dtype=np.float32)
    background, sigma = _background(sim)
    spread = float(sim.max()) - background
    if spread <= 1e-9:
        return np.ones_like(sim)
    least = np.float32(max(PART_FLOOR * spread, NOISE_SIGMAS * sigma))
    best = np.maximum(sim.max(1)[:, None], sim.max(0)[None, :]) - np.float32(background)  # [Tq, Tt]
    level = np.maximum(best / 2, least)
    scores = sim - np.float32(background)
    scores -= level
    scores /= np.maximum(best, level, out=best)
    return scores


def best_segment(similarity: np.ndarray) -> Segment:
    """The highest-scoring monotonic path on a [Tq, Tt] map (rows: query frames, columns: target frames)."""
    return _Alignment(match_scores(similarity)).best_path()


def all_segments(similarity: np.ndarray, min_frames: int = 2, min_evidence: float = 0.0,
                 max_segments: int = MAX_SEGMENTS, min_similarity: float = -np.inf) -> list[Segment]:
    """Every matching segment of a [Tq, Tt] map, best (most evidence, see part_scores) first, none
    overlapping another in the plane.

    A segment shorter than `min_frames` on either axis, whose evidence is at most `min_evidence`, or whose
    mean similarity along its path is below `min_similarity` (in the map's units) is not reported.
    """
    sim = np.asarray(similarity)
    alignment = _Alignment(part_scores(sim))
    found: list[Segment] = []
    any_part = False  # a part long enough was found, whatever its mean similarity
    for _ in range(_TRIES_PER_SEGMENT * max_segments):
        if len(found) == max_segments:
            break
        path = alignment.best_path()
        if not path.score > min_evidence:
            break
        parts = [p for p in _split(path, alignment.scores) if p.frames >= min_frames and p.score > min_evidence]
        if not parts:
            break  # the strongest path left holds no part long enough: what remains is scattered cells
        any_part = True
        blocked_rows = [path.query_first, path.query_last]
        for part in parts:
            if (len(found) < max_segments and part.mean_similarity(sim) >= min_similarity
                    and not any(_overlap(part, other) for other in found)):
                found.append(part)
            blocked_rows += _block_around(alignment.scores, part)
        alignment.scores[tuple(np.array(path.path).T)] = -np.inf  # the path itself, gaps included
        if np.count_nonzero(alignment.scores > 0) < min(2, min_frames):
            break  # no cell left that could start (and end) another part
        alignment.realign(min(blocked_rows), max(blocked_rows))
    if not any_part:
        # A map with no part above the noise floor (e.g. unwhitened features, where every cell is near 1)
        # still has a best-matching segment relative to its own peak: report it when it is long enough. (Not
        # when parts were found but scored below `min_similarity`: a stretch of a part left out is no match.)
        best = best_segment(sim)
        if best.frames >= min_frames and best.score > min_evidence and best.mean_similarity(sim) >= min_similarity:
            found.append(best)
    return sorted(found, key=lambda s: -s.score)


def _split(path: Segment, scores: np.ndarray) -> list[Segment]:
    """The path's parts: runs of cells with evidence > 0 no more than GAP_FRAMES frames apart on both videos."""
    cells = path.path
    matching = [k for k, cell in enumerate(cells) if scores[cell] > 0]
    runs: list[list[int]] = []
    for k in matching:
        if runs and all(now - before <= GAP_FRAMES for now, before in zip(cells[k], cells[runs[-1][-1]])):
            runs[-1].append(k)
        else:
            runs.append([k])
    parts = []
    for run in runs:
        part = cells[run[0]:run[-1] + 1]
        parts.append(Segment(part[0][0], part[-1][0], part[0][1], part[-1][1],
                             float(sum(scores[cell] for cell in part)), part))
    return parts


def _block_around(scores: np.ndarray, part: Segment) -> tuple[int, int]:
    """Block the part's rectangle, and its rows and columns within `part.frames` diagonals of its path (a
    repeat of the copy lies at least that far away; nearer, a static scene only echoes it). Returns the
    first and last rows blocked."""
    blocked = -np.inf
    scores[part.query_first:part.query_last + 1, part.target_first:part.target_last + 1] = blocked
    width = part.frames
    for i, j in part.path:
        scores[i, max(0, j - width + 1):j + width] = blocked
        scores[max(0, i - width + 1):i + width, j] = blocked
    return max(0, part.query_first - width + 1), min(scores.shape[0] - 1, part.query_last + width - 1)


def _overlap(a: Segment, b: Segment) -> bool:
    return (a.query_first <= b.query_last and b.query_first <= a.query_last
            and a.target_first <= b.target_last and b.target_first <= a.target_last)


class _Alignment:
    """Local alignment of a [Tq, Tt] evidence map, kept whole: after cells are blocked (set to -inf in
    `scores`), `realign` recomputes only the rows from the first blocked one until two rows in a row come
    out unchanged (each row depends on the two before it only)."""

    def __init__(self, scores: np.ndarray):
        self.scores = scores
        tq, tt = scores.shape
        # Best path total ending at each cell, with two rows and columns of -inf before the map's (so row i
        # reads rows i-1 and i-2 and columns j-1 and j-2 without special cases); `totals` is the map's part.
        self._padded = np.full((tq + 2, tt + 2), -np.inf, dtype=np.float32)
        self.totals = self._padded[2:, 2:]
        self.moves = np.zeros((tq, tt), dtype=np.uint8)     # how the path got there (see _STEP_BACK)
        self.row_best = np.empty(tq, dtype=np.float32)
        self.row_arg = np.zeros(tq, dtype=np.int64)
        self._candidates = np.zeros((4, tt), dtype=np.float32)  # row 0 stays 0: start a new path here
        for i in range(tq):
            self._align_row(i)

    def _align_row(self, i: int) -> None:
        tt = self.scores.shape[1]
        previous, before, candidates = self._padded[i + 1], self._padded[i], self._candidates
        np.copyto(candidates[1], previous[1:tt + 1])                              # from (i-1, j-1)
        np.subtract(previous[0:tt], SPEED_CHANGE_COST, out=candidates[2])        # from (i-1, j-2): target faster
        np.subtract(before[1:tt + 1], SPEED_CHANGE_COST, out=candidates[3])      # from (i-2, j-1): query faster
        self.moves[i] = candidates.argmax(0)
        row = self.totals[i]
        np.add(self.scores[i], candidates.max(0), out=row)
        j = int(row.argmax())
        self.row_best[i], self.row_arg[i] = row[j], j

    def realign(self, first_row: int, last_changed_row: int) -> None:
        """Recompute rows from `first_row` on, after the scores of rows first_row..last_changed_row changed."""
        unchanged = 0
        for i in range(first_row, self.scores.shape[0]):
            old = self.totals[i].copy()
            self._align_row(i)
            unchanged = unchanged + 1 if i > last_changed_row and np.array_equal(old, self.totals[i]) else 0
            if unchanged == 2:
                break

    def best_path(self) -> Segment:
        """The path with the highest total (the first such cell in row-major order) and its cells."""
        i = int(self.row_best.argmax())
        j = int(self.row_arg[i])
        last, score = (i, j), float(self.row_best[i])
        path = [last]
        while self.moves[i, j] != _START:
            di, dj = _STEP_BACK[int(self.moves[i, j])]
            i, j = i - di, j - dj
            path.append((i, j))
        return Segment(query_first=i, query_last=last[0], target_first=j, target_last=last[1], score=score,
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
                   min_seconds: float = 2.0, max_segments: int = MAX_SEGMENTS,
                   min_score: float | None = None) -> list[Match]:
    """Every copied part of a [Tq, Tt] map in seconds, best first; parts shorter than `min_seconds` (at
    `fps` frames a second) on either axis, or scoring below `min_score` (the map's mean along the part,
    Match.score), are left out."""
    min_frames = max(1, round(min_seconds * fps))
    floor = -np.inf if min_score is None else min_score
    return [_match(s, similarity, query_times, target_times, fps)
            for s in all_segments(similarity, min_frames=min_frames, max_segments=max_segments, min_similarity=floor)]


def _match(segment: Segment, similarity: np.ndarray, query_times: np.ndarray, target_times: np.ndarray,
           fps: float) -> Match:
    return Match(segment_times(segment, query_times, target_times, 1.0 / fps), segment.mean_similarity(similarity))


@dataclass(frozen=True)
class PairLocation:
    """Where two videos match, as every command reports it: every copied part, best first, and the pair's
    segment, which is the first of them (with none left, where the videos match best all the same)."""

    segment: SegmentTimes
    matches: list[Match]
    frames: tuple[int, int]  # (Tq, Tt): the frames of each video as sampled


def sampled_map(similarity: np.ndarray, query_frames: int, target_frames: int) -> np.ndarray:
    """The [query_frames, target_frames] map of two videos as sampled, from the map of what the network saw.

    A video under 4 frames is repeated for the comparator (docs/METHOD.md §1.5), so its map holds whole
    copies of the sampled one: its first block is the video's own, and the copies would only repeat its
    matches.
    """
    sim = np.asarray(similarity)
    rows, columns = sim.shape
    if min(query_frames, target_frames) < 1 or rows % query_frames or columns % target_frames:
        raise ValueError(f"a {rows} x {columns} map is no repetition of videos of {query_frames} and "
                         f"{target_frames} frames")
    return sim[:query_frames, :target_frames]


def locate(similarity: np.ndarray, query_times: np.ndarray, target_times: np.ndarray, fps: float,
           min_seconds: float = 2.0, min_score: float | None = None,
           max_segments: int = MAX_SEGMENTS) -> PairLocation:
    """The one rule for where two videos match (compare, search, evaluate, VSC22 and the reports use it).

    `similarity` is their frame-to-frame map, of the videos as sampled (`query_times`, `target_times`: one
    time a frame, in the video's own seconds) or as the network saw them (short videos repeated: see
    sampled_map). Matches are every copied part (`locate_matches`, with `min_seconds` and `min_score`); the
    segment is the first match, or, when no part passes those floors, the best part without them.
    """
    query_times, target_times = np.asarray(query_times), np.asarray(target_times)
    sim = sampled_map(similarity, len(query_times), len(target_times))
    matches = locate_matches(sim, query_times, target_times, fps, min_seconds, max_segments, min_score)
    if matches:
        segment = matches[0].times
    else:
        best = all_segments(sim, min_frames=1, max_segments=1) or [best_segment(sim)]
        segment = segment_times(best[0], query_times, target_times, 1.0 / fps)
    return PairLocation(segment, matches, sim.shape)
