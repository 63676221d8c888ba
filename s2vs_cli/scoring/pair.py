"""One pair of videos, scored and located the same way everywhere: compare, search's located hits, evaluate's
segments and review pairs, VSC22's matches.

`VideoFeatures` are a video's region features as sampled (decoded and extracted, held in memory, or read from a
feature file); `network_frame_map` is the pair's frame-to-frame map as the network sees it (short videos repeated
to the comparator's 4 frames, docs/METHOD.md §1.5); `compare_features` gives their similarity and where they
match (`Comparison`), `locate_pair` only where they match (`LocatedPair`): scoring/localization.locate on that
map, the repetition cut off again. A heatmap of a located pair's map is made at once by the caller's maker (the
review report's heatmap entry, at most 256 px a side), so the full map is never kept.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..compute import autocast
from ..errors import S2VSError
from ..media.video import DecodeSummary, sample_frames
from ..models.short_videos import repeat_factor
from ..models.visil import ViSiL, chamfer, frame_to_frame_similarity
from ..progress import SILENT, Progress
from ..storage.store import FeatureStore, frame_times
from .calibration import Thresholds
from .localization import Match, SegmentTimes, locate, sampled_map
from .similarity_range import bounded_similarity

if TYPE_CHECKING:  # torchvision is imported only where a video is extracted
    from ..models.extractor import RegionExtractor

# Makes a heatmap of a [Tq, Tt] frame map from the frame times and the sampling rate (report/document.heatmap_entry).
HeatmapMaker = Callable[[np.ndarray, np.ndarray, np.ndarray, float], dict]


@dataclass
class VideoFeatures:
    """Region features of one video and the time of each frame, as sampled (the network's repetition of
    a short video is compare_features' business)."""

    path: str
    features: torch.Tensor      # float32 [T, R, D]
    timestamps: np.ndarray      # float64 [T], seconds
    fps: float                  # sampling rate the frames were taken at
    lost_frames: int = 0        # frames a damaged file could not give
    lost_seconds: float = 0.0   # seconds a file cut short lacks of the duration it states
    warnings: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    """Similarity of a query and a target video, and where they match."""

    query: str
    target: str
    similarity: float                 # video-level similarity in [-1, 1] (features only: Chamfer of raw features)
    frames: tuple[int, int]           # (Tq, Tt) frames of each video as sampled
    segment: SegmentTimes             # the first match (none: where the videos match best); localization.locate
    frame_similarity: np.ndarray      # [Tq, Tt] frame-to-frame map the matches were found on
    query_times: np.ndarray
    target_times: np.ndarray
    features_only: bool
    matches: list[Match] = field(default_factory=list)       # every copied part, best first
    warnings: list[str] = field(default_factory=list)        # e.g. frames lost in a damaged file
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    thresholds: Thresholds | None = None                     # the calibration the verdict comes from
    left_out: dict[str, int] | None = None  # frames of each video ("query", "target") left out as boilerplate

    @property
    def verdict(self) -> str | None:
        """'copy' or 'not a copy' by the calibrated threshold (None without thresholds)."""
        return None if self.thresholds is None else self.thresholds.verdict(self.similarity)

    def as_dict(self) -> dict:
        """The JSON-ready summary (`s2vs compare --json`); with thresholds, the verdict and what it rests on."""
        summary = {"query": self.query, "target": self.target, "similarity": self.similarity,
                   "frames": list(self.frames), "segment": self.segment.as_dict(),
                   "matches": [m.as_dict() for m in self.matches],
                   "features_only": self.features_only}
        if self.left_out is not None:
            summary["left_out_frames"] = self.left_out
        if self.thresholds is not None:
            summary |= {"verdict": self.verdict, "threshold": self.thresholds.threshold,
                        "calibrated_precision": self.thresholds.precision}
        return summary


@dataclass
class LocatedPair:
    """Where a query and a target match, their lengths, and the heatmap of their map when one was asked for."""

    segment: SegmentTimes            # the first match (none: where the videos match best); localization.locate
    matches: list[Match]             # every copied part, best first
    query_duration: float            # seconds, from the frame times
    target_duration: float
    heatmap: dict | None = None      # what the caller's HeatmapMaker made of the map (the report's HEATMAP entry)


# --- a video's features, as a pair is compared on them --------------------------------------------------------

def extract_video_features(path: str | Path, extractor: RegionExtractor, fps: float = 1.0,
                           precision: str = "fp32", frames_per_batch: int = 32, min_frames: int = 1,
                           compiled: bool = False, timings: dict[str, float] | None = None,
                           progress: Progress = SILENT) -> VideoFeatures:
    """Decode `path` at `fps` and extract its region features [T, 9, D], `frames_per_batch` frames at a time.

    Frames are streamed from the decoder, so memory does not grow with the video's length. The frames are
    kept as sampled (compare_features repeats a short video for the network itself); a `min_frames` above 1
    repeats (doubles) videos shorter than that, as the original does. `timings` (if given)
    accumulates the seconds spent decoding and extracting; `progress` counts the frames of the current stage.
    """
    timings = timings if timings is not None else {}
    summary = DecodeSummary()
    frames = sample_frames(path, fps=fps, summary=summary)
    chunks, timestamps = [], []
    while True:
        started = time.perf_counter()
        batch = list(itertools.islice(frames, frames_per_batch))
        timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - started
        if not batch:
            break
        started = time.perf_counter()
        images = torch.from_numpy(np.stack([f.image for f in batch]))
        chunks.append(extractor.extract(images, frames_per_batch=frames_per_batch, precision=precision,
                                        compiled=compiled))
        timestamps.extend(f.timestamp for f in batch)
        timings["extract"] = timings.get("extract", 0.0) + time.perf_counter() - started
        progress.update(len(timestamps))
    features, times = torch.cat(chunks), np.array(timestamps)
    repeated = repeat_factor(len(times), min_frames)
    if repeated > 1:
        features, times = features.repeat(repeated, 1, 1), np.tile(times, repeated)
    return VideoFeatures(path=str(path), features=features, timestamps=times, fps=fps,
                         lost_frames=summary.lost_frames, lost_seconds=summary.lost_seconds, warnings=summary.warnings)


def as_video_features(label: str, features: np.ndarray, timestamps: np.ndarray, fps: float,
                      device: torch.device | str = "cpu", min_frames: int = 1) -> VideoFeatures:
    """Features held in memory (e.g. read from a feature file) as compare_features takes them: float32 on
    `device`, as sampled (a `min_frames` above 1 repeats a shorter video, doubling, with its frame times)."""
    repeated = repeat_factor(len(features), min_frames)
    tensor = torch.from_numpy(np.tile(np.asarray(features, dtype=np.float32), (repeated, 1, 1))).to(device)
    return VideoFeatures(path=label, features=tensor, timestamps=np.tile(np.asarray(timestamps), repeated), fps=fps)


def stored_video_features(store: FeatureStore, video_id: str, default_fps: float, device: torch.device | str = "cpu"
                          ) -> VideoFeatures:
    """A video of a feature file as compare_features takes it; frame times from the file,
    or from its sampling rate for files that do not record them."""
    record = store.read(video_id)
    return as_video_features(video_id, record.features, *frame_times(record, default_fps), device)


# --- the pair's frame map, similarity and matches -------------------------------------------------------------

def repeated_for_network(features: torch.Tensor) -> torch.Tensor:
    """A video's features [T, R, D] concatenated with itself (doubling) until it has the comparator's 4 frames."""
    repeated = repeat_factor(len(features))
    return features.repeat(repeated, *([1] * (features.ndim - 1))) if repeated > 1 else features


def network_frame_map(query: torch.Tensor, target: torch.Tensor, network: ViSiL | None) -> torch.Tensor:
    """The frame map of two videos' region features as sampled, as the network sees them: each repeated to 4
    frames when shorter, so the map is [rq·Tq, rt·Tt] (what the video similarity is computed on); of the
    network's indexed features, or of the raw features (network None). Under the caller's autocast."""
    query, target = repeated_for_network(query), repeated_for_network(target)
    return frame_to_frame_similarity(query, target) if network is None else network.pair_frame_map(query, target)


@torch.inference_mode()
def compare_features(query: VideoFeatures, target: VideoFeatures, network: ViSiL | None,
                     precision: str = "fp32", min_match_seconds: float = 2.0,
                     min_match_score: float | None = None) -> Comparison:
    """Compare two feature sets: full ViSiL with `network`, or features only when it is None; where they
    match by localization.locate, in frames as sampled and each video's own seconds."""
    with autocast(query.features.device, precision):
        f2f = network_frame_map(query.features, target.features, network)
        similarity = chamfer(f2f if network is None else network.comparator_map(f2f))
    bounded = bounded_similarity(float(similarity))
    if bounded is None:  # damage that escaped every check of the features: named, never reported as a score
        raise S2VSError(f"{query.path} against {target.path}: a similarity of {float(similarity):.6g}, outside "
                        "[-1, 1]; their features are damaged")
    f2f = sampled_map(f2f.float().cpu().numpy(), len(query.timestamps), len(target.timestamps))
    located = locate(f2f, query.timestamps, target.timestamps, query.fps, min_match_seconds, min_match_score)
    return Comparison(query=query.path, target=target.path, similarity=bounded, frames=located.frames,
                      segment=located.segment, matches=located.matches, frame_similarity=f2f,
                      query_times=query.timestamps, target_times=target.timestamps,
                      features_only=network is None,
                      warnings=[f"{v.path}: {w}" for v in (query, target) for w in v.warnings])


@torch.inference_mode()
def frame_map(query: VideoFeatures, target: VideoFeatures, network: ViSiL | None, precision: str = "fp32"
              ) -> np.ndarray:
    """The map matches are located on, as `s2vs compare` computes it (short videos repeated for the network), in
    float32 on the CPU."""
    with autocast(query.features.device, precision):
        f2f = network_frame_map(query.features, target.features, network)
    return f2f.float().cpu().numpy()


def locate_pair(query: VideoFeatures, target: VideoFeatures, network: ViSiL | None, precision: str = "fp32",
                min_match_seconds: float = 2.0, heatmap: HeatmapMaker | None = None,
                min_match_score: float | None = None) -> LocatedPair:
    """Where two videos match (segment and every copied part, as compare reports them); with a `heatmap`
    maker, what it makes of their map too."""
    return locate_on_map(frame_map(query, target, network, precision), query.timestamps, query.fps,
                         target.timestamps, target.fps, min_match_seconds, heatmap, min_match_score)


def locate_on_map(f2f: np.ndarray, query_times: np.ndarray, query_fps: float, target_times: np.ndarray,
                  target_fps: float, min_match_seconds: float = 2.0, heatmap: HeatmapMaker | None = None,
                  min_match_score: float | None = None) -> LocatedPair:
    """`locate_pair` on a frame map already computed (search keeps the maps it scored with); the map may be of
    the videos as the network saw them (short ones repeated), the times are of their frames as sampled."""
    f2f = sampled_map(f2f, len(query_times), len(target_times))
    located = locate(f2f, query_times, target_times, query_fps, min_match_seconds, min_match_score)
    entry = heatmap(f2f, query_times, target_times, query_fps) if heatmap is not None else None
    return LocatedPair(located.segment, located.matches, sampled_duration(query_times, query_fps),
                       sampled_duration(target_times, target_fps), entry)


def sampled_duration(times: np.ndarray, fps: float) -> float:
    """A video's length as its sampled frames show it: the last frame's time plus one frame."""
    return float(np.max(times)) + 1.0 / fps if len(times) else 0.0


def locate_stored_pairs(features: str | Path, pairs: Sequence[tuple[str, str]], network: ViSiL | None,
                        precision: str = "fp32", device: torch.device | str = "cpu",
                        heatmap: HeatmapMaker | None = None,
                        progress: Progress = SILENT) -> dict[tuple[str, str], LocatedPair]:
    """Locate each (query, target) pair of a feature file (with what `heatmap` makes of its map, when given); a
    pair with a video missing from the file is left out."""
    located: dict[tuple[str, str], LocatedPair] = {}
    progress.stage("locating the pairs to review", len(pairs), unit="pairs")
    with FeatureStore(features) as store:
        stored = set(store.ids())
        fps = store.identity.fps if store.identity is not None else 1.0  # the published files: 1 fps
        query_id, query = None, None
        for done, (q, t) in enumerate(pairs, 1):
            if q in stored and t in stored:
                if q != query_id:  # pairs come grouped by query: read each query once
                    query_id, query = q, stored_video_features(store, q, fps, device)
                target = stored_video_features(store, t, fps, device)
                located[(q, t)] = locate_pair(query, target, network, precision, heatmap=heatmap)
            progress.update(done)
    return located
