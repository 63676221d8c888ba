"""`s2vs compare` end to end on real clips, edited copies and splices; its errors; the Python API."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from media import center_crop, fit, read_frames, write_video
from s2vs_cli.cli import app
from s2vs_cli.jobs.compare import compare_videos
from s2vs_cli.scoring.pair import compare_features, extract_video_features
from s2vs_cli.models.loading import load_extractor
from s2vs_cli.runtime import Runtime

RANDOM = ["--backbone-weights", "random", "--pca", "random"]
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("offline")  # conftest: no downloads, empty caches


@pytest.fixture(scope="module")
def extractor():
    return load_extractor("random", "none", "cpu")


@pytest.fixture(scope="module")
def features_of(extractor):
    """extract_video_features(path, extractor), once per clip: several tests compare the same clips."""
    extracted = {}

    def features(path: Path):
        if path not in extracted:
            extracted[path] = extract_video_features(path, extractor)
        return extracted[path]

    return features


@pytest.fixture(scope="module")
def fp32_runtime():
    return Runtime.cpu("fp32").load_models("random", "random", "random")


@pytest.fixture(scope="module")
def bikes_and_walk(videos_dir, fp32_runtime):
    """bikes.mp4 compared with walk.mkv through the package's API by an fp32 runtime (the exact result)."""
    import s2vs_cli

    return s2vs_cli.compare_videos(videos_dir / "bikes.mp4", videos_dir / "walk.mkv", fp32_runtime)


@pytest.fixture(scope="module")
def made(videos_dir, tmp_path_factory) -> dict[str, Path]:
    """Edited copy of bikes.mp4 (centre crop 80%, re-encoded at low quality) and two splices:
    10 s of bikes.mp4, and the first 10 s of car-detection.mp4, put at 25-35 s of a 60-s host clip."""
    out = tmp_path_factory.mktemp("made")
    host = read_frames(videos_dir / "one-by-one-person-detection.mp4", rate=5, seconds=60)
    height, width = host[0].shape[:2]
    bikes = read_frames(videos_dir / "bikes.mp4", rate=5, seconds=10)
    cars = read_frames(videos_dir / "car-detection.mp4", rate=5, seconds=10)
    edited = [center_crop(f, 0.8) for f in read_frames(videos_dir / "bikes.mp4", rate=10)]
    return {
        "edited": write_video(out / "bikes_edited.mp4", edited, rate=10, crf=35),
        "spliced_bikes": write_video(out / "spliced_bikes.mp4",
                                     host[:125] + [fit(f, height, width) for f in bikes] + host[175:], rate=5),
        "spliced_cars": write_video(out / "spliced_cars.mp4", host[:125] + cars + host[175:], rate=5),
    }


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- quality on real clips (features-only mode: meaningful even with a random backbone) -----------

def test_edited_copy_scores_above_unrelated_clips(videos_dir, made, features_of):
    original = features_of(videos_dir / "bikes.mp4")
    copy = compare_features(original, features_of(made["edited"]), None).similarity
    for unrelated in ("bigbuckbunny.mp4", "car-detection.mp4", "walk.mkv", "s2vs_example.mp4"):
        other = compare_features(original, features_of(videos_dir / unrelated), None)
        assert copy > other.similarity, unrelated


def test_excerpt_spliced_into_a_long_video_is_located(videos_dir, made, features_of):
    result = compare_features(features_of(videos_dir / "bikes.mp4"), features_of(made["spliced_bikes"]), None)
    assert result.frames == (10, 60)
    assert result.segment.target_start == pytest.approx(25, abs=2)
    assert result.segment.target_end == pytest.approx(35, abs=2)
    assert result.segment.query_start == pytest.approx(0, abs=2)
    assert result.segment.query_end == pytest.approx(10, abs=2)
    best = result.matches[0]  # the one copied part is also the first of every part found
    assert (best.times.target_start, best.times.target_end) == pytest.approx((25, 35), abs=2)
    assert all(m.times.target_end <= 25 + 2 or m.times.target_start >= 35 - 2 or m is best for m in result.matches)


