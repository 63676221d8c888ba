"""Checks that a loaded search index is the one that was saved and fits its catalogue (see index.py).

The index is a cache of the store: any check that fails raises SearchIndexError, and open_index
rebuilds the index, saying why.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from ..errors import S2VSError

CRC_BLOCK = 4 << 20        # bytes read at a time for a checksum (4-16 MB measured alike)
SCORE_SLACK = 1e-2         # coarse scores above 1 + this cannot come from unit vectors (see score_limit)


class SearchIndexError(S2VSError):
    """The index cannot be read or does not fit the store."""


def score_limit(index) -> float:
    """The highest coarse score a sound `index` can give a unit query."""
    import faiss  # late: faiss (~80 ms), which catalogue.py and frame_descriptors.py (importing this) never need

    if not isinstance(index, faiss.IndexIVFPQ):
        # float16 (flat) rounds each component by at most 2**-11 of it, and 8-bit scalar quantisation
        # (ivf-sq8) by half a step of a dimension's range, with errors that cancel over 512 dimensions:
        # the highest score measured on unit vectors was 1.0009 (ivf-sq8), 1.00005 (flat).
        return 1.0 + SCORE_SLACK
    # Product quantisation reconstructs a vector as its list's centroid plus one codeword per sub-vector,
    # and the codewords are not bounded near norm 1 (1.019 measured on a small, barely trained index),
    # so a fixed slack is unsound here. The bound is what any code can reconstruct to: the largest
    # centroid norm plus the norm of the largest codeword of every sub-quantiser (sub-vectors are
    # orthogonal), with room for float32 rounding. It catches damaged codebooks, not damaged codes:
    # those still pick valid codewords, and are caught by the checksum at load.
    centroids = index.quantizer.reconstruct_n(0, index.nlist)
    codewords = faiss.vector_to_array(index.pq.centroids).reshape(index.pq.M, index.pq.ksub, index.pq.dsub)
    centre = float(np.linalg.norm(centroids, axis=1).max()) if index.by_residual else 0.0
    residual = float(np.sqrt((np.linalg.norm(codewords, axis=2).max(axis=1) ** 2).sum()))
    return (centre + residual) * (1 + 1e-4) + 1e-4


def check_file(folder: Path, name: str, recorded: dict) -> None:
    """Raise SearchIndexError unless the file has the size and CRC-32 recorded when it was saved."""
    path = folder / name
    size = path.stat().st_size
    if size != recorded["bytes"]:
        raise SearchIndexError(f"{folder}: {name} is {size} bytes, {recorded['bytes']} when saved (truncated or "
                               "replaced)")
    if crc32(path) != recorded["crc32"]:
        raise SearchIndexError(f"{folder}: {name} fails its checksum (its bytes changed after it was saved)")


def crc32(path: Path) -> int:
    """CRC-32 of a file's bytes, read a block at a time."""
    crc = 0
    with path.open("rb") as source:
        while block := source.read(CRC_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc
