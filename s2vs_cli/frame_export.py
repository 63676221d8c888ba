"""Bulk frame extraction: many videos -> ``OUT/{id}/00000.jpg …`` (the training input, SPEC §5).

Each video is decoded and written by a worker process (see frames.write_video_frames, which makes a
folder appear only when complete); a video whose folder exists is done and skipped, so an interrupted
run resumes where it stopped. Under torchrun every rank takes every world_size-th video.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .distributed import ProcessGroup
from .frames import FramesWritten, frames_complete, remove_partials
from .inputs import VideoInput
from .parallel import run_tasks
from .runs import Failure, RunProgress, failures_path, write_failures
from .worker_jobs import frames_job


@dataclass
class FrameOptions:
    """How frames are written."""

    fps: float = 1.0          # frames per second of video
    resize: int = 256         # short side in pixels; 0 keeps the video's size
    quality: int = 95         # JPEG quality
    image_format: str = "jpg"  # jpg or png
    workers: int = 2          # decoding processes; 0 decodes in this process
    overwrite: bool = False   # rewrite folders that already exist


@dataclass
class FramesSummary:
    """What a run did (all ranks' failures on rank 0)."""

    requested: int
    already_done: int
    written: int
    frames: int
    failures: list[Failure] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    failures_file: Path | None = None


def export_frames(items: Sequence[VideoInput], out_dir: str | Path, options: FrameOptions,
                  group: ProcessGroup | None = None, missing: Sequence[Failure] = (),
                  progress: Callable[[RunProgress], None] | None = None) -> FramesSummary:
    """Write the frames of every item under `out_dir`, skipping videos already done (unless overwrite)."""
    group = group or ProcessGroup()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if group.is_main:
        remove_partials(out_dir)
    group.barrier()
    shard = list(items)[group.rank::group.world_size]
    todo = [i for i in shard if options.overwrite or not frames_complete(out_dir, i.video_id)]
    counts = RunProgress(total=len(todo))
    failures: list[Failure] = []
    warnings: dict[str, list[str]] = {}
    tasks = [(key, (str(item.path), str(out_dir), item.video_id)) for key, item in enumerate(todo)]
    job = functools.partial(frames_job, fps=options.fps, resize=options.resize, quality=options.quality,
                            image_format=options.image_format, overwrite=options.overwrite)
    for message in run_tasks(job, tasks, options.workers):
        item = todo[message.key]
        if message.kind == "item":
            written: FramesWritten = message.payload
            counts.frames += written.frames
            if written.warnings:
                warnings[item.video_id] = written.warnings
            continue
        if message.kind == "done":
            counts.done += 1
        else:
            counts.failed += 1
            failures.append(Failure(item.video_id, str(item.path), message.payload))
        counts.last = item.video_id
        if progress is not None:
            progress(counts)
    group.barrier()
    all_failures = [f for rank in group.gather(failures) for f in rank] + list(missing)
    summary = FramesSummary(requested=len(items) + len(missing),
                            already_done=len(items) - sum(group.gather(len(todo))),
                            written=sum(group.gather(counts.done)), frames=sum(group.gather(counts.frames)),
                            failures=all_failures, warnings=warnings)
    if group.is_main:
        summary.failures_file = failures_path(out_dir)
        write_failures(summary.failures_file, all_failures)
    group.barrier()
    return summary
