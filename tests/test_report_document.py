"""The review document's builders: heatmap images, pair and match entries, thumbnails, saved results."""
from __future__ import annotations

import io
import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from s2vs_cli.datasets.benchmark import Evaluation
from s2vs_cli.errors import ConfigError, S2VSError
from s2vs_cli.datasets.evaluation_result import EvaluationResult
from s2vs_cli.report import thumbnails as thumbnails_module
from s2vs_cli.report.colors import colormap
from s2vs_cli.report.document import (FORMAT, HEATMAP_MAX_SIDE, document_counts, heatmap_entry, match_entries,
                                      new_document, pair_entry, query_entry)
from s2vs_cli.report.images import PendingImage, ReportImage
from s2vs_cli.report.saved_results import results_kind, saved_results_document
from s2vs_cli.report.thumbnails import THUMBNAIL_WIDTH, ThumbnailBatch, video_duration
from s2vs_cli.report.video_lookup import VideoFinder
from s2vs_cli.scoring.hits import QueryResult, SearchHit
from s2vs_cli.scoring.localization import Match, SegmentTimes
from s2vs_cli.scoring.pair import Comparison

# One solid colour per second of a test video: far apart, so a thumbnail's colour says which second it shows.
COLOURS = [(230, 30, 30), (30, 200, 30), (30, 30, 230), (230, 230, 30), (30, 220, 220), (220, 30, 220),
           (128, 128, 128), (250, 250, 250), (10, 10, 10), (250, 140, 20)]


