"""Query-vs-database scoring: short-video repetition, long-target chunks, parity, missing ids."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2vs_cli.models.loading import load_similarity_network
from s2vs_cli.progress import CallbackProgress
from s2vs_cli.scoring.retrieval import VideoScorer, repeat_to_min_frames, score_store, split_long_target
from s2vs_cli.models.visil import ViSiL, chamfer, frame_to_frame_similarity
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import StoreIdentity

CPU = torch.device("cpu")


def _video(seed: int, frames: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((frames, 9, 512)).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def network() -> ViSiL:
    torch.manual_seed(3)
    return ViSiL().eval()


def test_short_videos_are_doubled_until_four_frames():
    assert [len(repeat_to_min_frames(_video(0, n))) for n in (1, 2, 3, 4, 5)] == [4, 4, 6, 4, 5]
    np.testing.assert_array_equal(repeat_to_min_frames(_video(0, 3))[3:], _video(0, 3))


def test_long_targets_are_chunked_and_a_short_last_chunk_repeated():
    chunks = split_long_target(torch.arange(19.0).reshape(19, 1, 1), chunk_frames=8)
    assert [len(c) for c in chunks] == [8, 8, 6]
    assert chunks[2].flatten().tolist() == [16, 17, 18, 16, 17, 18]


@pytest.mark.parametrize("features_only", [False, True])
def test_a_long_target_scores_the_mean_over_its_chunks(network, features_only):
    scorer = VideoScorer(None if features_only else network, CPU, chunk_frames=8)
    query, target = _video(1, 10), _video(2, 19)
    score = scorer.score(scorer.prepare_query(query), scorer.prepare_targets([target]))[0]
    with torch.inference_mode():
        q = torch.from_numpy(query)
        chunks = split_long_target(torch.from_numpy(target), 8)
        if features_only:
            expected = np.mean([float(chamfer(frame_to_frame_similarity(q, c))) for c in chunks])
        else:
            qi = network.index_video(q)
            expected = np.mean([float(network.video_similarity(qi, network.index_video(c))) for c in chunks])
    assert score == pytest.approx(expected, abs=1e-6)


def test_scores_match_the_original_on_the_parity_pairs(parity_dir, parity_inputs, parity_ref):
    network = load_similarity_network(str(parity_dir / "visil_random.pth"), device="cpu")
    full, raw = VideoScorer(network, CPU), VideoScorer(None, CPU)
    for i in range(5):
        q, t = parity_inputs[f"q{i}"], parity_inputs[f"t{i}"]
        assert full.score(full.prepare_query(q), full.prepare_targets([t]))[0] == pytest.approx(
            float(parity_ref[f"sim{i}"]), abs=1e-5)
        assert raw.score(raw.prepare_query(q), raw.prepare_targets([t]))[0] == pytest.approx(
            float(parity_ref[f"sim_raw{i}"]), abs=1e-5)


def test_score_store_scores_every_pair_and_reports_missing_ids(network, tmp_path):
    lengths = {"q1": 6, "q2": 2, "d1": 9, "d2": 5, "d3": 3, "d4": 30}
    identity = StoreIdentity("test", "test", 1.0, 512, dtype="float32")
    with PartWriter(tmp_path / "parts", identity, "test", dtype="float32") as writer:
        for seed, (video_id, frames) in enumerate(lengths.items()):
            writer.add(video_id, _video(seed, frames), np.arange(frames, dtype=float))
    store = tmp_path / "features.h5"
    merge_parts(store, writer.written, identity, "test")
    scorer = VideoScorer(network, CPU)
    seen = []
    result = score_store(str(store), ["q1", "q2", "qx"], ["d1", "d2", "d3", "d4", "dx"], scorer,
                         progress=CallbackProgress(update=lambda done, total: seen.append((done, total))), block=3)
    assert result.missing_queries == ["qx"] and result.missing_database == ["dx"]
    assert seen == [(3, 4), (4, 4)]
    for seed_q, query in ((0, "q1"), (1, "q2")):
        assert list(result.similarities[query]) == ["d1", "d2", "d3", "d4"]
        for seed_d, target in zip((2, 3, 4, 5), ("d1", "d2", "d3", "d4")):
            q = repeat_to_min_frames(_video(seed_q, lengths[query]))
            t = repeat_to_min_frames(_video(seed_d, lengths[target]))
            expected = scorer.score(scorer.prepare_query(q), scorer.prepare_targets([t]))[0]
            assert result.similarities[query][target] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("suffix", [".json", ".h5"])
def test_similarities_round_trip(tmp_path, suffix):
    from s2vs_cli.scoring.retrieval import load_similarities, save_similarities

    sims = {"q1": {"a": 0.5, "set/b": -0.25}, "set/q2": {"a": 1.0}, "q3": {}}
    save_similarities(tmp_path / f"s{suffix}", sims)
    assert load_similarities(tmp_path / f"s{suffix}") == sims
    assert [p.name for p in tmp_path.iterdir()] == [f"s{suffix}"]


def test_similarities_errors(tmp_path):
    from s2vs_cli.errors import S2VSError
    from s2vs_cli.scoring.retrieval import load_similarities, save_similarities

    with pytest.raises(S2VSError, match="similarities file not found"):
        load_similarities(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"q": [1, 2]}')
    with pytest.raises(S2VSError, match=r"expected \{query: \{target: score\}\}"):
        load_similarities(tmp_path / "bad.json")
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(S2VSError, match="not a similarities file"):
        load_similarities(tmp_path / "bad.h5")
    with pytest.raises(S2VSError, match="saved as .json or .h5"):
        save_similarities(tmp_path / "s.csv", {})


def test_one_product_for_targets_of_any_lengths_equals_one_at_a_time():
    from s2vs_cli.scoring.many_targets import frame_to_frame_similarities

    query = torch.from_numpy(_video(0, 7))
    targets = [torch.from_numpy(_video(seed, n)) for seed, n in ((1, 5), (2, 9), (3, 1), (4, 5))]
    maps = frame_to_frame_similarities(query, targets, chunk_elements=5000)  # several row blocks
    assert [m.shape for m in maps] == [(7, 5), (7, 9), (7, 1), (7, 5)]
    for m, t in zip(maps, targets):
        torch.testing.assert_close(m, frame_to_frame_similarity(query, t), atol=1e-6, rtol=0)


@pytest.mark.parametrize("features_only", [False, True])
def test_a_block_of_mixed_lengths_scores_as_each_target_alone(network, features_only):
    scorer = VideoScorer(None if features_only else network, CPU, chunk_frames=8)
    query = scorer.prepare_query(_video(0, 7))
    videos = [_video(seed, n) for seed, n in ((1, 5), (2, 19), (3, 4), (4, 5), (5, 9))]
    together = scorer.score(query, scorer.prepare_targets(videos))
    alone = [scorer.score(query, scorer.prepare_targets([v]))[0] for v in videos]
    np.testing.assert_allclose(together, alone, atol=1e-6, rtol=0)
    assert scorer.score(query, scorer.prepare_targets([])).shape == (0,)


def test_database_blocks_are_bounded_by_videos_and_frames():
    from s2vs_cli.scoring.retrieval import _groups

    assert _groups(list("abcde"), [3, 3, 3, 9, 1], max_frames=6) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert _groups(list("abcde"), [1] * 5, max_frames=100, max_items=2) == [["a", "b"], ["c", "d"], ["e"]]
