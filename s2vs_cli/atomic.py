"""Atomic writes: every file s2vs writes appears whole under its name, or not at all.

A file is written to a temporary name in the same folder (so the final rename is atomic), flushed,
checked, synced to disk and only then renamed over its target. On any failure (a full disk, Ctrl-C)
the temporary file is removed and the previous file, if there was one, is left exactly as it was.

Temporary names are short whatever the target's name (a file stem of 250 bytes still fits the
file system's 255), start with a dot and carry the writer's pid, so leftovers of a killed process
can be recognised and removed (`remove_stale_temporaries`).
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import S2VSError

TEMPORARY_SUFFIX = ".s2vs-tmp"
# Bytes of the target's name kept in a temporary name: enough to recognise it, short enough that
# the dot, pid, random token and suffix always fit a 255-byte name.
NAME_PREFIX_BYTES = 120
_TEMPORARY = re.compile(r"\.(?P<name>.*)\.(?P<pid>\d+)-[0-9a-f]{8}" + re.escape(TEMPORARY_SUFFIX), re.DOTALL)


class OutputWriteError(S2VSError):
    """A file could not be written; the previous file at that path, if any, is unchanged."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: cannot write ({reason})")


def temporary_sibling(path: str | os.PathLike) -> Path:
    """A fresh temporary name beside `path`: ``.{name prefix}.{pid}-{random}.s2vs-tmp``, always short."""
    path = Path(path)
    return path.with_name(f".{_name_prefix(path.name)}.{os.getpid()}-{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


def temporary_writer(name: str) -> int | None:
    """The pid in a name `temporary_sibling` made (a file or a working folder); None for any other name."""
    match = _TEMPORARY.fullmatch(name)
    return int(match.group("pid")) if match else None


def temporaries_of(path: str | os.PathLike) -> list[Path]:
    """The temporary files beside `path` that `temporary_sibling` named for it (or for a name that begins
    with the same NAME_PREFIX_BYTES), whoever wrote them."""
    path = Path(path)
    prefix = _name_prefix(path.name)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    return sorted(path.parent / name for name in names
                  if (match := _TEMPORARY.fullmatch(name)) is not None and match.group("name") == prefix)


def _name_prefix(name: str) -> str:
    return name.encode("utf-8", "surrogateescape")[:NAME_PREFIX_BYTES].decode("utf-8", "ignore")


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside `path`, renamed over it when the block ends well and removed otherwise
    (OutputWriteError naming `path` for an OSError; anything else, Ctrl-C included, passes through)."""
    temporary = temporary_sibling(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OutputWriteError(path, error.strerror or str(error)) from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                 newline: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file for writing; on success it is synced and renamed to `path`.

    Any error while writing, flushing, syncing or renaming removes the temporary file and raises
    OutputWriteError naming `path` (KeyboardInterrupt passes through, after the same clean-up).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', not {mode!r}")
    kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
    with _replacing(Path(path)) as temporary, open(temporary, mode, **kwargs) as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_bytes_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically, checking every byte was written."""
    with atomic_write(path, "wb") as handle:
        written = handle.write(data)
        if written != len(data):  # a short write is not always an exception
            raise OSError(f"short write: {written} of {len(data)} bytes")


def write_new_file(path: str | os.PathLike, data: bytes) -> None:
    """Create `path` (which must not exist) holding `data`, checked and synced, without a rename.

    For files inside a working folder that is itself renamed into place when whole (a video's frames):
    there the folder's rename is the atomic step, and a rename per file would only add its cost.
    """
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:  # nothing of ours to remove: the file there is someone else's
        raise OutputWriteError(path, error.strerror or str(error)) from None
    try:
        try:
            view, written = memoryview(data), 0
            while written < len(view):  # os.write may write less than asked; zero means no progress
                count = os.write(descriptor, view[written:])
                if count <= 0:
                    raise OSError(f"short write: {written} of {len(view)} bytes")
                written += count
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        path.unlink(missing_ok=True)
        raise OutputWriteError(path, error.strerror or str(error)) from None


def write_with(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """Let `write(temporary_path)` produce the file (a library that takes a path), then rename it to `path`."""
    with _replacing(Path(path)) as temporary:
        write(temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())


def check_writable(path: str | os.PathLike, folder: bool = False, parents: bool = False) -> None:
    """Fail at once, before any work, when `path` cannot be written (S2VSError, one line naming it).

    A file must not be a folder, and its folder must exist and take a new file: the temporary sibling the
    write will use is made and removed, so a folder that refuses files (read-only, /proc) fails here, not
    after the work. With `parents` (a writer that makes missing folders) and for a `folder` output, missing
    folders are fine: the nearest one that exists must take a new file.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise S2VSError(f"{path}: exists and is not a folder; give a folder to write into")
    if not folder and path.is_dir():
        raise S2VSError(f"{path}: is a folder; give a file to write")
    where = path if folder else path.parent
    if folder or parents:
        while not where.exists() and where != where.parent:
            where = where.parent
    if not where.is_dir():
        why = f"{where} is not a folder" if where.exists() else f"folder {where} not found"
        raise S2VSError(f"{path}: cannot write here ({why})")
    probe = temporary_sibling(path if where == path.parent else where / "output")
    try:
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise S2VSError(f"{path}: cannot write here (cannot create a file in {where}: "
                        f"{error.strerror or error})") from None
    os.close(descriptor)
    with contextlib.suppress(OSError):
        os.unlink(probe)


def remove_stale_temporaries(folder: str | os.PathLike, pattern: re.Pattern[str] = _TEMPORARY) -> int:
    """Delete the temporary files in `folder` left by processes that are gone; return how many.

    `pattern` tells them by name, its group `pid` naming the writer: by default the names given here.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match.group("pid"))
        if pid == os.getpid() or process_alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed += 1
    return removed


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (signal 0 checks without sending)."""
    if os.name == "nt":
        return False  # os.kill would terminate the process there; treat leftovers as stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def sync_folder(folder: str | os.PathLike) -> None:
    """Make the rename itself durable; file systems that cannot sync a folder are left as they are."""
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
