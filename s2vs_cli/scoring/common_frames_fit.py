"""How a collection's CommonFrames are found (the rules are in common_frames.py): in two streaming passes over
its frame descriptors, with memory of 4·TABLES + 4 bytes a frame and the candidates.

1. Each frame gets TABLES keys of `key_bits` signs of seeded random projections (on planes with the mean
   direction projected out, which gives the signs of the centred vectors without centring a frame); a key
   held by frames of MIN_VIDEOS videos or more is a crowded bucket, and its first frame a candidate.
2. Each frame of a crowded bucket is compared with its bucket's candidate (centred cosines): the distinct
   videos within THRESHOLD are counted, and so is each video's share of frames near some candidate. A
   candidate of MIN_VIDEOS videos whose median video has at most MAX_SHARE of its frames near candidates is
   a prototype (boilerplate of otherwise unrelated videos; a video copied into many others is content).
Frames found near a prototype in pass 2 are recorded (`CommonFrames.fitted_common`): search's frame-level
stage and its stored candidates use them instead of a product with the prototypes.
An index's fit is cached in its folder (FILE), keyed by the index's stamp: a rebuilt or updated index (a new
store stamp, more videos) is fitted anew on its next use.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..progress import SILENT, Progress
from ..storage.frame_descriptors import frame_descriptors
from .common_frames import MIN_VIDEOS, THRESHOLD, CommonFrames, float32_vectors, centred, mean_direction

FILE = "common_frames.npz"
TABLES = 8                # hash tables of random-projection keys
SAMPLE_VIDEOS = 2000      # videos the mean direction is estimated on
BLOCK_VIDEOS = 512        # videos read at a time from an index's frame descriptors
MAX_PROTOTYPES = 65536    # the most prototypes kept (the most widespread first)
MAX_SHARE = 0.5           # boilerplate's videos are otherwise unrelated: at most this share of their frames common
SEED = 0

Blocks = Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]  # (descriptors [n, D], video numbers [n]) pieces


def fit_common_frames(descriptors: np.ndarray, video_of: np.ndarray, min_videos: int = MIN_VIDEOS,
                      threshold: float = THRESHOLD, progress: Progress = SILENT) -> CommonFrames:
    """CommonFrames fitted on frame descriptors held in memory: [N, D] and each frame's video number [N]."""
    descriptors, video_of = np.asarray(descriptors), np.asarray(video_of, dtype=np.int64)
    step = 1 << 16

    def blocks():
        for start in range(0, len(descriptors), step):
            yield descriptors[start:start + step], video_of[start:start + step]

    return fit_streaming(blocks, mean_direction(descriptors) if len(descriptors) else None, len(descriptors),
                         min_videos, threshold, progress)


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
        keys.append(_keys(float32_vectors(block), planes, bits))
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
    flagged = np.zeros(total, dtype=bool)
    flagged[near[np.isin(near[:, 0], chosen), 2]] = True
    return CommonFrames(direction, vectors[chosen], counts[chosen].astype(np.int64), threshold, min_videos,
                        fitted_common=np.packbits(flagged, bitorder="little"))


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


def store_blocks(store, ids: list[str], first: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A feature file's frame descriptors with each frame's video number (from `first`), BLOCK_VIDEOS videos at a
    time."""
    for start in range(0, len(ids), BLOCK_VIDEOS):
        chosen = ids[start:start + BLOCK_VIDEOS]
        descriptors = [frame_descriptors(store.read_features(video_id)) for video_id in chosen]
        numbers = np.repeat(np.arange(first + start, first + start + len(chosen)), [len(d) for d in descriptors])
        yield (np.concatenate(descriptors) if descriptors else np.zeros((0, 0), np.float32)), numbers


def common_frames_of_store(path: str | Path, progress: Progress = SILENT) -> CommonFrames:
    """A feature file's CommonFrames computed from its features (not cached: for searches without an index)."""
    return common_frames_of_stores([path], progress)


def common_frames_of_stores(paths: Sequence[str | Path], progress: Progress = SILENT) -> CommonFrames:
    """The CommonFrames of several feature files taken as one collection (dedup's), computed from their features."""
    from ..storage.store import FeatureStore  # late: only a fit without an index reads the stores themselves

    stores = [FeatureStore(path) for path in paths]
    try:
        ids = [[video_id for video_id in store.ids() if store.shape(video_id)[0] > 0] for store in stores]
        firsts = np.concatenate([[0], np.cumsum([len(listed) for listed in ids])]).tolist()
        frames = sum(store.shape(video_id)[0] for store, listed in zip(stores, ids) for video_id in listed)
        everyone = [(store, video_id) for store, listed in zip(stores, ids) for video_id in listed]
        chosen = np.sort(np.random.default_rng(SEED).permutation(len(everyone))[:SAMPLE_VIDEOS])
        sampled = [frame_descriptors(everyone[n][0].read_features(everyone[n][1])) for n in chosen]
        sampled = [block for block in sampled if len(block)]
        direction = mean_direction(np.concatenate(sampled)) if sampled else None

        def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for store, listed, first in zip(stores, ids, firsts):
                yield from store_blocks(store, listed, first)

        return fit_streaming(blocks, direction, frames, progress=progress)
    finally:
        for store in stores:
            store.close()


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
