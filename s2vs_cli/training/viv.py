"""Video-in-video (ViV, docs/METHOD.md §5), the last augmentation: it needs the whole batch of strong clips, so the
training loop calls it on the stacked batch. Clips are uint8 [B, T, H, W, 3]."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..config import AugmentationOptions
from .draws import chance, randint, uniform
from .spatial import resize


def viv_box(height: int, width: int, lam: float, cy: int, cx: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pasted box: side ratio √(1 − λ), centred at (cy, cx), clipped."""
    ratio = math.sqrt(1 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    top, bottom = min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height)
    left, right = min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width)
    return top, bottom, left, right


def video_in_video(batch: Tensor, options: AugmentationOptions, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """ViV on uint8 [B, T, H, W, 3]: some clips pasted, shrunk, into another; (new batch, float32 [B, B] labels)."""
    size = len(batch)
    labels = torch.eye(size, dtype=torch.float32)
    out = batch.clone()
    if size < 2:
        return out, labels  # nothing to mix with
    height, width = batch.shape[2], batch.shape[3]
    for i in range(size):
        if not chance(generator, options.viv_p):
            continue
        j = randint(generator, 0, size - 2)
        j += j >= i  # uniform over the other slots
        lam = uniform(generator, options.viv_lambda_min, options.viv_lambda_max)
        cy, cx = randint(generator, 0, height - 1), randint(generator, 0, width - 1)
        top, bottom, left, right = viv_box(height, width, lam, cy, cx)
        # Host and donor both come from the unmixed batch, so a clip mixed earlier never nests.
        mixed = batch[j].clone()
        if bottom > top and right > left:
            donor = resize(batch[i].permute(0, 3, 1, 2), bottom - top, right - left)
            mixed[:, top:bottom, left:right] = donor.permute(0, 2, 3, 1)
        out[i] = mixed
        labels[i, j] = lam
    return out, labels
