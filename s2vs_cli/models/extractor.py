"""ResNet-50 L3-iMAC region vectors with PCA whitening: frames [T, H, W, 3] -> features [T, 9, 512].

SPEC §1–§2. Building a model never downloads anything: `weights.py`/`models.py` attach weights.
"""
from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torch.nn.utils.fusion import fuse_conv_bn_eval

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Max-pool kernel per ResNet stage; stride ceil(s/2) makes every map 3x3 for a 224 input.
REGION_POOL_KERNELS = {"layer1": 28, "layer2": 14, "layer3": 6, "layer4": 3}
REGION_DIMS = 256 + 512 + 1024 + 2048  # 3840: the four stages concatenated
WHITENING_EPS = 1e-7
REDUCED_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Frames per CNN call on the CPU, whatever the requested batch (measured fastest on 2-core AVX-512).
CPU_BATCH = 8


def build_resnet50() -> nn.Module:
    """An untrained torchvision ResNet-50 without its classifier (no download)."""
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


class PCAWhitening(nn.Module):
    """x -> L2normalise((x - mean) @ projection); projection [3840, dims] = V_k diag(1/sqrt(d_k + eps))."""

    def __init__(self, mean: torch.Tensor, projection: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("projection", projection.float())

    @property
    def dims(self) -> int:
        return self.projection.shape[1]

    @classmethod
    def from_eigen(cls, mean: torch.Tensor, d: torch.Tensor, V: torch.Tensor, dims: int = 512) -> "PCAWhitening":
        """Build from the published layout: mean [3840], eigenvalues d [3840], eigenvectors V (columns)."""
        d, V = d.double(), V.double()
        keep = torch.argsort(d, descending=True)[:dims]
        projection = V[:, keep] / torch.sqrt(d[keep] + WHITENING_EPS)
        return cls(mean, projection)

    @classmethod
    def random(cls, seed: int = 0, in_dims: int = REGION_DIMS, dims: int = 512) -> "PCAWhitening":
        """A seeded random orthonormal projection (offline experiments and tests, not a learned whitening)."""
        generator = torch.Generator().manual_seed(seed)
        gaussian = torch.randn(in_dims, dims, generator=generator, dtype=torch.float64)
        projection, _ = torch.linalg.qr(gaussian)
        return cls(torch.zeros(in_dims), projection)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize((x.float() - self.mean) @ self.projection, p=2, dim=-1)


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


class RegionExtractor(nn.Module):
    """Frames -> region features [N, 9, D]: ResNet-50 L3-iMAC, then PCA whitening when given."""

    def __init__(self, cnn: nn.Module | None = None, whitening: PCAWhitening | None = None):
        super().__init__()
        self.cnn = cnn if cnn is not None else build_resnet50()
        self.whitening = whitening
        self.cnn.eval()
        # Inference-only variants of the CNN, made on first use: reduced-precision weight copies (so
        # weights are not re-cast on every call) and torch.compile'd trunks. Not part of the state dict.
        self._variants: dict[tuple[str, bool], Callable[[torch.Tensor], list[torch.Tensor]]] = {}

    @property
    def dims(self) -> int:
        return self.whitening.dims if self.whitening is not None else REGION_DIMS

    @property
    def device(self) -> torch.device:
        return next(self.cnn.parameters()).device

    def optimize_for_inference(self) -> "RegionExtractor":
        """Fold BatchNorm into the convolutions and switch to channels-last memory (same outputs)."""
        self.eval()
        fold_batchnorm(self.cnn)
        self.cnn.to(memory_format=torch.channels_last)
        self._variants.clear()
        return self

    def stage_maps(self, x: torch.Tensor, cnn: nn.Module | None = None) -> list[torch.Tensor]:
        """Outputs of layer1..layer4 for a normalised NCHW batch."""
        cnn = cnn if cnn is not None else self.cnn
        x = cnn.maxpool(cnn.relu(cnn.bn1(cnn.conv1(x))))
        maps = []
        for stage in (cnn.layer1, cnn.layer2, cnn.layer3, cnn.layer4):
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = to_model_input(frames)
        regions = region_vectors(self.stage_maps(x))
        return self.whitening(regions) if self.whitening is not None else regions

    def _trunk(self, precision: str, compiled: bool) -> Callable[[torch.Tensor], list[torch.Tensor]]:
        """The CNN trunk that runs at `precision`: fp32 weights, or a bf16/fp16 copy of them."""
        key = (precision, compiled)
        if key not in self._variants:
            cnn = self.cnn
            if precision != "fp32":
                cnn = copy.deepcopy(self.cnn).to(REDUCED_DTYPES[precision])
            trunk = functools.partial(self.stage_maps, cnn=cnn)
            if compiled:
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True  # constant-fold and pre-pack the frozen weights
                trunk = torch.compile(trunk, dynamic=False)
            self._variants[key] = trunk
        return self._variants[key]

    @torch.inference_mode()
    def extract(self, frames: torch.Tensor, batch_size: int = 32, precision: str = "fp32",
                compiled: bool = False) -> torch.Tensor:
        """Region features of a whole video -> float32 [T, 9, D] on the model's device.

        On the CPU the CNN sees at most CPU_BATCH frames at a time: its throughput falls as batches
        grow and activations spill out of the caches. `compiled` uses torch.compile (slow to start,
        faster for long runs). Pooling and whitening always run in fp32.
        """
        device = self.device
        step = min(batch_size, CPU_BATCH) if device.type == "cpu" else batch_size
        trunk = self._trunk(precision, compiled)
        dtype = REDUCED_DTYPES.get(precision, torch.float32)
        outputs = []
        for start in range(0, frames.shape[0], step):
            batch = frames[start:start + step].to(device, non_blocking=True)
            count = batch.shape[0]
            if compiled and count < step:  # pad the last batch: one compiled shape, no recompilation
                batch = torch.cat([batch, batch.new_zeros((step - count, *batch.shape[1:]))])
            maps = [m[:count] for m in trunk(to_model_input(batch).to(dtype))]
            regions = region_vectors(maps)
            outputs.append(self.whitening(regions) if self.whitening is not None else regions)
        return torch.cat(outputs) if outputs else torch.empty(0, 9, self.dims, device=device)
