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
  two streaming passes (`fit`): sign-of-random-projection keys (TABLES tables of enough bits that unrelated
  frames rarely share a key) put near-duplicates in one bucket; a bucket holding frames of MIN_VIDEOS
  videos has its first frame as candidate; a second pass counts the distinct videos with a frame within
  THRESHOLD of each candidate, and those with MIN_VIDEOS or more are the prototypes, unless their videos are
  not otherwise unrelated: a video copied into many others (a viral clip) shares most of its frames with them,
  an intro a few seconds of each; so a candidate whose videos have (median) more than MAX_SHARE of their
  frames near candidates is content, not boilerplate. Memory: 4·TABLES + 4 bytes a frame and the candidates;
  time: linear in the frames (BENCHMARKS.md).

API (what search, compare and dedup call):
    common = CommonFrames.fit(descriptors, video_of)      # arrays: frame descriptors [N, D], video number [N]
    common = common_frames_of_index(index, progress)       # an index's, cached in its folder (FILE)
    keep = common.keep(features)                           # [T, R, D] or descriptors [T, D] -> bool [T]
    kept = kept_frames(features, times, keep)              # the frames kept, their times, how many left out
A video whose every frame would be left out keeps them all (`KeptFrames.all_left_out` says so).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import write_with
from ..progress import SILENT, Progress
from ..storage.frame_descriptors import frame_descriptors

FILE = "common_frames.npz"
VERSION = 1
MIN_VIDEOS = 8            # a frame is boilerplate when near-duplicates of it occur in this many videos
THRESHOLD = 0.6           # near-duplicate: cosine with the mean direction projected out (BENCHMARKS.md)
LOW_INFORMATION = 0.40    # mean pairwise cosine of a frame's regions, mean direction projected out
TABLES = 8                # hash tables of random-projection keys
SAMPLE_VIDEOS = 2000      # videos the mean direction is estimated on
BLOCK_VIDEOS = 512        # videos read at a time from an index's frame descriptors
MAX_PROTOTYPES = 65536    # the most prototypes kept (the most widespread first)
MAX_SHARE = 0.5           # boilerplate's videos are otherwise unrelated: at most this share of their frames common
SEED = 0

Blocks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]  # (descriptors [n, D], video numbers [n]) pieces


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.sqrt(np.einsum("...d,...d->...", vectors, vectors))[..., None], 1e-12)


def _float32(vectors: np.ndarray) -> np.ndarray:
    """float32 of float16 or float32 vectors (torch converts float16 about 8x faster than numpy)."""
    if isinstance(vectors, np.ndarray) and vectors.dtype == np.float16:
        return torch.from_numpy(np.ascontiguousarray(vectors)).float().numpy()
    return np.asarray(vectors, dtype=np.float32)


def mean_direction(descriptors: np.ndarray) -> np.ndarray:
    """The unit mean of frame descriptors [N, D] (float32 [D]): what every frame of the model shares."""
    return _unit(_float32(descriptors).mean(0, dtype=np.float64).astype(np.float32))


