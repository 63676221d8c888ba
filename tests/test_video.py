"""Tests of video decoding: frame choice, resizing, containers, damaged and bad input."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from s2vs_cli.media import video
from s2vs_cli.errors import VideoDecodeError
from s2vs_cli.media.video import decode_video, scaled_size, video_info

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
needs_shared_videos = pytest.mark.skipif(
    not SHARED_VIDEOS.is_dir(), reason="../shared/videos not found"
)

CODE_ROWS, CODE_COLUMNS = 2, 4  # a frame shows its index as 8 black/white blocks, one per bit
NATIVE = {"short_side": 0, "crop": 0, "min_frames": 0}  # decode at the stored size, no repetition
PIXEL_FORMATS = {"gif": "rgb8", "mjpeg": "yuvj420p"}  # encoders that do not take yuv420p


def code_image(index, width=64, height=32):
    """An RGB picture of `index` in binary: bit b is block b (row-major), white when set."""
    rows = np.arange(height) * CODE_ROWS // height
    columns = np.arange(width) * CODE_COLUMNS // width
    bits = rows[:, None] * CODE_COLUMNS + columns[None, :]
    image = np.where((index >> bits) & 1, 255, 0).astype(np.uint8)
    return np.repeat(image[:, :, None], 3, axis=2)


def read_code(image):
    """The index drawn by code_image, read from the centre of each block (survives compression)."""
    height, width = image.shape[:2]
    block_height, block_width = height // CODE_ROWS, width // CODE_COLUMNS
    index = 0
    for bit in range(CODE_ROWS * CODE_COLUMNS):
        row, column = divmod(bit, CODE_COLUMNS)
        centre = image[
            row * block_height + block_height // 4 : (row + 1) * block_height - block_height // 4,
            column * block_width + block_width // 4 : (column + 1) * block_width - block_width // 4,
        ]
        if centre.mean() > 127:
            index |= 1 << bit
    return index


def write_video(
    path, count, rate=25, codec="ffv1", size=(64, 32), pts_ms=None, rotation=0, audio=False
):
    """Write `count` code_image frames; `pts_ms` gives explicit times in milliseconds (VFR)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = PIXEL_FORMATS.get(codec, "yuv420p")
        if pts_ms is not None:
            stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        if audio:
            audio_stream = container.add_stream("aac", rate=44100)
            for packet in audio_stream.encode(silent_audio_frame(0)):
                container.mux(packet)
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(code_image(index, *size), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[index], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio:
            for packet in audio_stream.encode():
                container.mux(packet)
    return path


def silent_audio_frame(index):
    samples = np.zeros((1, 1024), np.float32)
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate, frame.pts = 44100, index * 1024
    return frame


def noise(size, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        for index in range(10):
            for packet in stream.encode(silent_audio_frame(index)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def codes(frames):
    return [read_code(frame) for frame in frames]


def ffmpeg_fps_codes(path, fps):
    """Indices libavfilter's fps filter picks, first frame moved to time 0 as ffmpeg does."""
    picked = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        graph = av.filter.Graph()
        source = graph.add_buffer(template=stream)
        reset_start = graph.add("setpts", "PTS-STARTPTS")
        sampler = graph.add("fps", str(fps))
        sink = graph.add("buffersink")
        source.link_to(reset_start)
        reset_start.link_to(sampler)
        sampler.link_to(sink)
        graph.configure()
        for frame in [*container.decode(stream), None]:
            graph.push(frame)
            while True:
                try:
                    picked.append(read_code(graph.pull().to_ndarray(format="rgb24")))
                except (av.BlockingIOError, av.EOFError):
                    break
    return picked


def corrupt_packets(path, packet_numbers):
    """Overwrite the payload of the given video packets with noise, keeping the container intact.

    Meant for AVI, where a packet's `pos` is where its payload starts.
    """
    with av.open(str(path)) as container:
        packets = [(packet.pos, packet.size) for packet in container.demux(video=0) if packet.size]
    data = bytearray(path.read_bytes())
    for number in packet_numbers:
        position, size = packets[number]
        data[position : position + size] = noise(size, seed=number)
    path.write_bytes(bytes(data))


def assert_decode_error(path, reason):
    with pytest.raises(VideoDecodeError) as caught:
        decode_video(path)
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    assert reason in caught.value.reason


# --- which frames are picked ---------------------------------------------------------------


def test_one_fps_picks_the_frame_shown_half_a_tick_in_like_ffmpeg(tmp_path):
    path = write_video(tmp_path / "ten_seconds.mkv", 250)
    decoded = decode_video(path, fps=1.0, **NATIVE)
    assert codes(decoded.frames) == [12 + 25 * second for second in range(10)]
    np.testing.assert_allclose(decoded.frame_times, np.arange(10) + 0.48)
    np.testing.assert_allclose(decoded.timestamps, np.arange(10))  # tick times, as ffmpeg stamps them
    assert decoded.duration == pytest.approx(10.0)
    assert decoded.fps == 1.0 and decoded.lost_frames == 0 and decoded.repeated == 1
    assert decoded.warnings == []


def test_two_fps_gives_twice_the_frames(tmp_path):
    decoded = decode_video(write_video(tmp_path / "ten_seconds.mkv", 250), fps=2.0, **NATIVE)
    assert len(decoded.frames) == 20
    assert codes(decoded.frames)[:4] == [6, 18, 31, 43]


def test_frames_with_irregular_times_and_a_start_offset(tmp_path):
    # Times 0.7 s .. 3.7 s: measured from the first frame they are 0, .1, .9, 1, 1.6, 3.
    path = write_video(tmp_path / "vfr.mkv", 6, pts_ms=[700, 800, 1600, 1700, 2300, 3700])
    decoded = decode_video(path, **NATIVE)
    assert codes(decoded.frames) == [1, 3, 4]
    np.testing.assert_allclose(decoded.frame_times, [0.1, 1.0, 1.6])
    np.testing.assert_allclose(decoded.timestamps, [0, 1, 2])
    assert decoded.duration == pytest.approx(3.04)


@pytest.mark.parametrize(
    "count, rate, fps, pts_ms",
    [
        (250, 25, 1.0, None),
        (250, 25, 2.0, None),
        (100, Fraction(30000, 1001), 1.0, None),  # NTSC rate: ticks fall between frames
        (60, 25, 1.0, None),  # 2.4 s: the last tick rounds away
        (63, 25, 1.0, None),  # 2.52 s: it rounds in
        (200, 25, 0.3, None),
        (12, 5, 12.0, None),  # sampling faster than the source repeats frames
        (8, 25, 1.0, [0, 300, 499, 500, 1400, 1600, 2950, 5000]),
        (6, 25, 2.0, [700, 800, 1600, 1700, 2300, 3700]),
    ],
)
def test_picks_match_libavfilter_fps_filter(tmp_path, count, rate, fps, pts_ms):
    path = write_video(tmp_path / "clip.mkv", count, rate=rate, pts_ms=pts_ms)
    assert codes(decode_video(path, fps=fps, **NATIVE).frames) == ffmpeg_fps_codes(path, fps)


def test_only_kept_frames_are_converted(tmp_path, monkeypatch):
    conversions = []
    convert = video._FrameShape.convert

    def counting_convert(shape, frame):
        conversions.append(frame)
        return convert(shape, frame)

    monkeypatch.setattr(video._FrameShape, "convert", counting_convert)
    decode_video(write_video(tmp_path / "ten_seconds.mkv", 250), fps=1.0)
    assert len(conversions) == 10
    conversions.clear()
    # A frame that fills several ticks is converted once.
    decoded = decode_video(write_video(tmp_path / "slow.mkv", 3, rate=1), fps=4.0)
    assert len(decoded.frames) == 12 and len(conversions) == 3


def test_a_stream_without_timestamps_is_timed_by_frame_durations(tmp_path):
    path = write_video(tmp_path / "raw.h264", 30, rate=10, codec="libx264")
    decoded = decode_video(path, **NATIVE)
    assert codes(decoded.frames) == [4, 14, 24]
    np.testing.assert_allclose(decoded.frame_times, [0.4, 1.4, 2.4])


def test_a_huge_timestamp_jump_is_closed_up(tmp_path):
    two_hours = 2 * 3600 * 1000
    path = write_video(tmp_path / "jump.mkv", 5, pts_ms=[0, 40, 80, two_hours, two_hours + 40])
    decoded = decode_video(path, fps=25.0, **NATIVE)
    assert codes(decoded.frames) == [0, 1, 2, 3, 4]
    assert decoded.duration < 1
    assert any("timestamps jumped" in warning for warning in decoded.warnings)


# --- resizing, cropping, rotation ----------------------------------------------------------


def test_scaled_size_keeps_the_aspect_and_makes_sides_even():
    assert scaled_size(640, 480, 256) == (342, 256)
    assert scaled_size(1280, 720, 256) == (456, 256)
    assert scaled_size(33, 17, 256) == (498, 256)
    assert scaled_size(2, 2, 256) == (256, 256)


def test_resize_then_centre_crop(tmp_path):
    path = write_video(tmp_path / "vga.mkv", 25, size=(640, 480))
    cropped = decode_video(path)
    assert cropped.frames.shape == (4, 224, 224, 3) and cropped.frames.dtype == np.uint8
    scaled = decode_video(path, crop=0)
    assert scaled.frames.shape == (4, 256, 342, 3)
    top, left = (256 - 224) // 2, (342 - 224) // 2
    centre = scaled.frames[:, top : top + 224, left : left + 224]
    np.testing.assert_array_equal(cropped.frames, centre)
    assert decode_video(path, short_side=0, crop=0).frames.shape == (4, 480, 640, 3)
    assert decode_video(path, short_side=0, crop=100).frames.shape == (4, 100, 100, 3)


@pytest.mark.parametrize("size, scaled", [((33, 17), (256, 498)), ((2, 2), (256, 256))])
def test_odd_and_tiny_sizes_are_scaled_up(tmp_path, size, scaled):
    path = write_video(tmp_path / "small.mkv", 25, size=size)
    assert decode_video(path).frames.shape == (4, 224, 224, 3)
    assert decode_video(path, crop=0, min_frames=0).frames.shape == (1, *scaled, 3)
    assert decode_video(path, **NATIVE).frames.shape == (1, size[1], size[0], 3)


def test_a_crop_larger_than_the_picture_is_refused(tmp_path):
    path = write_video(tmp_path / "small.mkv", 25, size=(33, 17))
    with pytest.raises(VideoDecodeError, match="smaller than the 20x20 crop"):
        decode_video(path, short_side=0, crop=20)


@pytest.mark.parametrize(
    "rotation, shape, marker",
    [
        (90, (64, 32), (slice(48, 64), slice(0, 16))),  # counter-clockwise: top-left to bottom-left
        (-90, (64, 32), (slice(0, 16), slice(16, 32))),  # clockwise: top-left to top-right
        (180, (32, 64), (slice(16, 32), slice(48, 64))),
    ],
)
def test_rotation_metadata_is_honoured(tmp_path, rotation, shape, marker):
    # Frame 1 lights only the top-left block of the stored picture.
    path = write_video(tmp_path / "phone.mp4", 2, rate=1, codec="libx264", rotation=rotation)
    assert video_info(path)["rotation"] % 360 == rotation % 360  # 180 reads back as -180
    upright = decode_video(path, **NATIVE).frames[1]
    assert upright.shape == (*shape, 3)
    assert upright[marker].mean() > 200
    assert upright.mean() < 255 / 8 + 10  # and nothing else is lit
    scaled = decode_video(path, crop=0, min_frames=0).frames
    assert scaled.shape[1:3] == tuple(256 * side // min(shape) for side in shape)


# --- containers and codecs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "extension, codec",
    [
        ("gif", "gif"),
        ("mkv", "ffv1"),
        ("mkv", "libx264"),
        ("webm", "libvpx"),
        ("webm", "libvpx-vp9"),
        ("mp4", "libx264"),
        ("mp4", "mpeg4"),
        ("avi", "mjpeg"),
        ("avi", "mpeg4"),
    ],
)
def test_containers_and_codecs(tmp_path, extension, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path = write_video(tmp_path / f"clip.{extension}", 75, codec=codec)
    assert codes(decode_video(path, **NATIVE).frames) == [12, 37, 62]
    assert decode_video(path, threads=1).frames.shape == (6, 224, 224, 3)


# --- very short videos ---------------------------------------------------------------------


def test_a_single_frame_is_repeated_to_min_frames(tmp_path):
    decoded = decode_video(write_video(tmp_path / "still.mkv", 1))
    assert decoded.frames.shape == (4, 224, 224, 3)
    assert decoded.repeated == 4
    np.testing.assert_array_equal(decoded.timestamps, [0, 0, 0, 0])
    assert any("repeated 4x" in warning for warning in decoded.warnings)


def test_three_frames_are_doubled(tmp_path):
    path = write_video(tmp_path / "three.mkv", 3, rate=1)
    decoded = decode_video(path, short_side=0, crop=0)
    assert decoded.repeated == 2
    assert codes(decoded.frames) == [0, 1, 2, 0, 1, 2]
    np.testing.assert_array_equal(decoded.timestamps, [0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("min_frames", [0, 1])
def test_repetition_can_be_turned_off(tmp_path, min_frames):
    decoded = decode_video(write_video(tmp_path / "still.mkv", 1), min_frames=min_frames)
    assert len(decoded.frames) == 1 and decoded.repeated == 1 and decoded.warnings == []


# --- bad and damaged input -----------------------------------------------------------------


def test_missing_file(tmp_path):
    assert_decode_error(tmp_path / "missing.mp4", "file not found")


def test_directory(tmp_path):
    assert_decode_error(tmp_path, "is a directory")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    assert_decode_error(path, "empty file (0 bytes)")


@pytest.mark.parametrize("content", [noise(5000), b"just some text\n" * 100])
def test_not_a_video(tmp_path, content):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(content)
    assert_decode_error(path, "not a video file: Invalid data")


def test_audio_only(tmp_path):
    assert_decode_error(write_audio_only(tmp_path / "sound.m4a"), "no video stream")


def test_mp4_cut_before_its_index(tmp_path):
    path = write_video(tmp_path / "cut.mp4", 50, codec="libx264")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert_decode_error(path, "truncated or damaged MP4")


def test_truncated_file_keeps_what_is_there(tmp_path):
    path = write_video(tmp_path / "cut.mkv", 100)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    decoded = decode_video(path, **NATIVE)
    assert 1 <= len(decoded.frames) < 4
    assert codes(decoded.frames)[0] == 12


def test_file_cut_after_its_header(tmp_path):
    path = write_video(tmp_path / "cut.mkv", 100)
    with av.open(str(path)) as container:
        first_packet = next(container.demux(video=0)).pos
    path.write_bytes(path.read_bytes()[:first_packet])
    assert_decode_error(path, "no frames could be decoded")


def test_no_packet_decodes(tmp_path):
    path = write_video(tmp_path / "ruined.avi", 10, codec="mjpeg")
    corrupt_packets(path, range(10))
    assert_decode_error(path, "no frames could be decoded")


def test_damaged_packets_are_skipped_and_counted(tmp_path):
    path = write_video(tmp_path / "damaged.avi", 100, codec="mjpeg")
    corrupt_packets(path, range(58, 63))
    decoded = decode_video(path, **NATIVE)
    assert decoded.lost_frames == 5
    assert "5 frames could not be decoded and were skipped" in decoded.warnings
    # Frame 62 is lost, so tick 2 falls back to the last frame before the damage.
    assert codes(decoded.frames) == [12, 37, 57, 87]


def test_garbage_in_the_middle_of_a_file(tmp_path):
    path = write_video(tmp_path / "damaged.mkv", 100, codec="mjpeg", size=(128, 64))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = noise(2000)
    path.write_bytes(bytes(data))
    decoded = decode_video(path, **NATIVE)
    assert decoded.lost_frames > 0
    assert codes(decoded.frames)[-1] == 87  # frames after the damage still come through


@pytest.mark.parametrize(
    "arguments",
    [
        {"fps": 0},
        {"fps": float("nan")},
        {"crop": 300},
        {"short_side": -1},
        {"min_frames": -1},
        {"threads": -2},
    ],
)
def test_invalid_arguments(tmp_path, arguments):
    with pytest.raises(ValueError):
        decode_video(write_video(tmp_path / "clip.mkv", 1), **arguments)


def test_video_info(tmp_path):
    info = video_info(write_video(tmp_path / "clip.mkv", 50, size=(33, 17)))
    assert info["width"] == 33 and info["height"] == 17 and info["rotation"] == 0
    assert info["codec"] == "ffv1" and info["fps"] == 25.0
    assert info["duration"] == pytest.approx(2.0, abs=0.05)
    with pytest.raises(VideoDecodeError, match="no video stream"):
        video_info(write_audio_only(tmp_path / "sound.m4a"))


# --- real clips ----------------------------------------------------------------------------


@needs_shared_videos
@pytest.mark.parametrize(
    "name, frames, repeated",
    [("bigbuckbunny.mp4", 5, 1), ("again.mkv", 6, 2), ("s2vs_example.mp4", 14, 1)],
)
def test_real_clips(name, frames, repeated):
    decoded = decode_video(SHARED_VIDEOS / name)
    assert decoded.frames.shape == (frames, 224, 224, 3)
    assert decoded.repeated == repeated and decoded.lost_frames == 0
    assert np.all(np.diff(decoded.timestamps[: frames // repeated]) > 0)


@needs_shared_videos
def test_info_of_a_real_clip_with_sound():
    with av.open(str(SHARED_VIDEOS / "s2vs_example.mp4")) as container:
        assert container.streams.audio
    info = video_info(SHARED_VIDEOS / "s2vs_example.mp4")
    assert (info["width"], info["height"], info["codec"]) == (640, 360, "h264")
    assert info["duration"] == pytest.approx(14.2, abs=0.1)


def test_audio_stream_is_ignored(tmp_path):
    path = write_video(tmp_path / "with_sound.mp4", 50, codec="libx264", audio=True)
    assert codes(decode_video(path, **NATIVE).frames) == [12, 37]


# --- streaming ----------------------------------------------------------------------------------


def test_sample_frames_streams_what_decode_video_returns(tmp_path):
    path = write_video(tmp_path / "ten_seconds.mkv", 250)
    summary = video.DecodeSummary()
    stream = video.sample_frames(path, fps=1.0, short_side=0, crop=0, summary=summary)
    first = next(stream)  # frames arrive one at a time, before the file is read to the end
    assert summary.duration == 0.0
    rest = list(stream)
    decoded = decode_video(path, fps=1.0, **NATIVE)
    np.testing.assert_array_equal(np.stack([first.image] + [f.image for f in rest]), decoded.frames)
    assert [f.timestamp for f in [first, *rest]] == list(decoded.timestamps)
    assert [f.frame_time for f in [first, *rest]] == pytest.approx(list(decoded.frame_times))
    assert summary.duration == pytest.approx(10.0) and summary.lost_frames == 0


def test_sample_frames_reports_bad_input_before_the_first_frame(tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(VideoDecodeError, match="file not found"):
        next(video.sample_frames(missing))
