"""Folders of frame images, the S2VS training layout: ``{video_id}/00000.jpg, 00001.jpg, …``.

Two roles:

* Reading a frame folder as if it were a video (``extract-features --loader frames``). Each
  image gets the same libswscale bicubic scale and centre crop as `video.sample_frames`, and
  the scale is skipped when the image already has the target size, so frames written at the
  256 short side are not resampled twice: lossless frames read back are bit-identical to
  frames decoded straight from the video.
* Writing the frames of one video (the work unit of ``s2vs extract-frames``). A folder only
  ever appears complete: each frame is encoded in memory, written, checked and synced
  (`atomic.write_new_file`) into a working folder with a short name beside it
  (`atomic.temporary_sibling`, so a 251-byte id still fits), which is renamed into place once
  every frame is on disk. PIL's own ``save(path)`` is not used: its encoder ignores a short
  ``write()``, so a nearly full disk gave cut-off JPEGs and no error.

JPEG frames are written with 4:4:4 chroma (no subsampling). The frames are already scaled
down from the video's own 4:2:0 chroma, so PIL's default 4:2:0 would halve the colour
resolution a second time. On a real 139-frame clip at quality 95, 4:4:4 takes about a
quarter more bytes than 4:2:0 and its mean error against the decoded frames is 0.89 instead
of 1.12 grey levels; 4:2:0 needs quality 98, and 14% more bytes, to get as close.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import Interpolation
from PIL import Image

from ..atomic import (OutputWriteError, sync_folder, process_alive, temporary_sibling, temporary_writer,
                      write_bytes_atomically, write_new_file)
from ..errors import ConfigError, S2VSError, VideoDecodeError
from .source import FrameSource, InputSet, VideoInput, visible_entries
from .video import DecodeSummary, VideoPath, sample_frames, scaled_size

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGE_FORMATS = {"jpg": ("JPEG", ".jpg"), "jpeg": ("JPEG", ".jpg"), "png": ("PNG", ".png")}
FRAME_NAME = "{:05d}"  # 00000.jpg, 00001.jpg, … as ffmpeg's %05d in the original scripts
# Inside a working folder: the new frames, the frames an overwrite replaces, and whose they are.
NEW_FRAMES, PREVIOUS_FRAMES, VIDEO_ID_RECORD = "frames", "previous", "video-id"
PARTIAL_MARK, OLD_MARK = ".partial-", ".old-"  # leftovers of runs before issue 25: ``.{id}.partial-{pid}``


class FramesExistError(FileExistsError):
    """The frame folder of a video already exists (the caller decides: skip or overwrite)."""


class FrameWriteError(S2VSError):
    """Frames could not be written to disk; the message names the path and the reason."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # sent whole from a worker process, path and all
        return type(self), (self.path, self.reason)


@dataclass
class FramesWritten:
    """What `write_video_frames` wrote for one video."""

    video_id: str
    folder: Path  # out_dir / video_id, complete
    frames: int  # number of images written
    duration: float  # seconds of video decoded
    lost_frames: int = 0  # packets that failed to decode
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Reading


def list_frame_files(folder: VideoPath) -> list[Path]:
    """Image files directly inside `folder`, in natural numeric order (2.jpg before 10.jpg)."""
    folder = Path(folder)
    if not folder.exists():
        raise VideoDecodeError(folder, "frame folder not found")
    if not folder.is_dir():
        raise VideoDecodeError(folder, "not a folder of frames")
    try:
        files = [
            Path(entry.path)
            for entry in os.scandir(folder)
            if not entry.name.startswith(".")
            and entry.name.lower().endswith(IMAGE_SUFFIXES)
            and entry.is_file()
        ]
    except OSError as error:
        raise VideoDecodeError(folder, f"cannot list the folder: {error.strerror or error}") from error
    if not files:
        raise VideoDecodeError(folder, "no .jpg, .jpeg or .png frames in the folder")
    return sorted(files, key=_natural_key)


