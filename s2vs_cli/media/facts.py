"""What a source video is: duration, picture size, frame rate, bit rate and file size, read from headers only.

`video_facts` never decodes a frame: a video file's facts come from its container and stream headers
(video.video_header: what FFmpeg's probe of the file says), a frame folder's from a listing of its images
and the header of the first. It never raises for a source that is gone or unreadable either, because dedup
and `s2vs info` list the facts of stores whose sources may have moved since: such a source gives a
`VideoFacts` whose `error` says why, and whose unknown fields are None.

`stored_video_facts` asks it of the source a feature store recorded for a video (each video's `source`
attribute: the path extract-features read, as it was given, so a relative path is read from the current
folder), and falls back on the stored frames for the duration when the source cannot be read.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from PIL import Image

from ..errors import VideoDecodeError
from ..storage.store import FeatureStore
from .frames import list_frame_files
from .video import video_header


@dataclass(frozen=True)
class VideoFacts:
    """One source video's facts; None where unknown. `error` says why the source could not be read (None: read)."""

    source: str | None         # the path read, as given (None: the store recorded none)
    duration: float | None = None  # seconds the headers state (frame folders: frames / fps)
    width: int | None = None   # pixels, as stored (a rotated phone video is not turned)
    height: int | None = None
    fps: float | None = None   # frames per second (frame folders: the rate they were written at, when told)
    bitrate: int | None = None  # bits per second: the container's, else 8 x size / duration
    size: int | None = None    # bytes on disk (frame folders: every image together)
    error: str | None = None   # "file not found", "not a video file: ...", ...

    def as_dict(self) -> dict:
        """JSON-ready: duration, width, height, fps, bitrate, size, source, error."""
        return asdict(self)

    @property
    def pixels(self) -> int:
        """width x height (0 when unknown): what "highest resolution" compares."""
        return (self.width or 0) * (self.height or 0)


def video_facts(path: str | os.PathLike, fps: float | None = None) -> VideoFacts:
    """The facts of a video file or frame folder at `path`, from headers only; a VideoFacts with `error` set,
    never an exception, when it is missing or unreadable. `fps`: the rate a frame folder was written at."""
    source = str(path)
    try:
        if os.path.isdir(path):
            return _folder_facts(Path(path), fps)
        header = video_header(path)
        size = os.path.getsize(path)
    except VideoDecodeError as e:
        return VideoFacts(source, error=e.reason)
    except OSError as e:  # gone or unreadable between the checks and the read
        return VideoFacts(source, error=e.strerror or str(e))
    duration = header["duration"]
    return VideoFacts(source, duration, header["width"], header["height"], header["fps"],
                      header["bit_rate"] or _bitrate(size, duration), size)


def stored_video_facts(store: FeatureStore, video_id: str) -> VideoFacts:
    """The facts of the source `store` recorded for `video_id`; when it cannot be read (or none was recorded),
    the duration the stored frames cover, with `error` saying why the rest is unknown. FeatureStoreError only
    for a video the store does not hold or cannot read."""
    source = store.source(video_id)
    fps = store.identity.fps if store.identity is not None and store.identity.loader == "frames" else None
    facts = video_facts(source, fps) if source is not None else VideoFacts(None, error="the store records no source")
    if facts.error is None:
        return facts
    times, rate = store.times(video_id)
    stored = float(times[-1]) + 1.0 / rate if len(times) else 0.0  # the last frame is shown for one period
    return replace(facts, duration=stored)


def _folder_facts(folder: Path, fps: float | None) -> VideoFacts:
    """A frame folder: its images' count (the duration, given the rate they were written at), first image's size
    and total bytes."""
    files = list_frame_files(folder)  # VideoDecodeError when it holds no frames
    size = sum(file.stat().st_size for file in files)
    try:
        with Image.open(files[0]) as image:  # reads the header; the pixels are not decoded
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as e:  # what PIL says of a file that is no image
        raise VideoDecodeError(folder, f"{files[0].name}: unreadable image: {e}") from None
    duration = len(files) / fps if fps else None
    return VideoFacts(str(folder), duration, width, height, fps, _bitrate(size, duration), size)


def _bitrate(size: int, duration: float | None) -> int | None:
    """Bits per second of `size` bytes over `duration` seconds (None when the duration is unknown or 0)."""
    return round(8 * size / duration) if duration else None
