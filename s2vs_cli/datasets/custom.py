"""A user's own ground truth (`--dataset custom --ground-truth gt.json`): its one validator, its loader and
its metrics (mAP, uAP, recall@k, as for FIVR).

The file and an in-memory mapping (`evaluate_custom({...}, similarities)`) go through the same checks,
`validate_ground_truth`; every error names the offending entry.
Library code: numpy, the standard library and the package's own modules.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .benchmark import Benchmark, Evaluation, EvaluationError, Similarities
from ..json_file import read_json
from .files import AnnotationError, user_file
from .retrieval_metrics import recall_at_k
from .scores import Rankings, align, mean_or_nan, relevance, result
from .segments import SegmentBounds

CUSTOM_KEYS = ("queries", "database", "positives", "negatives", "segments")
_ID_COLLECTIONS = (list, tuple, set, frozenset)  # a JSON file gives lists; a loaded ground truth, frozensets


@dataclass(frozen=True)
class CustomBenchmark(Benchmark):
    """A user's own ground truth (`--dataset custom --ground-truth gt.json`)."""

    ground_truth_file: ClassVar[str] = "GT.json"

    positives: dict[str, frozenset[str]]                 # query -> videos that match it
    negatives: dict[str, frozenset[str]] | None          # query -> videos known not to (optional)
    segments: dict[tuple[str, str], list[SegmentBounds]]  # (query, target) -> matching time ranges (optional)

    @classmethod
    def from_ground_truth(cls, ground_truth: str | Path, annotations: str | Path | None = None,
                          available: Iterable[str] = ()) -> CustomBenchmark:
        """The ground truth JSON file (see `load_custom_ground_truth`); it names every video itself."""
        return load_custom_ground_truth(ground_truth)

    def evaluate(self, similarities: Similarities, *, ks: Sequence[int] = (1, 5, 10),
                 scored_from: str | None = None) -> Evaluation:
        """mAP, uAP and recall@k (see `evaluate_custom`)."""
        return evaluate_custom(self, similarities, ks, scored_from=scored_from)

    def copies(self) -> dict[str, frozenset[str]]:
        """Its `positives`: the user's own labels say which videos match each query."""
        return dict(self.positives)


def load_custom_ground_truth(path: str | Path) -> CustomBenchmark:
    """Read and validate a custom ground truth JSON file; errors name the offending entry.

    Layout: {"queries": [ids], "database": [ids], "positives": {query: [ids]}, optional "negatives":
    {query: [ids]} and "segments": {query: {target: [[q_start, q_end, t_start, t_end], ...]}} in seconds.
    """
    path = user_file(path)
    return validate_ground_truth(read_json(path, "ground truth", AnnotationError), path)


def validate_ground_truth(data: Any, path: Path | None = None) -> CustomBenchmark:
    """The one check of a custom ground truth (the JSON layout above); AnnotationError naming the entry.

    `path` is the file it was read from (None: built in memory); messages start with it.
    """
    where = f"{path}: " if path is not None else "ground truth: "
    if not isinstance(data, Mapping):
        raise AnnotationError(f"{where}expected a JSON object with {', '.join(CUSTOM_KEYS[:3])}")
    unknown = [key for key in data if key not in CUSTOM_KEYS]
    if unknown:
        raise AnnotationError(f"{where}unknown key '{unknown[0]}' (valid keys: {', '.join(CUSTOM_KEYS)})")
    for key in CUSTOM_KEYS[:3]:
        if key not in data:
            raise AnnotationError(f"{where}missing '{key}'")
    queries = _id_list(data["queries"], where, "queries")
    database = _id_list(data["database"], where, "database")
    known = set(queries) | set(database)
    positives = _id_sets(data["positives"], where, "positives", set(queries), known)
    negatives = None
    if "negatives" in data:
        negatives = _id_sets(data["negatives"], where, "negatives", set(queries), known)
        for query, ids in negatives.items():
            both = ids & positives.get(query, frozenset())
            if both:
                raise AnnotationError(f"{where}negatives['{query}']: '{sorted(both)[0]}' is also a positive")
    segments = _segments(data.get("segments", {}), where, positives)
    return CustomBenchmark(name="custom", queries=queries, database=database, source=path, positives=positives,
                           negatives=negatives, segments=segments)


