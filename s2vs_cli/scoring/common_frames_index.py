"""A collection's CommonFrames from its search index (cached in the index's folder and extended as the index
grows) or, without one, from its feature files.

What a fit depends on beyond the frames themselves is chosen so that appending videos never changes it within
an epoch (index_prefix.py): the mean direction is estimated on up to SAMPLE_VIDEOS videos drawn, seeded, from
those whose first frame lies below 2^(e-1) (at least half the collection), and the key bits follow 2^e. So a fit
extended with new videos (common_frames_fit.FitState.extend) equals one made afresh on all of them.

Files in the index's folder: FILE, the CommonFrames (read by every search), and STATE_FILE, the FitState (the
keys of every frame: 4·TABLES bytes a frame, read only to extend the fit). Both carry the stamp of the videos
they cover (prefix_stamp) and the fit's settings; the fit is read while its stamp matches the index, extended
while the index is the same videos with more appended in the same epoch, and made afresh otherwise.
"""
from __future__ import annotations

import contextlib
import json
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..atomic import write_with
from ..progress import SILENT, Progress
from ..storage.frame_descriptors import frame_descriptors
from ..storage.index_prefix import epoch, grown_from, prefix_stamp
from .common_frames import MIN_VIDEOS, THRESHOLD, CommonFrames, mean_direction
from .common_frames_fit import HASH_ROWS, SEED, TABLES, FitState, fit_streaming, key_bits

FILE = "common_frames.npz"
STATE_FILE = "common_frames_state.npz"
STATE_VERSION = 2  # 2: the candidates' vectors not kept (read again when needed: 320 MB at 7.5 M frames)
PREFIX_KEYS = ("videos", "frames", "segments", "digest")  # prefix_stamp's: the videos a fit covers
SAMPLE_VIDEOS = 2000      # videos the mean direction is estimated on
SMALL_FIT_FRAMES = 1 << 18  # collections of at most this many frames (about 3,500 videos) draw from all videos
BLOCK_VIDEOS = 512        # videos read at a time from an index's frame descriptors


def basis_frames(frames: int) -> int:
    """The first frames of a collection whose videos the mean direction is drawn from: all of a small collection's
    (refitted whole as it grows: cheap), else those below half its epoch (the same while it grows in the epoch)."""
    return frames if frames <= SMALL_FIT_FRAMES else 1 << (epoch(frames) - 1)


