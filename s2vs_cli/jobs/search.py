"""`s2vs search`: where else a clip appears in a collection, and where in those videos.

A cascade, since ViSiL is too heavy to run against every video of a large collection, or even against
a thousand videos of nine regions a frame within a second:
1. the query's segment descriptors look up the nearest segments in the store's faiss index
   (storage/index.py), and the videos they belong to are the candidates (`candidates`, default 1,000);
2. the candidates are scored on their frame descriptors, kept beside the index (frame-level Chamfer,
   scoring/frame_level.py), and the best `rerank` (default 100, at least `top_k`) go on;
3. those videos' region features are read from the HDF5 file and re-ranked with ViSiL (or raw
   Chamfer in features-only mode) exactly as `s2vs evaluate` scores; the best `top_k` get their
   matching segment located on the frame-to-frame map, as `s2vs compare` does.
Each result says how many videos each stage scored (`QueryResult.stages`).
Exhaustive search skips stages 1 and 2 and scores every stored video (to check what the index misses).
With a noise set (`normalize_with`) each hit also gets its similarity less the query's noise offset (see
scoring/normalization.py, one more score per noise video and query), and with thresholds from
`s2vs calibrate` a verdict: copy or not a copy.
`start_search` sets up the whole command (queries, models, index); `Searcher` is the two stages alone.
With a heatmap maker (`heatmap`: the review report's, passed in by the command), each located hit also keeps
what it makes of the hit's frame map (a small image).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import SearchConfig
from ..errors import ConfigError, FeatureStoreError, S2VSError
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..scoring.calibration import Thresholds, common_frames_rule, load_thresholds
from ..scoring.common_frames import CommonFrames, KeptFrames, LeftOut
from ..scoring.common_frames_index import common_frames_of_index, common_frames_of_store
from ..scoring.frame_level import frame_level_scores, query_frame_descriptors
from ..scoring.hits import QueryResult, SearchHit
from ..scoring.normalization import NoiseSet
from ..media.damage import stored_loss
from ..models.short_videos import repeat_factor
from ..scoring.pair import (HeatmapMaker, LocatedPair, as_video_features, extract_video_features, locate_on_map,
                            locate_pair, sampled_duration, stored_video_features)
from ..scoring.pair_decisions import decided_scores
from ..scoring.retrieval import VideoScorer, repeat_to_min_frames, score_prepared
from ..storage.decisions import Decisions, load_decisions
from ..storage.index import IndexUpdate, VideoIndex, open_index, segment_descriptors
from ..storage.index_checks import SearchIndexError
from ..storage.store import FeatureStore, StoreIdentity, frame_times

if TYPE_CHECKING:  # torchvision is imported only when a query video is extracted
    from ..models.extractor import RegionExtractor

DEFAULT_CANDIDATES = 1000
DEFAULT_RERANK = 100
DEFAULT_TOP_K = 20


@dataclass
class QueryVideo:
    """A query's region features and frame times, from a video file or from the store."""

    label: str                  # what the user named: a path or a stored id
    features: np.ndarray        # [T, R, D]
    timestamps: np.ndarray      # seconds, [T]
    fps: float
    stored_id: str | None = None  # the query's own id when it is in the store (left out of its results)
    warnings: list[str] = field(default_factory=list)  # what its decoding lost, when the file was damaged


def stored_query(store: FeatureStore, video_id: str, default_fps: float) -> QueryVideo:
    """A video already in the store, as a query."""
    record = store.read(video_id)
    times, fps = frame_times(record, default_fps)
    lost = stored_loss(*store.lost(video_id))  # read as for every hit
    return QueryVideo(video_id, np.asarray(record.features, dtype=np.float32), np.asarray(times), fps, video_id,
                      [lost] if lost else [])


