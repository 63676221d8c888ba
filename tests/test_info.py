"""`s2vs info` and the facts of source videos: headers only, what a store holds, the index's state read-only."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from media import write_video
from s2vs_cli.cli import app
from s2vs_cli.media.facts import VideoFacts, stored_video_facts, video_facts
from s2vs_cli.storage.bookkeeping import Failure, failures_path, write_failures
from s2vs_cli.storage import index as index_module
from s2vs_cli.storage.index import cached_index_dir, index_dir_for
from s2vs_cli.storage.index_state import IndexState, index_state
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import FeatureStore, StoreIdentity
from s2vs_cli.storage.store_summary import summarize_store

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "videos"
RANDOM = ["--backbone-weights", "random", "--pca", "random", "--precision", "fp32", "--dtype", "float32",
          "--fps", "1", "-j", "0", "-q"]
IDENTITY = StoreIdentity("test", "test", 1.0, 8, dtype="float32")
FACT_KEYS = {"duration", "width", "height", "fps", "bitrate", "size", "source", "error"}
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("offline")  # conftest: no downloads, empty caches


def _clip(path: Path, seconds: int, seed: int) -> Path:
    """A 64 x 48 clip at 4 fps of random colour blocks."""
    rng = np.random.default_rng(seed)
    return write_video(path, [np.kron(b, np.ones((8, 8, 1), np.uint8))
                              for b in rng.integers(0, 256, (seconds * 4, 6, 8, 3)).astype(np.uint8)], rate=4)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    """A folder with clips a (3 s) and b (2 s), c (2 s) aside, and store.h5 of a and b by extract-features."""
    folder = tmp_path_factory.mktemp("info")
    (folder / "clips").mkdir()
    _clip(folder / "clips" / "a.mp4", 3, 0)
    _clip(folder / "clips" / "b.mp4", 2, 1)
    _clip(folder / "c.mp4", 2, 2)
    here = os.getcwd()
    os.chdir(folder)  # inputs named relative to the current folder: their sources are recorded absolute
    try:
        result = runner.invoke(app, ["extract-features", "clips", "-o", "store.h5", *RANDOM])
    finally:
        os.chdir(here)
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture()
def store(extracted, tmp_path) -> Path:
    """A copy of the extracted store, free to change (its sources stay where they were)."""
    return Path(shutil.copy(extracted / "store.h5", tmp_path / "store.h5"))


def _info(*args: str):
    return runner.invoke(app, ["info", *map(str, args)])


def _json(*args: str) -> dict:
    result = _info(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _write(path: Path, videos: dict[str, int], keep_existing: bool = False, **attrs) -> Path:
    """A store of random unit features: id -> frame count; `attrs` on every video."""
    rng = np.random.default_rng(len(videos))
    with PartWriter(path.with_name(path.name + ".parts"), IDENTITY, "test", dtype="float32") as writer:
        for video_id, frames in videos.items():
            x = rng.standard_normal((frames, 1, 8)).astype(np.float32)
            writer.add(video_id, x / np.linalg.norm(x, axis=-1, keepdims=True), np.arange(frames, dtype=float), **attrs)
    merge_parts(path, writer.written, IDENTITY, "test", keep_existing=keep_existing)
    return path


# --- facts of a source ----------------------------------------------------------------------------

@pytest.mark.skipif(not SHARED_VIDEOS.is_dir(), reason=f"{SHARED_VIDEOS} not found: the ../shared clips are absent")
@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe is not installed")
@pytest.mark.parametrize("name", ["s2vs_example.mp4", "again.mkv", "carphone_pristine.mp4"])
def test_facts_of_a_real_clip_are_what_ffprobe_says(name):
    path = SHARED_VIDEOS / name
    probed = json.loads(subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-of", "json", "-show_entries",
         "stream=width,height,avg_frame_rate,duration:format=duration,bit_rate,size", str(path)],
        capture_output=True, text=True, check=True).stdout)
    stream, container = probed["streams"][0], probed["format"]
    facts = video_facts(path)
    assert facts.error is None and (facts.width, facts.height) == (stream["width"], stream["height"])
    assert facts.fps == pytest.approx(float(Fraction(stream["avg_frame_rate"])))
    # The video stream's own duration where the container states one (MP4), else the container's (Matroska).
    assert facts.duration == pytest.approx(float(stream.get("duration", container["duration"])), abs=1e-3)
    assert facts.size == int(container["size"]) == path.stat().st_size
    assert facts.bitrate == pytest.approx(int(container["bit_rate"]), rel=1e-3)
    assert set(facts.as_dict()) == FACT_KEYS and json.dumps(facts.as_dict())


def test_facts_of_a_missing_or_unreadable_source_say_why_and_raise_nothing(tmp_path):
    gone = video_facts(tmp_path / "gone.mp4")
    assert gone == VideoFacts(str(tmp_path / "gone.mp4"), error="file not found")
    (tmp_path / "text.mp4").write_text("not a video")
    assert video_facts(tmp_path / "text.mp4").error.startswith("not a video file")
    (tmp_path / "empty").mkdir()
    assert video_facts(tmp_path / "empty").error == "no .jpg, .jpeg or .png frames in the folder"


def test_facts_of_a_written_clip(tmp_path):
    facts = video_facts(_clip(tmp_path / "clip.mp4", 2, 0))
    assert (facts.width, facts.height, facts.fps) == (64, 48, 4.0) and facts.duration == pytest.approx(2.0)
    assert facts.bitrate > 0 and facts.pixels == 64 * 48


def test_facts_of_a_frame_folder_come_from_its_images(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for k in range(3):
        Image.new("RGB", (40, 30), (k, 0, 0)).save(folder / f"{k:05d}.png")
    size = sum(f.stat().st_size for f in folder.iterdir())
    facts = video_facts(folder, fps=2.0)
    assert (facts.duration, facts.width, facts.height, facts.fps, facts.size) == (1.5, 40, 30, 2.0, size)
    assert facts.bitrate == round(8 * size / 1.5) and facts.error is None
    unknown_rate = video_facts(folder)  # the rate frames were written at is the store's to tell
    assert (unknown_rate.duration, unknown_rate.bitrate, unknown_rate.width) == (None, None, 40)
    (folder / "00003.png").write_text("not an image")  # the first image is the one read
    (folder / "00000.png").write_text("not an image")
    assert video_facts(folder, 2.0).error.startswith("00000.png: unreadable image")


def test_stored_facts_are_the_recorded_sources_and_fall_back_on_the_stored_frames(extracted, store):
    with FeatureStore(store) as opened:
        source = Path(opened.source("a"))
        assert source.is_absolute() and source.samefile(extracted / "clips" / "a.mp4")
        facts = stored_video_facts(opened, "a")
        assert facts == video_facts(source) and facts.duration == pytest.approx(3.0) and facts.width == 64
    _write(tmp := store.with_name("moved.h5"), {"x": 4})  # a store whose videos record no source
    with FeatureStore(tmp) as opened:
        assert stored_video_facts(opened, "x") == VideoFacts(None, duration=4.0, error="the store records no source")
    with FeatureStore(_write(store.with_name("gone.h5"), {"y": 5}, source=str(extracted / "moved.mp4"))) as opened:
        gone = stored_video_facts(opened, "y")
    assert (gone.duration, gone.error, gone.width) == (5.0, "file not found", None)


# --- s2vs info --------------------------------------------------------------------------------------

def test_info_of_an_extracted_store(store):
    summary = _json(store)["stores"][0]
    assert summary["videos"] == 2 and summary["frames"] == 5
    assert summary["frames_per_video"] == {"min": 2, "median": 2.5, "max": 3}
    made = summary["made_with"]
    assert made["backbone"] == "ResNet-50 random (seed 0)" and made["whitening"] == "random (seed 0)"
    assert (made["fps"], made["dims"], made["dtype"], made["loader"]) == (1.0, 512, "float32", "video")
    assert summary["random_weights"] is True and summary["s2vs_version"]
    assert summary["lost"] == [] and summary["failed"] == [] and summary["failures_file"] is None
    assert summary["index"]["state"] == "none" and summary["index"]["folder"] == str(index_dir_for(store))
    shown = _info(store)
    assert shown.exit_code == 0 and "2 (5 frames; per video 2 min, 2.5 median, 3 max)" in shown.stdout
    assert "yes: a test of the pipeline" in shown.stdout and "ResNet-50 random (seed 0)" in shown.stdout
    assert not index_dir_for(store).exists()  # nothing built


def test_ids_are_printed_alone_one_a_line(store, tmp_path):
    other = _write(tmp_path / "other.h5", {"set/x": 2, "z": 3})
    result = _info(store, other, "--ids")
    assert result.exit_code == 0 and result.stdout == "a\nb\nset/x\nz\n"
    refused = _info(store, "--ids", "--json")
    assert refused.exit_code == 2 and "--ids prints plain lines" in refused.output


def test_index_state_none_then_up_to_date_then_stale_after_a_new_video(extracted, store):
    assert index_state(store).state == "none"
    assert runner.invoke(app, ["index", str(store), "-q"]).exit_code == 0
    state = _json(store)["stores"][0]["index"]
    assert state == {"state": "up to date", "folder": str(index_dir_for(store)), "reason": "", "videos": 2,
                     "kind": "flat", "in_cache": False}
    shutil.copy(extracted / "c.mp4", extracted / "clips" / "c.mp4")
    try:  # extract-features adds c to the store; the index is left as it was
        added = runner.invoke(app, ["extract-features", str(extracted / "clips"), "-o", str(store), *RANDOM])
    finally:
        (extracted / "clips" / "c.mp4").unlink()
    assert added.exit_code == 0, added.output
    stale = _json(store)["stores"][0]
    assert stale["videos"] == 3 and stale["index"]["state"] == "stale" and stale["index"]["videos"] == 2
    assert stale["index"]["reason"] == "1 new video not indexed yet: `s2vs index` or the next search adds it"
    assert "stale" in _info(store).stdout
    assert runner.invoke(app, ["index", str(store), "-q"]).exit_code == 0
    assert index_state(store).state == "up to date" and index_state(store).videos == 3


def test_index_state_says_what_makes_a_rebuild(tmp_path):
    store = _write(tmp_path / "s.h5", {"a": 20, "b": 40})
    assert runner.invoke(app, ["index", str(store), "-q"]).exit_code == 0
    _write(store, {"a": 20, "b": 40})  # rewritten with the same videos: only the stamp is old
    assert (index_state(store).state, index_state(store).reason) == \
        ("up to date", "the file was rewritten with the same videos (`s2vs index` or the next search renews its stamp)")
    _write(store, {"a": 21})  # 'b' left, 'a' changed
    state = index_state(store)
    assert (state.state, state.reason) == \
        ("stale", "'b' left the store (and 1 more): `s2vs index` or the next search rebuilds it")
    (index_dir_for(store) / "frames_crc.npy").write_bytes(b"garbage")
    damaged = summarize_store(store).index
    assert damaged.state == "stale" and "frames_crc.npy is 7 bytes" in damaged.reason and \
        damaged.reason.endswith("the next search rebuilds it")


def test_info_lists_damaged_and_failed_videos(tmp_path):
    store = _write(tmp_path / "s.h5", {"ok": 3})
    _write(store, {"cut": 4}, keep_existing=True, lost_frames=2, lost_seconds=1.5)
    _write(store, {"odd": 2}, keep_existing=True, lost_frames=np.arange(3), lost_seconds="n/a")  # not ours: no loss
    write_failures(failures_path(store), [Failure("bad", "/videos/bad.mp4", "not a video file: Invalid data")])
    summary = _json(store)["stores"][0]
    assert summary["videos"] == 3 and summary["frames"] == 9
    assert summary["lost"] == [{"id": "cut", "frames": 2, "seconds": 1.5}]
    assert summary["failed"] == [{"id": "bad", "path": "/videos/bad.mp4", "reason": "not a video file: Invalid data"}]
    assert summary["failures_file"] == str(failures_path(store)) and summary["made_with"]["backbone"] == "test"
    shown = _info(store).stdout
    assert "cut: lost 2 frames and 1.5 s" in shown and "bad: not a video file: Invalid data" in shown


def test_several_stores_give_one_block_each(store, tmp_path):
    other = _write(tmp_path / "other.h5", {"z": 3})
    summaries = _json(store, other)["stores"]
    assert [s["path"] for s in summaries] == [str(store), str(other)] and [s["videos"] for s in summaries] == [2, 1]
    shown = "".join(_info(store, other).stdout.split())  # a long temporary path may wrap in the 80-column table
    assert shown.index(str(store)) < shown.index(str(other))


@pytest.mark.parametrize("content", [b"not an HDF5 file at all", b""])
def test_a_file_that_is_not_a_store_is_one_line_naming_it(tmp_path, content):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(content)
    result = _info(bad)
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"error: {bad}: not a readable HDF5 feature file")
    missing = _info(tmp_path / "missing.h5")
    assert missing.exit_code == 1 and f"{tmp_path / 'missing.h5'}: feature file not found" in missing.output


def test_links_are_listed_never_followed(store):
    with h5py.File(store, "a") as handle:
        handle["alias"] = h5py.SoftLink("/a")
        handle["elsewhere"] = h5py.ExternalLink("/etc/passwd", "/x")
    summary = _json(store)["stores"][0]
    assert summary["links"] == ["alias", "elsewhere"] and summary["videos"] == 2 and summary["frames"] == 5
    assert "2 videos with features elsewhere, never read" in _info(store).stdout


def test_a_store_in_a_read_only_folder_has_its_index_in_the_cache(store, tmp_path, monkeypatch):
    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    real = index_module._writable
    monkeypatch.setattr(index_module, "_writable", lambda folder: folder != store.parent and real(folder))
    assert index_state(store) == IndexState("none", str(cached_index_dir(store)), in_cache=True)
    assert runner.invoke(app, ["index", str(store), "-q"]).exit_code == 0
    state = index_state(store)
    assert (state.state, state.folder, state.in_cache) == ("up to date", str(cached_index_dir(store)), True)
    assert "(in the user's cache: the file's folder is not writable)" in _info(store).stdout


def test_long_lists_show_the_first_few_and_json_has_them_all(tmp_path):
    store = _write(tmp_path / "s.h5", {"ok": 3})
    write_failures(failures_path(store), [Failure(f"bad{k}", f"/v/bad{k}.mp4", "empty file (0 bytes)") for k in range(7)])
    shown = _info(store).stdout
    assert "7 videos listed in" in shown and "bad4: empty" in shown and "bad5" not in shown
    assert "... and 2 more (--json lists them all)" in shown
    assert [f["id"] for f in _json(store)["stores"][0]["failed"]] == [f"bad{k}" for k in range(7)]


@pytest.mark.parametrize("flag", [[], ["--ids"]])
def test_a_garbled_video_header_is_one_line_naming_the_file(tmp_path, flag):
    store = _write(tmp_path / "s.h5", {"a": 3, "b": 4, "c": 5})
    with h5py.File(store, "r") as handle:
        address = h5py.h5o.get_info(handle["b"].id).addr
    with open(store, "r+b") as raw:  # the object header of 'b', as test_faults garbles one
        raw.seek(address + 8)
        raw.write(bytes(range(16)))
    result = _info(store, *flag)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {store}: damaged or unreadable HDF5 file")


def test_a_file_of_the_original_tool_has_no_record_of_what_made_it(tmp_path):
    store = tmp_path / "published.h5"
    with h5py.File(store, "w") as handle:  # the original layout: T x D per id, nothing else
        handle.create_dataset("vid", data=np.ones((5, 512), np.float16) / np.sqrt(512))
        handle.create_dataset("set/other", data=np.ones((2, 512), np.float16) / np.sqrt(512))
    summary = _json(store)["stores"][0]
    assert (summary["videos"], summary["frames"], summary["made_with"], summary["random_weights"]) == (2, 7, None, False)
    assert "not recorded" in _info(store).stdout


def test_info_is_listed_in_the_help():
    listed = runner.invoke(app, ["--help"])
    assert listed.exit_code == 0 and "│ info " in listed.stdout and "What a feature file holds" in listed.stdout
