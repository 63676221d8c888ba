"""PCA whitening of region vectors (docs/METHOD.md §2): x -> L2normalise((x - mean) @ projection)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .resnet import REGION_DIMS

WHITENING_EPS = 1e-7
# The key a whitening file (the published layout, mean/d/V, plus this) carries when it was fitted on features of
# seeded random weights (`s2vs fit-pca` on such a store): features whitened with it are marked random weights.
RANDOM_SOURCE_KEY = "random_weights"


class PCAWhitening(nn.Module):
    """x -> L2normalise((x - mean) @ projection); projection [in_dims, dims] = V_k diag(1/sqrt(d_k + eps))."""

    def __init__(self, mean: torch.Tensor, projection: torch.Tensor, is_random: bool = False):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("projection", projection.float())
        self.is_random = is_random  # seeded random, or fitted on features of random weights (RANDOM_SOURCE_KEY)

    @property
    def dims(self) -> int:
        """Dimensions of a whitened vector."""
        return self.projection.shape[1]

    @classmethod
    def from_eigen(cls, mean: torch.Tensor, d: torch.Tensor, V: torch.Tensor, dims: int = 512,
                   is_random: bool = False) -> "PCAWhitening":
        """Build from the published layout: mean [D], eigenvalues d [D], eigenvectors V (columns)."""
        d, V = d.double(), V.double()
        keep = torch.argsort(d, descending=True)[:dims]
        projection = V[:, keep] / torch.sqrt(d[keep] + WHITENING_EPS)
        return cls(mean, projection, is_random)

    @classmethod
    def random(cls, seed: int = 0, in_dims: int = REGION_DIMS, dims: int = 512) -> "PCAWhitening":
        """A seeded random orthonormal projection (offline experiments and tests, not a learned whitening)."""
        generator = torch.Generator().manual_seed(seed)
        gaussian = torch.randn(in_dims, dims, generator=generator, dtype=torch.float64)
        projection, _ = torch.linalg.qr(gaussian)
        return cls(torch.zeros(in_dims), projection, is_random=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize((x.float() - self.mean) @ self.projection, p=2, dim=-1)