class Searcher:
    """Searches one feature store: the index for candidates (None: exhaustive), their frame descriptors to
    keep the best `rerank`, the scorer to re-rank those; a noise set normalizes the scores, thresholds give
    each hit a verdict (both optional)."""

    def __init__(self, store_path: str | Path, scorer: VideoScorer, index: VideoIndex | None,
                 candidates: int = DEFAULT_CANDIDATES, top_k: int = DEFAULT_TOP_K, locate: int | None = None,
                 noise: NoiseSet | None = None, thresholds: Thresholds | None = None,
                 heatmap: HeatmapMaker | None = None,
                 rerank: int = DEFAULT_RERANK, min_match_seconds: float = 2.0, min_match_score: float | None = None,
                 common: CommonFrames | None = None, decisions: Decisions | None = None):
        self.store = FeatureStore(store_path)
        # The collection's boilerplate and low-information frames, left out of every video (None: all kept).
        self.common, self.left_out = common, LeftOut(common, index) if common is not None else None
        self.scorer, self.index, self.candidates, self.top_k = scorer, index, candidates, top_k
        self.rerank = max(rerank, top_k)  # ViSiL ranks everything it returns
        self.noise, self.thresholds, self.decisions = noise, thresholds, decisions  # decisions: a stored query's
        self.heatmap = heatmap  # makes each located hit's heatmap, for a review report
        self.locate = top_k if locate is None else locate  # hits that get their matching segment
        self.min_match_seconds, self.min_match_score = min_match_seconds, min_match_score  # as compare's floors
        self.default_fps = self.store.identity.fps if self.store.identity is not None else 1.0
        self._all_ids: list[str] | None = None

    def close(self) -> None:
        """Close the feature file (and the noise set's)."""
        self.store.close()
        if self.noise is not None:
            self.noise.close()

    def __enter__(self) -> "Searcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def search(self, query: QueryVideo) -> QueryResult:
        """The query's top hits, best first, each with its matching segment."""
        started = time.perf_counter()
        kept = self.left_out.query(query.features, query.timestamps) if self.left_out is not None else \
            KeptFrames(query.features, query.timestamps, 0)
        features = repeat_to_min_frames(kept.features)
        coarse: dict[str, float] = {}
        if self.index is not None:
            found = self.index.candidate_numbers(segment_descriptors(features), self.candidates,
                                                 exclude=query.stored_id)
            names = self.index.catalogue.ids
            coarse = {names[v]: score for v, score in found}
            numbers = self._shortlist(kept.features, [v for v, _ in found])
            ids = [names[v] for v in numbers]
            stages = {"index": len(found), "frame_level": len(found) - len(numbers) and len(found)}
        else:
            ids = [i for i in self._stored_ids() if i != query.stored_id]
            stages = {"index": 0, "frame_level": 0}
        stages["visil" if self.scorer.network is not None else "features_only"] = len(ids)
        prepared = {"query": self.scorer.prepare_query(features)}
        # The cascade's few re-ranked videos keep the frame maps they were scored with, to locate matches on
        # (exhaustive search scores them all: its located few are computed again).
        maps: dict[str, torch.Tensor] | None = {} if self.index is not None else None
        scores = score_prepared(self.store, prepared, ids, self.scorer, maps=maps,
                                select=self.left_out.select if self.left_out is not None else None)["query"]
        scores, marked, dropped = decided_scores(query.stored_id, scores, self.decisions)
        stages |= {"not_copy_dropped": dropped} if self.decisions is not None else {}  # counted with decisions only
        ranked = sorted(scores.items(), key=lambda item: -item[1])[:self.top_k]
        offset = self.noise.offsets(prepared, self.scorer)["query"] if self.noise is not None else None
        hits = []
        for rank, (video_id, score) in enumerate(ranked):
            hit = SearchHit(video_id, float(score), coarse=coarse.get(video_id), decision=marked.get(video_id))
            hit.left_out = self.left_out.count(video_id) if self.left_out is not None else None
            if rank < self.locate:
                located = self._locate(query, video_id, (maps or {}).get(video_id), kept)
                hit.segment, hit.matches, hit.heatmap = located.segment, located.matches, located.heatmap
                hit.target_duration = located.target_duration
            if offset is not None:
                hit.normalized = hit.similarity - offset
            if self.thresholds is not None:
                judged = hit.similarity if hit.normalized is None else hit.normalized
                hit.verdict, hit.threshold = self.thresholds.verdict(judged), self.thresholds.threshold
            hits.append(hit)
        warnings = [f"{query.label}: {warning}" for warning in query.warnings]
        if kept.all_left_out:
            warnings.append(f"{query.label}: every frame is boilerplate or low-information; all were compared")
        warnings += [f"{hit.video_id}: {lost}" for hit in hits if (lost := stored_loss(*self.store.lost(hit.video_id)))]
        return QueryResult(query.label, hits, len(ids), stages, time.perf_counter() - started, offset=offset,
                           duration=sampled_duration(query.timestamps, query.fps), warnings=warnings,
                           left_out=kept.left_out if self.left_out is not None else None)

    def run(self, sources: list[QuerySource], extractor: RegionExtractor | None, fps: float, precision: str,
            frames_per_batch: int) -> Iterator[QueryResult]:
        """Each query's result in turn; one that cannot be read or extracted gives its error, and the others go on."""
        for source in sources:
            if source.error is not None:
                yield QueryResult(source.label, error=source.error)
                continue
            try:
                yield self.search(load_query(source, self, extractor, fps, precision, frames_per_batch))
            except S2VSError as e:  # a bad query file: say so and go on with the others
                yield QueryResult(source.label, error=str(e))

    def _shortlist(self, features: np.ndarray, numbers: list[int]) -> list[int]:
        """The `rerank` candidates with the best frame-level scores, best first (all of them if no more)."""
        if len(numbers) <= self.rerank or self.index.frames is None:
            return numbers
        descriptors, lengths = self.index.frames.read(numbers)
        if self.left_out is not None:
            descriptors, lengths = self.left_out.frame_level(descriptors, lengths, numbers)
        scores = frame_level_scores(query_frame_descriptors(features), descriptors, lengths)
        best = np.argsort(-scores, kind="stable")[:self.rerank]
        return [numbers[i] for i in best]

    def _stored_ids(self) -> list[str]:
        if self._all_ids is None:  # videos without frames have nothing to compare
            self._all_ids = [i for i in self.store.ids() if self.store.shape(i)[0] > 0]
        return self._all_ids

    def _locate(self, query: QueryVideo, video_id: str, scored_map: torch.Tensor | None = None,
                kept: KeptFrames | None = None) -> LocatedPair:
        """Where the query and a stored video match, found as `s2vs compare` finds it (with the heatmap when
        a review report is asked for), on the map it was scored with when there is one; on the frames used
        in matching (`kept` of the query: all of them when not given), at their own times."""
        kept = kept or KeptFrames(query.features, query.timestamps, 0)
        floors = {"min_match_seconds": self.min_match_seconds, "min_match_score": self.min_match_score}
        if scored_map is not None:
            # The map of both videos as scoring saw them (under 4 frames: repeated); located on their frames as sampled.
            query_times, (target_times, target_fps) = kept.times, self.store.times(video_id, self.default_fps)
            target_times = self.left_out.times(video_id, target_times) if self.left_out is not None else target_times
            rows, columns = scored_map.shape
            repeat = repeat_factor(len(query_times)), repeat_factor(len(target_times))
            if (rows, columns) != (len(query_times) * repeat[0], len(target_times) * repeat[1]):
                raise FeatureStoreError(f"{self.store.path}: '{video_id}' has {len(target_times)} frame times for "
                                        f"its {columns // repeat[1]} frames")
            return locate_on_map(scored_map.numpy(), query_times, query.fps, target_times, target_fps,
                                 heatmap=self.heatmap, **floors)
        device = self.scorer.device
        target = stored_video_features(self.store, video_id, self.default_fps, device)
        if self.left_out is not None:
            self.left_out.select(video_id, target.features.cpu().numpy())
            keep = self.left_out.masks[video_id]
            target.features = target.features[torch.from_numpy(keep).to(device)]
            target.timestamps = target.timestamps[keep]
        return locate_pair(as_video_features(query.label, kept.features, kept.times, query.fps, device), target,
                           self.scorer.network, self.scorer.precision, heatmap=self.heatmap, **floors)


