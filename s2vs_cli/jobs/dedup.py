"""`s2vs dedup`: every pair of a collection's videos that shares copied content, grouped into duplicates.

Stages (each counted in `DedupResult.stages`):
1-2. candidate pairs: the batched self-join of the segment index (scoring/self_join.py: every video's segments
   as queries, then frame-level scores of the pairs they propose), or, with `exhaustive`, every unordered pair
   of videos with frames (small collections, checks of the self-join's recall);
3. each candidate pair scored in both directions by the scorer search and evaluate use (ViSiL, or raw Chamfer
   with `features_only`), the pair's similarity being their mean (ViSiL is asymmetric); its copied parts
   located as `s2vs compare` locates them (localization.locate, with the same floors) on the a-to-b map, with
   times on both videos. The share of each video's sampled duration inside the parts is its coverage, which
   makes the pair's relation (scoring/duplicate_groups.py). A candidate with no copied part passing the floors
   is no duplicate pair: it is not listed, only counted (`stages["no_match"]`).
Then groups (connected components of duplicate pairs; contains/overlap pairs link groups, never merge them),
each member's facts from its source file and a suggested keeper. With thresholds from `s2vs calibrate` every
listed pair gets a verdict; a pair judged "not a copy" is still listed (with its verdict) but joins no group
and no link, so no keeper choice, and no --print-removable line, rests on it.
With a person's decisions (`decisions`, storage/decisions.py) a pair marked not_copy is dropped before stage 3
(never listed), one marked copy is scored (added when stage 1-2 missed it), listed and grouped whatever its
score, relation or verdict, and a video marked keep is its group's keeper (`stages["decisions"]` counts them).
Several feature files are read as one collection: an id may be in only one of them. Nothing is ever deleted.
With an earlier result (`previous`), only the pairs of videos added since are looked for: jobs/dedup_increment.py.
"""
from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import DedupConfig
from ..datasets.segments import covered_time
from ..errors import ConfigError, FeatureStoreError
from ..media.facts import stored_video_facts
from ..models.short_videos import repeat_factor
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..scoring.calibration import Thresholds, common_frames_rule, load_thresholds
from ..scoring.common_frames import CommonFrames
from ..scoring.common_frames_index import common_frames_of_index, common_frames_of_stores
from ..scoring.duplicate_groups import (COPY, RELATIONS, DuplicateGroup, DuplicatePair, PairMatch, choose_keeper,
                                        duplicate_groups, pair_relation)
from ..scoring.pair import LocatedPair, as_video_features, locate_on_map, locate_pair, sampled_duration
from ..scoring.pair_decisions import decided_candidates, decided_reused
from ..scoring.retrieval import DATABASE_BLOCK, VideoScorer, repeat_to_min_frames
from ..scoring.self_join import candidate_pairs, index_join_lists
from ..scoring.similarity_range import bounded_similarity
from ..storage.decisions import Decisions, load_decisions
from ..storage.index import VideoIndex, open_index
from ..storage.store import FeatureStore
from .calibrate import store_score_identity
from .dedup_collection import Collection
from .dedup_increment import Increment, join_digest

# A video's facts from its source file: duration, width, height, fps, bitrate, size, source (None: unknown).
FactsReader = Callable[[FeatureStore, str], Mapping[str, Any] | None]
MAP_CELLS = 1 << 26  # frame-map cells kept at once while a block is located (256 MB of float32)
FACT_KEYS = ("duration", "width", "height", "fps", "bitrate", "size", "source")


