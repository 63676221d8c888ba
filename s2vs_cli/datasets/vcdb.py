"""VCDB: copy pairs among the 528 core videos (the queries), optional distractors, and VCDB_mAP / VCDB_uAP.

Two annotation layouts are read: the original's (queries, positives, dataset) and the pairs layout of
xwen99/temporal_context_aggregation (video_pairs, index, negs), the published file.
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
from .scores import Rankings, align, mean_or_nan, relevance, result


@dataclass(frozen=True)
class VCDBBenchmark(Benchmark):
    """VCDB: the core videos are the queries; the database is them, plus the distractors if asked."""

    annotation_file: ClassVar[str] = "vcdb"

    positives: dict[str, frozenset[str]]   # query -> videos that share a copied segment with it
    distractors: list[str]                 # the file's distractors, in `database` only if asked for

    @classmethod
    def from_annotation(cls, name: str, data: Mapping, path: Path, *, distractors: bool = False) -> VCDBBenchmark:
        """VCDB from either layout; `distractors` adds the distractor videos to the database."""
        if "positives" in data:  # the original's own layout
            require(data, ("queries", "positives", "dataset"), path, "VCDB")
            queries = list(dict.fromkeys(data["queries"]))
            positives = {q: frozenset(data["positives"].get(q, ())) for q in queries}
            extra = data["dataset"]
        elif "video_pairs" in data:  # xwen99/temporal_context_aggregation's layout
            require(data, ("video_pairs", "index", "negs"), path, "VCDB")
            linked: dict[str, set[str]] = {}
            for pair in data["video_pairs"]:
                a, b = pair["videos"]
                if a != b:
                    linked.setdefault(a, set()).add(b)
                    linked.setdefault(b, set()).add(a)
            # Order the core videos as the file's index does (they come first there).
            queries = [v for v in dict.fromkeys(data["index"]) if v in linked]
            listed = set(queries)
            queries += [v for v in linked if v not in listed]
            positives = {q: frozenset(linked[q]) for q in queries}
            extra = data["negs"]
        else:
            raise AnnotationError(
                f"{path}: not a VCDB annotation file (expected 'queries', 'positives', 'dataset' "
                "or 'video_pairs', 'index', 'negs')"
            )
        core = set(queries)
        # The xwen99 file lists a few distractors twice.
        others = [v for v in dict.fromkeys(extra) if v not in core]
        return cls(
            name="VCDB",
            queries=queries,
            database=queries + others if distractors else list(queries),
            source=path,
            positives=positives,
            distractors=others,
        )

    def evaluate(self, similarities: Similarities, *, scored_from: str | None = None) -> Evaluation:
        """VCDB_mAP and VCDB_uAP (see `evaluate_vcdb`)."""
        return evaluate_vcdb(self, similarities, scored_from=scored_from)

    def copies(self) -> dict[str, frozenset[str]]:
        """Its copy pairs: each core video's `positives` (the videos it shares a copied segment with)."""
        return dict(self.positives)


def evaluate_vcdb(benchmark: VCDBBenchmark, similarities: Similarities, *,
                  scored_from: str | None = None) -> Evaluation:
    """VCDB: VCDB_mAP (mean over every present query, even one left without positives) and VCDB_uAP."""
    scores = align(similarities, benchmark.queries, benchmark.database, benchmark.name, scored_from)
    own = scores.own_column()
    rankings = Rankings(scores.matrix, ~np.isnan(scores.matrix) & ~own)
    relevant = relevance(scores, (benchmark.positives.get(q, ()) for q in scores.queries)) & scores.present & ~own
    metrics = {
        "VCDB_mAP": mean_or_nan(rankings.average_precisions(relevant)),
        "VCDB_uAP": rankings.micro_average_precision(relevant),
    }
    return result(benchmark.name, benchmark.database, scores, metrics)
