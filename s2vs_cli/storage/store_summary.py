"""What a feature file holds, told without reading a single feature: `s2vs info`'s one library call.

`summarize_store` passes once over the headers of the file's datasets, with HDF5's low-level calls (about
105 µs of CPU a video as extract-features writes it, where FeatureStore's shape() and lost() take 260 µs), for
each video's frame count and the frames and seconds its source had lost to damage when extracted (store.lost's
attributes); reads the file's identity (what made it, random weights or not), the failures file
extract-features left beside it (bookkeeping.failures_path) and the search index's state (index_state.py:
read-only, nothing built). The digests are read in the same pass only when the index's stamp shows the file
changed since it was indexed.
`store_ids` lists the ids alone, for `s2vs info --ids` on stores of any size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from h5py import h5a, h5l, h5o

from ..errors import FeatureStoreError
from ..progress import SILENT, Progress
from .bookkeeping import Failure, failures_path, read_failures
from .catalogue import CatalogueBuilder, VideoCatalogue
from .index_state import IndexState, index_state
from .integrity import attr_text, error_reason
from .store import FeatureStore, StoreIdentity

REPORT_EVERY = 1000  # videos between progress reports


@dataclass
class StoreSummary:
    """A feature file's contents: its videos and frames, what made them, what went wrong, its index."""

    path: str
    bytes: int                                  # the file's size
    identity: StoreIdentity | None              # None: the file records none (the published files)
    version: str | None                         # the s2vs version that wrote it
    videos: int = 0
    frames: int = 0                             # all videos' together
    frames_per_video: tuple[int, float, int] | None = None  # (min, median, max); None without videos
    lost: list[tuple[str, int, float]] = field(default_factory=list)  # (id, frames, seconds) lost to damage
    links: list[str] = field(default_factory=list)   # names whose features lie elsewhere (never read: verify)
    failed: list[Failure] = field(default_factory=list)  # from failures_file
    failures_file: str | None = None            # OUTPUT.failed.tsv, when it exists
    index: IndexState | None = None

    @property
    def random_weights(self) -> bool:
        """Whether the features came from seeded random weights (StoreIdentity.random_weights)."""
        return self.identity is not None and self.identity.random_weights

    def as_dict(self) -> dict:
        """JSON-ready, every list whole."""
        identity = None if self.identity is None else self.identity.as_attrs()
        low, median, high = self.frames_per_video or (None, None, None)
        return {"path": self.path, "bytes": self.bytes, "videos": self.videos, "frames": self.frames,
                "frames_per_video": {"min": low, "median": median, "max": high},
                "made_with": identity, "s2vs_version": self.version, "random_weights": self.random_weights,
                "lost": [{"id": i, "frames": f, "seconds": s} for i, f, s in self.lost],
                "links": self.links, "failures_file": self.failures_file,
                "failed": [{"id": f.video_id, "path": f.path, "reason": f.reason} for f in self.failed],
                "index": None if self.index is None else self.index.as_dict()}


def summarize_store(path: str | Path, progress: Progress = SILENT) -> StoreSummary:
    """What the feature file at `path` holds (see the module's docstring); FeatureStoreError, one line naming
    the file, when it is missing, not a feature file or damaged."""
    path = Path(path)
    with FeatureStore(path) as store:
        summary = StoreSummary(str(path), path.stat().st_size, store.identity, store.version)
        ids = store.ids()
        scanned: list[_Scan] = []

        def catalogue() -> VideoCatalogue:  # asked by index_state only when the store changed since indexed
            scanned.append(_scan(store, ids, progress, digests=True))
            return scanned[0].catalogue

        summary.index = index_state(path, catalogue)
        scan = scanned[0] if scanned else _scan(store, ids, progress, digests=False)
    counts = scan.frames[scan.frames >= 0]  # links have none
    summary.videos, summary.frames = len(counts), int(counts.sum())
    if len(counts):
        summary.frames_per_video = (int(counts.min()), float(np.median(counts)), int(counts.max()))
    summary.lost = [(ids[v], int(scan.lost_frames[v]), float(scan.lost_seconds[v]))
                    for v in np.flatnonzero((scan.lost_frames > 0) | (scan.lost_seconds > 0))]
    summary.links = [ids[v] for v in np.flatnonzero(scan.frames < 0)]
    failures = failures_path(path)
    summary.failed = read_failures(failures)
    summary.failures_file = str(failures) if failures.is_file() else None
    return summary