@dataclass
class DedupResult:
    """What `s2vs dedup` found: groups, the listed pairs (most similar first) and what each stage did."""

    groups: list[DuplicateGroup]
    pairs: list[DuplicatePair]
    settings: dict[str, Any]
    random_weights: bool
    stages: dict[str, Any] = field(default_factory=dict)
    collection: dict[str, Any] | None = None  # what an increment checks and reuses (jobs/dedup_increment.py)
    decisions: dict[str, Any] | None = None   # the decisions file it was made with, whole: the page carries them on

    def relation_counts(self) -> dict[str, int]:
        """Listed pairs per relation (duplicate, contains, overlap)."""
        return {relation: sum(pair.relation == relation for pair in self.pairs) for relation in RELATIONS}

    def removable(self) -> tuple[list[str], list[str]]:
        """(source paths of every group's members other than its keeper that are still there, the ids of such
        members whose source is unknown or gone): what --print-removable prints, and what it cannot."""
        paths, unknown = [], []
        for group in self.groups:
            for member in group.removable:
                source = group.facts.get(member, {}).get("source")
                if source and Path(source).is_file():
                    paths.append(str(source))
                else:
                    unknown.append(member)
        return paths, unknown

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: groups, pairs, settings, random_weights, stages, and when there are any collection (after a
        self-join) and decisions (with --decisions)."""
        optional = {"collection": self.collection, "decisions": self.decisions}
        return {"groups": [group.as_dict() for group in self.groups], "pairs": [pair.as_dict() for pair in self.pairs],
                "settings": self.settings, "random_weights": self.random_weights, "stages": self.stages} | {
                key: value for key, value in optional.items() if value is not None}


def run_dedup(stores: list[str], cfg: DedupConfig, runtime: Runtime, progress: Progress = SILENT,
              facts: FactsReader | None = None) -> DedupResult:
    """Deduplicate the collection the feature files `stores` hold together, with the model `cfg` names loaded onto
    `runtime`; `facts` reads a video's source facts (default: recorded_source_facts)."""
    if not stores:
        raise ConfigError("give the collection's feature file(s): s2vs dedup FEATURES.h5 [MORE.h5 ...]")
    if cfg.collection is not None:  # compare's key, inherited: dedup finds the boilerplate of its own collection
        raise ConfigError("collection is compare's key: dedup leaves out the boilerplate of the files it is given")
    if len(stores) > 1 and not cfg.exhaustive:
        raise ConfigError("the self-join reads one feature file: join them first (s2vs merge ALL.h5 "
                          f"{' '.join(stores)}), or score every pair with --exhaustive")
    thresholds = load_thresholds(cfg.thresholds) if cfg.thresholds is not None else None  # before the models
    decisions = load_decisions(cfg.decisions) if cfg.decisions is not None else Decisions()
    increment = Increment(cfg.previous, cfg.exhaustive)  # an earlier result read (or refused) before the models too
    increment.apply_decisions(decisions)
    seconds, clock = {}, time.perf_counter()

    def timed(stage: str) -> None:  # the seconds each stage took, in `stages["seconds"]`
        nonlocal clock
        seconds[stage], clock = round(time.perf_counter() - clock, 3), time.perf_counter()

    with Collection(stores) as collection:
        runtime.prepare(cfg, videos=False)
        increment.check_settings(_settings(cfg, collection, runtime, thresholds),
                                 None if collection.identity is None else collection.identity.as_attrs())
        if thresholds is not None:  # dedup does not normalize scores
            thresholds.check_applies(store_score_identity(collection.paths[0], runtime.network, cfg), None,
                                     common_frames_rule(cfg.keep_common_frames))
        timed("start")
        stages: dict[str, Any] = {"videos": len(collection.ids)}
        if cfg.exhaustive:
            with_frames = [n for n, video in enumerate(collection.ids) if collection.home[video].shape(video)[0] > 0]
            if not cfg.keep_common_frames:
                collection.common = common_frames_of_stores(collection.paths, progress)
            candidates = [(i, j) for k, i in enumerate(with_frames) for j in with_frames[k + 1:]]
        else:
            candidates, stages["self_join"], with_frames = _indexed_candidates(collection, cfg, runtime, progress,
                                                                               increment)
            candidates = increment.to_score(candidates, collection.ids)
        stages["without_frames"] = len(collection.ids) - len(with_frames)
        if collection.common is not None:
            stages["common_frames"] = len(collection.common.prototypes)  # boilerplate frames found in many videos
        if cfg.decisions is not None:
            candidates, stages["decisions"] = decided_candidates(candidates, collection.ids, with_frames, decisions)
        stages["candidates"] = len(candidates)
        timed("candidates")
        scorer = VideoScorer(runtime.network, runtime.device, runtime.precision, few_shapes=True)
        group = runtime.group  # under torchrun each rank scores every world_size-th pair; all get every pair
        mine = candidates[group.rank::group.world_size]
        pairs = []
        for (i, j), (directions, located) in _score_pairs(collection, mine, scorer, cfg, progress).items():
            a, b = collection.ids[i], collection.ids[j]
            pair = _pair(a, b, directions, located, cfg.duplicate_coverage, collection.left_out_seconds(a),
                         collection.left_out_seconds(b), decisions.label(a, b))
            if pair is not None:
                pair.verdict = thresholds.verdict(pair.similarity) if thresholds is not None else None
                pairs.append(pair)
        pairs = [pair for part in group.gather(pairs) for pair in part]
        reused = decided_reused(increment.reused(), {frozenset((collection.ids[i], collection.ids[j]))
                                                     for i, j in candidates}, decisions)
        pairs += reused
        position = {video: n for n, video in enumerate(collection.ids)}
        pairs.sort(key=lambda p: (-p.similarity, position[p.a], position[p.b]))
        stages |= {"scored": len(candidates), "no_match": len(candidates) - len(pairs) + len(reused),
                   "pairs": len(pairs)} | ({} if cfg.previous is None else {"increment": increment.stages(len(reused))})
        timed("scoring")
        groups = _groups(collection, pairs, cfg.keep, facts or recorded_source_facts, progress, decisions.keep,
                         increment.earlier_facts())
        timed("groups")
        record = None if cfg.exhaustive else increment.record(collection, {collection.ids[n] for n in
                                                                          {n for pair in candidates for n in pair}})
    stages["seconds"] = seconds | {"total": round(sum(seconds.values()), 3)}
    random_weights = runtime.random_weights or collection.random_weights
    return DedupResult(groups, pairs, _settings(cfg, collection, runtime, thresholds), random_weights, stages,
                       record, decisions.as_dict() if cfg.decisions is not None else None)


