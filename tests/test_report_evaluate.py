"""`s2vs evaluate`: each query's AP and ranking errors (checked by brute force, their mean against the reported
mAP on every benchmark), and `--report`: errors as pairs, heatmaps when features are at hand, videos with
--dataset-path, none from saved similarities; usage errors before any work."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.datasets import (CCWebBenchmark, EVVEBenchmark, FIVRBenchmark, VCDBBenchmark, average_precision,
                                 validate_ground_truth)
from s2vs_cli.datasets.per_query import rank_queries
from s2vs_cli.cli import app
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import StoreIdentity
from test_report_cli import RANDOM, page_data
from test_report_document import write_colour_video

runner = CliRunner()
QUERIES = [f"q{i}" for i in range(6)]
DATABASE = [f"d{i:02d}" for i in range(40)]


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here runs offline (conftest's `offline`)."""


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def random_similarities(seed: int = 0) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    return {q: {t: float(rng.random()) for t in DATABASE + QUERIES if t != q} for q in QUERIES}


def brute_force(ranked: list[tuple[str, float]], positives: set[str]) -> tuple[float, list, list]:
    """AP, positives ranked low and negatives ranked high of one ranking, by their definitions, counted by hand."""
    flags = [t in positives for t, _ in ranked]
    ap = average_precision(flags, len(positives))
    last = max(i for i, flag in enumerate(flags) if flag)
    low = [(t, i + 1, s) for i, (t, s) in enumerate(ranked) if flags[i] and i + 1 > len(positives)][::-1]
    high = [(t, i + 1, s) for i, (t, s) in enumerate(ranked) if not flags[i] and i < last]
    return ap, low, high


def test_per_query_ap_and_errors_match_a_brute_force_count():
    sims = random_similarities()
    positives = {q: set(DATABASE[3 * i: 3 * i + 2 + i]) for i, q in enumerate(QUERIES)}
    gt = validate_ground_truth({"queries": QUERIES, "database": DATABASE,
                                "positives": {q: sorted(p) for q, p in positives.items()}})
    per_query = rank_queries(gt, sims)
    errors = per_query.errors(shown=10)
    assert per_query.metric == "mAP" and list(per_query.aps()) == QUERIES
    for query in QUERIES:
        ranked = sorted(((t, s) for t, s in sims[query].items() if t in DATABASE), key=lambda item: -item[1])
        ap, low, high = brute_force(ranked, positives[query])
        assert per_query.aps()[query] == pytest.approx(ap)
        found = errors.get(query, {})
        assert [(v["id"], v["rank"], v["similarity"]) for v in found.get("positives_ranked_low", [])] == low[:10]
        assert [(v["id"], v["rank"], v["similarity"]) for v in found.get("negatives_ranked_high", [])] == high[:10]
        if found:
            assert (found["positives_ranked_low_total"], found["negatives_ranked_high_total"]) == (len(low), len(high))
            assert found["positives"] == len(positives[query])
    assert any(len(e["negatives_ranked_high"]) == 10 < e["negatives_ranked_high_total"] for e in errors.values())
    assert np.mean(list(per_query.aps().values())) == pytest.approx(gt.evaluate(sims).metrics["mAP"])


def _benchmarks():
    """One small in-memory benchmark of each kind, and the metric its per-query APs must average to."""
    q, d = QUERIES, DATABASE
    yield validate_ground_truth({"queries": q, "database": d, "positives": {x: d[i:i + 3] for i, x in enumerate(q[:5])},
                                 "negatives": {"q0": d[10:20]}}), "mAP"
    annotation = {x: {"ND": [d[i]], "DS": [d[i + 6]], "CS": [d[i + 12]], "IS": [d[i + 18]]}
                  for i, x in enumerate(q[1:])}
    yield FIVRBenchmark("FIVR-5K", q, d, None, "5k", annotation), "DSVR"
    yield VCDBBenchmark("VCDB", q, q + d, None, {x: frozenset([d[i], q[i - 1]]) for i, x in enumerate(q)}, []), \
        "VCDB_mAP"
    yield EVVEBenchmark("EVVE", q, d, None, {"a": (frozenset(q[:3]), frozenset(d[:5])),
                                             "b": (frozenset(q[3:]), frozenset(d[5:12]))}), "EVVE_mAP"
    index = {v: i for i, v in enumerate(d + q)}
    labels = [{index[d[i]]: "E", index[d[i + 1]]: "X", index[d[i + 2]]: "S", index[d[i + 3]]: "L"} for i in range(6)]
    yield CCWebBenchmark("CC_WEB_VIDEO", q, sorted(index), None, index, labels, [frozenset()] * 6), "mAP"


