"""What an index keeps beside it for dedup and extends as videos are appended (the common frames' fit, the
self-join's inverted lists) equals what is made afresh on the grown index."""
from __future__ import annotations

import numpy as np
import pytest

from s2vs_cli.scoring import common_frames_fit, common_frames_index, join_lists, self_join
from s2vs_cli.scoring.common_frames import mean_direction
from s2vs_cli.scoring.common_frames_index import FILE, STATE_FILE, common_frames_of_index
from s2vs_cli.storage.index import index_dir_for, open_index
from s2vs_cli.storage.index_prefix import epoch
from tests.test_common_frames import _unit, boilerplate_videos
from tests.test_search import write_store


def _fit_state(index):
    return common_frames_index._load_state(index.folder / STATE_FILE, index,
                                           common_frames_index.index_stamp(index))


@pytest.fixture()
def small_grid(monkeypatch):
    monkeypatch.setattr(common_frames_fit, "HASH_ROWS", 32)  # several pieces, the growth inside one
    monkeypatch.setattr(common_frames_index, "HASH_ROWS", 32)
    monkeypatch.setattr(common_frames_index, "BLOCK_VIDEOS", 5)
    monkeypatch.setattr(common_frames_index, "SMALL_FIT_FRAMES", 0)  # extended as a large collection's is


def test_the_fit_extended_with_new_videos_equals_one_made_afresh(tmp_path, small_grid):
    videos, _ = boilerplate_videos(seed=3, count=36, intro_in=14, dims=512, regions=1)
    names = sorted(videos)
    # the intro is in 2 of the first videos (below MIN_VIDEOS = 8) and becomes boilerplate with the new ones
    first = [name for name in names if name >= "v12"]
    path = tmp_path / "features.h5"
    write_store(path, {name: videos[name] for name in first})
    index, _ = open_index(path)
    before = common_frames_of_index(index)
    assert len(before.prototypes) == 0 and (index_dir_for(path) / STATE_FILE).is_file()
    write_store(path, {name: videos[name] for name in names if name not in first}, keep_existing=True)
    grown, update = open_index(path)
    assert update.action == "added"
    frames_before = int(index.frames.offsets[-1])
    assert frames_before % 32 and frames_before > 64  # the growth starts inside a piece of the grid
    assert epoch(frames_before) == epoch(int(grown.frames.offsets[-1]))  # as after a doubling
    extended = common_frames_of_index(grown)
    state = _fit_state(grown)
    assert len(extended.prototypes) > 0 and extended.videos.max() == 14
    for name in (FILE, STATE_FILE):
        (index_dir_for(path) / name).unlink()
    afresh = common_frames_of_index(grown)
    fresh_state = _fit_state(grown)
    assert np.array_equal(extended.direction, afresh.direction)
    assert np.array_equal(extended.prototypes, afresh.prototypes)
    assert np.array_equal(extended.videos, afresh.videos)
    assert np.array_equal(extended.fitted_common, afresh.fitted_common)
    assert extended.stamp == afresh.stamp
    for field in ("keys", "firsts", "near"):
        assert np.array_equal(getattr(state, field), getattr(fresh_state, field)), field
    for (keys, firsts), (fresh_keys, fresh_firsts) in zip(state.crowded, fresh_state.crowded):
        assert np.array_equal(keys, fresh_keys) and np.array_equal(firsts, fresh_firsts)


def test_the_mean_direction_is_that_of_the_sampled_videos(tmp_path, small_grid):
    # A regression: the sample's blocks were views of one reused read buffer, so the direction was the mean of
    # whatever the buffer last held (the last block, repeated), not of the sampled videos.
    videos, _ = boilerplate_videos(seed=5, count=30, intro_in=0, dims=512, regions=1)
    path = tmp_path / "features.h5"
    write_store(path, videos)
    index, _ = open_index(path)
    sample = common_frames_index.basis_sample(np.diff(index.frames.offsets))
    assert len(sample) > common_frames_index.BLOCK_VIDEOS  # several blocks read
    expected = mean_direction(np.concatenate([index.frames.read([number])[0].copy() for number in sample]))
    np.testing.assert_array_equal(common_frames_of_index(index).direction, expected)


def test_a_fit_is_made_afresh_when_an_earlier_video_changed(tmp_path, small_grid):
    videos, _ = boilerplate_videos(seed=4, count=20, intro_in=10, dims=512, regions=1)
    path = tmp_path / "features.h5"
    write_store(path, videos)
    index, _ = open_index(path)
    common_frames_of_index(index)
    changed = dict(videos)
    changed["v19"] = videos["v18"]  # another video under an earlier name: the index rebuilds
    write_store(path, changed)
    rebuilt, update = open_index(path)
    assert update.action == "rebuilt"
    assert _fit_state(rebuilt) is None  # the kept fit covers other videos: not extended
    again = common_frames_of_index(rebuilt)
    assert again.stamp["digest"] != common_frames_index.index_stamp(index)["digest"]


def test_the_join_lists_extended_with_new_videos_equal_lists_made_afresh(tmp_path, monkeypatch):
    monkeypatch.setattr(self_join, "EXACT_SEGMENTS", 0)
    monkeypatch.setattr(self_join, "LIST_SIZE", 8)
    monkeypatch.setattr(join_lists, "PROBE_BLOCK", 7)
    rng = np.random.default_rng(9)
    videos = {f"v{n:03d}": _unit(rng.standard_normal((int(rng.integers(20, 60)), 1, 512))) for n in range(60)}
    names = sorted(videos)
    path = tmp_path / "features.h5"
    write_store(path, {name: videos[name] for name in names[:50]})
    index, _ = open_index(path)
    before = self_join.index_join_lists(index, 4)
    write_store(path, {name: videos[name] for name in names[50:]}, keep_existing=True)
    grown, _ = open_index(path)
    assert epoch(int(index.starts[-1])) == epoch(int(grown.starts[-1]))
    assert int(index.starts[-1]) % 7  # the growth starts inside a block of probes
    extended = self_join.index_join_lists(grown, 4)
    assert np.array_equal(extended.centroids, before.centroids)
    (index_dir_for(path) / join_lists.FILE).unlink()
    afresh = self_join.index_join_lists(grown, 4)
    assert np.array_equal(extended.centroids, afresh.centroids)
    assert np.array_equal(extended.probes, afresh.probes)
    assert extended.stamp == afresh.stamp
    pairs = self_join.nearest_videos(grown, 10, probes=4)[0]
    (index_dir_for(path) / join_lists.FILE).write_bytes(b"damaged")  # a cache: trained again, never an error
    again = self_join.nearest_videos(grown, 10, probes=4)[0]
    assert all(np.array_equal(a, b) for a, b in zip(pairs, again))
