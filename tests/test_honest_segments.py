"""Issue 26, one rule for where two videos match: the same pair gives the same segment and matches in compare,
search, evaluate and the reports; custom segments are scored match against annotated part (as VSC 2022's
matching track); short videos report their frames as sampled and never the same match twice.

A real cropped copy: bikes.mp4's first 8 s, centre-cropped to 80% and re-encoded, between 2 s of two other
clips. Features only, a seeded random ResNet-50 and a whitening fitted on the pair (as tests/test_planted.py):
random weights still show the copy as a diagonal, and compare finds it to the second (query 2-10 s, target
0-8 s), where the peak-relative best stretch (the segment search used to report) is only 2-4 s.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from media import center_crop, fit, read_frames, write_video
from s2vs_cli.datasets.segments import segment_precision_recall
from s2vs_cli.datasets.vsc import CopiedSegment, segment_micro_ap
from s2vs_cli.cli import app
from s2vs_cli.scoring.pair import as_video_features, compare_features, extract_video_features
from s2vs_cli.models.whitening import PCAWhitening
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import StoreIdentity

runner = CliRunner()
RATE, HEIGHT, WIDTH, DIMS = 2, 180, 320, 128
FP32 = ["--precision", "fp32"]  # as compare_features computes here (auto may be bf16 on this CPU)
COPY = (2.0, 10.0, 0.0, 8.0)  # where the cropped copy is: query start, end; target start, end (seconds)


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here runs offline (conftest's `offline`)."""


def _clip(videos: Path, name: str, seconds: int, rate: int = RATE) -> list[np.ndarray]:
    frames = read_frames(videos / name, rate, seconds=seconds)[:seconds * rate]
    assert len(frames) == seconds * rate, name
    return [fit(f, HEIGHT, WIDTH) for f in frames]