def test_segment_located_on_both_sides(videos_dir, made, features_of):
    """Query car-detection.mp4 (30 s): its first 10 s sit at 25-35 s of the target."""
    result = compare_features(features_of(videos_dir / "car-detection.mp4"), features_of(made["spliced_cars"]), None)
    segment = result.segment
    assert (segment.query_start, segment.query_end) == pytest.approx((0, 10), abs=2)
    assert (segment.target_start, segment.target_end) == pytest.approx((25, 35), abs=2)


def test_python_api_compare_videos(bikes_and_walk):
    result = bikes_and_walk
    assert -1 <= result.similarity <= 1
    assert result.frames == (10, 3)  # walk.mkv: 3 frames at 1 fps, as sampled (the network sees them repeated)
    assert set(result.timings) == {"decode", "extract", "compare"}
    assert result.frame_similarity.shape == (10, 3)


def test_reduced_precision_cost_on_similarity(videos_dir, bikes_and_walk):
    """End to end, bf16 autocast (CNN and ViSiL) moves the similarity by < 1e-3 (measured 3e-5 on these clips)."""
    reduced_runtime = Runtime.cpu("bf16").load_models("random", "random", "random")
    reduced = compare_videos(videos_dir / "bikes.mp4", videos_dir / "walk.mkv", reduced_runtime).similarity
    assert abs(bikes_and_walk.similarity - reduced) < 1e-3


# --- the command line -----------------------------------------------------------------------------

def test_cli_compare_two_real_clips_json(videos_dir):
    result = runner.invoke(app, ["compare", str(videos_dir / "bikes.mp4"), str(videos_dir / "bigbuckbunny.mp4"),
                                 *RANDOM, "--model", "random", "--json", "--precision", "fp32"])
    data = _json(result)
    assert set(data) >= {"similarity", "query", "target", "frames", "segment"}
    assert data["frames"] == [10, 5]
    assert set(data["segment"]) == {"query_start", "query_end", "target_start", "target_end"}
    assert all(set(m) == {"query_start", "query_end", "target_start", "target_end", "score"} for m in data["matches"])
    assert [m["score"] for m in data["matches"]] == sorted((m["score"] for m in data["matches"]), reverse=True)
    assert -1 <= data["similarity"] <= 1 and data["random_weights"] is True
    assert data["query"].endswith("bikes.mp4") and data["precision"] == "fp32"


def test_cli_compare_table_and_heatmap(videos_dir, made, tmp_path):
    heatmap = tmp_path / "maps" / "map.png"
    # The 10-s edited copy, not the 60-s splice: the same table and map from 20 frames instead of 70.
    result = runner.invoke(app, ["compare", str(videos_dir / "bikes.mp4"), str(made["edited"]),
                                 *RANDOM, "--features-only", "--heatmap", str(heatmap)])
    assert result.exit_code == 0, result.output
    assert "similarity" in result.stdout and "\n  match " in result.stdout  # the copied part, with its score
    assert [line for line in result.stdout.splitlines() if line != line.rstrip()] == []  # piped: no padding
    assert "random weights" in result.stderr
    from PIL import Image
    with Image.open(heatmap) as image:
        assert image.format == "PNG" and image.width > 300