def read_frame_folder(folder: VideoPath, short_side: int = 256, crop: int = 224) -> Iterator[np.ndarray]:
    """Yield the frames of `folder` as uint8 RGB [crop, crop, 3], scaled and cropped like a video.

    `short_side` 0 keeps each image's size and `crop` 0 keeps the whole picture. One image is
    in memory at a time. Raises VideoDecodeError (naming the folder or the file) on bad input.
    """
    if short_side < 0 or crop < 0:
        raise ValueError("short_side and crop must not be negative")
    if short_side and crop > short_side:
        raise ValueError(f"crop ({crop}) must not be larger than short_side ({short_side})")
    for path in list_frame_files(folder):
        yield shape_frame(load_rgb(path), short_side, crop, path)


def load_rgb(path: VideoPath) -> np.ndarray:
    """Read one image file as a uint8 RGB [H, W, 3] array, or raise VideoDecodeError naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode.startswith("I"):
                # 16-bit grey PNG: PIL's convert would clip it to 255, so keep the top 8 bits.
                grey = (np.asarray(image, dtype=np.int64) >> 8).clip(0, 255).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            # Grey, palette, CMYK and alpha images alike; alpha is dropped, not composited,
            # as the original training loader's ``convert("RGB")`` does.
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError as error:
        raise VideoDecodeError(path, "frame file not found") from error
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        # PIL reports truncated and corrupt data as OSError or SyntaxError.
        raise VideoDecodeError(path, f"unreadable image: {error}") from error


class FrameFolderSource(FrameSource):
    """Folders of frame images written at `fps` (`--loader frames`): frame k is shown at k / fps."""

    name, noun, default_pattern = "frames", "frame folder", "{id}"
    hint = " (frame folders hold .jpg/.png files)"

    def frames(self) -> Iterator[tuple[np.ndarray, float]]:
        index = 0
        try:
            for index, image in enumerate(read_frame_folder(self.path, self.short_side, self.crop), start=1):
                yield image, (index - 1) / self.fps
        except VideoDecodeError as error:
            if error.path != str(Path(self.path)):  # a bad frame file: the failure is the folder's, naming the file
                raise VideoDecodeError(self.path, f"{os.path.basename(error.path)}: {error.reason}") from None
            raise
        self.duration = index / self.fps

    @classmethod
    def find(cls, path: Path) -> InputSet:
        if not path.is_dir():
            raise ConfigError(f"{path}: --loader frames takes frame folders, not files")
        if is_frame_folder(path):
            return InputSet([VideoInput(path.resolve().name, path)])  # '.' is named by the folder
        found = InputSet(inputs=[])
        for entry in visible_entries(path):
            if is_frame_folder(entry):
                found.inputs.append(VideoInput(entry.name, entry))
            else:
                found.ignored.append(entry)
        return found

    @classmethod
    def readable(cls, matches: list[Path]) -> list[Path]:
        return [m for m in matches if m.is_dir()]

    @classmethod
    def id_of(cls, path: Path) -> str:
        return path.name


def is_frame_folder(path: Path) -> bool:
    """True when `path` is a folder holding image files directly."""
    try:
        return path.is_dir() and any(not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_SUFFIXES)
                                     for entry in os.scandir(path))
    except OSError:
        return False


def _natural_key(path: Path) -> tuple:
    """Sort key comparing runs of digits as numbers: 00002 < 00010, 2 < 10."""
    # re.split with a capture group puts text at even and digits at odd positions, so the
    # items compared at each position always have the same type.
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts)), path.name


def shape_frame(image: np.ndarray, short_side: int, crop: int, path: VideoPath) -> np.ndarray:
    """Scale (unless already at size) and centre-crop one image exactly as video.py does."""
    height, width = image.shape[:2]
    if short_side:
        new_width, new_height = scaled_size(width, height, short_side)
        if (new_width, new_height) != (width, height):
            image = _scale(image, new_width, new_height)
    if not crop:
        return image
    height, width = image.shape[:2]
    if crop > min(width, height):
        raise VideoDecodeError(path, f"frame is {width}x{height}, smaller than the {crop}x{crop} crop")
    top = int((height - crop) / 2)
    left = int((width - crop) / 2)
    return image[top : top + crop, left : left + crop]


def _scale(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an RGB image with libswscale's bicubic scaler, as video.py does (RGB stays RGB)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return frame.reformat(
        width=width, height=height, format="rgb24", interpolation=Interpolation.BICUBIC
    ).to_ndarray()


# ---------------------------------------------------------------------------------------------
# Writing


def write_video_frames(
    video: VideoPath,
    out_dir: VideoPath,
    video_id: str,
    fps: float = 1.0,
    resize: int = 256,
    quality: int = 95,
    image_format: str = "jpg",
    threads: int = 0,
    overwrite: bool = False,
) -> FramesWritten:
    """Write the frames of `video` sampled at `fps` to `out_dir/video_id/00000.jpg, …`, atomically.

    `resize` is the short side (0 keeps the native size). Raises FramesExistError (a
    FileExistsError) when the folder exists and `overwrite` is False, VideoDecodeError for a
    bad video and FrameWriteError for disk problems; a failure leaves the folder as it was.
    """
    _check_video_id(video_id)
    if image_format.lower() not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {', '.join(IMAGE_FORMATS)}, got {image_format!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    pil_format, suffix = IMAGE_FORMATS[image_format.lower()]
    out_dir = Path(out_dir)
    final = out_dir / video_id
    if final.exists() and not overwrite:
        # Checked before decoding so that a skipped video costs nothing.
        raise FramesExistError(f"{final}: frames already exist")

    work = temporary_sibling(final)  # short whatever the id; NEW_FRAMES inside becomes `final`
    new_frames = work / NEW_FRAMES
    _guard_disk(out_dir, lambda: new_frames.mkdir(parents=True))
    try:
        summary = DecodeSummary()
        count = 0
        frames = sample_frames(video, fps, short_side=resize, crop=0, threads=threads, summary=summary)
        try:
            for count, sampled in enumerate(frames, start=1):
                name = FRAME_NAME.format(count - 1) + suffix
                _guard_disk(final / name, lambda: _save_image(sampled.image, new_frames / name, pil_format, quality))
        finally:
            frames.close()  # closes the video file at once, also when a save fails
        _guard_disk(final, lambda: _move_into_place(work, final, overwrite))
    except BaseException:
        # Also on KeyboardInterrupt: a stopped run leaves nothing behind, unless the previous frames
        # could not be put back (then remove_partials restores them).
        if not (work / PREVIOUS_FRAMES).exists():
            shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)  # with the frames an overwrite replaced
    return FramesWritten(video_id, final, count, summary.duration, summary.lost_frames, summary.warnings)


def frames_complete(out_dir: VideoPath, video_id: str) -> bool:
    """Whether `out_dir/video_id` holds frames; such a folder only appears once complete."""
    folder = Path(out_dir) / video_id
    try:
        return any(
            not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_SUFFIXES)
            for entry in os.scandir(folder)
        )
    except OSError:  # missing, not a folder, unreadable
        return False


def remove_partials(out_dir: VideoPath) -> int:
    """Clean up after crashed runs in `out_dir`; return how many leftover folders were handled.

    A working folder (``.{id prefix}.{pid}-{random}.s2vs-tmp``) is deleted, after its previous frames,
    if it holds any (a crash during an overwrite swap), are renamed back to ``{id}`` when that is
    missing. Older runs' ``.{id}.partial-{pid}`` and ``.{id}.old-{pid}`` are handled the same way.
    Leftovers of processes still running on this machine (this one included) are left alone.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return 0
    handled = 0
    for entry in out_dir.iterdir():
        older = _parse_leftover(entry.name)
        pid = temporary_writer(entry.name) if older is None else older[2]
        if pid is None or not entry.is_dir() or entry.is_symlink():
            continue
        if (pid == os.getpid() and older is None) or (pid != os.getpid() and process_alive(pid)):
            continue  # in use; an older name with our pid is not ours (we no longer make them)
        if older is None:
            handled += _guard_disk(entry, lambda: _recover(entry, out_dir))
        else:
            _guard_disk(entry, lambda: _put_back(entry, out_dir / older[0], restore=older[1] == OLD_MARK))
            handled += 1
    return handled


