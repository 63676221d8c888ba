"""The ViSiL similarity network as used by S2VS (docs/METHOD.md §3): indexing, Chamfer similarity, video comparator.

Shapes: a video is [T, R, D] (frames, regions, dims); a batch of videos [N, T, R, D] with masks [N, T].
Inference on one pair is computed in chunks (frame-to-frame map) and tiles (comparator) so memory stays
bounded for hour-long videos; both give the same numbers as the straightforward computation. Scoring one
query against many targets in padded batches is `scoring/many_targets.py`.
"""
from __future__ import annotations

import hashlib
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .short_videos import COMPARATOR_MIN_FRAMES

# Elements of the [rows*R, cols*R] region-similarity block computed at once (~128 MB in fp32).
CHUNK_ELEMENTS = 1 << 25
# Comparator tiles: output side in input frames (multiple of 4 so pooling windows line up) and the halo
# each tile reads beyond its edges; 8 input frames = the 2 output cells that zero padding reaches.
TILE_FRAMES = 1024
TILE_HALO = 8


class Attention(nn.Module):
    """Region attention: x * sigmoid(w2 . tanh(W1 x + b1))."""

    def __init__(self, dims: int = 512):
        super().__init__()
        self.transform = nn.Linear(dims, dims)
        self.context_vector = nn.Linear(dims, 1, bias=False)
        nn.init.xavier_uniform_(self.context_vector.weight)
        nn.init.xavier_uniform_(self.transform.weight)
        nn.init.zeros_(self.transform.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.sigmoid(self.context_vector(torch.tanh(self.transform(x))))
        return x * weights, weights


class Binarization(nn.Module):
    """Binary codes: sign(normalise(x) @ W) at inference, erf(./sqrt(2 sigma)) as the soft sign in training."""

    def __init__(self, dims: int = 512, bits: int = 512, sigma: float = 1e-6):
        super().__init__()
        self.W = nn.Parameter(torch.randn(dims, bits))
        self.sigma = sigma

    @property
    def bits(self) -> int:
        return self.W.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x, p=2, dim=-1) @ self.W
        return torch.erf(x / math.sqrt(2 * self.sigma)) if self.training else torch.sign(x)


class VideoComparator(nn.Module):
    """CNN over a frame-to-frame map [N, 1, Tq, Tt] -> [N, 1, Tq//2//2, Tt//2//2] (before Hardtanh)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.conv3 = nn.Conv2d(64, 128, 3)
        self.fconv = nn.Conv2d(128, 1, 1)
        for conv in (self.conv1, self.conv2, self.conv3, self.fconv):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        # Channels-last weights match the channels-last activations below (loading a state dict keeps them so).
        self.to(memory_format=torch.channels_last)

    def forward(self, sim: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is None:
            # Zero padding of 1 around each 3x3 convolution, as in the original (pad then conv, padding 0).
            # Channels-last activations make the CPU pooling and convolutions several times faster.
            x = F.relu(F.conv2d(sim, self.conv1.weight, self.conv1.bias, padding=1))
            x = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2)
            x = F.relu(F.conv2d(x, self.conv2.weight, self.conv2.bias, padding=1))
            x = F.max_pool2d(x, 2)
            x = F.relu(F.conv2d(x, self.conv3.weight, self.conv3.bias, padding=1))
            # The 1x1 convolution to one channel is a weighted sum over channels (a matrix-vector product
            # on channels-last activations).
            out = x.permute(0, 2, 3, 1) @ self.fconv.weight.view(-1) + self.fconv.bias
            return out.unsqueeze(1), None
        keep = mask.bool()
        x = sim.masked_fill(~keep, 0.0)
        for i, conv in enumerate((self.conv1, self.conv2, self.conv3)):
            x = F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1).masked_fill(~keep, 0.0))
            if i < 2:
                x = F.max_pool2d(x, 2)
                mask = F.max_pool2d(mask, 2)
                keep = mask.bool()
        return self.fconv(x).masked_fill(~keep, 0.0), mask

    def forward_padded(self, sim: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Maps [N, 1, H, W] zero-padded at the bottom and right, each valid over its own `rows` x `columns`
        ([N] each) -> (outputs before Hardtanh [N, 1, H//4, W//4], valid output rows [N], columns [N]).

        Equal to running each map alone at its own size: cells past a map's size are zeroed before every
        convolution (what its own zero padding would read) and pooling drops an odd last row or column
        (floor), as the unpadded pooling does. Lets evaluation batch targets of different lengths, and
        round shapes up to a few sizes that the CPU's convolution kernels have already been built for.
        """
        x = sim
        for i, conv in enumerate((self.conv1, self.conv2, self.conv3)):
            height, width = x.shape[-2:]
            row_mask = torch.arange(height, device=x.device) < rows[:, None]
            column_mask = torch.arange(width, device=x.device) < columns[:, None]
            x = x * (row_mask[:, :, None] & column_mask[:, None, :]).to(x.dtype)[:, None]
            x = F.relu(F.conv2d(x, conv.weight, conv.bias, padding=1))
            if i < 2:
                x = F.max_pool2d(x.contiguous(memory_format=torch.channels_last), 2)
                rows, columns = rows // 2, columns // 2
        out = x.permute(0, 2, 3, 1) @ self.fconv.weight.view(-1) + self.fconv.bias
        return out.unsqueeze(1), rows, columns


