"""Random draws of the training augmentations, all from an explicit `torch.Generator` (never a global RNG),
so a generator seeded the same way gives bit-identical clips in any process and any data-loading worker."""
from __future__ import annotations

import torch


def uniform(generator: torch.Generator, low: float, high: float) -> float:
    """A float uniform in [low, high)."""
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def randint(generator: torch.Generator, low: int, high: int) -> int:
    """An integer uniform in [low, high] (both ends included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def chance(generator: torch.Generator, p: float) -> bool:
    """True with probability p (the coin is drawn even when p is 0 or 1, so later draws do not shift)."""
    return float(torch.rand((), generator=generator, dtype=torch.float64)) < p
