"""`s2vs verify`: read a whole feature file and list the videos whose features cannot be trusted."""
from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import options
from .common import EXIT_ERROR, console, reported_errors, stdout

SHOWN = 20  # damaged videos listed on the terminal (all of them with --json)


def verify(
    database: Annotated[str, typer.Argument(metavar="FEATURES.h5", help="The feature file to check.",
                                            show_default=False)],
    repair: Annotated[bool, typer.Option(
        "--repair", help="Rewrite the file without the damaged videos (atomically), so that running "
                         "extract-features again redoes them.")] = False,
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Check every video of a feature file against its checksums and recorded digest.

    Reads the whole file. Exit status 0 when every video is sound (or --repair removed the damaged
    ones), 1 when damaged videos were found or the file cannot be read.
    """
    with reported_errors():
        from pathlib import Path

        from ..storage.store import verify_store

        columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True, disable=quiet or json_output) as bar:
            task = bar.add_task("verify", total=None)
            check = verify_store(database, lambda done, total: bar.update(task, completed=done, total=total))
        repaired = None
        if repair and check.damaged:
            repaired = _repair(Path(database))
    summary = check.as_dict() | {"repaired": repaired is not None}
    if json_output:
        print(json.dumps(summary))
    elif not quiet:
        _report(check, repaired)
    if check.damaged and repaired is None:
        raise typer.Exit(EXIT_ERROR)


def _repair(path) -> int:
    """Rewrite the file without its damaged videos; returns how many videos it keeps."""
    from ..jobs.extract_features import LOCK_NAME
    from ..storage.parts import merge_parts, parts_dir_for
    from ..storage.runs import exclusive_lock
    from ..storage.store import read_identity
    from ..models.weights import package_version

    with exclusive_lock(parts_dir_for(path) / LOCK_NAME, str(path)):  # never while a run writes it
        return merge_parts(path, [], read_identity(path), package_version()).videos


def _report(check, repaired: int | None) -> None:
    name = escape(str(check.path))
    if not check.damaged:
        note = f"; {check.unverifiable} without checksums or digests (only checked for NaN)" \
            if check.unverifiable else ""
        stdout.print(f"{name}: all {check.videos} videos sound{note}", highlight=False, soft_wrap=True)
        return
    console.print(f"[red]{name}: {len(check.damaged)} of {check.videos} videos damaged[/]", highlight=False,
                  soft_wrap=True)
    for video_id, reason in check.damaged[:SHOWN]:
        stdout.print(f"{escape(video_id)}\t{escape(reason)}", highlight=False, soft_wrap=True)
    if len(check.damaged) > SHOWN:
        console.print(f"... and {len(check.damaged) - SHOWN} more (--json lists them all)", highlight=False)
    if repaired is not None:
        console.print(f"repaired: {name} now holds {repaired} videos; run extract-features on it again to "
                      "redo the damaged ones", highlight=False, soft_wrap=True)
    else:
        console.print(f"to remove them: s2vs verify {name} --repair (then run extract-features again to redo "
                      "them)", highlight=False, soft_wrap=True)
