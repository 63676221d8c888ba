"""ResNet-50 L3-iMAC region vectors (docs/METHOD.md §1.4, §2): frames -> [N, 9, 3840], the one `Backbone` today.

Each of the four ResNet stages is max-pooled to a 3x3 grid, L2-normalised, and the four are concatenated
per region. Building a model never downloads anything: `loading.py` attaches weights.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .backbone import Backbone
from .checkpoints import check_state_dict

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Max-pool kernel per ResNet stage; stride ceil(s/2) makes every map 3x3 for a 224 input.
REGION_POOL_KERNELS = {"layer1": 28, "layer2": 14, "layer3": 6, "layer4": 3}
REGION_DIMS = 256 + 512 + 1024 + 2048  # 3840: the four stages concatenated


def build_resnet50() -> nn.Module:
    """An untrained torchvision ResNet-50 without its classifier (no download)."""
    import torchvision  # late: torchvision (1.2 s), which commands that never extract need not pay

    cnn = torchvision.models.resnet50(weights=None)
    cnn.fc = nn.Identity()
    return cnn


def fold_batchnorm(cnn: nn.Module) -> nn.Module:
    """Fold every BatchNorm of a ResNet into the convolution before it (inference only)."""
    cnn.conv1 = fuse_conv_bn_eval(cnn.conv1, cnn.bn1)
    cnn.bn1 = nn.Identity()
    for stage in (cnn.layer1, cnn.layer2, cnn.layer3, cnn.layer4):
        for block in stage:
            for i in (1, 2, 3):
                conv, bn = getattr(block, f"conv{i}"), getattr(block, f"bn{i}")
                setattr(block, f"conv{i}", fuse_conv_bn_eval(conv, bn))
                setattr(block, f"bn{i}", nn.Identity())
            if block.downsample is not None:
                conv, bn = block.downsample
                block.downsample = nn.Sequential(fuse_conv_bn_eval(conv, bn))
    return cnn


def to_model_input(frames: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float frames, NHWC or NCHW -> ImageNet-normalised float NCHW (channels-last memory)."""
    if frames.ndim != 4:
        raise ValueError(f"frames must be [N, H, W, 3] or [N, 3, H, W], got shape {tuple(frames.shape)}")
    x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
    if x.shape[-1] != 3 and x.shape[1] == 3:
        x = x.permute(0, 2, 3, 1)
    mean = x.new_tensor(IMAGENET_MEAN)
    std = x.new_tensor(IMAGENET_STD)
    # NHWC -> NCHW as a view: the data stays channels-last, which is what the convolutions want.
    return ((x - mean) / std).permute(0, 3, 1, 2)


def region_vectors(stage_maps: list[torch.Tensor]) -> torch.Tensor:
    """L3-iMAC: pool each stage's map to the last stage's grid, normalise, concatenate -> [N, R, 3840]."""
    pooled = []
    for name, fmap in zip(REGION_POOL_KERNELS, stage_maps):
        s = REGION_POOL_KERNELS[name]
        pooled.append(F.normalize(F.max_pool2d(fmap.float(), s, math.ceil(s / 2)), p=2, dim=1))
    grid = pooled[-1].shape[2:]
    pooled = [F.normalize(F.adaptive_max_pool2d(p, grid), p=2, dim=1) for p in pooled]
    x = torch.cat(pooled, 1).flatten(2).transpose(1, 2)
    return F.normalize(x, p=2, dim=-1)


class ResNet50LiMAC(Backbone):
    """ResNet-50 (torchvision layout, no classifier) pooled into 9 L3-iMAC region vectors of 3840 dims."""

    title = "ResNet-50"
    description = "ResNet-50 L3-iMAC"
    region_dims = REGION_DIMS
    regions = 9

    def __init__(self, cnn: nn.Module | None = None):
        super().__init__()
        self.cnn = cnn if cnn is not None else build_resnet50()
        self.cnn.eval()

    def normalise(self, frames: torch.Tensor) -> torch.Tensor:
        """ImageNet normalisation, NCHW (see to_model_input)."""
        return to_model_input(frames)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of layer1..layer4 for a normalised NCHW batch."""
        cnn = self.cnn
        x = cnn.maxpool(cnn.relu(cnn.bn1(cnn.conv1(x))))
        maps = []
        for stage in (cnn.layer1, cnn.layer2, cnn.layer3, cnn.layer4):
            x = stage(x)
            maps.append(x)
        return maps

    def region_vectors(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """L3-iMAC pooling of the four stage maps -> [N, 9, 3840]."""
        return region_vectors(maps)

    def load_weights(self, state: Mapping[str, torch.Tensor], path: Path) -> None:
        """A torchvision ResNet-50 state dict; its classifier (`fc.*`) is unused and dropped."""
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        check_state_dict(state, {k: tuple(v.shape) for k, v in self.cnn.state_dict().items()}, path)
        self.cnn.load_state_dict(state)

    def optimize_for_inference(self) -> ResNet50LiMAC:
        """Fold BatchNorm into the convolutions and switch to channels-last memory (same outputs)."""
        self.eval()
        fold_batchnorm(self.cnn)
        self.cnn.to(memory_format=torch.channels_last)
        return self
