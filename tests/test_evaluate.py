"""`s2vs evaluate`: saved similarities, features files, custom ground truth, missing videos, --strict."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import StoreIdentity

runner = CliRunner()
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
METRICS = Path(__file__).resolve().parents[2] / "shared" / "parity" / "metrics"


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here runs offline (conftest's `offline`)."""


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_saved_similarities_give_the_originals_fivr_numbers(tmp_path):
    if not METRICS.exists():
        pytest.skip(f"{METRICS} not found: the ../shared folder is not beside the checkout")
    d = np.load(METRICS / "metric_similarities.npz")
    sims = {q: dict(zip(d["fivr5k_database"].tolist(), row.astype(float).tolist()))
            for q, row in zip(d["fivr5k_queries"].tolist(), d["fivr5k_scores"])}
    (tmp_path / "sims.json").write_text(json.dumps(sims))
    summary = _json(runner.invoke(app, [
        "evaluate", "--dataset", "FIVR-5K", "--annotations", str(DATA / "fivr_audio.pickle"),
        "--easy-duplicates", str(DATA / "fivr_easy_duplicates.txt"), "--from-similarities",
        str(tmp_path / "sims.json"), "--json", "-o", str(tmp_path / "results.json")]))
    expected = json.loads((METRICS / "metric_expected.json").read_text())["FIVR-5K"]
    for name, value in expected.items():
        assert summary["metrics"][name] == pytest.approx(value, abs=1e-6)
    assert json.loads((tmp_path / "results.json").read_text())["metrics"] == summary["metrics"]
    assert (summary["queries"], summary["database"]) == (50, 5000)


def test_vcdb_with_distractors_ranks_them_and_counts_the_unscored(tmp_path):
    """Positives at 0.9, everything else at 0.1, except one distractor above the positives of one query."""
    if not DATA.is_dir():
        pytest.skip(f"{DATA} not found: the ../shared folder (annotation files) is not beside the checkout")
    from s2vs_cli.datasets import load_benchmark

    vcdb = load_benchmark("VCDB", annotations=DATA / "vcdb.pickle", distractors=True)
    scored_distractors = vcdb.distractors[:10]
    sims = {q: {t: 0.9 if t in vcdb.positives[q] else 0.1 for t in vcdb.queries + scored_distractors}
            for q in vcdb.queries}
    first = vcdb.queries[0]
    sims[first][scored_distractors[0]] = 0.95
    (tmp_path / "sims.json").write_text(json.dumps(sims))
    summary = _json(runner.invoke(app, ["evaluate", "--dataset", "VCDB", "--annotations", str(DATA / "vcdb.pickle"),
                                        "--distractors", "--from-similarities", str(tmp_path / "sims.json"),
                                        "--json"]))
    n = len(vcdb.positives[first] - {first})
    first_ap = np.mean([k / (k + 1) for k in range(1, n + 1)])  # one false match above all n positives
    assert summary["metrics"]["VCDB_mAP"] == pytest.approx((len(vcdb.queries) - 1 + first_ap) / len(vcdb.queries))
    pairs = sum(len(vcdb.positives[q] - {q}) for q in vcdb.queries)
    assert summary["metrics"]["VCDB_uAP"] == pytest.approx(np.mean([k / (k + 1) for k in range(1, pairs + 1)]))
    assert summary["database"] == 528 + 10
    assert len(summary["missing_database"]) == len(vcdb.distractors) - 10


