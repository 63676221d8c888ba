"""Stages 1-2 of dedup: the batched self-join (scoring/self_join.py) against brute force on a small store."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from s2vs_cli.distributed import ProcessGroup
from s2vs_cli.scoring import self_join
from s2vs_cli.scoring.self_join import CandidatePairs, candidate_pairs, segment_vectors
from s2vs_cli.storage.index import open_index, segment_descriptors
from s2vs_cli.storage.store import StoreIdentity
from test_search import _unit, write_store

DIMS = 512
GROUPS, COPIES, UNRELATED = 4, 3, 30


def _collection() -> dict[str, np.ndarray]:
    """UNRELATED random videos and GROUPS x COPIES noisy copies of a source, each among random frames."""
    rng = np.random.default_rng(7)
    videos = {f"r{i:02d}": _unit(rng.standard_normal((int(rng.integers(10, 50)), 1, DIMS))) for i in range(UNRELATED)}
    for g in range(GROUPS):
        source = _unit(rng.standard_normal((int(rng.integers(20, 40)), 1, DIMS)))
        for c in range(COPIES):
            before, after = (int(n) for n in rng.integers(0, 20, 2))
            copy = source + (0.2 + 0.3 * c) * rng.standard_normal(source.shape) / np.sqrt(DIMS)
            padding = rng.standard_normal((before, 1, DIMS)), rng.standard_normal((after, 1, DIMS))
            frames = np.concatenate([padding[0], copy, padding[1]])
            videos[f"g{g}c{c}"] = _unit(frames)
    return videos


@pytest.fixture(scope="module")
def joined(tmp_path_factory) -> tuple:
    """(the index, the videos by catalogue number, brute-force frame-level scores [N, N] and coarse scores)."""
    path = tmp_path_factory.mktemp("join") / "features.h5"
    videos = _collection()
    write_store(path, videos, identity=StoreIdentity("test", "test", 1.0, DIMS, dtype="float32"))
    index, _ = open_index(path)
    frames = [videos[i][:, 0] for i in index.catalogue.ids]
    return index, frames, _brute_frame_level(frames), _brute_coarse(frames)


def _brute_frame_level(frames: list[np.ndarray], kept: list[np.ndarray] | None = None) -> np.ndarray:
    """Mean of both Chamfer directions on float16 frame descriptors, every pair (0: a video without frames)."""
    described = [f.astype(np.float16).astype(np.float32) for f in frames]
    if kept is not None:
        described = [f[k] for f, k in zip(described, kept)]
    scores = np.zeros((len(frames), len(frames)))
    for a, x in enumerate(described):
        for b, y in enumerate(described):
            if len(x) and len(y):
                sim = x @ y.T
                scores[a, b] = (sim.max(1).mean() + sim.max(0).mean()) / 2
    return scores


def _brute_coarse(frames: list[np.ndarray]) -> np.ndarray:
    segments = [segment_descriptors(f[:, None]).astype(np.float16).astype(np.float32) for f in frames]
    return np.array([[(x @ y.T).max() for y in segments] for x in segments])


def _pairs(result: CandidatePairs) -> set[tuple[int, int]]:
    return set(zip(result.first.tolist(), result.second.tolist()))


def _planted(index) -> set[tuple[int, int]]:
    ids = index.catalogue.ids
    return {(a, b) for a in range(len(ids)) for b in range(a + 1, len(ids))
            if ids[a][0] == ids[b][0] == "g" and ids[a][:2] == ids[b][:2]}


def _everything(index, **kwargs) -> CandidatePairs:
    """Every pair the join can see: all neighbours, no floors."""
    return candidate_pairs(index, neighbours=int(index.index.ntotal), min_frame_level=-1.0, min_coarse=-1.0, **kwargs)


def test_pairs_once_each_with_brute_force_scores(joined):
    index, _, frame_level, coarse = joined
    result = _everything(index)
    n = len(index)
    assert len(result) == n * (n - 1) // 2 == len(_pairs(result))  # every pair once
    assert (result.first < result.second).all()
    assert result.first.dtype == result.second.dtype == np.int64 and result.frame_level.dtype == np.float32
    np.testing.assert_allclose(result.frame_level, frame_level[result.first, result.second], atol=1e-5)
    np.testing.assert_allclose(result.coarse, coarse[result.first, result.second], atol=1e-3)
    assert result.stages["segments"]["join"] == "exact"
    assert result.stages["frame_level"] == {"pairs": len(result), "kept": len(result),
                                            "seconds": result.stages["frame_level"]["seconds"]}


def test_defaults_find_every_planted_pair_and_nothing_else(joined):
    index, _, frame_level, _ = joined
    result = candidate_pairs(index)
    assert _pairs(result) == _planted(index)
    # exhaustive equivalence: every pair whose brute-force score reaches the floor, and only those
    above = {(a, b) for a, b in zip(*np.nonzero(np.triu(frame_level, 1) >= self_join.MIN_FRAME_LEVEL))}
    assert _pairs(result) == above
    assert result.frame_level.min() >= self_join.MIN_FRAME_LEVEL


def test_few_neighbours_keep_each_videos_best(joined):
    index, _, _, coarse = joined
    result = candidate_pairs(index, neighbours=1, min_frame_level=-1.0, min_coarse=-1.0)
    others = coarse - np.eye(len(index)) * 10
    best = {tuple(sorted((v, int(np.argmax(others[v]))))) for v in range(len(index))}
    assert _pairs(result) == best


def test_inverted_lists_and_small_tiles_give_the_same_pairs(joined, monkeypatch):
    index, _, _, _ = joined
    exact = candidate_pairs(index)
    monkeypatch.setattr(self_join, "EXACT_SEGMENTS", 0)
    monkeypatch.setattr(self_join, "LIST_SIZE", 8)
    monkeypatch.setattr(self_join, "JOIN_NPROBE", 4)
    monkeypatch.setattr(self_join, "QUERY_SEGMENTS", 16)
    monkeypatch.setattr(self_join, "RANGE_FRAMES", 200)  # many tiles in stage 2
    approximate = candidate_pairs(index)
    assert approximate.stages["segments"]["join"].startswith("inverted lists")
    assert _pairs(approximate) == _pairs(exact)
    np.testing.assert_allclose(approximate.frame_level, exact.frame_level, atol=1e-5)


def test_probes_set_how_many_inverted_lists_a_segment_searches(joined, monkeypatch):
    """dedup --probes: more lists searched, never fewer pairs (the lists searched include the default's)."""
    index, _, _, _ = joined
    monkeypatch.setattr(self_join, "EXACT_SEGMENTS", 0)
    monkeypatch.setattr(self_join, "LIST_SIZE", 4)
    few, many = (candidate_pairs(index, probes=n, min_frame_level=-1.0, min_coarse=-1.0) for n in (1, 6))
    lists = int(few.stages["segments"]["join"].split(": ")[1].split(" lists")[0])
    assert few.stages["segments"]["join"].endswith(", 1 searched")
    assert many.stages["segments"]["join"].endswith(", 6 searched") and lists > 6
    assert _pairs(few) < _pairs(many)


def test_segment_vectors_are_the_index_vectors(joined):
    index, frames, _, _ = joined
    vectors = segment_vectors(index)
    assert vectors.dtype == np.float16 and vectors.shape == (index.index.ntotal, DIMS)
    np.testing.assert_array_equal(vectors[index.starts[3]:index.starts[4]],
                                  segment_descriptors(frames[3][:, None]).astype(np.float16))


def test_keep_frames_leaves_frames_out_of_stage_2(joined):
    index, frames, _, _ = joined
    asked = []

    def keep_frames(number: int, descriptors: np.ndarray) -> np.ndarray:
        asked.append(number)
        assert descriptors.shape == (len(frames[number]), DIMS)
        return np.arange(len(descriptors)) % 3 != 0 if number != 5 else np.zeros(len(descriptors), dtype=bool)

    result = _everything(index, keep_frames=keep_frames)
    assert sorted(asked) == list(range(len(index)))  # once a video
    kept = [np.arange(len(f)) % 3 != 0 if n != 5 else np.zeros(len(f), dtype=bool) for n, f in enumerate(frames)]
    expected = _brute_frame_level(frames, kept)
    np.testing.assert_allclose(result.frame_level, expected[result.first, result.second], atol=1e-5)
    assert 5 not in result.first and 5 not in result.second  # no segment left to find it by, nor frames to score
    assert result.stages["kept_frames"]["kept"] == sum(int(k.sum()) for k in kept)


def test_keep_frames_must_give_one_flag_a_frame(joined):
    index = joined[0]
    with pytest.raises(ValueError, match="keep_frames gave"):
        candidate_pairs(index, keep_frames=lambda number, descriptors: np.ones(1, dtype=bool))


class _ThreadGroup(ProcessGroup):
    """One of `world_size` ranks run as threads: gather exchanges values as torch.distributed would."""

    def __init__(self, rank: int, world_size: int, shared: dict):
        super().__init__(rank, world_size, rank)
        self.shared = shared

    def gather(self, value):
        slots, barrier = self.shared["slots"], self.shared["barrier"]
        slots[self.rank] = value
        barrier.wait()
        values = list(slots)
        barrier.wait()  # nobody overwrites a slot before every rank has read it
        return values


def test_two_ranks_give_what_one_gives(joined, monkeypatch):
    index, _, _, _ = joined
    monkeypatch.setattr(self_join, "RANGE_FRAMES", 300)
    one = candidate_pairs(index, min_frame_level=0.1)
    shared = {"slots": [None, None], "barrier": threading.Barrier(2, timeout=60)}
    results: list = [None, None]

    # each rank its own index object, as each torchrun process loads its own (read buffers are not shared);
    # loaded here, not in the threads: Python 3.11's ast.literal_eval (np.load's header parser) is not
    # thread-safe ("AST constructor recursion depth mismatch" when two threads parse at once)
    store = Path(index.folder).with_name(Path(index.folder).name.removesuffix(".index"))
    owns = [open_index(store)[0] for _ in range(2)]

    def rank(r: int) -> None:
        results[r] = candidate_pairs(owns[r], min_frame_level=0.1, group=_ThreadGroup(r, 2, shared))

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert _pairs(result) == _pairs(one) and len(result) == len(one)
        np.testing.assert_array_equal(result.first, one.first)
        np.testing.assert_allclose(result.frame_level, one.frame_level, atol=1e-6)
        np.testing.assert_array_equal(result.coarse, one.coarse)


def test_a_pair_found_from_both_sides_keeps_its_better_coarse_score():
    first, second, coarse = self_join._merge([(np.array([1, 0]), np.array([4, 2]), np.array([0.5, 0.7], np.float32)),
                                              (np.array([1]), np.array([4]), np.array([0.9], np.float32))])
    assert first.tolist() == [0, 1] and second.tolist() == [2, 4]
    np.testing.assert_allclose(coarse, [0.7, 0.9])


def test_a_single_video_has_no_pairs(tmp_path):
    path = tmp_path / "one.h5"
    write_store(path, {"only": _unit(np.random.default_rng(0).standard_normal((20, 1, DIMS)))},
                identity=StoreIdentity("test", "test", 1.0, DIMS, dtype="float32"))
    index, _ = open_index(path)
    result = candidate_pairs(index)
    assert len(result) == 0 and result.first.dtype == np.int64 and result.frame_level.dtype == np.float32
    assert result.stages["segments"]["pairs"] == result.stages["frame_level"]["pairs"] == 0


def test_touching_finds_the_pairs_of_some_videos_from_both_sides(joined):
    """An increment's join: only the pairs with a touched video, each a full join finds, and those a join whose
    touched videos' segments were the only targets would find from the others' side (neighbours=1: one each)."""
    index, _, _, coarse = joined
    touched = np.array([video in ("g0c1", "g2c0", "r03") for video in index.catalogue.ids])
    seen = []
    only = candidate_pairs(index, touching=lambda kept: seen.append(kept) or touched)
    assert seen == [None]  # no frames left out: the hook is told so
    full = candidate_pairs(index)
    assert _pairs(only) == {(a, b) for a, b in _pairs(full) if touched[a] or touched[b]} != set()
    one = candidate_pairs(index, neighbours=1, min_frame_level=-1.0, min_coarse=-1.0, touching=lambda kept: touched)
    others = coarse - np.eye(len(index)) * 10
    own_best = {tuple(sorted((v, int(np.argmax(others[v]))))) for v in np.flatnonzero(touched)}
    best_touched = {tuple(sorted((v, int(np.flatnonzero(touched)[np.argmax(others[v][touched])]))))
                    for v in np.flatnonzero(~touched)}
    assert _pairs(one) == own_best | best_touched
    assert all(touched[a] or touched[b] for a, b in _pairs(one))