@pytest.mark.parametrize("benchmark, metric", list(_benchmarks()), ids=lambda b: getattr(b, "name", None))
def test_mean_of_per_query_ap_is_the_headline_metric(benchmark, metric):
    sims = random_similarities(seed=3)
    evaluation = benchmark.evaluate(sims, **({"hard": False} if isinstance(benchmark, FIVRBenchmark) else {}))
    per_query = rank_queries(benchmark, sims)
    assert per_query.metric == metric
    assert np.mean(list(per_query.aps().values())) == pytest.approx(evaluation.metrics[metric], abs=1e-12)
    assert set(per_query.errors()) <= set(per_query.aps()) and per_query.errors()


def test_document_shows_the_papers_numbers_and_the_headline_metrics_errors():
    from s2vs_cli.datasets.evaluation_result import EvaluationResult
    from s2vs_cli.report.evaluate_review import evaluation_document

    benchmark, _ = list(_benchmarks())[1]  # FIVR
    sims = random_similarities(seed=1)
    report = EvaluationResult(benchmark.evaluate(sims, hard=False), "FIVR-200K", "s2vs_dns",
                              paper={"DSVR": 0.925, "CSVR": 0.913, "ISVR": 0.841},
                              per_query=rank_queries(benchmark, sims))
    document = evaluation_document(report)
    metrics = {m["name"]: m for m in document["metrics"]}
    assert (metrics["DSVR"]["paper"], metrics["DSVD"]["paper"]) == (0.925, None)
    assert metrics["DSVR"]["value"] == report.evaluation.metrics["DSVR"]
    assert [(q["id"], q["ap"]) for q in document["queries"]] == list(report.per_query.aps().items())
    errors = report.per_query.errors()
    assert [len(q["hits"]) for q in document["queries"]] == [
        len(errors.get(q, {}).get("positives_ranked_low", ())) + len(errors.get(q, {}).get("negatives_ranked_high", ()))
        for q in report.per_query.aps()]
    assert any(note.startswith("per-query AP and errors by DSVR") for note in document["notes"])


@pytest.fixture()
def saved(tmp_path) -> Path:
    """Known ranks: q1 ranks d3 d1 d4 d5 d2 d6 (positives d1, d2), q2 ranks its one positive d6 first."""
    (tmp_path / "sims.json").write_text(json.dumps({
        "q1": {"d1": 0.8, "d2": 0.5, "d3": 0.9, "d4": 0.7, "d5": 0.6, "d6": 0.1},
        "q2": {"d1": 0.2, "d2": 0.3, "d3": 0.1, "d4": 0.4, "d5": 0.5, "d6": 0.9}}))
    (tmp_path / "gt.json").write_text(json.dumps({"queries": ["q1", "q2"], "database": [f"d{i}" for i in range(1, 7)],
                                                  "positives": {"q1": ["d1", "d2"], "q2": ["d6"]}}))
    return tmp_path


def test_report_from_saved_similarities_shows_the_errors_without_heatmaps(saved):
    args = ["evaluate", "--dataset", "custom", "--ground-truth", str(saved / "gt.json"), "--from-similarities",
            str(saved / "sims.json"), "--report", str(saved / "review.html"), "--json"]
    summary = _json(runner.invoke(app, args))
    assert summary["per_query"] == {"q1": pytest.approx(0.45), "q2": 1.0} and summary["metrics"]["mAP"] == 0.725
    assert summary["errors_for"] == "mAP" and list(summary["errors"]) == ["q1"]
    errors = summary["errors"]["q1"]
    assert errors["positives_ranked_low"] == [{"id": "d2", "rank": 5, "similarity": 0.5}]
    assert [(v["id"], v["rank"]) for v in errors["negatives_ranked_high"]] == [("d3", 1), ("d4", 3), ("d5", 4)]
    data = page_data(saved / "review.html")
    assert data["kind"] == "evaluate" and data["title"] == "custom"
    metrics = [(m["name"], m["value"], m["paper"]) for m in data["metrics"]]
    assert metrics[:2] == [("mAP", 0.725, None), ("uAP", summary["metrics"]["uAP"], None)]
    q1, q2 = data["queries"]
    assert (q1["id"], q1["ap"], q2["id"], q2["ap"], q2["hits"]) == ("q1", pytest.approx(0.45), "q2", 1.0, [])
    assert [(h["target"], h["rank"], h["label"], h["flag"]) for h in q1["hits"]] == [
        ("d2", 5, "positive", "positive ranked low"), ("d3", 1, "negative", "negative ranked high"),
        ("d4", 3, "negative", "negative ranked high"), ("d5", 4, "negative", "negative ranked high")]
    assert all(h["heatmap"] is None and h["matches"] == [] for h in q1["hits"])
    assert "1 positive ranked below 2" in q1["hits_note"] and "3 negatives" in q1["hits_note"]
    assert any("no heatmaps" in note and "sims.json" in note for note in data["notes"])