@dataclass
class QuerySource:
    """Where a query comes from: a video file to extract, an id already in the store, or why neither."""

    label: str
    path: Path | None = None
    stored_id: str | None = None
    error: str | None = None


def resolve_queries(names: list[str], stored: set[str]) -> list[QuerySource]:
    """Each name is a video file, a folder of videos (each one a query) or an id in the store."""
    from ..media.inputs import collect_inputs  # late: PIL, which s2vs index (importing this module) never needs

    sources = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = collect_inputs([path]).inputs
            sources.extend(QuerySource(str(item.path), path=item.path) for item in found)
            if not found:
                sources.append(QuerySource(name, error="no videos in this folder"))
        elif path.exists():
            sources.append(QuerySource(name, path=path))
        elif name in stored:
            sources.append(QuerySource(name, stored_id=name))
        else:
            sources.append(QuerySource(name, error="not a video file, a folder of videos or an id in the feature file"))
    return sources


def extractor_mismatch(identity: StoreIdentity | None, extractor: RegionExtractor, fps: float) -> str | None:
    """How the extractor given for file queries differs from what made the store (None: it matches)."""
    if identity is None:
        return None
    # Loader and storage type do not change the features' meaning: they are taken from the store.
    mine = StoreIdentity.of(extractor, fps, identity.loader, identity.dtype)
    return "; ".join(mine.differences(identity)) or None


