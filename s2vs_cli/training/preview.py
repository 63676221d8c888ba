"""Previews of the training views: weak and strong clips, or FT overlays alone, drawn as strips of frames in one PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..atomic import atomic_write
from ..config import AugmentationOptions
from .overlays import overlay_emoji, overlay_text

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


def save_rows(clips: list[Tensor], path: str | Path, frames: int = 8) -> None:
    """One PNG (written whole or not at all): `frames` evenly spaced frames of each clip, one clip a row."""
    rows = [_strip(clip, frames) for clip in clips]
    width = max(row.shape[1] for row in rows)
    height = sum(row.shape[0] for row in rows) + PREVIEW_GAP * (len(rows) - 1)
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    top = 0
    for row in rows:
        canvas[top:top + row.shape[0], :row.shape[1]] = row
        top += row.shape[0] + PREVIEW_GAP
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as handle:
        Image.fromarray(canvas).save(handle, format="PNG")


def save_preview(weak: Tensor, strong: Tensor, path: str | Path, frames: int = 8) -> None:
    """One PNG: `frames` evenly spaced frames of the weak clip above the same of the strong clip."""
    save_rows([weak, strong], path, frames)


def overlay_rows(clip: Tensor, options: AugmentationOptions, generator: torch.Generator) -> list[Tensor]:
    """The frames of a uint8 [T, H, W, 3] clip with a text overlay on every one, then with an emoji on every one."""
    rows = []
    for overlay in (overlay_text, overlay_emoji):
        rows.append(torch.stack([torch.from_numpy(np.array(overlay(Image.fromarray(frame.cpu().numpy()), options,
                                                                   generator))) for frame in clip]))
    return rows
