"""Thumbnails of videos at given times, for the review report: asked for while the document is built, decoded
afterwards in one pass per video.

Each video is opened once and read forward in time order; when the next wanted time is far ahead, the reader
seeks to the key frame before it instead of decoding everything between. The picture shown at a time is the
last frame that starts at or before it (what a player shows when seeked there). A video that cannot be read
leaves its thumbnails empty and gives a note; it never stops the report.
"""
from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
from PIL import Image

from ..errors import S2VSError
from ..media.sampling import MAX_FRAME_HOLD, FrameClock
from ..media.video import video_info
from ..progress import SILENT, Progress
from .images import PendingImage, ReportImage

THUMBNAIL_WIDTH = 160       # pixels; the height follows the picture's shape
JPEG_QUALITY = 80
SEEK_AHEAD_SECONDS = 4.0    # a wanted time further ahead than this is reached by seeking, not by decoding
TIME_STEP = 0.1             # requests for one video closer than this (after rounding) share one thumbnail
DECODE_WORKERS = min(4, os.cpu_count() or 1)  # videos decoded at once
_TOLERANCE = 1e-3           # seconds: a frame stamped a hair after the wanted time still counts as at it


class ThumbnailBatch:
    """Thumbnails requested by time, decoded together by `resolve`: one pass over each video, in time order."""

    def __init__(self, width: int = THUMBNAIL_WIDTH):
        self.width = width
        # video -> time rounded to TIME_STEP -> (the time first asked for, its image)
        self._wanted: dict[str, dict[int, tuple[float, PendingImage]]] = {}
        self._shown: dict[str, Path] = {}                        # video key -> the path as the caller gave it

    def request(self, video: Path | str, seconds: float) -> PendingImage:
        """The thumbnail of `video` at `seconds` (from its first frame): empty until `resolve` fills it."""
        key = os.path.normpath(os.path.abspath(video))
        self._shown.setdefault(key, Path(video))
        seconds = max(float(seconds), 0.0)
        wanted = self._wanted.setdefault(key, {})
        return wanted.setdefault(round(seconds / TIME_STEP), (seconds, PendingImage()))[1]

    def __len__(self) -> int:
        return sum(len(times) for times in self._wanted.values())

    def resolve(self, progress: Progress = SILENT) -> list[str]:
        """Decode every requested thumbnail, each video once; return a note for each video that failed."""
        notes: list[str] = []
        todo = {key: dict(wanted for wanted in times.values() if wanted[1].image is None)
                for key, times in self._wanted.items()}
        todo = {key: times for key, times in todo.items() if times}
        if not todo:
            return notes
        progress.stage("making thumbnails", total=sum(len(times) for times in todo.values()), unit="images")

        def decode(key: str) -> BaseException | None:
            times = todo[key]
            try:
                for at, image in _thumbnails(key, sorted(times), self.width):
                    times[at].image = image  # thumbnails made before an error are kept
            except (av.FFmpegError, OSError, S2VSError) as error:
                return error
            return None

        # Videos decode side by side: PyAV releases the GIL while decoding (1.3-1.9x faster on 2 busy cores,
        # benchmarks/bench_report.py). Results come back in order, so notes and progress stay deterministic.
        done = 0
        with ThreadPoolExecutor(DECODE_WORKERS) as pool:
            for key, error in zip(todo, pool.map(decode, todo)):
                if error is not None:
                    notes.append(f"{self._shown[key]}: no thumbnails ({_reason(error)})")
                done += len(todo[key])
                progress.update(done)
        return notes


def video_duration(path: Path | str) -> float | None:
    """Seconds the video lasts as its file states it, or None when it cannot be read or does not say."""
    try:
        return video_info(path)["duration"]
    except (av.FFmpegError, OSError, S2VSError):
        return None


