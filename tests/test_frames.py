"""Tests of frame folders: reading them like a video, and writing a video's frames atomically."""

import errno
import os
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation
from media import write_video
from PIL import Image

from s2vs_cli.atomic import temporary_sibling
from s2vs_cli.media import frames as frames_module
from s2vs_cli.errors import S2VSError, VideoDecodeError
from s2vs_cli.media.frames import (
    FramesExistError,
    FrameWriteError,
    frames_complete,
    list_frame_files,
    load_rgb,
    read_frame_folder,
    remove_partials,
    write_video_frames,
)
from s2vs_cli.media.video import sample_frames, scaled_size

DEAD_PID = 4_194_305  # above Linux's largest pid_max, so no process can have it


def scene(index: int, width: int, height: int) -> np.ndarray:
    """A colourful frame with gradients (something to resample) and a square moving with `index`."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack(
        [x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y + 37 * index) % 256], axis=2
    ).astype(np.uint8)
    side = max(min(width, height) // 4, 2)
    left = (index * 13) % max(width - side, 1)
    image[height // 3 : height // 3 + side, left : left + side] = (250, 20, 120)
    return image


def make_clip(path: Path, width: int = 320, height: int = 180, seconds: int = 4, rate: int = 5) -> Path:
    """A small H.264 clip: `seconds` x `rate` frames of `scene`."""
    return write_video(path, (scene(i, width, height) for i in range(seconds * rate)), rate)


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_clip(tmp_path / "clip.mp4")


def images(video, short_side, crop, fps=1.0):
    return [frame.image for frame in sample_frames(video, fps, short_side, crop)]


def assert_same_frames(actual, expected):
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected)):
        assert a.shape == e.shape, f"frame {index}"
        assert a.dtype == np.uint8
        assert np.array_equal(a, e), f"frame {index} differs"


def save(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


# ---------------------------------------------------------------------------------------------
# Lossless round trip: the key property


@pytest.mark.parametrize(
    "size", [(320, 180), (640, 360), (180, 320), (176, 144), (1280, 720)],
    ids=["up-wide", "down-wide", "portrait", "cif", "hd"],
)
def test_png_frames_read_back_bit_identical_to_the_video(tmp_path, size):
    video = make_clip(tmp_path / "clip.mp4", *size, seconds=3)
    written = write_video_frames(video, tmp_path / "out", "clip", resize=256, image_format="png")

    assert_same_frames(list(read_frame_folder(written.folder, 256, 224)), images(video, 256, 224))
    assert_same_frames(list(read_frame_folder(written.folder, 256, 0)), images(video, 256, 0))


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "carphone_pristine.mp4", "again.mkv"])
def test_png_round_trip_on_real_footage(tmp_path, videos_dir, name):
    video = videos_dir / name
    written = write_video_frames(video, tmp_path, "real", image_format="png")

    assert_same_frames(list(read_frame_folder(written.folder)), images(video, 256, 224))


def test_frames_at_another_size_are_scaled_like_the_video(tmp_path, clip):
    # Native-size frames read with short_side 256 go through the same scaler as the decoder.
    written = write_video_frames(clip, tmp_path, "native", resize=0, image_format="png")
    expected = [
        av.VideoFrame.from_ndarray(image, format="rgb24")
        .reformat(width=456, height=256, format="rgb24", interpolation=Interpolation.BICUBIC)
        .to_ndarray()[16:240, 116:340]
        for image in images(clip, 0, 0)
    ]
    assert_same_frames(list(read_frame_folder(written.folder, 256, 224)), expected)


def test_an_image_already_at_the_target_size_is_not_resampled(tmp_path, monkeypatch):
    folder = tmp_path / "f"
    folder.mkdir()
    image = np.random.default_rng(0).integers(0, 256, (256, 340, 3), dtype=np.uint8)
    save(folder / "00000.png", image)
    monkeypatch.setattr(frames_module, "_scale", lambda *a: pytest.fail("scaled a second time"))

    (read,) = read_frame_folder(folder, 256, 0)
    assert np.array_equal(read, image)
    (cropped,) = read_frame_folder(folder, 256, 224)
    assert np.array_equal(cropped, image[16:240, 58:282])


def test_short_side_zero_keeps_the_size_and_crops_the_centre(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    image = np.random.default_rng(1).integers(0, 256, (101, 150, 3), dtype=np.uint8)
    save(folder / "0.png", image)

    (read,) = read_frame_folder(folder, 0, 0)
    assert np.array_equal(read, image)
    (cropped,) = read_frame_folder(folder, 0, 64)
    assert np.array_equal(cropped, image[18:82, 43:107])


# ---------------------------------------------------------------------------------------------
# Writing


def test_one_image_per_sampled_frame_named_in_order(tmp_path, clip):
    written = write_video_frames(clip, tmp_path / "out", "clip")

    assert written.frames == len(images(clip, 256, 0)) == 4
    assert written.video_id == "clip" and written.folder == tmp_path / "out" / "clip"
    assert written.duration == pytest.approx(4.0)
    assert written.lost_frames == 0 and written.warnings == []
    assert sorted(p.name for p in written.folder.iterdir()) == ["00000.jpg", "00001.jpg", "00002.jpg", "00003.jpg"]
    assert os.listdir(tmp_path / "out") == ["clip"]  # no temporary folder left


def test_fps_sets_the_number_of_frames(tmp_path, clip):
    written = write_video_frames(clip, tmp_path, "clip", fps=2.0, image_format="png")
    assert written.frames == len(images(clip, 256, 0, fps=2.0)) == 8
    assert (written.folder / "00007.png").is_file()


def test_jpeg_frames_are_close_to_the_decoded_frames(tmp_path, clip):
    written = write_video_frames(clip, tmp_path, "clip", quality=95)
    decoded = images(clip, 256, 0)
    for path, expected in zip(list_frame_files(written.folder), decoded):
        with Image.open(path) as picture:
            assert picture.format == "JPEG"
        actual = load_rgb(path)
        assert actual.shape == expected.shape
        assert np.abs(actual.astype(int) - expected).mean() < 3


def test_jpeg_quality_is_respected(tmp_path, clip):
    high = write_video_frames(clip, tmp_path, "high", quality=95)
    low = write_video_frames(clip, tmp_path, "low", quality=30)

    def size(folder):
        return sum(p.stat().st_size for p in folder.iterdir())

    assert size(high.folder) > 1.5 * size(low.folder)


def test_jpeg_chroma_is_not_subsampled(tmp_path, clip):
    written = write_video_frames(clip, tmp_path, "clip")
    with Image.open(written.folder / "00000.jpg") as picture:
        # (id, h, v, table) per component: every sampling factor 1 means 4:4:4.
        assert {(h, v) for _, h, v, _ in picture.layer} == {(1, 1)}


def test_resize_zero_keeps_the_native_size(tmp_path):
    video = make_clip(tmp_path / "clip.mp4", 322, 182, seconds=2)
    written = write_video_frames(video, tmp_path, "native", resize=0, image_format="png")
    assert load_rgb(written.folder / "00000.png").shape == (182, 322, 3)


@pytest.mark.parametrize("size", [(322, 182), (182, 322)])
def test_resize_gives_the_even_rounded_scaled_size(tmp_path, size):
    video = make_clip(tmp_path / "clip.mp4", *size, seconds=2)
    written = write_video_frames(video, tmp_path, "scaled", resize=256)
    width, height = scaled_size(*size, 256)
    assert (width, height) == ((454, 256) if size[0] > size[1] else (256, 454))  # 452.9 rounded up to even
    assert load_rgb(written.folder / "00000.jpg").shape == (height, width, 3)


# ---------------------------------------------------------------------------------------------
# Atomicity, existing folders, leftovers


def fail_on_third_save(monkeypatch, error: BaseException):
    original = Image.Image.save
    calls = []

    def save_or_fail(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise error
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save_or_fail)
    return calls


def test_a_disk_error_mid_way_leaves_nothing(tmp_path, clip, monkeypatch):
    calls = fail_on_third_save(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(FrameWriteError) as caught:
        write_video_frames(clip, tmp_path, "clip")
    assert len(calls) == 3
    assert isinstance(caught.value, S2VSError)
    assert "00002.jpg" in str(caught.value) and "No space left" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert os.listdir(tmp_path) == ["clip.mp4"]  # no {id} folder, no partial


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_any_failure_mid_way_propagates_and_leaves_nothing(tmp_path, clip, monkeypatch, error):
    fail_on_third_save(monkeypatch, error)
    with pytest.raises(type(error)):
        write_video_frames(clip, tmp_path, "clip")
    assert os.listdir(tmp_path) == ["clip.mp4"]


def test_existing_frames_raise_file_exists_before_decoding(tmp_path, clip, monkeypatch):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "00000.jpg").write_bytes(b"old")
    monkeypatch.setattr(frames_module, "sample_frames", lambda *a, **k: pytest.fail("decoded anyway"))

    with pytest.raises(FileExistsError):
        write_video_frames(clip, tmp_path, "clip")
    assert sorted(os.listdir(tmp_path)) == ["clip", "clip.mp4"]
    assert (tmp_path / "clip" / "00000.jpg").read_bytes() == b"old"


def test_a_folder_that_appears_while_writing_is_not_replaced(tmp_path, clip, monkeypatch):
    original = frames_module._save_image

    def save_and_race(image, path, *args):
        (tmp_path / "clip").mkdir(exist_ok=True)  # another process finishes first
        original(image, path, *args)

    monkeypatch.setattr(frames_module, "_save_image", save_and_race)
    with pytest.raises(FramesExistError):
        write_video_frames(clip, tmp_path, "clip")
    assert sorted(os.listdir(tmp_path)) == ["clip", "clip.mp4"]
    assert os.listdir(tmp_path / "clip") == []


def test_overwrite_swaps_in_the_new_frames(tmp_path, clip):
    old = tmp_path / "clip"
    old.mkdir()
    (old / "00000.jpg").write_bytes(b"old")
    (old / "00099.jpg").write_bytes(b"old")

    written = write_video_frames(clip, tmp_path, "clip", overwrite=True)
    assert sorted(p.name for p in old.iterdir()) == ["00000.jpg", "00001.jpg", "00002.jpg", "00003.jpg"]
    assert load_rgb(old / "00000.jpg").shape == (256, 456, 3)
    assert written.frames == 4
    assert sorted(os.listdir(tmp_path)) == ["clip", "clip.mp4"]  # no .old or .partial left


def test_a_failed_overwrite_keeps_the_old_frames(tmp_path, clip, monkeypatch):
    old = tmp_path / "clip"
    old.mkdir()
    (old / "00000.jpg").write_bytes(b"old")
    fail_on_third_save(monkeypatch, OSError(errno.EIO, "Input/output error"))

    with pytest.raises(FrameWriteError):
        write_video_frames(clip, tmp_path, "clip", overwrite=True)
    assert os.listdir(old) == ["00000.jpg"] and (old / "00000.jpg").read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["clip", "clip.mp4"]


def test_an_older_runs_partial_with_our_pid_is_not_ours(tmp_path, clip):
    """Before issue 25 a partial folder was named by id and pid; we no longer make such names, so one
    with our (reused) pid is stale: never mixed into the new frames, removed by remove_partials."""
    stale = tmp_path / f".clip.partial-{os.getpid()}"
    stale.mkdir()
    (stale / "00042.jpg").write_bytes(b"stale")

    written = write_video_frames(clip, tmp_path, "clip")
    assert not (written.folder / "00042.jpg").exists()
    assert remove_partials(tmp_path) == 1 and not stale.exists()


def test_remove_partials(tmp_path):
    def folder(name):
        (tmp_path / name).mkdir()
        (tmp_path / name / "00000.jpg").write_bytes(name.encode())
        return tmp_path / name

    folder(f".crashed.partial-{DEAD_PID}")
    folder(f".with.dots.partial-{DEAD_PID + 1}")
    folder(f".swapped.old-{DEAD_PID}")  # crash after the old folder was moved aside: restored
    folder(f".done.old-{DEAD_PID}")  # crash while deleting the old folder: removed
    folder("done")
    live = folder(temporary_sibling(tmp_path / "busy").name)  # a write in progress in this process
    folder(".running.partial-1")  # an older run's, of a live process (pid 1)
    folder(".cache")
    (tmp_path / f".file.partial-{DEAD_PID}").write_bytes(b"not a folder")

    assert remove_partials(tmp_path) == 4
    assert sorted(os.listdir(tmp_path)) == sorted(
        [live.name, ".running.partial-1", ".cache", f".file.partial-{DEAD_PID}", "done", "swapped"]
    )
    assert (tmp_path / "swapped" / "00000.jpg").read_bytes() == f".swapped.old-{DEAD_PID}".encode()
    assert (tmp_path / "done" / "00000.jpg").read_bytes() == b"done"
    assert live.is_dir()
    assert remove_partials(tmp_path) == 0
    assert remove_partials(tmp_path / "missing") == 0


def test_frames_complete(tmp_path, clip):
    assert not frames_complete(tmp_path, "clip")
    (tmp_path / "clip").mkdir()
    assert not frames_complete(tmp_path, "clip")  # an empty folder holds no frames
    (tmp_path / "clip").rmdir()
    write_video_frames(clip, tmp_path, "clip")
    assert frames_complete(tmp_path, "clip")
    assert not frames_complete(tmp_path, "clip.mp4")  # a file, not a folder


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50], ids=["empty", "text"])
def test_a_bad_video_leaves_no_folder(tmp_path, content):
    video = tmp_path / "bad.mp4"
    video.write_bytes(content)
    out = tmp_path / "out"
    with pytest.raises(VideoDecodeError) as caught:
        write_video_frames(video, out, "bad")
    assert caught.value.path == str(video)
    assert not out.exists() or os.listdir(out) == []


def test_a_missing_video(tmp_path):
    with pytest.raises(VideoDecodeError, match="file not found"):
        write_video_frames(tmp_path / "nope.mp4", tmp_path / "out", "nope")
    assert not (tmp_path / "out" / "nope").exists()


def test_an_output_folder_that_is_a_file_is_a_write_error(tmp_path, clip):
    (tmp_path / "out").write_bytes(b"")
    with pytest.raises(FrameWriteError, match="out"):
        write_video_frames(clip, tmp_path / "out", "clip")


@pytest.mark.parametrize(
    "arguments",
    [
        {"video_id": ""},
        {"video_id": ".hidden"},
        {"video_id": ".."},
        {"video_id": "a/b"},
        {"image_format": "gif"},
        {"quality": 0},
        {"quality": 101},
    ],
)
def test_invalid_arguments(tmp_path, clip, arguments):
    with pytest.raises(ValueError):
        write_video_frames(clip, tmp_path, **{"video_id": "clip", **arguments})
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]


def test_png_format_and_jpeg_alias(tmp_path, clip):
    assert (write_video_frames(clip, tmp_path, "a", image_format="PNG").folder / "00000.png").is_file()
    assert (write_video_frames(clip, tmp_path, "b", image_format="jpeg").folder / "00000.jpg").is_file()


# ---------------------------------------------------------------------------------------------
# Reading folders


def numbered_folder(tmp_path, names):
    """A folder whose image `name` shows the grey level `index` of its name in `names`."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, name in enumerate(names):
        image = np.full((8, 8, 3), index * 10, np.uint8)
        Image.fromarray(image).save(folder / name, "PNG")  # lossless whatever the suffix
    return folder