def centred(vectors: np.ndarray, direction: np.ndarray | None) -> np.ndarray:
    """Unit vectors [..., D] with `direction` projected out (float32; None: only normalised)."""
    vectors = _float32(vectors)
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

    @classmethod
    def fit(cls, descriptors: np.ndarray, video_of: np.ndarray, min_videos: int = MIN_VIDEOS,
            threshold: float = THRESHOLD, progress: Progress = SILENT) -> "CommonFrames":
        """Fitted on frame descriptors held in memory: [N, D] and each frame's video number [N]."""
        descriptors, video_of = np.asarray(descriptors), np.asarray(video_of, dtype=np.int64)
        step = 1 << 16

        def blocks():
            for start in range(0, len(descriptors), step):
                yield descriptors[start:start + step], video_of[start:start + step]

        return fit_streaming(blocks, mean_direction(descriptors) if len(descriptors) else None, len(descriptors),
                             min_videos, threshold, progress)

    def common(self, descriptors: np.ndarray) -> np.ndarray:
        """Which frame descriptors [T, D] are near-duplicates of a prototype -> bool [T]."""
        descriptors = np.asarray(descriptors)
        if not len(self.prototypes) or not len(descriptors):
            return np.zeros(len(descriptors), dtype=bool)
        nearest = (centred(descriptors, self.direction) @ self.prototypes.T).max(1)
        return nearest >= self.threshold

    def keep(self, frames: np.ndarray) -> np.ndarray:
        """Frames used in matching -> bool [T]: region features [T, R, D] are neither common nor low-information;
        frame descriptors [T, D] are not common (low information needs the regions)."""
        frames = np.asarray(frames)
        if frames.ndim == 2:
            return ~self.common(frames)
        left_out = self.common(frame_descriptors(frames)) if len(frames) else np.zeros(0, dtype=bool)
        return ~(left_out | low_information(frames, self.direction, self.low_information_threshold))

    def without_common(self, descriptors: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Videos' frame descriptors laid end to end ([sum of lengths, D], `lengths` frames each) without their
        common frames -> (descriptors, lengths); a video whose every frame is common keeps them all."""
        keep = ~self.common(descriptors)
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
                         settings=np.frombuffer(json.dumps(settings).encode(), dtype=np.uint8))

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
                           settings.get("stamp"))
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

    def __init__(self, common: CommonFrames):
        self.common, self.masks = common, {}

    def query(self, features: np.ndarray, times: np.ndarray) -> KeptFrames:
        """The query's frames used in matching (and a new query: the stored videos' masks are cleared)."""
        self.masks = {}
        return kept_frames(features, times, self.common.keep(features))

    def select(self, video_id: str, features: np.ndarray) -> np.ndarray:
        """A stored video's frames used in matching (all of them when every one would be left out)."""
        keep = self.common.keep(features)
        self.masks[video_id] = keep if keep.any() else np.ones(len(features), dtype=bool)
        return features[self.masks[video_id]]

    def times(self, video_id: str, times: np.ndarray) -> np.ndarray:
        """A selected video's frame times, of its frames used in matching."""
        return np.asarray(times)[self.masks[video_id]] if video_id in self.masks else np.asarray(times)

    def count(self, video_id: str) -> int | None:
        """How many frames of a selected video were left out (None: not selected)."""
        return int((~self.masks[video_id]).sum()) if video_id in self.masks else None


def key_bits(frames: int, min_videos: int) -> int:
    """Bits of a hash key: enough that unrelated frames share a key with fewer than a quarter of MIN_VIDEOS
    others on average (uniform keys), so a crowded bucket is most likely near-duplicates."""
    return int(min(30, max(8, math.ceil(math.log2(max(frames, 1) * 4 / max(min_videos, 1))))))


