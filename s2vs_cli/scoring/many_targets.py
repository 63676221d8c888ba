"""One query against many targets of any lengths, in padded batches (what evaluation and search run).

Targets are laid out once as the right-hand side of one matrix product (`TargetColumns`), grouped by
length (`target_groups`), and each group's frame-to-frame maps go through the comparator as one padded
batch that it masks exactly (`VideoComparator.forward_padded`): every score equals the one its target
gets alone (`ViSiL.video_similarity`). Sizes are rounded up to a few shapes (`padded_size`) so the CPU
reuses the kernels it builds per shape.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.visil import (CHUNK_ELEMENTS, COMPARATOR_MIN_FRAMES, TILE_FRAMES, TILE_HALO, ViSiL, chamfer,
                            compute_dtype)

# Targets compared in one batch: on the CPU small batches keep the comparator's activations in cache
# (64 was 1.6x slower than 8 on 2 cores; with padded batches 16 beats 8 by 2-24%); a GPU wants large ones.
CPU_TARGETS_PER_BATCH = 16
GPU_TARGETS_PER_BATCH = 256


def padded_size(frames: int) -> int:
    """`frames` rounded up to one of a few sizes: a multiple of 16 up to 256, of 64 up to 2,048, then of 512.

    The CPU builds its matrix-product and convolution kernels for each new shape, which costs more than
    scoring a small batch; padding to a few sizes lets a long evaluation reuse them.
    """
    step = 16 if frames <= 256 else 64 if frames <= 2048 else 512
    return -(-frames // step) * step


def coarse_size(frames: int) -> int:
    """`frames` rounded up to 16, 24, 32, 48, 64, 96, ...: two sizes an octave, at most half again as many.

    For callers whose every product meets new lengths (dedup: each query video against its own partners): the CPU
    keeps a bf16 kernel of 1-2 MB for each shape it has met (up to 1,024 of them), and padded_size's steps
    still gave hundreds of shapes; these give about 18 sizes up to 6,144 frames.
    """
    size = 16
    while size < frames:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


class TargetColumns:
    """Many targets of any lengths laid out once as the right-hand side of one matrix product.

    Columns are ordered region, then the targets' frames one after another, in the compute dtype. Built
    once per database block and reused for every query: the copy costs more than the product itself.
    """

    def __init__(self, targets: list[torch.Tensor], dtype: torch.dtype | None = None,
                 size: Callable[[int], int] = padded_size):
        self.lengths = [t.shape[0] for t in targets]
        self.total, self.regions, self.dims = sum(self.lengths), targets[0].shape[1], targets[0].shape[2]
        # Zero columns pad the total to one of a few sizes (`size`); their similarities are dropped. Padded query
        # rows and the comparator's batches take the same sizes.
        self.size = size
        self.padded_total = size(self.total)
        columns = targets[0].new_empty((self.regions, self.padded_total, self.dims),
                                       dtype=dtype or compute_dtype(targets[0]))
        offset = 0
        for target in targets:  # one copy (and cast) per target, straight into place
            columns[:, offset:offset + target.shape[0]].copy_(target.transpose(0, 1))
            offset += target.shape[0]
        columns[:, self.total:].zero_()
        self.columns = columns.view(self.regions * self.padded_total, self.dims)

    def frame_similarities(self, query: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS,
                           pad_rows: bool = False) -> torch.Tensor:
        """Chamfer frame similarity of q [Tq, R, D] to every target, side by side -> float32 [Tq, total].

        `pad_rows` pads the query too (to `size`), for callers whose products are small enough that
        building kernels for a new shape would dominate.
        """
        tq, rq, d = query.shape
        width = self.padded_total
        rows_per_chunk = max(1, chunk_elements // max(1, rq * self.regions * width))
        if pad_rows and tq <= rows_per_chunk:
            padded_rows = rows_per_chunk = self.size(tq)
        else:
            rows_per_chunk = min(rows_per_chunk, tq)
            padded_rows = -(-tq // rows_per_chunk) * rows_per_chunk
        if padded_rows == tq and query.dtype == self.columns.dtype:
            padded_query = query
        else:
            padded_query = query.new_empty((padded_rows, rq, d), dtype=self.columns.dtype)
            padded_query[:tq] = query
            padded_query[tq:] = 0
        out = query.new_empty((padded_rows, width), dtype=torch.float32)
        for start in range(0, padded_rows, rows_per_chunk):
            block = padded_query[start:start + rows_per_chunk]
            region_sim = block.reshape(rows_per_chunk * rq, d) @ self.columns.T  # [rows*Rq, Rt*width]
            # The max picks a value exactly in any dtype; the mean is taken in float32, so bf16 products do
            # not round the similarities to bf16 (which made ties).
            region_max = region_sim.view(rows_per_chunk, rq, self.regions, width).amax(2)
            out[start:start + rows_per_chunk] = region_max.float().mean(1)
        return out[:tq, :self.total]

    def chamfer_similarities(self, query: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS,
                             maps: list | None = None, pad_rows: bool = False) -> torch.Tensor:
        """Chamfer similarity of q [Tq, R, D] to each target (raw features, no comparator) -> float32 [N];
        each target's [Tq, Tt] frame map is appended to `maps` when given (`pad_rows`: frame_similarities')."""
        frame_sim = self.frame_similarities(query, chunk_elements, pad_rows)
        if maps is not None:
            maps.extend(torch.split(frame_sim, self.lengths, dim=1))
        lengths = torch.tensor(self.lengths, device=frame_sim.device)
        # Max over each target's own columns, for all targets in one ragged reduction; then mean over rows.
        row_max = torch.segment_reduce(frame_sim.T.contiguous(), "max", lengths=lengths, axis=0)  # [N, Tq]
        return row_max.mean(1)


@dataclass
class TargetGroup:
    """Targets of similar lengths scored together: their positions in the caller's list, laid out once."""

    indices: list[int]
    targets: list[torch.Tensor]
    columns: TargetColumns


