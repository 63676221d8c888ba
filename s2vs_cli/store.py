"""HDF5 feature files: one dataset per video id at the root, [T, R, D] region features (SPEC §7).

The layout is the original tool's, so its reader (``h5file[video_id][:]``) reads our files and we read
the published ones. What we add is metadata the original never stored: on the file, which model,
whitening, sampling rate and code version made the features (checked when a run resumes, so one file
never mixes two extractors); on each dataset, the time of every frame. An id may contain '/'
(CC_WEB_VIDEO's do): HDF5 then stores it in nested groups, exactly as the original tool's
``create_dataset(video_id)`` did, and ``h5file[video_id]`` reads it back either way.

Crash safety: an HDF5 file being modified is not safe to kill (its metadata lives in several places),
so a run never modifies its output in place. Finished videos go to small *part* files, each written
under a temporary name and renamed when closed; `merge_parts` copies the parts (and any earlier output)
into a new file that replaces the output in one rename. Killed at any moment, a run leaves every part
it closed intact and the output as it was.
"""
from __future__ import annotations

import glob
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from .errors import FeatureStoreError

FORMAT = "s2vs-features/1"
# Lowest format that stores attributes over 64 KiB (timestamps of long videos); readable by HDF5 >= 1.8.
LIBVER = ("v108", "v108")
PART_SUFFIX = ".h5"
PARTIAL_SUFFIX = ".h5.partial"
STORE_DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class StoreIdentity:
    """What made the features in a file; two runs may share a file only when these agree."""

    backbone: str     # e.g. "ResNet-50 imagenet"
    whitening: str    # e.g. "vcdb", "none", a file path
    fps: float        # frames sampled per second of video
    dims: int         # feature size D (512 whitened, 3840 not)
    loader: str = "video"   # "video" or "frames"
    dtype: str = "float16"  # stored feature type

    def as_attrs(self) -> dict:
        """HDF5 root attributes."""
        return {"backbone": self.backbone, "whitening": self.whitening, "fps": float(self.fps),
                "dims": int(self.dims), "loader": self.loader, "dtype": self.dtype}

    @classmethod
    def from_attrs(cls, attrs: h5py.AttributeManager) -> StoreIdentity | None:
        """Read back from root attributes; None for a file that has none (the published files)."""
        if "backbone" not in attrs:
            return None
        return cls(backbone=_text(attrs["backbone"]), whitening=_text(attrs["whitening"]), fps=float(attrs["fps"]),
                   dims=int(attrs["dims"]), loader=_text(attrs.get("loader", "video")),
                   dtype=_text(attrs.get("dtype", "float16")))

    def differences(self, other: StoreIdentity) -> list[str]:
        """Human-readable fields where `other` differs from this identity."""
        return [f"{name} {getattr(other, name)!r} (this run: {getattr(self, name)!r})"
                for name in ("backbone", "whitening", "fps", "dims", "loader", "dtype")
                if getattr(self, name) != getattr(other, name)]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
    """Read-only view of a feature file (ours or the published ones); use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise FeatureStoreError(f"{self.path}: feature file not found")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise FeatureStoreError(f"{self.path}: not a readable HDF5 feature file ({_reason(e)})") from None
        self.identity = StoreIdentity.from_attrs(self._file.attrs)
        self.version = _text(self._file.attrs.get("s2vs_version", "")) or None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def ids(self) -> list[str]:
        """Video ids in the file, in HDF5's (sorted) order; ids with '/' are found in nested groups."""
        return dataset_names(self._file)

    def __contains__(self, video_id: str) -> bool:
        return isinstance(self._file.get(video_id), h5py.Dataset)

    def __len__(self) -> int:
        return len(self.ids())

    def shape(self, video_id: str) -> tuple[int, int, int]:
        """[T, R, D] of one video without reading it."""
        dataset = self._dataset(video_id)
        return _as_regions(dataset.shape, self.path, video_id)

    def frames_and_digest(self, video_id: str) -> tuple[int, str | None]:
        """A video's frame count and content digest (None in files that do not record one), unread."""
        dataset = self._dataset(video_id)
        digest = dataset.attrs.get("digest")
        return int(dataset.shape[0]), None if digest is None else str(digest)

    def read(self, video_id: str) -> VideoRecord:
        """One video's features [T, R, D] in their stored dtype, its timestamps and attributes."""
        dataset = self._dataset(video_id)
        shape = _as_regions(dataset.shape, self.path, video_id)
        try:
            features = dataset[()].reshape(shape)
        except OSError as e:
            raise FeatureStoreError(f"{self.path}: cannot read '{video_id}' ({_reason(e)})") from None
        attrs = dict(dataset.attrs)
        timestamps = attrs.pop("timestamps", None)
        if timestamps is not None:
            timestamps = np.asarray(timestamps, dtype=np.float64)
        return VideoRecord(video_id, features, timestamps, attrs)

    def _dataset(self, video_id: str) -> h5py.Dataset:
        item = self._file.get(video_id)
        if not isinstance(item, h5py.Dataset):
            raise FeatureStoreError(f"{self.path}: no features for video '{video_id}'")
        return item


