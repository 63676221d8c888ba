"""Issue 25, frame folders (cases 1, 17, 18): every frame written whole or the run stops naming the path,
temporary names that fit whatever the video's name, and damaged frames read as one line naming the file.
Real tmpfs disks, a real kill -9, real clips and JPEGs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from media import write_moving_shape_folders, write_video
from PIL import Image
from typer.testing import CliRunner

from conftest import resize_tmpfs
from s2vs_cli.atomic import temporary_sibling
from s2vs_cli.cli import app
from s2vs_cli.errors import VideoDecodeError
from s2vs_cli.media.frames import list_frame_files, load_rgb, remove_partials
from s2vs_cli.media.inputs import VideoInput
from s2vs_cli.media.source import open_source
from s2vs_cli.training.clips import ClipSource

runner = CliRunner()
DEAD_PID = 4_194_305  # above Linux's largest pid_max, so no process can have it
LONG_STEM = "v" * 251  # with ".mp4", the longest file name Linux allows (255 bytes)


def _clip(path: Path, seconds: int = 2, seed: int = 0) -> Path:
    """A 4 fps clip of smooth random colour fields: about 24 KB a JPEG frame at 256 x 341."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (seconds * 4, 6, 8, 3)).astype(np.uint8)
    return write_video(path, [np.kron(b, np.ones((12, 12, 1), np.uint8)) for b in base], rate=4)


def _folders(tmp_path: Path, videos: int, frames: int) -> Path:
    """Frame folders video0, video1, ... as extract-frames writes them."""
    (tmp_path / "frames").mkdir()
    return write_moving_shape_folders(tmp_path / "frames", videos=videos, frames=frames, height=256, width=320)


@pytest.fixture()
def tiny_disk(tmp_path, mount_tmpfs):
    """Mount a real tmpfs of the asked size (KB) under tmp_path; unmounted after the test."""
    count = iter(range(100))
    return lambda kilobytes: mount_tmpfs(tmp_path / f"disk{next(count)}", f"{kilobytes}k")


def _frames(*args: str):
    return runner.invoke(app, ["extract-frames", *args, "--workers", "0"])


def _one_error_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    return lines[0]


# --- case 1: a nearly full disk ------------------------------------------------------------------

def test_case_1_a_nearly_full_disk_never_leaves_a_cut_off_frame_and_the_rerun_redoes_the_video(tmp_path, tiny_disk):
    """44 KB free, a 2-frame clip (23.6 + 24.5 KB): PIL's encoder ignored the short write(), so the run
    wrote 00001.jpg cut at 12 KB, exited 0, and the rerun counted the video as done."""
    video = _clip(tmp_path / "short.mp4")
    reference = tmp_path / "reference"
    assert _frames(str(video), "-o", str(reference)).exit_code == 0
    disk = tiny_disk(44)
    out = disk / "out"

    result = _frames(str(video), "-o", str(out))
    assert result.exit_code == 1
    assert _one_error_line(result) == f"error: {out / 'short' / '00001.jpg'}: No space left on device"
    assert sorted(os.listdir(out)) == [".s2vs-frames.json"]  # no cut-off folder, no working folder
    assert not (disk / "out.failed.tsv").exists()

    resize_tmpfs(disk, "1m")  # space freed
    again = _frames(str(video), "-o", str(out))
    assert again.exit_code == 0 and "1 video written (2 frames), 0 already done" in again.output, again.output
    names = [p.name for p in list_frame_files(reference / "short")]
    assert names == ["00000.jpg", "00001.jpg"]
    for name in names:  # byte for byte the frames of a run with space to spare
        assert (out / "short" / name).read_bytes() == (reference / "short" / name).read_bytes()


@pytest.mark.parametrize("image_format, cut", [("jpg", 8192), ("jpg", -2), ("png", 16384)])
def test_case_1_a_cut_off_frame_from_an_older_run_is_one_line_naming_it(tmp_path, image_format, cut):
    """What the older runs left (00001.jpg cut at 4-12 KB, or only its end marker lost) stops neither
    `--loader frames` nor training in silence or with a traceback: the file is named."""
    folders = _folders(tmp_path, videos=1, frames=3)
    folder = folders / "video0"
    if image_format == "png":
        for jpeg in list_frame_files(folder):
            Image.fromarray(load_rgb(jpeg)).save(jpeg.with_suffix(".png"))
            jpeg.unlink()
    damaged = folder / f"00001.{image_format}"
    data = damaged.read_bytes()
    damaged.write_bytes(data[:cut])

    with pytest.raises(VideoDecodeError) as read:  # extract-features --loader frames
        list(open_source("frames", folder).frames())
    assert str(read.value).startswith(f"{folder}: {damaged.name}: unreadable image: image file is truncated")
    source = ClipSource([VideoInput("video0", folder)], "frames")  # the training reader
    with pytest.raises(VideoDecodeError) as trained:
        source.window(0, 3, torch.Generator().manual_seed(0))
    assert str(trained.value).startswith(f"{damaged}: unreadable image: image file is truncated")


# --- case 17: long file stems ---------------------------------------------------------------------

