"""Training augmentations of S2VS (docs/METHOD.md §5): the weak and the strong view of a clip, and video-in-video.

Every training item is a window of 2·W consecutive frames of one video (W = `window`, 32 in the paper).
It yields two views of W frames each, each starting at its own random frame:

- the *weak* view: a temporal crop, then one RandomResizedCrop (scale 0.8–1) and a horizontal flip
  drawn once for the whole clip, so its frames stay spatially consistent;
- the *strong* view: optionally a temporal transformation (TT) of the 2·W frames first, then the same
  crop and flip (scale 0.5–1), optionally RandAugment (GT) drawn once per clip, and optionally frame
  transformations (FT: text, icon, blur) drawn independently for every frame.

Video-in-video (ViV) is the last step; it needs the whole batch of strong clips, so it lives in
`video_in_video` (viv.py) and the training loop calls it on the stacked batch. The transforms themselves
live by kind: temporal.py (TT), spatial.py (crop, flip, GT), overlays.py (FT), viv.py, preview.py; this
module composes them into the two views and re-exports their public names.

Clips are uint8 tensors [T, H, W, 3] (RGB, channels last), the layout the feature extractor takes.
Every random draw comes from the `torch.Generator` passed in, never from a global RNG, so a generator
seeded the same way gives bit-identical clips, in any process and any data-loading worker. The
probabilities and ranges are the fields of `AugmentationOptions` (config.py), with the paper's values.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..config import AugmentationOptions
from ..errors import ConfigError
from .overlays import frame_transforms, overlay_emoji, overlay_text
from .preview import save_preview
from .spatial import crop_and_flip, random_resized_crop_params, randaugment
from .temporal import (TEMPORAL_TRANSFORMS, fast_forward, pause, reverse, shuffle_dropout, slow_motion,
                       temporal_crop, temporal_transform)
from .viv import video_in_video, viv_box

__all__ = ["AUGMENTATION_NAMES", "TEMPORAL_TRANSFORMS", "fast_forward", "overlay_emoji", "overlay_text",
           "parse_augmentations", "pause", "random_resized_crop_params", "randaugment", "reverse", "save_preview",
           "shuffle_dropout", "slow_motion", "strong_view", "temporal_crop", "temporal_transform",
           "video_in_video", "viv_box", "weak_view"]

AUGMENTATION_NAMES = ("GT", "FT", "TT", "ViV")


def parse_augmentations(text: str) -> frozenset[str]:
    """'GT,FT,TT,ViV' (any subset, any order, case-insensitive, spaces ok; '' or 'none' = no augmentations)."""
    if text.strip().lower() in ("", "none"):
        return frozenset()
    canonical = {name.lower(): name for name in AUGMENTATION_NAMES}
    names = set()
    for token in text.split(","):
        token = token.strip()
        if not token:  # a stray comma ("GT,,FT" or "GT,") is harmless
            continue
        if token.lower() not in canonical:
            raise ConfigError(f"unknown augmentation '{token}'; valid: {', '.join(AUGMENTATION_NAMES)}")
        names.add(canonical[token.lower()])
    return frozenset(names)


def weak_view(clip: Tensor, window: int, options: AugmentationOptions, generator: torch.Generator) -> Tensor:
    """The weak view: temporal crop, then one resized crop (scale weak_scale_min..1) and flip -> [window, S, S, 3]."""
    clip = temporal_crop(clip, window, generator)
    frames = crop_and_flip(clip, options.weak_scale_min, options, generator)
    return frames.permute(0, 2, 3, 1).contiguous()


def strong_view(clip: Tensor, window: int, options: AugmentationOptions, augmentations: frozenset[str],
                generator: torch.Generator) -> Tensor:
    """The strong view: [TT], temporal crop, resized crop + flip, [GT], [FT per frame] -> [window, S, S, 3]."""
    if "TT" in augmentations:
        clip, _ = temporal_transform(clip, window, options, generator)
    clip = temporal_crop(clip, window, generator)
    frames = crop_and_flip(clip, options.strong_scale_min, options, generator)
    if "GT" in augmentations:
        frames = randaugment(frames, options.randaugment_ops, options.randaugment_magnitude, generator)
    frames = frames.permute(0, 2, 3, 1).contiguous()
    if "FT" in augmentations:
        frames = frame_transforms(frames, options, generator)
    return frames
