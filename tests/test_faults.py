"""Faults an operator meets (a full disk, rotted bytes, a damaged file, an interrupted write): nothing is
lost, nothing wrong is returned, and each is one line naming the file or video, with the README's exit code."""
from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from s2vs_cli.storage import parts as parts_module
from s2vs_cli.cli import app
from s2vs_cli.errors import FeatureStoreError
from s2vs_cli.storage.integrity import content_digest, error_reason
from s2vs_cli.storage.parts import PartWriter, complete_parts, merge_parts
from s2vs_cli.storage.store import FeatureStore, StoreIdentity, verify_store, write_video
from test_search import _unit, collection, write_store

runner = CliRunner()
IDENTITY = StoreIdentity("test", "test", 1.0, 512, dtype="float32")
# What HDF5 says when the disk fills: the cause comes after a timestamp with a newline in it.
HDF5_ENOSPC = ("Can't synchronously write data (file write failed: time = Tue Dec  1 07:54:28 2026\n, "
               "filename = 'x.h5', file descriptor = 3, errno = 28, error message = 'No space left on device', "
               "buf = 0x55, total write size = 59392, bytes this sub-write = 59392, offset = 1048576)")


def _videos(count: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {f"v{i}": _unit(rng.standard_normal((4 + i, 9, 512))) for i in range(count)}


def _store(path: Path, videos: dict[str, np.ndarray]) -> Path:
    write_store(path, videos)
    return path


def _flip(path: Path, video_id: str, offset: int = 100, value: bytes | None = None) -> None:
    """Overwrite 16 bytes inside a video's feature data, where they lie in the file."""
    with h5py.File(path, "r") as f:
        dataset = f[video_id]
        start = dataset.id.get_chunk_info(0).byte_offset if dataset.chunks else dataset.id.get_offset()
    with open(path, "r+b") as handle:
        handle.seek(start + offset)
        handle.write(value if value is not None else bytes(range(200, 216)))


def _read_all(path: Path) -> dict[str, np.ndarray]:
    with FeatureStore(path) as store:
        return {i: store.read(i).features.astype(np.float32) for i in store.ids()}


# --- a full disk while videos are written --------------------------------------------------------

def _failing_write(after: int, error: BaseException):
    """write_video that writes `after` videos, then half of the next one and raises `error` (a full disk, Ctrl-C)."""
    calls = {"n": 0}

    def write(group, video_id, features, attrs, compression=None):
        calls["n"] += 1
        if calls["n"] > after:
            group.create_dataset(video_id, data=np.zeros_like(features))  # what HDF5 leaves: zeros, no digest
            raise error
        return write_video(group, video_id, features, attrs, compression)
    return write


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, HDF5_ENOSPC), KeyboardInterrupt()],
                         ids=["disk-full", "ctrl-c"])
def test_a_failed_write_never_becomes_a_final_part(tmp_path, monkeypatch, error):
    videos = _videos()
    monkeypatch.setattr(parts_module, "write_video", _failing_write(3, error))
    writer = PartWriter(tmp_path / "parts", IDENTITY, "test", dtype="float32", max_videos=2)
    with pytest.raises(FeatureStoreError if isinstance(error, OSError) else KeyboardInterrupt) as raised:
        with writer:
            for video_id, x in videos.items():
                writer.add(video_id, x, np.arange(len(x), dtype=float))
    if isinstance(error, OSError):  # the cause survives HDF5's multi-line message, on one line
        assert "No space left on device" in str(raised.value) and "\n" not in str(raised.value)
    # The first part (v0, v1) was closed; the one holding v2 and the half-written v3 is gone, not final.
    assert [p.name for p in complete_parts(tmp_path / "parts")] == [writer.written[0].name]
    assert list((tmp_path / "parts").glob("*.partial")) == []
    assert set(_read_all(writer.written[0])) == {"v0", "v1"}


