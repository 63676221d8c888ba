"""The HDF5 feature store: layout, identity, parts, atomic merge, and reading the original tool's files."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from s2vs_cli.errors import FeatureStoreError
from s2vs_cli.storage.parts import (PartWriter, complete_parts, merge_parts, merging_temporaries, parts_dir_for,
                            remove_partials)
from s2vs_cli.storage.store import FeatureStore, StoreIdentity, stored_ids

IDENTITY = StoreIdentity(backbone="ResNet-50 imagenet", whitening="vcdb", fps=1.0, dims=8)


def _features(seed: int, frames: int = 5) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((frames, 9, 8))
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)  # unit region vectors, as stored


def _write_part(parts_dir, videos: dict, **kwargs) -> PartWriter:
    with PartWriter(parts_dir, IDENTITY, "0.1.0", **kwargs) as writer:
        for video_id, features in videos.items():
            writer.add(video_id, features, np.arange(len(features)) / 2.0, fps=2.0)
    return writer


def test_part_layout_dtype_and_attributes(tmp_path):
    writer = _write_part(tmp_path / "parts", {"a": _features(0), "b": _features(1, 3)})
    [part] = writer.written
    assert part.name.endswith(".h5") and complete_parts(tmp_path / "parts") == [part]
    with h5py.File(part) as f:  # what the original tool's reader sees: f[id][:]
        assert sorted(f) == ["a", "b"]
        assert f["a"].shape == (5, 9, 8) and f["a"].dtype == np.float16
        assert f.attrs["backbone"] == "ResNet-50 imagenet" and f.attrs["s2vs_version"] == "0.1.0"
        np.testing.assert_array_equal(f["b"].attrs["timestamps"], [0.0, 0.5, 1.0])
    with FeatureStore(part) as store:
        assert store.identity == IDENTITY and store.ids() == ["a", "b"] and "a" in store and "c" not in store
        record = store.read("a")
        np.testing.assert_array_equal(record.features, _features(0).astype(np.float16))
        assert record.attrs["fps"] == 2.0


def test_float32_and_compression(tmp_path):
    writer = _write_part(tmp_path, {"a": _features(0)}, dtype="float32", compression="gzip")
    with FeatureStore(writer.written[0]) as store:
        np.testing.assert_array_equal(store.read("a").features, _features(0))


def test_long_timestamps_fit_in_an_attribute(tmp_path):
    """Three hours at 1 fps: 86 KB of timestamps, over HDF5's 64 KB compact-attribute limit."""
    with PartWriter(tmp_path, IDENTITY, "0.1.0") as writer:
        writer.add("long", np.full((10800, 1, 8), 8 ** -0.5, np.float32), np.arange(10800.0))
    with FeatureStore(writer.written[0]) as store:
        assert store.read("long").timestamps[-1] == 10799.0


def test_parts_rotate_by_count(tmp_path):
    writer = _write_part(tmp_path, {str(i): _features(i, 1) for i in range(5)}, max_videos=2)
    assert len(writer.written) == 3
    assert stored_ids(writer.written) == {"0", "1", "2", "3", "4"}


def test_unfinished_parts_are_not_complete(tmp_path):
    writer = PartWriter(tmp_path, IDENTITY, "0.1.0")
    writer.add("a", _features(0), np.arange(5.0))  # open, never closed: like a killed run
    assert complete_parts(tmp_path) == []
    writer._handle.close()
    assert remove_partials(tmp_path) == 1 and list(tmp_path.iterdir()) == []


def test_merge_keeps_existing_videos_and_the_first_copy(tmp_path):
    output = tmp_path / "out.h5"
    first = _write_part(tmp_path / "p1", {"a": _features(0), "b": _features(1)}).written
    merge_parts(output, first, IDENTITY, "0.1.0")
    second = _write_part(tmp_path / "p2", {"b": _features(9), "c": _features(2)}).written
    result = merge_parts(output, second, IDENTITY, "0.1.0")
    assert (result.videos, result.added, result.duplicates) == (3, 1, ["b"])
    with FeatureStore(output) as store:
        assert store.ids() == ["a", "b", "c"] and store.identity == IDENTITY
        np.testing.assert_array_equal(store.read("b").features, _features(1).astype(np.float16))
        np.testing.assert_array_equal(store.read("c").timestamps, np.arange(5) / 2.0)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_merge_refuses_features_made_differently(tmp_path):
    part = _write_part(tmp_path / "p", {"a": _features(0)}).written
    other = StoreIdentity(backbone="ResNet-50 imagenet", whitening="none", fps=1.0, dims=3840)
    with pytest.raises(FeatureStoreError, match=r"whitening 'vcdb' \(this run: 'none'\); dims 8 \(this run: 3840\)"):
        merge_parts(tmp_path / "out.h5", part, other, "0.1.0")