def evaluate_custom(
    ground_truth: Mapping[str, Any] | Benchmark, similarities: Similarities, ks: Sequence[int] = (1, 5, 10), *,
    scored_from: str | None = None,
) -> Evaluation:
    """mAP, uAP and recall@k for a user's ground truth {queries, database, positives[, negatives]}.

    As for FIVR: relevant(q) = positives(q) ∩ loaded database − {q}, ranked over the loaded database
    other than q (positives outside the database are never ranked and leave the relevant set); mAP and
    recall@k are means over the queries with ≥ 1 relevant video (the others are listed in
    `without_positives`); uAP pools the pairs of all present queries. When `negatives` lists a query,
    only its positives and negatives are ranked for it (unjudged videos are left out); a query it does
    not list is ranked against the whole database.
    """
    gt = _as_ground_truth(ground_truth)
    if any(k < 1 for k in ks):
        raise EvaluationError(f"recall@k needs k ≥ 1, got {list(ks)}")
    scores = align(similarities, gt.queries, gt.database, "ground truth", scored_from)
    own = scores.own_column()
    rankable = ~np.isnan(scores.matrix) & ~own
    for i, query in enumerate(scores.queries):
        if gt.negatives is not None and query in gt.negatives:
            rankable[i] &= scores.mask(gt.positives.get(query, frozenset()) | gt.negatives[query])
    rankings = Rankings(scores.matrix, rankable)
    relevant = relevance(scores, (gt.positives.get(q, ()) for q in scores.queries)) & scores.present & ~own
    counts = relevant.sum(axis=1)
    judged = counts > 0
    metrics = {
        "mAP": mean_or_nan(rankings.average_precisions(relevant)[judged]),
        "uAP": rankings.micro_average_precision(relevant),
    }
    for k in ks:
        recalls = [recall_at_k(relevant[i, row], k, counts[i]) for i, row in enumerate(rankings.rows) if judged[i]]
        metrics[f"recall@{k}"] = mean_or_nan(np.array(recalls))
    without = tuple(q for q, has in zip(scores.queries, judged) if not has)
    return result(gt.name, gt.database, scores, metrics, without_positives=without)


def _as_ground_truth(ground_truth: Mapping[str, Any] | Benchmark) -> CustomBenchmark:
    """A loaded ground truth as it is; a mapping or another object with the same fields, validated."""
    if isinstance(ground_truth, CustomBenchmark):
        return ground_truth
    if isinstance(ground_truth, Mapping):
        data, name = ground_truth, "custom"
    else:  # an object with the fields the metrics read (its segments are not needed here)
        data = {key: getattr(ground_truth, key) for key in CUSTOM_KEYS[:4]
                if getattr(ground_truth, key, None) is not None}
        name = str(getattr(ground_truth, "name", "custom"))
    try:
        return dataclasses.replace(validate_ground_truth(data), name=name)
    except AnnotationError as e:  # for a caller of the metrics, a bad ground truth is an evaluation error
        raise EvaluationError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# The parts of the layout


def _id_list(value: Any, where: str, key: str) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value:
        raise AnnotationError(f"{where}'{key}' must be a non-empty list of video ids")
    seen: set[str] = set()
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise AnnotationError(f"{where}{key}[{index}]: {item!r} is not a video id (a non-empty string)")
        if item in seen:
            raise AnnotationError(f"{where}{key}[{index}]: '{item}' is listed twice")
        seen.add(item)
    return list(value)


def _id_sets(value: Any, where: str, key: str, queries: set[str], known: set[str]) -> dict[str, frozenset[str]]:
    if not isinstance(value, Mapping):
        raise AnnotationError(f"{where}'{key}' must map each query to a list of video ids")
    sets = {}
    for query, ids in value.items():
        if query not in queries:
            raise AnnotationError(f"{where}{key}['{query}']: '{query}' is not one of the queries")
        if not isinstance(ids, _ID_COLLECTIONS):
            raise AnnotationError(f"{where}{key}['{query}'] must be a list of video ids")
        for index, item in enumerate(ids):
            if not isinstance(item, str) or item not in known:
                raise AnnotationError(f"{where}{key}['{query}'][{index}]: {item!r} is in neither the queries "
                                      "nor the database")
        sets[query] = frozenset(ids)
    return sets


def _segments(value: Any, where: str,
              positives: dict[str, frozenset[str]]) -> dict[tuple[str, str], list[SegmentBounds]]:
    if not isinstance(value, Mapping):
        raise AnnotationError(f"{where}'segments' must map query -> target -> [[q_start, q_end, t_start, t_end], ...]")
    segments: dict[tuple[str, str], list[SegmentBounds]] = {}
    for query, targets in value.items():
        if not isinstance(targets, Mapping):
            raise AnnotationError(f"{where}segments['{query}'] must map targets to lists of time ranges")
        for target, ranges in targets.items():
            entry = f"segments['{query}']['{target}']"
            if target not in positives.get(query, frozenset()):
                raise AnnotationError(f"{where}{entry}: '{target}' is not a positive of '{query}'")
            if not isinstance(ranges, list) or not ranges:
                raise AnnotationError(f"{where}{entry} must be a non-empty list of time ranges")
            parsed = []
            for index, item in enumerate(ranges):
                numbers = isinstance(item, list) and len(item) == 4 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in item)
                if not numbers or not (0 <= item[0] < item[1] and 0 <= item[2] < item[3]):
                    raise AnnotationError(f"{where}{entry}[{index}]: {item!r} is not "
                                          "[q_start, q_end, t_start, t_end] with 0 <= start < end (seconds)")
                parsed.append(tuple(float(v) for v in item))
            segments[(query, target)] = parsed
    return segments
