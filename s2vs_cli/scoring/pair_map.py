"""The frame-to-frame map of one pair of videos, computed once the same way for compare, search's located hits,
evaluate's segments and VSC22's matches: the network sees short videos repeated (docs/METHOD.md §1.5), and
scoring/localization.locate cuts the repetition off again.
"""
from __future__ import annotations

import torch

from ..media.video import repeat_factor
from ..models.visil import COMPARATOR_MIN_FRAMES, ViSiL, frame_to_frame_similarity


def repeated_for_network(features: torch.Tensor) -> torch.Tensor:
    """A video's features [T, R, D] concatenated with itself (doubling) until it has the comparator's 4 frames."""
    repeated = repeat_factor(len(features), COMPARATOR_MIN_FRAMES)
    return features.repeat(repeated, *([1] * (features.ndim - 1))) if repeated > 1 else features


def frame_map_tensor(query: torch.Tensor, target: torch.Tensor, network: ViSiL | None) -> torch.Tensor:
    """The [Tq, Tt] frame-to-frame map of two videos' region features: of the network's indexed features, or of
    the raw features (network None). Called under the caller's autocast."""
    if network is None:
        return frame_to_frame_similarity(query, target)
    return network.frame_to_frame_similarity(network.index_video(query), network.index_video(target))


def network_frame_map(query: torch.Tensor, target: torch.Tensor, network: ViSiL | None) -> torch.Tensor:
    """The frame map of two videos as sampled, as the network sees them: each repeated to 4 frames when shorter,
    so the map is [rq·Tq, rt·Tt] (what the video similarity is computed on). Under the caller's autocast."""
    return frame_map_tensor(repeated_for_network(query), repeated_for_network(target), network)