def test_disk_full_mid_extraction_loses_nothing_and_resumes(tmp_path, monkeypatch):
    """End to end through extract_features (injected ENOSPC): exit as an error, then resume equals a clean run."""
    from test_extraction import _clip, _options
    from s2vs_cli.jobs.extract_features import extract_features
    from s2vs_cli.media.inputs import collect_inputs
    from s2vs_cli.runtime import Runtime

    clips = tmp_path / "clips"
    clips.mkdir()
    for i, seconds in enumerate([2, 3, 1, 2]):
        _clip(clips / f"clip{i}.mp4", seconds, seed=i)
    items = collect_inputs([clips]).inputs
    runtime = Runtime.cpu()
    runtime.load_extractor("random", "random")
    clean = extract_features(items, tmp_path / "clean.h5", runtime, _options())
    assert clean.written == 4

    output = tmp_path / "out.h5"
    monkeypatch.setattr(parts_module, "write_video", _failing_write(2, OSError(errno.ENOSPC, HDF5_ENOSPC)))
    with pytest.raises(FeatureStoreError, match="No space left on device"):
        extract_features(items, output, runtime, _options(part_videos=1))
    assert not (tmp_path / "out.h5.parts" / "lock").exists()  # a failed run leaves no lock behind
    monkeypatch.undo()
    resumed = extract_features(items, output, runtime, _options())
    assert resumed.already_done == 2 and resumed.written == 2 and resumed.failures == []
    expected, found = _read_all(tmp_path / "clean.h5"), _read_all(output)
    assert found.keys() == expected.keys()
    for video_id in expected:
        np.testing.assert_allclose(found[video_id], expected[video_id], atol=2e-5)


def in_child(test):
    """Run `test` in a forked process: after a real failed write HDF5 crashes in its exit handlers, which
    must not take pytest down with it (the command line leaves with os._exit for the same reason)."""
    import functools
    import os
    import traceback

    @functools.wraps(test)
    def run(*args, **kwargs):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                test(*args, **kwargs)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the test failed in its child process (traceback above)"
    return run


@in_child
def test_a_real_full_disk_keeps_every_finished_video_whole(small_disk):
    videos = {f"v{i}": _unit(np.random.default_rng(i).standard_normal((12, 9, 512))) for i in range(8)}
    writer = PartWriter(small_disk / "parts", IDENTITY, "test", dtype="float32", max_videos=1)
    with pytest.raises(FeatureStoreError, match="No space left on device"), writer:
        for video_id, x in videos.items():  # 221 KB each: the 1 MB disk fills part-way
            writer.add(video_id, x, np.arange(len(x), dtype=float))
    finished = complete_parts(small_disk / "parts")
    assert 1 <= len(finished) < len(videos) and list((small_disk / "parts").glob("*.partial")) == []
    for part in finished:  # every part left is whole and exact
        for video_id, x in _read_all(part).items():
            np.testing.assert_array_equal(x, videos[video_id])
    merged = merge_parts(small_disk.parent / "out.h5", finished, IDENTITY, "test")  # on the big disk
    assert merged.damaged == [] and merged.videos == len(finished)


@in_child
def test_a_full_disk_during_the_merge_changes_nothing_and_says_why(small_disk, tmp_path, monkeypatch):
    parts = []
    for i in range(3):  # parts on the big disk, merged into a file on the small one
        with PartWriter(tmp_path / "parts", IDENTITY, "test", dtype="float32") as writer:
            writer.add(f"v{i}", np.full((60, 9, 512), 512 ** -0.5, np.float32), np.arange(60.0))  # 1.1 MB each
        parts += writer.written
    # Seen to be too small before anything is written, from the command line as from the library:
    command = subprocess.run([sys.executable, "-m", "s2vs_cli", "merge", str(small_disk / "cli.h5"), *map(str, parts)],
                             capture_output=True, text=True)
    assert command.returncode == 1 and command.stdout == "", command.stderr
    assert command.stderr.count("\n") == 1 and "not enough free space to merge" in command.stderr, command.stderr
    # A disk that fills anyway (another writer took the space): the output and the parts are as they were.
    monkeypatch.setattr(parts_module.shutil, "disk_usage", lambda path: shutil_usage(10**12))
    with pytest.raises(FeatureStoreError) as raised:
        merge_parts(small_disk / "out.h5", parts, IDENTITY, "test")
    message = str(raised.value)
    assert "merge failed, nothing was changed" in message and "No space left on device" in message
    assert "\n" not in message and not (small_disk / "out.h5").exists() and list(small_disk.iterdir()) == []
    assert all(p.exists() for p in parts)


