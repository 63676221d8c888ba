"""Previews of the training views: weak and strong clips drawn as strips of frames in one PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

PREVIEW_GAP = 4                                   # pixels between the frames of a preview strip


def _strip(clip: Tensor, frames: int) -> np.ndarray:
    """`frames` evenly spaced frames of a [T, H, W, 3] clip side by side, PREVIEW_GAP white pixels apart."""
    count = min(frames, len(clip))
    index = torch.linspace(0, len(clip) - 1, count).round().long()
    height, width = clip.shape[1:3]
    strip = np.full((height, count * width + (count - 1) * PREVIEW_GAP, 3), 255, dtype=np.uint8)
    for n, k in enumerate(index.tolist()):
        x = n * (width + PREVIEW_GAP)
        strip[:, x:x + width] = clip[k].cpu().numpy()
    return strip


def save_preview(weak: Tensor, strong: Tensor, path: str | Path, frames: int = 8) -> None:
    """One PNG: `frames` evenly spaced frames of the weak clip above the same of the strong clip."""
    rows = [_strip(weak, frames), _strip(strong, frames)]
    width = max(row.shape[1] for row in rows)
    canvas = np.full((rows[0].shape[0] + PREVIEW_GAP + rows[1].shape[0], width, 3), 255, dtype=np.uint8)
    canvas[:rows[0].shape[0], :rows[0].shape[1]] = rows[0]
    canvas[rows[0].shape[0] + PREVIEW_GAP:, :rows[1].shape[1]] = rows[1]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path)
