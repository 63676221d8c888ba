"""Where two videos match, found on their frame-to-frame map as `s2vs compare` finds it (the same map,
scoring/pair_map.py, and the same rule, scoring/localization.locate), and (for a review report) that map as a
small heatmap image, made at once so that the full map is never kept.

search and evaluate (its ranking errors, `locate_stored_pairs`) locate many pairs; only the downsampled
heatmap (report/document.heatmap_entry, at most 256 px a side) outlives each map.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..models.visil import ViSiL
from ..progress import SILENT, Progress
from ..runtime import autocast
from ..scoring.localization import Match, SegmentTimes, locate, sampled_map
from ..scoring.pair_map import network_frame_map

if TYPE_CHECKING:
    from .compare import VideoFeatures


@dataclass
class LocatedPair:
    """Where a query and a target match, their lengths, and the heatmap of their map when one was asked for."""

    segment: SegmentTimes            # the first match (none: where the videos match best); localization.locate
    matches: list[Match]             # every copied part, best first
    query_duration: float            # seconds, from the frame times
    target_duration: float
    heatmap: dict | None = None      # the report's HEATMAP entry (report/document.heatmap_entry)


@torch.inference_mode()
def frame_map(query: VideoFeatures, target: VideoFeatures, network: ViSiL | None, precision: str = "fp32"
              ) -> np.ndarray:
    """The map matches are located on, as `s2vs compare` computes it (short videos repeated for the network), in
    float32 on the CPU."""
    with autocast(query.features.device, precision):
        f2f = network_frame_map(query.features, target.features, network)
    return f2f.float().cpu().numpy()


def locate_pair(query: VideoFeatures, target: VideoFeatures, network: ViSiL | None, precision: str = "fp32",
                min_match_seconds: float = 2.0, heatmap: bool = False,
                min_match_score: float | None = None) -> LocatedPair:
    """Where two videos match (segment and every copied part, as compare reports them); with `heatmap`,
    their map as the report's HEATMAP entry too."""
    return locate_on_map(frame_map(query, target, network, precision), query.timestamps, query.fps,
                         target.timestamps, target.fps, min_match_seconds, heatmap, min_match_score)


def locate_on_map(f2f: np.ndarray, query_times: np.ndarray, query_fps: float, target_times: np.ndarray,
                  target_fps: float, min_match_seconds: float = 2.0, heatmap: bool = False,
                  min_match_score: float | None = None) -> LocatedPair:
    """`locate_pair` on a frame map already computed (search keeps the maps it scored with); the map may be of
    the videos as the network saw them (short ones repeated), the times are of their frames as sampled."""
    f2f = sampled_map(f2f, len(query_times), len(target_times))
    located = locate(f2f, query_times, target_times, query_fps, min_match_seconds, min_match_score)
    segment, matches = located.segment, located.matches
    entry = None
    if heatmap:
        from ..report.document import heatmap_entry

        entry = heatmap_entry(f2f, query_times, target_times, query_fps)
    return LocatedPair(segment, matches, sampled_duration(query_times, query_fps),
                       sampled_duration(target_times, target_fps), entry)


def sampled_duration(times: np.ndarray, fps: float) -> float:
    """A video's length as its sampled frames show it: the last frame's time plus one frame."""
    return float(np.max(times)) + 1.0 / fps if len(times) else 0.0


def locate_stored_pairs(features: str | Path, pairs: Sequence[tuple[str, str]], network: ViSiL | None,
                        precision: str = "fp32", device: torch.device | str = "cpu", heatmap: bool = True,
                        progress: Progress = SILENT) -> dict[tuple[str, str], LocatedPair]:
    """Locate each (query, target) pair of a feature file (with its heatmap unless told not to); a pair with a
    video missing from the file is left out."""
    from ..storage.store import FeatureStore
    from .compare import stored_video_features

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