def shutil_usage(free: int):
    import shutil

    return shutil._ntuple_diskusage(free, 0, free)


def test_a_full_disk_during_a_merge_from_the_command_line_is_one_line(tmp_path):
    """In a real process (HDF5 crashes in its exit handlers after a failed write: the command leaves
    without them), with the space check passed and ENOSPC injected into the write."""
    store = _store(tmp_path / "a.h5", _videos(2))
    script = (
        "import errno, sys; import s2vs_cli.storage.parts as p; from s2vs_cli.storage.store import hdf5_write_failed\n"
        "def full(*a, **k):\n    hdf5_write_failed(True)\n"
        f"    raise OSError(errno.ENOSPC, {HDF5_ENOSPC!r})\n"
        "p.write_video = full\nsys.argv = ['s2vs', 'merge', sys.argv[1], sys.argv[2]]\n"
        "from s2vs_cli.cli import main; main()\n")
    command = subprocess.run([sys.executable, "-c", script, str(tmp_path / "out.h5"), str(store)],
                             capture_output=True, text=True)
    assert command.returncode == 1, command.stderr
    assert command.stderr.count("\n") == 1 and "No space left on device" in command.stderr, command.stderr
    assert not (tmp_path / "out.h5").exists()


def test_error_reason_keeps_the_cause_on_one_line():
    assert error_reason(OSError(errno.ENOSPC, HDF5_ENOSPC)) == "Can't synchronously write data: No space left on device"
    assert error_reason(KeyError("Unable to open object (bad object header)")) == \
        "Unable to open object (bad object header)"
    assert error_reason(OSError(errno.ENOSPC, "No space left on device", "f")) == "No space left on device"


# --- merges never copy an incomplete or damaged video forward -------------------------------------

def test_merge_drops_an_incomplete_video_and_says_so(tmp_path):
    videos = _videos(3)
    with PartWriter(tmp_path / "parts", IDENTITY, "test", dtype="float32") as writer:
        for video_id, x in videos.items():
            writer.add(video_id, x, np.arange(len(x), dtype=float))
    with h5py.File(writer.written[0], "a") as f:  # what the old bug left: data, no digest
        del f["v1"].attrs["digest"]
    result = merge_parts(tmp_path / "out.h5", writer.written, IDENTITY, "test")
    assert [(d.video_id, d.reason) for d in result.damaged] == [
        ("v1", "incomplete: its write never finished (no content digest)")]
    assert set(_read_all(tmp_path / "out.h5")) == {"v0", "v2"}
    cli = runner.invoke(app, ["merge", str(tmp_path / "cli.h5"), *map(str, writer.written)])
    assert cli.exit_code == 3 and "left out: 'v1'" in cli.output and "redo them" in cli.output


def test_resume_does_not_copy_damaged_videos_forward(tmp_path):
    videos = _videos(4)
    output = _store(tmp_path / "out.h5", {k: videos[k] for k in ("v0", "v1", "v2")})
    _flip(output, "v1")
    with PartWriter(tmp_path / "parts", IDENTITY, "test", dtype="float32") as writer:
        writer.add("v3", videos["v3"], np.arange(len(videos["v3"]), dtype=float))
    result = merge_parts(output, writer.written, IDENTITY, "test")  # as a resumed run merges
    assert [d.video_id for d in result.damaged] == ["v1"] and "checksum does not match" in result.damaged[0].reason
    found = _read_all(output)
    assert set(found) == {"v0", "v2", "v3"}  # v1 left out: the next extraction run redoes it
    for video_id, x in found.items():
        np.testing.assert_array_equal(x, videos[video_id])


