"""`s2vs search --report`: heatmaps kept for located hits only when asked, the document's queries, hits, matches,
thumbnails and notes, and the report path checked before any work."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.jobs.search import Searcher, stored_query
from s2vs_cli.report.document import heatmap_entry
from s2vs_cli.scoring.pair import as_video_features, compare_features, locate_pair, stored_video_features
from s2vs_cli.scoring.retrieval import VideoScorer
from s2vs_cli.storage.index import index_dir_for
from test_report_cli import page_data
from test_report_document import write_colour_video
from test_search import collection, write_store

runner = CliRunner()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("search-report") / "features.h5"
    write_store(path, collection())
    return path


@pytest.fixture(scope="module")
def reported(store) -> dict:
    """One `search query v001 nope -k 3 --report --report-videos` run (exhaustive, features only), from its
    folder; the videos folder holds (nested) clips for 'query' and 'long' only."""
    folder = store.parent
    videos = folder / "videos" / "nested"
    videos.mkdir(parents=True)
    write_colour_video(videos / "query.mp4", seconds=10, rate=2)
    write_colour_video(videos / "long.mp4", seconds=50, rate=2)
    (videos / "long.json").write_text("{}")  # not a video: never linked
    (folder / "out").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        result = runner.invoke(app, ["search", "query", "v001", "nope", "--database", "features.h5", "--exhaustive",
                                     "--features-only", "-k", "3", "--report", "out/review.html",
                                     "--report-videos", "videos", "--json"])
    assert result.exit_code == 3, result.output  # 'nope' failed; the others ran
    return {"folder": folder, "summary": json.loads(result.stdout), "data": page_data(folder / "out/review.html")}


@pytest.mark.parametrize("with_network", [False, True])
def test_located_pair_finds_what_compare_finds_and_keeps_only_a_small_heatmap(store, with_network):
    from s2vs_cli.models.visil import ViSiL

    torch.manual_seed(0)
    network = ViSiL().eval() if with_network else None
    with Searcher(store, VideoScorer(None, torch.device("cpu")), None) as searcher:
        query = as_video_features("query", searcher.store.read("query").features, np.arange(10.0), 1.0)
        target = stored_video_features(searcher.store, "long", 1.0)
        compared = compare_features(query, target, network)
        located = locate_pair(query, target, network, heatmap=heatmap_entry)
        plain = locate_pair(query, target, network)
    assert located.segment == compared.segment and located.matches == compared.matches
    assert plain.heatmap is None
    assert (located.query_duration, located.target_duration) == (10.0, 50.0)
    heatmap = located.heatmap
    assert heatmap["query_extent"] == [0.0, 10.0] and heatmap["target_extent"] == [0.0, 50.0]
    assert heatmap["image"].suffix == "png" and heatmap["image"].data.startswith(b"\x89PNG")


def test_search_keeps_heatmaps_of_located_hits_only_for_a_review(store):
    scorer = VideoScorer(None, torch.device("cpu"))
    with Searcher(store, scorer, None, top_k=4, locate=2, heatmap=heatmap_entry) as reviewing, \
            Searcher(store, scorer, None, top_k=4, locate=2) as plain:
        query = stored_query(reviewing.store, "query", 1.0)
        reviewed, result = reviewing.search(query), plain.search(query)
    assert [h.heatmap is not None for h in reviewed.hits] == [True, True, False, False]
    assert all(h.heatmap is None for h in result.hits)
    assert [h.as_dict() for h in reviewed.hits] == [h.as_dict() for h in result.hits]  # the JSON is unchanged
    assert reviewed.duration == 10.0 and {h.target_duration for h in reviewed.hits[:2]} == {10.0, 50.0}


def test_report_document_counts_queries_hits_and_matches(reported):
    data, summary = reported["data"], reported["summary"]
    assert data["kind"] == "search" and data["title"] == "search: 3 queries in features.h5"
    assert summary["report"] == "out/review.html" and data["model"] == "features only"
    assert [q["id"] for q in data["queries"]] == ["query", "v001", "nope"]
    assert [len(q["hits"]) for q in data["queries"]] == [3, 3, 0]
    assert data["queries"][2]["error"] == summary["results"][2]["error"] and data["queries"][0]["error"] is None
    for query, result in zip(data["queries"], summary["results"]):
        assert [h["target"] for h in query["hits"]] == [h["id"] for h in result["hits"]]
        assert [h["rank"] for h in query["hits"]] == list(range(1, len(result["hits"]) + 1))
        assert [h["similarity"] for h in query["hits"]] == pytest.approx([h["similarity"] for h in result["hits"]])
        assert [len(h["matches"]) for h in query["hits"]] == [len(h["matches"]) for h in result["hits"]]
    hit = next(h for h in data["queries"][0]["hits"] if h["target"] == "long")
    assert [(m["query_start"], m["target_start"]) for m in hit["matches"]] == [(0.0, 20.0)]


def test_report_has_a_heatmap_per_located_hit_and_thumbnails_where_videos_are(reported):
    folder, data = reported["folder"], reported["data"]
    pairs = [h for q in data["queries"] for h in q["hits"]]
    assert all(h["heatmap"] is not None and (folder / "out" / h["heatmap"]["image"]).is_file() for h in pairs)
    query = data["queries"][0]
    assert query["video"] == "../videos/nested/query.mp4" and query["duration"] == pytest.approx(10, abs=0.1)
    long = next(h for h in query["hits"] if h["target"] == "long")
    assert long["target_video"] == "../videos/nested/long.mp4"
    assert long["target_duration"] == pytest.approx(50, abs=0.1)
    (match,) = long["matches"]
    assert (folder / "out" / match["query_thumb"]).is_file() and (folder / "out" / match["target_thumb"]).is_file()
    copy = next(h for h in query["hits"] if h["target"] == "query-copy")
    assert copy["target_video"] is None and copy["target_duration"] == 10.0  # from the stored frames
    assert all(m["query_thumb"] is not None and m["target_thumb"] is None for m in copy["matches"])
    assert data["queries"][1]["video"] is None  # v001 has no clip
    missing = [n for n in data["notes"] if "not found under videos" in n]
    assert len(missing) == 1 and "v001" in missing[0] and "query-copy" in missing[0] and "long" not in missing[0]


def test_report_without_videos_says_how_to_link_them(store, tmp_path):
    page = tmp_path / "plain.html"
    result = runner.invoke(app, ["search", "query", "--database", str(store), "--exhaustive", "--features-only",
                                 "-k", "2", "--report", str(page)])
    assert result.exit_code == 0, result.output
    assert f"report: {page}" in " ".join(result.stderr.split())
    data = page_data(page)
    assert any("--report-videos" in note for note in data["notes"])
    assert all(m["query_thumb"] is None for h in data["queries"][0]["hits"] for m in h["matches"])


@pytest.mark.parametrize("args, code, message", [
    (["--report", "no/such/folder/out.html"], 1, "no/such/folder/out.html: cannot write here"),
    (["--report", "out.html", "--report-videos", "no-videos"], 2, "no-videos: videos folder not found"),
    (["--report-videos", "."], 2, "--report-videos goes with --report OUT.html"),
])
def test_report_options_fail_before_any_work_in_one_line(tmp_path, monkeypatch, args, code, message):
    database = tmp_path / "features.h5"
    write_store(database, {"a": collection(count=1)["v000"], "b": collection(count=1)["query"]})
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["search", "a", "--database", "features.h5", "--features-only", *args])
    assert result.exit_code == code, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not index_dir_for(database).exists()  # nothing was done: not even the index built
