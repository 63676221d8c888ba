"""`s2vs merge`: join part files (from a crashed run or from several machines) into one feature file."""
from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape

from . import options
from .common import console, reported_errors, stdout


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
        import contextlib
        from pathlib import Path

        from ..errors import FeatureStoreError
        from ..jobs.extract_features import LOCK_NAME
        from ..storage.runs import exclusive_lock
        from ..storage.parts import complete_parts, merge_parts, merging_temporaries, parts_dir_for
        from ..storage.store import read_identity
        from ..models.weights import package_version

        if Path(output).is_dir():
            raise FeatureStoreError(f"{output}: is a folder; give the feature file to write (OUT.hdf5)")
        parts_dir = parts_dir_for(output)
        with contextlib.ExitStack() as cleanup:
            if parts or parts_dir.is_dir():  # never merge while a run is writing this output
                cleanup.enter_context(exclusive_lock(parts_dir / LOCK_NAME, output))
            for stale in merging_temporaries(output):
                stale.unlink(missing_ok=True)
            sources = [Path(p) for p in parts] if parts else complete_parts(parts_dir)
            for source in sources:
                if source.is_dir():
                    raise FeatureStoreError(f"{source}: is a folder; give feature files")
                if not source.is_file():
                    raise FeatureStoreError(f"{source}: feature file not found")
            if not sources:
                raise FeatureStoreError(f"nothing to merge: no finished parts in {parts_dir}")
            known = [read_identity(p) for p in ([Path(output)] if Path(output).exists() else []) + sources]
            identity = next((i for i in known if i is not None), None)
            # A run's own parts that cannot be opened are dropped (their videos are redone); files the
            # user names are never dropped in silence: they are an error.
            result = merge_parts(output, sources, identity, package_version(), drop_unreadable_parts=not parts)
            if not parts:
                for source in sources:
                    source.unlink()
    if not quiet:
        stdout.print(f"{escape(str(result.output))}: {result.videos} videos ({result.added} added from "
                     f"{len(sources)} file(s))", highlight=False, soft_wrap=True)
    if result.duplicates:
        console.print(f"[yellow]note:[/] {len(result.duplicates)} id(s) were in more than one file; the first copy "
                      f"was kept, e.g. {escape(result.duplicates[0])}", highlight=False, soft_wrap=True)
    if result.damaged:
        for damaged in result.damaged:
            what = "unreadable part" if damaged.video_id == "*" else f"'{damaged.video_id}'"
            console.print(f"[red]left out:[/] {escape(what)} in {escape(str(damaged.path))}: {escape(damaged.reason)}",
                          highlight=False, soft_wrap=True)
        console.print(f"[red]{len(result.damaged)} incomplete or damaged item(s) left out[/]; run extract-features "
                      "on the same output again to redo them", highlight=False, soft_wrap=True)
        raise typer.Exit(3)
