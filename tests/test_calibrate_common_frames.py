"""Thresholds and common frames (issue 28): calibrate scores pairs as search and dedup do (the feature file's
boilerplate and low-information frames left out, unless --keep-common-frames), its file records which, and a run
that scores otherwise is refused in one line instead of judging its scores with a threshold fitted on others."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.config import CalibrateConfig
from s2vs_cli.datasets.registry import load_ground_truth
from s2vs_cli.errors import ConfigError, FeatureStoreError
from s2vs_cli.jobs.calibrate import score_calibration_set
from s2vs_cli.runtime import Runtime
from s2vs_cli.scoring.calibration import KEPT, LEFT_OUT, ScoreIdentity, Thresholds, common_frames_rule, load_thresholds
from s2vs_cli.storage.store import FeatureStore
import test_calibrate
import test_common_frames
from test_calibrate import IDENTITY, _calibrate, _error, _thresholds
from test_common_frames import _search
from test_compare import RANDOM
from test_search import _unit, write_store

runner = CliRunner()
labelled, planted_store = test_calibrate.labelled, test_common_frames.planted_store  # their module's fixtures
EVERY_FRAME = ("{name} was calibrated on scores of every frame; this run leaves out common frames (calibrate "
               "again, or pass --keep-common-frames)")
LEFT_OUT_ONES = ("{name} was calibrated on scores with common frames left out; this run scores every frame "
                 "(calibrate again with --keep-common-frames, or run {how})")


def test_the_file_records_the_rule_and_a_file_without_it_means_kept(tmp_path):
    path = tmp_path / "t.json"
    for rule in (KEPT, LEFT_OUT):
        original = _thresholds(common_frames=rule)
        original.save(path)
        assert json.loads(path.read_text())["common_frames"] == rule
        assert load_thresholds(path) == original
    written_before = {k: v for k, v in _thresholds(common_frames=LEFT_OUT).as_dict().items() if k != "common_frames"}
    path.write_text(json.dumps(written_before))
    assert load_thresholds(path).common_frames == KEPT
    path.write_text(json.dumps(written_before | {"common_frames": "some"}))
    with pytest.raises(ConfigError) as refused:
        load_thresholds(path)
    assert str(refused.value) == (f"{path}: malformed thresholds file (common_frames: expected \"left out\" or "
                                  "\"kept\", got 'some')")


def test_a_run_scoring_other_frames_is_refused_in_one_line():
    identity = ScoreIdentity("s2vs_dns", "ResNet-50 imagenet", "vcdb", 1.0)
    kept, left_out = (Thresholds(**{**_thresholds(common_frames=rule).__dict__, "path": "/x/thresholds.json"})
                      for rule in (KEPT, LEFT_OUT))
    kept.check_applies(identity, None, KEPT)
    left_out.check_applies(identity, None, LEFT_OUT)
    kept.check_applies(identity, None)  # callers that never leave frames out: kept
    with pytest.raises(ConfigError) as refused:
        kept.check_applies(identity, None, LEFT_OUT)
    assert str(refused.value) == EVERY_FRAME.format(name="thresholds.json")
    with pytest.raises(ConfigError) as refused:
        left_out.check_applies(identity, None, KEPT)
    assert str(refused.value) == LEFT_OUT_ONES.format(name="thresholds.json", how="without --keep-common-frames")
    with pytest.raises(ConfigError, match=r"or run with the collection they were left out of: --collection F\.h5\)$"):
        left_out.check_applies(identity, None, KEPT, "with the collection they were left out of: --collection F.h5")
    assert (common_frames_rule(True), common_frames_rule(False)) == (KEPT, LEFT_OUT)


@pytest.fixture(scope="module")
def calibrated(labelled, tmp_path_factory) -> dict[str, Path]:
    """Thresholds of the labelled set: calibrate's default (common frames left out), --keep-common-frames, and
    the latter as a file written before the rule was recorded; the default's table under 'table'."""
    folder = tmp_path_factory.mktemp("calibrated")
    files = {name: folder / name for name in ("left-out.json", "kept.json", "old.json")}
    table = _calibrate(labelled, "-o", str(files["left-out.json"]))
    assert table.exit_code == 0, table.output
    assert _calibrate(labelled, "--keep-common-frames", "-o", str(files["kept.json"])).exit_code == 0
    written = json.loads(files["kept.json"].read_text())
    files["old.json"].write_text(json.dumps({k: v for k, v in written.items() if k != "common_frames"}))
    return files | {"table": table.stdout}


