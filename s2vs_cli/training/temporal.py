"""Temporal augmentations (TT, docs/METHOD.md §5): the temporal crop of a view, and the transformations of the strong
view's 2·W frames (shuffle-dropout, fast-forward, slow motion, reverse, pause). Clips are uint8 [T, H, W, 3]."""
from __future__ import annotations

import torch
from torch import Tensor

from ..config import AugmentationOptions
from .draws import chance, randint, uniform

TEMPORAL_TRANSFORMS = ("shuffle_dropout", "fast_forward", "slow_motion", "reverse", "pause", "none")


def temporal_crop(clip: Tensor, window: int, generator: torch.Generator) -> Tensor:
    """`window` consecutive frames at a random start, after doubling a short clip until it is long enough."""
    if len(clip) == 0:
        raise ValueError("cannot crop an empty clip")
    while len(clip) < window:
        clip = torch.cat([clip, clip])
    # As the original: the start is uniform in [0, max(len - window, 1) - 1], so the very last
    # possible start (len - window) is never drawn when the clip is longer than the window.
    start = randint(generator, 0, max(len(clip) - window, 1) - 1)
    return clip[start:start + window]


def fast_forward(clip: Tensor, step: int) -> Tensor:
    """Every `step`-th frame, from the first."""
    return clip[::step]


def slow_motion(clip: Tensor) -> Tensor:
    """Every frame twice."""
    return clip.repeat_interleave(2, dim=0)


def reverse(clip: Tensor) -> Tensor:
    """The frames in reverse order."""
    return clip.flip(0)


def pause(clip: Tensor, start: int, duration: int) -> Tensor:
    """The clip with `duration` extra copies of frame `start` inserted before it (T + duration frames)."""
    index = torch.arange(len(clip))
    index = torch.cat([index[:start], index[start].repeat(duration), index[start:]])
    return clip[index]


def shuffle_dropout(clip: Tensor, options: AugmentationOptions, generator: torch.Generator) -> Tensor:
    """Temporal shuffle-dropout: cut into segments of w frames, maybe shuffle them, drop (remove or blank) some."""
    frames = len(clip)
    if frames == 0:
        return clip
    w = randint(generator, options.segment_min, options.segment_max)
    if frames < w:
        w = frames  # one segment of everything (the original does the same)
    count = frames // w  # the trailing `frames % w` frames are discarded, as in the original
    order = torch.arange(count)
    if chance(generator, options.segment_shuffle_p):
        order = torch.randperm(count, generator=generator)
    # Per segment: 0 kept, 1 removed, 2 content replaced (the original's encoding, whose sum is the test below).
    dropped = torch.rand(count, generator=generator, dtype=torch.float64) < options.segment_drop_p
    replaced = torch.rand(count, generator=generator, dtype=torch.float64) < options.segment_replace_p
    mask = dropped.long() * (1 + replaced.long())
    # The original drops segments only when 0 < Σ mask < segments, which (a replaced segment counting 2)
    # also skips some draws that would keep frames, e.g. one replaced segment out of two. When it does
    # not drop, it still returns the trimmed and possibly shuffled clip; so do we. The test also makes
    # sure at least one segment survives, so the clip is never empty.
    if not 0 < int(mask.sum()) < count:
        mask.zero_()
    height, width, channels = clip.shape[1:]
    pieces = []
    for segment in order.tolist():
        if mask[segment] == 1:
            continue
        piece = clip[segment * w:(segment + 1) * w]
        if mask[segment] == 2:
            # Each frame of a replaced segment becomes uniform noise or black, decided frame by frame.
            piece = torch.zeros_like(piece)
            for k in range(len(piece)):
                if chance(generator, options.noise_p):
                    piece[k] = torch.randint(0, 256, (height, width, channels), generator=generator,
                                             dtype=torch.uint8)
        pieces.append(piece)
    return torch.cat(pieces)


def temporal_transform(clip: Tensor, window: int, options: AugmentationOptions,
                       generator: torch.Generator) -> tuple[Tensor, str]:
    """TT: exactly one of shuffle-dropout, fast-forward, slow motion, reverse, pause or none; (clip, name)."""
    probabilities = (options.shuffle_dropout_p, options.fast_forward_p, options.slow_motion_p,
                     options.reverse_p, options.pause_p)
    u = uniform(generator, 0.0, 1.0)
    name, cumulative = "none", 0.0  # "none" takes whatever probability the five leave
    for candidate, p in zip(TEMPORAL_TRANSFORMS, probabilities):
        cumulative += p
        if u < cumulative:
            name = candidate
            break
    if name == "shuffle_dropout":
        clip = shuffle_dropout(clip, options, generator)
    elif name == "fast_forward":
        clip = fast_forward(clip, randint(generator, 2, 3))
    elif name == "slow_motion":
        clip = slow_motion(clip)
    elif name == "reverse":
        clip = reverse(clip)
    elif name == "pause":
        start = randint(generator, 0, max(len(clip) - 2, 0))
        duration = randint(generator, 0, max(window // 4 - 1, 0))
        clip = pause(clip, start, duration)
    return clip, name
