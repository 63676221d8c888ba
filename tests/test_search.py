"""Search: the index beside a store (build, add, stale), two-stage against exhaustive, segments, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.storage.index import INDEX_VERSION, index_dir_for, open_index, segment_descriptors
from s2vs_cli.scoring.retrieval import VideoScorer
from s2vs_cli.jobs.search import Searcher, stored_query
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import FeatureStore, StoreIdentity

runner = CliRunner()
IDENTITY = StoreIdentity("test", "test", 1.0, 512, dtype="float32")


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def collection(seed: int = 0, count: int = 30) -> dict[str, np.ndarray]:
    """Random videos, plus 'query-copy' (noisy copy of 'query') and 'long' hiding query's frames at 20..29."""
    rng = np.random.default_rng(seed)
    videos = {f"v{i:03d}": _unit(rng.standard_normal((int(rng.integers(6, 40)), 9, 512))) for i in range(count)}
    query = _unit(rng.standard_normal((10, 9, 512)))
    videos["query"] = query
    videos["query-copy"] = _unit(query + 0.02 * rng.standard_normal(query.shape))  # noise norm ~0.45
    long = _unit(rng.standard_normal((50, 9, 512)))
    long[20:30] = _unit(query + 0.02 * rng.standard_normal(query.shape))
    videos["long"] = long
    return videos


def write_store(path: Path, videos: dict[str, np.ndarray], keep_existing: bool = False, parts_first: bool = False,
                identity: StoreIdentity = IDENTITY):
    parts = path.with_name(path.name + f".test-parts-{len(videos)}")
    with PartWriter(parts, identity, "test", dtype="float32") as writer:
        for video_id, x in videos.items():
            writer.add(video_id, x, np.arange(len(x), dtype=float))
    merge_parts(path, writer.written, identity, "test", keep_existing=keep_existing, parts_first=parts_first)


@pytest.fixture()
def store(tmp_path) -> Path:
    path = tmp_path / "features.h5"
    write_store(path, collection())
    return path


def test_segment_descriptors_are_unit_means_of_16_frames():
    x = np.random.default_rng(0).standard_normal((40, 9, 8)).astype(np.float32)
    d = segment_descriptors(x)
    assert d.shape == (3, 8)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1, atol=1e-6)
    expected = x[32:].mean((0, 1))
    np.testing.assert_allclose(d[2], expected / np.linalg.norm(expected), atol=1e-6)


def test_index_is_built_once_then_found_fresh(store):
    index, update = open_index(store)
    assert update.action == "built" and update.added == 33 and index.kind == "flat"
    assert (index_dir_for(store) / "videos.json").is_file()
    again, update = open_index(store)
    assert update.action == "fresh" and len(again) == 33
    ids = [video_id for video_id, _ in again.candidates(segment_descriptors(collection()["query"]), 3, "query")]
    assert set(ids[:2]) == {"query-copy", "long"}


def test_new_videos_are_added_and_changed_ones_rebuild(store):
    open_index(store)
    rng = np.random.default_rng(5)
    write_store(store, {"new": _unit(rng.standard_normal((12, 9, 512)))}, keep_existing=True)
    index, update = open_index(store)
    assert (update.action, update.added) == ("added", 1) and len(index) == 34
    assert index.candidates(segment_descriptors(collection()["query"]), 40)[-1][0] in index.catalogue.ids
    # The same ids and lengths but other features: found by the digests, never assumed fresh.
    write_store(store, {"v000": _unit(rng.standard_normal((FeatureStore(store).shape("v000")[0], 9, 512)))},
                keep_existing=True, parts_first=True)
    index, update = open_index(store)
    assert update.action == "rebuilt" and "'v000' changed in the store" in update.reason


@pytest.mark.parametrize("features_only", [True, False])
def test_two_stage_agrees_with_exhaustive_on_a_small_store(store, features_only):
    torch.manual_seed(0)
    from s2vs_cli.models.visil import ViSiL

    scorer = VideoScorer(None if features_only else ViSiL().eval(), torch.device("cpu"))
    index, _ = open_index(store)
    with Searcher(store, scorer, index, candidates=100, top_k=5) as two_stage, \
            Searcher(store, scorer, None, top_k=5) as exhaustive:
        query = stored_query(two_stage.store, "query", 1.0)
        a, b = two_stage.search(query), exhaustive.search(query)
    assert [h.video_id for h in a.hits] == [h.video_id for h in b.hits]
    assert [h.similarity for h in a.hits] == pytest.approx([h.similarity for h in b.hits], abs=1e-6)
    assert a.candidates == b.candidates == 32  # every other video: 100 candidates cover the store
    assert "query" not in [h.video_id for h in a.hits]
    if features_only:
        assert {h.video_id for h in a.hits[:2]} == {"query-copy", "long"}
        segment = next(h.segment for h in a.hits if h.video_id == "long")
        assert (segment.query_start, segment.query_end) == (0.0, 10.0)
        assert (segment.target_start, segment.target_end) == (20.0, 30.0)