def test_natural_numeric_order(tmp_path):
    names = ["1.png", "2.png", "10.png", "11.png", "100.png"]
    folder = numbered_folder(tmp_path, list(reversed(names)))
    assert [p.name for p in list_frame_files(folder)] == names
    levels = [frame[0, 0, 0] for frame in read_frame_folder(folder, 0, 0)]
    assert levels == [40, 30, 20, 10, 0]


def test_zero_padded_and_mixed_names_sort_naturally(tmp_path):
    folder = numbered_folder(tmp_path, ["00010.jpg", "00002.JPG", "frame_2.jpeg", "frame_10.png", "00001.PNG"])
    assert [p.name for p in list_frame_files(folder)] == [
        "00001.PNG", "00002.JPG", "00010.jpg", "frame_2.jpeg", "frame_10.png"
    ]


def test_hidden_other_files_and_subfolders_are_ignored(tmp_path):
    folder = numbered_folder(tmp_path, ["00000.jpg", "00001.jpg"])
    (folder / ".00002.jpg").write_bytes(b"hidden")
    (folder / "notes.txt").write_text("x")
    (folder / "frames.gif").write_bytes(b"GIF89a")
    (folder / "sub.jpg").mkdir()
    assert [p.name for p in list_frame_files(folder)] == ["00000.jpg", "00001.jpg"]


