"""`s2vs info`: what a feature file holds, without reading its features."""
from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ..errors import ConfigError
from . import options
from .common import console, print_table, reported_errors, terminal_safe
from .progress import RichProgress, plural

SHOWN = 5  # damaged, failed or link videos listed per store on the terminal (all of them with --json)


Stores = Annotated[list[str], typer.Argument(
    metavar="FEATURES.h5", help="Feature files (from extract-features or merge); one block each.", show_default=False)]
Ids = Annotated[bool, typer.Option(
    "--ids", help="Print the video ids alone, one a line (each file's in turn), and nothing else.",
    rich_help_panel=options.OUTPUT)]


def info(stores: Stores, ids: Ids = False, json_output: options.Json = False) -> None:
    """What a feature file holds: videos and frames, what made them, damaged and failed videos, the search index.

    Reads headers only, never a feature, so it is fast on any size of file; it builds and changes nothing.

    Example: [bold]s2vs info collection.h5[/]
    """
    with reported_errors():
        from ..storage.store_summary import store_ids, summarize_store  # late: h5py, not needed by --help

        if ids and json_output:
            raise ConfigError("--ids prints plain lines: leave out --json")
        if ids:
            for store in stores:
                listed = store_ids(store)
                if listed:
                    typer.echo("\n".join(listed))
            return
        with RichProgress(console, json_output) as progress:
            summaries = [summarize_store(store, progress) for store in stores]
    if json_output:
        print(json.dumps({"stores": [summary.as_dict() for summary in summaries]}))
        return
    for summary in summaries:
        _render(summary)


def _render(summary) -> None:
    table = Table(title=terminal_safe(summary.path), title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    videos = f"{summary.videos:,} ({summary.frames:,} frames"
    if summary.frames_per_video is not None:
        low, median, high = summary.frames_per_video
        videos += f"; per video {low:,} min, {median:,g} median, {high:,} max"
    table.add_row("videos", videos + f"); {_size(summary.bytes)}")
    identity = summary.identity
    if identity is None:
        table.add_row("made with", "not recorded (a file from another tool, or the published features)")
    else:
        table.add_row("made with", terminal_safe(f"{identity.backbone}; whitening {identity.whitening}; "
                                                 f"{identity.dims} dims {identity.dtype}; {identity.fps:g} fps from "
                                                 f"{identity.loader} input; s2vs {summary.version or '?'}"))
    table.add_row("random weights", "[yellow]yes: a test of the pipeline, not meaningful similarities[/]"
                  if summary.random_weights else "no")
    _add_list(table, "damaged", [f"{terminal_safe(i)}: lost {_loss(f, s)}" for i, f, s in summary.lost],
              "lost frames or seconds to damage when extracted")
    _add_list(table, "failed", [f"{terminal_safe(f.video_id)}: {terminal_safe(f.reason)}" for f in summary.failed],
              f"listed in {terminal_safe(summary.failures_file)}")
    if summary.links:  # only in files another tool changed
        _add_list(table, "links", [terminal_safe(name) for name in summary.links],
                  "with features elsewhere, never read (`s2vs verify --repair` removes them)")
    table.add_row("search index", _index(summary.index))
    print_table(table)


def _add_list(table: Table, name: str, lines: list[str], what: str) -> None:
    """A row saying how many and listing the first SHOWN ("none" without any)."""
    if not lines:
        table.add_row(name, "none")
        return
    more = f"\n... and {len(lines) - SHOWN:,} more (--json lists them all)" if len(lines) > SHOWN else ""
    table.add_row(name, f"{_videos(len(lines))} {what}\n" + "\n".join(lines[:SHOWN]) + more)


def _index(state) -> str:
    where = terminal_safe(state.folder) + (" (in the user's cache: the file's folder is not writable)"
                                           if state.in_cache else "")
    if state.state == "none":
        return f"none (`s2vs index` or the next search builds it in {where})"
    reason = f"\n{terminal_safe(state.reason)}" if state.reason else ""
    color = "yellow" if state.state == "stale" else "green"
    return f"[{color}]{state.state}[/]: {_videos(state.videos)} ({state.kind}) in {where}{reason}"


def _loss(frames: int, seconds: float) -> str:
    """'3 frames and 1.7 s', '1.7 s', '1 frame'."""
    return " and ".join(([plural(frames, "frames")] if frames else []) + ([f"{seconds:.1f} s"] if seconds else []))


def _videos(count: int) -> str:
    return plural(count, "videos").replace(str(count), f"{count:,}", 1)


def _size(size: float) -> str:
    """Bytes as people read them: 812 bytes, 1.61 GB (powers of 1000, as `ls -h --si`)."""
    if size < 1000:
        return f"{int(size)} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            break
    return f"{size:.2f} {unit}"
