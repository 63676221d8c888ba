"""Which decoded frames fixed-rate sampling keeps: presentation times, and ffmpeg's fps filter on them.

A frame's time is its presentation time. Decoders hand frames out in presentation order, but a
frame's own `duration` is its packet's, and in MP4 that is the step to the next packet in
*decoding* order: with B-frames it is another frame's gap. So a frame lasts until the next one
is shown, and the last frame as long as the stream's final packet says (ffmpeg 5.1 agrees; later
versions take that frame's own packet, so a variable-rate MP4 with B-frames can run long there).

A picture is held at most `MAX_FRAME_HOLD`; a longer step is taken as damaged timestamps and
closed up, so a file gives no more than about `MAX_FRAME_HOLD` × fps frames per decoded frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.stream import VideoStream

# Frame rate assumed when a stream states none that is plausible and its frames carry no timestamps.
DEFAULT_FRAME_RATE = 25
# Longest one decoded picture is held. Real videos hold a picture for seconds (slides) to many
# minutes (a still screen, a time-lapse shot, the 700 s gaps of a variable-rate file); a longer step
# between two frames' times is damaged or stitched timestamps and is closed up. This bounds what a
# file can cost by its frames: at 1 fps at most 3,600 output frames per decoded frame, and the
# 3-frame file whose last frame is stamped at 10 h gives 1 frame, not the 36,001 of ffmpeg's filter.
MAX_FRAME_HOLD = Fraction(3600)
# ffmpeg turns a float rate into a fraction with this largest denominator (av_d2q).
MAX_RATE_DENOMINATOR = 1001000


@dataclass
class SampledFrame:
    """One output frame of fixed-rate sampling."""

    image: np.ndarray  # uint8 [crop, crop, 3] RGB
    timestamp: float  # tick k / fps, seconds
    frame_time: float  # presentation time of the source frame, seconds from the first frame


def round_half_away(value: Fraction) -> int:
    """Round to the nearest integer, halves away from zero (FFmpeg's AV_ROUND_NEAR_INF)."""
    rounded = math.floor(abs(value) + Fraction(1, 2))
    return rounded if value >= 0 else -rounded


def _plausible(duration: Fraction | None) -> Fraction | None:
    """`duration` when a real picture could last that long, else None."""
    return duration if duration is not None and 0 < duration <= MAX_FRAME_HOLD else None


class FrameClock:
    """Exact presentation times, in seconds from the first frame, of the frames of a stream."""

    def __init__(self, stream: VideoStream):
        # The stream's frame rate (guessed_rate: a raw stream's own, where average_rate says 25).
        periods = (_plausible(1 / Fraction(rate)) for rate in (stream.guessed_rate, stream.average_rate) if rate)
        self.period = next((p for p in periods if p), Fraction(1, DEFAULT_FRAME_RATE))
        self.shift: Fraction | None = None  # added to a frame's own time; set by the first frame
        self.previous: Fraction | None = None  # time of the frame before
        self.previous_lasts = self.period  # its stated duration: what a frame without timestamp follows
        self.latest = Fraction(0)  # latest time of any frame
        self.last_packet_lasts: Fraction | None = None  # stated duration of the last packet in decoding order
        self.jumps = 0

    def note_packet(self, packet: av.Packet) -> None:
        """Note a demuxed packet, in decoding order: the stream's last frame lasts as long as its last packet."""
        if packet.size and packet.duration and packet.time_base is not None:
            self.last_packet_lasts = packet.duration * packet.time_base

    def time_of(self, frame: av.VideoFrame) -> Fraction:
        """Time of `frame`; call once per decoded frame, in the decoder's (presentation) order."""
        follows = Fraction(0) if self.previous is None else self.previous + self.previous_lasts
        if frame.pts is None or frame.time_base is None:
            time = follows  # raw streams carry no timestamps: frames follow each other
        else:
            own_time = frame.pts * frame.time_base
            if self.shift is None:
                self.shift = follows - own_time
            time = own_time + self.shift
            if self.previous is not None and abs(time - self.previous) > MAX_FRAME_HOLD:
                # Closed up: one frame period after the frame before (its own duration is, in MP4, a
                # step in decoding order, the jump itself when the jump follows it).
                self.jumps += 1
                self.shift += self.previous + self.period - time
                time = self.previous + self.period
        stated = frame.duration * frame.time_base if frame.duration and frame.time_base is not None else None
        self.previous, self.previous_lasts = time, _plausible(stated) or self.period
        self.latest = max(self.latest, time)
        return time

    def finish(self) -> Fraction:
        """End of the stream: its latest frame's time plus its last packet's duration (once, at the end)."""
        if self.previous is None:
            return Fraction(0)
        lasts = _plausible(self.last_packet_lasts)
        if self.last_packet_lasts is not None and lasts is None:
            self.jumps += 1  # a last frame said to last hours is closed up like a jump
        return self.latest + (lasts or self.previous_lasts)


class TickSampler:
    """ffmpeg's fps filter: tick k shows the last frame whose time rounds to k or less.

    Times are measured in ticks (1/fps) and rounded half away from zero, so tick k gets the
    last frame shown before (k + 1/2) / fps. A frame can fill several ticks (low frame rate)
    or none (it is replaced before the next tick). Whether the held frame is kept is only
    known when the next frame arrives, so it is held unconverted until then.
    """

    def __init__(self, fps: float, convert: Callable[[av.VideoFrame], np.ndarray]):
        self.rate = Fraction(fps).limit_denominator(MAX_RATE_DENOMINATOR)
        self.convert = convert
        self.first_tick = 0
        self.next_tick = 0
        self.held: av.VideoFrame | None = None
        self.held_time = Fraction(0)
        self.held_image: np.ndarray | None = None  # converted once, reused when repeated
        self.emitted = 0

    def push(self, frame: av.VideoFrame, time: Fraction) -> Iterator[SampledFrame]:
        """Offer the next decoded frame, emitting the held one for every tick it wins."""
        tick = round_half_away(time * self.rate)
        if self.held is None:
            self.first_tick = self.next_tick = tick
        while tick > self.next_tick:
            yield self._emit()
        self.held, self.held_time, self.held_image = frame, time, None

    def finish(self, end: Fraction) -> Iterator[SampledFrame]:
        """Fill the ticks up to the end of the stream with the last frame."""
        end_tick = round_half_away(end * self.rate)
        while self.next_tick < end_tick:
            yield self._emit()
        if not self.emitted:
            # ffmpeg would output nothing for a clip shorter than half a tick; keep its frame.
            yield self._emit()

    def _emit(self) -> SampledFrame:
        if self.held_image is None:
            self.held_image = self.convert(self.held)
        sampled = SampledFrame(self.held_image, float((self.next_tick - self.first_tick) / self.rate),
                               float(self.held_time))
        self.next_tick += 1
        self.emitted += 1
        return sampled