def _recover(work: Path, out_dir: Path) -> bool:
    """Undo a killed writer's working folder: previous frames back in place, the rest deleted."""
    previous = work / PREVIOUS_FRAMES
    if previous.is_dir():
        try:
            video_id = os.fsdecode((work / VIDEO_ID_RECORD).read_bytes())
            _check_video_id(video_id)
        except (OSError, ValueError):
            return False  # written before every swap; without it, keep the frames rather than guess
        _put_back(previous, out_dir / video_id)
    shutil.rmtree(work)
    return True


def _put_back(previous: Path, final: Path, restore: bool = True):
    """Rename frames moved aside by an overwrite back to `final`, or delete them when it was replaced."""
    if restore and not final.exists():
        os.rename(previous, final)
    else:
        shutil.rmtree(previous)


def _check_video_id(video_id: str):
    """Refuse ids that are not one plain, visible folder name."""
    if not video_id or video_id in (".", "..") or video_id.startswith("."):
        raise ValueError(f"invalid video id {video_id!r}: must be a non-empty name not starting with '.'")
    if any(separator in video_id for separator in ("/", os.sep, "\0")):
        raise ValueError(f"invalid video id {video_id!r}: must not contain a path separator")


def _save_image(image: np.ndarray, path: Path, pil_format: str, quality: int):
    """Write one RGB frame whole (encoded in memory, then written and checked); JPEG at `quality`
    with 4:4:4 chroma, PNG lossless."""
    picture, encoded = Image.fromarray(np.ascontiguousarray(image), "RGB"), io.BytesIO()
    if pil_format == "JPEG":
        picture.save(encoded, "JPEG", quality=quality, subsampling=0)
    else:
        # zlib level 1: frames are small and mostly photographic, so higher levels cost much
        # more time for a few percent of size.
        picture.save(encoded, "PNG", compress_level=1)
    write_new_file(path, encoded.getvalue())


