"""Frames left out of matching: low-information frames and boilerplate shared by many unrelated videos.

A black screen, a fade, a channel's intro or a logo card makes two unrelated videos match; so these frames
are dropped before pairs are scored (search, `compare --collection`, dedup; `--keep-common-frames` keeps
them). The rules (docs/METHOD.md, thresholds measured in BENCHMARKS.md "Shared boilerplate"):

- the collection's *mean direction* u (the unit mean of its frame descriptors) is projected out of every
  vector first. Whitened features (PCA with its mean removed) hardly have one; seeded random weights put
  every frame within cosine 0.99 of every other along it, and only what is left tells frames apart;
- *low information* (`low_information`): a frame whose nine region vectors, u projected out, point the same
  way (mean pairwise cosine >= LOW_INFORMATION): a flat picture has the same content in every region, a
  real one does not. It needs region features [T, R, D] (R > 1) and the collection's u;
- *common* (`CommonFrames`): a frame within cosine THRESHOLD (u projected out) of a *prototype*, a frame whose
  near-duplicates occur in at least MIN_VIDEOS distinct videos of the collection. Prototypes are found in
  two streaming passes (common_frames_fit.py): sign-of-random-projection keys (TABLES tables of enough bits that unrelated
  frames rarely share a key) put near-duplicates in one bucket; a bucket holding frames of MIN_VIDEOS
  videos has its first frame as candidate; a second pass counts the distinct videos with a frame within
  THRESHOLD of each candidate, and those with MIN_VIDEOS or more are the prototypes, unless their videos are
  not otherwise unrelated: a video copied into many others (a viral clip) shares most of its frames with them,
  an intro a few seconds of each; so a candidate whose videos have (median) more than MAX_SHARE of their
  frames near candidates is content, not boilerplate. Memory: 4·TABLES + 4 bytes a frame and the candidates;
  time: linear in the frames (BENCHMARKS.md).

API (what search, compare and dedup call; the fits are in common_frames_fit.py):
    common = fit_common_frames(descriptors, video_of)      # arrays: frame descriptors [N, D], video number [N]
    common = common_frames_of_index(index, progress)       # an index's, cached in its folder (common_frames_index.py)
    keep = common.keep(features)                           # [T, R, D] or descriptors [T, D] -> bool [T]
    kept = kept_frames(features, times, keep)              # the frames kept, their times, how many left out
    descriptors, lengths = common.without_common(descriptors, lengths, common.fitted(offsets, numbers))
A video whose every frame would be left out keeps them all (`KeptFrames.all_left_out` says so).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_with
from ..storage.frame_descriptors import frame_descriptors

VERSION = 2  # 2: the fitted frames' common bits
MIN_VIDEOS = 8            # a frame is boilerplate when near-duplicates of it occur in this many videos
THRESHOLD = 0.6           # near-duplicate: cosine with the mean direction projected out (BENCHMARKS.md)
LOW_INFORMATION = 0.40    # mean pairwise cosine of a frame's regions, mean direction projected out


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.sqrt(np.einsum("...d,...d->...", vectors, vectors))[..., None], 1e-12)


def float32_vectors(vectors: np.ndarray) -> np.ndarray:
    """float32 of float16 or float32 vectors (torch converts float16 about 8x faster than numpy)."""
    if isinstance(vectors, np.ndarray) and vectors.dtype == np.float16:
        return torch.from_numpy(np.ascontiguousarray(vectors)).float().numpy()
    return np.asarray(vectors, dtype=np.float32)


def mean_direction(descriptors: np.ndarray) -> np.ndarray:
    """The unit mean of frame descriptors [N, D] (float32 [D]): what every frame of the model shares."""
    return _unit(float32_vectors(descriptors).mean(0, dtype=np.float64).astype(np.float32))


def centred(vectors: np.ndarray, direction: np.ndarray | None) -> np.ndarray:
    """Unit vectors [..., D] with `direction` projected out (float32; None: only normalised)."""
    vectors = float32_vectors(vectors)
    if direction is not None:
        vectors = vectors - (vectors @ direction)[..., None] * direction
    return _unit(vectors)


def region_coherence(features: np.ndarray, direction: np.ndarray | None = None) -> np.ndarray:
    """Mean pairwise cosine of each frame's region vectors [T, R, D] (R > 1), `direction` projected out -> [T]."""
    regions = centred(features, direction)
    count = regions.shape[1]
    summed = np.square(regions.sum(1)).sum(-1)  # |sum of unit vectors|² = R + sum of the pairs' cosines
    return (summed - count) / (count * (count - 1))