def _settings(cfg: DedupConfig, collection: Collection, runtime: Runtime, thresholds: Thresholds | None) -> dict:
    """What the result was made with: the files, the model, the thresholds and every option that shapes it."""
    calibration = None if thresholds is None else {"file": thresholds.path, "threshold": thresholds.threshold,
                                                   "precision": thresholds.precision}
    settings = {"stores": [str(path) for path in collection.paths],
                "model": "features only" if runtime.network is None else runtime.network.label,
                "thresholds": calibration, "decisions": cfg.decisions}
    return settings | {name: getattr(cfg, name) for name in (
        "features_only", "exhaustive", "neighbours", "probes", "min_frame_level", "duplicate_coverage", "keep",
        "min_match_seconds", "min_match_score", "keep_common_frames")}


def _indexed_candidates(collection: Collection, cfg: DedupConfig, runtime: Runtime, progress: Progress,
                        increment: Increment) -> tuple[list[tuple[int, int]], dict, list[int]]:
    """The self-join's candidate pairs of the collection's one file, as positions in the collection's order (with
    an earlier result, only those of the videos `increment` finds touched), and the positions of the videos with
    frames (from the index: no video's header read)."""
    group = runtime.group
    if not group.is_main:
        group.barrier()  # rank 0 builds or updates the index (and the caches beside it) alone, first
    index, _ = open_index(collection.paths[0], progress=progress, listed=(collection.stamp, collection.ids))
    kept, keep_frames = None, None
    if not cfg.keep_common_frames:  # stage 2 leaves out the common frames the fit found (regions: stage 3)
        collection.common = common_frames_of_index(index, progress)
        kept = _fitted_kept(collection.common, index)
        keep_frames = None if kept is not None else lambda number, descriptors: collection.common.keep(descriptors)
    lists = index_join_lists(index, cfg.probes, progress)  # rank 0 trains or extends them, the others read them
    if group.is_main:
        group.barrier()
    increment.join = join_digest(lists)
    floor = {} if cfg.min_frame_level is None else {"min_frame_level": cfg.min_frame_level}
    found = candidate_pairs(index, neighbours=cfg.neighbours, kept=kept, keep_frames=keep_frames, group=group,
                            progress=progress, probes=cfg.probes, touching=increment.touching(index, collection),
                            lists=lists, **floor)
    position = {video: n for n, video in enumerate(collection.ids)}
    names = index.catalogue.ids
    pairs = {tuple(sorted((position[names[a]], position[names[b]])))
             for a, b in zip(found.first.tolist(), found.second.tolist())}
    with_frames = sorted(position[names[n]] for n in np.flatnonzero(index.catalogue.frames > 0).tolist())
    return sorted(pairs), dict(found.stages), with_frames