def test_cli_identical_videos_score_one_in_features_only_mode(videos_dir):
    clip = str(videos_dir / "bikes.mp4")
    data = _json(runner.invoke(app, ["compare", clip, clip, *RANDOM, "--features-only", "--json"]))
    assert data["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert data["segment"] == {"query_start": 0.0, "query_end": 10.0, "target_start": 0.0, "target_end": 10.0}


def test_cli_help_of_every_command():
    assert "compare" in runner.invoke(app, ["--help"]).stdout
    assert runner.invoke(app, ["--version"]).stdout.startswith("s2vs 0.")
    result = runner.invoke(app, ["compare", "--help"])
    assert result.exit_code == 0
    for option in ("--heatmap", "--features-only", "--model", "--backbone-weights", "--pca", "--device",
                   "--precision", "--fps", "--config", "--print-config", "--json", "--quiet"):
        assert option in result.stdout


def _error_line(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_cli_missing_file(videos_dir, tmp_path):
    line = _error_line(runner.invoke(app, ["compare", str(tmp_path / "nope.mp4"), str(videos_dir / "bikes.mp4"),
                                           *RANDOM, "--features-only"]), 1)
    assert "nope.mp4: file not found" in line


def test_cli_corrupt_video(videos_dir, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00garbage, not a video" * 100)
    line = _error_line(runner.invoke(app, ["compare", str(bad), str(videos_dir / "bikes.mp4"), *RANDOM,
                                           "--features-only"]), 1)
    assert "bad.mp4" in line


def test_cli_missing_weights_offline(videos_dir):
    clip = str(videos_dir / "bikes.mp4")
    line = _error_line(runner.invoke(app, ["compare", clip, clip]), 1)
    assert "cannot be downloaded" in line and "S2VS_OFFLINE" in line and "resnet50-0676ba61.pth" in line


def test_cli_bad_yaml_key(videos_dir, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("fps: 2\nmodle: s2vs_dns\n")
    clip = str(videos_dir / "bikes.mp4")
    line = _error_line(runner.invoke(app, ["compare", clip, clip, "--config", str(config)]), 2)
    assert "unknown key 'modle'" in line


def test_cli_print_config_merges_yaml_and_flags(tmp_path):
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text("fps: 2\nmodel: s2vs_vcdb\nfeatures_only: true\n")
    result = runner.invoke(app, ["compare", "a.mp4", "b.mp4", "--config", str(config), "--fps", "0.5",
                                 "--print-config"])
    assert result.exit_code == 0, result.output
    effective = yaml.safe_load(result.stdout)
    assert effective["fps"] == 0.5 and effective["model"] == "s2vs_vcdb" and effective["features_only"] is True
    assert effective["backbone_weights"] == "imagenet" and effective["pca"] == "vcdb"


def test_cli_dimension_mismatch_is_explained(videos_dir):
    clip = str(videos_dir / "bikes.mp4")
    line = _error_line(runner.invoke(app, ["compare", clip, clip, "--backbone-weights", "random", "--pca", "none",
                                           "--model", "random"]), 2)
    assert "512-d" in line and "3840-d" in line


def test_cli_unavailable_cuda_is_one_line(videos_dir):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    clip = str(videos_dir / "bikes.mp4")
    line = _error_line(runner.invoke(app, ["compare", clip, clip, "--device", "cuda"]), 2)
    assert "CUDA is not available" in line


def test_cli_bad_checkpoint_is_one_line(videos_dir, tmp_path):
    bad = tmp_path / "model.pth"
    torch.save({"model": {"visil_head.conv1.weight": torch.zeros(16, 1, 3, 3)}}, bad)
    clip = str(videos_dir / "bikes.mp4")
    line = _error_line(runner.invoke(app, ["compare", clip, clip, *RANDOM, "--model", str(bad)]), 1)
    assert "model.pth" in line and "missing" in line and "(16, 1, 3, 3)" in line


# --- a calibrated verdict (--thresholds) ----------------------------------------------------------------------

def _thresholds_file(path: Path, model: str, backbone: str, whitening: str, threshold: float = 0.995,
                     normalization=None) -> Path:
    from s2vs_cli.scoring.calibration import ScoreIdentity, Thresholds

    Thresholds(threshold=threshold, target_precision=0.95, precision=0.96, recall=0.9,
               identity=ScoreIdentity(model, backbone, whitening, 1.0), normalization=normalization,
               calibration_set={"name": "custom", "file": "gt.json", "pairs": 900, "positives": 100},
               version="0.1.0").save(path)
    return path


def test_cli_compare_says_copy_or_not_with_thresholds(videos_dir, tmp_path):
    thresholds = _thresholds_file(tmp_path / "thresholds.json", "features only", "ResNet-50 random (seed 0)",
                                  "random (seed 0)")
    clip = str(videos_dir / "carphone_pristine.mp4")  # short clips: 4 and 3 frames
    same = _json(runner.invoke(app, ["compare", clip, clip, *RANDOM, "--features-only", "--thresholds",
                                     str(thresholds), "--json"]))
    assert (same["verdict"], same["threshold"], same["calibrated_precision"]) == ("copy", 0.995, 0.96)
    other = runner.invoke(app, ["compare", clip, str(videos_dir / "walk.mkv"), *RANDOM, "--features-only",
                                "--thresholds", str(thresholds)])
    assert other.exit_code == 0, other.output
    assert "  verdict       not a copy  (similarity < threshold 0.9950; precision 0.960 at" in other.stdout


def test_cli_compare_refuses_thresholds_of_other_scores(videos_dir, tmp_path):
    from s2vs_cli.scoring.normalization import NoiseNormalization

    clip = str(videos_dir / "walk.mkv")
    published = _thresholds_file(tmp_path / "thresholds.json", "s2vs_dns", "ResNet-50 imagenet", "vcdb")
    line = _error_line(runner.invoke(app, ["compare", clip, clip, *RANDOM, "--features-only", "--thresholds",
                                           str(published)]), 2)
    assert line == ("error: thresholds.json was calibrated for s2vs_dns on ResNet-50 imagenet + vcdb whitening at "
                    "1 fps; this run uses features only on ResNet-50 random (seed 0) + random (seed 0) whitening "
                    "at 1 fps")
    normalized = _thresholds_file(tmp_path / "normalized.json", "features only", "ResNet-50 random (seed 0)",
                                  "random (seed 0)", normalization=NoiseNormalization("noise.h5", "ab", 40, 1, 1.0))
    line = _error_line(runner.invoke(app, ["compare", clip, clip, *RANDOM, "--features-only", "--thresholds",
                                           str(normalized)]), 2)
    assert line.endswith("normalized.json was calibrated on scores normalized with noise.h5 (40 videos), k 1, β 1; "
                         "this run does not normalize them")
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "s2vs-thresholds/1", "threshold": 0.5}')
    line = _error_line(runner.invoke(app, ["compare", clip, clip, "--thresholds", str(broken)]), 2)
    assert line == f"error: {broken}: missing 'target_precision'"


def test_min_match_score_leaves_out_weaker_parts():
    """compare_features(min_match_score=): parts whose mean similarity is lower are not reported."""
    from s2vs_cli.scoring.pair import as_video_features

    rng = np.random.default_rng(0)
    source = rng.standard_normal((12, 2, 32)).astype(np.float32)
    source /= np.linalg.norm(source, axis=-1, keepdims=True)
    unrelated = rng.standard_normal((20, 2, 32)).astype(np.float32)
    unrelated /= np.linalg.norm(unrelated, axis=-1, keepdims=True)
    query = np.concatenate([unrelated[:10], source, unrelated[10:]])  # the source at 10-22 s
    q = as_video_features("q", query, np.arange(len(query), dtype=float), fps=1.0)
    t = as_video_features("t", source, np.arange(len(source), dtype=float), fps=1.0)
    found = compare_features(q, t, None).matches
    assert [(m.times.query_start, m.times.query_end) for m in found] == [(10.0, 22.0)]
    assert found[0].score == pytest.approx(1.0, abs=1e-5)
    assert compare_features(q, t, None, min_match_score=0.5).matches == found
    assert compare_features(q, t, None, min_match_score=1.01).matches == []