def test_calibrate_records_how_it_scored(calibrated):
    assert json.loads(calibrated["left-out.json"].read_text())["common_frames"] == "left out"
    assert json.loads(calibrated["kept.json"].read_text())["common_frames"] == "kept"
    assert re.search(r"common frames +left out \(as search and dedup leave them out\)", calibrated["table"])


def _search_with(labelled, thresholds: Path, *extra: str):
    return runner.invoke(app, ["search", "q0", "--database", str(labelled["features.h5"]), "--features-only",
                               "--exhaustive", "--thresholds", str(thresholds), "--json", *extra])


def test_search_refuses_thresholds_of_every_frame_on_scores_without_common_frames(labelled, calibrated):
    """The defect: thresholds fitted on every frame (an old file, or --keep-common-frames) judged search's default
    scores (common frames left out) without a word."""
    for name in ("old.json", "kept.json"):
        assert _error(_search_with(labelled, calibrated[name]), 2) == EVERY_FRAME.format(name=name)
        judged = _search_with(labelled, calibrated[name], "--keep-common-frames")
        assert judged.exit_code == 0, judged.output
        assert {hit["verdict"] for hit in json.loads(judged.stdout)["results"][0]["hits"]} == {"copy", "not a copy"}
    refused = _search_with(labelled, calibrated["left-out.json"], "--keep-common-frames")
    assert _error(refused, 2) == LEFT_OUT_ONES.format(name="left-out.json", how="without --keep-common-frames")
    judged = _search_with(labelled, calibrated["left-out.json"])
    assert judged.exit_code == 0, judged.output


def test_search_gives_no_verdict_when_the_common_frames_cannot_be_found(labelled, calibrated, monkeypatch):
    """Without --thresholds a damaged store's common frames are a note and every frame is scored; with them, those
    scores are not what the thresholds were fitted on: the damage is the error."""
    import s2vs_cli.jobs.search as search_job

    def damaged(*args, **kwargs):
        raise FeatureStoreError("features.h5: 'q1' is damaged")
    monkeypatch.setattr(search_job, "common_frames_of_store", damaged)
    assert _error(_search_with(labelled, calibrated["left-out.json"]), 1) == "features.h5: 'q1' is damaged"
    plain = runner.invoke(app, ["search", "q0", "--database", str(labelled["features.h5"]), "--features-only",
                                "--exhaustive", "--json"])
    assert plain.exit_code == 0 and "no frames left out as boilerplate" in plain.stderr


def test_dedup_applies_thresholds_only_to_scores_made_the_same_way(labelled, calibrated, tmp_path):
    rng = np.random.default_rng(3)
    original = _unit(rng.standard_normal((6, 2, 16)))
    videos = {"orig": original, "copy": _unit(original + 0.05 * rng.standard_normal(original.shape))}
    videos |= {f"other{n}": _unit(rng.standard_normal((6, 2, 16))) for n in range(3)}
    write_store(tmp_path / "small.h5", videos, identity=IDENTITY)

    def dedup(thresholds: str, *extra: str):
        return runner.invoke(app, ["dedup", str(tmp_path / "small.h5"), "--exhaustive", "--features-only",
                                   "--thresholds", str(calibrated[thresholds]), "-o", str(tmp_path / "d.json"),
                                   *extra])

    assert _error(dedup("old.json"), 2) == EVERY_FRAME.format(name="old.json")
    assert _error(dedup("left-out.json", "--keep-common-frames"), 2) == \
        LEFT_OUT_ONES.format(name="left-out.json", how="without --keep-common-frames")
    assert not (tmp_path / "d.json").exists()
    for name, extra in (("left-out.json", ()), ("kept.json", ("--keep-common-frames",))):
        result = dedup(name, *extra)
        assert result.exit_code == 0, result.output
        written = json.loads((tmp_path / "d.json").read_text())
        assert written["settings"]["thresholds"]["file"] == str(calibrated[name])
        assert written["pairs"] and all(pair["verdict"] in ("copy", "not a copy") for pair in written["pairs"])


