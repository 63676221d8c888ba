"""Whether a store's search index is there and still describes it, asked without building or changing anything.

What `open_index` (index.py) would find, told rather than done: no index; one that is up to date; or one
that is stale, and what the next `s2vs search` or `s2vs index` does about it (adds the new videos, or
rebuilds it, and why). It looks in the same places (`locate_index_dir`: beside the store, or the user's
cache when the store's folder is not writable) and trusts the index no more than a load does, but checks
only what is cheap: videos.json, the recorded size of every file, the catalogue's CRC-32 and soundness
(VideoCatalogue.check). The checksums of the large files (index.faiss, the frame descriptors) are left to
the load that uses them. When the store's stamp changed, the store's catalogue (each video's frame count
and digest: one pass over the store's dataset headers, no features read) tells new videos from changed
ones; the caller may hand over one it read anyway.
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import FeatureStoreError
from .catalogue import FILE as CATALOGUE_FILE, VideoCatalogue, read_catalogue
from .frame_descriptors import CRC_FILE, DATA_FILE
from .index import INDEX_VERSION, SEGMENT_FRAMES, StoreStamp, index_dir_for, locate_index_dir
from .index_checks import SearchIndexError, check_file
from .index_files import FAISS_FILE, META_FILE
from .store import FeatureStore

NONE, UP_TO_DATE, STALE = "none", "up to date", "stale"
NEXT = "`s2vs index` or the next search"  # what brings the index up to date, in each reason


@dataclass
class IndexState:
    """A store's search index as found: `state` is NONE, UP_TO_DATE or STALE."""

    state: str
    folder: str            # where it is (NONE: where it will be made)
    reason: str = ""       # STALE: why, and what updating it does; UP_TO_DATE: anything worth saying
    videos: int = 0        # videos it holds
    kind: str = ""         # flat, ivf-sq8 or ivf-pq
    in_cache: bool = False  # kept in the user's cache: the store's folder is not writable

    def as_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)


@dataclass
class _Found:
    folder: Path
    stamp: StoreStamp
    catalogue: VideoCatalogue
    kind: str


def index_state(store_path: str | Path, store_catalogue: Callable[[], VideoCatalogue] | None = None) -> IndexState:
    """The state of the search index of the store at `store_path`, read-only. `store_catalogue`: how to get the
    store's catalogue if it is needed (default: `read_catalogue`); FeatureStoreError for a missing store."""
    store_path = Path(store_path)
    if not store_path.is_file():
        raise FeatureStoreError(f"{store_path}: feature file not found")
    beside, folder = index_dir_for(store_path), locate_index_dir(store_path)
    places = [folder] if folder == beside else [folder, beside]  # open_index's order
    stamp = StoreStamp.of(store_path)
    existing, damage = None, ""
    for place in places:
        if not (place / META_FILE).is_file():
            continue
        try:
            found = _read(place)
        except SearchIndexError as e:
            damage = damage or str(e)
            continue
        if found.stamp == stamp:
            return _state(UP_TO_DATE, found, beside)
        existing = existing or found
    if existing is None:
        if damage:
            return IndexState(STALE, str(folder), f"damaged ({damage}): {NEXT} rebuilds it",
                              in_cache=folder != beside)
        return IndexState(NONE, str(folder), in_cache=folder != beside)
    return _compared(existing, _store_catalogue(store_path, store_catalogue), beside)


def _compared(found: _Found, now: VideoCatalogue, beside: Path) -> IndexState:
    """An index made before the store last changed: what the change was, as open_index would judge it."""
    gone, changed, new = found.catalogue.compare(now)
    if len(gone) or len(changed):
        ids, more = found.catalogue.ids, len(gone) + len(changed) - 1
        what = f"'{ids[gone[0]]}' left the store" if len(gone) else f"'{ids[changed[0]]}' changed in the store"
        return _state(STALE, found, beside, what + (f" (and {more} more)" if more else "") +
                      f": {NEXT} rebuilds it")
    if len(new):
        videos = "1 new video" if len(new) == 1 else f"{len(new):,} new videos"
        them = "it" if len(new) == 1 else "them"
        return _state(STALE, found, beside, f"{videos} not indexed yet: {NEXT} adds {them}")
    return _state(UP_TO_DATE, found, beside, f"the file was rewritten with the same videos ({NEXT} renews its "
                                             "stamp)")


def _state(state: str, found: _Found, beside: Path, reason: str = "") -> IndexState:
    return IndexState(state, str(found.folder), reason, len(found.catalogue), found.kind, found.folder != beside)


def _read(folder: Path) -> _Found:
    """The index in `folder` as far as the cheap checks go (SearchIndexError naming the folder otherwise)."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("version") != INDEX_VERSION or \
                meta.get("segment_frames") != SEGMENT_FRAMES:
            raise SearchIndexError(f"{folder}: made by another version of s2vs")
        files = meta["files"]
        for name in (FAISS_FILE, CRC_FILE, DATA_FILE):
            size = (folder / name).stat().st_size
            if size != files[name]["bytes"]:
                raise SearchIndexError(f"{folder}: {name} is {size} bytes, {files[name]['bytes']} when saved")
        check_file(folder, CATALOGUE_FILE, files[CATALOGUE_FILE])
        catalogue = VideoCatalogue.load(folder / CATALOGUE_FILE)
        catalogue.check(folder)
        return _Found(folder, StoreStamp(**meta["stamp"]), catalogue, str(meta.get("kind", "")))
    except SearchIndexError:
        raise
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:  # a file missing, garbled
        raise SearchIndexError(f"{folder}: unreadable ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                               ) from None


def _store_catalogue(store_path: Path, given: Callable[[], VideoCatalogue] | None) -> VideoCatalogue:
    if given is not None:
        return given()
    with FeatureStore(store_path) as store:
        return read_catalogue(store)