def test_few_candidates_still_find_the_copies(store):
    index, _ = open_index(store)
    with Searcher(store, VideoScorer(None, torch.device("cpu")), index, candidates=3, top_k=3) as searcher:
        result = searcher.search(stored_query(searcher.store, "query", 1.0))
    assert result.candidates == 3 and {h.video_id for h in result.hits[:2]} == {"query-copy", "long"}
    assert all(h.coarse is not None for h in result.hits)


def _json(result) -> dict:
    assert result.exit_code in (0, 3), result.output
    return json.loads(result.stdout)


def test_cli_search_by_id_with_a_bad_query_among_good_ones(store, tmp_path):
    args = ["search", "query", "nope", "v001", "--database", str(store), "--features-only", "-k", "3", "--json",
            "-o", str(tmp_path / "results.json")]
    result = runner.invoke(app, args)
    assert result.exit_code == 3  # some queries failed; the others ran
    summary = _json(result)
    good, bad, other = summary["results"]
    assert [h["id"] for h in good["hits"][:2]] in (["query-copy", "long"], ["long", "query-copy"])
    assert good["hits"][0]["segment"] is not None and good["hits"][0]["coarse"] is not None
    top = good["hits"][0]
    assert top["matches"] and set(top["matches"][0]) == {"query_start", "query_end", "target_start", "target_end",
                                                          "score"}
    assert top["matches"][0] | {"score": None} == top["segment"] | {"score": None}  # the best part first
    assert bad["error"] == "not a video file, a folder of videos or an id in the feature file"
    assert other["error"] is None and len(other["hits"]) == 3
    assert summary["mode"] == "index (flat)"
    assert json.loads((tmp_path / "results.json").read_text()) == summary
    shown = runner.invoke(app, args[:-3])
    assert "failed: nope: not a video file" in shown.output and "1 of 3 queries failed" in shown.output


def test_cli_exhaustive_and_index_commands(store):
    exhaustive = _json(runner.invoke(app, ["search", "query", "--database", str(store), "--features-only",
                                           "--exhaustive", "--json"]))
    assert exhaustive["mode"] == "exhaustive" and exhaustive["results"][0]["candidates"] == 32
    assert not index_dir_for(store).exists()  # exhaustive search needs no index
    built = _json(runner.invoke(app, ["index", str(store), "--json"]))
    assert (built["action"], built["videos"], built["kind"]) == ("built", 33, "flat")
    assert _json(runner.invoke(app, ["index", str(store), "--json"]))["action"] == "fresh"
    assert _json(runner.invoke(app, ["index", str(store), "--rebuild", "--json"]))["action"] == "rebuilt"


@pytest.mark.parametrize("args, code, message", [
    (["search", "x"], 2, "give the collection's feature file: --database FEATURES.h5"),
    (["search", "x", "--database", "missing.h5"], 1, "missing.h5: feature file not found"),
    (["search", "x", "--database", ".", "--features-only"], 1, ".: is a folder; give the collection's feature file"),
    (["search", "x", "--database", "f.h5", "--top-k", "0"], 2, "top_k, candidates and rerank must be at least 1"),
    (["search", "x", "--database", "f.h5", "--device", "nowhere"], 2, "unknown device 'nowhere'"),
    (["index", "missing.h5"], 1, "missing.h5: feature file not found"),
])
def test_cli_exit_codes_follow_the_readme(args, code, message):
    """README: 1 when an input, output or weights file cannot be used; 2 on bad options or configuration."""
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_search_says_when_weights_are_random(store):
    args = ["search", "query", "--database", str(store), "--model", "random", "-k", "2"]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "random weights: a test of the pipeline" in shown.stderr
    data = _json(runner.invoke(app, args + ["--json"]))
    assert data["random_weights"] is True and data["model"].startswith("random")
    assert _json(runner.invoke(app, args + ["--features-only", "--json"]))["random_weights"] is False


