"""Bookkeeping shared by the bulk commands: progress counts, failed videos and the failures file."""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Failure:
    """A video that could not be processed, and why."""

    video_id: str
    path: str
    reason: str


@dataclass
class RunProgress:
    """Counts reported after every finished (or failed) video."""

    total: int                  # videos this process has to do
    done: int = 0               # written
    failed: int = 0
    frames: int = 0             # frames through the model (extract-features) or written (extract-frames)
    last: str | None = None     # id of the last video finished


def failures_path(output: str | Path) -> Path:
    """Where the failed videos of a run are listed: ``OUTPUT.failed.tsv``."""
    output = Path(output)
    return output.with_name(output.name + ".failed.tsv")


def write_failures(path: Path, failures: Sequence[Failure]) -> None:
    """Tab-separated id, path, reason; the file is removed when nothing failed."""
    if not failures:
        path.unlink(missing_ok=True)
        return
    clean = lambda text: " ".join(str(text).split())  # noqa: E731 - tabs/newlines would break the TSV
    lines = ["video_id\tpath\treason"] + [f"{clean(f.video_id)}\t{clean(f.path)}\t{clean(f.reason)}"
                                          for f in sorted(failures, key=lambda f: f.video_id)]
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, path)