def low_information(features: np.ndarray, direction: np.ndarray | None = None,
                    threshold: float = LOW_INFORMATION) -> np.ndarray:
    """Frames of [T, R, D] features with (nearly) no content (flat colour, black, deep in a fade) -> bool [T].

    `direction`: the collection's mean direction (CommonFrames.direction); None for features already centred
    (whitened with the mean removed). One region a frame (the published layout) cannot tell: none is."""
    features = np.asarray(features)
    if features.ndim != 3 or features.shape[1] < 2 or not len(features):
        return np.zeros(len(features), dtype=bool)
    return region_coherence(features, direction) >= threshold


@dataclass
class CommonFrames:
    """A collection's boilerplate: the prototypes of frames found in many videos, and the settings."""

    direction: np.ndarray     # float32 [D]: the collection's mean direction, projected out of every vector
    prototypes: np.ndarray    # float32 [P, D]: unit, direction projected out
    videos: np.ndarray        # int64 [P]: distinct videos with a near-duplicate of each prototype
    threshold: float = THRESHOLD
    min_videos: int = MIN_VIDEOS
    low_information_threshold: float = LOW_INFORMATION
    stamp: dict | None = None  # what it was fitted on (the index's stamp and size): staleness check
    # Which frames of the collection it was fitted on are common, in their order (packed bits; None: not known):
    # found while fitting (each frame near a prototype it shares a hash bucket with), so that scoring many stored
    # videos costs no product with the prototypes (1,000 candidates of 75 frames x 737 prototypes: 1.4 s).
    fitted_common: np.ndarray | None = None
    _fitted_bits: np.ndarray | None = field(default=None, repr=False, compare=False)

    def common(self, descriptors: np.ndarray) -> np.ndarray:
        """Which frame descriptors [T, D] are near-duplicates of a prototype -> bool [T]."""
        descriptors = np.asarray(descriptors)
        if not len(self.prototypes) or not len(descriptors):
            return np.zeros(len(descriptors), dtype=bool)
        nearest = (centred(descriptors, self.direction) @ self.prototypes.T).max(1)
        return nearest >= self.threshold

    def keep(self, frames: np.ndarray, common: np.ndarray | None = None) -> np.ndarray:
        """Frames used in matching -> bool [T]: region features [T, R, D] are neither common nor low-information;
        frame descriptors [T, D] are not common (low information needs the regions). `common`: which are common,
        when known (`fitted`)."""
        frames = np.asarray(frames)
        if common is None:
            common = self.common(frames if frames.ndim == 2 else frame_descriptors(frames)) if len(frames) else \
                np.zeros(0, dtype=bool)
        if frames.ndim == 2:
            return ~common
        return ~(common | low_information(frames, self.direction, self.low_information_threshold))

    def fitted(self, offsets: np.ndarray, numbers: np.ndarray) -> np.ndarray | None:
        """Which frames of the fitted collection's videos `numbers` are common, one video after another (video n's
        rows: offsets[n] to offsets[n + 1]); None unless known for a collection of offsets[-1] frames."""
        if self.fitted_common is None or len(self.fitted_common) != (int(offsets[-1]) + 7) // 8:
            return None
        if self._fitted_bits is None:  # unpacked once: a byte a frame (7.5 MB for 7.5 M frames)
            self._fitted_bits = np.unpackbits(self.fitted_common, bitorder="little").astype(bool)
        numbers = np.asarray(numbers, dtype=np.int64)
        rows = [np.arange(offsets[n], offsets[n + 1]) for n in numbers]
        return self._fitted_bits[np.concatenate(rows)] if rows else np.zeros(0, dtype=bool)

    def without_common(self, descriptors: np.ndarray, lengths: np.ndarray,
                       common: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Videos' frame descriptors laid end to end ([sum of lengths, D], `lengths` frames each) without their
        common frames (`common`, when known) -> (descriptors, lengths); a video all common keeps them all."""
        keep = ~(self.common(descriptors) if common is None else common)
        owners = np.repeat(np.arange(len(lengths)), lengths)
        keep |= (np.bincount(owners[keep], minlength=len(lengths)) == 0)[owners]
        return descriptors[keep], np.bincount(owners[keep], minlength=len(lengths))

    def save(self, path: Path) -> None:
        """Write it to `path` atomically (an .npz of its arrays and settings)."""
        settings = {"version": VERSION, "threshold": self.threshold, "min_videos": self.min_videos,
                    "low_information_threshold": self.low_information_threshold, "stamp": self.stamp}

        def write(temporary: Path) -> None:
            with temporary.open("wb") as out:  # a file object: np.savez would add ".npz" to a temporary name
                np.savez(out, direction=self.direction, prototypes=self.prototypes, videos=self.videos,
                         settings=np.frombuffer(json.dumps(settings).encode(), dtype=np.uint8),
                         fitted_common=self.fitted_common if self.fitted_common is not None else np.zeros(0, np.uint8))

        write_with(path, write)

    @classmethod
    def load(cls, path: Path) -> "CommonFrames | None":
        """What `save` wrote, or None when it is missing, unreadable or of another version."""
        try:
            with np.load(path, allow_pickle=False) as saved:
                settings = json.loads(saved["settings"].tobytes().decode())
                if settings.get("version") != VERSION:
                    return None
                return cls(saved["direction"], saved["prototypes"], saved["videos"], float(settings["threshold"]),
                           int(settings["min_videos"]), float(settings["low_information_threshold"]),
                           settings.get("stamp"), saved["fitted_common"] if len(saved["fitted_common"]) else None)
        except (OSError, ValueError, KeyError, TypeError, EOFError):  # a cache: any doubt recomputes it
            return None


@dataclass
class KeptFrames:
    """A video's frames used in matching, with their own times (seconds on the real video)."""

    features: np.ndarray      # [T', ...] the kept frames
    times: np.ndarray         # [T'] their times
    left_out: int             # frames left out
    all_left_out: bool = False  # every frame was boilerplate or low-information: all kept instead


def kept_frames(features: np.ndarray, times: np.ndarray, keep: np.ndarray) -> KeptFrames:
    """The frames `keep` marks, with their times; when it marks none, every frame (and `all_left_out`), so a
    video made only of boilerplate is still compared rather than silently dropped."""
    keep = np.asarray(keep, dtype=bool)
    if not keep.any():
        return KeptFrames(features, np.asarray(times), 0, all_left_out=len(keep) > 0)
    return KeptFrames(features[keep], np.asarray(times)[keep], int((~keep).sum()))


class LeftOut:
    """What one search leaves out of each video it scores: the masks, kept by id to locate matches at the
    kept frames' own times (a search's own bookkeeping; cleared for each query)."""

    def __init__(self, common: CommonFrames, index=None):
        self.common, self.index, self.masks = common, index, {}  # the index (VideoIndex) it was fitted on, if any
        self._numbers: dict[str, int] | None = None  # the index's video numbers by id, made when first asked

    def frame_level(self, descriptors: np.ndarray, lengths: np.ndarray, numbers: Sequence[int]
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The index's videos `numbers` (descriptors laid end to end, `lengths` each) without their common frames."""
        fitted = self.common.fitted(self.index.frames.offsets, numbers) if self.index is not None else None
        return self.common.without_common(descriptors, lengths, fitted)

    def fitted(self, video_id: str) -> np.ndarray | None:
        """A stored video's common frames as the fit found them (None: to be computed from its features)."""
        if self.index is None:
            return None
        if self._numbers is None:
            self._numbers = {video_id: number for number, video_id in enumerate(self.index.catalogue.ids)}
        number = self._numbers.get(video_id)
        return None if number is None else self.common.fitted(self.index.frames.offsets, [number])

    def query(self, features: np.ndarray, times: np.ndarray) -> KeptFrames:
        """The query's frames used in matching (and a new query: the stored videos' masks are cleared)."""
        self.masks = {}
        return kept_frames(features, times, self.common.keep(features))

    def select(self, video_id: str, features: np.ndarray) -> np.ndarray:
        """A stored video's frames used in matching (all of them when every one would be left out)."""
        keep = self.common.keep(features, self.fitted(video_id))
        self.masks[video_id] = keep if keep.any() else np.ones(len(features), dtype=bool)
        return features[self.masks[video_id]]

    def times(self, video_id: str, times: np.ndarray) -> np.ndarray:
        """A selected video's frame times, of its frames used in matching."""
        return np.asarray(times)[self.masks[video_id]] if video_id in self.masks else np.asarray(times)

    def count(self, video_id: str) -> int | None:
        """How many frames of a selected video were left out (None: not selected)."""
        return int((~self.masks[video_id]).sum()) if video_id in self.masks else None
