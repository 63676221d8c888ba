"""The search cascade's middle stage: frame descriptors beside the index, frame-level scores, the shortlist."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.jobs.search import Searcher, stored_query
from s2vs_cli.scoring import frame_level
from s2vs_cli.scoring.frame_level import frame_level_scores, query_frame_descriptors
from s2vs_cli.scoring.retrieval import VideoScorer
from s2vs_cli.storage.frame_descriptors import (CRC_FILE, DATA_FILE, FrameDescriptors, FrameDescriptorWriter,
                                                frame_descriptors)
from s2vs_cli.storage.index import index_dir_for, open_index
from s2vs_cli.storage.index_checks import SearchIndexError
from s2vs_cli.storage.store import FeatureStore
from test_search import _unit, collection, store, write_store  # noqa: F401 (store: the search tests' fixture)

runner = CliRunner()


def test_frame_descriptors_are_unit_mean_regions():
    x = np.random.default_rng(0).standard_normal((5, 9, 16)).astype(np.float32)
    d = frame_descriptors(x)
    assert d.shape == (5, 16) and d.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(d[3], x[3].mean(0) / np.linalg.norm(x[3].mean(0)), atol=1e-6)


def _written(folder, videos, base=None):
    writer = FrameDescriptorWriter(folder, 16, base)
    for video in videos:
        writer.add(video)
    return writer.finish()


def _videos(seed, count):
    rng = np.random.default_rng(seed)
    return [_unit(rng.standard_normal((int(rng.integers(1, 30)), 16))) for _ in range(count)]


def test_reads_give_the_asked_videos_in_the_asked_order(tmp_path):
    videos = _videos(0, 12)
    frames = _written(tmp_path, videos)
    frames.check()
    for numbers in ([3], [11, 0, 5], [7, 7, 2], list(range(12))):
        data, lengths = frames.read(numbers)
        assert lengths.tolist() == [len(videos[n]) for n in numbers]
        expected = np.concatenate([videos[n] for n in numbers]).astype(np.float16)
        np.testing.assert_array_equal(data, expected)
    assert not list(tmp_path.glob(".*"))  # the part file became the data file


@pytest.mark.parametrize("other_folder", [False, True])
def test_appending_keeps_the_old_videos_and_adds_the_new(tmp_path, other_folder):
    first, more = _videos(1, 5), _videos(2, 3)
    base = _written(tmp_path / "a", first)
    extended = _written(tmp_path / ("b" if other_folder else "a"), more, base)
    extended.check()
    data, lengths = extended.read([6, 0, 4])
    np.testing.assert_array_equal(data, np.concatenate([more[1], first[0], first[4]]).astype(np.float16))
    if other_folder:  # extended into the cache: the read-only original is untouched
        base.check()


def test_a_flipped_byte_is_an_error_naming_the_folder_and_video(tmp_path):
    videos = _videos(3, 4)
    frames = _written(tmp_path, videos)
    offset = int(frames.offsets[2]) * 16 * 2 + 7
    with (tmp_path / DATA_FILE).open("r+b") as data:
        data.seek(offset)
        byte = data.read(1)
        data.seek(offset)
        data.write(bytes([byte[0] ^ 0x10]))
    frames.read([0, 1, 3])  # the others still read
    with pytest.raises(SearchIndexError, match=rf"{tmp_path}: {DATA_FILE} is damaged at video number 2"):
        frames.read([1, 2])


def test_a_truncated_file_fails_its_size_check(tmp_path):
    frames = _written(tmp_path, _videos(4, 3))
    with (tmp_path / DATA_FILE).open("r+b") as data:
        data.truncate(frames.nbytes - 32)
    with pytest.raises(SearchIndexError, match=f"{DATA_FILE} holds"):
        frames.check()


@pytest.mark.parametrize("budget", [1 << 24, 40])  # one product, and blocks of a video or two (long queries)
def test_frame_level_scores_are_frame_chamfer(monkeypatch, budget):
    monkeypatch.setattr(frame_level, "PRODUCT_ELEMENTS", budget)
    rng = np.random.default_rng(5)
    query = _unit(rng.standard_normal((7, 16)))
    targets = _videos(6, 9)
    scores = frame_level_scores(torch.from_numpy(query), np.concatenate(targets).astype(np.float16),
                                np.array([len(t) for t in targets]))
    expected = [(query @ t.astype(np.float16).astype(np.float32).T).max(1).mean() for t in targets]
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_index_keeps_every_videos_frame_descriptors(store):
    index, _ = open_index(store)
    with FeatureStore(store) as features:
        number = index.catalogue.ids.index("long")
        data, lengths = index.frames.read([number])
        expected = frame_descriptors(features.read("long").features).astype(np.float16)
    assert lengths.tolist() == [50]
    np.testing.assert_array_equal(data, expected)
    assert (index_dir_for(store) / CRC_FILE).is_file()


def test_the_shortlist_keeps_the_copies_and_says_what_each_stage_scored(store):
    index, _ = open_index(store)
    with Searcher(store, VideoScorer(None, torch.device("cpu")), index, candidates=100, top_k=3, rerank=5) as searcher:
        result = searcher.search(stored_query(searcher.store, "query", 1.0))
    assert result.stages == {"index": 32, "frame_level": 32, "features_only": 5}
    assert result.candidates == 5 and {h.video_id for h in result.hits[:2]} == {"query-copy", "long"}
    long = next(h for h in result.hits if h.video_id == "long")
    assert (long.segment.target_start, long.segment.target_end) == (20.0, 30.0)


def test_rerank_is_at_least_top_k(store):
    index, _ = open_index(store)
    with Searcher(store, VideoScorer(None, torch.device("cpu")), index, top_k=8, rerank=2) as searcher:
        result = searcher.search(stored_query(searcher.store, "query", 1.0))
    assert len(result.hits) == 8 and result.stages["features_only"] == 8


def test_a_damaged_frame_file_fails_the_query_and_says_how_to_fix_it(store):
    open_index(store)
    data = index_dir_for(store) / DATA_FILE
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(raw)
    result = runner.invoke(app, ["search", "query", "--database", str(store), "--features-only", "--rerank", "3",
                                 "-k", "3", "--json"])
    assert result.exit_code == 3, result.output
    error = json.loads(result.stdout)["results"][0]["error"]
    assert f"{DATA_FILE} is damaged" in error and "s2vs index --rebuild" in error


def test_cli_json_and_print_config_show_the_cascade(store):
    result = runner.invoke(app, ["search", "query", "--database", str(store), "--features-only", "--rerank", "4",
                                 "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"][0]["stages"] == {"index": 32, "frame_level": 32, "features_only": 4}
    shown = runner.invoke(app, ["search", "q", "--database", str(store), "--print-config"]).stdout
    assert "candidates: 1000" in shown and "rerank: 100" in shown


@pytest.mark.parametrize("features_only", [True, False])
def test_hits_are_located_on_the_maps_they_were_scored_with(tmp_path, features_only):
    """The same segments and parts as locating each hit from scratch (compare's way), short videos included."""
    from s2vs_cli.models.visil import ViSiL

    videos = collection()
    videos["short"] = videos["query"][3:5]  # 2 frames: repeated to 4 on both paths
    path = tmp_path / "features.h5"
    write_store(path, videos)
    torch.manual_seed(0)
    scorer = VideoScorer(None if features_only else ViSiL().eval(), torch.device("cpu"))
    index, _ = open_index(path)
    with Searcher(path, scorer, index, top_k=33, rerank=33) as searcher:
        query = stored_query(searcher.store, "query", 1.0)
        result = searcher.search(query)
        assert "short" in [h.video_id for h in result.hits]
        for hit in result.hits:
            again = searcher._locate(query, hit.video_id)
            assert hit.segment == again.segment
            assert [m.times for m in hit.matches] == [m.times for m in again.matches]
            assert [m.score for m in hit.matches] == pytest.approx([m.score for m in again.matches], abs=1e-6)