def chamfer(sim: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over rows of the max over columns of [..., rows, cols] (masked cells excluded)."""
    if mask is None:
        return sim.amax(-1).mean(-1)
    keep = mask.bool()
    row_max = sim.masked_fill(~keep, -torch.inf).amax(-1)
    row_kept = keep.any(-1)
    return row_max.masked_fill(~row_kept, 0.0).sum(-1) / row_kept.sum(-1)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype matrix products on `x` run in: the autocast dtype when autocast is on, else x's own."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


def frame_to_frame_similarity(query: torch.Tensor, target: torch.Tensor | list[torch.Tensor],
                              chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Chamfer frame similarity of q [Tq, R, D] and t [Tt, R, D] -> [Tq, Tt]; for N targets of equal
    length (a [N, Tt, R, D] tensor or a list) -> [N, Tq, Tt].

    S[i, j] = mean over query regions of the max over target regions of <q[i, o], t[j, p]>. Computed a
    block of query frames at a time so the [Tq*R, Tt*R] region map never exists whole.
    """
    batched = isinstance(target, list) or target.ndim == 4
    targets = list(target) if batched else [target]
    n, (tt, rt, d) = len(targets), targets[0].shape
    tq, rq, _ = query.shape
    dtype = compute_dtype(query)
    # Columns ordered (target, region, frame): the max over target regions then reduces a middle axis,
    # which vectorises far better than a max over a trailing axis of 9. Built with one copy (and cast
    # once, rather than autocast re-casting the targets for every block of query frames).
    columns = query.new_empty((n, rt, tt, d), dtype=dtype)
    for i, t in enumerate(targets):
        columns[i].copy_(t.transpose(0, 1))
    columns = columns.view(n * rt * tt, d)
    rows_per_chunk = max(1, chunk_elements // max(1, n * rq * tt * rt))
    out = query.new_empty((n, tq, tt), dtype=torch.float32)
    for start in range(0, tq, rows_per_chunk):
        block = query[start:start + rows_per_chunk].to(dtype)
        rows = block.shape[0]
        region_sim = block.reshape(rows * rq, d) @ columns.T  # [rows*Rq, N*Rt*Tt]
        out[:, start:start + rows] = region_sim.view(rows, rq, n, rt, tt).amax(3).mean(1).transpose(0, 1)
    return out if batched else out[0]


class ViSiL(nn.Module):
    """ViSiL head: index videos once, then compare pairs (evaluation) or all N x N pairs (training)."""

    def __init__(self, dims: int = 512, attention: bool = True, binarization: bool = False, binary_bits: int = 512,
                 *, label: str = "untrained", is_random: bool = False):
        super().__init__()
        if attention and binarization:
            raise ValueError("attention and binarization cannot be used together")
        self.dims = dims
        # What the weights are: a published name, a checkpoint path or "random (seed N)".
        self.label = label
        self.is_random = is_random
        self.attention = Attention(dims) if attention else None
        self.binarization = Binarization(dims, binary_bits) if binarization else None
        self.visil_head = VideoComparator()

    def config(self) -> dict:
        """Constructor arguments, stored in checkpoints so they rebuild the same network."""
        return {"dims": self.dims, "attention": self.attention is not None,
                "binarization": self.binarization is not None,
                "binary_bits": self.binarization.bits if self.binarization is not None else 512}

    def weights_digest(self) -> str:
        """sha256 (hex) of the config and every weight as they are now: what thresholds are bound to, the same
        whichever file holds the weights (model.pth or checkpoint.pth, with or without DDP's prefix)."""
        digest = hashlib.sha256(json.dumps(self.config(), sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
            digest.update(f"{name} {values.shape}".encode())
            digest.update(values)
        return digest.hexdigest()

    def index_video(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Apply attention or binarization to region features [.., T, R, D]; padded frames zeroed."""
        if self.attention is not None:
            x, _ = self.attention(x)
        if self.binarization is not None:
            x = self.binarization(x)
        if mask is not None:
            x = x.masked_fill(~mask.bool()[..., None, None], 0.0)
        return x

    def frame_to_frame_similarity(self, query: torch.Tensor, target: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """Frame-to-frame map of indexed features [Tq, Tt] (or [N, Tq, Tt] for N equal-length targets)."""
        sim = frame_to_frame_similarity(query, target)
        if self.binarization is not None:
            sim = sim / self.binarization.bits
        return sim

    def pair_frame_map(self, query: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Frame-to-frame map [Tq, Tt] of two videos' region features [T, R, D], each indexed first."""
        return self.frame_to_frame_similarity(self.index_video(query), self.index_video(target))

    def comparator_map(self, f2f: torch.Tensor, tile: int = TILE_FRAMES) -> torch.Tensor:
        """Comparator output after Hardtanh for f2f [Tq, Tt] or [N, Tq, Tt], tiled for large maps."""
        batched = f2f.ndim == 3
        maps = f2f if batched else f2f.unsqueeze(0)
        tq, tt = maps.shape[-2:]
        if min(tq, tt) < COMPARATOR_MIN_FRAMES:
            raise ValueError(f"the comparator needs at least {COMPARATOR_MIN_FRAMES} frames a side, got {tq}x{tt} "
                             "(repeat short videos, as decode_video does)")
        if tq <= tile + 2 * TILE_HALO and tt <= tile + 2 * TILE_HALO:
            out = self.visil_head(maps.unsqueeze(1))[0][:, 0]
        else:
            out = self._tiled_comparator(maps, tile)
        out = F.hardtanh(out)
        return out if batched else out[0]

    def _tiled_comparator(self, maps: torch.Tensor, tile: int) -> torch.Tensor:
        """Comparator over tiles with a halo, so only one tile's activations are in memory at a time."""
        if tile % 4:
            raise ValueError("tile must be a multiple of 4")
        n, tq, tt = maps.shape
        out = maps.new_empty(n, tq // 2 // 2, tt // 2 // 2)
        for r0 in range(0, tq, tile):
            r1 = min(r0 + tile, tq)
            a0, a1 = max(r0 - TILE_HALO, 0), min(r1 + TILE_HALO, tq)
            for c0 in range(0, tt, tile):
                c1 = min(c0 + tile, tt)
                b0, b1 = max(c0 - TILE_HALO, 0), min(c1 + TILE_HALO, tt)
                piece = self.visil_head(maps[:, None, a0:a1, b0:b1])[0][:, 0]
                # Output cell g covers input frames 4g..4g+3; a0, b0 and r0, c0 are multiples of 4.
                g_rows = slice(r0 // 4, r1 // 4 if r1 < tq else out.shape[1])
                g_cols = slice(c0 // 4, c1 // 4 if c1 < tt else out.shape[2])
                out[:, g_rows, g_cols] = piece[:, g_rows.start - a0 // 4:g_rows.stop - a0 // 4,
                                               g_cols.start - b0 // 4:g_cols.stop - b0 // 4]
        return out

    @torch.inference_mode()
    def video_similarity(self, query: torch.Tensor, target: torch.Tensor | list[torch.Tensor],
                         apply_comparator: bool = True) -> torch.Tensor:
        """Similarity of indexed query [Tq, R, D] and target [Tt, R, D] -> scalar; N equal-length targets
        ([N, Tt, R, D] or a list) -> [N]."""
        f2f = self.frame_to_frame_similarity(query, target)
        if not apply_comparator:
            return chamfer(f2f)
        return chamfer(self.comparator_map(f2f))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward over a batch [N, T, R, D]: similarities of all N x N pairs in [0, 1], and the
        regularisation loss of the comparator outputs before Hardtanh."""
        n, t = x.shape[:2]
        x = self.index_video(x, mask)
        f2f = frame_to_frame_similarity_all_pairs(x)
        if self.binarization is not None:
            f2f = f2f / self.binarization.bits
        pair_mask = None
        if mask is not None:
            m = mask.to(f2f.dtype)
            pair_mask = torch.einsum("ai,bj->abij", m, m).reshape(n * n, 1, t, t)
            f2f = f2f * pair_mask[:, 0].view(n, n, t, t)
        out, out_mask = self.visil_head(f2f.reshape(n * n, 1, t, t), pair_mask)
        loss = similarity_regularization(out)
        sim = F.hardtanh(out) / 2.0 + 0.5
        return chamfer(sim, out_mask)[:, 0].view(n, n), loss


def frame_to_frame_similarity_all_pairs(x: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame maps of every pair of a batch [N, T, R, D] -> [N, N, T, T] (training sizes only)."""
    n, t, r, d = x.shape
    flat = x.reshape(n * t * r, d)
    region_sim = (flat @ flat.T).view(n, t, r, n, t, r)
    return region_sim.amax(-1).mean(2).permute(0, 2, 1, 3)


def similarity_regularization(out: torch.Tensor) -> torch.Tensor:
    """Sum of how far comparator outputs fall outside [-1, 1] (docs/METHOD.md §5)."""
    return (out + 1).clamp(max=0).abs().sum() + (out - 1).clamp(min=0).abs().sum()
