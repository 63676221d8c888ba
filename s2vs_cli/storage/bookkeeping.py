"""Bookkeeping shared by the bulk commands: how an extraction runs and what it did, running counts, failed videos,
the failures file and the lock."""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import write_text_atomically
from ..errors import S2VSError
from ..spreadsheet_cells import from_spreadsheet_safe, spreadsheet_safe


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


@dataclass
class ExtractionOptions:
    """How a bulk extraction runs (the model, its precision and compilation come from the Runtime)."""

    fps: float = 1.0               # frames per second of video (for frame folders: the rate they were written at)
    loader: str = "video"          # frame source name (media/source.py): "video" files, "frames" folders
    frames_per_batch: int = 128    # frames per model batch, taken across videos
    workers: int = 2               # decoding processes; 0 decodes in this process
    decode_threads: int = 1        # FFmpeg threads per decoding process
    dtype: str = "float16"         # stored feature type
    compression: str | None = None  # HDF5 filter for the features: None, "gzip" or "lzf"
    overwrite: bool = False        # recompute everything, replacing the output
    strict: bool = False           # a damaged video (frames or seconds lost, decoder errors) fails, unwritten
    part_videos: int = 1000        # a part file is closed after this many videos ...
    part_seconds: float = 30.0     # ... or this many seconds: at most this much work is lost to a crash


@dataclass
class ExtractionSummary:
    """What a run did (for this rank; rank 0's copy also holds every rank's failures and the merge)."""

    requested: int                 # videos named (all ranks)
    already_done: int              # found complete from an earlier run and skipped
    written: int                   # written by this run (all ranks)
    frames: int                    # frames through the model (this rank)
    failures: list[Failure] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)  # video id -> decode warnings (this rank)
    # Videos written from damaged files (all ranks): id -> lost_frames, lost_seconds and the warning saying it.
    damaged: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0           # wall time of the extraction loop (this rank)
    model_seconds: float = 0.0     # of which the model was busy
    videos_in_output: int | None = None  # after the merge (rank 0)
    replaced: str | None = None    # --overwrite replaced a file made differently: how it differed (rank 0)
    output: str = ""
    failures_file: str | None = None  # OUTPUT.failed.tsv, when videos failed (rank 0)


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


def read_failures(path: Path) -> list[Failure]:
    """The failures `write_failures` listed in `path` (none when there is no such file); a line that is not
    three cells is read as far as it goes."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]  # after the header
    except FileNotFoundError:
        return []
    cells = [[from_spreadsheet_safe(cell) for cell in line.split("\t")] + ["", ""] for line in lines if line.strip()]
    return [Failure(*row[:3]) for row in cells]


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created, holding our pid) for a run writing `what`.

    A second run on the same output fails at once with a one-line error instead of deleting the
    first run's unfinished files. The lock dies with the process, so a killed run's file holds none;
    any other ending removes the file (and its folder, when empty).
    """
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
