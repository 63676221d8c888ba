"""`s2vs extract-frames`: videos -> folders of JPEG frames, the training input."""
from __future__ import annotations

import json
from typing import Annotated, Optional

import typer
from rich.markup import escape

from . import options
from ..jobs.parallel import default_workers
from .bulk import RESUME_HINT, check_output, exit_status, gather_inputs, report_failures, video_progress
from .common import console, load_config, reported_errors, stdout

EPILOG = ("Exit status: 0 when every video was written, 3 when some failed (listed in OUT.failed.tsv), "
          "2 for a usage error, 1 for any other error.")


def extract_frames(
    inputs: options.VideoInputs = None,
    output: Annotated[str, typer.Option("--output", "-o", metavar="OUT",
                                        help="Folder to write OUT/{id}/00000.jpg ... into.",
                                        show_default=False)] = ...,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Frames per second of video.  \\[default: 1]")] = None,
    resize: Annotated[Optional[int], typer.Option(
        "--resize", help="Short side of the frames in pixels; 0 keeps the video's size.  \\[default: 256]")] = None,
    quality: Annotated[Optional[int], typer.Option(
        "--quality", help="JPEG quality, 1-100.  \\[default: 95]")] = None,
    image_format: Annotated[Optional[str], typer.Option(
        "--format", metavar="jpg|png", help="Image format; png is lossless and ~3x larger.  \\[default: jpg]")] = None,
    dataset_path: options.DatasetPath = None,
    pattern: options.Pattern = None,
    id_list: options.IdList = None,
    dataset: options.Dataset = None,
    annotations: options.Annotations = None,
    skip_missing: options.SkipMissing = None,
    workers: options.Workers = None,
    overwrite: options.Overwrite = None,
    config: options.Config = None,
    print_config: options.PrintConfig = False,
    json_output: options.Json = False,
    quiet: options.Quiet = False,
) -> None:
    """Write the frames of many videos as OUT/{id}/00000.jpg ..., the layout [bold]s2vs train[/] reads.

    Re-running the same command skips the videos already done; an interrupted video is redone.
    Example: [bold]s2vs extract-frames videos/ -o frames/ --fps 1[/]
    """
    with reported_errors(interrupted=RESUME_HINT):
        from ..config import ExtractFramesConfig

        cfg = load_config(ExtractFramesConfig, config, print_config, fps=fps, resize=resize, quality=quality,
                          format=image_format, dataset_path=dataset_path, pattern=pattern, list=id_list,
                          dataset=dataset, annotations=annotations, skip_missing=skip_missing, workers=workers,
                          overwrite=overwrite)
        check_output(output)
        from ..distributed import join_process_group
        from ..storage.runs import Failure
        from ..jobs.extract_frames import FrameOptions, export_frames

        group = join_process_group()
        quiet = quiet or json_output or not group.is_main
        items, missing = gather_inputs(inputs, cfg)
        run_options = FrameOptions(fps=cfg.fps, resize=cfg.resize, quality=cfg.quality, image_format=cfg.format,
                                   workers=default_workers() if cfg.workers is None else cfg.workers,
                                   overwrite=cfg.overwrite)
        with video_progress(quiet, "writing frames") as bar:
            summary = export_frames(items, output, run_options, group, [Failure(*m) for m in missing],
                                    progress=lambda c: bar.update(c.done, c.failed, total=c.total))
        group.close()
    if not group.is_main:
        raise typer.Exit(0)
    result = {"output": output, "requested": summary.requested, "already_done": summary.already_done,
              "written": summary.written, "frames": summary.frames, "failed": len(summary.failures),
              "failures": [vars(f) for f in summary.failures],
              "failures_file": str(summary.failures_file) if summary.failures else None}
    if json_output:
        print(json.dumps(result))
    else:
        stdout.print(f"{escape(output)}: {summary.written} videos written ({summary.frames} frames), "
                     f"{summary.already_done} already done, {len(summary.failures)} failed, of {summary.requested}",
                     highlight=False, soft_wrap=True)
        if summary.warnings:
            video_id, messages = next(iter(summary.warnings.items()))
            console.print(f"[yellow]note:[/] {len(summary.warnings)} video(s) decoded with warnings, e.g. "
                          f"{escape(video_id)}: {escape(messages[0])}", highlight=False, soft_wrap=True)
        report_failures(summary.failures, result["failures_file"] or "")
    raise typer.Exit(exit_status(summary.failures, group.is_main))
