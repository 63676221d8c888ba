"""Bulk frame extraction: many videos -> ``OUT/{id}/00000.jpg …`` (the training input, docs/METHOD.md §5).

Each video is decoded and written by a worker process (see frames.write_video_frames, which makes a
folder appear only when complete); a video whose folder exists is done and skipped, so an interrupted
run resumes where it stopped. A video that cannot be decoded is listed in OUT.failed.tsv and the run goes
on; a disk error (a full disk) stops the run, naming the path. Under torchrun every rank takes every
world_size-th video.
"""
from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import remove_stale_temporaries, write_text_atomically
from ..datasets.video_inputs import select_inputs
from ..distributed import ProcessGroup
from ..errors import ConfigError
from ..json_file import parse_json
from ..media.frames import FramesWritten, FrameWriteError, frames_complete, remove_partials
from ..media.source import VideoInput
from ..progress import SILENT, Progress
from ..storage.bookkeeping import Failure, RunCounts, exclusive_lock, failures_path, write_failures
from ..workers.pool import default_workers, run_tasks
from ..workers.decoding import frames_job

if TYPE_CHECKING:
    from ..config import ExtractFramesConfig
    from ..runtime import Runtime


LOCK_NAME = ".s2vs-lock"            # in the output folder: held while a run writes into it
SETTINGS_NAME = ".s2vs-frames.json"  # how the frames in the folder were written


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


def run_extract_frames(cfg: ExtractFramesConfig, paths: Sequence[str] | None, out_dir: str | Path,
                       runtime: Runtime, progress: Progress = SILENT) -> FramesSummary:
    """`s2vs extract-frames` as one call: find the videos `cfg` names and write their frames (resuming).

    The runtime places this process among torchrun's ranks; no model is loaded.
    """
    items, missing = select_inputs(paths, cfg, progress)
    options = FrameOptions(fps=cfg.fps, resize=cfg.resize, quality=cfg.quality, image_format=cfg.format,
                           workers=default_workers() if cfg.workers is None else cfg.workers, overwrite=cfg.overwrite)
    return export_frames(items, out_dir, options, runtime.group, missing, progress)


def export_frames(items: Sequence[VideoInput], out_dir: str | Path, options: FrameOptions,
                  group: ProcessGroup | None = None, missing: Sequence[Failure] = (),
                  progress: Progress = SILENT) -> FramesSummary:
    """Write the frames of every item under `out_dir`, skipping videos already done (unless overwrite)."""
    group = group or ProcessGroup()
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder; give the folder to write frames into")
    with contextlib.ExitStack() as cleanup:
        if group.is_main:
            cleanup.enter_context(exclusive_lock(out_dir / LOCK_NAME, str(out_dir)))
            remove_stale_temporaries(out_dir)
            remove_stale_temporaries(failures_path(out_dir).parent)
            _check_settings(out_dir, options)
            _remove_leftovers(out_dir, items)
        group.barrier()
        try:
            return _export(items, out_dir, options, group, missing, progress)
        except FrameWriteError:
            with contextlib.suppress(FrameWriteError):  # the workers are gone: free what they held
                _remove_leftovers(out_dir, items)
            raise


def _remove_leftovers(out_dir: Path, items: Sequence[VideoInput]) -> None:
    """Working folders of killed runs, in OUT and in the subfolders of ids 'set/name'."""
    for folder in {out_dir} | {out_dir / i.video_id.rpartition("/")[0] for i in items if "/" in i.video_id}:
        remove_partials(folder)


def _done(out_dir: Path, video_id: str) -> bool:
    parent, _, name = video_id.rpartition("/")
    return frames_complete(out_dir / parent, name)


def _settings(options: FrameOptions) -> dict:
    return {"fps": options.fps, "resize": options.resize, "quality": options.quality, "format": options.image_format}


def _check_settings(out_dir: Path, options: FrameOptions) -> None:
    """Frames of one folder are written one way: refuse to add frames made otherwise, record ours."""
    record = out_dir / SETTINGS_NAME
    wanted = _settings(options)
    if record.exists() and not options.overwrite:
        try:
            found = parse_json(record.read_bytes())
        except (OSError, ValueError):  # unreadable (nested too deeply included): as if there were none
            found = None
        if isinstance(found, dict) and found != wanted:
            differences = "; ".join(f"{key} {found.get(key)!r} (this run: {value!r})"
                                    for key, value in wanted.items() if found.get(key) != value)
            raise ConfigError(f"{out_dir} holds frames written differently: {differences}; use the same "
                              "settings, another folder, or --overwrite to rewrite the videos named")
    write_text_atomically(record, json.dumps(wanted) + "\n")


def _export(items: Sequence[VideoInput], out_dir: Path, options: FrameOptions, group: ProcessGroup,
            missing: Sequence[Failure], progress: Progress) -> FramesSummary:
    shard = list(items)[group.rank::group.world_size]
    todo = [i for i in shard if options.overwrite or not _done(out_dir, i.video_id)]
    counts = RunCounts(total=len(todo))
    failures: list[Failure] = []
    warnings: dict[str, list[str]] = {}
    tasks = [(key, (str(item.path), str(out_dir), item.video_id)) for key, item in enumerate(todo)]
    if todo:  # a re-run with nothing to do shows no empty bar
        progress.stage("writing frames", len(todo), unit="videos")
    job = functools.partial(frames_job, fps=options.fps, resize=options.resize, quality=options.quality,
                            image_format=options.image_format, overwrite=options.overwrite)
    messages = run_tasks(job, tasks, options.workers)
    for message in messages:
        item = todo[message.key]
        if message.kind == "item":
            if isinstance(message.payload, FrameWriteError):  # the disk, not the video: stop the run
                messages.close()  # the workers stop before the error is reported
                raise message.payload
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
        progress.update(counts.done, failed=counts.failed)
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
