"""Many videos through the network's attention over their region vectors at once, in reused buffers (what
ViSiL.index_video, the original's name, does to one video).

Re-ranking a thousand candidates, or a search's hundred, spends more on fresh memory than on arithmetic:
on 2 cores a new 140 MB tensor costs tens of milliseconds in page faults, about what the products over it
cost. So the frames of a block of targets are converted straight into one reused float32 buffer, attended
there in place (the attention's two intermediates in reused buffers too), and handed out as views of
it. The views stay valid until the next block goes through: `generation` tells them apart, and
VideoScorer.score refuses targets of an older one (BENCHMARKS.md, issue 16).

In fp32 the values are exactly ViSiL.index_video's; in bf16 the attention's tanh and context product run
in float32 on the bf16 hidden layer (autocast rounds them to bf16), which is no less precise and 3x faster
on the CPU.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..models.visil import ViSiL, compute_dtype
from ..compute import autocast
from .many_targets import padded_size

PRODUCT_FRAMES = 4_096  # target frames in one matrix product (bounds the intermediates' memory)


def frame_groups(lengths: list[int], max_frames: int) -> list[list[int]]:
    """Positions of consecutive items in groups of at most `max_frames` frames (a longer item alone)."""
    groups: list[list[int]] = []
    frames = 0
    for position, length in enumerate(lengths):
        if not groups or frames + length > max_frames:
            groups.append([])
            frames = 0
        groups[-1].append(position)
        frames += length
    return groups


class RegionAttention:
    """Applies a network's attention to videos' [T, R, D] region features, PRODUCT_FRAMES at a time."""

    def __init__(self, network: ViSiL, device: torch.device, precision: str,
                 size: Callable[[int], int] = padded_size):
        self.network, self.device, self.precision, self.size = network, device, precision, size
        self.generation = 0  # blocks attended so far: the views of older ones are overwritten
        self._buffers: dict[str, torch.Tensor] = {}

    @property
    def in_place(self) -> bool:
        """Whether the network's index_video is attention alone (binarization changes the vectors' size)."""
        return self.network.attention is not None and self.network.binarization is None

    @torch.inference_mode()
    def apply(self, videos: list[torch.Tensor]) -> list[torch.Tensor]:
        """Each video attended (index_video's values), as views of this object's buffer (valid until the next call)."""
        self.generation += 1
        if not videos:
            return []
        groups = frame_groups([len(v) for v in videos], PRODUCT_FRAMES)
        # Each group padded to one of a few sizes, so the CPU reuses its kernels (see many_targets.padded_size).
        sizes = [self.size(sum(len(videos[i]) for i in group)) for group in groups]
        frames = self._buffer("frames", (sum(sizes), *videos[0].shape[1:]), torch.float32)
        indexed: list[torch.Tensor] = []
        start = 0
        for group, size in zip(groups, sizes):
            block = frames[start:start + size]
            offset = 0
            for i in group:  # one pass: converted (and moved to the device) while copied into place
                block[offset:offset + len(videos[i])].copy_(videos[i])
                offset += len(videos[i])
            block[offset:].zero_()
            self._attend(block.view(-1, block.shape[-1]))
            indexed.extend(torch.split(block, [len(videos[i]) for i in group] + [size - offset])[:len(group)])
            start += size
        return indexed

    def _attend(self, flat: torch.Tensor) -> None:
        """x *= sigmoid(w2 . tanh(W1 x + b1)) over region vectors [N, D], in place."""
        attention = self.network.attention
        with autocast(self.device, self.precision):
            dtype = compute_dtype(flat)
        low = flat if dtype == flat.dtype else self._buffer("low", flat.shape, dtype).copy_(flat)
        hidden = self._buffer("hidden", flat.shape, dtype)
        torch.addmm(attention.transform.bias.to(dtype), low, attention.transform.weight.to(dtype).T, out=hidden)
        if dtype != torch.float32:  # the CPU's tanh is 3x slower on bf16 than converting and taking it in float32
            hidden = self._buffer("hidden32", flat.shape, torch.float32).copy_(hidden)
        weights = torch.sigmoid(hidden.tanh_() @ attention.context_vector.weight.T)
        flat.mul_(weights)

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """A reused buffer of at least this many elements, viewed as `shape` (grown as needed, never shrunk)."""
        count = int(np.prod(shape))
        held = self._buffers.get(name)
        if held is None or held.numel() < count or held.dtype != dtype:
            held = self._buffers[name] = torch.empty(count, dtype=dtype, device=self.device)
        return held[:count].view(shape)
