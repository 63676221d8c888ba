"""Issue 25, cases 5 and 6: frame choice follows presentation times, as ffmpeg's fps filter does, and
no file gives more frames than its decoded frames justify (a picture is held at most an hour)."""
from __future__ import annotations

import io
import itertools
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.media.video import DecodeSummary, decode_video, sample_frames
from test_video import NATIVE, code_image, codes, read_code

runner = CliRunner()
FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg command is not installed (apt-get install ffmpeg)")
WIDTH, HEIGHT = 64, 32
ISSUE_TIMES = [0, 100, 400, 900, 1600]  # issue 25's example: seconds at which 5 frames are shown
JUMP_WARNING = "timestamps jumped by over an hour 1 time(s); closed up (a picture is held at most an hour)"


def write_x264_video(path: Path, seconds: list[float], decode_seconds: list[float] | None = None,
                     rate: Fraction = Fraction(1), b_frames: int = 3, last_lasts: float | None = None) -> Path:
    """x264 with `b_frames` B-frames between key frames, frames shown at `seconds`; `decode_seconds` restamps
    the packets' decoding times (each packet's stated duration is the step to the next, as MP4 stores it);
    `last_lasts` is the stated duration of the last packet."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate,
                                      options={"x264-params": f"bframes={b_frames}:b-adapt=0:b-pyramid=none"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base = 1 / rate
        packets = []
        for index, second in enumerate(seconds):
            frame = av.VideoFrame.from_ndarray(code_image(index, WIDTH, HEIGHT), format="rgb24")
            frame.pts, frame.time_base = round(second / time_base), time_base
            packets += stream.encode(frame)
        packets += stream.encode(None)
        if decode_seconds is not None:
            for packet, second in zip(packets, decode_seconds, strict=True):
                packet.dts = round(second / time_base)
            for packet, after in zip(packets, packets[1:] + [None]):
                packet.duration = after.dts - packet.dts if after is not None else round(1 / rate / time_base)
        if last_lasts is not None:
            packets[-1].duration = round(last_lasts / time_base)
        for packet in packets:
            container.mux(packet)
    return path


def decoding_order(path: Path) -> list[float]:
    """Presentation times of the packets, in the order they are stored."""
    with av.open(str(path)) as container:
        return [float(p.pts * p.time_base) for p in container.demux(video=0) if p.size]


def ffmpeg_codes(path: Path, fps: float = 1.0) -> list[int]:
    """The frames `ffmpeg -i PATH -vf fps=FPS` outputs, as the indices drawn on them."""
    command = [FFMPEG, "-v", "error", "-nostdin", "-i", str(path), "-vf", f"fps={fps}",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return [read_code(image) for image in np.frombuffer(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)]


def shown(seconds: list[float], last: float, fps: float = 1.0) -> list[int]:
    """Which frame each tick of ffmpeg's fps filter shows: the last one shown before (k + 1/2) / fps."""
    ticks = round(last * fps)
    return [max(i for i, s in enumerate(seconds) if s <= (k + 0.5) / fps) for k in range(ticks)]


# --- case 5: frame times are presentation times --------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_case_5_a_variable_rate_file_with_b_frames_gives_the_frames_it_shows(tmp_path, suffix):
    """issue 25 case 5: frames shown at 0, 100, 400, 900, 1600 s; MP4 states each frame's duration as the step
    to the next packet in decoding order (100 s for the last one): 1,700 frames at 1 fps, where 1,601 are shown.
    Known values, not the ffmpeg command: ffmpeg 5.1 gives these 1,601, but later versions (by their source)
    take the last frame's duration from its own MP4 sample as we did; the next test's file avoids that."""
    path = write_x264_video(tmp_path / f"vfr{suffix}", ISSUE_TIMES)
    assert decoding_order(path) == [0, 1600, 100, 400, 900]  # B-frames: the last frame is decoded second
    decoded = decode_video(path, fps=1.0, **NATIVE)
    assert codes(decoded.frames) == shown(ISSUE_TIMES, 1601) == [0] * 100 + [1] * 300 + [2] * 500 + [3] * 700 + [4]
    np.testing.assert_array_equal(decoded.frame_times, np.repeat(ISSUE_TIMES, [100, 300, 500, 700, 1]))
    np.testing.assert_array_equal(decoded.timestamps, np.arange(1601))
    assert decoded.duration == 1601 and decoded.warnings == []


@needs_ffmpeg
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_case_5_frame_choice_equals_ffmpeg_on_b_frames_with_irregular_gaps(tmp_path, suffix):
    """issue 25 case 5: the same frames as `ffmpeg -vf fps=1`, tick by tick, on a file whose first packet is
    stored 2,000 s before the next in decoding order (so its stated duration is 2,000 s: 2,000 frames before)."""
    path = write_x264_video(tmp_path / f"vfr{suffix}", ISSUE_TIMES, decode_seconds=[-2003, -3, -2, -1, 0])
    assert decoding_order(path) == [0, 1600, 100, 400, 900]
    picked = codes(decode_video(path, fps=1.0, **NATIVE).frames)
    assert picked == ffmpeg_codes(path, 1.0)
    assert picked == shown(ISSUE_TIMES, 1601)


