"""Issue 25, writing feature files and their search index: ids HDF5 cannot hold together (case 4), an
index stamp that follows the store's content (case 8), a full disk or kill -9 while the index is written
(case 10). Real files, a real tmpfs and a real kill, as in test_faults.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import resize_tmpfs
from s2vs_cli.cli import app
from s2vs_cli.errors import ConfigError
from s2vs_cli.storage.frame_descriptors import DATA_FILE, FrameDescriptors, FrameDescriptorWriter
from s2vs_cli.storage.index import VideoIndex, index_dir_for, open_index
from s2vs_cli.storage.parts import PartWriter, merge_parts, parts_dir_for
from s2vs_cli.storage.store import FeatureStore, StoreIdentity, store_write_id
from test_search import _unit, write_store

runner = CliRunner()
# What extract-features with random weights writes (so that a run may resume into these files).
RANDOM_IDENTITY = StoreIdentity("ResNet-50 random (seed 0)", "random (seed 0)", 1.0, 512, dtype="float32")
RANDOM = ["--backbone-weights", "random", "--pca", "random", "--precision", "fp32", "--dtype", "float32",
          "--workers", "0"]


pytestmark = pytest.mark.usefixtures("offline")  # conftest: no downloads, empty caches


def _lines(result) -> list[str]:
    return result.output.strip().splitlines()


def _ids(path: Path) -> set[str]:
    with FeatureStore(path) as store:
        return set(store.ids())


# --- case 4: ids 'a' and 'a/b' ---------------------------------------------------------------------

@pytest.fixture()
def nested_clips(tmp_path) -> Path:
    """A dataset folder with the videos 'a', 'a/b' and 'c' (one second each)."""
    from test_extraction import _clip

    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    for seed, video_id in enumerate(["a", "a/b", "c"]):
        _clip(data / f"{video_id}.mp4", 1, seed=seed)
    return data


def _extract(data: Path, ids: list[str], output: Path, *extra: str):
    listed = output.with_name(output.name + ".ids.txt")
    listed.write_text("\n".join(ids) + "\n")
    return runner.invoke(app, ["extract-features", "--dataset-path", str(data), "--pattern", "{id}.mp4",
                               "--list", str(listed), "-o", str(output), *RANDOM, *extra])


@pytest.mark.parametrize("order", [["a", "a/b"], ["a/b", "a"]], ids=["a-then-a/b", "a/b-then-a"])
def test_case_4_nested_ids_in_one_run_are_refused_before_any_work(nested_clips, tmp_path, order):
    """issue 25 case 4: 'a' and 'a/b' in one run gave a traceback (or 'cannot write') and lost the run's work."""
    output = tmp_path / "out.h5"
    result = _extract(nested_clips, ["c", *order], output)
    assert result.exit_code == 2, result.output
    first, second = order
    assert _lines(result) == [
        f"error: video ids '{first}' ({nested_clips / first}.mp4) and '{second}' ({nested_clips / second}.mp4) cannot "
        "both be stored: a feature file keeps 'a/b' inside a group 'a', which cannot also be a video; rename one"]
    assert not output.exists() and not parts_dir_for(output).exists()  # nothing was decoded or written
    frames = runner.invoke(app, ["extract-frames", "--dataset-path", str(nested_clips), "--pattern", "{id}.mp4",
                                 "--list", str(output.with_name("out.h5.ids.txt")), "-o", str(tmp_path / "frames")])
    assert frames.exit_code == 2 and "cannot both be stored" in frames.output and not (tmp_path / "frames").exists()


