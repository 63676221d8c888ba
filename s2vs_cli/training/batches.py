"""One process's training input for one step (docs/METHOD.md §5): B videos' weak and strong clips and the ViV labels.

Batches depend only on (seed, step, rank) (clips.py), so any process, any data-loading worker and a
resumed run build the same batch for the same step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TrainConfig
from ..errors import S2VSError
from .augmentations import parse_augmentations, strong_view, video_in_video, weak_view
from .clips import BatchPlan, ClipSource, item_generator


@dataclass
class Batch:
    """One process's input for one step: B weak and B strong clips (uint8 [B, W, S, S, 3]) and ViV labels.

    B is the batch size, or fewer for the last batch of an epoch when run_length is "epochs" (as the
    original's loader without drop_last); the losses and ViV take any B.
    """

    step: int
    weak: torch.Tensor
    strong: torch.Tensor
    viv_labels: torch.Tensor  # float32 [B, B]: identity, λ where a strong slot was pasted into another clip
    video_ids: list[str]


def build_batch(source: ClipSource, plan: BatchPlan, cfg: TrainConfig, augmentations: frozenset[str],
                step: int, rank: int = 0) -> Batch:
    """The weak and strong clips of process `rank`'s videos at `step` (docs/METHOD.md §5)."""
    window, options = cfg.window_size, cfg.augmentation
    weak, strong, ids = [], [], []
    for slot, index in enumerate(plan.video_indices(step, rank)):
        generator = item_generator(cfg.seed, step, rank, slot)
        frames = source.window(index, 2 * window, generator)
        weak.append(weak_view(frames, window, options, generator))
        strong.append(strong_view(frames, window, options, augmentations, generator))
        ids.append(source.videos[index].video_id)
    strong_clips = torch.stack(strong)
    if "ViV" in augmentations:
        # The batch-level draw gets the slot number after the items'.
        strong_clips, labels = video_in_video(strong_clips, options, item_generator(cfg.seed, step, rank, len(ids)))
    else:
        labels = torch.eye(len(ids))
    return Batch(step, torch.stack(weak), strong_clips, labels, ids)


class StepBatches(torch.utils.data.Dataset):
    """Batches for steps first, first + 1, ..., built in data-loading workers (one whole batch per item)."""

    def __init__(self, source: ClipSource, plan: BatchPlan, cfg: TrainConfig, rank: int, first: int, last: int):
        self.source, self.plan, self.cfg, self.rank = source, plan, cfg, rank
        self.first, self.last = first, last
        self.augmentations = parse_augmentations(cfg.augmentations)

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def __getitem__(self, index: int) -> Batch | str:
        try:
            return build_batch(self.source, self.plan, self.cfg, self.augmentations, self.first + index, self.rank)
        except S2VSError as e:  # a bad frame or video: its message, not a worker's traceback, reaches the user
            return str(e)