# --- rotted bytes are found when read -----------------------------------------------------------

@pytest.mark.parametrize("value", [None, bytes(16)], ids=["random-bytes", "zeros"])
def test_rotted_bytes_are_an_error_naming_the_video(tmp_path, value):
    store = _store(tmp_path / "f.h5", _videos())
    _flip(store, "v2", value=value)
    with FeatureStore(store) as opened:
        opened.read("v1")  # the others read fine
        with pytest.raises(FeatureStoreError, match=r"f\.h5: 'v2' is damaged .*s2vs verify"):
            opened.read("v2")
    check = verify_store(store)
    assert check.videos == 6 and [i for i, _ in check.damaged] == ["v2"] and check.unverifiable == 0


def test_files_without_checksums_are_checked_by_digest_and_for_nan(tmp_path):
    """Format-1 files (no chunk checksums) by their digests; the published layout (no digest) for NaN."""
    x = _videos(2)
    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(IDENTITY.as_attrs() | {"format": "s2vs-features/1"})
        f.create_dataset("v0", data=x["v0"]).attrs["digest"] = content_digest(x["v0"])
        f.create_dataset("v1", data=x["v1"])
    _flip(path, "v0", value=bytes(16))
    _flip(path, "v1", value=np.full(4, np.nan, np.float32).tobytes())
    with FeatureStore(path) as store:
        with pytest.raises(FeatureStoreError, match="'v0' is damaged: its bytes differ from the digest"):
            store.read("v0")
        with pytest.raises(FeatureStoreError, match="'v1' is damaged: its features hold NaN"):
            store.read("v1")
    assert [i for i, _ in verify_store(path).damaged] == ["v0", "v1"]


def test_verify_command_lists_and_repairs(tmp_path):
    store = _store(tmp_path / "f.h5", _videos())
    sound = runner.invoke(app, ["verify", str(store)])
    assert sound.exit_code == 0 and "all 6 videos sound" in sound.output
    _flip(store, "v4")
    found = runner.invoke(app, ["verify", str(store), "--json"])
    assert found.exit_code == 1 and [d["id"] for d in json.loads(found.stdout)["damaged"]] == ["v4"]
    repaired = runner.invoke(app, ["verify", str(store), "--repair"])
    assert repaired.exit_code == 0 and "now holds 5 videos" in repaired.output
    assert set(_read_all(store)) == {"v0", "v1", "v2", "v3", "v5"}
    assert not (tmp_path / "f.h5.parts").exists()  # the repair's lock is gone with it


def test_search_and_evaluate_name_the_damaged_video(tmp_path):
    videos = collection()
    store = _store(tmp_path / "features.h5", videos)
    _flip(store, "query-copy")
    searched = runner.invoke(app, ["search", "query", "--database", str(store), "--features-only", "--exhaustive"])
    assert searched.exit_code == 3 and "'query-copy' is damaged" in searched.output
    assert "Traceback" not in searched.output
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"queries": ["query"], "database": ["query-copy", "v001"],
                              "positives": {"query": ["query-copy"]}}))
    evaluated = runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(gt),
                                    "--dataset-hdf5", str(store), "--features-only"])
    assert evaluated.exit_code == 1 and "'query-copy' is damaged" in evaluated.output
    assert len(evaluated.output.strip().splitlines()) == 1


