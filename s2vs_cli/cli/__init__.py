"""The `s2vs` command line: one Typer app, one module per command. Heavy imports happen inside commands."""
from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from .. import __version__
from .calibrate import calibrate
from .common import quiet_hdf5_cleanup
from .compare import compare
from .dedup import dedup
from .extract_frames import EPILOG as EXTRACT_FRAMES_EPILOG, extract_frames
from .extract_features import EPILOG as EXTRACT_FEATURES_EPILOG, extract_features
from .evaluate import evaluate
from .fit_pca import fit_pca
from .help import Command, Group
from .info import info
from .merge import merge
from .report import report
from .search import index, search
from .train import EPILOG as TRAIN_EPILOG, train
from .verify import verify

app = typer.Typer(
    name="s2vs",
    cls=Group,
    help="Self-supervised video similarity (S2VS): find copies, near-duplicates and related videos.",
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Every command: help grouped by panel with flags shown without a type (help.Command); no arguments: its help.
app.command(cls=Command, no_args_is_help=True)(compare)
app.command("extract-frames", cls=Command, no_args_is_help=True, epilog=EXTRACT_FRAMES_EPILOG)(extract_frames)
app.command("extract-features", cls=Command, no_args_is_help=True, epilog=EXTRACT_FEATURES_EPILOG)(extract_features)
app.command("fit-pca", cls=Command, no_args_is_help=True)(fit_pca)
app.command(cls=Command, no_args_is_help=True)(evaluate)
app.command(cls=Command, no_args_is_help=True)(calibrate)
app.command(cls=Command, no_args_is_help=True)(merge)
app.command(cls=Command, no_args_is_help=True, epilog=TRAIN_EPILOG)(train)
app.command(cls=Command, no_args_is_help=True)(search)
app.command(cls=Command, no_args_is_help=True)(index)
app.command(cls=Command, no_args_is_help=True)(dedup)
app.command(cls=Command, no_args_is_help=True)(verify)
app.command(cls=Command, no_args_is_help=True)(info)
app.command(cls=Command, no_args_is_help=True)(report)


def _print_version(value: bool) -> None:
    if value:
        print(f"s2vs {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Self-supervised video similarity (S2VS): find copies, near-duplicates and related videos."""
    quiet_hdf5_cleanup()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as done:
        from ..storage.store import hdf5_write_failed  # late: h5py and numpy, not needed by --help

        if hdf5_write_failed():
            # HDF5 crashes (SIGSEGV) in its exit handlers once a write of a file has failed (a full disk):
            # the error is reported and no file is left open for writing, so leave without them.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(done.code if isinstance(done.code, int) else 1)
        raise
