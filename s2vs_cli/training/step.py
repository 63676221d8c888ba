"""One optimiser step of the similarity network (docs/METHOD.md §5): the frozen backbone's features of a batch, the
loss InfoNCE + λ·SSHN + r·regularisation, and AdamW."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import TrainConfig
from ..compute import autocast
from .batches import Batch
from .losses import infonce_loss, positive_mask, sshn_losses


@dataclass
class StepLosses:
    """The loss terms of one step (floats, for logging)."""

    loss: float
    infonce: float
    hard_negative: float
    self_similarity: float
    regularisation: float


def batch_features(extractor, batch: Batch, device: torch.device, precision: str,
                   frames_per_batch: int) -> torch.Tensor:
    """Region features of the batch's 2B clips (weak first) from the frozen backbone -> [2B, W, 9, D]."""
    clips = torch.cat([batch.weak, batch.strong])
    n, frames = clips.shape[:2]
    features = extractor.extract(clips.flatten(0, 1), frames_per_batch, precision=precision)
    # extract() runs in inference mode; a plain copy can enter the autograd graph of the network.
    return features.clone().view(n, frames, *features.shape[1:]).to(device)


def loss_terms(similarity: torch.Tensor, regularisation: torch.Tensor, viv_labels: torch.Tensor,
               cfg: TrainConfig) -> tuple[torch.Tensor, StepLosses]:
    """Total = InfoNCE + λ·(hard negative + self) + r·regularisation (docs/METHOD.md §5) and its terms."""
    similarity = similarity.float()
    positives = positive_mask(viv_labels.to(similarity.device))
    infonce = infonce_loss(similarity, positives, cfg.temperature)
    hard_negative, self_similarity = sshn_losses(similarity, positives)
    total = infonce + cfg.sshn_weight * (hard_negative + self_similarity) + cfg.regularization_weight * regularisation
    terms = (total, infonce, hard_negative, self_similarity, regularisation)
    return total, StepLosses(*(float(term.detach()) for term in terms))


def training_step(network: torch.nn.Module, features: torch.Tensor, viv_labels: torch.Tensor,
                  optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, lr: float,
                  cfg: TrainConfig, precision: str) -> StepLosses:
    """One optimiser step of the similarity network on a batch's features.

    Under torchrun `network` is wrapped in DistributedDataParallel: each rank's loss stays within its own
    batch (no all-gather of similarities, as the original) and backward() averages the ranks' gradients.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(features.device, precision):
        similarity, regularisation = network(features)
        total, losses = loss_terms(similarity, regularisation, viv_labels, cfg)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        total.backward()
        optimizer.step()
    return losses
