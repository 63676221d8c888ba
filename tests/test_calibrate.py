"""Calibration: the threshold against a brute-force search, the size rule, the thresholds file, the command,
and the verdicts and refusals of search with --thresholds (compare's are in test_compare.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from s2vs_cli.datasets import CCWebBenchmark, EvaluationError, EVVEBenchmark, FIVRBenchmark, VCDBBenchmark
from s2vs_cli.cli import app
from s2vs_cli.errors import ConfigError, S2VSError
from s2vs_cli.scoring.calibration import (CalibrationError, ScoreIdentity, Thresholds, fit_threshold,
                                          load_thresholds, required_pairs)
from s2vs_cli.scoring.normalization import NoiseNormalization
from s2vs_cli.storage.store import StoreIdentity
from test_search import _unit, write_store

runner = CliRunner()
IDENTITY = StoreIdentity("test", "test", 1.0, 16, dtype="float32")
QUERIES, COPIES, UNRELATED = 8, 10, 12


# --- fitting -------------------------------------------------------------------------------------------------

def brute_force(scores: np.ndarray, is_copy: np.ndarray, target: float) -> tuple[float, float, float, int] | None:
    """(lowest passing candidate, its precision, recall, pairs accepted) trying every distinct score."""
    best = None
    for t in np.unique(scores):
        accepted = scores >= t
        precision = is_copy[accepted].sum() / accepted.sum()
        if precision >= target and (best is None or t < best[0]):
            best = (t, precision, is_copy[accepted].sum() / is_copy.sum(), int(accepted.sum()))
    return best


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_threshold_matches_a_brute_force_search(seed, target):
    rng = np.random.default_rng(seed)
    positives, negatives = int(rng.integers(80, 300)), int(rng.integers(80, 600))
    is_copy = np.r_[np.ones(positives, bool), np.zeros(negatives, bool)]
    scores = np.r_[rng.normal(0.7, 0.12, positives), rng.normal(0.4, 0.12, negatives)]
    scores = np.round(scores, 2)  # many ties, as real scores have a few
    order = rng.permutation(len(scores))
    scores, is_copy = scores[order], is_copy[order]
    expected = brute_force(scores, is_copy, target)
    if expected is None or expected[3] < required_pairs(target):
        with pytest.raises(CalibrationError):
            fit_threshold(scores, is_copy, target)
        return
    fit = fit_threshold(scores, is_copy, target)
    lowest, precision, recall, accepted = expected
    below = scores[scores < lowest]
    assert (below.max() if len(below) else -np.inf) < fit.threshold <= lowest
    assert fit.threshold == pytest.approx((lowest + below.max()) / 2 if len(below) else lowest)
    assert (fit.precision, fit.recall, fit.accepted) == pytest.approx((precision, recall, accepted))
    assert ((scores >= fit.threshold) == (scores >= lowest)).all()  # the same pairs are copies
    assert (fit.pairs, fit.positives) == (positives + negatives, positives)


def test_required_pairs_follow_the_binomial_rule():
    assert [required_pairs(p) for p in (0.5, 0.8, 0.9, 0.95, 0.99)] == [4, 16, 36, 76, 396]
    for p in (0.9, 0.95, 0.99):  # the standard error at n pairs is at most half of the error rate 1 - p
        n = required_pairs(p)
        assert np.sqrt(p * (1 - p) / n) <= (1 - p) / 2 + 1e-12 < np.sqrt(p * (1 - p) / (n - 1))


def test_a_small_set_is_refused_saying_what_it_has_and_needs():
    scores, is_copy = np.linspace(0, 1, 500), np.arange(500) >= 460
    with pytest.raises(CalibrationError) as refused:
        fit_threshold(scores, is_copy, 0.95, "gt.json")
    assert str(refused.value) == (
        "gt.json is too small to support a precision of 0.95: it has 40 copy pairs and 460 other pairs, and needs "
        "at least 76 of each (the standard error of a precision measured on n pairs must be at most half of the "
        "0.05 error rate allowed: n ≥ 4p/(1-p))")
    copies = np.zeros(500, bool)  # the top 20 pairs are copies; the 80 others are scattered among non-copies
    copies[-20:], copies[:480:6] = True, True
    with pytest.raises(CalibrationError, match="^only 2[0-9] pairs of gt.json score above the threshold that "
                                               "reaches a precision of 0.95 .*; the claim needs at least 76"):
        fit_threshold(scores, copies, 0.95, "gt.json")
    with pytest.raises(CalibrationError, match="no threshold reaches a precision of 0.95 on gt.json: the best is"):
        fit_threshold(scores, np.arange(500) % 5 == 1, 0.95, "gt.json")  # a non-copy on top, 1 copy in 5


# --- the thresholds file -------------------------------------------------------------------------------------

def _thresholds(**changes) -> Thresholds:
    values = dict(threshold=0.61, target_precision=0.95, precision=0.96, recall=0.8,
                  identity=ScoreIdentity("s2vs_dns", "ResNet-50 imagenet", "vcdb", 1.0), normalization=None,
                  calibration_set={"name": "custom", "file": "gt.json", "pairs": 900, "positives": 100},
                  version="0.1.0")
    return Thresholds(**(values | changes))


def test_thresholds_round_trip_through_their_file(tmp_path):
    noise = NoiseNormalization("noise.h5", "0123abcd", 40, 2, 0.5)
    for original in (_thresholds(), _thresholds(normalization=noise, random_weights=True)):
        original.save(tmp_path / "t.json")
        loaded = load_thresholds(tmp_path / "t.json")
        assert loaded == original and loaded.path == str(tmp_path / "t.json")
        assert json.loads((tmp_path / "t.json").read_text())["format"] == "s2vs-thresholds/1"


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON (line 1 column 2: "),
    ('{"threshold": 0.5}', 'not a thresholds file (expected "format": "s2vs-thresholds/1"'),
    (json.dumps(_thresholds().as_dict() | {"threshold": "high"}), "malformed thresholds file (expected a number"),
    (json.dumps({k: v for k, v in _thresholds().as_dict().items() if k != "extractor"}), "missing 'extractor'"),
])
def test_a_malformed_thresholds_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "t.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_thresholds(path)
    assert str(error.value).startswith(f"{path}: {message}") and "\n" not in str(error.value)
    with pytest.raises(S2VSError, match="nope.json: thresholds file not found"):
        load_thresholds(tmp_path / "nope.json")


def test_thresholds_refuse_other_scores_in_one_line():
    thresholds = Thresholds(**{**_thresholds().__dict__, "path": "/x/thresholds.json"})
    thresholds.check_applies(ScoreIdentity("s2vs_dns", "ResNet-50 imagenet", "vcdb", 1.0), None)
    assert not thresholds.identity.random_weights
    assert ScoreIdentity("features only", "ResNet-50 random (seed 0)", "vcdb", 1.0).random_weights
    assert ScoreIdentity("random (seed 3)", "ResNet-50 imagenet", "vcdb", 1.0).random_weights
    with pytest.raises(ConfigError) as refused:
        thresholds.check_applies(ScoreIdentity("features only", "ResNet-50 imagenet", "vcdb", 1.0), None)
    assert str(refused.value) == ("thresholds.json was calibrated for s2vs_dns on ResNet-50 imagenet + vcdb whitening "
                                  "at 1 fps; this run uses features only on ResNet-50 imagenet + vcdb whitening "
                                  "at 1 fps")
    with pytest.raises(ConfigError, match="this run uses s2vs_dns on ResNet-50 random \\(seed 0\\) \\+ no whitening "
                                          "at 2 fps$"):
        thresholds.check_applies(ScoreIdentity("s2vs_dns", "ResNet-50 random (seed 0)", "none", 2.0), None)
    noise = NoiseNormalization("noise.h5", "0123abcd", 40, 2, 0.5)
    with pytest.raises(ConfigError, match="calibrated on scores that are not normalized; this run normalizes them "
                                          "with noise.h5 \\(40 videos\\), k 2, β 0.5"):
        thresholds.check_applies(thresholds.identity, noise)
    normalized = Thresholds(**{**thresholds.__dict__, "normalization": noise})
    normalized.check_applies(thresholds.identity, NoiseNormalization("moved/noise.h5", "0123abcd", 40, 2, 0.5))
    with pytest.raises(ConfigError, match="normalized with noise.h5 \\(40 videos\\), k 2, β 0.5; this run does not "
                                          "normalize them$"):
        normalized.check_applies(thresholds.identity, None)


# --- copy labels of the benchmarks ---------------------------------------------------------------------------

def test_benchmarks_say_which_pairs_are_copies():
    fivr = FIVRBenchmark("FIVR-5K", ["q"], ["a", "b", "c", "d"], None, "5k",
                         {"q": {"ND": ["a"], "DS": ["b"], "CS": ["c"], "IS": ["d"]}})
    assert fivr.copies() == {"q": frozenset({"a", "b"})}
    vcdb = VCDBBenchmark("VCDB", ["a", "b"], ["a", "b"], None, {"a": frozenset({"b"}), "b": frozenset({"a"})}, [])
    assert vcdb.copies() == {"a": {"b"}, "b": {"a"}}
    cc_web = CCWebBenchmark("CC_WEB_VIDEO", ["q1", "q2"], ["q1", "q2", "x", "y"], None,
                            {"q1": 1, "q2": 2, "x": 3, "y": 4}, [{3: "E", 4: "X"}, {4: "S", 3: "-1"}],
                            [frozenset(), frozenset()])
    assert cc_web.copies() == {"q1": {"x"}, "q2": {"y"}}
    evve = EVVEBenchmark("EVVE", ["q"], ["a"], None, {})
    with pytest.raises(EvaluationError, match="^EVVE has no copy labels to calibrate on"):
        evve.copies()


# --- the command, end to end on a feature file ---------------------------------------------------------------

@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> dict[str, Path]:
    """A feature file of 8 queries, 10 noisy copies of each and 12 unrelated videos; its ground truth (80 copy
    pairs, 656 others); a smaller one (3 queries: 30 copies); a noise file of 10 other videos."""
    folder = tmp_path_factory.mktemp("labelled")
    rng = np.random.default_rng(0)
    videos, positives = {}, {}
    for q in range(QUERIES):
        query = _unit(rng.standard_normal((4, 2, 16)))
        videos[f"q{q}"] = query
        for c in range(COPIES):
            videos[f"q{q}-copy{c}"] = _unit(query + rng.uniform(0.05, 0.5) * rng.standard_normal(query.shape))
        positives[f"q{q}"] = [f"q{q}-copy{c}" for c in range(COPIES)]
    for u in range(UNRELATED):
        videos[f"other{u}"] = _unit(rng.standard_normal((4, 2, 16)))
    write_store(folder / "features.h5", videos, identity=IDENTITY)
    write_store(folder / "noise.h5", {f"noise{n}": _unit(rng.standard_normal((4, 2, 16))) for n in range(10)},
                identity=IDENTITY)
    queries = [f"q{q}" for q in range(QUERIES)]
    database = [v for v in videos if v not in queries]
    (folder / "gt.json").write_text(json.dumps({"queries": queries, "database": database, "positives": positives}))
    small = {"queries": queries[:3], "database": database, "positives": {q: positives[q] for q in queries[:3]}}
    (folder / "small.json").write_text(json.dumps(small))
    return {name: folder / name for name in ("features.h5", "noise.h5", "gt.json", "small.json")} | {"": folder}


def _calibrate(labelled, *extra: str):
    return runner.invoke(app, ["calibrate", "--ground-truth", str(labelled["gt.json"]), "--dataset-hdf5",
                               str(labelled["features.h5"]), "--features-only", *extra])


def _error(result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0].removeprefix("error: ")


def test_calibrate_writes_the_thresholds_and_prints_them(labelled, tmp_path):
    output = tmp_path / "thresholds.json"
    result = _calibrate(labelled, "-o", str(output), "--json")
    assert result.exit_code == 0, result.output
    printed, written = json.loads(result.stdout), json.loads(output.read_text())
    assert printed == written
    assert written["model"] == "features only" and written["normalization"] is None and not written["random_weights"]
    assert written["extractor"] == {"backbone": "test", "whitening": "test", "fps": 1.0}
    used = written["calibration_set"]
    assert (used["name"], used["pairs"], used["positives"], used["missing_pairs"]) == ("custom", 736, 80, 0)
    assert used["file"] == str(labelled["gt.json"]) and used["scores"] == str(labelled["features.h5"])
    assert written["precision"] >= 0.95 and 0 < written["recall"] <= 1 and written["s2vs_version"].startswith("0.")
    table = _calibrate(labelled, "-o", str(tmp_path / "again.json"))
    assert table.exit_code == 0, table.output
    assert f"{written['threshold']:.4f}" in table.stdout and "736 pairs, 80 copies" in table.stdout
    assert "features only on test + test whitening at 1 fps" in table.stdout


def test_calibrate_refuses_a_set_too_small(labelled, tmp_path):
    result = runner.invoke(app, ["calibrate", "--ground-truth", str(labelled["small.json"]), "--dataset-hdf5",
                                 str(labelled["features.h5"]), "--features-only", "-o", str(tmp_path / "t.json")])
    assert _error(result, 1).startswith("small.json is too small to support a precision of 0.95: it has 30 copy "
                                        "pairs and 246 other pairs, and needs at least 76 of each")
    assert not (tmp_path / "t.json").exists()


@pytest.mark.parametrize("args, code, message", [
    (["calibrate", "--dataset-hdf5", "f.h5", "--json"], 2, "give the labelled set: --ground-truth GT.json"),
    (["calibrate", "--ground-truth", "gt.json", "--json"], 2, "give the features of the set's videos"),
    (["calibrate", "--ground-truth", "gt.json", "--dataset-hdf5", "f.h5"], 2, "give where to write the thresholds"),
    (["calibrate", "--ground-truth", "gt.json", "--from-similarities", "s.json", "--normalize-with", "n.h5",
      "--json"], 2, "--normalize-with scores the queries' features against the noise"),
    (["calibrate", "--ground-truth", "gt.json", "--dataset-hdf5", "f.h5", "--target-precision", "1", "--json"], 2,
     "target_precision must be at least 0.5 and below 1, got 1.0"),
    (["calibrate", "--ground-truth", "gt.json", "--dataset-hdf5", "f.h5", "--normalize-k", "0", "--json"], 2,
     "normalize_k must be at least 1, got 0"),
    (["calibrate", "--labels", "d.json", "--from-similarities", "s.json", "--json"], 2,
     "--labels takes the features of its videos: give --dataset-hdf5 FILE"),
    (["calibrate", "--labels", "d.json", "--dataset", "VCDB", "--dataset-hdf5", "f.h5", "--json"], 2,
     "--labels is the labelled set: give it without --ground-truth or --dataset"),
    (["calibrate", "--ground-truth", "gt.json", "--dataset-hdf5", "missing.h5", "--json"], 1,
     "missing.h5: feature file not found"),
])
def test_calibrate_usage_errors(args, code, message):
    assert _error(runner.invoke(app, args), code).startswith(message)


def _search(labelled, *extra: str) -> dict:
    result = runner.invoke(app, ["search", "q0", "q1", "--database", str(labelled["features.h5"]), "--exhaustive",
                                 "-k", "12", *extra])
    assert result.exit_code == 0, result.output
    return result


def test_search_gives_a_verdict_per_hit(labelled, tmp_path):
    thresholds = tmp_path / "thresholds.json"
    assert _calibrate(labelled, "-o", str(thresholds)).exit_code == 0
    threshold = json.loads(thresholds.read_text())["threshold"]
    summary = json.loads(_search(labelled, "--features-only", "--thresholds", str(thresholds), "--json").stdout)
    assert summary["calibration"]["threshold"] == threshold and summary["calibration"]["file"] == str(thresholds)
    for result in summary["results"]:
        for hit in result["hits"]:
            assert hit["threshold"] == threshold
            assert hit["verdict"] == ("copy" if hit["similarity"] >= threshold else "not a copy")
        # The query's own copies rank first and are called copies; unrelated videos are not.
        assert [h["verdict"] for h in result["hits"][:8]] == ["copy"] * 8
        assert all(h["verdict"] == "not a copy" for h in result["hits"] if "copy" not in h["id"])
    shown = _search(labelled, "--features-only", "--thresholds", str(thresholds))
    assert "verdict" in shown.stdout and " not a copy " in shown.stdout and " copy " in shown.stdout
    assert f"verdict: copy when the similarity ≥ {threshold:.4f}" in shown.stderr


def test_search_refuses_thresholds_of_other_scores(labelled, tmp_path):
    thresholds = tmp_path / "thresholds.json"
    assert _calibrate(labelled, "-o", str(thresholds)).exit_code == 0
    result = runner.invoke(app, ["search", "q0", "--database", str(labelled["features.h5"]), "--model", "random",
                                 "--thresholds", str(thresholds)])
    assert _error(result, 2) == ("thresholds.json was calibrated for features only on test + test whitening at "
                                 "1 fps; this run uses random (seed 0) on test + test whitening at 1 fps")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = runner.invoke(app, ["search", "q0", "--database", str(labelled["features.h5"]), "--features-only",
                                 "--thresholds", str(broken)])
    assert _error(result, 2).startswith(f"{broken}: not valid JSON (line 1 column 2: ")


def test_normalized_thresholds_need_the_same_normalization(labelled, tmp_path):
    thresholds = tmp_path / "normalized.json"
    noise = ["--normalize-with", str(labelled["noise.h5"])]
    written = json.loads(_calibrate(labelled, *noise, "--target-precision", "0.9", "-o", str(thresholds),
                                    "--json").stdout)
    assert (written["normalization"]["videos"], written["normalization"]["k"]) == (10, 10)
    summary = json.loads(_search(labelled, "--features-only", "--thresholds", str(thresholds), *noise,
                                 "--json").stdout)
    result = summary["results"][0]
    offset = result["normalization_offset"]
    for hit in result["hits"]:
        assert hit["normalized"] == pytest.approx(hit["similarity"] - offset)
        assert hit["verdict"] == ("copy" if hit["normalized"] >= written["threshold"] else "not a copy")
    refused = runner.invoke(app, ["search", "q0", "--database", str(labelled["features.h5"]), "--features-only",
                                  "--thresholds", str(thresholds)])
    assert _error(refused, 2) == ("normalized.json was calibrated on scores normalized with noise.h5 (10 videos), "
                                  "k 10, β 1; this run does not normalize them")
    other_k = runner.invoke(app, ["search", "q0", "--database", str(labelled["features.h5"]), "--features-only",
                                  "--thresholds", str(thresholds), *noise, "--normalize-k", "2"])
    assert "this run normalizes them with noise.h5 (10 videos), k 2, β 1" in _error(other_k, 2)


def test_calibrate_labels_equal_the_same_pairs_as_a_ground_truth(labelled, tmp_path):
    queries, copies = [f"q{q}" for q in range(8)], range(10)
    others = [f"other{u}" for u in range(12)]
    # a pair's a is scored as the query (scores are asymmetric), as a ground truth's query: "other0" < "q0" sorted
    pairs = [{"a": query, "b": f"q{q}-copy{c}", "label": "copy"} for q, query in enumerate(queries) for c in copies]
    pairs += [{"a": query, "b": other, "label": "not_copy"} for query in queries for other in others]
    names = {video for pair in pairs for video in (pair["a"], pair["b"])}
    decisions = tmp_path / "decisions.json"
    decisions.write_text(json.dumps({"format": "s2vs-decisions", "version": 1, "videos": {
        video: {"source": None} for video in names}, "pairs": pairs}))
    truth = tmp_path / "truth.json"
    database = [f"q{q}-copy{c}" for q in range(8) for c in copies] + others  # the order the pairs name them
    truth.write_text(json.dumps({"queries": queries, "database": database,
                                 "positives": {f"q{q}": [f"q{q}-copy{c}" for c in copies] for q in range(8)},
                                 "negatives": {query: others for query in queries}}))
    common = ["calibrate", "--dataset-hdf5", str(labelled["features.h5"]), "--features-only",
              "--target-precision", "0.9", "--json"]
    from_labels = runner.invoke(app, [*common, "--labels", str(decisions)])
    from_truth = runner.invoke(app, [*common, "--ground-truth", str(truth)])
    assert from_labels.exit_code == from_truth.exit_code == 0, from_labels.output + from_truth.output
    by_labels, by_truth = json.loads(from_labels.stdout), json.loads(from_truth.stdout)
    assert by_labels["calibration_set"].pop("file") == str(decisions)
    assert by_truth["calibration_set"].pop("file") == str(truth)
    assert by_labels == by_truth and by_labels["calibration_set"]["pairs"] == 80 + 96
    # a pair about a video the feature file lacks is left out and counted; the threshold does not move
    data = json.loads(decisions.read_text())
    data["videos"]["gone"] = {"source": "/v/gone.mp4"}
    data["pairs"].append({"a": "q0", "b": "gone", "label": "copy"})
    decisions.write_text(json.dumps(data))
    again = json.loads(runner.invoke(app, [*common, "--labels", str(decisions)]).stdout)
    assert again["threshold"] == by_truth["threshold"] and again["calibration_set"]["missing_pairs"] == 1
    both = runner.invoke(app, [*common, "--labels", str(decisions), "--ground-truth", str(truth)])
    assert both.exit_code == 2 and both.stderr.strip().splitlines() == [
        "error: --labels is the labelled set: give it without --ground-truth or --dataset"]
