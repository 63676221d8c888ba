"""Bookkeeping shared by the bulk commands: running counts, failed videos, the failures file and the lock."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_text_atomically
from ..errors import S2VSError
from ..spreadsheet_cells import spreadsheet_safe


@dataclass
class Failure:
    """A video that could not be processed, and why."""

    video_id: str
    path: str
    reason: str


@dataclass
class RunCounts:
    """A bulk job's running counts (reported to its Progress after every finished or failed video)."""

    total: int                  # videos this process has to do
    done: int = 0               # written
    failed: int = 0
    frames: int = 0             # frames through the model (extract-features) or written (extract-frames)


def failures_path(output: str | Path) -> Path:
    """Where the failed videos of a run are listed: ``OUTPUT.failed.tsv``."""
    output = Path(output)
    return output.with_name(output.name + ".failed.tsv")


def write_failures(path: Path, failures: Sequence[Failure]) -> None:
    """Tab-separated id, path, reason, each cell safe to open in a spreadsheet; the file is removed when
    nothing failed."""
    if not failures:
        path.unlink(missing_ok=True)
        return
    # Tabs and newlines would break the TSV; a cell such as "=cmd|..." would run as a formula.
    clean = lambda text: spreadsheet_safe(" ".join(str(text).split()))  # noqa: E731
    lines = ["video_id\tpath\treason"] + [f"{clean(f.video_id)}\t{clean(f.path)}\t{clean(f.reason)}"
                                          for f in sorted(failures, key=lambda f: f.video_id)]
    write_text_atomically(path, "\n".join(lines) + "\n")  # its temporary name is short whatever the output's


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created, holding our pid) for a run writing `what`.

    A second run on the same output fails at once with a one-line error instead of deleting the
    first run's unfinished files. The lock dies with the process, so a killed run's file holds none;
    any other ending removes the file (and its folder, when empty).
    """
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as e:
        raise S2VSError(f"{path.parent}: cannot write here ({e.strerror or e})") from None
    locked = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip()
            who = f"pid {holder}" if holder.isdigit() else "another process"
            raise S2VSError(f"{what} is being written by another run ({who}); wait for it to "
                            "finish or choose another output") from None
        locked = True
        try:
            handle.truncate(0)
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError as e:  # a full disk refuses even these few bytes: say where
            raise S2VSError(f"{path}: cannot write the run's lock file ({e.strerror or e})") from None
        yield
    finally:
        if locked:  # removed while still held, so a run that fails or is interrupted leaves no lock behind
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # the parts folder, when nothing else is left in it
        handle.close()