def _cropped(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [fit(center_crop(f, 0.8), HEIGHT, WIDTH) for f in frames]


def _whitening(vectors: np.ndarray) -> PCAWhitening:
    """What `s2vs fit-pca` fits on these [N, D] vectors (N < D: eigenvectors from the N x N Gram matrix)."""
    x = torch.from_numpy(vectors).double()
    centred = x - x.mean(0)
    values, small = torch.linalg.eigh(centred @ centred.T)
    keep = values > values.max() * 1e-9
    eigenvectors = centred.T @ small[:, keep]
    return PCAWhitening.from_eigen(x.mean(0).float(), values[keep], eigenvectors / eigenvectors.norm(dim=0), dims=DIMS)


@pytest.fixture(scope="module")
def made(videos_dir, tmp_path_factory) -> dict:
    """The cropped copy and its source, and short videos (walk.mkv: 3 frames at 1 fps; a cropped copy of its
    last 2 frames; one of its first frame alone), extracted once, whitened, and written to a feature file."""
    from s2vs_cli.models.loading import load_extractor

    out = tmp_path_factory.mktemp("honest")
    source = _clip(videos_dir, "bikes.mp4", 8)
    files = {"query": write_video(out / "query.mp4", _clip(videos_dir, "carphone_pristine.mp4", 2) + _cropped(source)
                                  + _clip(videos_dir, "walk.mkv", 2), RATE, crf=30),
             "bikes": write_video(out / "bikes.mp4", source, RATE)}
    walk = _clip(videos_dir, "walk.mkv", 3, rate=1)
    files |= {"walk": videos_dir / "walk.mkv", "walk2": write_video(out / "walk2.mp4", _cropped(walk[1:]), 1),
              "walk1": write_video(out / "walk1.mp4", _cropped(walk[:1]), 1)}
    extractor = load_extractor("random", "none", "cpu", seed=0)
    raw = {name: extract_video_features(path, extractor) for name, path in files.items()}
    pair = np.concatenate([raw[n].features.reshape(-1, raw[n].features.shape[-1]).numpy() for n in ("query", "bikes")])
    whitening = _whitening(pair)
    with torch.inference_mode():
        features = {name: whitening(v.features).numpy() for name, v in raw.items()}
    times = {name: v.timestamps for name, v in raw.items()}
    # Two copied parts: the cropped copy shown twice, unrelated frames between (query 2-10 s and 12-20 s).
    q = features["query"]
    features["twoparts"] = np.concatenate([q[0:2], q[2:10], q[10:12], q[2:10]])
    times["twoparts"] = np.arange(20.0)
    # VSC22's ids for the short videos.
    for vsc, name in (("Q100001", "walk1"), ("Q100002", "walk2"), ("R200001", "walk"), ("R200002", "bikes")):
        features[vsc], times[vsc] = features[name], times[name]
    identity = StoreIdentity("test", "test", 1.0, DIMS, dtype="float32")
    with PartWriter(out / "parts", identity, "test", dtype="float32") as writer:
        for name, x in features.items():
            writer.add(name, x, times[name])
    merge_parts(out / "features.h5", writer.written, identity, "test")
    return {"folder": out, "store": out / "features.h5", "raw": raw, "times": times,
            "video": {name: as_video_features(name, x, times[name], 1.0) for name, x in features.items()}}


def _times(match) -> tuple[float, float, float, float]:
    times = match.as_dict() if hasattr(match, "as_dict") else match
    return tuple(float(times[k]) for k in ("query_start", "query_end", "target_start", "target_end"))


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def compared(made):
    """compare's result for the cropped copy (what `s2vs compare --json` prints of it)."""
    return compare_features(made["video"]["query"], made["video"]["bikes"], None)


@pytest.fixture(scope="module")
def searched(made) -> dict:
    """`s2vs search query --json --report` on the feature file (the cascade, features only): its JSON and page data."""
    from test_report_cli import page_data

    page = made["folder"] / "search.html"
    summary = _json(runner.invoke(app, ["search", "query", "--database", str(made["store"]), "--features-only", *FP32,
                                        "--json", "--report", str(page)]))
    return {"summary": summary, "data": page_data(page)}


def _hit(hits: list[dict], video_id: str, key: str = "id") -> dict:
    return next(hit for hit in hits if hit[key] == video_id)


# --- one rule: the same pair, the same times everywhere --------------------------------------------------------

def test_the_segment_is_the_first_match_and_the_copy_is_found_to_the_second(compared):
    assert [_times(m) for m in compared.matches] == [COPY]
    summary = compared.as_dict()
    assert _times(summary["segment"]) == COPY == _times(summary["matches"][0])
    assert summary["frames"] == [12, 8]


def test_search_json_and_reports_give_compares_segment_and_matches(made, compared, searched):
    from s2vs_cli.report.compare_review import compare_document

    hit = _hit(searched["summary"]["results"][0]["hits"], "bikes")
    assert _times(hit["segment"]) == _times(hit["matches"][0]) == _times(compared.segment) == COPY
    assert [_times(m) for m in hit["matches"]] == [_times(m) for m in compared.matches]
    assert [m["score"] for m in hit["matches"]] == pytest.approx([m.score for m in compared.matches], abs=1e-5)
    shown = _hit(searched["data"]["queries"][0]["hits"], "bikes", "target")
    assert [_times(m) for m in shown["matches"]] == [_times(m) for m in compared.matches]
    document = compare_document(compared, 1.0, model="features only", extractor=None, random_weights=True)
    assert [_times(m) for m in document["queries"][0]["hits"][0]["matches"]] == [_times(m) for m in compared.matches]


def test_search_honours_min_match_score_as_compare_does(made, compared):
    floor = compared.matches[0].score + 0.01  # above the copy's score: no part is listed
    summary = _json(runner.invoke(app, ["search", "query", "--database", str(made["store"]), "--features-only", *FP32,
                                        "--json", "--min-match-score", str(floor)]))
    hit = _hit(summary["results"][0]["hits"], "bikes")
    strict = compare_features(made["video"]["query"], made["video"]["bikes"], None, min_match_score=floor)
    assert hit["matches"] == [] == strict.matches
    assert _times(hit["segment"]) == _times(strict.segment) == COPY  # still where they match best


# --- custom segments: every match against every annotated part -------------------------------------------------

def test_evaluate_custom_scores_every_match_two_parts_found_exactly(made):
    truth = [[2.0, 10.0, 0.0, 8.0], [12.0, 20.0, 0.0, 8.0]]
    found = compare_features(made["video"]["twoparts"], made["video"]["bikes"], None).matches
    assert sorted(_times(m) for m in found) == sorted(map(tuple, truth))
    gt = {"queries": ["twoparts"], "database": ["bikes", "walk"], "positives": {"twoparts": ["bikes"]},
          "segments": {"twoparts": {"bikes": truth}}}
    (made["folder"] / "gt.json").write_text(json.dumps(gt))
    summary = _json(runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth",
                                        str(made["folder"] / "gt.json"), "--dataset-hdf5", str(made["store"]),
                                        "--features-only", "--json"]))
    assert summary["metrics"]["segment_recall"] == summary["metrics"]["segment_precision"] == 1.0
    (pair,) = summary["segments"]
    assert pair["reported"] == [list(_times(m)) for m in found]  # what compare lists, in its order


