"""`s2vs verify`: read a whole feature file and list the videos whose features cannot be trusted."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from . import options
from .common import EXIT_ERROR, check_writable, console, reported_errors, stdout, terminal_safe
from .progress import RichProgress, plural

SHOWN = 20  # damaged videos listed on the terminal (all of them with --json)


def verify(
    database: Annotated[str, typer.Argument(metavar="FEATURES.h5", help="The feature file to check.",
                                            show_default=False)],
    repair: Annotated[bool, typer.Option(
        "--repair", help="Rewrite the file without the damaged videos (atomically), so that running "
                         "extract-features again redoes them.", rich_help_panel=options.OUTPUT)] = False,
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Check every video of a feature file against its checksums and recorded digest.

    Reads the whole file. Exit status 0 when every video is sound (or --repair removed the damaged
    ones), 1 when damaged videos were found or the file cannot be read.
    """
    with reported_errors():
        if repair:  # the file is rewritten beside itself: its folder must take a new file
            check_writable(database)
        from ..jobs.merge import verify_features  # late: h5py and numpy, only once the command runs

        with RichProgress(console, quiet or json_output) as progress:
            check, repaired = verify_features(database, repair, progress)
    summary = check.as_dict() | {"repaired": repaired is not None}
    if json_output:
        print(json.dumps(summary))
    elif not quiet:
        _report(check, repaired)
    if check.damaged and repaired is None:
        raise typer.Exit(EXIT_ERROR)


def _report(check, repaired: int | None) -> None:
    name = terminal_safe(check.path)
    if not check.damaged:
        note = f"; {check.unverifiable} without checksums or digests (checked by their values only)" \
            if check.unverifiable else ""
        every = "the one video is" if check.videos == 1 else f"all {check.videos} videos"
        stdout.print(f"{name}: {every} sound{note}", highlight=False, soft_wrap=True)
        return
    console.print(f"[red]{name}: {len(check.damaged)} of {plural(check.videos, 'videos')} damaged[/]", highlight=False,
                  soft_wrap=True)
    for video_id, reason in check.damaged[:SHOWN]:
        stdout.print(f"{terminal_safe(video_id)}\t{terminal_safe(reason)}", highlight=False, soft_wrap=True)
    if len(check.damaged) > SHOWN:
        console.print(f"... and {len(check.damaged) - SHOWN} more (--json lists them all)", highlight=False)
    if repaired is not None:
        console.print(f"repaired: {name} now holds {plural(repaired, 'videos')}; run extract-features on it again to "
                      "redo the damaged ones", highlight=False, soft_wrap=True)
    else:
        console.print(f"to remove them: s2vs verify {name} --repair (then run extract-features again to redo "
                      "them)", highlight=False, soft_wrap=True)