def store_ids(path: str | Path) -> list[str]:
    """The ids of the feature file at `path`, in its (sorted) order, nothing else read."""
    with FeatureStore(path) as store:
        return store.ids()


@dataclass
class _Scan:
    frames: np.ndarray         # int64 [videos]: frame count; -1 for a link (its features lie elsewhere)
    lost_frames: np.ndarray    # int64 [videos]
    lost_seconds: np.ndarray   # float64 [videos]
    catalogue: VideoCatalogue | None = None  # with digests=True: what index_state compares with


def _scan(store: FeatureStore, ids: list[str], progress: Progress, digests: bool) -> _Scan:
    """Each video's frame count and losses (and digest), from its dataset's header and attributes alone."""
    count = len(ids)
    scan = _Scan(np.full(count, -1, np.int64), np.zeros(count, np.int64), np.zeros(count, np.float64))
    builder = CatalogueBuilder() if digests else None
    handle, links = store.handle.id, store.handle.id.links
    # Read into buffers made once: h5py's own reads build a dtype for each attribute, half the time spent.
    lost_frames, lost_seconds, digest = np.zeros((), np.int64), np.zeros((), np.float64), _text_buffer()
    progress.stage("reading the store's headers", count, unit="videos")
    video_id = None
    try:
        for number, video_id in enumerate(ids):
            name = video_id.encode("utf-8", "surrogateescape")
            if links.get_info(name).type == h5l.TYPE_HARD:  # video_names lists links too: never followed
                dataset = h5o.open(handle, name)
                scan.frames[number] = dataset.shape[0] if dataset.shape else 0
                if _read(dataset, b"lost_frames", lost_frames):
                    scan.lost_frames[number] = lost_frames
                if _read(dataset, b"lost_seconds", lost_seconds):
                    scan.lost_seconds[number] = lost_seconds
                if builder is not None:
                    text = digest[()] if _read(dataset, b"digest", digest) else _attribute(dataset, b"digest")
                    builder.add(video_id, int(scan.frames[number]), None if text is None else attr_text(text))
            if (number + 1) % REPORT_EVERY == 0 or number + 1 == count:
                progress.update(number + 1, count)
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as e:
        raise FeatureStoreError(f"{store.path}: damaged or unreadable HDF5 file at '{video_id}' ({error_reason(e)})"
                                ) from None
    if builder is not None:  # the catalogue of the readable videos, as read_catalogue makes it
        scan.catalogue = builder.finish()
    return scan


def _text_buffer() -> np.ndarray:
    """A scalar buffer for a variable-length string attribute (what store.py writes)."""
    return np.empty((), dtype=h5py.string_dtype())


def _read(dataset, name: bytes, buffer: np.ndarray) -> bool:
    """Read a scalar attribute into `buffer` (HDF5 converts between number types); False when it is absent or
    cannot be read so (an array, text where a number was expected, a fixed-length string)."""
    if not h5a.exists(dataset, name):
        return False
    try:
        attribute = h5a.open(dataset, name)
        if attribute.get_space().get_simple_extent_npoints() != 1:  # h5py would write past the buffer's end
            return False
        attribute.read(buffer)
    except (OSError, TypeError, ValueError):  # "no appropriate function for conversion path", a shape mismatch
        return False
    return True


def _attribute(dataset, name: bytes):
    """An attribute's value as stored, whatever its type (a scalar as itself), or None when absent."""
    if not h5a.exists(dataset, name):
        return None
    attribute = h5a.open(dataset, name)
    value = np.empty(attribute.shape, attribute.dtype)
    attribute.read(value)
    return value[()] if value.shape == () else value
