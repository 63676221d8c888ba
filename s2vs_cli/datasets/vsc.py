"""The Meta Video Similarity Challenge 2022 (VSC22) metrics, from their definitions (docs/METHOD.md §6.8).

- Descriptor track (`pair_micro_ap`): µAP over predicted (query, reference) pairs ranked by score; a pair is
  correct when the ground truth has a copied segment between the two videos. AP = Σ precision@k over the
  correct predictions / the number of true pairs (true pairs never predicted lower it).
- Matching track (`segment_micro_ap`): predicted segments ranked by score, added one score level at a
  time. After each level, on each time axis (query, reference): recall = length of the predicted time that
  lies in the true segments / total true length, precision = that length / total predicted length; a true
  segment counts only once a prediction of its pair overlaps it in both axes (area > 0). The level's
  precision and recall are the geometric means of the two axes'; AP = Σ precision · Δrecall.

The challenge's CSV files are read here too, every problem one line naming the file and the row; ids are
checked against the query and reference sets (`VideoSets`).
Library code: numpy and the standard library (the official code needs pandas for the same numbers).
"""
from __future__ import annotations

import csv
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import ConfigError
from ..spreadsheet_cells import from_spreadsheet_safe, spreadsheet_safe
from .segments import SegmentBounds, overlaps_in_plane

MATCH_COLUMNS = ("query_id", "ref_id", "query_start", "query_end", "ref_start", "ref_end")
PAIR_COLUMNS = ("query_id", "ref_id", "score")
# DrivenData's copies of the challenge files spell the reference columns out; both spellings are read.
COLUMN_ALIASES = {"reference_id": "ref_id", "reference_start": "ref_start", "reference_end": "ref_end"}
# The challenge's ids: Q + digits for queries, R + digits for references (its own code refuses others).
ID_FORMS = {"query_id": ("query", re.compile(r"Q\d+")), "ref_id": ("reference", re.compile(r"R\d+"))}


@dataclass(frozen=True)
class CopiedSegment:
    """A copied (or predicted) segment: a time range of the query video and one of the reference, seconds."""

    query_id: str
    ref_id: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float = 1.0

    @property
    def pair(self) -> tuple[str, str]:
        """(query id, reference id)."""
        return self.query_id, self.ref_id

    def overlaps(self, other: CopiedSegment) -> bool:
        """Whether the two segments share some area of the (query time, reference time) plane."""
        return overlaps_in_plane(self.bounds, other.bounds)

    @property
    def bounds(self) -> SegmentBounds:
        """(query start, query end, reference start, reference end), as the segment metrics take them."""
        return self.query_start, self.query_end, self.ref_start, self.ref_end