def test_jpeg_folder_reads_as_video_frames(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    originals = [scene(i, 456, 256) for i in range(3)]
    for index, image in enumerate(originals):
        Image.fromarray(image).save(folder / f"{index:05d}.jpg", quality=95)
    read = list(read_frame_folder(folder))
    assert len(read) == 3
    for image, original in zip(read, originals):
        assert image.shape == (224, 224, 3) and image.dtype == np.uint8
        assert np.abs(image.astype(int) - original[16:240, 116:340]).mean() < 3


@pytest.mark.parametrize(
    "array, mode",
    [
        (np.full((20, 30), 77, np.uint8), "L"),
        (np.full((20, 30, 4), (10, 20, 30, 0), np.uint8), "RGBA"),
        (np.full((20, 30, 2), (77, 128), np.uint8), "LA"),
    ],
    ids=["grey", "rgba", "grey-alpha"],
)
def test_grey_and_alpha_pngs_become_rgb(tmp_path, array, mode):
    path = save(tmp_path / "f.png", array, mode)
    rgb = load_rgb(path)
    expected = (77, 77, 77) if mode != "RGBA" else (10, 20, 30)
    assert rgb.shape == (20, 30, 3) and rgb.dtype == np.uint8
    assert (rgb == expected).all()


def test_palette_png_becomes_rgb(tmp_path):
    picture = Image.fromarray(np.full((20, 30, 3), (200, 100, 50), np.uint8)).quantize(4)
    picture.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert (load_rgb(tmp_path / "p.png") == (200, 100, 50)).all()


def test_sixteen_bit_grey_png_keeps_its_top_eight_bits(tmp_path):
    levels = np.array([[0, 256, 32768, 65535]], np.uint16).repeat(4, axis=0)
    path = save(tmp_path / "g16.png", levels)
    assert Image.open(path).mode.startswith("I")
    assert load_rgb(path)[0, :, 0].tolist() == [0, 1, 128, 255]


def test_grey_frames_are_scaled_and_cropped(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    save(folder / "00000.png", np.full((144, 176), 90, np.uint8), "L")
    (frame,) = read_frame_folder(folder)
    assert frame.shape == (224, 224, 3) and (frame == 90).all()


def test_missing_folder(tmp_path):
    with pytest.raises(VideoDecodeError, match="not found") as caught:
        list(read_frame_folder(tmp_path / "nope"))
    assert caught.value.path == str(tmp_path / "nope")


def test_a_file_is_not_a_frame_folder(tmp_path):
    (tmp_path / "video.mp4").write_bytes(b"x")
    with pytest.raises(VideoDecodeError, match="not a folder"):
        list_frame_files(tmp_path / "video.mp4")


@pytest.mark.parametrize("files", [[], ["notes.txt", ".00000.jpg"]], ids=["empty", "no-images"])
def test_a_folder_without_images(tmp_path, files):
    for name in files:
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(VideoDecodeError, match="no .jpg"):
        list(read_frame_folder(tmp_path))


@pytest.mark.parametrize("content", [b"not an image", b""], ids=["garbage", "empty"])
def test_an_unreadable_image_is_named(tmp_path, content):
    folder = numbered_folder(tmp_path, ["00000.png", "00001.png"])
    (folder / "00002.jpg").write_bytes(content)
    frames = read_frame_folder(folder)
    assert next(frames).shape == (224, 224, 3)  # one image at a time: earlier frames still come
    next(frames)
    with pytest.raises(VideoDecodeError) as caught:
        next(frames)
    assert caught.value.path == str(folder / "00002.jpg")
    assert "unreadable image" in str(caught.value)


def test_a_truncated_jpeg_is_an_error(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(scene(0, 456, 256)).save(folder / "00000.jpg", quality=95)
    data = (folder / "00000.jpg").read_bytes()
    (folder / "00000.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="00000.jpg"):
        list(read_frame_folder(folder))


def test_an_image_smaller_than_the_crop(tmp_path):
    folder = numbered_folder(tmp_path, ["00000.png"])  # 8 x 8
    with pytest.raises(VideoDecodeError, match="smaller than the 224x224 crop"):
        list(read_frame_folder(folder, short_side=0, crop=224))


@pytest.mark.parametrize("short_side, crop", [(-1, 0), (0, -1), (200, 224)])
def test_invalid_read_arguments(tmp_path, short_side, crop):
    folder = numbered_folder(tmp_path, ["00000.png"])
    with pytest.raises(ValueError):
        list(read_frame_folder(folder, short_side, crop))


def test_a_rotated_video_round_trips_upright(tmp_path):
    # Phone videos: the decoder turns frames upright (a non-contiguous view) before they are saved.
    video = tmp_path / "rotated.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("ffv1", rate=5)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.set_display_rotation(90)
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(scene(index, 320, 180), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    written = write_video_frames(video, tmp_path, "rotated", image_format="png")

    assert load_rgb(written.folder / "00000.png").shape == (456, 256, 3)  # upright: portrait
    assert_same_frames(list(read_frame_folder(written.folder)), images(video, 256, 224))
