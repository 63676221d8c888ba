"""The first stage of `s2vs search`: compact descriptors of a feature store in a faiss index beside it.

Descriptors: a video's frames are cut into segments of SEGMENT_FRAMES consecutive frames; each
segment's descriptor is the mean of its region vectors, L2-normalised (D dims). A video of T frames
has ceil(T / SEGMENT_FRAMES) entries, so a short clip finds the part of a long video it comes from
rather than that video's average. Only these descriptors (or their compressed codes) are in memory;
the region features stay in the HDF5 file for the second stage (ViSiL re-ranking, search.py).

Index type, by number of entries n (documented in the README; chosen so one command serves a thousand
and ten million videos):
- n <= FLAT_MAX: every entry compared (an exhaustive scan), vectors kept in float16: 2·D bytes an entry
  (1 GB at most for D = 512: about 100,000 videos of a minute or two). Half the memory traffic of float32
  made the scan 1.6x faster (0.165 -> 0.106 s for 517,230 entries) for rounding of about 1e-3;
- n <= SQ_MAX: inverted lists (4·sqrt(n) of them, NPROBE searched) of 8-bit scalar-quantised vectors,
  D bytes an entry;
- above: inverted lists with product quantisation (PQ_BYTES bytes an entry).

Files, in `<store>.index/`: `index.faiss` (entries numbered as added: each video's segments in catalogue
order, so an entry's video follows from the frame counts), `catalogue.npz` (each video's id, frame count
and content digest, in numpy arrays: catalogue.py), the frame descriptors (frame_descriptors.py) and
`videos.json` (the store's stamp, the settings, and the size and CRC-32 of the other files). When the
store's folder is not writable (a read-only collection) the index is kept in the user's cache instead:
`<cache>/indexes/<16 hex of the sha256 of the store's resolved path>/`, with <cache> as for downloaded
weights ($S2VS_HOME, else ~/.cache/s2vs). Files are written atomically, and a failed write removes the
unfinished index (index_files.py).
Whether the index still describes the store is checked, never assumed: the store file's size, mtime,
inode and write id (a random id every merge writes into the file; files without one: the first three)
first; if those changed, every video's frame count and digest. New videos are added to the index; a
removed or changed one makes it rebuild.

Nor is the index itself trusted: it is a cache of the store, so any doubt makes `open_index` rebuild it
and say why. At load, `VideoIndex.load` checks
- the size and CRC-32 of each file but the frame descriptors' data against videos.json (before faiss or
  numpy reads a byte: a garbled index.faiss still loads, and gives wrong candidates with scores far above
  1). It costs about 0.2 s a 500 MB index (0.35 -> 0.5 s to load 500,000 entries of 512 dims, flat);
- the catalogue (VideoCatalogue.check, vectorised): ids unique UTF-8 text, frame counts non-negative,
  digest kinds known, every array the same length;
- the faiss index: one vector per segment the frame counts make, the recorded number of dimensions.
At search, `VideoIndex.candidates` refuses coarse scores that no sound index can give a unit query
(not finite, or above 1 + SCORE_SLACK; for PQ, above what its codebooks can reconstruct) and entries
past the last video's, in case the damage came after loading or escaped the checks.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..downloads import cache_dir
from ..errors import FeatureStoreError
from ..progress import SILENT, Progress
from .catalogue import FILE as CATALOGUE_FILE, VideoCatalogue, read_catalogue
from .frame_descriptors import CRC_FILE, DATA_FILE, FrameDescriptors, FrameDescriptorWriter, frame_descriptors
from .index_checks import SearchIndexError, check_file, score_limit
from .index_files import FAISS_FILE, META_FILE, clear_leftovers, replace_file, save_array, write_faiss, writing_index
from .store import FeatureStore, store_write_id

SEGMENT_FRAMES = 16
FLAT_MAX = 1_048_576       # 1 GB of float16 512-d vectors: a full scan still takes about 0.2 s
SQ_MAX = 4_194_304         # 2 GB of 8-bit codes
PQ_BYTES = 48              # bytes an entry above SQ_MAX: 10 M videos' index + catalogue in 3.6 GB (BENCHMARKS.md)
PQ_BITS = 6                # bits a sub-quantiser's code: 64 sub-quantisers of 8 dimensions for 48 bytes
NPROBE = 32                # inverted lists searched per query vector
TRAINING_VECTORS = 262_144  # vectors the quantisers are trained on at least (a uniform sample)
INDEX_VERSION = 5          # 3: sizes and CRC-32 of the index files; 4: frame descriptors; 5: catalogue.npz
READ_BLOCK = 512           # videos read from the store at a time while building
CHECKED_FILES = (FAISS_FILE, CRC_FILE, CATALOGUE_FILE)


@dataclass
class StoreStamp:
    """What cheaply tells that a store file may have changed: size, modification time, inode, and the
    random id of the write that made it (store.py; None in files without one: the first three alone)."""

    size: int
    mtime_ns: int
    inode: int
    write_id: str | None = None

    @classmethod
    def of(cls, path: str | Path) -> "StoreStamp":
        write_id = store_write_id(path)  # before the stat: a file replaced between the two differs next time
        info = os.stat(path)
        return cls(info.st_size, info.st_mtime_ns, info.st_ino, write_id)


def segment_descriptors(features: np.ndarray, segment_frames: int = SEGMENT_FRAMES) -> np.ndarray:
    """[T, R, D] region features -> float32 [ceil(T / segment_frames), D]: mean per segment, L2-normalised."""
    features = np.asarray(features, dtype=np.float32)
    t, _, d = features.shape
    if t == 0:  # a video without frames has nothing to find it by
        return np.zeros((0, d), dtype=np.float32)
    frames = features.mean(1)  # [T, D]
    starts = np.arange(0, t, segment_frames)
    sums = np.add.reduceat(frames, starts, axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return sums / np.maximum(norms, 1e-12)


def index_kind(entries: int) -> str:
    """Which faiss index a collection of `entries` descriptors gets: flat, ivf-sq8 or ivf-pq."""
    if entries <= FLAT_MAX:
        return "flat"
    return "ivf-sq8" if entries <= SQ_MAX else "ivf-pq"


def index_dir_for(store: str | Path) -> Path:
    """Where the index of `store` lives when the store's folder is writable: ``<store>.index/``."""
    store = Path(store)
    return store.with_name(store.name + ".index")