def test_reads_the_original_tools_layout(tmp_path):
    """Published files: float32, gzip, no attributes; frame-level [T, D] datasets read as [T, 1, D]."""
    path = tmp_path / "published.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("v1", data=_features(0), compression="gzip", compression_opts=9)
        f.create_dataset("v2", data=np.full((4, 16), 0.25, np.float32))
    with FeatureStore(path) as store:
        assert store.identity is None and store.shape("v2") == (4, 1, 16)
        assert store.read("v2").features.shape == (4, 1, 16) and store.read("v1").timestamps is None


def test_store_errors_are_one_line(tmp_path):
    with pytest.raises(FeatureStoreError, match="feature file not found"):
        FeatureStore(tmp_path / "none.h5")
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(FeatureStoreError, match="not a readable HDF5 feature file"):
        FeatureStore(tmp_path / "bad.h5")
    writer = _write_part(tmp_path / "p", {"a": _features(0)})
    with FeatureStore(writer.written[0]) as store, pytest.raises(FeatureStoreError, match="no features for video 'zz'"):
        store.read("zz")


def test_parts_dir_is_beside_the_output(tmp_path):
    assert parts_dir_for(tmp_path / "fivr.hdf5") == tmp_path / "fivr.hdf5.parts"


def test_ids_with_a_slash_nest_like_the_originals_and_merge_whole(tmp_path):
    """CC_WEB_VIDEO ids are 'set/name': HDF5 nests them; two parts sharing a set keep both videos."""
    first = _write_part(tmp_path / "p1", {"1/1_1_Y": _features(0), "2/2_3_Y": _features(1)}).written
    second = _write_part(tmp_path / "p2", {"1/1_2_Y": _features(2)}).written
    result = merge_parts(tmp_path / "cc.h5", first + second, IDENTITY, "0.1.0")
    assert (result.videos, result.duplicates) == (3, [])
    with FeatureStore(tmp_path / "cc.h5") as store:
        assert store.ids() == ["1/1_1_Y", "1/1_2_Y", "2/2_3_Y"] and "1/1_2_Y" in store
        np.testing.assert_array_equal(store.read("1/1_2_Y").features, _features(2).astype(np.float16))
    with h5py.File(tmp_path / "cc.h5") as f:  # the original tool's reader: f[video_id][:]
        assert f["2/2_3_Y"][:].shape == (5, 9, 8)
    assert stored_ids([tmp_path / "cc.h5"]) == {"1/1_1_Y", "1/1_2_Y", "2/2_3_Y"}


def test_merge_checks_every_videos_feature_size(tmp_path):
    published = tmp_path / "published.hdf5"
    with h5py.File(published, "w") as f:
        f.create_dataset("raw", data=np.zeros((3, 9, 3840), np.float32))
    part = _write_part(tmp_path / "p", {"a": _features(0)}).written
    with pytest.raises(FeatureStoreError, match="'raw' has 3840-d features, the others 8-d"):
        merge_parts(tmp_path / "out.h5", [published, *part], IDENTITY, "0.1.0")
    assert not (tmp_path / "out.h5").exists() and not merging_temporaries(tmp_path / "out.h5")


def test_merge_can_put_new_parts_first(tmp_path):
    output = tmp_path / "out.h5"
    merge_parts(output, _write_part(tmp_path / "p1", {"a": _features(0)}).written, IDENTITY, "0.1.0")
    newer = _write_part(tmp_path / "p2", {"a": _features(7)}).written
    merge_parts(output, newer, IDENTITY, "0.1.0", parts_first=True)
    np.testing.assert_array_equal(_read(output, "a"), _features(7).astype(np.float16))


def _read(path, video_id):
    with FeatureStore(path) as store:
        return store.read(video_id).features


def test_a_store_is_read_in_a_process_forked_after_torch_ran(tmp_path):
    """Reads (and their value checks) stay NumPy: torch's OpenMP threads hang a child forked after they ran, and
    users read stores in forked workers (multiprocessing's default on Linux)."""
    import os
    import time

    import torch

    path = tmp_path / "published.hdf5"
    x = np.random.default_rng(0).standard_normal((75, 9, 512))
    with h5py.File(path, "w") as f:  # big enough that torch would split its work over threads
        f.create_dataset("v1", data=(x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float16))
    torch.ones(1 << 22).sum()  # a parallel region in this process
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            with FeatureStore(path) as store:
                code = 0 if store.read("v1").features.shape == (75, 9, 512) else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while (status := os.waitpid(pid, os.WNOHANG)) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("reading a store hung in a forked process")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(status[1]) == 0
