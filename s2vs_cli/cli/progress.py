"""The one place the library's progress reports become rich bars on stderr."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress as RichBars, SpinnerColumn,
                           TextColumn, TimeRemainingColumn, TransferSpeedColumn)

from ..progress import Progress
from .common import console, terminal_safe

if TYPE_CHECKING:
    from ..runtime import Runtime


def plural(count: int, unit: str) -> str:
    """'1 video', '2 videos', '1 query' (units are given in the plural)."""
    if count != 1:
        return f"{count} {unit}"
    if unit.endswith("ies"):
        return f"1 {unit[:-3]}y"
    return f"1 {unit[:-1] if unit.endswith('s') else unit}"


class RichProgress(Progress):
    """Draws each stage as a bar (a spinner while its total is unknown) with its rate, failures and ETA.

    Use as a context manager. `quiet` hides bars and downloads; notes are still printed, since they say
    something the user must know (random weights, left-out queries). Bars are drawn only on a terminal:
    piped output gets the notes alone, with no trailing padding.
    """

    def __init__(self, console: Console, quiet: bool = False):
        self.console, self.quiet = console, quiet
        self._bars: RichBars | None = None
        self._downloads: RichBars | None = None
        self._task = self._download_task = None
        self._unit, self._started, self._first = "items", 0.0, None

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc) -> None:
        for bars in (self._downloads, self._bars):
            if bars is not None:
                bars.stop()
        self._bars = self._downloads = None

    @property
    def _drawing(self) -> bool:
        return not self.quiet and self.console.is_terminal

    def stage(self, name: str, total: int | None = None, unit: str = "items") -> None:
        if not self._drawing:
            return
        if self._bars is None:
            self._bars = RichBars(SpinnerColumn(finished_text=" "), TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                                  TextColumn("[red]{task.fields[failed]}"), TimeRemainingColumn(),
                                  console=self.console, transient=True)  # the result, printed after, says it all
            self._bars.start()
        if self._task is not None:  # one bar at a time: the finished stage makes way for the next
            self._bars.remove_task(self._task)
        self._unit, self._started, self._first = unit, time.perf_counter(), None
        self._task = self._bars.add_task(terminal_safe(name), total=total, rate="", failed="")

    def update(self, done: int, total: int | None = None, *, failed: int = 0, frames: int = 0,
               status: str = "") -> None:
        if not self._drawing:
            return
        if self._task is None:
            self.stage("working")
        finished = done + failed
        if self._first is None:  # a resumed stage starts part-way: its rate counts from there
            self._first, self._started = finished, time.perf_counter()
        elapsed = time.perf_counter() - self._started
        progressed = finished - self._first
        rate = f"{progressed / elapsed:.1f} {self._unit}/s" if progressed and elapsed > 0 else ""
        if frames and elapsed > 0:
            rate += f", {frames / elapsed:.0f} frames/s"
        if status:
            rate = f"{rate}  {terminal_safe(status)}" if rate else terminal_safe(status)
        fields = {"completed": finished, "rate": rate, "failed": f"{failed} failed" if failed else ""}
        if total is not None:
            fields["total"] = total
        self._bars.update(self._task, **fields)

    def download(self, done: int, total: int | None) -> None:
        if not self._drawing:
            return
        if self._downloads is None:  # appears on the first byte: nothing is drawn when everything is cached
            self._downloads = RichBars(TextColumn("downloading"), BarColumn(), DownloadColumn(),
                                       TransferSpeedColumn(), TimeRemainingColumn(), console=self.console,
                                       transient=True)
            self._downloads.start()
            self._download_task = self._downloads.add_task("download", total=total)
        self._downloads.update(self._download_task, completed=done, total=total)
        if total is not None and done >= total:
            self._downloads.stop()
            self._downloads = None

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]note:[/] {terminal_safe(message)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def running(cfg: Any, quiet: bool, **placement: Any) -> Iterator[tuple[Runtime, RichProgress]]:
    """Every model-using command's prelude: the progress bars (none when `quiet`) and the runtime on `cfg`'s
    device, precision, compile and seed (`placement`: Runtime.start's distributed and backend), left at the end."""
    from ..runtime import Runtime  # late: torch

    with RichProgress(console, quiet) as progress:
        runtime = Runtime.start(cfg.device, cfg.precision, cfg.compile, cfg.seed, progress=progress, **placement)
        try:
            yield runtime, progress
        finally:
            runtime.close()