@pytest.mark.parametrize("stored, new", [("a", "a/b"), ("a/b", "a")])
def test_case_4_an_id_nesting_with_a_stored_one_is_refused_and_the_store_kept(nested_clips, tmp_path, stored, new):
    """issue 25 case 4: with 'a' stored, every run with 'a/b' failed its merge while parts piled up."""
    output = tmp_path / "out.h5"
    write_store(output, {stored: _unit(np.random.default_rng(0).standard_normal((2, 9, 512)))},
                identity=RANDOM_IDENTITY)
    before = output.read_bytes()
    result = _extract(nested_clips, [new], output)
    assert result.exit_code == 2, result.output
    assert _lines(result) == [
        f"error: {nested_clips / new}.mp4: its video id '{new}' cannot be stored beside '{stored}', already in "
        f"{output}: a feature file keeps 'a/b' inside a group 'a', which cannot also be a video; rename one, or "
        "write to another output file"]
    assert output.read_bytes() == before and not parts_dir_for(output).exists()


def test_case_4_nested_ids_left_by_an_older_run_cost_that_video_not_the_run(nested_clips, tmp_path):
    """issue 25 case 4: an output holding 'a' and a part holding 'a/b' (what the old code left) made every
    later run fail "merge failed, nothing was changed"; now 'a/b' alone is left out, named, and the run's
    work and the stored 'a' are kept."""
    from s2vs_cli.jobs.extract_features import extract_features
    from s2vs_cli.media.inputs import VideoInput, collect_inputs
    from s2vs_cli.runtime import Runtime
    from test_extraction import _options

    rng = np.random.default_rng(1)
    stored_a, pending = _unit(rng.standard_normal((2, 9, 512))), _unit(rng.standard_normal((3, 9, 512)))
    output = tmp_path / "out.h5"
    write_store(output, {"a": stored_a}, identity=RANDOM_IDENTITY)
    with PartWriter(parts_dir_for(output), RANDOM_IDENTITY, "test", dtype="float32") as writer:
        writer.add("a/b", pending, np.arange(3.0))
        writer.add("d", pending, np.arange(3.0))
    runtime = Runtime.cpu()
    runtime.load_extractor("random", "random")
    summary = extract_features(collect_inputs([nested_clips / "c.mp4"]).inputs, output, runtime, _options())
    assert (summary.written, summary.videos_in_output) == (1, 3)
    assert [(f.video_id, f.reason) for f in summary.failures] == [
        ("a/b", "cannot be stored beside 'a': a feature file keeps 'a/b' inside a group 'a', which cannot also be "
                "a video; rename one")]
    assert _ids(output) == {"a", "c", "d"} and list(parts_dir_for(output).glob("*.h5")) == []
    with FeatureStore(output) as store:
        np.testing.assert_array_equal(store.read("a").features, stored_a)
    # A merge given both keeps the first (here the output's 'a', whatever the order of the files).
    other = tmp_path / "other.h5"
    write_store(other, {"a/b": pending}, identity=RANDOM_IDENTITY)
    merged = merge_parts(output, [other], RANDOM_IDENTITY, "test", parts_first=True)
    assert [d.video_id for d in merged.damaged] == ["a/b"] and merged.videos == 3 and "a" in _ids(output)
    with pytest.raises(ConfigError, match="'a/b' cannot be stored beside 'a', already in"):
        extract_features([VideoInput("a/b", nested_clips / "a" / "b.mp4")], output, runtime, _options())


# --- case 8: the index's stamp follows the store's content ----------------------------------------