@pytest.fixture()
def custom_set(tmp_path) -> tuple[Path, Path]:
    """Features of 2 queries and 4 database videos (d1 a noisy copy of q1, d2 of q2), and their GT."""
    rng = np.random.default_rng(0)
    base = {name: rng.standard_normal((8, 9, 512)) for name in ("q1", "q2", "d3", "d4")}
    videos = dict(base, d1=base["q1"] + 0.3 * rng.standard_normal((8, 9, 512)),
                  d2=base["q2"][2:] + 0.3 * rng.standard_normal((6, 9, 512)))
    identity = StoreIdentity("test", "test", 1.0, 512, dtype="float32")
    with PartWriter(tmp_path / "parts", identity, "test", dtype="float32") as writer:
        for name, x in videos.items():
            x = (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
            writer.add(name, x, np.arange(len(x), dtype=float))
    merge_parts(tmp_path / "features.h5", writer.written, identity, "test")
    gt = {"queries": ["q1", "q2"], "database": ["d1", "d2", "d3", "d4", "d5"],
          "positives": {"q1": ["d1"], "q2": ["d2"]}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    return tmp_path / "features.h5", tmp_path / "gt.json"


def test_custom_set_from_features_with_missing_videos_counted(custom_set, tmp_path):
    features, gt = custom_set
    args = ["evaluate", "--dataset", "custom", "--ground-truth", str(gt), "--dataset-hdf5", str(features),
            "--features-only", "--json"]
    summary = _json(runner.invoke(app, args + ["--save-similarities", str(tmp_path / "s.h5")]))
    assert summary["metrics"]["mAP"] == 1.0 and summary["metrics"]["uAP"] == 1.0
    assert summary["missing_database"] == ["d5"] and summary["database"] == 4
    again = _json(runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(gt),
                                      "--from-similarities", str(tmp_path / "s.h5"), "--json"]))
    assert again["metrics"] == summary["metrics"]
    strict = runner.invoke(app, args + ["--strict"])
    assert strict.exit_code == 1 and "0 queries and 1 database video have no similarities (e.g. 'd5')" in strict.output


def test_segments_reported_on_annotated_pairs_are_scored(custom_set, tmp_path):
    features, gt_path = custom_set
    gt = json.loads(gt_path.read_text())
    gt["positives"]["q1"].append("d5")  # d5 is not in the feature file
    # d2 is q2's frames 2..7 (1 s each), so its 6 seconds match q2's seconds 2 to 8.
    gt["segments"] = {"q2": {"d2": [[2, 8, 0, 6]]}, "q1": {"d5": [[0, 1, 0, 1]]}}
    gt_path.write_text(json.dumps(gt))
    args = ["evaluate", "--dataset", "custom", "--ground-truth", str(gt_path), "--features-only"]
    summary = _json(runner.invoke(app, args + ["--dataset-hdf5", str(features), "--json",
                                               "--save-similarities", str(tmp_path / "s.json")]))
    assert summary["segments"] == [{"query": "q2", "target": "d2", "reported": [[2.0, 8.0, 0.0, 6.0]],
                                    "annotated": [[2.0, 8.0, 0.0, 6.0]]}]
    assert summary["metrics"]["segment_precision"] == summary["metrics"]["segment_recall"] == 1.0
    assert summary["segment_pairs"] == 1 and summary["segment_pairs_missing"] == [["q1", "d5"]]
    shown = runner.invoke(app, args + ["--dataset-hdf5", str(features)])
    assert "segments located on 1 annotated pair (1 left out: a video is missing)" in shown.output
    assert "segment_F1" in shown.output
    rescored = _json(runner.invoke(app, args + ["--from-similarities", str(tmp_path / "s.json"), "--json"]))
    assert "segment_precision" not in rescored["metrics"] and "need features" in rescored["segment_note"]


def test_notes_name_the_left_out_and_absent_queries(custom_set, tmp_path):
    features, gt_path = custom_set
    gt = json.loads(gt_path.read_text())
    gt["positives"]["q2"] = ["d5"]  # d5 is not in the feature file: q2 has nothing relevant left
    gt_path.write_text(json.dumps(gt))
    args = ["evaluate", "--dataset", "custom", "--ground-truth", str(gt_path), "--features-only",
            "--dataset-hdf5", str(features)]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "1 query had no positives among the videos evaluated and was left out of mAP: q2" in shown.output
    assert "2 queries and 4 database videos evaluated" in shown.output
    assert _json(runner.invoke(app, args + ["--json"]))["without_positives"] == ["q2"]
    gt["queries"], gt["positives"] = ["qx"], {"qx": ["d1"]}
    gt_path.write_text(json.dumps(gt))
    absent = runner.invoke(app, args)
    assert absent.exit_code == 1
    assert f"the ground truth query 'qx' is not in {features}" in " ".join(absent.output.split())


