"""CC_WEB_VIDEO: 24 query sets with labelled videos, and mAP, mAP_star and their 'clean' variants.
Library code: numpy, the standard library and the package's own modules.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from .benchmark import Benchmark, Evaluation, Similarities
from .files import AnnotationError, require
from .retrieval_metrics import average_precision
from .scores import Rankings, align, result

# Labels that make a video a positive of its query set (X and x are not).
CC_WEB_POSITIVE = frozenset("ESLMV")


@dataclass(frozen=True)
class CCWebBenchmark(Benchmark):
    """CC_WEB_VIDEO: query set i is queries[i], ground_truth[i] and excluded[i]."""

    annotation_file: ClassVar[str] = "cc_web_video"

    index: dict[str, int]                # video id -> video number used by the ground truth
    ground_truth: list[dict[int, str]]   # per query set: video number -> label (E, S, V, M, L, X, ...)
    excluded: list[frozenset[int]]       # per query set: video numbers left out of the "clean" variant

    @classmethod
    def from_annotation(cls, name: str, data: Mapping, path: Path, *, distractors: bool = False) -> CCWebBenchmark:
        """CC_WEB_VIDEO from its pickle: index, query sets, their labels and excluded videos."""
        require(data, ("index", "queries", "ground_truth", "excluded"), path, "CC_WEB_VIDEO")
        queries, ground_truth = list(data["queries"]), list(data["ground_truth"])
        excluded = list(data["excluded"])
        if not len(queries) == len(ground_truth) == len(excluded):
            raise AnnotationError(
                f"{path}: CC_WEB_VIDEO has {len(queries)} queries but {len(ground_truth)} ground-truth "
                f"and {len(excluded)} excluded sets"
            )
        index = {str(v): int(n) for v, n in data["index"].items()}
        return cls(
            name="CC_WEB_VIDEO",
            queries=queries,
            database=sorted(index),  # the index holds the queries too
            source=path,
            index=index,
            ground_truth=[dict(labels) for labels in ground_truth],
            excluded=[frozenset(x) for x in excluded],
        )

    def evaluate(self, similarities: Similarities, *, scored_from: str | None = None) -> Evaluation:
        """mAP, mAP_star, mAP_c, mAP_c_star (see `evaluate_cc_web`)."""
        return evaluate_cc_web(self, similarities, scored_from=scored_from)

    def copies(self) -> dict[str, frozenset[str]]:
        """The near-duplicates of each query: the videos its query set labels E, S, L, M or V (the positives
        of its mAP); a query id heading two sets gets the positives of both."""
        video_of = {number: video for video, number in self.index.items()}
        found: dict[str, set[str]] = {q: set() for q in self.queries}
        for query, labels in zip(self.queries, self.ground_truth):
            found[query].update(video_of[n] for n, label in labels.items() if label in CC_WEB_POSITIVE and n in video_of)
        return {q: frozenset(videos) for q, videos in found.items()}


def evaluate_cc_web(benchmark: CCWebBenchmark, similarities: Similarities, *,
                    scored_from: str | None = None) -> Evaluation:
    """CC_WEB_VIDEO: mAP, mAP_star (every video counts), and both 'clean' (mAP_c, mAP_c_star).

    The denominators are the positive labels of each query set (less the excluded ones when clean),
    whether or not those videos loaded, as the original counts them.
    """
    scores = align(similarities, benchmark.queries, benchmark.database, benchmark.name, scored_from)
    numbers = np.array([benchmark.index[v] for v in scores.columns])  # video number of each column
    rankings = Rankings(scores.matrix, ~np.isnan(scores.matrix))
    row_of = {q: i for i, q in enumerate(scores.queries)}
    variants = {"mAP": (False, False), "mAP_star": (True, False), "mAP_c": (False, True), "mAP_c_star": (True, True)}
    totals = dict.fromkeys(variants, 0.0)
    for query, labels, excluded in zip(benchmark.queries, benchmark.ground_truth, benchmark.excluded):
        if query not in row_of:
            continue
        ranked = numbers[rankings.rows[row_of[query]]]  # video numbers, best first
        labelled = np.isin(ranked, list(labels))
        positive = np.isin(ranked, [v for v, label in labels.items() if label in CC_WEB_POSITIVE])
        left_out = np.isin(ranked, list(excluded))
        for name, (star, clean) in variants.items():
            # A video takes a rank when it is labelled (or any video, star) and not excluded (clean).
            counted = (labelled | star) & ~(left_out & clean)
            n_positive = sum(1 for v, label in labels.items()
                             if label in CC_WEB_POSITIVE and not (clean and v in excluded))
            totals[name] += average_precision(positive[counted], n_positive)
    # Divided by the present queries, each query set counted once per distinct query id.
    metrics = {name: total / len(row_of) for name, total in totals.items()}
    return result(benchmark.name, benchmark.database, scores, metrics)
