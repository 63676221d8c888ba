"""Writing a feature file safely: part files while a run goes, then one atomic merge.

Crash safety: an HDF5 file being modified is not safe to kill (its metadata lives in several places),
so a run never modifies its output in place. Finished videos go to small *part* files, each written
under a temporary name and renamed when closed; `merge_parts` copies the parts (and any earlier output)
into a new file that replaces the output in one rename. Killed at any moment, a run leaves every part
it closed intact and the output as it was. A part whose writing failed (a full disk, Ctrl-C inside a
write) is deleted rather than closed, so its videos are redone; every merge re-reads and checks each
video (integrity.py) and drops, with a report, any that is incomplete or damaged.
"""
from __future__ import annotations

import contextlib
import glob
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from ..atomic import process_alive, temporaries_of, temporary_sibling, temporary_writer
from ..errors import FeatureStoreError
from ..progress import SILENT, Progress
from .ids import NestedIds, nesting_reason
from .indirection import NOT_FOLLOWED, StoredElsewhere, open_video, video_names
from .integrity import all_finite, attr_text, error_reason, read_failure, video_damage
from .bookkeeping import exclusive_lock
from .store import FORMAT, STORE_DTYPES, StoreIdentity, create_store, hdf5_write_failed, write_video

LOCK_NAME = "lock"     # in OUTPUT.parts/: held while a run, a merge or a repair writes OUTPUT
PART_SUFFIX = ".h5"
PARTIAL_SUFFIX = ".h5.partial"
_reason = error_reason


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
        """Store one finished video: features [T, R, D] (cast to the store dtype) and its frame times.

        If the write fails in any way (a full disk, Ctrl-C inside HDF5), the open part is deleted, not
        closed: it may hold a half-written video, and its videos are redone by the next run.
        """
        data = np.ascontiguousarray(features, dtype=self.dtype)
        if not all_finite(data):  # refused before the part is touched: the run goes on without this video
            raise FeatureStoreError(f"'{video_id}': NaN or infinite features are not stored")
        try:
            if self._handle is None:
                self._open()
            write_video(self._handle, video_id, data,
                        {"timestamps": np.asarray(timestamps, dtype=np.float64), **attrs}, self.compression)
        except BaseException as e:
            where = self._partial
            hdf5_write_failed(True)
            self._abandon()
            if isinstance(e, (OSError, ValueError, RuntimeError)):
                raise FeatureStoreError(f"{where}: cannot write '{video_id}' ({_reason(e)})") from None
            raise
        self._count += 1
        if self._count >= self.max_videos or time.monotonic() - self._opened >= self.max_seconds:
            self.close_part()

    def _open(self) -> None:
        name = f"{self.prefix}-{self._sequence:05d}"
        self._sequence += 1
        self._partial = self.parts_dir / (name + PARTIAL_SUFFIX)
        self._handle = create_store(self._partial, self.identity, self.version)
        self._count, self._opened = 0, time.monotonic()

    def close_part(self) -> None:
        """Close the open part (if any) and give it its final name, once it is safely on disk."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            handle.close()
            _fsync(self._partial)
        except BaseException as e:  # a part that could not be flushed may be incomplete: never final
            where = self._partial
            hdf5_write_failed(True)
            self._partial.unlink(missing_ok=True)
            if isinstance(e, (OSError, RuntimeError)):
                raise FeatureStoreError(f"{where}: cannot finish the part file ({_reason(e)})") from None
            raise
        final = self._partial.with_name(self._partial.name[: -len(PARTIAL_SUFFIX)] + PART_SUFFIX)
        os.replace(self._partial, final)
        self.written.append(final)

    def _abandon(self) -> None:
        """Delete the open part without making it final."""
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._handle.close()
            self._handle = None
        if self._partial is not None:
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc) -> None:
        # Interrupted between two videos, the open part holds only whole ones: keep them.
        self.close_part()


def parts_dir_for(output: str | Path) -> Path:
    """Where the parts of `output` are kept while a run is going: ``OUTPUT.parts/``."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


@contextlib.contextmanager
def output_lock(output: str | Path) -> Iterator[Path]:
    """Be the only writer of `output`, and clear what a killed run or merge left: unfinished parts
    and merge temporaries. Yields the parts folder. A second writer fails at once (S2VSError)."""
    parts_dir = parts_dir_for(output)
    with exclusive_lock(parts_dir / LOCK_NAME, str(output)):
        remove_partials(parts_dir)  # no one else is writing: these were left by a killed run
        for stale in merging_temporaries(output):
            writer = temporary_writer(stale.name)  # None: an older version's name
            if writer is None or not process_alive(writer):  # a live one is another output's, of a long shared prefix
                stale.unlink(missing_ok=True)
        yield parts_dir


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


@dataclass
class DamagedVideo:
    """A video (or a whole part file, id "*") that a merge or a check found unusable, and why."""

    video_id: str
    path: Path
    reason: str
    redone: bool = True  # whether extracting again redoes it (not for an id that cannot be stored: renamed first)


@dataclass
class MergeResult:
    """What `merge_parts` did."""

    output: Path
    videos: int          # videos in the output after the merge
    added: int           # videos that came from the parts
    duplicates: list[str] = field(default_factory=list)  # ids found more than once (the first copy was kept)
    damaged: list[DamagedVideo] = field(default_factory=list)  # left out: incomplete or damaged


def merging_temporaries(output: str | Path) -> list[Path]:
    """Files an interrupted merge into `output` left behind (and older versions' ``.NAME.merging-PID``)."""
    output = Path(output)
    return sorted(output.parent.glob(f".{glob.escape(output.name)}.merging-*")) + temporaries_of(output)