def load_query(source: QuerySource, searcher: Searcher, extractor: RegionExtractor | None, fps: float, precision: str,
               frames_per_batch: int) -> QueryVideo:
    """The query's features: read from the store, or extracted from its video file."""
    if source.stored_id is not None:
        return stored_query(searcher.store, source.stored_id, searcher.default_fps)
    video = extract_video_features(source.path, extractor, fps, precision, frames_per_batch)
    return QueryVideo(source.label, video.features.float().cpu().numpy(), video.timestamps, fps,
                      warnings=video.warnings)


# --- the whole search, as `s2vs search` runs it ---------------------------------------------------------------

def check_feature_file(path: str | None) -> Path:
    """The collection's feature file, or why it cannot be used (missing option: ConfigError; file: exit 1)."""
    if path is None:
        raise ConfigError("give the collection's feature file: --database FEATURES.h5")
    if Path(path).is_dir():
        raise FeatureStoreError(f"{path}: is a folder; give the collection's feature file (FEATURES.h5)")
    if not Path(path).is_file():
        raise FeatureStoreError(f"{path}: feature file not found")
    return Path(path)


def index_summary(index: VideoIndex, update: IndexUpdate) -> dict:
    """What `s2vs index` reports: where the index is, what was done to it and what it holds."""
    return {"index": update.folder, "action": update.action, "videos": len(index), "entries": int(index.index.ntotal),
            "kind": index.kind, "added": update.added, "reason": update.reason, "note": update.note}