def dataset_names(group: h5py.Group) -> list[str]:
    """Paths of every dataset under `group` (its video ids), depth first in HDF5's order."""
    names: list[str] = []
    group.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return names


def _as_regions(shape: tuple[int, ...], path: Path, video_id: str) -> tuple[int, int, int]:
    if len(shape) == 3:
        return shape
    if len(shape) == 2:  # frame-level features: one region per frame
        return (shape[0], 1, shape[1])
    raise FeatureStoreError(f"{path}: '{video_id}' has shape {shape}, expected [T, R, D] or [T, D]")


def _reason(error: Exception) -> str:
    return (getattr(error, "strerror", None) or str(error)).split("\n")[0]


def _create(path: Path, identity: StoreIdentity | None, version: str) -> h5py.File:
    try:
        handle = h5py.File(path, "w", libver=LIBVER)
    except OSError as e:
        raise FeatureStoreError(f"{path}: cannot create feature file ({_reason(e)})") from None
    handle.attrs["format"] = FORMAT
    handle.attrs["s2vs_version"] = version
    if identity is not None:
        handle.attrs.update(identity.as_attrs())
    return handle


class PartWriter:
    """Writes finished videos into part files under `parts_dir`, closing one every so often.

    A part is written as ``NAME.h5.partial`` and renamed to ``NAME.h5`` when closed, so a part with the
    final name is always complete. Parts close after `max_videos` videos or `max_seconds` seconds,
    which bounds what a crash can lose.
    """

    def __init__(self, parts_dir: str | Path, identity: StoreIdentity, version: str, dtype: str = "float16",
                 compression: str | None = None, max_videos: int = 1000, max_seconds: float = 30.0,
                 prefix: str | None = None):
        if dtype not in STORE_DTYPES:
            raise ValueError(f"dtype must be one of {STORE_DTYPES}, got {dtype}")
        self.parts_dir = Path(parts_dir)
        self.identity, self.version, self.dtype, self.compression = identity, version, dtype, compression
        self.max_videos, self.max_seconds = max_videos, max_seconds
        self.prefix = prefix or uuid.uuid4().hex[:12]  # unique per run: parts of several runs never collide
        self.written: list[Path] = []
        self._handle: h5py.File | None = None
        self._partial: Path | None = None
        self._count = 0
        self._opened = 0.0
        self._sequence = 0
        try:
            self.parts_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FeatureStoreError(f"{self.parts_dir}: cannot create the parts folder ({_reason(e)})") from None

    def add(self, video_id: str, features: np.ndarray, timestamps: np.ndarray, **attrs) -> None:
        """Store one finished video: features [T, R, D] (cast to the store dtype) and its frame times."""
        if self._handle is None:
            self._open()
        data = np.ascontiguousarray(features, dtype=self.dtype)
        try:
            dataset = self._handle.create_dataset(video_id, data=data, compression=self.compression)
            dataset.attrs["timestamps"] = np.asarray(timestamps, dtype=np.float64)
            # What a search index checks to know this video's features are the ones it indexed.
            dataset.attrs["digest"] = content_digest(data)
            for key, value in attrs.items():
                dataset.attrs[key] = value
        except (OSError, ValueError) as e:
            raise FeatureStoreError(f"{self._partial}: cannot write '{video_id}' ({_reason(e)})") from None
        self._count += 1
        if self._count >= self.max_videos or time.monotonic() - self._opened >= self.max_seconds:
            self.close_part()

    def _open(self) -> None:
        name = f"{self.prefix}-{self._sequence:05d}"
        self._sequence += 1
        self._partial = self.parts_dir / (name + PARTIAL_SUFFIX)
        self._handle = _create(self._partial, self.identity, self.version)
        self._count, self._opened = 0, time.monotonic()

    def close_part(self) -> None:
        """Close the open part (if any) and give it its final name."""
        if self._handle is None:
            return
        self._handle.close()
        self._handle = None
        final = self._partial.with_name(self._partial.name[: -len(PARTIAL_SUFFIX)] + PART_SUFFIX)
        _fsync(self._partial)
        os.replace(self._partial, final)
        self.written.append(final)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close_part()


