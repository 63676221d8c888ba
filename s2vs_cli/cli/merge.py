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
    files of runs on machines without a shared disk. Files made with different models are refused.
    """
    with reported_errors():
        import contextlib
        from pathlib import Path

        from ..errors import FeatureStoreError
        from ..extraction import LOCK_NAME
        from ..runs import exclusive_lock
        from ..store import complete_parts, merge_parts, merging_temporaries, parts_dir_for, read_identity
        from ..weights import package_version

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
            result = merge_parts(output, sources, identity, package_version())
            if not parts:
                for source in sources:
                    source.unlink()
            (parts_dir / LOCK_NAME).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                parts_dir.rmdir()  # empty now, unless a crashed run left unfinished parts
    if not quiet:
        stdout.print(f"{escape(str(result.output))}: {result.videos} videos ({result.added} added from "
                     f"{len(sources)} file(s))", highlight=False, soft_wrap=True)
    if result.duplicates:
        console.print(f"[yellow]note:[/] {len(result.duplicates)} id(s) were in more than one file; the first copy "
                      f"was kept, e.g. {escape(result.duplicates[0])}", highlight=False, soft_wrap=True)
