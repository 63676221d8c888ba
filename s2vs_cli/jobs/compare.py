"""Compare two videos end to end: decode, extract region features, ViSiL similarity, matching segment."""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import S2VSError
from ..media.video import DecodeReport, repeat_factor, sample_frames, video_info
from ..models.extractor import RegionExtractor
from ..models.visil import ViSiL, chamfer
from ..progress import SILENT, Progress
from ..runtime import Runtime, autocast
from ..scoring.calibration import ScoreIdentity, Thresholds
from ..scoring.localization import Match, SegmentTimes, locate, sampled_map
from ..scoring.pair_map import network_frame_map
from ..scoring.similarity_range import bounded_similarity


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
        if self.thresholds is not None:
            summary |= {"verdict": self.verdict, "threshold": self.thresholds.threshold,
                        "calibrated_precision": self.thresholds.precision}
        return summary


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
    report = DecodeReport()
    frames = sample_frames(path, fps=fps, report=report)
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
                         lost_frames=report.lost_frames, lost_seconds=report.lost_seconds, warnings=report.warnings)


def as_video_features(label: str, features: np.ndarray, timestamps: np.ndarray, fps: float,
                      device: torch.device | str = "cpu", min_frames: int = 1) -> VideoFeatures:
    """Features held in memory (e.g. read from a feature file) as compare_features takes them: float32 on
    `device`, as sampled (a `min_frames` above 1 repeats a shorter video, doubling, with its frame times)."""
    repeated = repeat_factor(len(features), min_frames)
    tensor = torch.from_numpy(np.tile(np.asarray(features, dtype=np.float32), (repeated, 1, 1))).to(device)
    return VideoFeatures(path=label, features=tensor, timestamps=np.tile(np.asarray(timestamps), repeated), fps=fps)


def stored_video_features(store, video_id: str, default_fps: float, device: torch.device | str = "cpu"
                          ) -> VideoFeatures:
    """A video of a feature file (store.FeatureStore) as compare_features takes it; frame times from the file,
    or from its sampling rate for files that do not record them."""
    from ..storage.store import frame_times

    record = store.read(video_id)
    return as_video_features(video_id, record.features, *frame_times(record, default_fps), device)


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


def check_videos(*paths: str | Path) -> None:
    """Fail (one line naming the file) when a video cannot be opened: before minutes of model loading."""
    for path in paths:
        video_info(path)


def compare_videos(query: str | Path, target: str | Path, runtime: Runtime, fps: float = 1.0,
                   frames_per_batch: int = 32, progress: Progress = SILENT,
                   min_match_seconds: float = 2.0, thresholds: Thresholds | None = None,
                   min_match_score: float | None = None) -> Comparison:
    """Similarity of two video files and where they match (localization.locate), with the runtime's models (no network
    loaded: features-only mode). `timings` of the result holds the seconds each stage took. With
    `thresholds` (from `s2vs calibrate`, checked to belong to these models first) the result has a verdict."""
    if runtime.extractor is None:
        raise ValueError("compare_videos needs the runtime's models: call runtime.load_models(...) first")
    if thresholds is not None:  # compare does not normalize scores
        thresholds.check_applies(runtime_score_identity(runtime, fps), None)
    timings: dict[str, float] = {}
    features = []
    for path in (query, target):
        progress.stage(f"extracting features of {Path(path).name}", unit="frames")
        features.append(extract_video_features(path, runtime.extractor, fps, runtime.precision, frames_per_batch,
                                               compiled=runtime.compile, timings=timings, progress=progress))
    progress.stage("comparing", total=1, unit="pairs")
    started = time.perf_counter()
    comparison = compare_features(features[0], features[1], runtime.network, runtime.precision, min_match_seconds,
                                  min_match_score)
    timings["compare"] = time.perf_counter() - started
    progress.update(1)
    comparison.timings, comparison.thresholds = timings, thresholds
    return comparison


def runtime_score_identity(runtime: Runtime, fps: float) -> ScoreIdentity:
    """What the runtime's models make of videos sampled at `fps`: the identity thresholds are checked against."""
    extractor = runtime.extractor
    return ScoreIdentity.of(runtime.network, extractor.backbone_label, extractor.whitening_label, fps)