def _brute_force(predicted: dict, annotated: dict) -> tuple[float, float]:
    """Precision and recall counted on a 0.5 s grid (every end is a whole second): per pair and axis, a grid
    cell is reported when a prediction holds it, covered when it also lies in an annotated part that some
    prediction overlaps on a cell of the (query, target) plane."""
    cells = np.arange(0.25, 12, 0.5)

    def holds(segment, axis, t):
        return segment[2 * axis] < t < segment[2 * axis + 1]

    sums = np.zeros((2, 3))
    for pair in set(predicted) | set(annotated):
        mine, theirs = predicted.get(pair, []), annotated.get(pair, [])
        reached = [a for a in theirs if any(holds(a, 0, x) and holds(a, 1, y) and holds(p, 0, x) and holds(p, 1, y)
                                            for p in mine for x in cells for y in cells)]
        for axis in (0, 1):
            for t in cells:
                reported = any(holds(p, axis, t) for p in mine)
                sums[axis] += (reported and any(holds(a, axis, t) for a in reached), reported,
                               any(holds(a, axis, t) for a in theirs))
    precision = np.sqrt(np.prod([c / r if r else 0.0 for c, r in sums[:, :2]]))
    return float(precision), float(np.sqrt(np.prod(sums[:, 0] / sums[:, 2])))


def _segments(rng, count: int) -> list[tuple[float, ...]]:
    out = []
    for _ in range(count):
        q, t = rng.integers(0, 11, 2)
        out.append((float(q), float(q + rng.integers(1, 12 - q)), float(t), float(t + rng.integers(1, 12 - t))))
    return out


def test_custom_segment_metric_is_vscs_rule_checked_by_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(60):
        pairs = [("q", f"t{k}") for k in range(int(rng.integers(1, 4)))]
        annotated = {pair: _segments(rng, int(rng.integers(1, 3))) for pair in pairs}
        predicted = {pair: _segments(rng, int(rng.integers(0, 4))) for pair in pairs}
        figures = segment_precision_recall(predicted, annotated)
        precision, recall = _brute_force(predicted, annotated)
        assert (figures["segment_precision"], figures["segment_recall"]) == pytest.approx((precision, recall))
        # Every prediction at one score level: the matching track's µAP is precision × recall.
        truth = [CopiedSegment(q, t, *s) for (q, t), segments in annotated.items() for s in segments]
        guesses = [CopiedSegment(q, t, *s, score=1.0) for (q, t), segments in predicted.items() for s in segments]
        assert segment_micro_ap(truth, guesses) == pytest.approx(precision * recall)
    # A part at the right query time but the wrong target time finds no copy.
    wrong = segment_precision_recall({("q", "t"): [(0, 4, 6, 10)]}, {("q", "t"): [(0, 4, 0, 4)]})
    assert wrong["segment_recall"] == wrong["segment_precision"] == 0.0


# --- short videos: frames as sampled, each match once ----------------------------------------------------------

def test_short_videos_keep_their_frames_as_sampled(made):
    assert [len(made["raw"][name].features) for name in ("walk", "walk2", "walk1")] == [3, 2, 1]
    assert [len(made["raw"][name].timestamps) for name in ("walk", "walk2", "walk1")] == [3, 2, 1]


@pytest.mark.parametrize("with_network", [False, True])
def test_short_videos_frames_as_sampled_and_no_duplicate_matches(made, with_network):
    from s2vs_cli.models.visil import ViSiL

    torch.manual_seed(0)
    network = ViSiL(dims=DIMS).eval() if with_network else None
    walk = made["video"]["walk"]
    for name, frames in (("walk2", 2), ("walk1", 1)):
        result = compare_features(walk, made["video"][name], network, min_match_seconds=1.0)
        assert result.frames == (3, frames) and result.frame_similarity.shape == (3, frames)
        assert result.as_dict()["frames"] == [3, frames]
        spans = [_times(m) for m in result.matches]
        assert spans and len(spans) == len(set(spans))
        for q_start, q_end, t_start, t_end in spans + [_times(result.segment)]:
            assert 0 <= q_start < q_end <= 3 and 0 <= t_start < t_end <= frames


def test_vsc22_save_matches_has_no_duplicate_rows(made):
    folder = made["folder"]
    (folder / "vsc_gt.csv").write_text("query_id,ref_id,query_start,query_end,ref_start,ref_end\n"
                                       "Q100001,R200001,0,1,0,1\nQ100002,R200001,0,2,1,3\n")
    result = runner.invoke(app, ["evaluate", "--dataset", "VSC22", "--ground-truth", str(folder / "vsc_gt.csv"),
                                 "--dataset-hdf5", str(made["store"]), "--features-only", "--min-match-seconds", "1",
                                 "--save-matches", str(folder / "matches.csv"), "--json"])
    assert result.exit_code == 0, result.output
    with open(folder / "matches.csv", newline="") as f:
        rows = [tuple(row[:6]) for row in csv.reader(f)][1:]
    assert rows and len(rows) == len(set(rows))
    frames = {"Q100001": 1, "Q100002": 2, "R200001": 3, "R200002": 8}
    for query, ref, q_start, q_end, r_start, r_end in rows:
        assert float(q_end) <= frames[query] and float(r_end) <= frames[ref]
