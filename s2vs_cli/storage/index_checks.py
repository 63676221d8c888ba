"""Checks that a loaded search index is the one that was saved and fits its catalogue (see index.py).

The index is a cache of the store: any check that fails raises SearchIndexError, and open_index
rebuilds the index, saying why.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import S2VSError

if TYPE_CHECKING:
    from .index import VideoCatalogue

CRC_BLOCK = 4 << 20        # bytes read at a time for a checksum (4-16 MB measured alike)
SCORE_SLACK = 1e-2         # coarse scores above 1 + this cannot come from unit vectors (see score_limit)


class SearchIndexError(S2VSError):
    """The index cannot be read or does not fit the store."""


def score_limit(index) -> float:
    """The highest coarse score a sound `index` can give a unit query."""
    import faiss

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


def check_catalogue(folder: Path, catalogue: VideoCatalogue) -> None:
    """Raise SearchIndexError unless videos.json's lists are well formed and agree in length."""
    ids, frames, digests = catalogue.ids, catalogue.frames, catalogue.digests
    if not len(ids) == len(frames) == len(digests):
        raise SearchIndexError(f"{folder}: videos.json lists {len(ids)} ids, {len(frames)} frame counts and "
                               f"{len(digests)} digests")
    if not all(type(i) is str for i in ids):
        raise SearchIndexError(f"{folder}: videos.json has an id that is not a string")
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        repeated = next(i for i in ids if i in seen or seen.add(i))
        raise SearchIndexError(f"{folder}: videos.json lists '{repeated}' twice")
    # type, not isinstance: JSON true is a bool, which isinstance counts as an int.
    if not all(type(f) is int and f >= 0 for f in frames):
        raise SearchIndexError(f"{folder}: videos.json has a frame count that is not a non-negative integer")
    if not all(d is None or type(d) is str for d in digests):
        raise SearchIndexError(f"{folder}: videos.json has a digest that is neither a string nor null")


def check_file(folder: Path, name: str, recorded: dict) -> None:
    """Raise SearchIndexError unless the file has the size and CRC-32 recorded when it was saved."""
    path = folder / name
    size = path.stat().st_size
    if size != recorded["bytes"]:
        raise SearchIndexError(f"{folder}: {name} is {size} bytes, {recorded['bytes']} when saved (truncated or "
                               "replaced)")
    if crc32(path) != recorded["crc32"]:
        raise SearchIndexError(f"{folder}: {name} fails its checksum (its bytes changed after it was saved)")


def check_entries(folder: Path, entries: np.ndarray, catalogue: VideoCatalogue, segment_frames: int) -> None:
    """Raise SearchIndexError unless entries give every video exactly its segments, in video order."""
    n = len(catalogue.ids)
    if entries.ndim != 1 or entries.dtype.kind not in "iu":
        raise SearchIndexError(f"{folder}: entries.npy is not a list of video numbers ({entries.dtype}, "
                               f"{entries.ndim}-D)")
    if len(entries) and (entries.min() < 0 or entries.max() >= n):
        raise SearchIndexError(f"{folder}: entries.npy has video numbers outside 0..{n - 1}")
    if len(entries) > 1 and (np.diff(entries) < 0).any():
        raise SearchIndexError(f"{folder}: entries.npy is out of order")
    # _add_videos appends each video's ceil(T / segment_frames) descriptors under its number, videos in
    # catalogue order (none for a video without frames): anything else points entries at the wrong videos.
    owned = np.bincount(entries, minlength=n)
    expected = -(-np.asarray(catalogue.frames, dtype=np.int64) // segment_frames)
    wrong = np.flatnonzero(owned != expected)
    if len(wrong):
        v = int(wrong[0])
        raise SearchIndexError(f"{folder}: entries.npy gives '{catalogue.ids[v]}' {owned[v]} segments, "
                               f"{expected[v]} expected from its {catalogue.frames[v]} frames")


def crc32(path: Path) -> int:
    """CRC-32 of a file's bytes, read a block at a time."""
    crc = 0
    with path.open("rb") as source:
        while block := source.read(CRC_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc
