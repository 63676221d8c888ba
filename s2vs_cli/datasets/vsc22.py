"""The Meta Video Similarity Challenge 2022 as a benchmark (`--dataset VSC22`): its query and reference
sets, its ground truth (the challenge's CSV of copied segments), the pairs predicted from similarities,
and both tracks' metrics (vsc.py; docs/METHOD.md §6.8).

The sets come from the challenge's metadata files (`*query_metadata.csv`, `*reference_metadata.csv`, a
`video_id` column) when they are given; otherwise every video of the challenge's id form that the
source holds (Q + digits: queries, R + digits: references), with those of the ground truth.
There is no public download of the ground truth: the user gives the file.
Library code: the standard library and the package's own modules.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..errors import ConfigError
from .benchmark import Benchmark, Evaluation, EvaluationError, Similarities
from .vsc import (ID_FORMS, CopiedSegment, ScoredPair, VideoSets, best_per_pair, pair_micro_ap, read_segments,
                  read_video_ids, segment_micro_ap)

NAME = "VSC22"
# The official limit on predicted pairs, 25 × the number of queries in all (vsc2022's descriptor evaluation
# keeps its 25·Nq best pairs; its baseline localizes as many): the matching track's candidates too.
PAIRS_PER_QUERY = 25
METADATA = {"queries": "*query_metadata.csv", "references": "*reference_metadata.csv"}
# The challenge's folders: query/Q….mp4 and reference/R….mp4 beside the metadata files.
VIDEO_PATTERNS = {"video": "*/{id}.mp4", "frames": "*/{id}"}
GROUND_TRUTH_LAYOUT = "query_id, ref_id, query_start, query_end, ref_start, ref_end"


@dataclass(frozen=True)
class VSC22Benchmark(Benchmark):
    """The challenge's queries (`queries`), references (`database`) and copied segments (`truth`)."""

    ground_truth_file: ClassVar[str] = "GT.csv"
    ground_truth_note: ClassVar[str] = (f"the challenge's copied segments ({GROUND_TRUTH_LAYOUT}); it has no public "
                                        "download")
    aliases: ClassVar[tuple[str, ...]] = ("VSC2022", "VSC-22", "VSC-2022")
    segment_predictions: ClassVar[bool] = True

    truth: tuple[CopiedSegment, ...]
    sets: VideoSets                 # what the ids were checked against (prediction files are checked the same way)

    @classmethod
    def from_ground_truth(cls, ground_truth: str | Path, annotations: str | Path | None = None,
                          available: Iterable[str] = ()) -> VSC22Benchmark:
        """The challenge's CSV; `annotations` is the folder of its metadata files, without which the queries and
        references are the ids of the challenge's form among `available` (e.g. a feature file's) and the CSV's."""
        return load_vsc22(ground_truth, video_sets(annotations), available=available)

    @classmethod
    def video_pattern(cls, loader: str) -> str:
        """The challenge's folders: */{id}.mp4 (video files), */{id} (frame folders)."""
        return VIDEO_PATTERNS.get(loader, "*/{id}")

    def copies(self) -> dict[str, frozenset[str]]:
        """Each query with a copy -> the references it copies (the ground truth's pairs)."""
        copies: dict[str, set[str]] = {}
        for segment in self.truth:
            copies.setdefault(segment.query_id, set()).add(segment.ref_id)
        return {query: frozenset(refs) for query, refs in copies.items()}

    def true_pairs(self) -> set[tuple[str, str]]:
        """The (query, reference) pairs with a copied segment."""
        return {segment.pair for segment in self.truth}

    def evaluate(self, similarities: Similarities, *, pairs_per_query: int = PAIRS_PER_QUERY,
                 segments: Sequence[CopiedSegment] | None = None, scored_from: str | None = None) -> Evaluation:
        """pair_uAP of the pairs predicted from `similarities` (see `predicted_pairs`), and matching_uAP of
        `segments` when given. Every true pair counts, those of missing videos too, as officially."""
        present = [q for q in self.queries if q in similarities]
        if not present:
            where = f" in {scored_from}" if scored_from else ""
            raise EvaluationError(f"no VSC22 query has similarities{where} (e.g. '{self.queries[0]}'); "
                                  "are these the challenge's videos?")
        pairs = predicted_pairs(similarities, self.queries, self.database, pairs_per_query)
        references = set(self.database)
        scored = {r for q in present for r in similarities[q] if r in references}
        metrics = {"pair_uAP": pair_micro_ap(self.true_pairs(), pairs)}
        if segments is not None:
            metrics["matching_uAP"] = segment_micro_ap(self.truth, segments)
        return Evaluation(self.name, metrics, queries=len(present), database=len(scored),
                          missing_queries=tuple(q for q in self.queries if q not in similarities),
                          missing_database=tuple(r for r in self.database if r not in scored))

    def evaluate_predictions(self, pairs: Sequence[ScoredPair] | None = None,
                             segments: Sequence[CopiedSegment] | None = None) -> Evaluation:
        """Both tracks on saved segments (the pair µAP from each pair's best segment, as the official
        matching track's pairwise µAP), or the descriptor track on saved pairs; predictions as given."""
        if segments is not None:
            metrics = {"pair_uAP": pair_micro_ap(self.true_pairs(), best_per_pair(segments)),
                       "matching_uAP": segment_micro_ap(self.truth, segments)}
        elif pairs is not None:
            metrics = {"pair_uAP": pair_micro_ap(self.true_pairs(), pairs)}
        else:
            raise ValueError("give predicted pairs or segments")
        return Evaluation(self.name, metrics, queries=len(self.queries), database=len(self.database))


def predicted_pairs(similarities: Similarities, queries: Sequence[str], references: Sequence[str],
                    pairs_per_query: int = PAIRS_PER_QUERY) -> list[ScoredPair]:
    """The descriptor track's predictions: every scored (query, reference) pair, best first, cut to the
    `pairs_per_query` × (queries with similarities) best, as the official evaluation cuts its candidates.
    Ties keep the order of the queries, then of the references."""
    present = [q for q in dict.fromkeys(queries) if q in similarities]
    pairs = [ScoredPair(q, r, float(similarities[q][r])) for q in present for r in references
             if r in similarities[q]]
    pairs.sort(key=lambda p: -p.score)  # stable
    return pairs[:pairs_per_query * len(present)]


def video_sets(metadata: str | Path | None, required: bool = True) -> VideoSets:
    """The query and reference lists of a folder holding the challenge's metadata CSVs; without a folder
    (or, not `required`, a folder without them) the sets are every id of the challenge's form."""
    if metadata is None:
        return VideoSets()
    folder = Path(metadata)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder; VSC22's --annotations is the folder holding the challenge's "
                          f"metadata ({METADATA['queries']}, {METADATA['references']})")
    found = {kind: sorted(folder.glob(pattern)) for kind, pattern in METADATA.items()}
    if not required and not any(found.values()):
        return VideoSets()
    for kind, files in found.items():
        if len(files) != 1:
            raise ConfigError(f"{folder}: {'no' if not files else len(files)} files match {METADATA[kind]} "
                              f"({', '.join(f.name for f in files) or 'the challenge lists its videos in one'}); "
                              "give the folder holding one of each")
    queries, references = (read_video_ids(found[kind][0]) for kind in ("queries", "references"))
    both = set(queries) & set(references)
    if both:
        raise ConfigError(f"{found['references'][0]}: '{sorted(both)[0]}' is also a query "
                          f"({found['queries'][0].name})")
    return VideoSets(frozenset(queries), frozenset(references), f"{folder}'s metadata")


def load_vsc22(ground_truth: str | Path, sets: VideoSets, available: Iterable[str] = (),
               predictions: Iterable[CopiedSegment | ScoredPair] = ()) -> VSC22Benchmark:
    """The benchmark from the challenge's ground-truth CSV; ConfigError naming the row for an id outside `sets`.

    Listed sets are the queries and references as they are. Otherwise they are the ids of the challenge's
    form among `available` (a feature file's or a folder's videos) and in the ground truth and `predictions`.
    """
    truth = read_segments(ground_truth, ground_truth=True, sets=sets)
    if not truth:
        raise ConfigError(f"{ground_truth}: the ground truth lists no copied segment")
    for axis in ("query", "ref"):
        if all(getattr(s, f"{axis}_end") == getattr(s, f"{axis}_start") for s in truth):
            raise ConfigError(f"{ground_truth}: no copied segment has a length on the {axis} axis "
                              f"({axis}_end equals {axis}_start in every row)")
    if sets.queries is not None and sets.references is not None:
        queries, references = sorted(sets.queries), sorted(sets.references)
    else:
        available = list(available)
        predictions = list(predictions)
        queries = _ids_of_form("query_id", available, truth, predictions)
        references = _ids_of_form("ref_id", available, truth, predictions)
    return VSC22Benchmark(name=NAME, queries=queries, database=references, source=Path(ground_truth),
                          truth=tuple(truth), sets=sets)


def _ids_of_form(column: str, available: list[str], truth: list[CopiedSegment],
                 predictions: list[CopiedSegment | ScoredPair]) -> list[str]:
    """Ids of the challenge's form for `column` (query_id or ref_id) in any of the sources, sorted."""
    form = ID_FORMS[column][1]
    ids = {i for i in available if form.fullmatch(i)}
    ids |= {getattr(item, column) for item in [*truth, *predictions]}
    return sorted(ids)
