"""`s2vs evaluate --dataset VSC22 --report`: per query its predicted pairs (negatives first), the copies missed and
its positives, counted by hand on a tiny set; the cap on pairs a query; heatmaps from features (predictions
unchanged) and none from saved predictions; videos in the challenge's layout linked; the page's metrics the
evaluation's."""
from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from s2vs_cli.datasets.vsc import read_segments
from s2vs_cli.cli import app
from s2vs_cli.config import EvaluateConfig
from s2vs_cli.jobs.evaluate_vsc import run_vsc_evaluation
from s2vs_cli.report.document import heatmap_entry
from s2vs_cli.report.images import PendingImage
from s2vs_cli.report.page import write_page
from s2vs_cli.datasets.vsc22_review import MISSED_FLAG, NEGATIVE_FLAG, review_queries
from s2vs_cli.report.video_lookup import benchmark_videos
from s2vs_cli.report.vsc_review import review_ids, vsc_document
from test_evaluate_vsc import GROUND_TRUTH_HEADER, MATCHES_HEADER, write_planted_set
from test_report_cli import page_data
from test_report_document import write_colour_video

runner = CliRunner()
NEGATIVE, POSITIVE = "negative", "positive"
# 3 queries, 5 references: Q1 copies R1 and R2, Q2 copies R3, Q3 copies nothing.
TINY_TRUTH = "Q1,R1,4,10,2,8\nQ1,R2,20,25,0,5\nQ2,R3,0,6,10,16\n"
# Predicted segments; a pair's score is its best segment's: Q2-R1 .95, Q1-R1 .9, Q1-R4 .8, Q3-R2 .4, Q1-R5 .3.
TINY_MATCHES = ("Q1,R1,4,10,2,8,0.9\nQ1,R1,12,14,9,11,0.5\nQ1,R4,0,5,0,5,0.8\nQ1,R5,1,3,1,3,0.3\n"
                "Q2,R1,2,8,2,8,0.95\nQ3,R2,0,4,0,4,0.4\n")


pytestmark = pytest.mark.usefixtures("offline")  # conftest: no downloads, empty caches


