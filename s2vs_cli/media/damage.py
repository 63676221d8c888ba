"""What damage a decode met: FFmpeg's own error messages, and a file that ends well before the duration it states.

FFmpeg's messages (a demuxer's "partial file", a decoder's "invalid NAL unit") are heard while a video is read,
kept off the terminal, and handed to the decode so that they become its warnings.

PyAV passes FFmpeg's log to Python's `logging` (loggers "libav.<component>") once a level is set, and drops it
otherwise; a host program (or another PyAV version) may also have FFmpeg print it to stderr itself. Each decode
calls `listen()`: errors are passed on and each decode turns off PyAV's suppression of repeated lines (the
next file's identical "File ended prematurely" would otherwise be held back); messages emitted in the decoding
thread while a `DecoderLog` listens are captured there (av.logging.Capture); the rest (FFmpeg's own decoding
threads) reach a handler that keeps the errors for the decode that claims them and prints nothing.
"""
from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import av
import av.logging
from av.container import InputContainer
from av.video.stream import VideoStream

# "msg (repeated 3 more times)": PyAV's tally of a line already heard (when something turned the tallies back on).
_REPEATS = re.compile(r"\s*\(repeated \d+ more times?\)\s*$")
# What a demuxer says of a file cut short: said first, before the decoder's complaints about the last packet.
_CUT_SHORT = re.compile(r"partial file|ended prematurely|end of file", re.IGNORECASE)
# A decode that stops more than this before the end the file states has lost part of it ("well short"): intact
# files stop within a frame or two of it (0.07 s at most on the 27 sample clips: the last frame's duration, a
# start offset), fewer than 2 sampling intervals may be the rounding of ticks rather than a lost sampled frame,
# and 1 s keeps high sampling rates from calling a dropped last frame damage. Shorter losses are still said
# when FFmpeg itself reports the damage (a demuxer's "partial file"), down to LOSS_SAID.
MIN_LOST_SECONDS = 1.0
MIN_LOST_INTERVALS = 2
LOSS_SAID = 0.05
# Messages kept per decode: a badly damaged file can log one error per packet.
MAX_MESSAGES = 20


class _Unclaimed(logging.Handler):
    """FFmpeg errors emitted outside any capture (its decoding threads), kept for the decode that claims them."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.lock_messages = threading.Lock()
        self.messages: deque[tuple[str, str]] = deque(maxlen=MAX_MESSAGES)

    def emit(self, record: logging.LogRecord) -> None:
        component = record.name.removeprefix("libav.")
        with self.lock_messages:
            self.messages.append((component, record.getMessage()))

    def take(self) -> list[tuple[str, str]]:
        with self.lock_messages:
            taken = list(self.messages)
            self.messages.clear()
        return taken


_UNCLAIMED = _Unclaimed()


def listen() -> None:
    """Have FFmpeg's errors passed to this module rather than dropped or printed (call before each decode)."""
    level = av.logging.get_level()
    # Re-set each time: it also puts PyAV's log callback back where something restored FFmpeg's printing one.
    av.logging.set_level(av.logging.ERROR if level is None or level < av.logging.ERROR else level)
    av.logging.set_skip_repeated(False)
    libav = logging.getLogger("libav")
    if _UNCLAIMED not in libav.handlers:  # a handler of its own: Python's last resort never prints them to stderr
        libav.addHandler(_UNCLAIMED)


class DecoderLog:
    """The errors FFmpeg reported while one video was read, in the order first heard, each once."""

    def __init__(self):
        self.messages: dict[str, int] = {}  # "component: message" -> times heard

    @contextmanager
    def listening(self) -> Iterator[None]:
        """Capture what FFmpeg logs in this thread while the block runs (one call into FFmpeg: never hold it
        across a yield, as captures are a per-thread stack)."""
        with av.logging.Capture() as logs:
            try:
                yield
            finally:
                for level, component, message in logs:
                    if level <= av.logging.ERROR:
                        self._add(component, message)

    def claim_unclaimed(self) -> None:
        """Take the errors FFmpeg's own threads logged (call once the container is closed: its threads are done)."""
        for component, message in _UNCLAIMED.take():
            self._add(component, message)

    def discard_unclaimed(self) -> None:
        """Forget errors logged before this decode began: they belong to another file."""
        _UNCLAIMED.take()

    def summary(self, limit: int = 3) -> str:
        """The first `limit` messages, joined, with how often each came and how many others there were."""
        ordered = sorted(self.messages.items(), key=lambda item: not _CUT_SHORT.search(item[0]))
        shown = [message if count == 1 else f"{message} (×{count})" for message, count in ordered[:limit]]
        more = len(self.messages) - limit
        return "; ".join(shown) + (f"; and {more} other message{'s' if more > 1 else ''}" if more > 0 else "")

    def _add(self, component: str, message: str) -> None:
        text = _REPEATS.sub("", " ".join(message.split()))
        if not text:
            return
        line = f"{component}: {text}" if component else text
        if line in self.messages:
            self.messages[line] += 1
        elif len(self.messages) < MAX_MESSAGES:
            self.messages[line] = 1


def stated_end(container: InputContainer, stream: VideoStream) -> float | None:
    """When the file says its video ends, in seconds on its own clock (None when it does not say)."""
    if stream.duration and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    # Matroska states no duration per stream, but muxers tag each track with its own ("00:00:02.433000000"),
    # which a longer audio track does not stretch as it does the container's.
    tagged = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", str(stream.metadata.get("DURATION", "")).strip())
    if tagged:
        hours, minutes, seconds = tagged.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if container.duration:
        return ((container.start_time or 0) + container.duration) / av.time_base
    return None


def judge_end(log: DecoderLog, stated: float | None, decoded: float | None, fps: float) -> tuple[float, str | None]:
    """(seconds lost, the warning to give) for a decode sampled at `fps` that ended at `decoded` seconds (on the
    file's clock) where the file says `stated`: a warning when it ended well short, or FFmpeg reported errors."""
    lost = None if stated is None or decoded is None else stated - decoded
    well_short = lost is not None and lost > max(MIN_LOST_SECONDS, MIN_LOST_INTERVALS / fps)
    if not (well_short or log.messages):
        return 0.0, None
    if lost is None or lost < LOSS_SAID:
        return 0.0, f"FFmpeg reported errors reading the file: {log.summary()}"
    said = f"; FFmpeg: {log.summary()}" if log.messages else ""
    return round(lost, 3), (f"the file ends early: decoding stopped at {decoded:.1f} s of the {stated:.1f} s it "
                            f"states, {lost:.1f} s lost{said}")


def stored_loss(lost_frames: int, lost_seconds: float) -> str | None:
    """What a stored video's source had lost when it was extracted, as a warning (None: nothing lost, or unknown)."""
    lost = ([f"{lost_seconds:.1f} s"] if lost_seconds > 0 else []) + (
        [f"{lost_frames} frame{'s' if lost_frames > 1 else ''}"] if lost_frames > 0 else [])
    if not lost:
        return None
    return f"extracted from a damaged file that lost {' and '.join(lost)}: its features cover only what was decoded"