@needs_ffmpeg
@pytest.mark.parametrize("rate, seconds, fps", [
    (Fraction(25), [k / 25 for k in range(63)], 1.0),  # 2.52 s of constant rate: the last tick rounds in
    (Fraction(25), [k / 25 for k in range(60)], 2.0),
    (Fraction(30000, 1001), [k * 1001 / 30000 for k in range(90)], 1.0),  # NTSC: ticks fall between frames
])
def test_case_5_constant_rate_files_with_b_frames_keep_their_parity_with_ffmpeg(tmp_path, rate, seconds, fps):
    """issue 25 case 5: ordinary files pick what `ffmpeg -vf fps=FPS` picks, tick by tick."""
    path = write_x264_video(tmp_path / "clip.mp4", seconds, rate=rate)
    assert codes(decode_video(path, fps=fps, **NATIVE).frames) == ffmpeg_codes(path, fps)


# --- case 6: a picture is held at most an hour ---------------------------------------------------

def write_jump_video(path: Path) -> Path:
    """A 3-frame clip at 25 fps whose last frame is stamped at 10 hours: a few KB."""
    return write_x264_video(path, [0, 0.04, 36000], rate=Fraction(25), b_frames=0)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_case_6_a_last_frame_stamped_at_10_hours_is_closed_up(tmp_path, suffix):
    """issue 25 case 6: 3 frames, the last stamped at 10 h (MP4 states the 10 h as the second frame's duration):
    36,000 frames at 1 fps before, though the warning said the jump was closed up; now a 0.12 s clip."""
    path = write_jump_video(tmp_path / f"jump{suffix}")
    assert path.stat().st_size < 4000
    summary = DecodeSummary()
    sampled = list(itertools.islice(sample_frames(path, 1.0, short_side=0, crop=0, summary=summary), 10))
    assert [read_code(frame.image) for frame in sampled] == [2]  # shorter than half a tick: its last frame
    assert [frame.frame_time for frame in sampled] == [pytest.approx(0.08)]
    assert summary.duration == pytest.approx(0.12)
    assert summary.warnings == [JUMP_WARNING]


def test_case_6_extract_frames_writes_what_the_warning_says(tmp_path):
    """issue 25 case 6, through the CLI: one frame a video, and the note says the jump was closed up."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for suffix in (".mp4", ".mkv"):
        write_jump_video(videos / f"jump{suffix[1:]}{suffix}")
    result = runner.invoke(app, ["extract-frames", str(videos), "-o", str(tmp_path / "frames"), "--resize", "0"])
    assert result.exit_code == 0, result.output
    assert "2 videos written (2 frames)" in result.output
    note = " ".join(result.output.split()).split("note: ")[1]  # names either video: they are written in parallel
    assert note in (f"2 videos decoded with warnings, e.g. jump{kind}: {JUMP_WARNING}" for kind in ("mp4", "mkv"))
    assert sorted(p.name for p in (tmp_path / "frames").glob("*/*.jpg")) == ["00000.jpg", "00000.jpg"]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_case_6_a_slideshow_and_a_long_still_keep_their_time(tmp_path, suffix):
    """issue 25 case 6: a picture held under an hour is real: slides of 5 s, and a still of 59 minutes."""
    slides = write_x264_video(tmp_path / f"slides{suffix}", [0, 5, 10, 15], rate=Fraction(1, 5))
    decoded = decode_video(slides, fps=1.0, **NATIVE)
    assert codes(decoded.frames) == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5 and decoded.warnings == []
    still = write_x264_video(tmp_path / f"still{suffix}", [0, 1, 3541, 3542])
    decoded = decode_video(still, fps=1.0, **NATIVE)
    assert codes(decoded.frames) == [0] + [1] * 3540 + [2, 3] and decoded.warnings == []


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_case_6_frames_are_bounded_by_the_decoded_frames(tmp_path, suffix):
    """issue 25 case 6: each decoded frame is held at most an hour, wherever the jump is and whatever
    duration the container states; later frames follow one frame period after the jump."""
    path = write_x264_video(tmp_path / f"gaps{suffix}", [0, 1, 1 + 7200, 2 + 7200, 3 + 7200 + 3 * 3600])
    decoded = decode_video(path, fps=1.0, **NATIVE)
    assert codes(decoded.frames) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(decoded.frame_times, [0, 1, 2, 3, 4])
    assert decoded.warnings == [JUMP_WARNING.replace("1 time(s)", "2 time(s)")]
    # A last frame stated to last 5 hours lasts one frame period.
    path = write_x264_video(tmp_path / f"long_last{suffix}", [0, 1], b_frames=0, last_lasts=5 * 3600)
    decoded = decode_video(path, fps=1.0, **NATIVE)
    assert codes(decoded.frames) == [0, 1] and decoded.duration == 2
    assert decoded.warnings == [JUMP_WARNING]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_case_6_report_thumbnails_follow_the_closed_up_times(tmp_path, suffix):
    """issue 25 cases 5-6 in the review page: a thumbnail at a match's time shows the frame sampling put there,
    also after a jump of hours was closed up (before: the frame before the jump, held for two hours)."""
    from s2vs_cli.report.thumbnails import ThumbnailBatch

    path = write_x264_video(tmp_path / f"gaps{suffix}", [0, 1, 1 + 7200, 2 + 7200, 3 + 7200])
    sampled = decode_video(path, fps=1.0, **NATIVE)
    batch = ThumbnailBatch(width=WIDTH)
    pending = [batch.request(path, float(t)) for t in sampled.frame_times]
    assert batch.resolve() == []
    shown = [read_code(np.asarray(Image.open(io.BytesIO(p.image.data)).convert("RGB"))) for p in pending]
    assert shown == codes(sampled.frames) == [0, 1, 2, 3, 4]
