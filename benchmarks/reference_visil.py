"""A straightforward, unchunked implementation of ViSiL inference (docs/METHOD.md §3), shaped like the original code:
one einsum over all region pairs, padding as a separate op before each convolution, no tiling.

Benchmarks time it beside s2vs's implementation on the same machine, and check the two agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from s2vs_cli.models.visil import ViSiL


def f2f_einsum(query: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[Tq, R, D] x [Tt, R, D] -> [Tq, Tt]: every region pair at once, then max and mean."""
    sim = torch.einsum("aiok,bjpk->aiopjb", query[None], target[None])
    return sim.max(3).values.mean(2)[0, :, :, 0]


def comparator(network: ViSiL, f2f: torch.Tensor) -> torch.Tensor:
    """The comparator as the original writes it: pad, convolve, ReLU, pool; then Hardtanh."""
    head = network.visil_head
    x = f2f[None, None]
    for i, conv in enumerate((head.conv1, head.conv2, head.conv3)):
        x = F.relu(F.conv2d(F.pad(x, (1, 1, 1, 1)), conv.weight.contiguous(), conv.bias))
        if i < 2:
            x = F.max_pool2d(x, 2, 2)
    return F.hardtanh(F.conv2d(x, head.fconv.weight.contiguous(), head.fconv.bias))[0, 0]


def video_similarity(network: ViSiL, query: torch.Tensor, target: torch.Tensor, features_only: bool = False) -> torch.Tensor:
    """Similarity of two indexed videos; features_only skips the comparator."""
    f2f = f2f_einsum(query, target)
    out = f2f if features_only else comparator(network, f2f)
    return out.max(1).values.mean()