def fit_streaming(blocks: Blocks, direction: np.ndarray | None, frames: int, min_videos: int = MIN_VIDEOS,
                  threshold: float = THRESHOLD, progress: Progress = SILENT) -> CommonFrames:
    """Fit on `frames` descriptors read twice through `blocks()` (in the same order each time), `direction`
    projected out."""
    if direction is None:
        return CommonFrames(np.zeros(0, np.float32), np.zeros((0, 0), np.float32), np.zeros(0, np.int64),
                            threshold, min_videos)
    dims, bits = len(direction), key_bits(frames, min_videos)
    planes = np.random.default_rng(SEED).standard_normal((dims, TABLES * bits)).astype(np.float32)
    # A sign of a centred vector's projection is that of the raw vector on a plane with `direction` projected
    # out (norms change no sign): so hashing needs neither centring nor normalising.
    planes -= np.outer(direction, direction @ planes)
    keys, videos, total = [], [], 0
    progress.stage("common frames: hashing", frames, unit="frames")
    for block, video_of in blocks():  # pass 1: each frame's TABLES keys of `bits` random-projection signs
        keys.append(_keys(_float32(block), planes, bits))
        videos.append(np.asarray(video_of, dtype=np.int32))
        total += len(block)
        progress.update(total)
    if total == 0:
        return CommonFrames(direction, np.zeros((0, dims), np.float32), np.zeros(0, np.int64), threshold, min_videos)
    table_keys, video_of_all = np.concatenate(keys), np.concatenate(videos)  # 4·TABLES + 4 bytes a frame
    del keys, videos
    candidates = _crowded_buckets(table_keys, video_of_all, min_videos)  # per table: (sorted keys, first frames)
    firsts = np.unique(np.concatenate([first for _, first in candidates]))  # candidate frames, in file order
    vectors = np.zeros((len(firsts), dims), np.float32)
    found: list[np.ndarray] = []  # (candidate, video) pairs within the threshold
    progress.stage("common frames: counting videos", total, unit="frames")
    offset = 0
    for block, video_of in blocks():  # pass 2: candidates' vectors, then who is near each
        rows = np.arange(offset, offset + len(block))
        slots, members = [], []
        for sorted_keys, _ in candidates:  # which frames fall in a crowded bucket, in each table
            slot = np.minimum(np.searchsorted(sorted_keys, table_keys[rows, len(slots)]), max(len(sorted_keys) - 1, 0))
            slots.append(slot)
            members.append(sorted_keys[slot] == table_keys[rows, len(members)] if len(sorted_keys) else
                           np.zeros(len(rows), dtype=bool))
        here = (firsts >= offset) & (firsts < offset + len(block))
        needed = np.logical_or.reduce(members) | np.isin(rows, firsts[here])
        if needed.any():  # only those frames are centred (most frames of a large collection are in none)
            vectors_of = np.zeros((len(block), dims), np.float32)
            vectors_of[needed] = centred(block[needed], direction)
            vectors[here] = vectors_of[firsts[here] - offset]
            for (_, first), slot, member in zip(candidates, slots, members):
                candidate = np.searchsorted(firsts, first[slot[member]])
                near = np.einsum("nd,nd->n", vectors_of[member], vectors[candidate]) >= threshold
                found.append(np.stack([candidate[near], np.asarray(video_of, np.int64)[member][near],
                                       rows[member][near]], 1))
        offset += len(block)
        progress.update(offset)
    near = np.concatenate(found) if found else np.zeros((0, 3), np.int64)  # (candidate, video, frame)
    chosen, counts = _boilerplate(near, video_of_all, len(firsts), min_videos)
    chosen = chosen[np.argsort(-counts[chosen], kind="stable")][:MAX_PROTOTYPES]
    return CommonFrames(direction, vectors[chosen], counts[chosen].astype(np.int64), threshold, min_videos)


def _boilerplate(near: np.ndarray, video_of: np.ndarray, candidates: int, min_videos: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The candidates that are boilerplate (their numbers) and each candidate's distinct videos.

    One is when near-duplicates of it occur in `min_videos` videos or more, and those videos are otherwise
    unrelated: in the median of them, at most MAX_SHARE of the frames are near a candidate. A video copied in
    many others shares (nearly) all its frames with them, an intro a few seconds of each."""
    pairs = np.unique(near[:, :2], axis=0)  # (candidate, video)
    counts = np.bincount(pairs[:, 0], minlength=candidates) if len(pairs) else np.zeros(candidates, np.int64)
    frames_of = np.bincount(video_of).astype(np.float64)
    near_frames = np.bincount(video_of[np.unique(near[:, 2])], minlength=len(frames_of)) if len(near) else 0
    share = near_frames / np.maximum(frames_of, 1)  # [videos]: their frames near some candidate
    chosen = np.flatnonzero(counts >= min_videos)
    starts = np.searchsorted(pairs[:, 0], chosen)
    medians = np.array([np.median(share[pairs[start:start + counts[c], 1]]) for c, start in zip(chosen, starts)])
    return chosen[medians <= MAX_SHARE] if len(chosen) else chosen, counts


def _keys(vectors: np.ndarray, planes: np.ndarray, bits: int) -> np.ndarray:
    """TABLES keys of `bits` signs of random projections each, of unit vectors [n, D] -> uint32 [n, TABLES]."""
    signs = (vectors @ planes > 0).reshape(len(vectors), TABLES, bits).astype(np.uint32)
    return (signs << np.arange(bits, dtype=np.uint32)).sum(2, dtype=np.uint32)


def _crowded_buckets(keys: np.ndarray, video_of: np.ndarray, min_videos: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per table, the keys holding frames of at least `min_videos` videos (sorted) and each one's first frame."""
    crowded = []
    for table in range(keys.shape[1]):
        column = keys[:, table]
        pairs = np.unique((column.astype(np.uint64) << np.uint64(32)) | video_of.astype(np.uint64))
        bucket, videos = np.unique((pairs >> np.uint64(32)).astype(np.uint32), return_counts=True)
        dense = bucket[videos >= min_videos]
        order = np.argsort(column, kind="stable")
        position = np.searchsorted(column[order], dense)  # the first frame (in file order) of each crowded key
        crowded.append((dense, order[position] if len(dense) else np.zeros(0, np.int64)))
    return crowded


def index_blocks(index, numbers: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An index's frame descriptors (float16 [n, D]) with each frame's video number, BLOCK_VIDEOS videos at a time."""
    numbers = np.arange(len(index)) if numbers is None else numbers
    for start in range(0, len(numbers), BLOCK_VIDEOS):
        chosen = numbers[start:start + BLOCK_VIDEOS]
        descriptors, lengths = index.frames.read(chosen)
        yield descriptors, np.repeat(chosen, lengths)


def index_stamp(index) -> dict:
    """What a cached fit must match to still describe `index`: its store stamp and size, and the settings."""
    return {"store": vars(index.stamp), "videos": len(index), "frames": int(index.frames.offsets[-1]),
            "min_videos": MIN_VIDEOS, "threshold": THRESHOLD, "tables": TABLES}


def common_frames_of_index(index, progress: Progress = SILENT) -> CommonFrames:
    """The index's CommonFrames: read from FILE in its folder while it matches the index (index_stamp), else
    fitted (two passes over the frame descriptors) and saved there for the next command."""
    stamp = json.loads(json.dumps(index_stamp(index)))  # as it reads back from the file
    path = Path(index.folder) / FILE if index.folder is not None else None
    if path is not None and path.is_file():
        cached = CommonFrames.load(path)
        if cached is not None and cached.stamp == stamp:
            return cached
    sample = np.sort(np.random.default_rng(SEED).permutation(len(index))[:SAMPLE_VIDEOS])
    progress.stage("common frames: mean direction", unit="videos")
    sampled = [block for block, _ in index_blocks(index, sample)]
    direction = mean_direction(np.concatenate(sampled)) if sampled and sum(map(len, sampled)) else None
    fitted = fit_streaming(lambda: index_blocks(index), direction, int(index.frames.offsets[-1]), progress=progress)
    fitted.stamp = stamp
    if path is not None:
        try:
            fitted.save(path)
        except OSError:  # a cache: an index folder that cannot take it recomputes next time
            pass
    return fitted


def store_blocks(store, ids: list[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A feature file's frame descriptors with each frame's video number, BLOCK_VIDEOS videos at a time."""
    for start in range(0, len(ids), BLOCK_VIDEOS):
        chosen = ids[start:start + BLOCK_VIDEOS]
        descriptors = [frame_descriptors(store.read_features(video_id)) for video_id in chosen]
        numbers = np.repeat(np.arange(start, start + len(chosen)), [len(d) for d in descriptors])
        yield (np.concatenate(descriptors) if descriptors else np.zeros((0, 0), np.float32)), numbers


def common_frames_of_store(path: str | Path, progress: Progress = SILENT) -> CommonFrames:
    """A feature file's CommonFrames computed from its features (not cached: for searches without an index)."""
    from ..storage.store import FeatureStore  # late: only exhaustive search reads the store itself for this

    with FeatureStore(path) as store:
        ids = [video_id for video_id in store.ids() if store.shape(video_id)[0] > 0]
        frames = sum(store.shape(video_id)[0] for video_id in ids)
        sample = [ids[i] for i in np.sort(np.random.default_rng(SEED).permutation(len(ids))[:SAMPLE_VIDEOS])]
        sampled = [block for block, _ in store_blocks(store, sample) if len(block)]
        direction = mean_direction(np.concatenate(sampled)) if sampled else None
        return fit_streaming(lambda: store_blocks(store, ids), direction, frames, progress=progress)


def common_frames_of_collection(path: str | Path, progress: Progress = SILENT) -> CommonFrames:
    """A feature file's CommonFrames, from its search index (built or brought up to date, and cached there);
    from the features themselves when no index can be kept for it."""
    from ..storage.index import open_index  # late: faiss is loaded only when a collection is named
    from ..storage.index_checks import SearchIndexError

    try:
        index, _ = open_index(path, progress=progress)
    except SearchIndexError:  # neither beside the store nor in the cache: computed, not kept
        return common_frames_of_store(path, progress)
    return common_frames_of_index(index, progress)