def _fitted_kept(common: CommonFrames, index: VideoIndex) -> np.ndarray | None:
    """Which of the index's frames stage 2 keeps: those the fit did not find common (bool [frames]; no product);
    None where the fit does not know them (the prototypes are then asked video by video)."""
    frames = int(index.frames.offsets[-1])
    if common.fitted_common is None or len(common.fitted_common) != (frames + 7) // 8:
        return None
    return ~np.unpackbits(common.fitted_common, count=frames, bitorder="little").astype(bool)


def _score_pairs(collection: Collection, pairs: list[tuple[int, int]], scorer: VideoScorer, cfg: DedupConfig,
                 progress: Progress) -> dict[tuple[int, int], tuple[tuple[float, float], LocatedPair]]:
    """Each pair (i < j) scored both ways and located on its i-to-j frame map: {(i, j): ((i to j, j to i), where)}.

    Every video is prepared once as a query against all its partners, which are read, indexed and scored in
    blocks (_blocks); a map is located as soon as it is made, so none outlives its block."""
    partners: dict[int, list[int]] = defaultdict(list)
    for i, j in pairs:
        partners[i].append(j)
        partners[j].append(i)
    ids = collection.ids
    frames = {n: collection.home[ids[n]].shape(ids[n])[0] for n in partners}
    scores: dict[tuple[int, int], float] = {}
    located: dict[tuple[int, int], LocatedPair] = {}
    progress.stage("scoring the candidate pairs both ways", total=2 * len(pairs), unit="directions")
    for query in sorted(partners):
        prepared = scorer.prepare_query(repeat_to_min_frames(collection.features(ids[query])))
        for block in _blocks(query, partners[query], frames):
            targets = scorer.prepare_targets([repeat_to_min_frames(collection.features(ids[t])) for t in block])
            maps: dict | None = {} if block[-1] > query else None  # only a pair's first video locates it
            for k, (target, score) in enumerate(zip(block, scorer.score(prepared, targets, maps).tolist())):
                scores[(query, target)] = _checked_score(collection, ids[query], ids[target], score)
                if query < target:
                    located[(query, target)] = _locate(collection, ids[query], ids[target], maps.get(k), scorer, cfg)
            progress.update(len(scores))
    return {pair: ((scores[pair], scores[pair[::-1]]), located[pair]) for pair in pairs}


def _blocks(query: int, partners: list[int], frames: dict[int, int]) -> list[list[int]]:
    """A query's partners in blocks scored together: those before it (scores only) apart from those after it
    (their frame maps kept for locating), at most DATABASE_BLOCK videos and MAP_CELLS map cells a block."""
    blocks: list[list[int]] = []
    for side in (sorted(t for t in partners if t < query), sorted(t for t in partners if t > query)):
        block, cells = [], 0
        for target in side:
            size = _network_frames(frames[query]) * _network_frames(frames[target]) if target > query else 0
            if block and (cells + size > MAP_CELLS or len(block) == DATABASE_BLOCK):
                blocks.append(block)
                block, cells = [], 0
            block.append(target)
            cells += size
        blocks += [block] if block else []
    return blocks


def _network_frames(frames: int) -> int:
    """Frames the network sees of a video: short ones repeated to the comparator's minimum."""
    return frames * repeat_factor(frames)


def _checked_score(collection: Collection, query: str, target: str, score: float) -> float:
    """A score within [-1, 1]; one outside is damage, named with its pair (as search names it)."""
    bounded = bounded_similarity(score)
    if bounded is None:
        raise FeatureStoreError(f"'{query}' against '{target}' gives a similarity of {score:.6g}, outside [-1, 1]; "
                                f"their features are damaged (`s2vs verify` checks {collection.home[query].path})")
    return bounded


def _locate(collection: Collection, query: str, target: str, scored_map, scorer: VideoScorer,
            cfg: DedupConfig) -> LocatedPair:
    """Where two stored videos match, as compare finds it: on the map they were scored with when it was kept
    (a long video scored in chunks has none: its map is made again)."""
    floors = {"min_match_seconds": cfg.min_match_seconds, "min_match_score": cfg.min_match_score}
    (query_times, query_fps), (target_times, target_fps) = (collection.times(video) for video in (query, target))
    if scored_map is not None:
        return locate_on_map(scored_map.numpy(), query_times, query_fps, target_times, target_fps, **floors)
    return locate_pair(*(as_video_features(video, collection.features(video), *collection.times(video), scorer.device)
                         for video in (query, target)), scorer.network, scorer.precision, **floors)