def _evaluate(*args) -> dict:
    result = runner.invoke(app, ["evaluate", "--dataset", "VSC22", *map(str, args), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _hits(query: dict) -> list[tuple]:
    return [(h["target"], h["rank"], h["label"], h["flag"], pytest.approx(h["similarity"])) for h in query["hits"]]


@pytest.fixture()
def tiny(tmp_path) -> Path:
    (tmp_path / "gt.csv").write_text(GROUND_TRUTH_HEADER + TINY_TRUTH)
    (tmp_path / "matches.csv").write_text(MATCHES_HEADER + TINY_MATCHES)
    return tmp_path


def _tiny_report(folder: Path):
    cfg = EvaluateConfig(dataset="VSC22", ground_truth=str(folder / "gt.csv"))
    return run_vsc_evaluation(cfg, None, from_matches=str(folder / "matches.csv"), heatmap=heatmap_entry)


def test_saved_matches_review_counted_by_hand(tiny):
    summary = _evaluate("--ground-truth", tiny / "gt.csv", "--from-matches", tiny / "matches.csv", "--report",
                        tiny / "review.html")
    # Ranked: Q2-R1 (no copy), Q1-R1 (copy), Q1-R4, Q3-R2, Q1-R5 (none): precision 1/2 at the one copy found, of 3.
    assert summary["metrics"]["pair_uAP"] == pytest.approx(1 / 6)
    data = page_data(tiny / "review.html")  # the embedded JSON parses
    assert data["kind"] == "evaluate" and data["title"] == "VSC22"
    assert [(m["name"], m["value"], m["paper"]) for m in data["metrics"]] == [
        (name, value, None) for name, value in summary["metrics"].items()]
    q1, q2, q3 = data["queries"]
    assert [q["id"] for q in data["queries"]] == ["Q1", "Q2", "Q3"] and all(q["ap"] is None for q in data["queries"])
    lowest = 0.3  # a copy missed has no score of its own in saved matches: the lowest predicted
    assert _hits(q1) == [("R4", 2, NEGATIVE, NEGATIVE_FLAG, 0.8), ("R5", 3, NEGATIVE, NEGATIVE_FLAG, 0.3),
                         ("R2", None, POSITIVE, MISSED_FLAG, lowest), ("R1", 1, POSITIVE, None, 0.9)]
    assert _hits(q2) == [("R1", 1, NEGATIVE, NEGATIVE_FLAG, 0.95), ("R3", None, POSITIVE, MISSED_FLAG, lowest)]
    assert _hits(q3) == [("R2", 1, NEGATIVE, NEGATIVE_FLAG, 0.4)]
    matches = {h["target"]: [(m["query_start"], m["query_end"], m["target_start"], m["target_end"], m["score"])
                             for m in h["matches"]] for h in q1["hits"]}
    assert matches == {"R4": [(0, 5, 0, 5, 0.8)], "R5": [(1, 3, 1, 3, 0.3)], "R2": [],
                       "R1": [(4, 10, 2, 8, 0.9), (12, 14, 9, 11, 0.5)]}  # best first
    assert q1["hits_note"] == ("3 predicted pairs (1 positive, 2 negatives), 1 copy missed; ground truth: "
                               "R1 q 0:04.0–0:10.0 ↔ r 0:02.0–0:08.0, R2 q 0:20.0–0:25.0 ↔ r 0:00.0–0:05.0")
    assert q3["hits_note"] == "1 predicted pair (0 positives, 1 negative), 0 copies missed"
    # Saved predictions: no frame map, so no heatmap (the page says so), and no video.
    hits = [h for q in data["queries"] for h in q["hits"]]
    assert all(h["heatmap"] is None and h["target_video"] is None for h in hits)
    assert any(note.startswith("no heatmaps") and "matches.csv" in note for note in data["notes"])
    assert any("lowest predicted score (0.3000)" in note for note in data["notes"])


def test_the_cap_keeps_the_errors_first(tiny):
    report = _tiny_report(tiny)
    q1 = {shown: [(p.ref_id, p.flag) for p in review_queries(report.review, shown)[0].pairs] for shown in (1, 2, 3, 9)}
    assert q1 == {1: [("R2", MISSED_FLAG)],                                   # a copy missed is kept first,
                  2: [("R4", NEGATIVE_FLAG), ("R2", MISSED_FLAG)],            # then the highest negatives,
                  3: [("R4", NEGATIVE_FLAG), ("R5", NEGATIVE_FLAG), ("R2", MISSED_FLAG)],
                  9: [("R4", NEGATIVE_FLAG), ("R5", NEGATIVE_FLAG), ("R2", MISSED_FLAG), ("R1", None)]}  # positives
    document = vsc_document(report, shown=2)
    assert [len(q["hits"]) for q in document["queries"]] == [2, 2, 1]
    assert "; 2 of 4 shown, the errors first; ground truth" in document["queries"][0]["hits_note"]
    assert "shown" not in document["queries"][1]["hits_note"]
    assert run_vsc_evaluation(
        EvaluateConfig(dataset="VSC22", ground_truth=str(tiny / "gt.csv")), None,
        from_matches=str(tiny / "matches.csv")).review is None  # nothing kept unless a review is asked for


def test_the_challenges_candidates_and_matches(parity_dir, tmp_path):
    folder = parity_dir / "vsc"
    expected = json.loads((folder / "expected.json").read_text())
    with open(folder / "ground_truth.csv", newline="") as f:
        true_pairs = {(row["query_id"], row["ref_id"]) for row in csv.DictReader(f)}
    summary = _evaluate("--ground-truth", folder / "ground_truth.csv", "--from-similarities", folder / "candidates.csv",
                        "--report", tmp_path / "pairs.html")
    data = page_data(tmp_path / "pairs.html")
    assert data["metrics"][0]["value"] == summary["metrics"]["pair_uAP"] == pytest.approx(
        expected["descriptor_micro_ap"], abs=1e-6)
    predicted = [h for q in data["queries"] for h in q["hits"] if h["rank"] is not None]
    missed = [(q["id"], h["target"]) for q in data["queries"] for h in q["hits"] if h["flag"] == MISSED_FLAG]
    assert len(predicted) == expected["candidate_pairs"]  # at most 17 a query: none left out
    assert len(missed) + sum(h["label"] == POSITIVE for h in predicted) == len(true_pairs)
    for query in data["queries"]:
        labels = [(h["label"], h["flag"]) for h in query["hits"]]
        assert all(((query["id"], h["target"]) in true_pairs) == (h["label"] == POSITIVE) for h in query["hits"])
        assert labels == sorted(labels, key=[(NEGATIVE, NEGATIVE_FLAG), (POSITIVE, MISSED_FLAG),
                                             (POSITIVE, None)].index)  # negatives, copies missed, positives
        negatives = [h["similarity"] for h in query["hits"] if h["flag"] == NEGATIVE_FLAG]
        assert negatives == sorted(negatives, reverse=True)
        assert all(h["matches"] == [] and h["heatmap"] is None for h in query["hits"])
    assert any(note.startswith("no copied parts: candidates.csv") for note in data["notes"])
    summary = _evaluate("--ground-truth", folder / "ground_truth.csv", "--from-matches", folder / "matches.csv",
                        "--report", tmp_path / "segments.html")
    data = page_data(tmp_path / "segments.html")
    assert {m["name"]: m["value"] for m in data["metrics"]} == summary["metrics"]
    assert summary["metrics"]["matching_uAP"] == pytest.approx(expected["matching_segment_ap"], abs=1e-6)
    shown = [m for q in data["queries"] for h in q["hits"] for m in h["matches"]]
    assert len(shown) == expected["predicted_matches"]  # every predicted segment, on its pair


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict]:
    """test_evaluate_vsc's planted set (6 queries, 8 references, 6 copies) and one copy the features do not show
    (Q100004-R200000), evaluated with 2 pairs a query and a review."""
    folder = tmp_path_factory.mktemp("vsc_review")
    write_planted_set(folder)
    with open(folder / "gt.csv", "a") as f:
        f.write("Q100004,R200000,4.0,8.0,0.0,4.0\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("S2VS_HOME", str(folder / "s2vs-cache"))
        patch.setenv("S2VS_OFFLINE", "1")
        common = ["--ground-truth", folder / "gt.csv", "--dataset-hdf5", folder / "features.h5", "--features-only",
                  "--pairs-per-query", "2"]
        summary = _evaluate(*common, "--save-matches", folder / "reviewed.csv", "--save-similarities",
                            folder / "pairs.csv", "--report", folder / "review.html")
        _evaluate(*common, "--save-matches", folder / "plain.csv")
    return folder, summary


def test_review_from_features_has_every_heatmap_and_the_same_predictions(planted):
    folder, summary = planted
    assert (folder / "reviewed.csv").read_text() == (folder / "plain.csv").read_text()  # the review changes nothing
    data = page_data(folder / "review.html")
    assert {m["name"]: m["value"] for m in data["metrics"]} == summary["metrics"]
    with open(folder / "pairs.csv", newline="") as f:
        predicted = [(row["query_id"], row["ref_id"], float(row["score"])) for row in csv.DictReader(f)]
    truth = {s.pair for s in read_segments(folder / "gt.csv", ground_truth=True)}
    segments = defaultdict(list)
    for s in read_segments(folder / "reviewed.csv"):
        segments[s.pair].append((s.query_start, s.query_end, s.ref_start, s.ref_end, s.score))
    hits = {(q["id"], h["target"]): h for q in data["queries"] for h in q["hits"]}
    assert {pair for pair, h in hits.items() if h["rank"] is not None} == {(q, r) for q, r, _ in predicted}
    for query, ref, score in predicted:
        hit = hits[(query, ref)]
        assert (hit["label"] == POSITIVE) == ((query, ref) in truth) and hit["similarity"] == pytest.approx(score)
        assert [(m["query_start"], m["query_end"], m["target_start"], m["target_end"], m["score"])
                for m in hit["matches"]] == sorted(segments[(query, ref)], key=lambda s: -s[4])
    missed = hits[("Q100004", "R200000")]
    assert (missed["rank"], missed["label"], missed["flag"], missed["matches"]) == (None, POSITIVE, MISSED_FLAG, [])
    assert missed["similarity"] <= min(score for _, _, score in predicted)  # its own score, below the cut
    assert [h["flag"] for h in hits.values()].count(NEGATIVE_FLAG) == 12 - 6  # the 6 planted copies rank first
    assert all(h["heatmap"] is not None and (folder / h["heatmap"]["image"]).is_file() for h in hits.values())
    assert hits[("Q100000", "R200001")]["heatmap"]["target_extent"] == [0.0, 24.0]
    durations = {q["id"]: q["duration"] for q in data["queries"]}
    assert durations["Q100000"] == 15.0 and durations["Q100004"] == 4.0  # from the frame times: 3 + 8 + 4, 4
    assert not any(note.startswith("no heatmaps") for note in data["notes"])
    assert any(note.startswith("videos not linked") for note in data["notes"])


def test_videos_in_the_challenges_layout_are_linked_with_thumbnails(tiny):
    for folder, name in (("query", "Q1"), ("reference", "R1"), ("reference", "R4")):
        (tiny / folder).mkdir(exist_ok=True)
        write_colour_video(tiny / folder / f"{name}.mp4", seconds=3, rate=4)
    cfg = EvaluateConfig(dataset="VSC22", ground_truth=str(tiny / "gt.csv"), dataset_path=str(tiny))
    videos = benchmark_videos(cfg, ["Q1", "R1", "R4", "R9"])  # the default pattern, */{id}.mp4; R9 is nowhere
    assert videos == {"Q1": tiny / "query" / "Q1.mp4", "R1": tiny / "reference" / "R1.mp4",
                      "R4": tiny / "reference" / "R4.mp4"}
    report = _tiny_report(tiny)
    assert review_ids(report) == ["Q1", "Q2", "Q3", "R4", "R5", "R2", "R1", "R3"]  # the videos the review shows
    document = vsc_document(report, videos)
    q1 = document["queries"][0]
    assert q1["video"] == videos["Q1"] and q1["duration"] == pytest.approx(3, abs=0.1)
    r1 = next(h for h in q1["hits"] if h["target"] == "R1")
    assert r1["target_video"] == videos["R1"] and r1["target_duration"] == pytest.approx(3, abs=0.1)
    thumbs = [m[side] for m in r1["matches"] for side in ("query_thumb", "target_thumb")]
    assert len(thumbs) == 4 and all(isinstance(t, PendingImage) and t.image is not None for t in thumbs)
    data = page_data(write_page(document, tiny / "review.html"))
    assert data["queries"][0]["video"] == "query/Q1.mp4"
    assert [h["target_video"] for h in data["queries"][0]["hits"]] == ["reference/R4.mp4", None, None,
                                                                      "reference/R1.mp4"]


def test_an_unwritable_report_stops_before_any_work(tiny, monkeypatch):
    monkeypatch.chdir(tiny)
    result = runner.invoke(app, ["evaluate", "--dataset", "VSC22", "--ground-truth", "gt.csv", "--from-matches",
                                 "matches.csv", "--report", "no/such/folder/review.html", "--output", "out.json"])
    assert result.exit_code == 1, result.output
    assert "no/such/folder/review.html: cannot write here" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tiny / "out.json").exists()
