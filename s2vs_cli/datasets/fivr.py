"""FIVR-5K and FIVR-200K: queries, database and labels, the easy duplicates of the 'hard' variant, and the
retrieval (DSVR, CSVR, ISVR: mAP) and detection (DSVD, CSVD, ISVD: uAP) metrics.

A query with nothing relevant left (docs/METHOD.md §6) is out of its task's mean and listed in `without_positives`.
Library code: numpy, the standard library and the package's own modules.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..json_file import read_json
from ..progress import SILENT, Progress
from .benchmark import Benchmark, Evaluation, Similarities
from .files import AnnotationError, annotation_path, expect, read_text, require, user_file
from .scores import Rankings, align, mean_or_nan, relevance, result

# FIVR tasks: the labels whose union is relevant (retrieval -> mAP, detection -> uAP).
FIVR_TASKS = {"DS": ("ND", "DS"), "CS": ("ND", "DS", "CS"), "IS": ("ND", "DS", "CS", "IS")}


@dataclass(frozen=True)
class FIVRBenchmark(Benchmark):
    """FIVR-5K or FIVR-200K: queries and database sorted, as the original evaluates them."""

    annotation_file: ClassVar[str] = "fivr"
    # The paper's numbers for the published s2vs_dns model (docs/METHOD.md §6), shown beside ours.
    paper_results: ClassVar[dict[tuple[str, str], dict[str, float]]] = {
        ("s2vs_dns", "FIVR-200K"): {"DSVR": 0.925, "CSVR": 0.913, "ISVR": 0.841}}

    version: str                                   # "5k" or "200k"
    annotation: dict[str, dict[str, list[str]]]    # query -> label (ND, DS, CS, IS, DA) -> video ids

    @classmethod
    def from_annotation(cls, name: str, data: Mapping, path: Path, *, distractors: bool = False) -> FIVRBenchmark:
        """The FIVR pickle's split `name` (FIVR-5K or FIVR-200K)."""
        version = name.removeprefix("FIVR-").lower()
        require(data, (version, "annotation"), path, name)
        split = require(data[version], ("queries", "database"), path, f"{name} '{version}'")
        return cls(
            name=name,
            queries=sorted(split["queries"]),
            database=sorted(split["database"]),  # a set in the file
            source=path,
            version=version,
            annotation={
                q: {label: list(ids) for label, ids in labels.items()} for q, labels in data["annotation"].items()
            },
        )

    def easy_duplicates(self, path: str | Path | None = None, progress: Progress = SILENT,
                        offline: bool | None = None) -> frozenset[str]:
        """Videos the 'hard' variant removes from the database (read from `path` or the cache)."""
        return load_easy_duplicates(path, progress=progress, offline=offline)

    def evaluate(self, similarities: Similarities, *, hard: bool | None = None,
                 easy_duplicates: Collection[str] | None = None, scored_from: str | None = None) -> Evaluation:
        """DSVR/CSVR/ISVR and DSVD/CSVD/ISVD (see `evaluate_fivr`)."""
        return evaluate_fivr(self, similarities, hard, easy_duplicates, scored_from=scored_from)

    def copies(self) -> dict[str, frozenset[str]]:
        """The DSVR relevant set of each query: its near-duplicates and duplicate scenes (labels ND and DS);
        complementary (CS) and incident (IS) scenes share an event, not footage, and count as negatives."""
        return {q: frozenset(v for label in FIVR_TASKS["DS"] for v in self.annotation.get(q, {}).get(label, ()))
                for q in self.queries}


def evaluate_fivr(
    benchmark: FIVRBenchmark,
    similarities: Similarities,
    hard: bool | None = None,
    easy_duplicates: Collection[str] | None = None,
    *,
    scored_from: str | None = None,
) -> Evaluation:
    """FIVR-5K/200K: DSVR/CSVR/ISVR mAP and DSVD/CSVD/ISVD uAP; `hard` True/False/None (both, `_h`).

    The hard variant removes `easy_duplicates` (read with `benchmark.easy_duplicates()` when not
    given) from the database, for the targets and the relevant sets alike.
    """
    scores = align(similarities, benchmark.queries, benchmark.database, benchmark.name, scored_from)
    own = scores.own_column()  # a query is never its own target nor relevant to itself
    rankings = Rankings(scores.matrix, ~np.isnan(scores.matrix) & ~own)
    variants = [(suffix, h) for suffix, h in (("", False), ("_h", True)) if hard is None or hard == h]
    if hard is not False and easy_duplicates is None:
        easy_duplicates = benchmark.easy_duplicates()
    relevant = {
        task: relevance(scores, (
            (v for label in labels for v in benchmark.annotation.get(q, {}).get(label, ())) for q in scores.queries
        )) & scores.present & ~own
        for task, labels in FIVR_TASKS.items()
    }
    metrics: dict[str, float] = {}
    left_out = np.zeros(len(scores.queries), dtype=bool)
    for suffix, is_hard in variants:
        keep = scores.present & ~scores.mask(easy_duplicates) if is_hard else scores.present
        ranked = rankings.restricted(keep) if is_hard else rankings
        for task in FIVR_TASKS:
            rel = relevant[task] & keep
            judged = rel.any(axis=1)
            left_out |= ~judged
            # mAP over the queries with at least one relevant video (docs/METHOD.md §6).
            metrics[f"{task}VR{suffix}"] = mean_or_nan(ranked.average_precisions(rel)[judged])
        for task in FIVR_TASKS:
            metrics[f"{task}VD{suffix}"] = ranked.micro_average_precision(relevant[task] & keep)
    without = tuple(q for q, out in zip(scores.queries, left_out) if out)
    return result(benchmark.name, benchmark.database, scores, metrics, without_positives=without)


def load_easy_duplicates(
    path: str | Path | None = None, progress: Progress = SILENT, offline: bool | None = None
) -> frozenset[str]:
    """FIVR's easy duplicates (one video id per line), from `path` or the verified cache."""
    path = user_file(path) if path is not None else annotation_path(
        "fivr_easy_duplicates", progress=progress, offline=offline
    )
    return frozenset(read_text(path).split())


def load_official_fivr200k_annotation(
    path: str | Path | None = None, progress: Progress = SILENT, offline: bool | None = None
) -> dict[str, dict[str, list[str]]]:
    """The official FIVR-200K annotation JSON (query -> label -> ids), to cross-check the FIVR pickle."""
    path = user_file(path) if path is not None else annotation_path(
        "fivr200k_official", progress=progress, offline=offline
    )
    data = read_json(path, "annotation file", AnnotationError)
    return expect(data, dict, path, "a JSON object")