def test_cli_piped_tables_have_no_trailing_spaces(store):
    result = runner.invoke(app, ["search", "query", "v001", "--database", str(store), "--features-only", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "query-copy" in result.stdout
    assert [line for line in result.stdout.splitlines() if line != line.rstrip()] == []
    assert "32 videos re-ranked" in result.stdout


@pytest.mark.slow
def test_edited_copies_rank_above_unrelated_clips(videos_dir, tmp_path):
    """A store of real clips and their edited copies; each original, as a video file, finds its copy first."""
    from media import center_crop, read_frames, write_video

    collection_dir = tmp_path / "collection"
    collection_dir.mkdir()
    originals = ("bikes", "car-detection", "s2vs_example")
    for name in originals:
        frames = read_frames(next(videos_dir.glob(f"{name}.*")), rate=5, seconds=10)
        write_video(collection_dir / f"{name}-copy.mp4", [center_crop(f, 0.8) for f in frames], rate=5, crf=35)
    for path in sorted(videos_dir.glob("*.mkv"))[:8]:
        (collection_dir / path.name).symlink_to(path)
    store = tmp_path / "collection.h5"
    random = ["--backbone-weights", "random", "--pca", "random"]
    extracted = runner.invoke(app, ["extract-features", str(collection_dir), "-o", str(store), "-q", "-j", "0", *random])
    assert extracted.exit_code == 0, extracted.output
    queries = [str(next(videos_dir.glob(f"{name}.*"))) for name in originals]
    summary = _json(runner.invoke(app, ["search", *queries, "--database", str(store), "--features-only", "--json",
                                        "--candidates", "5", *random]))
    for name, result in zip(originals, summary["results"]):
        assert result["error"] is None and result["hits"][0]["id"] == f"{name}-copy", result
    # The cascade's frame-level stage alone choosing the one video re-ranked: still each copy.
    summary = _json(runner.invoke(app, ["search", *queries, "--database", str(store), "--features-only", "--json",
                                        "-k", "1", "--rerank", "1", *random]))
    for name, result in zip(originals, summary["results"]):
        assert result["stages"] == {"index": 11, "frame_level": 11, "features_only": 1}, result
        assert result["hits"][0]["id"] == f"{name}-copy", result


@pytest.mark.parametrize("kind, flat_max, sq_max", [("ivf-sq8", 100, 10**9), ("ivf-pq", 100, 200)])
def test_larger_collections_get_inverted_list_indexes(tmp_path, monkeypatch, kind, flat_max, sq_max):
    """The kinds chosen by size (thresholds lowered here) are built, saved, loaded and find the copies."""
    import s2vs_cli.storage.index as index_module

    monkeypatch.setattr(index_module, "FLAT_MAX", flat_max)
    monkeypatch.setattr(index_module, "SQ_MAX", sq_max)
    videos = collection(count=300)  # about 2,900 segment entries
    path = tmp_path / "features.h5"
    write_store(path, videos)
    built, update = open_index(path)
    assert update.action == "built" and built.kind == kind and built.index.ntotal == len(built.entries)
    loaded, update = open_index(path)
    assert update.action == "fresh" and loaded.index.ntotal == built.index.ntotal
    found = [video_id for video_id, _ in loaded.candidates(segment_descriptors(videos["query"]), 5, "query")]
    assert "query-copy" in found


def test_a_corrupt_query_file_fails_alone(tmp_path):
    store = tmp_path / "features.h5"
    # Made (as far as the file says) by the extractor the query files will be extracted with.
    write_store(store, collection(), identity=StoreIdentity("ResNet-50 random (seed 0)", "random (seed 0)", 1.0, 512))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video" * 100)
    result = runner.invoke(app, ["search", str(bad), "query", "--database", str(store), "--features-only",
                                 "--backbone-weights", "random", "--pca", "random", "--json"])
    assert result.exit_code == 3
    broken, good = _json(result)["results"]
    assert broken["error"] and "\n" not in broken["error"] and str(bad) in broken["error"]
    assert good["error"] is None and good["hits"]


def test_query_files_need_the_stores_extraction_settings(store, videos_dir):
    result = runner.invoke(app, ["search", str(videos_dir / "bikes.mp4"), "--database", str(store), "--features-only",
                                 "--backbone-weights", "random", "--pca", "random"])
    assert result.exit_code == 2
    assert "was made with other settings than the query videos would be: backbone 'test'" in result.output


@pytest.mark.parametrize("damage, reason", [
    (lambda folder: (folder / "videos.json").write_text("[1, 2]"), "made by another version of s2vs"),
    (lambda folder: (folder / "videos.json").write_text(json.dumps({"version": INDEX_VERSION, "segment_frames": 16})),
     "unreadable"),
    (lambda folder: (folder / "index.faiss").write_bytes(b"junk"), "index.faiss is 4 bytes"),
    (lambda folder: (folder / "catalogue.npz").write_bytes(b"junk"), "catalogue.npz is 4 bytes"),
])
def test_a_damaged_index_is_rebuilt_and_says_why(store, damage, reason):
    open_index(store)
    damage(index_dir_for(store))
    index, update = open_index(store)
    assert update.action == "rebuilt" and reason in update.reason and len(index) == 33
    assert open_index(store)[1].action == "fresh"


def test_a_video_without_frames_is_missing_not_a_hang(tmp_path):
    from s2vs_cli.scoring.retrieval import score_store

    path = tmp_path / "features.h5"
    videos = collection(count=3)
    videos["empty"] = np.zeros((0, 9, 512), dtype=np.float32)
    write_store(path, videos)
    index, _ = open_index(path)
    assert "empty" in index.catalogue.ids
    scored = score_store(str(path), ["query"], ["empty", "query-copy"], VideoScorer(None, torch.device("cpu")))
    assert scored.missing_database == ["empty"] and list(scored.similarities["query"]) == ["query-copy"]
    with Searcher(path, VideoScorer(None, torch.device("cpu")), None) as searcher:
        hits = searcher.search(stored_query(searcher.store, "query", 1.0)).hits
    assert "empty" not in [h.video_id for h in hits]
