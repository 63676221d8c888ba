"""`s2vs extract-frames`: videos -> folders of JPEG frames, the training input."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from . import options
from ..config import ExtractFramesConfig
from ..distributed import place_from_env
from .bulk import RESUME_HINT, check_output, exit_status, nothing_to_do, report_failures
from .common import command_config, console, reported_errors, stdout, terminal_safe
from .progress import RichProgress, plural

EPILOG = ("Exit status: 0 when every video was written, 3 when some failed (listed in OUT.failed.tsv), "
          "2 for a usage error, 1 for any other error (a full disk stops the run, naming the path; "
          "run again to go on).")


@options.takes("dataset_path", "pattern", "id_list", "dataset", "annotations", "skip_missing", "workers", "overwrite",
               "config", "print_config", "json_output", "quiet")
def extract_frames(
    inputs: options.VideoInputs = None,
    output: Annotated[str, typer.Option("--output", "-o", metavar="OUT",
                                        help="Folder to write OUT/{id}/00000.jpg ... into.",
                                        show_default=False, rich_help_panel=options.OUTPUT)] = ...,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Frames per second of video.  \\[default: 1]",
                                                 rich_help_panel=options.INPUT)] = None,
    resize: Annotated[Optional[int], typer.Option(
        "--resize", help="Short side of the frames in pixels; 0 keeps the video's size.  \\[default: 256]",
        rich_help_panel=options.OUTPUT)] = None,
    quality: Annotated[Optional[int], typer.Option(
        "--quality", help="JPEG quality, 1-100.  \\[default: 95]", rich_help_panel=options.OUTPUT)] = None,
    image_format: Annotated[Optional[str], typer.Option(
        "--format", metavar="jpg|png", help="Image format; png is lossless and ~3x larger.  \\[default: jpg]",
        rich_help_panel=options.OUTPUT)] = None,
    **shared,
) -> None:
    """Write the frames of many videos as OUT/{id}/00000.jpg ..., the layout [bold]s2vs train[/] reads.

    Re-running the same command skips the videos already done; an interrupted video is redone.
    Example: [bold]s2vs extract-frames videos/ -o frames/ --fps 1[/]
    """
    with reported_errors(interrupted=RESUME_HINT):
        cfg = command_config(ExtractFramesConfig, locals() | shared)
        check_output(output, folder=True)
        from ..jobs.extract_frames import run_extract_frames  # late: numpy, PIL and PyAV, only once the command runs
        from ..runtime import Runtime  # late: torch, only once the command runs

        main = place_from_env().is_main  # under torchrun only rank 0 reports
        json_output = shared["json_output"]
        quiet = shared["quiet"] or json_output or not main
        with RichProgress(console, quiet) as progress:
            # No model: the runtime only places this process among torchrun's ranks.
            runtime = Runtime.start("cpu", "fp32", distributed=True, progress=progress)
            try:
                summary = run_extract_frames(cfg, inputs, output, runtime, progress)
            finally:
                runtime.close()
    if not main:
        raise typer.Exit(0)
    result = {"output": output, "requested": summary.requested, "already_done": summary.already_done,
              "written": summary.written, "frames": summary.frames, "failed": len(summary.failures),
              "failures": [vars(f) for f in summary.failures],
              "failures_file": str(summary.failures_file) if summary.failures else None}
    if json_output:
        print(json.dumps(result))
    else:
        stdout.print(f"{terminal_safe(output)}: {plural(summary.written, 'videos')} written ({summary.frames} frames), "
                     f"{summary.already_done} already done, {len(summary.failures)} failed, of {summary.requested}",
                     highlight=False, soft_wrap=True)
        if not quiet:
            nothing_to_do(summary, output)
        if summary.warnings:
            video_id, messages = next(iter(summary.warnings.items()))
            console.print(f"[yellow]note:[/] {plural(len(summary.warnings), 'videos')} decoded with warnings, e.g. "
                          f"{terminal_safe(video_id)}: {terminal_safe(messages[0])}", highlight=False, soft_wrap=True)
        report_failures(summary.failures, result["failures_file"] or "")
    raise typer.Exit(exit_status(summary.failures, main))
