"""Compare two video files end to end with the runtime's models: decode, extract region features, ViSiL
similarity, matching segment (the pair itself is scored and located in scoring/pair.py)."""
from __future__ import annotations

import time
from pathlib import Path

from ..media.video import video_info
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..scoring.calibration import ScoreIdentity, Thresholds
from ..scoring.pair import Comparison, compare_features, extract_video_features


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
