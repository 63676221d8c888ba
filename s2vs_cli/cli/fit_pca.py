"""`s2vs fit-pca`: learn the PCA whitening of region vectors from un-whitened features."""
from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import options
from .common import console, reported_errors, stdout


def fit_pca(
    features: Annotated[list[str], typer.Argument(
        metavar="FEATURES.hdf5...", help="Feature files made with [bold]extract-features --pca none[/] (3840-d).",
        show_default=False)],
    output: Annotated[str, typer.Option("--output", "-o", metavar="PCA.pth",
                                        help="Where to save the whitening (mean, d, V: the published layout).",
                                        show_default=False)] = ...,
    max_vectors: Annotated[int, typer.Option(
        "--max-vectors", help="Region vectors to fit on, drawn uniformly from all videos.")] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the draw.")] = 0,
    device: Annotated[str, typer.Option(
        "--device", metavar="cpu|cuda[:N]", help="Where the float64 scatter matrix is accumulated.")] = "cpu",
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Learn a PCA whitening (SPEC §2) from region vectors; use it with [bold]--pca PCA.pth[/].

    Example: [bold]s2vs extract-features videos/ --pca none -o raw.hdf5 && s2vs fit-pca raw.hdf5 -o pca.pth[/]
    """
    with reported_errors():
        from ..errors import ConfigError
        from ..models.extractor import REGION_DIMS
        from ..jobs.fit_pca import fit_from_feature_files, save_whitening, whitening_note
        from ..runtime import resolve_device

        if max_vectors < 2:
            raise ConfigError(f"--max-vectors must be at least 2, got {max_vectors}")
        run_device = resolve_device(device)
        quiet = quiet or json_output
        columns = (TextColumn("reading vectors"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=True, disable=quiet) as progress:
            task = progress.add_task("read", total=None)
            whitening, used = fit_from_feature_files(
                features, max_vectors, seed, run_device,
                progress=lambda done, total: progress.update(task, completed=done, total=total))
        dims = whitening["mean"].numel()
        if dims != REGION_DIMS:
            console.print(f"[yellow]note:[/] {dims}-d vectors: --pca expects {REGION_DIMS}-d (ResNet-50 L3-iMAC) "
                          "whitenings", highlight=False)
        save_whitening(output, whitening)
    note = whitening_note(whitening, keep=512)
    if json_output:
        print(json.dumps({"output": output, "vectors": used, "dims": dims, "warning": note}))
        return
    stdout.print(f"{escape(output)}: whitening of {dims}-d region vectors fitted on {used:,} vectors", highlight=False)
    if note:
        console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)
