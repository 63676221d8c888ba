"""Compare two video files end to end with the runtime's models: decode, extract region features, ViSiL
similarity, matching segment (the pair itself is scored and located in scoring/pair.py)."""
from __future__ import annotations

import time
from pathlib import Path

from ..config import CompareConfig
from ..errors import ConfigError, FeatureStoreError
from ..media.video import video_info
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..scoring.calibration import ScoreIdentity, common_frames_rule, load_thresholds
from ..scoring.common_frames import CommonFrames, kept_frames
from ..scoring.common_frames_index import common_frames_of_collection
from ..scoring.pair import Comparison, VideoFeatures, compare_features, extract_video_features
from ..storage.store import read_identity
from .search import extractor_mismatch


def check_videos(*paths: str | Path) -> None:
    """Fail (one line naming the file) when a video cannot be opened: before minutes of model loading."""
    for path in paths:
        video_info(path)


def compare_videos(query: str | Path, target: str | Path, cfg: CompareConfig | Runtime,
                   runtime: Runtime | None = None, progress: Progress = SILENT) -> Comparison:
    """Similarity of two video files and where they match (localization.locate), with the models `cfg` names
    loaded onto `runtime` (features only: no network). `timings` of the result holds the seconds each stage took.
    With `cfg.thresholds` (from `s2vs calibrate`, checked to belong to these models first) it has a verdict.

    The earlier call `compare_videos(query, target, runtime)` still works: the runtime's models as loaded, the
    other settings CompareConfig's defaults."""
    loaded = isinstance(cfg, Runtime)  # the earlier call
    if loaded:
        if runtime is not None:
            raise TypeError("compare_videos(query, target, cfg, runtime, progress): the settings are a CompareConfig")
        if cfg.extractor is None:
            raise ValueError("compare_videos needs the runtime's models: call runtime.load_models(...) first")
        cfg, runtime = CompareConfig(), cfg
    thresholds = load_thresholds(cfg.thresholds) if cfg.thresholds is not None else None  # before model loading
    if not loaded:
        runtime.prepare(cfg)
    if thresholds is not None:  # compare does not normalize scores; it leaves frames out only with a collection
        leave_out = "without --keep-common-frames" if cfg.collection is not None else \
            "with the collection they were left out of: --collection FEATURES.h5"
        thresholds.check_applies(runtime_score_identity(runtime, cfg.fps), None,
                                 common_frames_rule(cfg.keep_common_frames or cfg.collection is None), leave_out)
    common = None
    if cfg.collection is not None and not cfg.keep_common_frames:  # the collection's boilerplate is no copy
        common = common_frames_of_collection(check_collection(cfg.collection, runtime, cfg.fps), progress)
    timings: dict[str, float] = {}
    features = []
    for path in (query, target):
        progress.stage(f"extracting features of {Path(path).name}", unit="frames")
        features.append(extract_video_features(path, runtime.extractor, cfg.fps, runtime.precision,
                                               cfg.frames_per_batch, compiled=runtime.compile, timings=timings, progress=progress))
    left_out = None
    if common is not None:
        features, left_out = zip(*(without_common(video, common) for video in features))
        left_out = dict(zip(("query", "target"), left_out))
    progress.stage("comparing", total=1, unit="pairs")
    started = time.perf_counter()
    comparison = compare_features(features[0], features[1], runtime.network, runtime.precision,
                                  cfg.min_match_seconds, cfg.min_match_score)
    timings["compare"] = time.perf_counter() - started
    progress.update(1)
    comparison.timings, comparison.thresholds, comparison.left_out = timings, thresholds, left_out
    return comparison


def check_collection(path: str, runtime: Runtime, fps: float) -> Path:
    """The collection's feature file, checked to be made as these videos' features are (ConfigError if not)."""
    if not Path(path).is_file():
        raise FeatureStoreError(f"{path}: feature file not found (--collection)")
    mismatch = extractor_mismatch(read_identity(path), runtime.extractor, fps)
    if mismatch:
        raise ConfigError(f"{path} was made with other settings than these videos' features: {mismatch}; "
                          "pass the options it was extracted with")
    return path


def without_common(video: VideoFeatures, common: CommonFrames) -> tuple[VideoFeatures, int]:
    """A video's frames used in matching (its times kept: matches are reported on the real video) and how many
    were left out; a video all boilerplate keeps every frame, with a warning."""
    kept = kept_frames(video.features, video.timestamps, common.keep(video.features.float().cpu().numpy()))
    if kept.all_left_out:
        video.warnings.append("every frame is boilerplate or low-information; all of them were compared")
    video.features, video.timestamps = kept.features, kept.times
    return video, kept.left_out


def runtime_score_identity(runtime: Runtime, fps: float) -> ScoreIdentity:
    """What the runtime's models make of videos sampled at `fps`: the identity thresholds are checked against."""
    extractor = runtime.extractor
    return ScoreIdentity.of(runtime.network, extractor.backbone_label, extractor.whitening_label, fps)
