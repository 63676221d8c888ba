"""The self-supervised training objective (docs/METHOD.md §5): positives from the ViV labels, InfoNCE and SSHN.

`similarity` is the 2B x 2B matrix in [0, 1] of every clip of a batch against every other (weak clips
first, then strong ones); the comparator's regularisation lives beside it in similarity.py.
"""
from __future__ import annotations

import torch

INFONCE_TEMPERATURE = 0.03
SSHN_FLOOR = 1e-3           # log(max(x, 1e-3)): one near-perfect pair cannot dominate the loss
NON_NEGATIVE_FILL = -100.0  # what positives count as when looking for the hardest negative


def positive_mask(viv_labels: torch.Tensor) -> torch.Tensor:
    """[B, B] ViV labels (identity, with λ at [i, j] for strong slot i mixed into clip j) -> [2B, 2B] bool.

    L = [I_B ; L_viv] (weak rows first); clips a and b are positives when (L Lᵀ)[a, b] > 0: the two views
    of a video, and a mixed slot with both views of the clip it was pasted into (and anything sharing them).
    """
    b = viv_labels.shape[0]
    labels = torch.cat([torch.eye(b, dtype=viv_labels.dtype, device=viv_labels.device), viv_labels])
    return (labels @ labels.T) > 0


def infonce_loss(similarity: torch.Tensor, positives: torch.Tensor,
                 temperature: float = INFONCE_TEMPERATURE) -> torch.Tensor:
    """Mean over rows of the mean over each row's positives b ≠ a of −log p_ab, where
    p_ab = e^{s_ab/τ} / (e^{s_ab/τ} + Σ_{k negative of a} e^{s_ak/τ} + 1e-6)."""
    n = similarity.shape[0]
    others = positives & ~torch.eye(n, dtype=torch.bool, device=similarity.device)
    logits = torch.exp(similarity / temperature)
    negatives_sum = (logits * (~positives)).sum(1, keepdim=True)
    log_p = torch.log(logits / (logits + negatives_sum + 1e-6))
    per_row = -(log_p * others).sum(1) / others.sum(1).clamp(min=1)
    return per_row.mean()


def sshn_losses(similarity: torch.Tensor, positives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hard-negative term, self term) of SSHN: −mean log(1 − hardest negative) and −mean log(s_aa)."""
    hardest = similarity.masked_fill(positives, NON_NEGATIVE_FILL).amax(1)
    hard_negative = -torch.log((1 - hardest).clamp(min=SSHN_FLOOR)).mean()
    self_similarity = -torch.log(torch.diagonal(similarity).clamp(min=SSHN_FLOOR)).mean()
    return hard_negative, self_similarity
