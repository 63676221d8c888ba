"""HDF5 feature files: one dataset per video id at the root, [T, R, D] region features (docs/METHOD.md §7).

The layout is the original tool's, so its reader (``h5file[video_id][:]``) reads our files and we read
the published ones. What we add is metadata the original never stored: on the file, which model,
whitening, sampling rate and code version made the features (checked when a run resumes, so one file
never mixes two extractors) and whether any of it carried random weights (said by every result read from
it); on each dataset, the time of every frame. An id may contain '/'
(CC_WEB_VIDEO's do): HDF5 then stores it in nested groups, exactly as the original tool's
``create_dataset(video_id)`` did, and ``h5file[video_id]`` reads it back either way.

Writing goes through parts.py (part files, the atomic merge); every read is checked (integrity.py), and
reads only the file's own datasets (indirection.py).
"""
from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..errors import FeatureStoreError
from ..progress import SILENT, Progress
from .indirection import NOT_FOLLOWED, StoredElsewhere, open_video, video_names
from .integrity import all_finite, attr_text as _text, content_digest, error_reason, read_failure, video_damage

# Format 2: every feature chunk carries HDF5's Fletcher-32 checksum and every video a content digest,
# written last (a video without one never finished). Datasets without checksums (format 1, or a format-2 file
# rewritten by a tool that drops filters) are still read; their digests, where present, are checked on each
# read instead. Which it is, is asked of each dataset: the file's format attribute survives such a rewrite.
FORMAT = "s2vs-features/2"
CHUNK_BYTES = 1 << 20  # feature chunk size: a whole video up to ~110 frames of 9 x 512 float16
# Lowest format that stores attributes over 64 KiB (timestamps of long videos); readable by HDF5 >= 1.8.
LIBVER = ("v108", "v108")
STORE_DTYPES = ("float16", "float32")
# A random id given to every file s2vs writes (each merge writes a new file): the search index records it,
# so a store replaced by another of the same size, mtime and inode is still seen to have changed.
WRITE_ID = "write_id"
# How models/loading.py labels seeded random weights: "random (seed 0)", "ResNet-50 random (seed 0)".
_RANDOM_LABEL = re.compile(r"(?:^|\s)random \(seed -?\d+\)$")


def labels_random_weights(label: str) -> bool:
    """Whether a weights label (backbone, whitening, network) names seeded random weights."""
    return _RANDOM_LABEL.search(label) is not None


@dataclass(frozen=True)
class StoreIdentity:
    """What made the features in a file; two runs may share a file only when these agree."""

    backbone: str     # e.g. "ResNet-50 imagenet"
    whitening: str    # e.g. "vcdb", "none", a file path
    fps: float        # frames sampled per second of video
    dims: int         # feature size D (512 whitened, 3840 not)
    loader: str = "video"   # the frame source that read the inputs (media/source.py): "video", "frames"
    dtype: str = "float16"  # stored feature type
    # Seeded random weights anywhere: backbone, whitening, or the features a whitening file was fitted on (only
    # the flag tells that). Set from the labels too, for files without the flag; not compared: the labels are.
    random_weights: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not self.random_weights and any(map(labels_random_weights, (self.backbone, self.whitening))):
            object.__setattr__(self, "random_weights", True)

    @classmethod
    def of(cls, extractor, fps: float, loader: str = "video", dtype: str = "float16") -> StoreIdentity:
        """The identity of features `extractor` makes at `fps` from `loader` input: the one place it is built."""
        return cls(backbone=extractor.backbone_label, whitening=extractor.whitening_label, fps=float(fps),
                   dims=int(extractor.dims), loader=loader, dtype=dtype,
                   random_weights=bool(getattr(extractor, "is_random", False)))

    def as_attrs(self) -> dict:
        """HDF5 root attributes."""
        return {"backbone": self.backbone, "whitening": self.whitening, "fps": float(self.fps),
                "dims": int(self.dims), "loader": self.loader, "dtype": self.dtype,
                "random_weights": bool(self.random_weights)}

    @classmethod
    def from_attrs(cls, attrs: h5py.AttributeManager) -> StoreIdentity | None:
        """Read back from root attributes; None for a file that has none (the published files)."""
        if "backbone" not in attrs:
            return None
        return cls(backbone=_text(attrs["backbone"]), whitening=_text(attrs["whitening"]), fps=float(attrs["fps"]),
                   dims=int(attrs["dims"]), loader=_text(attrs.get("loader", "video")),
                   dtype=_text(attrs.get("dtype", "float16")), random_weights=_flag(attrs.get("random_weights")))

    def differences(self, other: StoreIdentity) -> list[str]:
        """Human-readable fields where `other` differs from this identity."""
        return [f"{name} {getattr(other, name)!r} (this run: {getattr(self, name)!r})"
                for name in ("backbone", "whitening", "fps", "dims", "loader", "dtype")
                if getattr(self, name) != getattr(other, name)]


