"""Typed configuration: paper defaults, YAML, flags, unknown keys and bad values."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from s2vs_cli.config import CompareConfig, ModelOptions, build_config, config_to_yaml
from s2vs_cli.errors import ConfigError


def test_defaults_are_the_papers():
    config = CompareConfig()
    assert (config.model, config.backbone_weights, config.pca, config.fps) == ("s2vs_dns", "imagenet", "vcdb", 1.0)
    assert config.features_only is False and config.device == "auto" and config.precision == "auto"


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("fps: 2\nmodel: s2vs_vcdb\nframes-per-batch: 8\n")
    config = build_config(CompareConfig, path, {"fps": 0.5, "model": None})
    assert config.fps == 0.5 and config.model == "s2vs_vcdb" and config.frames_per_batch == 8


def test_round_trip_through_yaml(tmp_path):
    original = CompareConfig(fps=2.0, features_only=True, seed=3)
    path = tmp_path / "c.yaml"
    path.write_text(config_to_yaml(original))
    assert build_config(CompareConfig, path) == original


@pytest.mark.parametrize("text,message", [
    ("modle: x\n", "unknown key 'modle'"),
    ("fps: fast\n", "'fps': expected float"),
    ("features_only: 1\n", "'features_only': expected true or false"),
    ("frames_per_batch: 2.5\n", "'frames_per_batch': expected an integer"),
    ("batch_size: 8\n", "unknown key 'batch_size': it is now called 'frames_per_batch'"),
    ("- a\n- b\n", "expected a mapping"),
    ("fps: [1\n", "invalid YAML at line 2: expected ',' or ']'"),
    ("fps: -1\n", "fps must be between 0.001 and 1000"),
])
def test_bad_yaml_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        build_config(CompareConfig, path)
    assert "\n" not in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        build_config(ModelOptions, tmp_path / "none.yaml")


def test_empty_yaml_gives_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# nothing\n")
    assert build_config(ModelOptions, path) == ModelOptions()


def test_yaml_output_lists_every_field():
    assert set(yaml.safe_load(config_to_yaml(CompareConfig()))) == {
        "model", "backbone", "backbone_weights", "pca", "device", "precision", "fps", "frames_per_batch", "seed",
        "compile", "features_only", "min_match_seconds", "min_match_score", "thresholds", "collection",
        "keep_common_frames"}


def test_normalization_and_calibration_options(tmp_path):
    from s2vs_cli.config import CalibrateConfig, SearchConfig

    path = tmp_path / "c.yaml"
    path.write_text("normalize_with: noise.h5\nnormalize-k: 3\nnormalize_beta: 0.5\nthresholds: t.json\n")
    search = build_config(SearchConfig, path)
    assert (search.normalize_with, search.normalize_k, search.normalize_beta, search.thresholds) == (
        str(tmp_path / "noise.h5"), 3, 0.5, str(tmp_path / "t.json"))  # read from the file's folder (issue 26)
    path.write_text(config_to_yaml(search))  # --print-config's output reads back the same
    assert build_config(SearchConfig, path) == search
    calibrate = CalibrateConfig()
    assert (calibrate.target_precision, calibrate.normalize_with, calibrate.normalize_k) == (0.95, None, 10)
    for bad, message in ((dict(normalize_k=0), "normalize_k must be at least 1, got 0"),
                         (dict(normalize_beta=float("nan")), "normalize_beta must be between 0 and 10, got nan"),
                         (dict(target_precision=0.3), "target_precision must be at least 0.5 and below 1, got 0.3")):
        with pytest.raises(ConfigError, match=message):
            CalibrateConfig(**bad)
    with pytest.raises(ConfigError, match="normalize_k must be at least 1"):
        SearchConfig(normalize_k=-1)


def test_example_presets_load():
    from s2vs_cli.config import ExtractFeaturesConfig

    examples = Path(__file__).resolve().parents[1] / "examples"
    config = build_config(ExtractFeaturesConfig, examples / "extract_features.yaml")
    assert (config.dataset, config.pattern, config.skip_missing, config.frames_per_batch) == ("FIVR-5K", "{id}/video.*", True, 128)
    assert build_config(CompareConfig, examples / "compare.yaml").model == "s2vs_vcdb"


def test_bulk_option_errors():
    from s2vs_cli.config import ExtractFeaturesConfig, ExtractFramesConfig

    with pytest.raises(ConfigError, match="dtype must be float16 or float32"):
        ExtractFeaturesConfig(dtype="int8")
    with pytest.raises(ConfigError, match="quality must be between 1 and 100"):
        ExtractFramesConfig(quality=0)
    with pytest.raises(ConfigError, match="does not apply"):
        ExtractFramesConfig(loader="frames")


def test_training_config_has_the_papers_defaults_and_nested_augmentation_options(tmp_path):
    from s2vs_cli.config import AugmentationOptions, TrainConfig

    config = TrainConfig()
    assert (config.iterations, config.batch_size, config.window_size, config.lr, config.weight_decay) == (
        30_000, 64, 32, 5e-5, 0.01)
    assert (config.temperature, config.sshn_weight, config.regularization_weight) == (0.03, 3.0, 1.0)
    assert config.augmentation == AugmentationOptions() and config.augmentation.viv_p == 0.3
    path = tmp_path / "t.yaml"
    path.write_text("iterations: 50\naugmentation:\n  text_p: 0.9\n  viv-lambda-min: 0.4\n")
    loaded = build_config(TrainConfig, path, {"iterations": 60})
    assert loaded.iterations == 60 and loaded.augmentation.text_p == 0.9 and loaded.augmentation.viv_lambda_min == 0.4
    path.write_text(config_to_yaml(loaded))  # paths absolute: the same folders, read back from the file's folder
    assert build_config(TrainConfig, path) == dataclasses.replace(loaded, experiment_path=os.path.abspath(
        loaded.experiment_path))


@pytest.mark.parametrize("text,message", [
    ("augmentation:\n  txt_p: 0.5\n", "unknown key 'augmentation.txt_p'"),
    ("augmentation: 3\n", "'augmentation': expected a mapping"),
    ("augmentation:\n  blur_p: 2\n", "augmentation.blur_p must be a probability in [0, 1], got 2"),
    ("augmentation:\n  pause_p: 0.5\n", "temporal transform probabilities sum to 1.3, over 1"),
    ("augmentation:\n  text_p: yes please\n", "'augmentation.text_p': expected float"),
    ("window_size: 2\n", "window_size must be at least 4"),
    ("eval_every: 10\n", "eval_every needs eval_ground_truth"),
    ("loader: images\n", "loader must be auto, frames or video"),
])
def test_training_config_errors(tmp_path, text, message):
    from s2vs_cli.config import TrainConfig

    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        build_config(TrainConfig, path)
