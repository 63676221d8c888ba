"""The review document of one `s2vs compare`: one query, one pair, its heatmap, matches and both videos."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..progress import SILENT, Progress
from .document import finish_document, heatmap_entry, new_document, pair_entry, query_entry
from .thumbnails import ThumbnailBatch, video_duration

if TYPE_CHECKING:  # torch: a report from saved results needs none
    from ..scoring.pair import Comparison

FEATURES_ONLY_NOTE = "features only: the similarity of raw region features, without the similarity network"


def compare_document(comparison: Comparison, fps: float, *, model: str, extractor: str | None,
                     random_weights: bool, progress: Progress = SILENT) -> dict:
    """The review document of `comparison` (videos sampled at `fps`), its thumbnails decoded."""
    query_video, target_video = Path(comparison.query), Path(comparison.target)
    thumbnails = ThumbnailBatch()
    thresholds = comparison.thresholds
    pair = pair_entry(comparison.target, comparison.similarity, comparison.matches,
                      target_video=target_video, query_video=query_video,
                      target_duration=duration_of(target_video, comparison.target_times, fps),
                      thumbnails=thumbnails,
                      heatmap=heatmap_entry(comparison.frame_similarity, comparison.query_times,
                                            comparison.target_times, fps),
                      verdict=comparison.verdict, threshold=None if thresholds is None else thresholds.threshold)
    notes = list(comparison.warnings)
    if comparison.features_only:
        notes.append(FEATURES_ONLY_NOTE)
    if not comparison.matches:
        notes.append(best_stretch_note(comparison.segment.as_dict()))
    if thresholds is not None:
        notes.append(f"verdict: copy when the similarity ≥ {thresholds.threshold:.4f} (precision "
                     f"{thresholds.precision:.3f} at calibration)")
    document = new_document("compare", f"{_name(comparison.query)} vs {_name(comparison.target)}", model=model,
                            extractor=extractor, random_weights=random_weights, notes=notes,
                            queries=[query_entry(comparison.query, video=query_video,
                                                 duration=duration_of(query_video, comparison.query_times, fps),
                                                 hits=[pair])])
    return finish_document(document, thumbnails, progress)


def duration_of(video: Path | None, times: np.ndarray | None = None, fps: float | None = None) -> float | None:
    """A video's length: as its file states it, else from its sampled frames' times (None when neither)."""
    seconds = video_duration(video) if video is not None else None
    if seconds is None and times is not None and len(times) and fps:
        seconds = float(np.max(times)) + 1.0 / fps
    return seconds


class VideoDurations:
    """Each video file's length as it states it, probed once per document (None: not at hand or unreadable)."""

    def __init__(self) -> None:
        self._seconds: dict[Path, float | None] = {}

    def __call__(self, video: Path | None) -> float | None:
        if video is None:
            return None
        if video not in self._seconds:
            self._seconds[video] = duration_of(video)
        return self._seconds[video]


def best_stretch_note(segment: dict) -> str:
    """Why a pair lists no match, and where it matches best all the same."""
    return (f"no copied part long or strong enough to list; the best-matching stretch is query "
            f"{_clock(segment['query_start'])}–{_clock(segment['query_end'])} ↔ target "
            f"{_clock(segment['target_start'])}–{_clock(segment['target_end'])}")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:04.1f}"


def _name(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