def write_colour_video(path: Path, seconds: int = 10, rate: int = 10, gop: int = 10, first: int = 0) -> Path:
    """An H.264 clip whose second k is solid COLOURS[(first + k) % 10], a key frame every `gop` frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate, options={"g": str(gop), "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for frame_number in range(seconds * rate):
            image = np.empty((48, 64, 3), np.uint8)
            image[:] = COLOURS[(first + frame_number // rate) % len(COLOURS)]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def second_shown(image: ReportImage) -> int:
    """Which second of a colour video a JPEG thumbnail shows (the nearest colour of its centre)."""
    picture = np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"), dtype=np.float64)
    centre = picture[picture.shape[0] // 4: -picture.shape[0] // 4, picture.shape[1] // 4: -picture.shape[1] // 4]
    mean = centre.reshape(-1, 3).mean(axis=0)
    return int(np.argmin([np.abs(mean - colour).sum() for colour in COLOURS]))


@pytest.fixture(scope="module")
def colour_video(tmp_path_factory) -> Path:
    return write_colour_video(tmp_path_factory.mktemp("colours") / "colours.mp4")


def _png(entry: dict) -> np.ndarray:
    image = entry["image"]
    assert isinstance(image, ReportImage) and image.suffix == "png"
    return np.asarray(Image.open(io.BytesIO(image.data)).convert("RGB"))


# --- heatmap_entry ---------------------------------------------------------------------------------------

def test_heatmap_max_pooling_keeps_a_one_pixel_diagonal():
    rng = np.random.default_rng(0)
    sim = rng.uniform(0.0, 0.3, (2000, 2000)).astype(np.float32)
    sim[np.arange(2000), np.arange(2000)] = 1.0
    entry = heatmap_entry(sim, np.arange(2000.0), np.arange(2000.0), fps=1.0)
    pixels = _png(entry)
    assert pixels.shape == (HEATMAP_MAX_SIDE, HEATMAP_MAX_SIDE, 3)
    brightest = colormap(np.array(1.0))
    on_diagonal = (pixels == brightest).all(axis=2)
    # Every cell on the diagonal holds a 1.0 and shows it; no cell away from it does.
    assert on_diagonal[np.arange(256), np.arange(256)].all()
    assert on_diagonal.sum() <= 256 * 3  # the diagonal, and where a block boundary splits it, a neighbour
    assert entry["query_extent"] == [0.0, 2000.0] and entry["target_extent"] == [0.0, 2000.0]
    assert entry["value_range"][1] == 1.0 and 0.0 <= entry["value_range"][0] < 0.01


def test_heatmap_small_map_kept_at_its_size_with_extents_in_seconds():
    sim = np.linspace(-1, 1, 6 * 9, dtype=np.float32).reshape(6, 9)
    entry = heatmap_entry(sim, np.arange(6) * 0.5 + 2.0, np.arange(9) * 0.5, fps=2.0)
    pixels = _png(entry)
    assert pixels.shape == (6, 9, 3)
    assert entry["query_extent"] == [2.0, 5.0] and entry["target_extent"] == [0.0, 4.5]
    assert entry["value_range"] == [-1.0, 1.0]
    assert (pixels[0, 0] == colormap(np.array(0.0))).all() and (pixels[-1, -1] == colormap(np.array(1.0))).all()


def test_heatmap_of_a_repeated_short_video_keeps_one_copy():
    times = np.tile(np.arange(3.0), 2)  # 3 frames repeated to reach the model's 4
    sim = np.zeros((6, 6), np.float32)
    sim[np.arange(6), np.arange(6)] = 1.0
    entry = heatmap_entry(sim, times, times, fps=1.0)
    assert _png(entry).shape == (3, 3, 3)
    assert entry["query_extent"] == [0.0, 3.0]


def test_heatmap_rejects_mismatched_times():
    with pytest.raises(ValueError, match="one time per frame"):
        heatmap_entry(np.zeros((3, 4)), np.arange(3.0), np.arange(3.0), fps=1.0)


# --- entries ---------------------------------------------------------------------------------------------

def _match(q0, q1, t0, t1, score) -> Match:
    return Match(SegmentTimes(q0, q1, t0, t1), score)


def test_pair_entry_fields_and_thumbnail_requests(tmp_path):
    batch = ThumbnailBatch()
    pair = pair_entry("b.mp4", 0.8, [_match(1, 4, 11, 14, 0.9), _match(6, 8, 2, 4, 0.7)],
                      target_video=tmp_path / "b.mp4", query_video=tmp_path / "a.mp4", target_duration=20,
                      thumbnails=batch, heatmap=None, rank=2, normalized=0.5, verdict="copy", threshold=0.6,
                      label="positive", flag="positive ranked low")
    assert set(pair) == {"rank", "target", "target_video", "target_duration", "similarity", "normalized", "verdict",
                         "threshold", "label", "flag", "matches", "heatmap"}
    assert (pair["rank"], pair["target"], pair["similarity"], pair["normalized"]) == (2, "b.mp4", 0.8, 0.5)
    assert (pair["verdict"], pair["threshold"], pair["label"]) == ("copy", 0.6, "positive")
    assert pair["target_video"] == tmp_path / "b.mp4" and pair["target_duration"] == 20.0
    first = pair["matches"][0]
    assert (first["query_start"], first["query_end"], first["target_start"], first["target_end"]) == (1, 4, 11, 14)
    assert first["score"] == 0.9
    assert all(isinstance(m[k], PendingImage) for m in pair["matches"] for k in ("query_thumb", "target_thumb"))
    assert len(batch) == 4


def test_match_entries_from_saved_dicts_without_videos():
    saved = [_match(0, 3, 5, 8, 0.5).as_dict()]
    entries = match_entries(saved, None, None, ThumbnailBatch())
    assert entries == [{"query_start": 0.0, "query_end": 3.0, "target_start": 5.0, "target_end": 8.0,
                        "score": 0.5, "query_thumb": None, "target_thumb": None}]


def test_new_document_layout_and_counts():
    pair = pair_entry("t", 0.1, [_match(0, 1, 0, 1, 1.0)], target_video=None, query_video=None,
                      target_duration=None, thumbnails=None, heatmap=None)
    document = new_document("search", "s", model="m", notes=["n"], metrics=[{"name": "mAP", "value": 0.5}],
                            queries=[query_entry("q", hits=[pair]), query_entry("r", error="failed")])
    assert document["format"] == FORMAT and document["kind"] == "search" and document["notes"] == ["n"]
    assert document["metrics"] == [{"name": "mAP", "value": 0.5, "paper": None}]
    assert document["tool"].startswith("s2vs ") and document["created"][:2] == "20"
    assert document_counts(document) == {"queries": 2, "pairs": 1, "matches": 1, "images": 0}
    with pytest.raises(ValueError, match="kind"):
        new_document("browse", "x", model="m")


# --- thumbnails ------------------------------------------------------------------------------------------

def test_thumbnails_show_the_frame_at_each_time_one_pass_per_video(colour_video, monkeypatch):
    opened, seeks = [], []
    real_open, real_seek = av.open, thumbnails_module._FrameReader._seek
    monkeypatch.setattr(thumbnails_module.av, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    monkeypatch.setattr(thumbnails_module._FrameReader, "_seek",
                        lambda self, s: seeks.append(s) or real_seek(self, s))
    batch = ThumbnailBatch()
    wanted = {8.5: batch.request(colour_video, 8.5), 0.0: batch.request(colour_video, 0.0),
              3.22: batch.request(colour_video, 3.22)}
    assert batch.request(colour_video, 3.24) is wanted[3.22]  # the same tenth of a second: one image
    assert batch.resolve() == []
    assert len(opened) == 1
    assert seeks == [8.5]  # 3.22 -> 8.5 is far ahead: seek, then decode to the frame
    for seconds, pending in wanted.items():
        picture = Image.open(io.BytesIO(pending.image.data))
        assert picture.format == "JPEG" and picture.size == (THUMBNAIL_WIDTH, 120)
        assert second_shown(pending.image) == int(seconds)
    seeks.clear()  # the first time asked for is far in: seek there at once
    far_batch = ThumbnailBatch()
    far = far_batch.request(colour_video, 7.3)
    assert far_batch.resolve() == [] and seeks == [7.3] and second_shown(far.image) == 7


def test_unreadable_video_gives_no_thumbnail_and_a_note(tmp_path, colour_video):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    batch = ThumbnailBatch()
    broken, missing = batch.request(bad, 1.0), batch.request(tmp_path / "gone.mp4", 1.0)
    good = batch.request(colour_video, 1.0)
    notes = batch.resolve()
    assert broken.image is None and missing.image is None and second_shown(good.image) == 1
    assert len(notes) == 2 and notes[0].startswith(f"{bad}: no thumbnails (") and "gone.mp4" in notes[1]


def test_video_duration(colour_video, tmp_path):
    assert video_duration(colour_video) == pytest.approx(10.0, abs=0.1)
    assert video_duration(tmp_path / "gone.mp4") is None


# --- finding videos by id --------------------------------------------------------------------------------

def test_video_finder_searches_every_depth(tmp_path):
    for name in ("a.mp4", "deep/er/b.v2.mkv", "deep/b.txt", "c/video.mp4", ".hidden/d.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    finder = VideoFinder(tmp_path)
    assert finder.find("a") == tmp_path / "a.mp4"
    assert finder.find("b.v2") == tmp_path / "deep/er/b.v2.mkv"
    assert finder.find("b") == tmp_path / "deep/er/b.v2.mkv"  # a video before the .txt of the same id
    assert finder.find("d") is None and finder.find("zzz") is None
    assert VideoFinder(tmp_path, "{id}/video.*").find("c") == tmp_path / "c/video.mp4"
    with pytest.raises(ConfigError, match="exactly once"):
        VideoFinder(tmp_path, "video.*")
    with pytest.raises(ConfigError, match="not found"):
        VideoFinder(tmp_path / "nowhere")


# --- saved results ---------------------------------------------------------------------------------------

def _compare_json(query: str, target: str) -> dict:
    """What `s2vs compare --json` prints (Comparison.as_dict and the command's own keys)."""
    comparison = Comparison(query=query, target=target, similarity=0.7, frames=(10, 10),
                            segment=SegmentTimes(1, 4, 2, 5), frame_similarity=np.zeros((10, 10)),
                            query_times=np.arange(10.0), target_times=np.arange(10.0), features_only=True,
                            matches=[_match(1, 4, 2, 5, 0.8)])
    return comparison.as_dict() | {"model": "features only", "extractor": "ResNet-50 random", "random_weights": True,
                                   "device": "cpu", "precision": "fp32", "warnings": ["b.mp4: 1 frame lost"]}


def _search_json() -> dict:
    """What `s2vs search --json` prints (SearchSession.summary's layout)."""
    hits = [SearchHit("clipA", 0.9, SegmentTimes(0, 2, 3, 5), 0.8, [_match(0, 2, 3, 5, 0.9)]),
            SearchHit("clipB", 0.4, coarse=0.3)]
    results = [QueryResult("colours", hits, candidates=2, seconds=0.1), QueryResult("q2", error="q2: not found")]
    return {"database": "coll.h5", "mode": "exhaustive", "model": "features only", "random_weights": True,
            "results": [r.as_dict() for r in results]}


def _evaluate_json() -> dict:
    """What `s2vs evaluate --json` prints, with the per-query APs and errors of datasets/per_query.py."""
    evaluation = Evaluation("FIVR-5K", {"DSVR": 0.5, "CSVR": 0.4}, queries=2, database=10)
    summary = EvaluationResult(evaluation, "FIVR-5K", "s2vs_dns", paper={"DSVR": 0.9}).as_dict()
    return summary | {"per_query": {"q1": 0.25, "q2": 1.0}, "errors_for": "DSVR",
                      "errors": {"q1": {"positives": 2, "positives_ranked_low": [{"id": "p1", "rank": 5,
                                                                                   "similarity": 0.2}],
                                        "negatives_ranked_high": [{"id": "n1", "rank": 1, "similarity": 0.9},
                                                                  {"id": "n2", "rank": 2, "similarity": 0.8}],
                                        "positives_ranked_low_total": 1, "negatives_ranked_high_total": 3}}}


def _save(tmp_path: Path, data: dict, name: str = "results.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_results_kind_by_keys():
    assert [results_kind(d) for d in (_compare_json("a", "b"), _search_json(), _evaluate_json(), {"x": 1})] == \
        ["compare", "search", "evaluate", None]


def test_saved_compare_links_its_videos_relative_to_the_working_folder(tmp_path, colour_video, monkeypatch):
    monkeypatch.chdir(colour_video.parent)
    document = saved_results_document(_save(tmp_path, _compare_json("colours.mp4", "elsewhere/b.mp4")))
    assert document["kind"] == "compare" and document["random_weights"] is True
    (query,) = document["queries"]
    (pair,) = query["hits"]
    assert query["video"] == Path("colours.mp4") and query["duration"] == pytest.approx(10.0, abs=0.1)
    assert pair["target_video"] is None and pair["heatmap"] is None and pair["similarity"] == 0.7
    (match,) = pair["matches"]
    assert second_shown(match["query_thumb"].image) == 1 and match["target_thumb"] is None
    notes = " | ".join(document["notes"])
    assert "1 frame lost" in notes and "no heatmaps" in notes and "1 video not found: elsewhere/b.mp4" in notes


def test_saved_search_finds_ids_under_the_videos_folder(tmp_path, colour_video):
    document = saved_results_document(_save(tmp_path, _search_json()), videos=colour_video.parent,
                                      pattern="{id}.mp4")
    first, failed = document["queries"]
    assert first["video"] == colour_video.parent / "colours.mp4" and failed["error"] == "q2: not found"
    assert [(h["rank"], h["target"], len(h["matches"])) for h in first["hits"]] == [(1, "clipA", 1), (2, "clipB", 0)]
    assert second_shown(first["hits"][0]["matches"][0]["query_thumb"].image) == 0
    assert document["title"] == "search: 2 queries in coll.h5"
    assert any("3 videos not found" in note for note in document["notes"])  # clipA, clipB, q2


def test_saved_evaluate_holds_metrics_aps_and_errors(tmp_path):
    document = saved_results_document(_save(tmp_path, _evaluate_json()))
    assert document["kind"] == "evaluate" and document["title"] == "FIVR-5K"
    assert document["metrics"] == [{"name": "DSVR", "value": 0.5, "paper": 0.9},
                                   {"name": "CSVR", "value": 0.4, "paper": None}]
    q1, q2 = document["queries"]
    assert (q1["id"], q1["ap"], q2["ap"], q2["hits"]) == ("q1", 0.25, 1.0, [])
    assert [(h["target"], h["rank"], h["label"], h["flag"]) for h in q1["hits"]] == [
        ("p1", 5, "positive", "positive ranked low"), ("n1", 1, "negative", "negative ranked high"),
        ("n2", 2, "negative", "negative ranked high")]
    assert "each query's AP and ranking errors by DSVR" in document["notes"]
    assert q1["hits_note"] == "1 positive ranked below 2, 3 negatives above the last positive (3 shown, the worst first)"


@pytest.mark.parametrize("content, error, message", [
    ("{not json", ConfigError, "not valid JSON"),
    ("[1, 2]", ConfigError, "not an object"),
    ('{"hello": 1}', ConfigError, "not the JSON of s2vs compare, search, evaluate or dedup"),
    ('{"groups": [{"keep": "a"}], "pairs": []}', ConfigError, r"malformed dedup results \(KeyError: 'members'\)"),
    ('{"database": "x", "results": [{"hits": []}]}', ConfigError, "malformed search results"),
])
def test_saved_results_errors_name_the_file(tmp_path, content, error, message):
    path = tmp_path / "odd.json"
    path.write_text(content)
    with pytest.raises(error, match=message) as raised:
        saved_results_document(path)
    assert str(raised.value).startswith(f"{path}: ") and "\n" not in str(raised.value)


def test_saved_results_missing_file_and_stray_pattern(tmp_path):
    with pytest.raises(S2VSError, match="results file not found"):
        saved_results_document(tmp_path / "gone.json")
    with pytest.raises(ConfigError, match="--pattern goes with --videos"):
        saved_results_document(_save(tmp_path, _search_json()), pattern="{id}.mp4")