def cached_index_dir(store: str | Path) -> Path:
    """Where the index of a store in a read-only folder is kept: the user's cache, one folder per store."""
    key = hashlib.sha256(str(Path(store).resolve()).encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "indexes" / key


def locate_index_dir(store: str | Path) -> Path:
    """Where the index of `store` is kept (and written): beside it if that folder is writable, else the cache."""
    beside = index_dir_for(store)
    return beside if _writable(beside if beside.is_dir() else beside.parent) else cached_index_dir(store)


def _writable(folder: Path) -> bool:
    """Whether files can be created in `folder` (made with its missing parents if it does not exist)."""
    # os.access, not a trial file: it asks nothing of the file system. As root it answers yes for any mode
    # bits (only a read-only mount says no), which is why the tests monkeypatch this function.
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


class VideoIndex:
    """A faiss index of segment descriptors and the video each entry belongs to."""

    def __init__(self, index, catalogue: VideoCatalogue, stamp: StoreStamp, dims: int,
                 frames: FrameDescriptors | None = None):
        self.index, self.catalogue, self.stamp, self.dims = index, catalogue, stamp, dims
        self.frames = frames  # each video's frame descriptors, for the cascade's frame-level stage
        self.folder: Path | None = None  # where it was loaded from or saved to, for messages
        self._score_limit: float | None = None  # worked out on the first search (PQ: from its codebooks)

    @property
    def kind(self) -> str:
        """The kind of the faiss index itself (an index extended past its kind's size keeps its kind)."""
        import faiss  # late: faiss (~80 ms), only once an index is used

        if isinstance(self.index, faiss.IndexIVFPQ):
            return "ivf-pq"
        return "ivf-sq8" if isinstance(self.index, faiss.IndexIVF) else "flat"

    @property
    def catalogue(self) -> VideoCatalogue:
        """Each indexed video's id, frame count and digest, by number (setting it works out `starts` anew)."""
        return self._catalogue

    @catalogue.setter
    def catalogue(self, catalogue: VideoCatalogue) -> None:
        # Videos are added in catalogue order, ceil(frames / SEGMENT_FRAMES) entries each, and faiss numbers
        # entries as added: so video v owns entries starts[v]..starts[v + 1] - 1 (8 bytes a video, not 4 an entry).
        self._catalogue, self.starts = catalogue, np.zeros(len(catalogue) + 1, dtype=np.int64)
        np.cumsum((catalogue.frames + (SEGMENT_FRAMES - 1)) // SEGMENT_FRAMES, dtype=np.int64, out=self.starts[1:])

    @property
    def entries(self) -> np.ndarray:
        """The video number of each entry, made on demand (4 bytes an entry; searches use `starts`)."""
        return np.repeat(np.arange(len(self.catalogue), dtype=np.int32), np.diff(self.starts))

    def __len__(self) -> int:
        return len(self.catalogue)

    def candidates(self, descriptors: np.ndarray, count: int, exclude: str | None = None) -> list[tuple[str, float]]:
        """Up to `count` videos whose segments come nearest the query's, best first: (id, similarity).

        A video's score is its best segment's inner product with any query segment.
        """
        ids = self.catalogue.ids
        return [(ids[v], s) for v, s in self.candidate_numbers(descriptors, count, exclude)]

    def candidate_numbers(self, descriptors: np.ndarray, count: int,
                          exclude: str | None = None) -> list[tuple[int, float]]:
        """As `candidates`, with each video's number in the catalogue instead of its id."""
        if self.index.ntotal == 0:
            return []
        k = min(self.index.ntotal, max(count * 2, 16))
        if hasattr(self.index, "nprobe"):
            self.index.nprobe = NPROBE
        descriptors = np.ascontiguousarray(descriptors, dtype=np.float32)
        scores, found = self.index.search(descriptors, k)
        self._check_scores(scores, found, descriptors)
        real = found >= 0  # fewer than k in the lists searched: the rest is -1
        videos, scores = np.searchsorted(self.starts, found[real], side="right") - 1, scores[real]
        order = np.argsort(-scores, kind="stable")
        videos, scores = videos[order], scores[order]
        first = np.sort(np.unique(videos, return_index=True)[1])  # each video at its best segment's place
        ids, ranked = self.catalogue.ids, []
        for video, score in zip(videos[first].tolist(), scores[first].tolist()):
            if len(ranked) == count:
                break
            if exclude is None or ids[video] != exclude:  # an id decoded per candidate kept, no more
                ranked.append((video, score))
        return ranked

    def _check_scores(self, scores: np.ndarray, found: np.ndarray, descriptors: np.ndarray) -> None:
        """Raise SearchIndexError if faiss returned scores or entries that no sound index gives these queries."""
        if self._score_limit is None:
            self._score_limit = score_limit(self.index)
        # A score is at most |query| times the limit for a unit query; segment descriptors are unit vectors.
        norms = np.maximum(np.linalg.norm(descriptors, axis=1, keepdims=True), 1.0)
        real = found >= 0  # missing results (fewer than k in the lists searched) come with -inf or -FLT_MAX
        bad = real & ~(np.isfinite(scores) & (scores <= self._score_limit * norms))
        if bad.any() or (found >= self.starts[-1]).any():  # an entry past the catalogue's videos is damage too
            where = self.folder or "the search index"
            what = f"coarse scores out of range (up to {scores[bad].max():.4g})" if bad.any() else \
                "entries out of range"
            raise SearchIndexError(f"{where}: {what}, the index is damaged; run `s2vs index --rebuild FEATURES.h5`")

    def save(self, folder: Path) -> None:
        """Write the index files atomically (each to a temporary name, then renamed), with their checksums."""
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        (folder / META_FILE).unlink(missing_ok=True)  # until the new one is written, no index is taken as whole
        files = {FAISS_FILE: replace_file(folder / FAISS_FILE, lambda path: write_faiss(self.index, path)),
                 CRC_FILE: replace_file(folder / CRC_FILE, lambda path: save_array(path, self.frames.crcs)),
                 CATALOGUE_FILE: replace_file(folder / CATALOGUE_FILE, self.catalogue.save)}
        # The data file is checked by size at load and by each video's CRC-32 on every read (CRC_FILE).
        files[DATA_FILE] = {"bytes": self.frames.nbytes}
        meta = {"version": INDEX_VERSION, "segment_frames": SEGMENT_FRAMES, "dims": self.dims, "kind": self.kind,
                "stamp": vars(self.stamp), "files": files}
        (folder / "entries.npy").unlink(missing_ok=True)  # index version 4 and before: now from the frame counts
        # Written last: an index folder without a current videos.json is never taken as complete.
        replace_file(folder / META_FILE, lambda path: path.write_text(json.dumps(meta), encoding="utf-8"))

    @classmethod
    def load(cls, folder: Path) -> "VideoIndex":
        """The index saved in `folder`; SearchIndexError (one line: the folder and what failed) unless every
        check in the module's docstring passes."""
        import faiss  # late: faiss (~80 ms), only once an index is used

        try:
            meta = json.loads((folder / "videos.json").read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or meta.get("version") != INDEX_VERSION or \
                    meta.get("segment_frames") != SEGMENT_FRAMES:
                raise SearchIndexError(f"{folder}: made by another version of s2vs")
            stamp, dims = StoreStamp(**meta["stamp"]), int(meta["dims"])
            for name in CHECKED_FILES:  # before faiss or numpy parse a byte of them
                check_file(folder, name, meta["files"][name])
            catalogue = VideoCatalogue.load(folder / CATALOGUE_FILE)
            catalogue.check(folder)
            frames = FrameDescriptors(folder, dims, catalogue.frames.astype(np.int64), np.load(folder / CRC_FILE))
            index = faiss.read_index(str(folder / "index.faiss"))  # last: the temporaries above are freed by then
        except SearchIndexError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, zipfile.BadZipFile) as e:
            raise SearchIndexError(f"{folder}: unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                                   ) from None
        loaded = cls(index, catalogue, stamp, dims, frames)
        if index.ntotal != loaded.starts[-1]:
            raise SearchIndexError(f"{folder}: index.faiss holds {index.ntotal} vectors, the catalogue's frame counts "
                                   f"make {loaded.starts[-1]} segments")
        if index.d != dims:
            raise SearchIndexError(f"{folder}: index.faiss has {index.d} dimensions, videos.json says {dims}")
        frames.check()
        loaded.folder = folder
        return loaded


@dataclass
class IndexUpdate:
    """What `open_index` did: nothing, added videos, or rebuilt (and why)."""

    action: str             # "fresh", "added", "built" or "rebuilt"
    added: int = 0
    reason: str = ""
    folder: str = ""        # where the index is
    note: str = ""          # anything else worth saying (e.g. that it is kept in the cache)


def open_index(store_path: str | Path, rebuild: bool = False, progress: Progress = SILENT,
               listed: tuple[StoreStamp, Sequence[str]] | None = None) -> tuple[VideoIndex, IndexUpdate]:
    """The store's index, brought up to date: built if absent, extended with new videos, rebuilt if
    any indexed video changed or left the store (or with `rebuild`); each stage is told to `progress`.
    `listed`: the store's ids as the caller listed them, with its stamp taken before: used while the store
    still has that stamp (listing 100,000 videos takes 3 s).

    The index is kept beside the store, or in the user's cache when the store's folder is not writable
    (see `locate_index_dir`); SearchIndexError if it must be written and neither place is writable."""
    store_path = Path(store_path)
    if not store_path.is_file():
        raise FeatureStoreError(f"{store_path}: feature file not found")
    beside = index_dir_for(store_path)
    folder = locate_index_dir(store_path)
    # A read-only collection may come with its index: used while current, updated into the cache.
    places = [folder] if folder == beside else [folder, beside]
    note = "" if folder == beside else f"the store's folder is not writable; index kept in {folder}"
    clear_leftovers(folder)  # what a killed `index` or `search` left half-written
    stamp = StoreStamp.of(store_path)
    existing, reason = None, ""
    for place in places:
        if rebuild or not (place / "videos.json").is_file():
            continue
        try:
            loaded = VideoIndex.load(place)
        except SearchIndexError as e:  # the index is a cache of the store: rebuild it, and say why
            reason = reason or str(e)
            continue
        if loaded.stamp == stamp:
            return loaded, IndexUpdate("fresh", folder=str(place), note="" if place == beside else note)
        if existing is None:
            existing = loaded
    if not _writable(folder):
        raise SearchIndexError(f"cannot keep an index: neither {beside if beside.is_dir() else beside.parent} (beside "
                               f"the store) nor {folder} is writable; search with --exhaustive instead")

    def report(stage: str) -> Progress:
        progress.stage(stage, unit="videos")
        return progress

    with FeatureStore(store_path) as store:
        ids = listed[1] if listed is not None and listed[0] == stamp else None
        catalogue = read_catalogue(store, report("checking the store"), ids)
        if existing is not None:
            gone, changed, new = existing.catalogue.compare(catalogue)
            if not len(gone) and not len(changed):
                added = catalogue.select(new)
                _add_videos(existing, store, added.ids, report("indexing new videos") if len(new) else SILENT, folder)
                existing.catalogue = existing.catalogue.extended(added)
                existing.stamp = stamp
                _save(existing, folder)
                return existing, IndexUpdate("added" if len(new) else "fresh", len(new), folder=str(folder), note=note)
            ids, more = existing.catalogue.ids, len(gone) + len(changed) - 1
            reason = (f"'{ids[gone[0]]}' left the store" if len(gone) else f"'{ids[changed[0]]}' changed in the store"
                      ) + (f" (and {more} more)" if more else "")
        index = _build(store, catalogue, stamp, report("indexing"), folder)
    _save(index, folder)
    action = "rebuilt" if existing is not None or reason or rebuild else "built"
    return index, IndexUpdate(action, len(catalogue), reason, str(folder), note)


def _save(index: VideoIndex, folder: Path) -> None:
    with writing_index(folder):  # a failure removes the unfinished index: one line naming the file
        index.save(folder)


def _descriptor_blocks(store: FeatureStore, ids: Sequence[str], with_frames: bool = True):
    """(ids, their segment descriptors, their frame descriptors or None), READ_BLOCK videos at a time."""
    for start in range(0, len(ids), READ_BLOCK):
        block = ids[start:start + READ_BLOCK]
        features = [np.asarray(store.read_features(video_id), dtype=np.float32) for video_id in block]
        yield (block, [segment_descriptors(f) for f in features],
               [frame_descriptors(f) for f in features] if with_frames else None)


def _build(store: FeatureStore, catalogue: VideoCatalogue, stamp: StoreStamp,
           progress: Progress, folder: Path) -> VideoIndex:
    """An index of the right kind for the store's segment count, filled block by block.

    Memory stays bounded by the index itself: descriptors are added as each block of videos is read.
    The quantisers of the larger kinds are first trained on the descriptors of a random sample of
    videos (one extra read of that sample).
    """
    segments = int((-(-catalogue.frames.astype(np.int64) // SEGMENT_FRAMES)).sum())
    dims = store.identity.dims if store.identity is not None else (
        store.shape(catalogue.ids[0])[2] if catalogue.ids else 512)
    index = _new_index(segments, dims)
    if not index.is_trained:
        index.train(_training_sample(store, catalogue, max(TRAINING_VECTORS, 40 * index.nlist)))
    built = VideoIndex(index, VideoCatalogue(), stamp, dims)
    _add_videos(built, store, catalogue.ids, progress, folder)
    built.catalogue = catalogue
    return built


def _training_sample(store: FeatureStore, catalogue: VideoCatalogue, count: int) -> np.ndarray:
    """Descriptors of randomly chosen videos, about `count` of them (faiss wants ~40 per inverted list)."""
    order = np.random.default_rng(0).permutation(len(catalogue))
    segments = np.cumsum(-(-catalogue.frames[order].astype(np.int64) // SEGMENT_FRAMES))
    chosen = [catalogue.ids[number] for number in order[:int(np.searchsorted(segments, count)) + 1]]
    return np.concatenate([d for _, block, _ in _descriptor_blocks(store, chosen, with_frames=False) for d in block])


def _new_index(entries: int, dims: int):
    import faiss  # late: faiss (~80 ms), only once an index is used

    kind = index_kind(entries)
    if kind == "flat":
        return faiss.IndexScalarQuantizer(dims, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    lists = int(4 * math.sqrt(entries))
    quantiser = faiss.IndexFlatIP(dims)
    if kind == "ivf-sq8":
        index = faiss.IndexIVFScalarQuantizer(quantiser, dims, lists, faiss.ScalarQuantizer.QT_8bit,
                                              faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexIVFPQ(quantiser, dims, lists, PQ_BYTES * 8 // PQ_BITS, PQ_BITS, faiss.METRIC_INNER_PRODUCT)
    return index


def _add_videos(index: VideoIndex, store: FeatureStore, ids: Sequence[str], progress: Progress, folder: Path) -> None:
    """Append new videos' descriptors (a flat index that outgrows its kind stays flat until rebuilt); their
    frame descriptors go to `folder`'s data file."""
    done = 0
    writer = FrameDescriptorWriter(folder, index.dims, index.frames)
    try:
        for block, descriptors, frames in _descriptor_blocks(store, ids):
            if sum(len(d) for d in descriptors):  # numbered by faiss as added: see VideoIndex.catalogue
                index.index.add(np.concatenate(descriptors))
            for video in frames:
                writer.add(video)
            done += len(block)
            progress.update(done, len(ids))
        index.frames = writer.finish()
    except BaseException as e:
        writer.discard()
        if isinstance(e, OSError):  # a full disk while writing the frame descriptors
            raise SearchIndexError(f"{folder}: cannot write the index ({e.strerror or e}); search with --exhaustive "
                                   "instead") from None
        raise