def _pair(a: str, b: str, directions: tuple[float, float], located: LocatedPair, duplicate_coverage: float,
          left_out_a: float = 0.0, left_out_b: float = 0.0, decision: str | None = None) -> DuplicatePair | None:
    """The listed pair of two scored, located videos; None when no copied part passed the floors, unless a person
    marked it a copy (`decision`). Coverage is of each video's time in matching: its duration less the seconds
    left out (boilerplate, blank frames)."""
    if not located.matches and decision != COPY:
        return None
    matches = [PairMatch(m.times.query_start, m.times.query_end, m.times.target_start, m.times.target_end, m.score)
               for m in located.matches]
    coverage = (_coverage([(m.a_start, m.a_end) for m in matches], located.query_duration - left_out_a),
                _coverage([(m.b_start, m.b_end) for m in matches], located.target_duration - left_out_b))
    relation, side = pair_relation(*coverage, duplicate_coverage)
    return DuplicatePair(a, b, (directions[0] + directions[1]) / 2, directions, matches, coverage, relation,
                         container={"a": a, "b": b}.get(side), decision=decision)


def _coverage(intervals: list[tuple[float, float]], duration: float) -> float:
    """The share of `duration` seconds inside `intervals` (overlaps counted once), at most 1."""
    return min(1.0, covered_time(intervals) / duration) if duration > 0 else 0.0


def _groups(collection: Collection, pairs: list[DuplicatePair], keep: str, facts: FactsReader,
            progress: Progress, chosen: list[str], earlier: Mapping[str, dict] | None = None) -> list[DuplicateGroup]:
    """The groups of the listed pairs, each member's facts read (or an `earlier` result's, while still true), and
    each group's keeper chosen (a member a person `chosen` to keep, else by the rule `keep`)."""
    members, links = duplicate_groups(collection.ids, pairs)
    progress.stage("reading the facts of the grouped videos", total=sum(map(len, members)), unit="videos")
    groups, done, chosen, earlier = [], 0, set(chosen), earlier or {}
    for group_members, group_links in zip(members, links):
        known = {}
        for video in group_members:
            before = earlier.get(video)
            known[video] = before if before is not None and _still_true(before) else \
                video_facts_or_stored(collection, video, facts)
            done += 1
            progress.update(done)
        keeper = choose_keeper(group_members, known, keep, chosen)
        groups.append(DuplicateGroup(group_members, keeper, known, group_links))
    return groups


def _still_true(facts: Mapping[str, Any]) -> bool:
    """Whether facts an earlier run read still hold: from the source file, while it is there with the same size;
    from the features (the source gone), while it is still gone. (The video's features are unchanged: checked.)"""
    source = facts.get("source")
    if set(facts) != {*FACT_KEYS, "from"}:
        return False
    if facts["from"] == "features":
        return not (source and Path(source).is_file())
    try:
        return facts["from"] == "source" and bool(source) and os.stat(source).st_size == facts.get("size")
    except OSError:
        return False


def video_facts_or_stored(collection: Collection, video_id: str, facts: FactsReader) -> dict[str, Any]:
    """A video's facts (FACT_KEYS) from its source file, `from` saying "source"; when the source is gone, the
    duration its stored frames span and the recorded source path, `from` saying "features"."""
    store = collection.home[video_id]
    found = facts(store, video_id)
    if found is not None:
        return {key: found.get(key) for key in FACT_KEYS} | {"from": "source"}
    times, fps = store.times(video_id, collection.fps(video_id))
    recorded = store.read(video_id).attrs.get("source")
    return dict.fromkeys(FACT_KEYS) | {"duration": round(sampled_duration(np.asarray(times), fps), 3),
                                       "source": None if recorded is None else str(recorded), "from": "features"}


def recorded_source_facts(store: FeatureStore, video_id: str) -> dict[str, Any] | None:
    """The facts (FACT_KEYS) of the source file the store recorded for `video_id` (media/facts.py); None when it
    records none, or the file is gone or unreadable."""
    facts = stored_video_facts(store, video_id)
    return None if facts.error is not None else facts.as_dict()