class SearchSession:
    """A search set up by `start_search`: iterate it for each query's result, in the order given."""

    def __init__(self, database: str, searcher: Searcher, sources: list[QuerySource], runtime: Runtime,
                 fps: float, frames_per_batch: int, index_update: dict | None):
        self.database, self.searcher, self.sources, self.runtime = database, searcher, sources, runtime
        self.fps, self.frames_per_batch = fps, frames_per_batch
        self.index_update = index_update  # index_summary() of the index used; None in exhaustive search
        self.results: list[QueryResult] = []

    @property
    def mode(self) -> str:
        """'exhaustive', or the kind of index that proposed the candidates."""
        return "exhaustive" if self.searcher.index is None else f"index ({self.searcher.index.kind})"

    @property
    def query_videos(self) -> dict[str, Path]:
        """The query video files, by the label their results bear (stored queries have none)."""
        return {source.label: source.path for source in self.sources if source.path is not None}

    def __iter__(self) -> Iterator[QueryResult]:
        for result in self.searcher.run(self.sources, self.runtime.extractor, self.fps, self.runtime.precision,
                                        self.frames_per_batch):
            self.results.append(result)
            yield result

    def summary(self) -> dict:
        """Every result so far, JSON-ready (`s2vs search --json` and `--output`)."""
        network, noise, thresholds = self.runtime.network, self.searcher.noise, self.searcher.thresholds
        summary = {"database": self.database, "mode": self.mode,
                   "model": "features only" if network is None else network.label,
                   "random_weights": self.runtime.random_weights or self.searcher.store.random_weights}
        if noise is not None:
            summary["normalization"] = noise.record.as_dict()
        if thresholds is not None:
            summary["calibration"] = {"file": thresholds.path, "threshold": thresholds.threshold,
                                      "precision": thresholds.precision, "recall": thresholds.recall}
        return summary | {"results": [r.as_dict() for r in self.results]}

    def close(self) -> None:
        """Close the feature file."""
        self.searcher.close()

    def __enter__(self) -> SearchSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_search(queries: list[str], cfg: SearchConfig, runtime: Runtime, progress: Progress = SILENT,
                 heatmap: HeatmapMaker | None = None) -> SearchSession:
    """Set up `s2vs search`: resolve the queries, load the models they need onto `runtime` (the extractor
    only for video-file queries, checked against what made the collection), open the noise set and the
    thresholds (checked to fit the scores), bring the index up to date. With a `heatmap` maker (the review
    report's), located hits keep their heatmaps."""
    database = check_feature_file(cfg.database)
    thresholds = load_thresholds(cfg.thresholds) if cfg.thresholds is not None else None
    decisions = load_decisions(cfg.decisions) if cfg.decisions is not None else None
    with FeatureStore(database) as store:
        stored, identity = set(store.ids()), store.identity
    sources = resolve_queries(queries, stored)
    videos = any(source.path is not None for source in sources)
    runtime.prepare(cfg, videos)  # stored queries only: no extractor needed
    if videos:
        mismatch = extractor_mismatch(identity, runtime.extractor, cfg.fps)
        if mismatch:
            raise ConfigError(f"{database} was made with other settings than the query videos would be: "
                              f"{mismatch}; pass the options it was extracted with")
    noise = _noise_set(cfg, identity, stored, database)
    try:
        if thresholds is not None:
            from .calibrate import store_score_identity  # late: the datasets and PIL (~250 ms), only with --thresholds

            thresholds.check_applies(store_score_identity(database, runtime.network, cfg),
                                     None if noise is None else noise.record,
                                     common_frames_rule(cfg.keep_common_frames))
        index, update = None, None
        if not cfg.exhaustive:
            index, opened = open_index(database, cfg.rebuild_index, progress)
            update = index_summary(index, opened)
        common = None if cfg.keep_common_frames else _common_frames(index, database, thresholds, progress)
    except BaseException:
        if noise is not None:
            noise.close()
        raise
    scorer = VideoScorer(runtime.network, runtime.device, runtime.precision)
    searcher = Searcher(database, scorer, index, cfg.candidates, cfg.top_k, noise=noise, thresholds=thresholds,
                        heatmap=heatmap, rerank=cfg.rerank, min_match_seconds=cfg.min_match_seconds,
                        min_match_score=cfg.min_match_score, common=common, decisions=decisions)
    return SearchSession(str(cfg.database), searcher, sources, runtime, cfg.fps, cfg.frames_per_batch, update)


def _common_frames(index: VideoIndex | None, database: Path, thresholds: Thresholds | None,
                   progress: Progress) -> CommonFrames | None:
    """The collection's boilerplate: cached beside the index, or from the store; damage is a note (each query that
    reads it says it too) and every frame is scored, unless thresholds fitted without them are to judge."""
    try:
        return common_frames_of_index(index, progress) if index is not None else \
            common_frames_of_store(database, progress)
    except (SearchIndexError, FeatureStoreError) as e:
        if thresholds is not None:
            raise
        progress.note(f"no frames left out as boilerplate: {e}")
        return None


def _noise_set(cfg: SearchConfig, identity: StoreIdentity | None, stored: set[str], database: Path) -> NoiseSet | None:
    """The noise set `cfg` asks for, checked to be made like the collection and to share no video with it."""
    if cfg.normalize_with is None:
        return None
    noise = NoiseSet(cfg.normalize_with, cfg.normalize_k, cfg.normalize_beta)
    try:
        noise.check_fits(identity, database)
        noise.check_unrelated(stored, str(database))
    except BaseException:
        noise.close()
        raise
    return noise