def _thumbnails(path: str, times: list[float], width: int) -> Iterator[tuple[float, ReportImage]]:
    """(time, JPEG) for each of `times` (ascending) that the video reaches, reading it once."""
    if os.path.isdir(path):
        raise S2VSError("is a folder, not a video file")
    with av.open(path, metadata_errors="ignore") as container:
        if not container.streams.video:
            raise S2VSError("no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        reader = _FrameReader(container, stream)
        for at in times:
            frame = reader.frame_at(at)
            if frame is None:
                raise S2VSError("no frames could be decoded")
            yield at, _encode(frame, width)


class _FrameReader:
    """Reads one video stream forward, seeking ahead when that is quicker: `frame_at(t)` for rising t."""

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream):
        self.container, self.stream = container, stream
        # The frame period and the longest hold are sampling's, so thumbnails sit where the matches' frames were.
        self.period = float(FrameClock(stream).period)  # for frames without a timestamp
        self.origin: float | None = None  # presentation time of the first frame: time 0 of the matches
        self.closed_up = 0.0  # seconds taken out by jumps closed up, as sampling closes them
        self.seekable = True
        self.held: av.VideoFrame | None = None  # the last frame at or before the latest wanted time
        self.held_time = 0.0
        self.ahead: tuple[av.VideoFrame, float] | None = None  # the frame after it, read to know where it ends
        self.decoded = self._decode()

    def frame_at(self, seconds: float) -> av.VideoFrame | None:
        """The frame shown `seconds` after the first one (the last frame of a shorter video; None: none decoded)."""
        if self.origin is None and seconds > SEEK_AHEAD_SECONDS:
            self._read_first()  # time 0 is the first frame's own time: known only once it is decoded
        if self.origin is not None and self.seekable and seconds - self._position() > SEEK_AHEAD_SECONDS:
            self._seek(seconds)
        while True:
            if self.ahead is not None:
                (frame, time), self.ahead = self.ahead, None
            else:
                frame = next(self.decoded, None)
                if frame is None:
                    return self.held  # past the end: the last picture stays on screen
                time = self._time_of(frame)
            if time > seconds + _TOLERANCE and self.held is not None:
                self.ahead = (frame, time)
                return self.held
            self.held, self.held_time = frame, time  # (a first frame after the wanted time: the nearest there is)

    def _read_first(self) -> None:
        frame = next(self.decoded, None)
        if frame is not None:
            self.held, self.held_time = frame, self._time_of(frame)

    def _position(self) -> float:
        return self.ahead[1] if self.ahead is not None else self.held_time

    def _seek(self, seconds: float) -> None:
        base = self.stream.time_base
        try:
            self.container.seek(int((self.origin + seconds) / base), stream=self.stream, backward=True,
                                any_frame=False)
        except av.FFmpegError:
            self.seekable = False  # e.g. a raw stream: keep decoding forward from where the reader is
            return
        self.held, self.ahead = None, None
        self.decoded = self._decode()

    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            for packet in self.container.demux(self.stream):
                try:
                    yield from packet.decode()
                except av.FFmpegError:
                    continue  # one damaged packet loses its frame; the next key frame decodes again
        except av.FFmpegError:
            return  # damaged data ends the reading: the frames so far are what there is

    def _time_of(self, frame: av.VideoFrame) -> float:
        if frame.pts is None or frame.time_base is None:
            self.seekable = False  # no timestamps to seek by: frames simply follow each other
            time = self.held_time + self.period if self.held is not None else 0.0
            if self.origin is None:
                self.origin = 0.0
            return time
        own = float(frame.pts * frame.time_base)
        if self.origin is None:
            self.origin = own
        time = own - self.origin - self.closed_up
        if self.held is not None and abs(time - self.held_time) > MAX_FRAME_HOLD:
            # Damaged timestamps, closed up as sampling does; seeking by file time would now land elsewhere.
            self.closed_up += time - (self.held_time + self.period)
            time, self.seekable = self.held_time + self.period, False
        return time


def _encode(frame: av.VideoFrame, width: int) -> ReportImage:
    """The frame upright, `width` pixels wide, as JPEG."""
    quarter_turns = round(frame.rotation / 90) % 4
    turned = quarter_turns % 2 == 1
    upright_width, upright_height = (frame.height, frame.width) if turned else (frame.width, frame.height)
    height = max(2, round(width * upright_height / upright_width / 2) * 2)
    stored_size = (height, width) if turned else (width, height)
    image = frame.reformat(width=stored_size[0], height=stored_size[1], format="rgb24").to_ndarray()
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.rot90(image, quarter_turns))).save(buffer, format="JPEG",
                                                                               quality=JPEG_QUALITY)
    return ReportImage(buffer.getvalue(), "jpg")


def _reason(error: Exception) -> str:
    if isinstance(error, av.FFmpegError):
        return (error.strerror or str(error)).strip()
    if isinstance(error, OSError):
        return (error.strerror or str(error)).strip()
    return str(error)
