"""`s2vs extract-features`: videos or frame folders -> one HDF5 file of region features."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from . import options
from ..jobs.parallel import default_workers
from .bulk import RESUME_HINT, check_output, exit_status, gather_inputs, report_failures, video_progress
from .common import console, download_progress, load_config, reported_errors, stdout

EPILOG = ("Exit status: 0 when every video was extracted, 3 when some failed (listed in OUTPUT.failed.tsv), "
          "2 for a usage error, 1 for any other error.  "
          "Several GPUs or machines: [bold]torchrun --nproc_per_node N $(which s2vs) extract-features ...[/]")


def extract_features(
    inputs: options.Inputs = None,
    output: Annotated[str, typer.Option("--output", "-o", metavar="OUT.hdf5",
                                        help="HDF5 file to write: one dataset per video id, T x 9 x 512.",
                                        show_default=False)] = ...,
    loader: options.Loader = None,
    dataset_path: options.DatasetPath = None,
    pattern: options.Pattern = None,
    id_list: options.IdList = None,
    dataset: options.Dataset = None,
    annotations: options.Annotations = None,
    skip_missing: options.SkipMissing = None,
    workers: options.Workers = None,
    overwrite: options.Overwrite = None,
    dtype: Annotated[Optional[str], typer.Option(
        "--dtype", metavar="float16|float32", help="Stored feature type.  \\[default: float16]")] = None,
    compression: Annotated[Optional[str], typer.Option(
        "--compression", metavar="none|gzip|lzf",
        help="HDF5 compression (gzip saves ~8% on whitened features).  \\[default: none]")] = None,
    backbone_weights: options.BackboneWeights = None,
    pca: options.Pca = None,
    device: options.Device = None,
    precision: options.Precision = None,
    fps: options.Fps = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Frames per model batch, packed across videos.  \\[default: 128]")] = None,
    seed: options.Seed = None,
    compile_cnn: options.Compile = None,
    config: options.Config = None,
    print_config: options.PrintConfig = False,
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Extract region features of many videos into one HDF5 file; resumable, several GPUs with torchrun.

    Re-running the same command skips the videos already done. Examples:

    [bold]s2vs extract-features videos/ -o features.hdf5[/]

    [bold]s2vs extract-features --dataset FIVR-5K --dataset-path fivr/ --pattern '{id}.mp4' -o fivr5k.hdf5[/]
    """
    with reported_errors(interrupted=RESUME_HINT):
        from ..config import ExtractFeaturesConfig

        cfg = load_config(ExtractFeaturesConfig, config, print_config, loader=loader, dataset_path=dataset_path,
                          pattern=pattern, list=id_list, dataset=dataset, annotations=annotations,
                          skip_missing=skip_missing, workers=workers, overwrite=overwrite, dtype=dtype,
                          compression=compression, backbone_weights=backbone_weights, pca=pca, device=device,
                          precision=precision, fps=fps, batch_size=batch_size, seed=seed, compile=compile_cnn)
        check_output(output)
        from ..distributed import join_process_group
        from ..jobs.extract_features import ExtractionOptions, extract_features as run
        from ..storage.runs import Failure, failures_path
        from ..models.loading import load_extractor
        from ..runtime import resolve_device, resolve_precision
        from ..storage.store import StoreIdentity
        from ..models.weights import package_version

        group = join_process_group()
        quiet = quiet or json_output or not group.is_main
        with download_progress(quiet) as progress:
            items, missing = gather_inputs(inputs, cfg, progress)
            run_device = resolve_device(cfg.device)
            if group.distributed and run_device.type == "cuda" and run_device.index is None:
                run_device = resolve_device(f"cuda:{group.local_rank}")
            extractor = load_extractor(cfg.backbone_weights, cfg.pca, run_device, cfg.seed, progress)
        run_options = ExtractionOptions(
            fps=cfg.fps, loader=cfg.loader, precision=resolve_precision(cfg.precision, run_device),
            batch_size=cfg.batch_size, workers=default_workers() if cfg.workers is None else cfg.workers,
            dtype=cfg.dtype, compression=None if cfg.compression == "none" else cfg.compression,
            compiled=cfg.compile, overwrite=cfg.overwrite)
        identity = StoreIdentity(backbone=extractor.backbone_label, whitening=extractor.whitening_label,
                                 fps=cfg.fps, dims=extractor.dims, loader=cfg.loader)
        with video_progress(quiet, "extracting") as bar:
            summary = run(items, output, extractor, identity, package_version(), run_options, group,
                          missing=[Failure(*m) for m in missing],
                          progress=lambda c: bar.update(c.done, c.failed, c.frames, c.total), on_stage=bar.stage)
        group.close()
    if not group.is_main:
        raise typer.Exit(0)
    result = {
        "output": summary.output, "videos_in_output": summary.videos_in_output, "requested": summary.requested,
        "already_done": summary.already_done, "written": summary.written, "failed": len(summary.failures),
        "failures": [vars(f) for f in summary.failures], "frames": summary.frames,
        "seconds": round(summary.seconds, 3), "model_seconds": round(summary.model_seconds, 3),
        "failures_file": str(failures_path(output)) if summary.failures else None,
        "extractor": extractor.label, "random_weights": extractor.is_random,
        "device": str(run_device), "precision": run_options.precision, "ranks": group.world_size,
        "replaced": summary.replaced,
    }
    if json_output:
        print(json.dumps(result))
    else:
        _render(result, summary, quiet)
    raise typer.Exit(exit_status(summary.failures, group.is_main))


def _render(result: dict, summary, quiet: bool) -> None:
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("output", f"{escape(result['output'])}  ({result['videos_in_output']} videos)")
    table.add_row("this run", f"{result['written']} written, {result['already_done']} already done, "
                              f"{result['failed']} failed, of {result['requested']}")
    if summary.seconds > 0 and summary.frames:
        busy = 100 * summary.model_seconds / summary.seconds
        table.add_row("speed", f"{summary.frames / summary.seconds:.1f} frames/s "
                               f"(model busy {busy:.0f}% of {summary.seconds:.1f} s)"
                               + (f", rank 0 of {result['ranks']}" if result["ranks"] > 1 else ""))
    table.add_row("model", f"{escape(result['extractor'])}; {result['device']} {result['precision']}")
    stdout.print(table)
    if result["replaced"]:
        console.print(f"[yellow]note:[/] --overwrite replaced a file made differently ({escape(result['replaced'])})",
                      highlight=False, soft_wrap=True)
    if result["random_weights"] and not quiet:
        console.print("[yellow]note:[/] random weights: features for testing the pipeline, not for real use")
    if summary.warnings:
        first = next(iter(summary.warnings.items()))
        console.print(f"[yellow]note:[/] {len(summary.warnings)} video(s) decoded with warnings (stored in their "
                      f"'warnings' attribute), e.g. {escape(first[0])}: {escape(first[1][0])}",
                      highlight=False, soft_wrap=True)
    report_failures(summary.failures, result["failures_file"] or "")
