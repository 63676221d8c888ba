"""The `s2vs` command line: one Typer app, one module per command. Heavy imports happen inside commands."""
from __future__ import annotations

import typer

from .compare import compare

app = typer.Typer(
    name="s2vs",
    help="Self-supervised video similarity (S2VS): find copies, near-duplicates and related videos.",
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command(no_args_is_help=True)(compare)


@app.callback()
def _root() -> None:
    """Self-supervised video similarity (S2VS): find copies, near-duplicates and related videos."""


def main() -> None:
    """Console-script entry point."""
    app()