def target_groups(targets: list[torch.Tensor], dtype: torch.dtype, group_size: int | None = None,
                  size: Callable[[int], int] = padded_size) -> list[TargetGroup]:
    """Targets sorted by length in groups of `group_size` (default: by device), each laid out in `dtype` and
    padded to `size`.

    Similar lengths waste little padding in the comparator's batches; the layout is built once per
    database block and serves every query.
    """
    if not targets:
        return []
    if group_size is None:
        group_size = CPU_TARGETS_PER_BATCH if targets[0].device.type == "cpu" else GPU_TARGETS_PER_BATCH
    order = sorted(range(len(targets)), key=lambda i: targets[i].shape[0])
    groups = []
    for start in range(0, len(order), group_size):
        indices = order[start:start + group_size]
        members = [targets[i] for i in indices]
        groups.append(TargetGroup(indices, members, TargetColumns(members, dtype, size)))
    return groups


def frame_to_frame_similarities(query: torch.Tensor, targets: list[torch.Tensor],
                                chunk_elements: int = CHUNK_ELEMENTS) -> list[torch.Tensor]:
    """Chamfer frame similarity of q [Tq, R, D] to targets of any lengths -> [[Tq, Tt_i]] (float32)."""
    columns = TargetColumns(targets, compute_dtype(query))
    return list(torch.split(columns.frame_similarities(query, chunk_elements), columns.lengths, dim=1))


@torch.inference_mode()
def video_similarities(network: ViSiL, query: torch.Tensor, targets: list[torch.Tensor],
                       apply_comparator: bool = True) -> torch.Tensor:
    """Similarity of one indexed query to many indexed targets of any lengths -> [len(targets)]."""
    out = query.new_empty(len(targets), dtype=torch.float32)
    for group in target_groups(targets, compute_dtype(query)):
        out[group.indices] = group_similarities(network, query, group, apply_comparator).float()
    return out


@torch.inference_mode()
def group_similarities(network: ViSiL, query: torch.Tensor, group: TargetGroup,
                       apply_comparator: bool = True, maps: list | None = None) -> torch.Tensor:
    """Similarity of one indexed query to each target of a group (see target_groups) -> [N]; with `maps`, each
    target's frame map (what its matches are located on) is appended to it, or None for a tiled one.

    The group's maps run as one padded batch that the comparator masks exactly
    (VideoComparator.forward_padded), so each score is the one its target gets alone. Maps too
    large for one comparator tile run one at a time, tiled.
    """
    if not apply_comparator:
        return group.columns.chamfer_similarities(query, maps=maps)
    if max(query.shape[0], max(group.columns.lengths)) > TILE_FRAMES + 2 * TILE_HALO:
        if maps is not None:
            maps.extend([None] * len(group.targets))
        return torch.stack([network.video_similarity(query, target) for target in group.targets])
    return padded_similarities(network, query, group.columns, maps)


def padded_similarities(network: ViSiL, query: torch.Tensor, targets: TargetColumns,
                        maps: list | None = None) -> torch.Tensor:
    """Comparator similarities of targets of any lengths in one padded batch -> [N].

    Sizes are rounded up (the targets' `size`) so that a long evaluation meets only a few distinct shapes:
    the CPU builds convolution kernels per shape, and a new shape costs more than the work itself.
    """
    lengths = targets.lengths
    if min(query.shape[0], min(lengths)) < COMPARATOR_MIN_FRAMES:
        raise ValueError(f"the comparator needs at least {COMPARATOR_MIN_FRAMES} frames a side")
    f2f = targets.frame_similarities(query, pad_rows=True)
    if network.binarization is not None:
        f2f = f2f / network.binarization.bits
    if maps is not None:
        maps.extend(torch.split(f2f, lengths, dim=1))
    batch = f2f.new_zeros(len(lengths), 1, targets.size(query.shape[0]), targets.size(max(lengths)))
    for i, piece in enumerate(torch.split(f2f, lengths, dim=1)):
        batch[i, 0, :piece.shape[0], :piece.shape[1]] = piece
    rows = torch.full((len(lengths),), query.shape[0], device=batch.device)
    out, rows, columns = network.visil_head.forward_padded(batch, rows, torch.tensor(lengths, device=batch.device))
    out = F.hardtanh(out[:, 0])  # [N, H//4, W//4]
    valid_rows = torch.arange(out.shape[-2], device=out.device) < rows[:, None]
    valid_columns = torch.arange(out.shape[-1], device=out.device) < columns[:, None]
    return chamfer(out, valid_rows[:, :, None] & valid_columns[:, None, :])