@dataclass(frozen=True)
class ScoredPair:
    """A predicted (query, reference) pair and its score (the descriptor track's input)."""

    query_id: str
    ref_id: str
    score: float


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping intervals."""
    total, end = 0.0, -math.inf
    for start, stop in sorted(intervals):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def pair_micro_ap(ground_truth: Iterable[tuple[str, str]], predictions: Sequence[ScoredPair]) -> float:
    """Descriptor-track µAP of predicted pairs against the set of true (query, reference) pairs."""
    true_pairs = set(ground_truth)
    if not true_pairs:
        raise ValueError("the ground truth holds no (query, reference) pair")
    seen: set[tuple[str, str]] = set()
    for p in predictions:
        if (p.query_id, p.ref_id) in seen:
            raise ValueError(f"the pair ({p.query_id}, {p.ref_id}) is predicted twice")
        seen.add((p.query_id, p.ref_id))
    order = np.argsort(-np.array([p.score for p in predictions], dtype=np.float64), kind="stable")
    correct = np.array([(predictions[i].query_id, predictions[i].ref_id) in true_pairs for i in order], dtype=bool)
    precision = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    return float(np.sum(precision[correct]) / len(true_pairs))


def best_per_pair(segments: Iterable[CopiedSegment]) -> list[ScoredPair]:
    """Each (query, reference) pair once, scored by its best segment (the matching track's pairwise µAP)."""
    best: dict[tuple[str, str], float] = {}
    for s in segments:
        best[s.pair] = max(s.score, best.get(s.pair, 0.0))
    return [ScoredPair(q, r, score) for (q, r), score in best.items()]


@dataclass
class _PairCoverage:
    """One video pair's true segments, the predictions so far, and the lengths they give on each axis."""

    truth: list[CopiedSegment] = field(default_factory=list)
    predicted: list[CopiedSegment] = field(default_factory=list)
    covered: tuple[float, float] = (0.0, 0.0)     # predicted time inside the (overlapped) true segments
    predicted_length: tuple[float, float] = (0.0, 0.0)

    def add(self, prediction: CopiedSegment) -> tuple[tuple[float, float], tuple[float, float]]:
        """Take one more prediction -> the change of (covered, predicted length) on (query, reference) axes."""
        self.predicted.append(prediction)
        reached = [t for t in self.truth if any(t.overlaps(p) for p in self.predicted)]
        covered, lengths = [], []
        for axis in (_query_interval, _ref_interval):
            predicted = union_length(axis(p) for p in self.predicted)
            true = union_length(axis(t) for t in reached)
            both = union_length([axis(p) for p in self.predicted] + [axis(t) for t in reached])
            covered.append(predicted + true - both)
            lengths.append(predicted)
        deltas = (tuple(c - o for c, o in zip(covered, self.covered)),
                  tuple(n - o for n, o in zip(lengths, self.predicted_length)))
        self.covered, self.predicted_length = tuple(covered), tuple(lengths)
        return deltas


def _query_interval(s: CopiedSegment) -> tuple[float, float]:
    return s.query_start, s.query_end


def _ref_interval(s: CopiedSegment) -> tuple[float, float]:
    return s.ref_start, s.ref_end


def segment_micro_ap(ground_truth: Sequence[CopiedSegment], predictions: Sequence[CopiedSegment]) -> float:
    """Matching-track µAP of predicted segments against the true copied segments."""
    pairs: dict[tuple[str, str], _PairCoverage] = defaultdict(_PairCoverage)
    for t in ground_truth:
        pairs[t.pair].truth.append(t)
    true_length = [sum(union_length(axis(t) for t in p.truth) for p in pairs.values())
                   for axis in (_query_interval, _ref_interval)]
    if min(true_length) <= 0:
        raise ValueError("the ground truth holds no copied time")
    ranked = sorted(predictions, key=lambda s: s.score, reverse=True)  # stable: ties keep the file's order
    covered, predicted = [0.0, 0.0], [0.0, 0.0]
    recall = metric = 0.0
    for _, level in groupby(ranked, key=lambda s: s.score):  # one score level at a time
        for prediction in level:
            covered_delta, predicted_delta = pairs[prediction.pair].add(prediction)
            for axis in (0, 1):
                covered[axis] += covered_delta[axis]
                predicted[axis] += predicted_delta[axis]
        level_recall = math.sqrt((covered[0] / true_length[0]) * (covered[1] / true_length[1]))
        precisions = [c / p if p > 0 else 0.0 for c, p in zip(covered, predicted)]
        metric += math.sqrt(precisions[0] * precisions[1]) * (level_recall - recall)
        recall = level_recall
    return metric


@dataclass(frozen=True)
class VideoSets:
    """Which ids are queries and which are references: listed (the challenge's metadata files), or, where
    a list is None, any id of the challenge's form (Q + digits for queries, R + digits for references)."""

    queries: frozenset[str] | None = None
    references: frozenset[str] | None = None
    listed_in: str = ""  # where the lists come from, for messages

    def problem(self, column: str, video_id: str) -> str | None:
        """Why `video_id` cannot stand in `column` (query_id or ref_id), or None."""
        kind, form = ID_FORMS[column]
        listed = self.queries if column == "query_id" else self.references
        if listed is not None:
            return None if video_id in listed else f"{column} '{video_id}' is not a {kind} of {self.listed_in}"
        if not form.fullmatch(video_id):
            return f"{column} '{video_id}' is not a {kind} id (the challenge's are {form.pattern[0]} + digits)"
        return None


def read_segments(path: str | Path, ground_truth: bool = False, sets: VideoSets | None = None) -> list[CopiedSegment]:
    """Segments from a VSC CSV (query_id, ref_id, query/ref start/end, score); ConfigError names file and row.

    Ground truth: `score` may be absent and is ignored. Predictions need it. With `sets`, every id must
    be a query or reference of them.
    """
    needed = MATCH_COLUMNS if ground_truth else (*MATCH_COLUMNS, "score")
    segments = []
    for row_number, row in _rows(path, needed):
        ids = _video_ids(row, path, row_number, sets)
        times = [_number(row, name, path, row_number) for name in MATCH_COLUMNS[2:]]
        for start, end, axis in ((times[0], times[1], "query"), (times[2], times[3], "ref")):
            if end < start:
                raise ConfigError(f"{path}: row {row_number}: {axis}_end {end:g} is before {axis}_start {start:g}")
        score = 1.0 if ground_truth else _number(row, "score", path, row_number)
        segments.append(CopiedSegment(*ids, *times, score))
    return segments


def read_pairs(path: str | Path, sets: VideoSets | None = None) -> list[ScoredPair]:
    """Scored (query, reference) pairs from a VSC candidates CSV (query_id, ref_id, score), each pair once."""
    pairs, first_row = [], {}
    for row_number, row in _rows(path, PAIR_COLUMNS):
        pair = _video_ids(row, path, row_number, sets)
        if pair in first_row:
            raise ConfigError(f"{path}: row {row_number}: the pair ({pair[0]}, {pair[1]}) is listed twice "
                              f"(first in row {first_row[pair]}); a pair has one score")
        first_row[pair] = row_number
        pairs.append(ScoredPair(*pair, _number(row, "score", path, row_number)))
    return pairs


def read_video_ids(path: str | Path) -> list[str]:
    """The `video_id` column of one of the challenge's metadata CSVs, each id once."""
    ids: dict[str, int] = {}
    for row_number, row in _rows(path, ("video_id",)):
        video_id = _video_id(row, "video_id", path, row_number)
        if video_id in ids:
            raise ConfigError(f"{path}: row {row_number}: video_id '{video_id}' is listed twice (first in row "
                              f"{ids[video_id]})")
        ids[video_id] = row_number
    return list(ids)


def write_segments(path: str | Path, segments: Iterable[CopiedSegment]) -> None:
    """Predicted segments in the challenge's CSV layout (query_id, ref_id, query/ref start/end, score)."""
    _write_csv(path, (*MATCH_COLUMNS, "score"), ((s.query_id, s.ref_id, s.query_start, s.query_end, s.ref_start,
                                                  s.ref_end, s.score) for s in segments))


def write_pairs(path: str | Path, pairs: Iterable[ScoredPair]) -> None:
    """Scored pairs in the challenge's candidates layout (query_id, ref_id, score)."""
    _write_csv(path, PAIR_COLUMNS, ((p.query_id, p.ref_id, p.score) for p in pairs))


def _write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Written whole or not at all (atomic.py). Numbers in full (repr), so that reading the file back gives the
    same floats; ids safe to open in a spreadsheet (spreadsheet_cells.py), read back as they were."""
    with atomic_write(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([spreadsheet_safe(value) if isinstance(value, str) else repr(float(value)) for value in row]
                         for row in rows)


def _rows(path: str | Path, needed: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """Data rows of a CSV with a header, numbered as a spreadsheet shows them (the header is row 1)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [name.strip() for name in reader.fieldnames or []]
            header = [COLUMN_ALIASES[name] if COLUMN_ALIASES.get(name) not in (None, *header) else name
                      for name in header]
            missing = [name for name in needed if name not in header]
            if missing:
                raise ConfigError(f"{path}: row 1: missing column{'s' if len(missing) > 1 else ''} "
                                  f"{', '.join(missing)} (found: {', '.join(header) or 'no header'})")
            reader.fieldnames = header
            rows = [(n, row) for n, row in enumerate(reader, start=2)]
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a CSV file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{path}: cannot read as CSV ({e})") from None
    return rows


def _video_ids(row: dict[str, str], path: str | Path, row_number: int,
               sets: VideoSets | None) -> tuple[str, str]:
    """(query id, reference id) of a row, checked against `sets`."""
    ids = _video_id(row, "query_id", path, row_number), _video_id(row, "ref_id", path, row_number)
    for column, video_id in zip(("query_id", "ref_id"), ids):
        problem = sets.problem(column, video_id) if sets is not None else None
        if problem:
            raise ConfigError(f"{path}: row {row_number}: {problem}")
    return ids


def _video_id(row: dict[str, str], name: str, path: str | Path, row_number: int) -> str:
    # A leading quote is the spreadsheet escape of _write_csv: stripped after the spaces, so "'\tid" keeps its tab.
    value = from_spreadsheet_safe((row.get(name) or "").strip())
    if not value:
        raise ConfigError(f"{path}: row {row_number}: empty {name}")
    return value


def _number(row: dict[str, str], name: str, path: str | Path, row_number: int) -> float:
    text = (row.get(name) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{path}: row {row_number}: {name} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{path}: row {row_number}: {name} is not a finite number: {text!r}")
    return value
