"""Reproducible random weights: build a model under a seed without disturbing the caller's random state."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block and restore the global RNG state after it."""
    with torch.random.fork_rng(devices=[]):
        # Only the CPU generator: torch.manual_seed would also (lazily) reseed CUDA, which
        # fork_rng(devices=[]) does not restore. Models are built on the CPU.
        torch.random.default_generator.manual_seed(seed)
        yield
