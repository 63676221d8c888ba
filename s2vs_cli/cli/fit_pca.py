"""`s2vs fit-pca`: learn the PCA whitening of region vectors from un-whitened features."""
from __future__ import annotations

import json
from typing import Annotated

import typer

from . import options
from .common import check_writable, console, reported_errors, stdout, terminal_safe
from .progress import RichProgress


def fit_pca(
    features: Annotated[list[str], typer.Argument(
        metavar="FEATURES.hdf5...", help="Feature files made with [bold]extract-features --pca none[/] (3840-d).",
        show_default=False)],
    max_vectors: Annotated[int, typer.Option(
        "--max-vectors", help="Region vectors to fit on, drawn uniformly from all videos.",
        rich_help_panel=options.INPUT)] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the draw.", rich_help_panel=options.INPUT)] = 0,
    output: Annotated[str, typer.Option("--output", "-o", metavar="PCA.pth",
                                        help="Where to save the whitening (mean, d, V: the published layout).",
                                        show_default=False, rich_help_panel=options.OUTPUT)] = ...,
    device: Annotated[str, typer.Option(
        "--device", metavar="cpu|cuda[:N]", help="Where the float64 scatter matrix is accumulated.",
        rich_help_panel=options.RUNTIME)] = "cpu",
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Learn a PCA whitening (docs/METHOD.md §2) from region vectors; use it with [bold]--pca PCA.pth[/].

    Example: [bold]s2vs extract-features videos/ --pca none -o raw.hdf5 && s2vs fit-pca raw.hdf5 -o pca.pth[/]
    """
    with reported_errors():
        check_writable(made=(output,))  # before anything is imported or loaded
        from ..jobs.fit_pca import fit_pca as fit  # late: torch, only once the command runs
        from ..runtime import Runtime  # late: torch, only once the command runs

        with RichProgress(console, quiet or json_output) as progress:
            runtime = Runtime.start(device, "fp32", progress=progress)
            result = fit(features, output, runtime, max_vectors, seed, progress)
    if result.dims_note:  # on stderr, so also beside --json
        console.print(f"[yellow]note:[/] {terminal_safe(result.dims_note)}", highlight=False)
    if json_output:
        print(json.dumps({"output": result.output, "vectors": result.vectors, "dims": result.dims,
                          "warning": result.warning, "random_weights": result.random_weights}))
        return
    stdout.print(f"{terminal_safe(result.output)}: whitening of {result.dims}-d region vectors fitted on "
                 f"{result.vectors:,} vectors", highlight=False)
    if result.warning:
        console.print(f"[yellow]warning:[/] {terminal_safe(result.warning)}", highlight=False, soft_wrap=True)
    if result.random_weights:
        console.print("[yellow]note:[/] random weights: fitted on features of random weights, so the file says so "
                      "and features whitened with it are marked random weights", highlight=False, soft_wrap=True)
