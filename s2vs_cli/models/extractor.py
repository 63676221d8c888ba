"""Frames [T, H, W, 3] -> region features [T, R, D]: a backbone's region vectors, then PCA whitening.

The backbone (see `backbone.py`; ResNet-50 L3-iMAC by default) says what the features are; this module
runs it in batches, at reduced precision or compiled when asked, and whitens its output. The extractor
carries what it is: `backbone_label`, `whitening_label`, `label` and whether its weights are random.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn as nn

from .backbone import Backbone
from .backbone_registry import build_backbone
from .whitening import PCAWhitening

REDUCED_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Frames per CNN call on the CPU, whatever the requested batch (measured fastest on 2-core AVX-512).
CPU_BATCH = 8


class RegionExtractor(nn.Module):
    """Frames -> region features [N, R, D]: the backbone's region vectors, then PCA whitening when given."""

    def __init__(self, backbone: Backbone | None = None, whitening: PCAWhitening | None = None, *,
                 backbone_label: str | None = None, whitening_label: str | None = None, is_random: bool = False):
        super().__init__()
        self.backbone = backbone if backbone is not None else build_backbone()
        self.whitening = whitening
        self.backbone.eval()
        # What the weights are, for stores, reports and the "random weights" warning.
        self.backbone_label = backbone_label or f"{self.backbone.title} (unnamed weights)"
        self.whitening_label = whitening_label or ("none" if whitening is None else "unnamed")
        # Random weights anywhere: the backbone (the caller says) or the whitening (it says itself).
        self.is_random = bool(is_random or getattr(whitening, "is_random", False))
        # Inference-only variants of the backbone, made on first use: reduced-precision weight copies (so
        # weights are not re-cast on every call) and torch.compile'd trunks. Not part of the state dict.
        self._variants: dict[tuple[str, bool], Callable[[torch.Tensor], list[torch.Tensor]]] = {}

    @property
    def label(self) -> str:
        """Which weights the extractor carries: 'ResNet-50 imagenet, whitening vcdb'."""
        return f"{self.backbone_label}, whitening {self.whitening_label}"

    @property
    def dims(self) -> int:
        """Dimensions of one region feature."""
        return self.whitening.dims if self.whitening is not None else self.backbone.region_dims

    @property
    def device(self) -> torch.device:
        """Where the backbone's weights are."""
        return next(self.backbone.parameters()).device

    def optimize_for_inference(self) -> "RegionExtractor":
        """Rewrite the backbone for inference (for ResNet-50: BatchNorm folded, channels-last), same outputs."""
        self.eval()
        self.backbone.optimize_for_inference()
        self._variants.clear()
        return self

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        regions = self.backbone(frames)
        return self.whitening(regions) if self.whitening is not None else regions

    def _trunk(self, precision: str, compiled: bool) -> Callable[[torch.Tensor], list[torch.Tensor]]:
        """The backbone's feature maps at `precision`: fp32 weights, or a bf16/fp16 copy of them."""
        key = (precision, compiled)
        if key not in self._variants:
            backbone = self.backbone
            if precision != "fp32":
                backbone = copy.deepcopy(self.backbone).to(REDUCED_DTYPES[precision])
            trunk = backbone.feature_maps
            if compiled:
                import torch._inductor.config as inductor_config  # late: the compiler's modules, only with --compile

                inductor_config.freezing = True  # constant-fold and pre-pack the frozen weights
                trunk = torch.compile(trunk, dynamic=False)
            self._variants[key] = trunk
        return self._variants[key]

    @torch.inference_mode()
    def extract(self, frames: torch.Tensor, frames_per_batch: int = 32, precision: str = "fp32",
                compiled: bool = False) -> torch.Tensor:
        """Region features of a whole video -> float32 [T, R, D] on the model's device.

        On the CPU the CNN sees at most CPU_BATCH frames at a time: its throughput falls as batches
        grow and activations spill out of the caches. `compiled` uses torch.compile (slow to start,
        faster for long runs). Pooling and whitening always run in fp32.
        """
        device = self.device
        step = min(frames_per_batch, CPU_BATCH) if device.type == "cpu" else frames_per_batch
        trunk = self._trunk(precision, compiled)
        dtype = REDUCED_DTYPES.get(precision, torch.float32)
        outputs = []
        for start in range(0, frames.shape[0], step):
            batch = frames[start:start + step].to(device, non_blocking=True)
            count = batch.shape[0]
            if compiled and count < step:  # pad the last batch: one compiled shape, no recompilation
                batch = torch.cat([batch, batch.new_zeros((step - count, *batch.shape[1:]))])
            maps = [m[:count] for m in trunk(self.backbone.normalise(batch).to(dtype))]
            regions = self.backbone.region_vectors(maps)
            outputs.append(self.whitening(regions) if self.whitening is not None else regions)
        if outputs:
            return torch.cat(outputs)
        return torch.empty(0, self.backbone.regions, self.dims, device=device)
