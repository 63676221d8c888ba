"""`s2vs merge`: join part files (from a crashed run or from several machines) into one feature file."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from . import options
from .common import console, reported_errors, stdout, terminal_safe
from .progress import RichProgress, plural


def merge(
    output: Annotated[str, typer.Argument(metavar="OUT.hdf5", help="Feature file to create or extend.",
                                          show_default=False)],
    parts: Annotated[Optional[list[str]], typer.Argument(
        metavar="[PARTS]...", help="Feature files to add. Default: the finished parts in OUT.hdf5.parts/.",
        show_default=False)] = None,
    quiet: options.Quiet = False,
) -> None:
    """Join feature files into OUT.hdf5 (atomically; existing videos are kept, the first copy of an id wins).

    Useful after an interrupted [bold]extract-features[/] run (to read what is done so far) and to join the
    files of runs on machines without a shared disk. Files made with different models are refused. Every
    video is checked as it is copied: incomplete or damaged ones are left out and listed (exit status 3).
    """
    with reported_errors():
        from ..jobs.merge import merge_features  # late: h5py and numpy, only once the command runs

        with RichProgress(console, quiet) as progress:
            merged = merge_features(output, parts or [], progress)
    result = merged.result
    if not quiet:
        stdout.print(f"{terminal_safe(result.output)}: {plural(result.videos, 'videos')} ({result.added} added "
                     f"from {merged.sources} file(s))", highlight=False, soft_wrap=True)
    if result.duplicates:
        console.print(f"[yellow]note:[/] {len(result.duplicates)} id(s) were in more than one file; the first copy "
                      f"was kept, e.g. {terminal_safe(result.duplicates[0])}", highlight=False, soft_wrap=True)
    if result.damaged:
        for damaged in result.damaged:
            what = "unreadable part" if damaged.video_id == "*" else f"'{damaged.video_id}'"
            console.print(f"[red]left out:[/] {terminal_safe(what)} in {terminal_safe(damaged.path)}: "
                          f"{terminal_safe(damaged.reason)}", highlight=False, soft_wrap=True)
        console.print(f"[red]{len(result.damaged)} incomplete or damaged item(s) left out[/]; run extract-features "
                      "on the same output again to redo them", highlight=False, soft_wrap=True)
        raise typer.Exit(3)
