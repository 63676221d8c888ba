"""What the bulk commands share: finding the inputs, a progress bar, the summary and the exit status."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..config import InputOptions
from ..errors import ConfigError
from .common import console

EXIT_SOME_FAILED = 3
RESUME_HINT = "finished videos are kept: run the same command again to go on"
SHOWN_FAILURES = 10


def gather_inputs(paths: list[str] | None, cfg: InputOptions, progress: Any = None) -> tuple[list, list[tuple[str, str, str]]]:
    """Resolve paths / dataset options to inputs; missing ones stop here unless --skip-missing.

    Returns (inputs, missing as (id, path, reason)).
    """
    from ..media.inputs import collect_inputs

    ids = None
    if cfg.dataset is not None:
        from ..benchmarks.annotations import load_benchmark

        if cfg.dataset_path is None:
            raise ConfigError("--dataset names the videos; add --dataset-path DIR to say where they are")
        ids = load_benchmark(cfg.dataset, annotations=cfg.annotations, progress=progress).video_ids()
    elif cfg.annotations is not None:
        raise ConfigError("--annotations goes with --dataset NAME")
    found = collect_inputs(paths or [], cfg.loader, cfg.dataset_path, cfg.pattern, cfg.list, ids)
    if found.missing and not cfg.skip_missing:
        shown = "; ".join(f"'{video_id}' ({reason}: {where})" for video_id, where, reason in found.missing[:5])
        more = f" and {len(found.missing) - 5} more" if len(found.missing) > 5 else ""
        raise ConfigError(f"{len(found.missing)} of {len(found.missing) + len(found.inputs)} videos not found: "
                          f"{shown}{more}; fix the paths or pass --skip-missing to go on without them")
    if not found.inputs and not found.missing:
        raise ConfigError("no videos found in the given inputs"
                          + (" (frame folders hold .jpg/.png files)" if cfg.loader == "frames" else ""))
    if found.ignored:
        kinds = "frame folders" if cfg.loader == "frames" else "videos"
        console.print(f"[yellow]note:[/] {len(found.ignored)} entries in the given folders are not {kinds} "
                      f"and were left out, e.g. {escape(str(found.ignored[0]))}", highlight=False, soft_wrap=True)
    return found.inputs, found.missing


class _Silent:
    def update(self, done: int, failed: int, frames: int = 0, total: int | None = None) -> None:
        pass

    def stage(self, message: str) -> None:
        pass


class _Bar:
    """One rich bar over videos: videos/s, frames/s, failures and ETA; its label names the stage."""

    def __init__(self, progress: Progress, task: Any):
        self.progress, self.task, self.started = progress, task, time.perf_counter()

    def update(self, done: int, failed: int, frames: int = 0, total: int | None = None) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        rate = f"{(done + failed) / elapsed:.1f} videos/s" + (f", {frames / elapsed:.0f} frames/s" if frames else "")
        self.progress.update(self.task, completed=done + failed, rate=rate, total=total,
                             failed=f"{failed} failed" if failed else "")

    def stage(self, message: str) -> None:
        self.progress.update(self.task, description=message)


@contextlib.contextmanager
def video_progress(quiet: bool, description: str) -> Iterator[Any]:
    """A progress bar over videos with .update(done, failed, frames, total) and .stage(message).

    The total is set by the first update: videos done by an earlier run are not counted in it.
    """
    if quiet:
        yield _Silent()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TextColumn("[red]{task.fields[failed]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        yield _Bar(progress, progress.add_task(description, total=None, rate="", failed=""))


def report_failures(failures: list, listing: str) -> None:
    """The first few failures on stderr, and where the full list is."""
    if not failures:
        return
    for failure in failures[:SHOWN_FAILURES]:
        console.print(f"[red]failed:[/] {escape(failure.video_id)}: {escape(failure.reason)}",
                      highlight=False, soft_wrap=True)
    more = f" ({len(failures) - SHOWN_FAILURES} more)" if len(failures) > SHOWN_FAILURES else ""
    console.print(f"{len(failures)} video(s) failed{more}; all are listed in {escape(listing)}",
                  highlight=False, soft_wrap=True)


def check_output(output: str) -> None:
    """Refuse an empty output path before anything is loaded."""
    if not output.strip():
        raise ConfigError("--output must name a file or folder")


def exit_status(failures: list, is_main: bool) -> int:
    """3 when videos failed (rank 0 only: under torchrun the other ranks exit 0 so it reports one status)."""
    return EXIT_SOME_FAILED if failures and is_main else 0