def _store(path: Path, videos: dict[str, np.ndarray]) -> Path:
    identity = StoreIdentity("test", "test", 1.0, 512, dtype="float32")
    with PartWriter(path.with_suffix(".parts"), identity, "test", dtype="float32") as writer:
        for name, x in videos.items():
            writer.add(name, (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32),
                       np.arange(len(x), dtype=float))
    merge_parts(path, writer.written, identity, "test")
    return path


def test_report_from_features_locates_each_error_pair(tmp_path):
    """q1's positive d3 is unrelated (ranked low); d2, a negative, holds q1's frames 2..9 (ranked high)."""
    rng = np.random.default_rng(0)
    q1 = rng.standard_normal((10, 9, 512))
    videos = {"q1": q1, "d1": q1 + 0.2 * rng.standard_normal(q1.shape),
              "d2": np.concatenate([rng.standard_normal((6, 9, 512)), q1[2:] + 0.2 * rng.standard_normal((8, 9, 512))]),
              "d3": rng.standard_normal((7, 9, 512)), "d4": rng.standard_normal((5, 9, 512))}
    features = _store(tmp_path / "features.h5", videos)
    (tmp_path / "gt.json").write_text(json.dumps({"queries": ["q1"], "database": ["d1", "d2", "d3", "d4"],
                                                  "positives": {"q1": ["d1", "d3"]}}))
    summary = _json(runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(tmp_path / "gt.json"),
                                        "--dataset-hdf5", str(features), "--features-only", "--report",
                                        str(tmp_path / "review.html"), "--json"]))
    errors = summary["errors"]["q1"]
    assert [v["id"] for v in errors["positives_ranked_low"]] == ["d3"]
    assert [v["id"] for v in errors["negatives_ranked_high"]][0] == "d2"
    (query,) = page_data(tmp_path / "review.html")["queries"]
    assert query["duration"] == 10.0 and query["video"] is None
    assert len(query["hits"]) == len(errors["positives_ranked_low"]) + len(errors["negatives_ranked_high"])
    assert all(h["heatmap"] is not None and (tmp_path / h["heatmap"]["image"]).is_file() for h in query["hits"])
    copied = next(h for h in query["hits"] if h["target"] == "d2")
    assert copied["target_duration"] == 14.0 and copied["heatmap"]["target_extent"] == [0.0, 14.0]
    assert [(m["query_start"], m["target_start"]) for m in copied["matches"]] == [(2.0, 6.0)]


def test_report_from_videos_links_them_with_thumbnails(tmp_path, monkeypatch):
    """b is a itself (ranked first, a negative), c other colours: a's positive, ranked low."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for name, first in (("a", 0), ("b", 0), ("c", 5)):
        write_colour_video(videos / f"{name}.mp4", seconds=4, rate=4, first=first)
    (tmp_path / "gt.json").write_text(json.dumps({"queries": ["a"], "database": ["b", "c"],
                                                  "positives": {"a": ["c"]}}))
    monkeypatch.chdir(tmp_path)
    summary = _json(runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", "gt.json",
                                        "--dataset-path", "videos", "--pattern", "{id}.mp4", *RANDOM,
                                        "--workers", "0", "--report", "review.html", "--json"]))
    errors = summary["errors"]["a"]
    assert errors["negatives_ranked_high"][0] == {"id": "b", "rank": 1, "similarity": pytest.approx(1.0, abs=1e-4)}
    assert [v["id"] for v in errors["positives_ranked_low"]] == ["c"]
    data = page_data(tmp_path / "review.html")
    (query,) = data["queries"]
    assert query["video"] == "videos/a.mp4" and query["duration"] == pytest.approx(4, abs=0.1)
    same = next(h for h in query["hits"] if h["target"] == "b")
    assert same["target_video"] == "videos/b.mp4" and same["heatmap"] is not None and same["matches"]
    assert all((tmp_path / m["query_thumb"]).is_file() and (tmp_path / m["target_thumb"]).is_file()
               for m in same["matches"])
    assert not any("videos not linked" in note for note in data["notes"])


@pytest.mark.parametrize("args, code, message", [
    (["--dataset", "custom", "--ground-truth", "gt.json", "--from-similarities", "sims.json", "--report",
      "no/such/folder/review.html"], 1, "no/such/folder/review.html: cannot write here"),
])
def test_report_usage_errors_come_before_any_work_in_one_line(saved, monkeypatch, args, code, message):
    monkeypatch.chdir(saved)
    result = runner.invoke(app, ["evaluate", *args, "--save-similarities", "saved.json"])
    assert result.exit_code == code, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (saved / "saved.json").exists()