def merge_parts(output: str | Path, parts: Sequence[str | Path], identity: StoreIdentity | None, version: str,
                keep_existing: bool = True, parts_first: bool = False,
                progress: Progress = SILENT, drop_unreadable_parts: bool = False) -> MergeResult:
    """Join the existing output (when `keep_existing`) and `parts` into `output`, atomically.

    The new file is written beside the output and renamed over it, so a crash or a full disk during
    the merge leaves the output and the parts as they were. Every video is read back and checked
    (checksums, digest, finite values): an incomplete or damaged one is left out and listed in
    `damaged`, so the next run redoes it. The first good copy of an id wins: the existing output
    before the parts (the parts before it with `parts_first`, to replace videos), and earlier parts
    before later ones. Of two ids that HDF5 cannot hold together ('a' and 'a/b', storage/ids.py) the
    output's, else the first, is kept and the other listed in `damaged`. Every dataset's feature size
    must match the identity's. A part that cannot be opened at all is an error, or with
    `drop_unreadable_parts` listed in `damaged` (id "*").
    """
    output = Path(output)
    existing = [output] if keep_existing and output.exists() else []
    parts = [Path(p) for p in parts]
    sources = parts + existing if parts_first else existing + parts
    _check_free_space(output, sources)
    temporary = temporary_sibling(output)  # short whatever the output's name; cleared by output_lock if killed
    result = MergeResult(output=output, videos=0, added=0)
    seen = NestedIds()  # ids copied so far: a repeat is a duplicate, 'a' beside 'a/b' cannot be stored
    opened: list[tuple[Path, h5py.File, list[str]]] = []
    try:
        for path in sources:
            try:
                opened.append(_open_source(path))
            except FeatureStoreError as e:
                if path == output or not drop_unreadable_parts:
                    raise
                result.damaged.append(DamagedVideo("*", path, str(e)))
        _check_identities([(path, StoreIdentity.from_attrs(h.attrs)) for path, h, _ in opened], identity)
        total, done = sum(len(ids) for _, _, ids in opened), 0
        # Of two ids that cannot be stored together ('a', 'a/b'), the output's is kept whatever the order.
        established = NestedIds(next((ids for path, _, ids in opened if path == output), ()))
        with create_store(temporary, identity, version) as destination:
            for path, handle, ids in opened:
                requires_digest = attr_text(handle.attrs.get("format", "")) == FORMAT
                for video_id in ids:
                    done += 1
                    if video_id in seen:
                        result.duplicates.append(video_id)
                        continue
                    other = seen.clash(video_id) or (None if path == output else established.clash(video_id))
                    if other is not None:  # left out, never the whole merge lost to it
                        result.damaged.append(DamagedVideo(video_id, path, f"cannot be stored beside '{other}': "
                                                           f"{nesting_reason(other, video_id)}; rename one", False))
                        continue
                    copied = _copy_checked(handle, video_id, destination, requires_digest, identity, path)
                    if isinstance(copied, str):
                        result.damaged.append(DamagedVideo(video_id, path, copied))
                    else:
                        seen.add(video_id)
                        result.added += path != output
                    progress.update(done, total)
        _fsync(temporary)
        os.replace(temporary, output)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        hdf5_write_failed(True)
        raise FeatureStoreError(f"{output}: merge failed, nothing was changed ({_reason(e)})") from None
    finally:
        for _, handle, _ in opened:
            handle.close()
        temporary.unlink(missing_ok=True)
    result.videos = len(seen)
    return result


def _check_free_space(output: Path, sources: Sequence[Path]) -> None:
    """Refuse, before writing, a merge that cannot fit: it writes a full new copy beside the output."""
    needed = sum(path.stat().st_size for path in sources if path.exists())
    free = shutil.disk_usage(output.parent if output.parent.exists() else Path.cwd()).free
    if needed > free:
        raise FeatureStoreError(f"{output}: not enough free space to merge: about {needed / 1e6:,.1f} MB needed, "
                                f"{free / 1e6:,.1f} MB free in {output.parent}; nothing was changed: free some and run again")


def _copy_checked(source: h5py.File, video_id: str, destination: h5py.File, requires_digest: bool,
                  identity: StoreIdentity | None, path: Path) -> str | None:
    """Copy one video after checking it; returns why it was left out (None when copied)."""
    try:
        dataset, checksummed = open_video(source, video_id)
        attrs, compression = dict(dataset.attrs), dataset.compression
    except StoredElsewhere as e:  # features that lie elsewhere are never copied in
        return f"{e}; {NOT_FOLLOWED}"
    except (OSError, RuntimeError, KeyError, ValueError) as e:  # a garbled object
        return f"damaged ({_reason(e)})"
    if identity is not None and dataset.shape[-1] != identity.dims:
        raise FeatureStoreError(f"{path}: '{video_id}' has {dataset.shape[-1]}-d features, "
                                f"the others {identity.dims}-d")
    try:
        stored = dataset[()]
    except OSError as e:  # a chunk's checksum does not hold
        return read_failure(e, checksummed)
    problem = video_damage(stored, attrs, verify_digest=True, requires_digest=requires_digest)
    if problem is not None:
        return problem
    write_video(destination, video_id, stored, attrs, compression)
    return None


def _open_source(path: Path) -> tuple[Path, h5py.File, list[str]]:
    """(path, open file, its video ids); one-line errors for a file that cannot be read."""
    try:
        handle = h5py.File(path, "r")
    except OSError as e:
        raise FeatureStoreError(f"{path}: not a readable HDF5 feature file ({_reason(e)})") from None
    try:
        return path, handle, video_names(handle)
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        handle.close()
        raise FeatureStoreError(f"{path}: damaged or unreadable HDF5 file ({_reason(e)})") from None


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
