"""The learning-rate schedule of the paper's training (docs/METHOD.md §5): linear warm-up, then cosine decay.

Set before each optimiser step from the iteration number alone, so a resumed run follows the same curve.
Past decay_steps the rate stays at final_lr, as timm's CosineLRScheduler (the original's, one cycle) does.
The original's cosine length is its iteration count (TrainConfig.decay_iterations defaults to `iterations`),
so a run of whole epochs (run_length "epochs") spends its last steps beyond the asked iterations at final_lr.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import TrainConfig


@dataclass(frozen=True)
class LearningRateSchedule:
    """Warm-up from `warmup_lr` to `lr` over `warmup_steps`, then cosine from `lr` to `final_lr` at `decay_steps`."""

    lr: float = 5e-5
    warmup_lr: float = 5e-7
    final_lr: float = 5e-6
    warmup_steps: int = 1_000
    decay_steps: int = 30_000

    @classmethod
    def from_config(cls, cfg: TrainConfig) -> LearningRateSchedule:
        """The schedule of a training configuration (its decay_iterations resolved when it was built)."""
        return cls(cfg.lr, cfg.warmup_lr, cfg.final_lr, cfg.warmup_iterations, cfg.decay_iterations)

    def __call__(self, step: int) -> float:
        """The learning rate at iteration `step` (0-based)."""
        if step < self.warmup_steps:
            return self.warmup_lr + step * (self.lr - self.warmup_lr) / self.warmup_steps
        if step >= self.decay_steps:
            return self.final_lr
        # The cosine runs on the raw step (not shifted by the warm-up), as in the original.
        return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1 + math.cos(math.pi * step / self.decay_steps))
