"""Decode a video into RGB frames sampled at a fixed rate, the way the original S2VS did.

S2VS ran ``ffmpeg -i VIDEO -vf fps=1,scale=W:H,crop=224:224:X:Y`` and read raw RGB frames.
This module does the same in-process with PyAV: it picks frames as ffmpeg's fps filter does,
on presentation times (`sampling`), resizes them with libswscale's bicubic scaler (ffmpeg's
default) and crops the centre. Only the frames that are kept are converted to RGB and resized.

Two deliberate differences: a rotated (phone) video is measured upright, where S2VS scaled
ffmpeg's upright frames to the stored, unrotated size and so distorted them; and a clip
shorter than half a sampling period still gives its one frame, where ffmpeg gives none. And a
step of over an hour between timestamps is closed up (`sampling`), where ffmpeg fills it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from ..errors import VideoDecodeError
from ..models.short_videos import COMPARATOR_MIN_FRAMES, repeat_factor
from .damage import DecoderLog, judge_end, listen, stated_end
from .sampling import FrameClock, SampledFrame, TickSampler
from .source import FrameSource, InputSet, VideoInput, visible_entries

VideoPath = str | os.PathLike
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .avi .mov .qt .flv .f4v .wmv .asf .mpg .mpeg .m2v .ts .mts .m2ts .vob .3gp .3g2 "
    ".ogv .ogg .dv .mxf .gif .y4m .h264 .264 .hevc .h265".split()
)


@dataclass
class DecodedVideo:
    """Frames sampled from one video, when each was shown, and what went wrong."""

    path: str
    frames: np.ndarray  # uint8 [T, crop, crop, 3] RGB; [T, H, W, 3] when crop is 0
    timestamps: np.ndarray  # float64 [T]: tick k / fps, the time ffmpeg's fps filter stamps on frame k
    frame_times: np.ndarray  # float64 [T]: presentation time of the source frame picked for each tick
    fps: float  # the sampling rate asked for
    duration: float  # seconds covered: latest frame's time plus the duration of the stream's last packet
    lost_frames: int = 0  # packets that failed to decode
    lost_seconds: float = 0.0  # of the duration the file states, what could not be decoded (0: none, or unknown)
    repeated: int = 1  # times the sampled sequence was concatenated to reach min_frames
    warnings: list[str] = field(default_factory=list)


@dataclass
class DecodeSummary:
    """What `sample_frames` learnt while decoding; complete once the iterator is exhausted."""

    duration: float = 0.0
    lost_frames: int = 0
    lost_seconds: float = 0.0  # the file ends this much before the duration it states (0: no, or not known)
    damaged: bool = False  # frames or seconds were lost, or FFmpeg reported errors reading the file
    warnings: list[str] = field(default_factory=list)


def sample_frames(
    path: VideoPath,
    fps: float = 1.0,
    short_side: int = 256,
    crop: int = 224,
    threads: int = 0,
    summary: DecodeSummary | None = None,
) -> Iterator[SampledFrame]:
    """Yield frames of `path` sampled at `fps`, one at a time, so long videos need little memory.

    Raises VideoDecodeError before the first frame when the file cannot be read at all. FFmpeg's error
    messages never reach the terminal: they are in the summary's warnings.
    """
    _check_arguments(fps, short_side, crop, 0, threads)
    summary = summary if summary is not None else DecodeSummary()
    log = DecoderLog()
    listen()
    log.discard_unclaimed()
    stopped = False
    with _open_video(path, log) as (container, stream):
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        clock = FrameClock(stream)
        stated, first_time = stated_end(container, stream), None
        sampler = None
        packets = container.demux(stream)
        try:
            while True:
                with log.listening():  # around each call into FFmpeg only: frames are yielded outside it
                    packet = next(packets, None)
                    decoded = _decode(packet, clock, summary) if packet is not None else []
                if packet is None:
                    break
                for frame in decoded:
                    if sampler is None:
                        shape = _FrameShape.plan(frame, short_side, crop, path)
                        sampler = TickSampler(fps, shape.convert)
                        first_time = _file_time(frame)
                    yield from sampler.push(frame, clock.time_of(frame))
        except av.FFmpegError as error:
            stopped = True
            summary.warnings.append(f"reading stopped early at damaged data: {_short_message(error)}")
    log.claim_unclaimed()

    if sampler is None:
        said = f" (FFmpeg: {log.summary()})" if log.messages else ""
        raise VideoDecodeError(path, f"no frames could be decoded{said}")
    end = clock.finish()
    yield from sampler.finish(end)
    summary.duration = float(end)
    if summary.lost_frames:
        lost = summary.lost_frames
        summary.warnings.append(
            f"{lost} frame{'s' if lost > 1 else ''} could not be decoded and {'were' if lost > 1 else 'was'} skipped"
        )
    # Closed-up timestamp jumps shorten the decoded span: it no longer measures what was lost.
    decoded_end = None if stated is None or clock.jumps else first_time + float(end)
    summary.lost_seconds, loss = judge_end(log, stated, decoded_end, fps)
    summary.warnings += [loss] if loss else []
    summary.damaged = bool(stopped or summary.lost_frames or summary.lost_seconds or log.messages)
    if clock.jumps:
        summary.warnings.append(f"timestamps jumped by over an hour {clock.jumps} time(s); closed up"
                               " (a picture is held at most an hour)")


def decode_video(
    path: VideoPath,
    fps: float = 1.0,
    short_side: int = 256,
    crop: int = 224,
    min_frames: int = COMPARATOR_MIN_FRAMES,
    threads: int = 0,
) -> DecodedVideo:
    """Decode `path` into RGB frames sampled at `fps`, resized and centre-cropped as S2VS does."""
    _check_arguments(fps, short_side, crop, min_frames, threads)
    summary = DecodeSummary()
    sampled = list(sample_frames(path, fps, short_side, crop, threads, summary))
    frames = np.stack([f.image for f in sampled])
    timestamps = np.array([f.timestamp for f in sampled], dtype=np.float64)
    frame_times = np.array([f.frame_time for f in sampled], dtype=np.float64)
    repeated = repeat_factor(len(frames), min_frames)
    if repeated > 1:
        summary.warnings.append(
            f"only {len(frames)} frame(s) at {fps:g} fps; sequence repeated {repeated}x to reach {min_frames}"
        )
        frames = np.tile(frames, (repeated, 1, 1, 1))
        timestamps = np.tile(timestamps, repeated)
        frame_times = np.tile(frame_times, repeated)
    return DecodedVideo(
        path=str(path),
        frames=frames,
        timestamps=timestamps,
        frame_times=frame_times,
        fps=fps,
        duration=summary.duration,
        lost_frames=summary.lost_frames,
        lost_seconds=summary.lost_seconds,
        repeated=repeated,
        warnings=summary.warnings,
    )


class VideoFileSource(FrameSource):
    """Video files decoded with PyAV (`sample_frames`): the default source, `--loader video`."""

    name, noun, default_pattern = "video", "video", "{id}/video.*"

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        summary = DecodeSummary()
        for frame in sample_frames(self.path, self.fps, self.short_side, self.crop, self.threads, summary):
            yield frame.image, frame.timestamp
        self.duration, self.lost_frames, self.warnings = summary.duration, summary.lost_frames, summary.warnings
        self.lost_seconds, self.damaged = summary.lost_seconds, summary.damaged

    @classmethod
    def find(cls, path: Path) -> InputSet:
        found = InputSet(inputs=[])
        if not path.is_dir():
            found.inputs.append(VideoInput(path.stem, path))  # named explicitly: tried whatever its suffix
            return found
        for entry in visible_entries(path):
            if entry.is_file() and _is_video_file(entry):
                found.inputs.append(VideoInput(entry.stem, entry))
            elif entry.is_symlink() and not entry.exists() and _is_video_file(entry):
                found.missing.append((entry.stem, str(entry), "broken symbolic link"))
            else:
                found.ignored.append(entry)
        return found

    @classmethod
    def readable(cls, matches: list[Path]) -> list[Path]:
        files = [m for m in matches if m.is_file()]
        videos = [m for m in files if _is_video_file(m)]
        return videos if len(files) > 1 and videos else files


def _is_video_file(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def video_info(path: VideoPath) -> dict:
    """Return width and height (as stored), rotation, duration, fps, codec, frame count and bit rate."""
    log = DecoderLog()  # what FFmpeg says here is not this function's to report, and must not reach the terminal
    listen()
    with _open_video(path, log) as (container, stream), log.listening():
        # Rotation is side data on decoded frames, so one frame has to be decoded.
        first = _first_frame(container, stream, path)
        return stream_header(container, stream) | {"rotation": first.rotation}


def video_header(path: VideoPath) -> dict:
    """`video_info` less the rotation, from the file's headers alone: no frame is decoded (VideoDecodeError
    when the file cannot be opened as a video)."""
    log = DecoderLog()
    listen()
    with _open_video(path, log) as (container, stream), log.listening():
        return stream_header(container, stream)


def stream_header(container: InputContainer, stream: VideoStream) -> dict:
    """What the headers of an opened video say: width, height (as stored), duration, fps, codec, frame count
    and the container's bit rate (bits/s); None where they do not say."""
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        duration = None
    return {
        "width": stream.codec_context.width,
        "height": stream.codec_context.height,
        "duration": duration,
        "fps": float(rate) if rate else None,
        "codec": stream.codec_context.name,
        "frames": stream.frames or None,
        "bit_rate": container.bit_rate or None,
    }


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Size S2VS scales a width x height picture to: short side `short_side`, both sides even."""
    # Same float arithmetic as S2VS (ratio first, then ceil of half), so sizes match exactly.
    ratio = short_side / min(width, height)
    return math.ceil(width * ratio / 2) * 2, math.ceil(height * ratio / 2) * 2


def _check_arguments(fps: float, short_side: int, crop: int, min_frames: int, threads: int):
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if short_side < 0 or crop < 0 or min_frames < 0 or threads < 0:
        raise ValueError("short_side, crop, min_frames and threads must not be negative")
    if short_side and crop > short_side:
        raise ValueError(f"crop ({crop}) must not be larger than short_side ({short_side})")


def _decode(packet: av.Packet, clock: FrameClock, summary: DecodeSummary) -> list[av.VideoFrame]:
    """The frames one packet gives; none when it fails to decode (counted lost)."""
    clock.note_packet(packet)
    try:
        return packet.decode()
    except av.FFmpegError:
        # One damaged packet loses its frame; the next key frame decodes again.
        summary.lost_frames += 1
        return []


def _file_time(frame: av.VideoFrame) -> float:
    """A frame's presentation time on the file's own clock, in seconds (0 when it has none)."""
    return float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base is not None else 0.0


@contextmanager
def _open_video(path: VideoPath, log: DecoderLog) -> Iterator[tuple[InputContainer, VideoStream]]:
    """Open `path` (FFmpeg's messages going to `log`) and yield it with its first video stream, or raise
    VideoDecodeError."""
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a directory, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")
    try:
        with log.listening():
            container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise VideoDecodeError(path, _open_failure(path, error)) from error
    with container:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise VideoDecodeError(path, "no decoder for its video codec")
        yield container, stream


def _open_failure(path: VideoPath, error: av.FFmpegError) -> str:
    """Say why av.open failed, naming the usual cause when the file looks like an MP4."""
    if isinstance(error, PermissionError):
        return "permission denied"
    with open(path, "rb") as file:
        header = file.read(8)
    if header[4:8] == b"ftyp":
        # An MP4 whose index (moov box, written last) is missing: usually a cut-off download.
        return f"truncated or damaged MP4: {_short_message(error)}"
    return f"not a video file: {_short_message(error)}"


def _short_message(error: av.FFmpegError) -> str:
    """FFmpeg's own wording of an error, without the errno and file name PyAV adds."""
    return (error.strerror or str(error)).strip()


def _first_frame(container: InputContainer, stream: VideoStream, path: VideoPath) -> av.VideoFrame:
    """The first frame that decodes, skipping damaged packets, or raise VideoDecodeError."""
    try:
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                continue
            if decoded:
                return decoded[0]
    except av.FFmpegError:
        pass
    raise VideoDecodeError(path, "no frames could be decoded")


@dataclass(frozen=True)
class _FrameShape:
    """How a decoded frame becomes an output image: scale, turn upright, crop the centre."""

    scale_width: int  # every frame is scaled to this size (before turning), as ffmpeg's scale=W:H
    scale_height: int
    quarter_turns: int  # counter-clockwise quarter turns that make the picture upright
    crop: int  # side of the centre square kept; 0 keeps the whole picture

    @classmethod
    def plan(
        cls, frame: av.VideoFrame, short_side: int, crop: int, path: VideoPath
    ) -> _FrameShape:
        """Plan from the first frame; every later frame is scaled to the same size."""
        quarter_turns = round(frame.rotation / 90) % 4
        turned = quarter_turns % 2 == 1
        # The upright picture is what gets measured.
        width, height = (frame.height, frame.width) if turned else (frame.width, frame.height)
        if short_side:
            width, height = scaled_size(width, height, short_side)
        if crop > min(width, height):
            reason = f"frames are {width}x{height}, smaller than the {crop}x{crop} crop"
            raise VideoDecodeError(path, reason)
        # Scaling comes before turning, so a turned picture is scaled to the swapped size.
        if turned:
            width, height = height, width
        return cls(width, height, quarter_turns, crop)

    def convert(self, frame: av.VideoFrame) -> np.ndarray:
        """Return `frame` as an upright, scaled, centre-cropped uint8 RGB array."""
        image = frame.reformat(
            width=self.scale_width,
            height=self.scale_height,
            format="rgb24",
            interpolation=av.video.reformatter.Interpolation.BICUBIC,
        ).to_ndarray()
        image = np.rot90(image, self.quarter_turns)
        if not self.crop:
            return image
        top = int((image.shape[0] - self.crop) / 2)
        left = int((image.shape[1] - self.crop) / 2)
        return image[top : top + self.crop, left : left + self.crop]
