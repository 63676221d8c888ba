"""`s2vs extract-features`: videos or frame folders -> one HDF5 file of region features."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from . import options
from ..config import ExtractFeaturesConfig
from ..distributed import place_from_env
from .bulk import RESUME_HINT, check_output, exit_status, nothing_to_do, print_rows, report_failures
from .common import command_config, console, reported_errors, terminal_safe
from .progress import plural, running

EPILOG = ("Exit status: 0 when every video was extracted, 3 when some failed (listed in OUTPUT.failed.tsv), "
          "2 for a usage error, 1 for any other error.  "
          "Several GPUs or machines: [bold]torchrun --nproc_per_node N $(which s2vs) extract-features ...[/]")


@options.takes("loader", "dataset_path", "pattern", "id_list", "dataset", "annotations", "skip_missing", "workers",
               "overwrite", "strict", "dtype", "compression", "backbone", "backbone_weights", "pca", "device", "precision", "fps",
               "frames_per_batch", "seed", "compile_cnn", "config", "print_config", "json_output", "quiet")
def extract_features(
    inputs: options.Inputs = None,
    output: Annotated[str, typer.Option("--output", "-o", metavar="OUT.hdf5",
                                        help="HDF5 file to write: one dataset per video id, T x 9 x 512.",
                                        show_default=False, rich_help_panel=options.OUTPUT)] = ...,
    strict: Annotated[Optional[bool], typer.Option(
        "--strict", help="A damaged video (frames lost, or decoding ends well before the duration the file states) "
                         "fails instead of being written with what could be decoded.  \\[default: written, listed]",
        rich_help_panel=options.INPUT)] = None,
    dtype: Annotated[Optional[str], typer.Option(
        "--dtype", metavar="float16|float32", help="Stored feature type.  \\[default: float16]",
        rich_help_panel=options.OUTPUT)] = None,
    compression: Annotated[Optional[str], typer.Option(
        "--compression", metavar="none|gzip|lzf",
        help="HDF5 compression (gzip saves ~8% on whitened features).  \\[default: none]",
        rich_help_panel=options.OUTPUT)] = None,
    frames_per_batch: Annotated[Optional[int], typer.Option(
        "--frames-per-batch", help="Frames per model batch, packed across videos.  \\[default: 128]",
        rich_help_panel=options.RUNTIME)] = None,
    **shared,
) -> None:
    """Extract region features of many videos into one HDF5 file; resumable, several GPUs with torchrun.

    Re-running the same command skips the videos already done. Examples:

    [bold]s2vs extract-features videos/ -o features.hdf5[/]

    [bold]s2vs extract-features --dataset FIVR-5K --dataset-path fivr/ --pattern '{id}.mp4' -o fivr5k.hdf5[/]
    """
    with reported_errors(interrupted=RESUME_HINT):
        cfg = command_config(ExtractFeaturesConfig, locals() | shared)
        check_output(output)
        from ..jobs.extract_features import run_extract_features  # late: torch, only once the command runs

        main = place_from_env().is_main  # under torchrun only rank 0 reports
        json_output = shared["json_output"]
        with running(cfg, shared["quiet"] or json_output or not main, distributed=True) as (runtime, progress):
            summary = run_extract_features(cfg, inputs, output, runtime, progress)
    if not main:
        raise typer.Exit(0)
    result = {
        "output": summary.output, "videos_in_output": summary.videos_in_output, "requested": summary.requested,
        "already_done": summary.already_done, "written": summary.written, "failed": len(summary.failures),
        "failures": [vars(f) for f in summary.failures], "frames": summary.frames,
        "seconds": round(summary.seconds, 3), "model_seconds": round(summary.model_seconds, 3),
        "failures_file": summary.failures_file,
        "extractor": runtime.extractor.label, "random_weights": runtime.extractor.is_random,
        "device": str(runtime.device), "precision": runtime.precision, "ranks": runtime.group.world_size,
        "replaced": summary.replaced,
        "damaged_sources": [{"id": video_id} | lost for video_id, lost in summary.damaged.items()],
    }
    if json_output:
        print(json.dumps(result))
    else:
        _render(result, summary, shared["quiet"])
    raise typer.Exit(exit_status(summary.failures, main))


def _render(result: dict, summary, quiet: bool) -> None:
    rows = [("output", f"{terminal_safe(result['output'])}  ({plural(result['videos_in_output'], 'videos')})"),
            ("this run", f"{result['written']} written, {result['already_done']} already done, "
                         f"{result['failed']} failed, of {result['requested']}")]
    if summary.seconds > 0 and summary.frames:
        busy = 100 * summary.model_seconds / summary.seconds
        rows.append(("speed", f"{summary.frames / summary.seconds:.1f} frames/s "
                              f"(model busy {busy:.0f}% of {summary.seconds:.1f} s)"
                              + (f", rank 0 of {result['ranks']}" if result["ranks"] > 1 else "")))
    rows.append(("model", f"{terminal_safe(result['extractor'])}; {result['device']} {result['precision']}"))
    print_rows(rows)
    if not quiet:
        nothing_to_do(summary, result["output"])
    if result["replaced"]:
        console.print(f"[yellow]note:[/] --overwrite replaced a file made differently "
                      f"({terminal_safe(result['replaced'])})", highlight=False, soft_wrap=True)
    if result["random_weights"] and not quiet:
        console.print("[yellow]note:[/] random weights: features for testing the pipeline, not for real use",
                      highlight=False, soft_wrap=True)
    _render_damaged(summary.damaged)
    others = {video_id: said for video_id, said in summary.warnings.items() if video_id not in summary.damaged}
    if others:
        first = next(iter(others.items()))
        console.print(f"[yellow]note:[/] {plural(len(others), 'videos')} decoded with warnings (stored in "
                      f"their 'warnings' attribute), e.g. {terminal_safe(first[0])}: {terminal_safe(first[1][0])}",
                      highlight=False, soft_wrap=True)
    report_failures(summary.failures, result["failures_file"] or "")


DAMAGED_SHOWN = 10  # damaged videos named one a line; the rest are counted


def _render_damaged(damaged: dict[str, dict]) -> None:
    """Each damaged video written, with what it lost: its features cover only what could be decoded."""
    if not damaged:
        return
    console.print(f"[yellow]warning:[/] {plural(len(damaged), 'damaged videos')} written with only what could be "
                  "decoded (--strict fails them):", highlight=False, soft_wrap=True)
    for video_id, lost in list(damaged.items())[:DAMAGED_SHOWN]:
        console.print(f"  {terminal_safe(video_id)}: {terminal_safe(lost['warning'])}", highlight=False, soft_wrap=True)
    if len(damaged) > DAMAGED_SHOWN:
        console.print(f"  and {len(damaged) - DAMAGED_SHOWN} more (their 'warnings' attribute says what each lost)",
                      highlight=False, soft_wrap=True)