@dataclass
class VideoRecord:
    """Features of one video as stored, with its frame times."""

    video_id: str
    features: np.ndarray   # [T, R, D] as stored (float16 or float32); T x D files are read as T x 1 x D
    timestamps: np.ndarray | None  # float64 [T] seconds; None in files that do not record them
    attrs: dict = field(default_factory=dict)


def frame_times(record: VideoRecord, default_fps: float = 1.0) -> tuple[np.ndarray, float]:
    """(seconds of each frame, sampling rate) of a stored video; files without times get index / fps."""
    fps = float(record.attrs.get("fps", default_fps))
    if record.timestamps is not None:
        return record.timestamps, fps
    return np.arange(len(record.features)) / fps, fps


class FeatureStore:
    """Read-only view of a feature file (ours or the published ones); use as a context manager.

    Every read is checked (integrity.py): a damaged or incomplete video is an error naming it, and a
    damaged file structure is an error naming the file, never a traceback or a silently wrong number. A
    video whose features lie elsewhere (an HDF5 link, external storage, a virtual dataset) is refused by
    every method that opens it (indirection.py), and listed by `ids` so that it is named.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise FeatureStoreError(f"{self.path}: is a folder, not a feature file")
        if not self.path.exists():
            raise FeatureStoreError(f"{self.path}: feature file not found")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise FeatureStoreError(f"{self.path}: not a readable HDF5 feature file ({_reason(e)})") from None
        try:
            with self._checked():
                self.identity = StoreIdentity.from_attrs(self._file.attrs)
                self.version = _text(self._file.attrs.get("s2vs_version", "")) or None
                # Only our format-2 files promise a digest on every finished video.
                self.requires_digest = _text(self._file.attrs.get("format", "")) == FORMAT
        except FeatureStoreError:
            self._file.close()
            raise

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    @property
    def random_weights(self) -> bool:
        """Whether the file says its features came from seeded random weights (StoreIdentity.random_weights)."""
        return self.identity is not None and self.identity.random_weights

    def ids(self) -> list[str]:
        """Video ids in the file, in HDF5's (sorted) order; ids with '/' are found in nested groups. Links are
        listed too: reading one is refused, naming it."""
        with self._checked():
            return video_names(self._file)

    def __contains__(self, video_id: str) -> bool:
        with self._checked(video_id):
            try:
                open_video(self._file, video_id)
            except KeyError:
                return False
            except StoredElsewhere:  # there, and refused when read
                pass
            return True

    def __len__(self) -> int:
        return len(self.ids())

    def shape(self, video_id: str) -> tuple[int, int, int]:
        """[T, R, D] of one video without reading it."""
        with self._checked(video_id):
            dataset = self._dataset(video_id)
            return _as_regions(dataset.shape, self.path, video_id)

    def frames_and_digest(self, video_id: str) -> tuple[int, str | None]:
        """A video's frame count and content digest (None in files that do not record one), unread."""
        with self._checked(video_id):
            dataset = self._dataset(video_id)
            digest = dataset.attrs.get("digest")
            return int(dataset.shape[0]), None if digest is None else _text(digest)

    def times(self, video_id: str, default_fps: float = 1.0) -> tuple[np.ndarray, float]:
        """A video's frame times and sampling rate, as `frame_times` gives them, without reading its features."""
        with self._checked(video_id):
            dataset = self._dataset(video_id)
            frames = _as_regions(dataset.shape, self.path, video_id)[0]
            timestamps = dataset.attrs.get("timestamps")
            fps = float(dataset.attrs.get("fps", default_fps))
        if timestamps is None:
            return np.arange(frames) / fps, fps
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if timestamps.shape != (frames,):  # what a read would refuse too
            raise FeatureStoreError(f"{self.path}: '{video_id}' has {len(timestamps)} frame times for {frames} frames; "
                                    f"`s2vs verify {self.path}` lists every damaged video")
        return timestamps, fps

    def lost(self, video_id: str) -> tuple[int, float]:
        """(frames, seconds) its source had lost to damage when extracted, unread; 0 where not recorded (files
        written before `lost_seconds` was, the published ones)."""
        with self._checked(video_id):
            attrs = self._dataset(video_id).attrs
            return int(attrs.get("lost_frames", 0)), float(attrs.get("lost_seconds", 0.0))

    def source(self, video_id: str) -> str | None:
        """The path of the video file its features were extracted from, as recorded then, unread; None where not
        recorded (frame folders of old files, the published ones)."""
        with self._checked(video_id):
            value = self._dataset(video_id).attrs.get("source")
        return None if value is None else _text(value)

    def read(self, video_id: str) -> VideoRecord:
        """One video's features [T, R, D] in their stored dtype, its timestamps and attributes (checked)."""
        stored, attrs = self._checked_read(video_id, every_attribute=True)
        timestamps = attrs.pop("timestamps", None)
        if timestamps is not None:
            timestamps = np.asarray(timestamps, dtype=np.float64)
        return VideoRecord(video_id, stored, timestamps, attrs)

    def read_features(self, video_id: str) -> np.ndarray:
        """One video's features [T, R, D] in their stored dtype, checked as `read` checks them, without reading
        its other attributes (what scoring needs: 50-300 µs a video less, by how many attributes it has)."""
        return self._checked_read(video_id, every_attribute=False)[0]

    def _checked_read(self, video_id: str, every_attribute: bool) -> tuple[np.ndarray, dict]:
        """(features [T, R, D], attributes: all of them, or only the digest's presence or value as the check needs)."""
        # On search's hot path (100 reads a query): plain try/except rather than _checked.
        try:
            dataset, checksummed = self._open(video_id)
            shape = _as_regions(dataset.shape, self.path, video_id)
            if every_attribute:
                attrs = dict(dataset.attrs)
            elif "digest" not in dataset.attrs:
                attrs = {}
            else:  # with chunk checksums only whether a digest was written matters (checked: the write finished)
                attrs = {"digest": "" if checksummed else dataset.attrs["digest"]}
        except FeatureStoreError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
            raise FeatureStoreError(f"{self.path}: damaged or unreadable HDF5 file at '{video_id}' "
                                    f"({_reason(e)})") from None
        try:
            stored = dataset[()]
        except (OSError, RuntimeError) as e:  # HDF5 found a chunk whose checksum does not hold
            raise FeatureStoreError(f"{self.path}: '{video_id}' is {read_failure(e, checksummed)}; "
                                    f"`s2vs verify {self.path}` lists every damaged video") from None
        # Values are checked on every read; the digest (1 ms a video) only where no chunk checksum proved the bytes.
        problem = video_damage(stored, attrs, verify_digest=not checksummed, requires_digest=self.requires_digest)
        if problem is not None:
            raise FeatureStoreError(f"{self.path}: '{video_id}' is {problem}; "
                                    f"`s2vs verify {self.path}` lists every damaged video")
        return stored.reshape(shape), attrs

    def _dataset(self, video_id: str) -> h5py.Dataset:
        return self._open(video_id)[0]

    def _open(self, video_id: str) -> tuple[h5py.Dataset, bool]:
        """A video's dataset and whether its chunks are checksummed; refused when its features lie elsewhere."""
        try:
            return open_video(self._file, video_id)
        except KeyError:
            raise FeatureStoreError(f"{self.path}: no features for video '{video_id}'") from None
        except StoredElsewhere as e:
            raise FeatureStoreError(f"{self.path}: '{video_id}' is {e}; {NOT_FOLLOWED}; "
                                    f"`s2vs verify {self.path} --repair` removes it") from None

    @contextlib.contextmanager
    def _checked(self, video_id: str | None = None):
        """HDF5's own errors (a garbled header or object gives RuntimeError, KeyError...) as one line."""
        try:
            yield
        except FeatureStoreError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
            where = f" at '{video_id}'" if video_id is not None else ""
            raise FeatureStoreError(f"{self.path}: damaged or unreadable HDF5 file{where} ({_reason(e)})") from None


