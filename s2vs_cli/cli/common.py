"""What every command shares: the console, one-line errors with exit codes, progress, config loading."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from ..config import build_config, config_to_yaml
from ..errors import ConfigError, S2VSError

T = TypeVar("T")

console = Console(stderr=True)   # progress, tables for people and errors: stderr keeps stdout clean for data
stdout = Console()               # tables a user may pipe or redirect

EXIT_ERROR = 1
EXIT_USAGE = 2


@contextlib.contextmanager
def reported_errors(interrupted: str = "") -> Iterator[None]:
    """Turn library errors into one line on stderr and a non-zero exit status (never a traceback).

    `interrupted` is added to the message shown on Ctrl-C (e.g. how to resume).
    """
    try:
        yield
    except ConfigError as e:
        _print_error(e)
        raise typer.Exit(EXIT_USAGE) from None
    except S2VSError as e:
        _print_error(e)
        raise typer.Exit(EXIT_ERROR) from None
    except OSError as e:  # the file system refused something the library did not foresee
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        _print_error(Exception(f"{where}{e.strerror or e}"))
        raise typer.Exit(EXIT_ERROR) from None
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]" + (f"; {escape(interrupted)}" if interrupted else ""),
                      highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


def _print_error(error: Exception) -> None:
    # soft_wrap: the message stays one line however narrow the terminal, so it can be grepped and copied.
    console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)


def load_config(cls: type[T], config_file: str | None, print_config: bool, **flags: Any) -> T:
    """Defaults <- YAML <- flags; with --print-config show the result and exit."""
    config = build_config(cls, config_file, flags)
    if print_config:
        sys.stdout.write(config_to_yaml(config))
        raise typer.Exit(0)
    return config


@contextlib.contextmanager
def download_progress(quiet: bool) -> Iterator[Any]:
    """A callback for weights.download that drives a rich progress bar (a no-op when quiet).

    The bar appears on the first byte reported, so nothing is drawn when everything is cached.
    """
    if quiet:
        yield None
        return
    columns = (TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    progress = Progress(*columns, console=console, transient=True)
    task = None

    def update(done: int, total: int | None) -> None:
        nonlocal task
        if task is None:
            progress.start()
            task = progress.add_task("download", total=total)
        progress.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if task is not None:
            progress.stop()


@contextlib.contextmanager
def status(quiet: bool) -> Iterator[Any]:
    """A callback that shows the current stage of a long job as a spinner line (a no-op when quiet)."""
    if quiet:
        yield lambda message: None
        return
    with console.status("starting") as spinner:
        yield lambda message: spinner.update(message)


def write_results(output: str | None, summary: dict) -> None:
    """`--output FILE`: every number as indented JSON (nothing when no file was asked for)."""
    if output is None:
        return
    import json
    from pathlib import Path

    try:
        Path(output).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{output}: cannot write results ({e.strerror or e})") from None