def test_case_17_a_251_byte_stem_is_written_overwritten_and_listed(tmp_path):
    """The working folder was ``.{id}.partial-{pid}``: 'File name too long' for stems of 246+ bytes."""
    video = _clip(tmp_path / f"{LONG_STEM}.mp4")
    out = tmp_path / "out"
    first = _frames(str(video), "-o", str(out))
    assert first.exit_code == 0 and "1 video written (2 frames)" in first.output, first.output
    assert sorted(os.listdir(out / LONG_STEM)) == ["00000.jpg", "00001.jpg"]
    again = _frames(str(video), "-o", str(out), "--overwrite")  # the swap's folder for the old frames too
    assert again.exit_code == 0 and "1 video written (2 frames)" in again.output, again.output
    assert sorted(os.listdir(out)) == [".s2vs-frames.json", LONG_STEM]

    # failed.tsv beside an output folder of 240 bytes: its temporary was ".{name}.failed.tsv.{pid}" (258+)
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "bad.mp4").write_bytes(b"not a video\n" * 10)
    long_out = tmp_path / ("o" * 240)
    listed = _frames(str(tmp_path / "videos"), "-o", str(long_out))
    assert listed.exit_code == 3, listed.output
    failed = (tmp_path / f"{long_out.name}.failed.tsv").read_text().splitlines()
    assert len(failed) == 2 and failed[1].startswith("bad\t")


def test_case_17_a_kill_during_an_overwrite_of_a_long_id_loses_no_frames(tmp_path):
    """A real kill -9 between moving the old frames aside and putting the new ones in place: the old
    frames come back under their 251-byte name (the id is recorded in the working folder, not its name)."""
    video = _clip(tmp_path / f"{LONG_STEM}.mp4")
    out = tmp_path / "out"
    assert _frames(str(video), "-o", str(out)).exit_code == 0
    before = {p.name: p.read_bytes() for p in (out / LONG_STEM).iterdir()}
    script = textwrap.dedent(f"""
        import os, signal, sys
        from s2vs_cli.media import frames
        rename = os.rename
        def rename_then_die(source, target):
            rename(source, target)
            if os.path.basename(source) == {LONG_STEM!r}:  # the old frames, just moved aside
                os.kill(os.getpid(), signal.SIGKILL)
        frames.os.rename = rename_then_die
        frames.write_video_frames(sys.argv[1], sys.argv[2], {LONG_STEM!r}, fps=2.0, overwrite=True)
    """)
    killed = subprocess.run([sys.executable, "-c", script, str(video), str(out)], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    leftovers = [name for name in os.listdir(out) if name.startswith(".v")]
    assert not (out / LONG_STEM).exists() and len(leftovers) == 1 and len(leftovers[0]) < 160

    assert remove_partials(out) == 1
    assert sorted(os.listdir(out)) == [".s2vs-frames.json", LONG_STEM]
    assert {p.name: p.read_bytes() for p in (out / LONG_STEM).iterdir()} == before


def test_case_17_leftovers_of_older_runs_and_of_ids_in_subfolders_are_cleaned(tmp_path):
    out = tmp_path / "out"
    (out / "set").mkdir(parents=True)
    older = out / f".a.partial-{DEAD_PID}"
    older.mkdir()
    (older / "00000.jpg").write_bytes(b"cut")
    moved_aside = out / "set" / f".b.old-{DEAD_PID}"  # an older run's overwrite of 'set/b', killed mid-swap
    moved_aside.mkdir()
    (moved_aside / "00000.jpg").write_bytes(b"old frames")
    working = temporary_sibling(out / "set" / "c")  # a killed run's working folder for 'set/c'
    dead = working.with_name(working.name.replace(f".{os.getpid()}-", f".{DEAD_PID}-"))
    (dead / "frames").mkdir(parents=True)
    (tmp_path / "set").mkdir()
    _clip(tmp_path / "set" / "c.mp4")
    listing = tmp_path / "list.txt"
    listing.write_text("set/c\n")

    result = runner.invoke(app, ["extract-frames", "--dataset-path", str(tmp_path), "--list", str(listing),
                                 "--pattern", "{id}.mp4", "-o", str(out), "--workers", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(out)) == [".s2vs-frames.json", "set"]
    assert sorted(os.listdir(out / "set")) == ["b", "c"]
    assert (out / "set" / "b" / "00000.jpg").read_bytes() == b"old frames"


# --- case 18: the path in disk errors -------------------------------------------------------------

def test_case_18_a_full_disk_names_the_file_from_a_worker_process(tmp_path, tiny_disk):
    """Was 'failed: short: No space left on device' (exit 3, the path dropped), and the run went on."""
    video = _clip(tmp_path / "short.mp4", seconds=3)
    out = tiny_disk(8) / "out"  # room for the lock and the settings, not for a frame
    result = runner.invoke(app, ["extract-frames", str(video), "-o", str(out), "--workers", "1"])
    assert result.exit_code == 1
    assert _one_error_line(result) == f"error: {out / 'short' / '00000.jpg'}: No space left on device"
    assert sorted(os.listdir(out)) == [".s2vs-frames.json"]
