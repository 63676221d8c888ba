"""The work done in decoding processes: one input per call, streamed back in pieces.

Kept apart from the modules that drive the model: a worker process imports this module (to unpickle
its job), and importing it costs numpy and PyAV only, never torch (~0.5 GB and seconds per process).
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

CHUNK_FRAMES = 16  # frames per message from a decoding worker (~2.4 MB at 224x224)


def decode_job(task: tuple[str, str], fps: float, threads: int) -> Iterator[tuple]:
    """Worker side: stream one video's frames as ("frames", uint8 [n, 224, 224, 3], times [n]) chunks,
    then ("info", dict). Runs in a decoding process; imports nothing heavy."""
    path, loader = task
    frames: list[np.ndarray] = []
    times: list[float] = []
    info: dict = {"lost_frames": 0, "warnings": []}
    if loader == "frames":
        from ..media.frames import read_frame_folder

        source = ((image, index / fps) for index, image in enumerate(_naming_frames(read_frame_folder(path), path)))
    else:
        from ..media.video import DecodeReport, sample_frames

        report = DecodeReport()
        source = ((f.image, f.timestamp) for f in sample_frames(path, fps, threads=threads, report=report))
    for image, timestamp in source:
        frames.append(image)
        times.append(timestamp)
        if len(frames) == CHUNK_FRAMES:
            yield ("frames", np.stack(frames), np.array(times))
            frames, times = [], []
    if frames:
        yield ("frames", np.stack(frames), np.array(times))
    if loader != "frames":
        info = {"lost_frames": report.lost_frames, "warnings": report.warnings}
    yield ("info", info)


def frames_job(task: tuple[str, str, str], fps: float, resize: int, quality: int, image_format: str,
               overwrite: bool) -> list:
    """Worker side: write one video's frames (a one-item list, as run_tasks streams items)."""
    path, out_dir, video_id = task
    from ..media.frames import write_video_frames

    # An id 'set/name' (CC_WEB_VIDEO) is the folder OUT/set/name.
    parent, _, name = video_id.rpartition("/")
    folder = os.path.join(out_dir, parent) if parent else out_dir
    os.makedirs(folder, exist_ok=True)
    return [write_video_frames(path, folder, name, fps=fps, resize=resize, quality=quality,
                               image_format=image_format, threads=1, overwrite=overwrite)]


def _naming_frames(frames: Iterator[np.ndarray], folder: str) -> Iterator[np.ndarray]:
    """Frames of a folder; a bad frame file's error names the file, as the failure is the folder's."""
    from ..errors import VideoDecodeError

    try:
        yield from frames
    except VideoDecodeError as error:
        if error.path != folder:
            raise VideoDecodeError(folder, f"{os.path.basename(error.path)}: {error.reason}") from None
        raise