def content_digest(features: np.ndarray) -> str:
    """A short hash of a video's stored features (its bytes, dtype and shape)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{features.dtype.str}{features.shape}".encode())
    digest.update(np.ascontiguousarray(features).data)
    return digest.hexdigest()


def parts_dir_for(output: str | Path) -> Path:
    """Where the parts of `output` are kept while a run is going: ``OUTPUT.parts/``."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


def complete_parts(parts_dir: str | Path) -> list[Path]:
    """Closed part files in `parts_dir` (unfinished ones are ignored), oldest first."""
    parts_dir = Path(parts_dir)
    if not parts_dir.is_dir():
        return []
    parts = [p for p in parts_dir.iterdir() if p.name.endswith(PART_SUFFIX)]
    return sorted(parts, key=lambda p: (p.stat().st_mtime_ns, p.name))


def remove_partials(parts_dir: str | Path) -> int:
    """Delete parts a crashed run left unfinished; returns how many."""
    parts_dir = Path(parts_dir)
    if not parts_dir.is_dir():
        return 0
    removed = 0
    for path in parts_dir.iterdir():
        if path.name.endswith(PARTIAL_SUFFIX):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


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


@dataclass
class MergeResult:
    """What `merge_parts` did."""

    output: Path
    videos: int          # videos in the output after the merge
    added: int           # videos that came from the parts
    duplicates: list[str] = field(default_factory=list)  # ids found more than once (the first copy was kept)


def merging_temporaries(output: str | Path) -> list[Path]:
    """Files an interrupted merge into `output` left behind."""
    output = Path(output)
    return sorted(output.parent.glob(f".{glob.escape(output.name)}.merging-*"))


def merge_parts(output: str | Path, parts: Sequence[str | Path], identity: StoreIdentity | None, version: str,
                keep_existing: bool = True, parts_first: bool = False,
                progress: Callable[[int, int], None] | None = None) -> MergeResult:
    """Join the existing output (when `keep_existing`) and `parts` into `output`, atomically.

    The new file is written beside the output and renamed over it, so a crash during the merge
    leaves the output and the parts as they were. The first copy of an id wins: the existing
    output before the parts (the parts before it with `parts_first`, to replace videos), and
    earlier parts before later ones. Every dataset's feature size must match the identity's.
    """
    output = Path(output)
    existing = [output] if keep_existing and output.exists() else []
    parts = [Path(p) for p in parts]
    sources = parts + existing if parts_first else existing + parts
    temporary = output.with_name(f".{output.name}.merging-{os.getpid()}")
    seen: set[str] = set()
    duplicates: list[str] = []
    added = 0
    handles = [_open_source(path) for path in sources]
    try:
        identities = [(path, StoreIdentity.from_attrs(h.attrs)) for path, h in zip(sources, handles)]
        _check_identities(identities, identity)
        names = [dataset_names(h) for h in handles]
        total = sum(len(n) for n in names)
        done = 0
        with _create(temporary, identity, version) as destination:
            for path, handle, ids in zip(sources, handles, names):
                for video_id in ids:
                    done += 1
                    if video_id in seen:
                        duplicates.append(video_id)
                        continue
                    seen.add(video_id)
                    dataset = handle[video_id]
                    if identity is not None and dataset.shape[-1] != identity.dims:
                        raise FeatureStoreError(f"{path}: '{video_id}' has {dataset.shape[-1]}-d features, "
                                                f"the others {identity.dims}-d")
                    parent = video_id.rpartition("/")[0]
                    handle.copy(dataset, destination.require_group(parent) if parent else destination,
                                name=video_id.rpartition("/")[2])
                    added += path != output
                    if progress is not None:
                        progress(done, total)
        _fsync(temporary)
        os.replace(temporary, output)
    except (OSError, ValueError) as e:
        raise FeatureStoreError(f"{output}: merge failed ({_reason(e)})") from None
    finally:
        for handle in handles:
            handle.close()
        temporary.unlink(missing_ok=True)
    return MergeResult(output=output, videos=len(seen), added=added, duplicates=duplicates)


def _open_source(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise FeatureStoreError(f"{path}: not a readable HDF5 feature file ({_reason(e)})") from None


def _check_identities(identities: list[tuple[Path, StoreIdentity | None]], expected: StoreIdentity | None) -> None:
    reference = expected
    for path, identity in identities:
        if identity is None or reference is None:
            reference = reference or identity
            continue
        differences = reference.differences(identity)
        if differences:
            raise FeatureStoreError(f"{path}: features made differently: {'; '.join(differences)}")


def _fsync(path: Path) -> None:
    """Make a finished file durable before it is renamed into place."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