def _move_into_place(work: Path, final: Path, overwrite: bool):
    """Rename the finished frames in `work` to `final`, swapping out an old folder when overwriting."""
    new_frames = work / NEW_FRAMES
    if not final.exists():
        try:
            # os.rename would silently replace an empty directory, so refuse any that appeared.
            os.rename(new_frames, final)
            sync_folder(final.parent)
            return
        except OSError:
            if not final.exists():
                raise
        # Another process put a folder there while we were writing.
    if not overwrite:
        raise FramesExistError(f"{final}: frames already exist")
    # The old folder moves into `work` and is deleted with it once the new one is in place; a crash
    # in between leaves it there with its id, and remove_partials puts it back.
    write_bytes_atomically(work / VIDEO_ID_RECORD, os.fsencode(final.name))  # any name the system allows
    previous = work / PREVIOUS_FRAMES
    os.rename(final, previous)
    try:
        os.rename(new_frames, final)
    except OSError:
        os.rename(previous, final)  # put the previous frames back
        raise
    sync_folder(final.parent)


def _guard_disk(path: Path, action):
    """Run `action`, turning a disk error into FrameWriteError naming `path`; FramesExistError passes."""
    try:
        return action()
    except FramesExistError:
        raise
    except OutputWriteError as error:
        raise FrameWriteError(path, error.reason) from None
    except OSError as error:
        raise FrameWriteError(path, error.strerror or str(error)) from error


def _parse_leftover(name: str) -> tuple[str, str, int] | None:
    """Split an older run's ``.{id}.partial-{pid}`` or ``.{id}.old-{pid}`` into (id, mark, pid); None otherwise."""
    match = re.fullmatch(r"\.(.+)(\.partial-|\.old-)(\d+)", name)
    if match is None:
        return None
    return match.group(1), match.group(2), int(match.group(3))
