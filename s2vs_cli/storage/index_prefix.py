"""What a cache fitted on an index's videos (the common frames, the self-join's lists) needs to outlive the
index's growth: the stamp of the videos it was fitted on, and the epoch whose fit stays valid.

Videos are appended to an index in catalogue order (index.py), so the videos a cache was fitted on stay its
first ones while nothing is removed or changed: `prefix_stamp` records how many there were and a CRC-32 of
their ids, frame counts and frame descriptors' CRC-32s, and `grown_from` tells whether an index still starts
with them. A fit made so that appended videos never change it (each uses only the first videos below half of
its epoch's size) is then extended with the new videos' share alone, and equals a fit made afresh.

The epoch of a count n is the e of the first power of two 2^e >= n: a collection stays in its epoch until it
doubles. What is fitted on "the videos below 2^(e-1)" (at least half of the collection, the same whatever is
appended within the epoch) is fitted again when it crosses into the next.
"""
from __future__ import annotations

import zlib

import numpy as np


def epoch(count: int) -> int:
    """The e of the first power of two 2^e >= count (at least 1)."""
    return max(1, int(count - 1).bit_length())


def prefix_stamp(index, videos: int | None = None) -> dict:
    """The first `videos` (default: all) of `index` (a VideoIndex): their number, frames, segments and digest."""
    videos = len(index) if videos is None else videos
    return {"videos": videos, "frames": int(index.frames.offsets[videos]), "segments": int(index.starts[videos]),
            "digest": _digest(index, videos)}


def grown_from(index, stamp: dict | None) -> bool:
    """Whether `index` starts with the videos `stamp` (prefix_stamp) describes: the same, or appended to."""
    if not isinstance(stamp, dict) or not isinstance(stamp.get("videos"), int):
        return False
    videos = stamp["videos"]
    return 0 <= videos <= len(index) and prefix_stamp(index, videos) == stamp


def _digest(index, videos: int) -> int:
    """CRC-32 of the first `videos` videos' ids, frame counts and frame descriptors' CRC-32s."""
    catalogue = index.catalogue
    crc = zlib.crc32(np.ascontiguousarray(catalogue.id_bytes[:int(catalogue.id_offsets[videos])]).tobytes())
    crc = zlib.crc32(np.ascontiguousarray(catalogue.frames[:videos], dtype="<i8").tobytes(), crc)
    return zlib.crc32(np.ascontiguousarray(index.frames.crcs[:videos], dtype="<u4").tobytes(), crc)