def basis_sample(frame_counts: np.ndarray) -> np.ndarray:
    """The videos (numbers, sorted) the mean direction is estimated on: up to SAMPLE_VIDEOS of those whose first
    frame lies below basis_frames, drawn seeded."""
    counts = np.asarray(frame_counts, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    basis = int(np.searchsorted(starts, basis_frames(int(counts.sum())), side="left"))
    return np.sort(np.random.default_rng(SEED).permutation(basis)[:SAMPLE_VIDEOS])


def index_blocks(index, numbers: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """An index's frame descriptors (float16 [n, D]) with each frame's video number, BLOCK_VIDEOS videos at a time."""
    numbers = np.arange(len(index)) if numbers is None else numbers
    for start in range(0, len(numbers), BLOCK_VIDEOS):
        chosen = numbers[start:start + BLOCK_VIDEOS]
        descriptors, lengths = index.frames.read(chosen)
        yield descriptors, np.repeat(chosen, lengths)


def index_stamp(index) -> dict:
    """What a kept fit must match to still describe `index`: its videos (prefix_stamp), epoch and the settings."""
    frames = int(index.frames.offsets[-1])
    return {"min_videos": MIN_VIDEOS, "threshold": THRESHOLD, "tables": TABLES, "hash_rows": HASH_ROWS,
            "sample_videos": SAMPLE_VIDEOS, "epoch": epoch(frames), "basis": basis_frames(frames)} | prefix_stamp(index)


def common_frames_of_index(index, progress: Progress = SILENT) -> CommonFrames:
    """The index's CommonFrames: read from FILE in its folder while it matches the index (index_stamp), else
    extended from STATE_FILE with the videos appended since, else fitted afresh; both files saved back."""
    stamp = json.loads(json.dumps(index_stamp(index)))  # as it reads back from the file
    folder = Path(index.folder) if index.folder is not None else None
    if folder is not None and (folder / FILE).is_file():
        cached = CommonFrames.load(folder / FILE)
        if cached is not None and cached.stamp == stamp:
            return cached
    offsets = index.frames.offsets
    state = _load_state(folder / STATE_FILE, index, stamp) if folder is not None else None
    if state is None:
        sample = basis_sample(np.diff(offsets))
        progress.stage("common frames: mean direction", unit="videos")
        # copied: each block is a view of a buffer the next read reuses (FrameDescriptors.read)
        sampled = [block.copy() for block, _ in index_blocks(index, sample)]
        if not sampled or not sum(map(len, sampled)):
            return fit_streaming(lambda: iter(()), None, 0)
        state = FitState.empty(mean_direction(np.concatenate(sampled)), key_bits(int(offsets[-1]), MIN_VIDEOS))
    first = int(np.searchsorted(offsets, state.frames // HASH_ROWS * HASH_ROWS, side="right")) - 1
    first = max(0, min(first, len(index)))  # the video holding the first frame to hash again (module docstring)
    if state.frames < int(offsets[-1]):
        state.extend(lambda: index_blocks(index, np.arange(first, len(index))), int(offsets[first]),
                     int(offsets[-1]), lambda rows: _read_rows(index, rows), progress)
    fitted = state.model()
    fitted.stamp = stamp
    if folder is not None:  # caches: a folder that cannot take one recomputes it next time
        with contextlib.suppress(OSError):
            fitted.save(folder / FILE)  # first: what every search reads (the state is 32 bytes a frame)
        with contextlib.suppress(OSError):
            _save_state(folder / STATE_FILE, state, stamp)
    return fitted


def _read_rows(index, rows: np.ndarray) -> np.ndarray:
    """The frame descriptors of the index's frames `rows` (sorted frame numbers), read BLOCK_VIDEOS videos at a
    time (only the rows are kept: a bucket's frames may lie in thousands of videos)."""
    offsets = index.frames.offsets
    video = np.searchsorted(offsets, rows, side="right") - 1
    videos = np.unique(video)
    out = np.empty((len(rows), index.dims), dtype=np.float16)
    for start in range(0, len(videos), BLOCK_VIDEOS):
        chosen = videos[start:start + BLOCK_VIDEOS]
        data, lengths = index.frames.read(chosen)
        here = np.flatnonzero((video >= chosen[0]) & (video <= chosen[-1]))
        starts = np.cumsum(lengths) - lengths
        out[here] = data[starts[np.searchsorted(chosen, video[here])] + rows[here] - offsets[video[here]]]
    return out


def _save_state(path: Path, state: FitState, stamp: dict) -> None:
    """Write a FitState atomically: all but each frame's video (the index's frame counts give it) and the candidates'
    vectors (read again when needed)."""
    settings = {"version": STATE_VERSION, "bits": state.bits, "stamp": stamp}

    def write(temporary: Path) -> None:
        with temporary.open("wb") as out:  # a file object: np.savez would add ".npz" to a temporary name
            np.savez(out, direction=state.direction, keys=state.keys, firsts=state.firsts, near=state.near,
                     crowded_keys=np.concatenate([keys for keys, _ in state.crowded]),
                     crowded_firsts=np.concatenate([firsts for _, firsts in state.crowded]),
                     crowded_counts=np.array([len(keys) for keys, _ in state.crowded], np.int64),
                     settings=np.frombuffer(json.dumps(settings).encode(), dtype=np.uint8))

    write_with(path, write)


def _load_state(path: Path, index, stamp: dict) -> FitState | None:
    """The FitState kept at `path` when `index` is its videos with more appended in the same epoch, with the same
    settings; None otherwise, or when it is missing or damaged (a cache: any doubt fits afresh)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            settings = json.loads(saved["settings"].tobytes().decode())
            kept = settings.get("stamp") or {}
            prefix = {key: kept.get(key) for key in PREFIX_KEYS}
            if settings.get("version") != STATE_VERSION or _settings(kept) != _settings(stamp) or \
                    not grown_from(index, prefix):
                return None
            keys, counts = saved["keys"], saved["crowded_counts"]
            cuts = np.cumsum(counts)[:-1]
            crowded = list(zip(np.split(saved["crowded_keys"], cuts), np.split(saved["crowded_firsts"], cuts)))
            offsets = index.frames.offsets[:kept["videos"] + 1]
            video_of = np.repeat(np.arange(kept["videos"], dtype=np.int32), np.diff(offsets))
            firsts, direction = saved["firsts"], saved["direction"]
            state = FitState(direction, int(settings["bits"]), MIN_VIDEOS, THRESHOLD, keys, video_of, crowded, firsts,
                             np.zeros((len(firsts), len(direction)), np.float32), saved["near"],
                             known=np.zeros(len(firsts), dtype=bool), read_rows=lambda rows: _read_rows(index, rows))
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile):
        return None
    sound = keys.shape == (kept["frames"], TABLES) and len(counts) == TABLES and state.firsts.ndim == 1 and \
        state.near.ndim == 2 and (not len(state.firsts) or 0 <= state.firsts.min() <= state.firsts.max() < len(keys))
    return state if sound else None


def _settings(stamp: dict) -> dict:
    """A stamp's settings and epoch: what a kept fit must share with the index's to be extended."""
    return {key: value for key, value in stamp.items() if key not in PREFIX_KEYS}


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
        counts = [store.shape(video_id)[0] for store, listed in zip(stores, ids) for video_id in listed]
        everyone = [(store, video_id) for store, listed in zip(stores, ids) for video_id in listed]
        sampled = [frame_descriptors(everyone[n][0].read_features(everyone[n][1])) for n in basis_sample(counts)]
        sampled = [block for block in sampled if len(block)]
        direction = mean_direction(np.concatenate(sampled)) if sampled else None

        def blocks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for store, listed, first in zip(stores, ids, firsts):
                yield from store_blocks(store, listed, first)

        return fit_streaming(blocks, direction, sum(counts), progress=progress)
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
