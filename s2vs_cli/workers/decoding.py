"""The work done in decoding processes: one input per call, streamed back in pieces.

Kept apart from the modules that drive the model: a worker process imports this module (to unpickle
its job), and importing it costs numpy and PyAV only, never torch (~0.5 GB and seconds per process).
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from ..media.source import open_source

FRAMES_PER_MESSAGE = 16  # frames a decoding worker sends in one message (~2.4 MB at 224x224)


def decode_job(task: tuple[str, str], fps: float, threads: int) -> Iterator[tuple]:
    """Worker side: stream one input's frames as ("frames", uint8 [n, 224, 224, 3], times [n]) messages,
    then ("info", dict). `task` is (path, source name); the source decides how the input is read."""
    path, loader = task
    source = open_source(loader, path, fps, threads=threads)
    frames: list[np.ndarray] = []
    times: list[float] = []
    for image, timestamp in source.frames():
        frames.append(image)
        times.append(timestamp)
        if len(frames) == FRAMES_PER_MESSAGE:
            yield ("frames", np.stack(frames), np.array(times))
            frames, times = [], []
    if frames:
        yield ("frames", np.stack(frames), np.array(times))
    yield ("info", {"lost_frames": source.lost_frames, "lost_seconds": source.lost_seconds,
                    "damaged": source.damaged, "warnings": source.warnings})


def frames_job(task: tuple[str, str, str], fps: float, resize: int, quality: int, image_format: str,
               overwrite: bool) -> list:
    """Worker side: write one video's frames (a one-item list, as run_tasks streams items).

    A disk error is the item, not the task's failure: it is the output's problem, and the parent stops.
    """
    path, out_dir, video_id = task
    from ..media.frames import FrameWriteError, write_video_frames  # late: PIL, never needed by decode_job's workers

    # An id 'set/name' (CC_WEB_VIDEO) is the folder OUT/set/name (made by write_video_frames).
    parent, _, name = video_id.rpartition("/")
    folder = os.path.join(out_dir, parent) if parent else out_dir
    try:
        return [write_video_frames(path, folder, name, fps=fps, resize=resize, quality=quality,
                                   image_format=image_format, threads=1, overwrite=overwrite)]
    except FrameWriteError as error:
        return [error]