def test_calibrate_scores_each_pair_as_search_does(planted_store, tmp_path):
    """A query opening with the intro twelve unrelated videos share: calibrate's score of each pair is search's
    similarity, with the intro left out by default and kept with --keep-common-frames; they differ."""
    with FeatureStore(planted_store) as store:
        database = [video_id for video_id in store.ids() if video_id != "query"]
    ground_truth = tmp_path / "gt.json"
    ground_truth.write_text(json.dumps({"queries": ["query"], "database": database,
                                        "positives": {"query": ["query-copy"]}}))
    benchmark = load_ground_truth("custom", ground_truth=ground_truth)
    scores = {}
    for keep in (False, True):
        cfg = CalibrateConfig(ground_truth=str(ground_truth), dataset_hdf5=str(planted_store), features_only=True,
                              keep_common_frames=keep)
        scores[keep], normalization = score_calibration_set(cfg, benchmark, Runtime.cpu())
        assert normalization is None
        searched = _search(planted_store, "--exhaustive", "--precision", "fp32",
                           *(("--keep-common-frames",) if keep else ()))["hits"]
        assert len(searched) == len(database)
        for hit in searched:
            assert scores[keep]["query"][hit["id"]] == pytest.approx(hit["similarity"], abs=1e-5), hit["id"]
    intro = [f"v{n:02d}" for n in range(12)]
    assert all(scores[True]["query"][v] > scores[False]["query"][v] + 0.05 for v in intro)


def test_compare_leaves_frames_out_only_with_a_collection(videos_dir, tmp_path):
    """compare scores every frame unless --collection names the features whose common frames it leaves out: the
    thresholds are checked against that, before any frame is extracted."""
    clip = str(videos_dir / "carphone_pristine.mp4")  # 4 frames
    identity = ScoreIdentity("features only", "ResNet-50 random (seed 0)", "random (seed 0)", 1.0)
    for rule in (KEPT, LEFT_OUT):
        _thresholds(identity=identity, threshold=0.995, common_frames=rule).save(tmp_path / f"{rule}.json")

    def compare(rule: str, *extra: str):
        return runner.invoke(app, ["compare", clip, clip, *RANDOM, "--features-only", "--thresholds",
                                   str(tmp_path / f"{rule}.json"), "--json", *extra])

    assert _error(compare(LEFT_OUT), 2) == LEFT_OUT_ONES.format(
        name="left out.json", how="with the collection they were left out of: --collection FEATURES.h5")
    missing = str(tmp_path / "missing.h5")  # refused before the collection is opened
    assert _error(compare(KEPT, "--collection", missing), 2) == EVERY_FRAME.format(name="kept.json")
    result = compare(KEPT, "--collection", missing, "--keep-common-frames")  # every frame: as calibrated
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verdict"] == "copy"


def test_saved_similarities_are_of_every_frame(labelled, tmp_path):
    """Saved similarities (evaluate's) cannot have frames left out: their thresholds say kept, and calibrate says so."""
    gt = json.loads(labelled["gt.json"].read_text())
    sims = {q: {v: 0.9 if v in gt["positives"][q] else 0.1 for v in gt["database"]} for q in gt["queries"]}
    (tmp_path / "sims.json").write_text(json.dumps(sims))
    result = runner.invoke(app, ["calibrate", "--ground-truth", str(labelled["gt.json"]), "--from-similarities",
                                 str(tmp_path / "sims.json"), "--features-only", "-o", str(tmp_path / "t.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "t.json").read_text())["common_frames"] == "kept"
    assert ("saved similarities are scores of every frame: these thresholds apply to runs with "
            "--keep-common-frames") in " ".join(result.stderr.split())