def test_a_nan_score_is_an_error_not_a_rank(tmp_path):
    from s2vs_cli.scoring.retrieval import VideoScorer, score_store

    videos = _videos(3)
    videos["v1"][2, 0, 0] = np.inf
    with PartWriter(tmp_path / "parts", IDENTITY, "test", dtype="float32") as writer, \
            pytest.raises(FeatureStoreError, match="'v1': NaN or infinite features are not stored"):
        writer.add("v1", videos["v1"], np.arange(len(videos["v1"]), dtype=float))
    store = tmp_path / "published.h5"  # the published files' layout: no checksums, no digests
    with h5py.File(store, "w") as f:
        for video_id, x in videos.items():
            f.create_dataset(video_id, data=x)
    with FeatureStore(store) as opened, pytest.raises(FeatureStoreError, match="'v1' is damaged: .*NaN or infinite"):
        opened.read("v1")
    import torch

    with pytest.raises(FeatureStoreError, match="'v1'"):
        score_store(str(store), ["v0"], ["v1", "v2"], VideoScorer(None, torch.device("cpu"), "fp32"))


# --- a damaged file structure is one line naming the file --------------------------------------

def _garble_header(path: Path, video_id: str) -> None:
    with h5py.File(path, "r") as f:
        address = h5py.h5o.get_info(f[video_id].id).addr
    with open(path, "r+b") as handle:
        handle.seek(address + 8)
        handle.write(bytes(range(16)))


@pytest.mark.parametrize("command", ["search", "evaluate", "index", "verify", "merge", "resume"])
def test_a_garbled_hdf5_object_is_one_line_naming_the_file(tmp_path, command, monkeypatch):
    # Made as extract-features with random weights would make it, so that resuming into it is allowed.
    identity = StoreIdentity("ResNet-50 random (seed 0)", "random (seed 0)", 1.0, 512, dtype="float32")
    store = tmp_path / "features.h5"
    write_store(store, collection(count=4), identity=identity)
    _garble_header(store, "v002")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"queries": ["query"], "database": ["v001"], "positives": {"query": ["v001"]}}))
    if command == "resume":  # extract-features into the damaged file: found before any video is decoded
        from test_extraction import _clip

        monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
        _clip(tmp_path / "clip.mp4", 1, seed=0)
    args = {"search": ["search", "query", "--database", str(store), "--features-only"],
            "evaluate": ["evaluate", "--dataset", "custom", "--ground-truth", str(gt), "--dataset-hdf5", str(store),
                         "--features-only"],
            "index": ["index", str(store)], "verify": ["verify", str(store)],
            "merge": ["merge", str(tmp_path / "out.h5"), str(store)],
            "resume": ["extract-features", str(tmp_path / "clip.mp4"), "-o", str(store), "--backbone-weights",
                       "random", "--pca", "random", "--dtype", "float32", "-q"]}[command]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and str(store) in lines[0] and "damaged or unreadable HDF5 file" in lines[0], lines


# --- outputs and paths checked before the work ----------------------------------------------------

@pytest.mark.parametrize("command", ["search", "evaluate"])
def test_an_unwritable_output_fails_before_any_work(tmp_path, command):
    store = _store(tmp_path / "features.h5", collection(count=4))
    (tmp_path / "a-file").write_text("")
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"queries": ["query"], "database": ["v001"], "positives": {"query": ["v001"]}}))
    base = {"search": ["search", "query", "--database", str(store), "--features-only"],
            "evaluate": ["evaluate", "--dataset", "custom", "--ground-truth", str(gt), "--dataset-hdf5", str(store),
                         "--features-only"]}[command]
    for output, message in ((tmp_path / "a-file" / "out.json", "cannot write here"), (tmp_path, "is a folder")):
        result = runner.invoke(app, base + ["-o", str(output)])
        assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "features.h5.index").exists()  # nothing was computed first


def test_folders_given_as_feature_files_say_so(tmp_path):
    searched = runner.invoke(app, ["search", "q", "--database", str(tmp_path)])
    assert searched.exit_code == 1 and "is a folder" in searched.output  # a file that cannot be used (README)
    merged = runner.invoke(app, ["merge", str(tmp_path)])
    assert merged.exit_code == 1 and "is a folder; give the feature file to write" in merged.output
