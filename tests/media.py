"""Build test videos from real clips with PyAV: edited copies and splices (never committed, made per test)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np


def read_frames(path: Path, rate: int, seconds: float | None = None, start: float = 0.0) -> list[np.ndarray]:
    """RGB frames of `path` resampled to `rate` frames per second (nearest earlier frame), from `start`."""
    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        next_time = start
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            if seconds is not None and next_time >= start + seconds:
                break
            while t >= next_time and (seconds is None or next_time < start + seconds):
                frames.append(frame.to_ndarray(format="rgb24"))
                next_time += 1.0 / rate
    return frames


def write_video(path: Path, frames: Iterable[np.ndarray], rate: int, crf: int = 23) -> Path:
    """Encode RGB frames as H.264 MP4 at `rate` fps (sizes rounded down to even)."""
    frames = iter(frames)
    first = next(frames)
    height, width = (first.shape[0] // 2) * 2, (first.shape[1] // 2) * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in _chain(first, frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:height, :width]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def center_crop(image: np.ndarray, keep: float) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = int(h * keep), int(w * keep)
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top:top + ch, left:left + cw]


def fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize (enough for making test clips)."""
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows][:, cols]


def write_moving_shape_folders(root: Path, videos: int, frames: int, height: int, width: int) -> Path:
    """`videos` frame folders of `frames` JPEGs each, as s2vs extract-frames writes them: a coloured block
    (its colour and column set by the video) moving down over that video's own noise."""
    from PIL import Image

    rng = np.random.default_rng(0)
    block_h, block_w, step = height // 3, width // 3, max(height // 32, 1)
    for v in range(videos):
        folder = root / f"video{v}"
        folder.mkdir()
        background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        left = width // 8 + v * max(width // 32, 1)
        for k in range(frames):
            image = background.copy()
            top = height // 16 + step * k
            image[top:top + block_h, left:left + block_w] = (255 - 40 * v, 40 * v, 128)
            Image.fromarray(image).save(folder / f"{k:05d}.jpg", quality=90)
    return root
