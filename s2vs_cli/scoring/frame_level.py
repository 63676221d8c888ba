"""The cascade's middle stage: a cheap similarity on frame descriptors, to choose what ViSiL re-ranks.

A video's frame-level score is the Chamfer similarity of the two videos' frame descriptors (each frame's
mean region vector, L2-normalised; storage/frame_descriptors.py): the mean over query frames of the best
inner product with any of the target's frames. It is features-only ViSiL with one region a frame, and
costs one [Tq, frames] product for all candidates together: about 1/80 of scoring 1,000 candidates of
nine regions with the full network (BENCHMARKS.md, issue 16).
"""
from __future__ import annotations

import numpy as np
import torch

from ..storage.frame_descriptors import frame_descriptors

PRODUCT_ELEMENTS = 1 << 24  # similarities computed at a time (64 MB of float32): bounds memory for long queries
# Target frames converted and multiplied at a time: the float32 block (8 MB) is still in cache when the
# product reads it. 1,000 candidates of 75 frames: 32 ms in blocks of 4,096, 66 ms in one (BENCHMARKS.md).
BLOCK_FRAMES = 4096


def query_frame_descriptors(features: np.ndarray) -> torch.Tensor:
    """A query's [T, R, D] region features as the float32 frame descriptors its candidates are scored against."""
    return torch.from_numpy(frame_descriptors(features))


@torch.inference_mode()
def frame_level_scores(query: torch.Tensor, targets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Chamfer similarity of query frame descriptors [Tq, D] to each of many targets laid end to end
    (float16 [sum of lengths, D], `lengths` frames each; every length > 0) -> float64 [len(lengths)].

    Targets are converted to float32 a block of whole videos at a time (about BLOCK_FRAMES frames), so
    memory stays bounded by PRODUCT_ELEMENTS whatever the query's length.
    """
    scores = np.empty(len(lengths), dtype=np.float64)
    for first, last, sim, columns in _similarity_blocks(query, targets, lengths):
        scores[first:last] = np.maximum.reduceat(sim, columns, axis=1).mean(0)  # [Tq, videos] -> [videos]
    return scores


@torch.inference_mode()
def frame_level_both_ways(query: torch.Tensor, targets: np.ndarray,
                          lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As `frame_level_scores`, from one product: (query -> each target, each target -> query) Chamfer."""
    forward, backward = np.empty(len(lengths), dtype=np.float64), np.empty(len(lengths), dtype=np.float64)
    for first, last, sim, columns in _similarity_blocks(query, targets, lengths):
        forward[first:last] = np.maximum.reduceat(sim, columns, axis=1).mean(0)
        backward[first:last] = np.add.reduceat(sim.max(0), columns) / lengths[first:last]
    return forward, backward


def _similarity_blocks(query: torch.Tensor, targets: np.ndarray, lengths: np.ndarray):
    """(first, last, [Tq, frames] similarities of targets first..last-1, where each target's columns start),
    about BLOCK_FRAMES target frames (whole videos) at a time."""
    query = query.float()
    starts = np.concatenate([[0], np.cumsum(lengths)])
    columns = max(1, min(BLOCK_FRAMES, PRODUCT_ELEMENTS // max(1, len(query))))
    first = 0
    while first < len(lengths):
        last = int(np.searchsorted(starts, starts[first] + columns, side="right")) - 1
        last = min(max(last, first + 1), len(lengths))  # at least one video, even a longer one
        block = torch.from_numpy(targets[starts[first]:starts[last]]).float()
        yield first, last, (query @ block.T).numpy(), starts[first:last] - starts[first]
        first = last
