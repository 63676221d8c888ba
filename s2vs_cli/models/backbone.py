"""What the library asks of a region extractor's CNN: frames in, region vectors out.

A `Backbone` normalises frames for its network, computes the feature maps its regions are pooled from,
and pools them into region vectors [N, regions, region_dims]. `RegionExtractor` adds everything else
(batching, reduced precision, compilation, whitening), so a new region extractor is one subclass plus
one line in `backbone_registry.BACKBONES`. The one implementation today is ResNet-50 L3-iMAC (`resnet.py`).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn


class Backbone(nn.Module):
    """A frozen CNN that turns frames into region vectors; subclasses implement the three steps."""

    title: str = ""        # the network's name in labels, e.g. "ResNet-50"
    description: str = ""  # what its region vectors are, for messages, e.g. "ResNet-50 L3-iMAC"
    region_dims: int = 0   # dimensions of one region vector, before whitening
    regions: int = 0       # region vectors per frame

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float frames, NHWC or NCHW -> the float NCHW input the network expects."""
        raise NotImplementedError

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The maps regions are pooled from, for a normalised batch (any dtype the weights have)."""
        raise NotImplementedError

    def region_vectors(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """Pool feature maps into float32 region vectors [N, regions, region_dims]."""
        raise NotImplementedError

    def load_weights(self, state: Mapping[str, torch.Tensor], path: Path) -> None:
        """Load a published or user state dict (CheckpointError naming `path` when it does not fit)."""
        raise NotImplementedError

    def optimize_for_inference(self) -> Backbone:
        """Rewrite the network for faster inference with the same outputs (default: eval mode only)."""
        return self.eval()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.region_vectors(self.feature_maps(self.normalise(frames)))
