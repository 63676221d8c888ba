"""The cascade's middle stage: one compact descriptor per frame, kept in the search index's folder.

A frame's descriptor is the mean of its region vectors, L2-normalised, in float16: 2·D bytes a frame, a
ninth of the T × 9 × D region features. `s2vs search` scores the index's 1,000 candidates on these
(frame-level Chamfer, scoring/frame_level.py) and reads region features from the HDF5 file only for the
few it then re-ranks with ViSiL: 75 kB a candidate from one file, instead of 690 kB from HDF5.

They live beside the faiss index (index.py), not in the store: they are derived from the store like the
segment descriptors, so the store keeps the original tool's layout (and the published files work), a
read-only collection gets them in the cache with the rest of its index, and the index's staleness checks
cover them too. Built in the same pass over the store as the segment descriptors.

Files: `frames.f16`, every indexed video's descriptors one after another in catalogue order (a video's
rows start at the sum of the frame counts before it), raw float16 so new videos are appended without
rewriting it; `frames_crc.npy`, the CRC-32 of each video's bytes. Every read is checked against its
CRC-32 (damage is an error naming the index folder), and read with pread into one reused buffer, so
neither page-cache mappings nor per-query allocations grow the process while it searches.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import temporary_sibling
from .index_checks import SearchIndexError

DATA_FILE = "frames.f16"
CRC_FILE = "frames_crc.npy"
DTYPE = np.dtype("<f2")


def frame_descriptors(features: np.ndarray) -> np.ndarray:
    """[T, R, D] region features -> float32 [T, D]: each frame's mean region vector, L2-normalised."""
    frames = np.asarray(features, dtype=np.float32).mean(1)
    return frames / np.maximum(np.linalg.norm(frames, axis=1, keepdims=True), 1e-12)


class FrameDescriptors:
    """The frame descriptors of an index's videos (numbered in catalogue order), read on demand."""

    def __init__(self, folder: Path, dims: int, frame_counts: np.ndarray, crcs: np.ndarray):
        self.folder, self.dims = folder, dims
        self.crcs = np.asarray(crcs, dtype=np.uint32)
        self.offsets = np.zeros(len(frame_counts) + 1, dtype=np.int64)
        np.cumsum(frame_counts, out=self.offsets[1:])
        self._buffer = np.empty((0, dims), dtype=DTYPE)

    @property
    def path(self) -> Path:
        return self.folder / DATA_FILE

    @property
    def nbytes(self) -> int:
        """Size the data file must have."""
        return int(self.offsets[-1]) * self.dims * DTYPE.itemsize

    def check(self) -> None:
        """SearchIndexError unless the data file has exactly the recorded size (checked before any read)."""
        try:
            size = self.path.stat().st_size
        except OSError:
            raise SearchIndexError(f"{self.folder}: {DATA_FILE} is missing") from None
        if size != self.nbytes:
            raise SearchIndexError(f"{self.folder}: {DATA_FILE} holds {size:,} bytes, {self.nbytes:,} expected")
        if len(self.crcs) != len(self.offsets) - 1:
            raise SearchIndexError(f"{self.folder}: {CRC_FILE} has {len(self.crcs)} checksums for "
                                   f"{len(self.offsets) - 1} videos")

    def read(self, numbers: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """The descriptors of videos `numbers`, one after another -> (float16 [sum T, D], frames of each).

        The array is a view of a buffer reused by the next read: use it before reading again.
        SearchIndexError names the index folder and the video when a video's bytes fail their CRC-32.
        """
        numbers = np.asarray(numbers, dtype=np.int64)
        starts, lengths = self.offsets[numbers], self.offsets[numbers + 1] - self.offsets[numbers]
        placed = np.zeros(len(numbers) + 1, dtype=np.int64)  # where each video goes in the output
        np.cumsum(lengths, out=placed[1:])
        total = int(placed[-1])
        if len(self._buffer) < total:  # grows to the largest read, then is reused
            self._buffer = np.empty((max(total, 2 * len(self._buffer)), self.dims), dtype=DTYPE)
        out = self._buffer[:total]
        row_bytes = self.dims * DTYPE.itemsize
        raw = memoryview(out.reshape(-1).view(np.uint8))
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise SearchIndexError(f"{self.folder}: cannot read {DATA_FILE} ({e.strerror or e})") from None
        try:
            for i in np.argsort(starts, kind="stable"):  # in file order: one forward sweep, kind to disks
                size = int(lengths[i]) * row_bytes
                piece = raw[int(placed[i]) * row_bytes:int(placed[i]) * row_bytes + size]
                got = os.preadv(fd, [piece], int(starts[i]) * row_bytes)
                if got != size or zlib.crc32(piece) != int(self.crcs[numbers[i]]):
                    raise SearchIndexError(f"{self.folder}: {DATA_FILE} is damaged at video number {numbers[i]} "
                                           "(its bytes fail their CRC-32); run `s2vs index --rebuild FEATURES.h5`")
        except OSError as e:
            raise SearchIndexError(f"{self.folder}: cannot read {DATA_FILE} ({e.strerror or e})") from None
        finally:
            os.close(fd)
        return out, lengths


class FrameDescriptorWriter:
    """Streams videos' frame descriptors into a part file while an index is built or extended; `finish`
    makes them the index's (appended to `base`'s, when extending)."""

    def __init__(self, folder: Path, dims: int, base: FrameDescriptors | None = None):
        self.folder, self.dims, self.base = folder, dims, base
        folder.mkdir(parents=True, exist_ok=True)
        # Named as atomic.py names temporaries: the next run removes it if this process is killed.
        self.part = temporary_sibling(folder / DATA_FILE)
        self._out = self.part.open("wb")
        self.frame_counts: list[int] = []
        self.crcs: list[int] = []

    def add(self, descriptors: np.ndarray) -> None:
        """Append one video's descriptors [T, D] (stored as float16)."""
        data = np.ascontiguousarray(descriptors, dtype=DTYPE)
        self._out.write(data.data)
        self.frame_counts.append(len(data))
        self.crcs.append(zlib.crc32(data.data))

    def finish(self) -> FrameDescriptors:
        """The base's videos and those added, in `folder`'s data file (the part file renamed or appended)."""
        self._out.close()
        target = self.folder / DATA_FILE
        if self.base is None:
            os.replace(self.part, target)
            counts, crcs = np.asarray(self.frame_counts, dtype=np.int64), np.asarray(self.crcs, dtype=np.uint32)
        else:
            copied = self.base.path != target  # extended into another folder (the cache): copy, then append
            try:
                if copied:
                    shutil.copyfile(self.base.path, target)
                with target.open("r+b") as data, self.part.open("rb") as added:
                    data.truncate(self.base.nbytes)  # whatever an interrupted update left past the recorded end
                    data.seek(self.base.nbytes)
                    shutil.copyfileobj(added, data, 1 << 22)
            except BaseException:  # a full disk part-way: the base index's data file as it was
                with contextlib.suppress(OSError):
                    if copied:
                        target.unlink(missing_ok=True)
                    else:
                        os.truncate(target, self.base.nbytes)
                raise
            finally:
                self.part.unlink(missing_ok=True)
            counts = np.concatenate([np.diff(self.base.offsets), np.asarray(self.frame_counts, dtype=np.int64)])
            crcs = np.concatenate([self.base.crcs, np.asarray(self.crcs, dtype=np.uint32)])
        return FrameDescriptors(self.folder, self.dims, counts, crcs)

    def discard(self) -> None:
        """Remove the part file (the build failed)."""
        self._out.close()
        self.part.unlink(missing_ok=True)
