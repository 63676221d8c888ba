"""Writing the search index's files (index.py): each whole or not at all, and nothing left behind.

Each file is written under a temporary name beside it and renamed when complete (atomic.py), and its
size and CRC-32 are recorded for the checks at load. A write that fails (a full disk: faiss reports it
as a RuntimeError) removes the unfinished index altogether, so the next run needs the space of one index,
not two, and the error is one line naming the file. Temporaries of a process killed mid-write are
removed by the next run that opens the index (`clear_leftovers`), once their process is gone.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..atomic import OutputWriteError, remove_stale_temporaries, write_with
from .catalogue import FILE as CATALOGUE_FILE
from .frame_descriptors import CRC_FILE, DATA_FILE
from .index_checks import SearchIndexError, crc32

FAISS_FILE = "index.faiss"
META_FILE = "videos.json"   # written last: a folder without it is never taken for an index
# Every file of an index, the one that makes it complete first (removed first, so never trusted half-gone).
INDEX_FILES = (META_FILE, FAISS_FILE, CRC_FILE, CATALOGUE_FILE, DATA_FILE, "entries.npy")
# How earlier versions named these temporaries: ``.NAME.PID.part``.
_OLD_TEMPORARY = re.compile(r"\.(?:" + "|".join(re.escape(n) for n in INDEX_FILES) + r")\.(?P<pid>\d+)\.part")


def replace_file(path: Path, write: Callable[[Path], None]) -> dict[str, int]:
    """Write `path` atomically through `write(temporary)`; its size and CRC-32 as written (read back)."""
    recorded: dict[str, int] = {}

    def write_and_measure(temporary: Path) -> None:
        write(temporary)
        recorded.update(bytes=temporary.stat().st_size, crc32=crc32(temporary))

    write_with(path, write_and_measure)
    return recorded


def write_faiss(index, path: Path) -> None:
    """faiss.write_index, its failures (a RuntimeError with the system's reason at the end) as OSError."""
    import faiss  # late: faiss (~80 ms), only once an index is written

    try:
        faiss.write_index(index, str(path))
    except RuntimeError as e:
        found = re.search(r"\(([^()]+)\)\s*$", str(e))  # "... write error in PATH: 65491 != 204800 (No space ...)"
        raise OSError(found.group(1) if found else str(e).splitlines()[0]) from None


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save to exactly `path` (given a name, np.save would add ".npy" to a temporary one)."""
    with path.open("wb") as out:
        np.save(out, array)


@contextlib.contextmanager
def writing_index(folder: Path):
    """Around writing an index into `folder`: any failure removes the unfinished index, and a failed write
    is one SearchIndexError naming the file."""
    try:
        yield
    except BaseException as e:
        discard_index(folder)
        if isinstance(e, OutputWriteError):
            raise SearchIndexError(f"{e.path}: cannot write the index ({e.reason}); the unfinished index was "
                                   "removed: run again once it can be written, or search with --exhaustive") from None
        if isinstance(e, OSError):  # e.g. a folder that os.access called writable (root on some mounts)
            raise SearchIndexError(f"{folder}: cannot write the index ({e.strerror or e}); the unfinished index "
                                   "was removed: search with --exhaustive instead") from None
        raise


def discard_index(folder: Path) -> None:
    """Remove the index in `folder` (its temporaries too): it no longer describes anything whole."""
    for name in INDEX_FILES:
        with contextlib.suppress(OSError):
            (folder / name).unlink(missing_ok=True)
    clear_leftovers(folder)


def clear_leftovers(folder: Path) -> int:
    """Remove the temporaries that processes now gone left in `folder` (killed mid-write); how many."""
    return remove_stale_temporaries(folder) + remove_stale_temporaries(folder, _OLD_TEMPORARY)