def _as_regions(shape: tuple[int, ...], path: Path, video_id: str) -> tuple[int, int, int]:
    if len(shape) == 3:
        return shape
    if len(shape) == 2:  # frame-level features: one region per frame
        return (shape[0], 1, shape[1])
    raise FeatureStoreError(f"{path}: '{video_id}' has shape {shape}, expected [T, R, D] or [T, D]")


_reason = error_reason


def _flag(value) -> bool:
    """A boolean root attribute; anything else (absent, damaged) reads as False."""
    return value is not None and np.asarray(value).shape == () and np.asarray(value).dtype.kind in "bi" and bool(value)


def _chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | None:
    """Chunk shape for a video's features: whole frames, about CHUNK_BYTES each (None: no frames)."""
    if not shape or shape[0] == 0:
        return None
    frame_bytes = max(1, int(np.prod(shape[1:])) * itemsize)
    return (max(1, min(shape[0], CHUNK_BYTES // frame_bytes)),) + tuple(shape[1:])


def write_video(group: h5py.Group, video_id: str, features: np.ndarray, attrs: dict,
                compression: str | None = None) -> h5py.Dataset:
    """Store one video's features (each chunk checksummed) and attributes; the content digest is written
    last, so a video that has one is complete."""
    if not all_finite(features):  # never stored: readers of checksummed files rely on it
        raise FeatureStoreError(f"'{video_id}': NaN or infinite features are not stored")
    chunks = _chunks(features.shape, features.dtype.itemsize)
    dataset = group.create_dataset(video_id, data=features, chunks=chunks, fletcher32=chunks is not None,
                                   compression=compression if chunks is not None else None)
    for key, value in attrs.items():
        if key != "digest":
            dataset.attrs[key] = value
    # What readers, merges and the search index check to know these are the features written.
    dataset.attrs["digest"] = content_digest(features)
    return dataset


_write_failures = 0  # HDF5 writes that failed in this process (see hdf5_write_failed)


def hdf5_write_failed(failed: bool = False) -> bool:
    """Whether an HDF5 write failed in this process (record one with `failed=True`): HDF5's own exit
    handlers then crash, so the command line leaves without them."""
    global _write_failures
    _write_failures += failed
    return _write_failures > 0


def create_store(path: Path, identity: StoreIdentity | None, version: str) -> h5py.File:
    """A new, empty feature file (format 2) with the identity of what will fill it."""
    handle = None
    try:
        handle = h5py.File(path, "w", libver=LIBVER)
        handle.attrs["format"] = FORMAT
        handle.attrs["s2vs_version"] = version
        handle.attrs[WRITE_ID] = secrets.token_hex(8)
        if identity is not None:
            handle.attrs.update(identity.as_attrs())
    except (OSError, RuntimeError) as e:
        hdf5_write_failed(True)
        if handle is not None:
            with contextlib.suppress(Exception):
                handle.close()
        raise FeatureStoreError(f"{path}: cannot create feature file ({_reason(e)})") from None
    return handle


def store_write_id(path: str | Path) -> str | None:
    """The random id of the write that made the file (None: a file without one, or unreadable)."""
    try:
        with h5py.File(path, "r") as handle:
            value = handle.attrs.get(WRITE_ID)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError):
        return None  # whoever reads the file next says what is wrong with it
    return None if value is None else _text(value)


def stored_ids(paths: Sequence[str | Path]) -> set[str]:
    """Ids held by any of the given feature files (missing files hold none)."""
    ids: set[str] = set()
    for path in paths:
        if Path(path).exists():
            with FeatureStore(path) as store:
                ids.update(store.ids())
    return ids


def read_identity(path: str | Path) -> StoreIdentity | None:
    """The identity recorded in a feature file, or None when it records none."""
    with FeatureStore(path) as store:
        return store.identity


def made_with_random_weights(path: str | Path) -> bool:
    """Whether a feature file's features came from seeded random weights (False when it records nothing)."""
    identity = read_identity(path)
    return identity is not None and identity.random_weights


@dataclass
class StoreCheck:
    """What `verify_store` found: every video read and checked, and those that failed."""

    path: Path
    videos: int = 0
    damaged: list[tuple[str, str]] = field(default_factory=list)  # (video id, why)
    unverifiable: int = 0  # videos with neither chunk checksums nor a digest: only their values checked

    def as_dict(self) -> dict:
        return {"path": str(self.path), "videos": self.videos, "unverifiable": self.unverifiable,
                "damaged": [{"id": i, "reason": r} for i, r in self.damaged]}


def verify_store(path: str | Path, progress: Progress = SILENT) -> StoreCheck:
    """Read every video of a feature file and check it against its checksums and recorded digest."""
    check = StoreCheck(Path(path))
    with FeatureStore(path) as store:
        ids = store.ids()
        progress.stage("verifying", len(ids), unit="videos")
        for done, video_id in enumerate(ids, 1):
            try:
                with store._checked(video_id):
                    dataset, checksummed = store._open(video_id)
                    check.unverifiable += not checksummed and "digest" not in dataset.attrs
                    try:
                        stored, attrs = dataset[()], dict(dataset.attrs)
                    except OSError as e:
                        raise FeatureStoreError(read_failure(e, checksummed)) from None
                problem = video_damage(stored, attrs, verify_digest=True, requires_digest=store.requires_digest)
            except FeatureStoreError as e:
                problem = str(e)
            if problem is not None:
                check.damaged.append((video_id, problem))
            progress.update(done - len(check.damaged), failed=len(check.damaged))
    check.videos = len(ids)
    return check