def _same_shaped_store(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    write_store(path, {f"v{i}": _unit(rng.standard_normal((20, 9, 512))) for i in range(6)})
    return path


def test_case_8_a_store_replaced_with_the_same_size_mtime_and_inode_gets_its_index_rebuilt(tmp_path):
    """issue 25 case 8: the index said "up to date" and gave the old store's candidates."""
    store, other = _same_shaped_store(tmp_path / "features.h5", 0), _same_shaped_store(tmp_path / "other.h5", 1)
    first, update = open_index(store)
    assert update.action == "built"
    written_by = store_write_id(store)
    before = os.stat(store)
    with open(store, "r+b") as handle:  # the other store's bytes, in place: same inode and size
        handle.write(other.read_bytes())
    os.utime(store, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(store)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    index, update = open_index(store)
    assert (update.action, update.reason) == ("rebuilt", "'v0' changed in the store (and 5 more)")
    with FeatureStore(other) as opened:
        query = opened.read("v3").features
    from s2vs_cli.storage.index import segment_descriptors

    assert index.candidates(segment_descriptors(query), 1)[0][0] == "v3"
    assert open_index(store)[1].action == "fresh"
    assert first.stamp.write_id == written_by is not None and index.stamp.write_id == store_write_id(other)
    assert store_write_id(tmp_path / "features.h5") != store_write_id(_same_shaped_store(tmp_path / "x.h5", 0))


def test_case_8_stores_without_a_write_id_keep_the_stamp_of_size_mtime_and_inode(tmp_path):
    """issue 25 case 8: the published files (no write id) are indexed and found fresh as before, in silence."""
    store = tmp_path / "published.h5"
    rng = np.random.default_rng(2)
    with h5py.File(store, "w") as handle:
        for i in range(4):
            handle.create_dataset(f"v{i}", data=_unit(rng.standard_normal((5, 9, 512))))
    index, update = open_index(store)
    assert update.action == "built" and index.stamp.write_id is None
    again, update = open_index(store)
    assert (update.action, update.reason, update.note) == ("fresh", "", "") and again.stamp == index.stamp


# --- case 10: a full disk, or kill -9, while the index is written ----------------------------------

@pytest.fixture()
def one_frame_store(tmp_path) -> Path:
    """100 videos of one frame: frames.f16 and index.faiss both about 100 KB."""
    rng = np.random.default_rng(3)
    path = tmp_path / "features.h5"
    write_store(path, {f"v{i:03d}": _unit(rng.standard_normal((1, 9, 512))) for i in range(100)})
    return path


@pytest.fixture()
def small_index_disk(one_frame_store, mount_tmpfs):
    """The index folder of `one_frame_store` on a real 160 KB tmpfs: room for frames.f16, not index.faiss."""
    return mount_tmpfs(index_dir_for(one_frame_store), "160k")


@pytest.mark.parametrize("command", ["index", "search"])
def test_case_10_a_full_disk_while_faiss_writes_is_one_line_and_leaves_nothing(one_frame_store, small_index_disk,
                                                                               command):
    """issue 25 case 10: a RuntimeError traceback, and frames.f16 left behind (the rerun needed twice the space)."""
    args = {"index": ["index", str(one_frame_store)],
            "search": ["search", "v001", "--database", str(one_frame_store), "--features-only", "--json"]}[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert _lines(result) == [f"error: {small_index_disk / 'index.faiss'}: cannot write the index (No space left on "
                              "device); the unfinished index was removed: run again once it can be written, or "
                              "search with --exhaustive"]
    assert os.listdir(small_index_disk) == []
    resize_tmpfs(small_index_disk, "400k")  # room for one index
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    index = VideoIndex.load(small_index_disk)
    # search keeps its fit beside the index, and what extends it as videos are appended
    boilerplate = ["common_frames.npz", "common_frames_state.npz"] if command == "search" else []
    assert len(index) == 100 and sorted(os.listdir(small_index_disk)) == sorted([
        "catalogue.npz", "frames.f16", "frames_crc.npy", "index.faiss", "videos.json", *boilerplate])


KILLED_WHILE = {  # a hook that stops the child mid-write, where the kill -9 then lands
    "frame-descriptors": textwrap.dedent("""
        from s2vs_cli.storage import frame_descriptors as module
        real = module.FrameDescriptorWriter.add
        def add(self, descriptors):
            real(self, descriptors)
            if len(self.frame_counts) == 50:
                self._out.flush(); print("writing", flush=True); time.sleep(60)
        module.FrameDescriptorWriter.add = add
    """),
    "index.faiss": textwrap.dedent("""
        import faiss
        real = faiss.write_index
        def write_index(index, path):
            real(index, path); print("writing", flush=True); time.sleep(60)
        faiss.write_index = write_index
    """),
}


@pytest.mark.parametrize("where", list(KILLED_WHILE))
def test_case_10_what_kill_9_leaves_while_indexing_is_removed_by_the_next_run(one_frame_store, where):
    """issue 25 case 10: `.frames.f16.PID.part` files of a killed `index` were never removed, even by --rebuild."""
    script = "import sys, time\n" + KILLED_WHILE[where] + (
        "sys.argv = ['s2vs', 'index', sys.argv[1], '--rebuild']\nfrom s2vs_cli.cli import main\nmain()\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(one_frame_store)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
        child.stdout.close()
        child.stderr.close()
    folder = index_dir_for(one_frame_store)
    left = [name for name in os.listdir(folder) if name.startswith(".")]
    assert len(left) == 1 and str(child.pid) in left[0], left  # the half-written file of the killed process
    legacy = folder / f".{DATA_FILE}.{child.pid}.part"  # as s2vs named them before: the same dead process
    legacy.write_bytes(b"\0" * 1024)
    result = runner.invoke(app, ["index", str(one_frame_store), "--rebuild", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["videos"] == 100, result.output
    assert [name for name in os.listdir(folder) if name.startswith(".")] == []
    assert len(VideoIndex.load(folder)) == 100


def test_case_10_a_failed_append_leaves_the_indexed_frame_descriptors_as_they_were(tmp_path, monkeypatch):
    """issue 25 case 10: a full disk while new videos' frame descriptors are appended (an index extended)."""
    import errno

    from s2vs_cli.storage import frame_descriptors as module

    rng = np.random.default_rng(4)
    writer = FrameDescriptorWriter(tmp_path, 16)
    for frames in (3, 5):
        writer.add(_unit(rng.standard_normal((frames, 16))))
    base = writer.finish()
    before = (tmp_path / DATA_FILE).read_bytes()

    def full(source, target, length=0):
        target.write(source.read(100))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(module.shutil, "copyfileobj", full)
    extending = FrameDescriptorWriter(tmp_path, 16, base)
    extending.add(_unit(rng.standard_normal((40, 16))))
    with pytest.raises(OSError, match="No space left"):
        extending.finish()
    assert (tmp_path / DATA_FILE).read_bytes() == before and os.listdir(tmp_path) == [DATA_FILE]
    FrameDescriptors(tmp_path, 16, np.array([3, 5]), base.crcs).check()


def test_case_17_a_merge_into_an_output_of_a_long_name_fits_and_its_leftover_is_cleared(tmp_path):
    """issue 25 case 17 for feature files: the merge's temporary was `.{output}.merging-{pid}`, 'File name too
    long' for an output of 240+ bytes; a killed merge's temporary is removed by the next writer."""
    from s2vs_cli.atomic import temporary_sibling
    from s2vs_cli.storage.parts import merging_temporaries, output_lock

    output = tmp_path / ("x" * 240 + ".h5")
    features = _unit(np.random.default_rng(0).standard_normal((2, 9, 512))).astype(np.float32)
    with PartWriter(tmp_path / "parts", RANDOM_IDENTITY, "test", dtype="float32") as writer:
        writer.add("v0", features, np.arange(2.0))
    merge_parts(output, writer.written, RANDOM_IDENTITY, "test")
    with FeatureStore(output) as store:
        assert store.ids() == ["v0"]
    killed = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = temporary_sibling(output).with_name(
        temporary_sibling(output).name.replace(f".{os.getpid()}-", f".{int(killed.stdout)}-"))
    leftover.write_bytes(b"half a merge")
    assert merging_temporaries(output) == [leftover]
    with output_lock(output):
        pass
    assert not leftover.exists() and merging_temporaries(output) == []