def test_full_network_runs_on_the_features(custom_set):
    features, gt = custom_set
    summary = _json(runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(gt),
                                        "--dataset-hdf5", str(features), "--model", "random", "--json"]))
    assert set(summary["metrics"]) >= {"mAP", "uAP"} and summary["model"] == "random (seed 0)"
    assert summary["random_weights"] is True
    shown = runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(gt), "--dataset-hdf5",
                                str(features), "--model", "random"])
    assert "random weights: a test of the pipeline" in shown.output


@pytest.mark.parametrize("args, message", [
    (["--dataset", "custom"], "give the features (--dataset-hdf5 FILE), the videos (--dataset-path DIR) or saved"),
    (["--dataset", "custom", "--dataset-hdf5", "f.h5", "--save-features", "x.h5"], "--save-features goes with"),
    (["--dataset", "custom", "--from-similarities", "x.json"], "--dataset custom needs --ground-truth"),
    (["--dataset", "nope", "--from-similarities", "x.json"], "unknown benchmark 'nope'"),
])
def test_usage_errors(args, message):
    result = runner.invoke(app, ["evaluate", *args])
    assert result.exit_code == 2 and message in result.output


@pytest.mark.slow
def test_end_to_end_on_edited_copies_of_real_clips(videos_dir, tmp_path):
    """Raw videos in, metrics out: two queries, their edited copies (crop + re-encode) among unrelated clips."""
    from media import center_crop, read_frames, write_video

    data = tmp_path / "videos"
    data.mkdir()
    for name in ("bikes", "car-detection"):
        source = videos_dir / f"{name}.mp4"
        (data / f"{name}.mp4").symlink_to(source)
        write_video(data / f"{name}-copy.mp4", [center_crop(f, 0.8) for f in read_frames(source, rate=5, seconds=12)],
                    rate=5, crf=35)
    for name in ("walk.mkv", "bird.mkv", "s2vs_example.mp4", "bigbuckbunny.mp4"):
        (data / name).symlink_to(videos_dir / name)
    gt = {"queries": ["bikes", "car-detection"],
          "database": ["bikes-copy", "car-detection-copy", "walk", "bird", "s2vs_example", "bigbuckbunny", "gone"],
          "positives": {"bikes": ["bikes-copy"], "car-detection": ["car-detection-copy"]},
          # Each copy is its source's first 12 seconds.
          "segments": {"bikes": {"bikes-copy": [[0, 12, 0, 12]]},
                       "car-detection": {"car-detection-copy": [[0, 12, 0, 12]]}}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    features = tmp_path / "features.hdf5"
    args = ["evaluate", "--dataset", "custom", "--ground-truth", str(tmp_path / "gt.json"), "--dataset-path",
            str(data), "--pattern", "{id}.*", "--features-only", "--backbone-weights", "random", "--pca", "none",
            "--json", "--save-features", str(features), "-j", "0"]
    summary = _json(runner.invoke(app, args))
    assert summary["metrics"]["mAP"] == 1.0 and summary["metrics"]["recall@1"] == 1.0
    assert summary["missing_database"] == ["gone"] and summary["database"] == 6
    assert summary["segment_pairs"] == 2
    assert summary["metrics"]["segment_recall"] > 0.8 and summary["metrics"]["segment_precision"] > 0.8
    assert features.exists()
    again = _json(runner.invoke(app, args))  # the saved features are reused, not extracted again
    assert again["metrics"] == summary["metrics"]
