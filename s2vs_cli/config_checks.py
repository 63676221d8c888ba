"""Configuration values checked before any work: names, sampling rates and paths in a configuration file.

A relative path in a file is read from the file's folder: `pca: pca.pth` in `configs/run.yaml` is
`configs/pca.pth`, from whatever folder the command runs in, and a missing input names the file and where
it looked; the same path given as a flag stays relative to the current folder. A weights option's
published name or built-in word (`vcdb`, `random`) is a name, not a path. Library code: the standard
library and artifacts.py.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from .artifacts import BACKBONE, NETWORK, WHITENING, check_weights_choice, is_weights_name, looks_like_path
from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # compute.py resolves auto

# Sampling rates beyond these are typing mistakes: a frame every 1,000 s, or 1,000 frames per second.
MIN_FPS, MAX_FPS = 0.001, 1000.0


def check_fps(fps: float) -> None:
    """ConfigError unless `fps` is a sampling rate FFmpeg can honour."""
    if not MIN_FPS <= fps <= MAX_FPS:  # also refuses nan and inf
        raise ConfigError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps}")


def check_device(spec: str) -> None:
    """ConfigError unless `spec` is a device name (auto, cpu, cuda, cuda:N); runtime.py decides if it is there."""
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", (spec or "auto").strip().lower()):
        raise ConfigError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N")


def check_precision(spec: str) -> None:
    """ConfigError unless `spec` is one of PRECISIONS."""
    if (spec or "auto").strip().lower() not in PRECISIONS:
        raise ConfigError(f"unknown precision {spec!r}: use one of {', '.join(PRECISIONS)}")


def check_names(device: str, precision: str, backbone_weights: str, pca: str, model: str | None = None) -> None:
    """ConfigError for the first unknown name among these options (a weights option may also be a path)."""
    check_device(device)
    check_precision(precision)
    for kind, spec in ((BACKBONE, backbone_weights), (WHITENING, pca), (NETWORK, model)):
        if spec is not None:
            check_weights_choice(spec, kind)


# Configuration fields that hold a path, in any command's configuration (the same name means the same
# thing everywhere). Outputs are made where they say; every other one must exist.
INPUT_PATHS = frozenset({"normalize_with", "thresholds", "dataset_path", "list", "annotations", "dataset_hdf5",
                         "ground_truth", "easy_duplicates", "database", "data", "eval_ground_truth",
                         "eval_dataset_path", "decisions", "labels"})
OUTPUT_PATHS = frozenset({"experiment_path", "save_features"})
# Fields that take a name or a path (models/loading.py).
WEIGHTS = {"backbone_weights": BACKBONE, "pca": WHITENING, "model": NETWORK}


def _from_folder(value: str, folder: str) -> str:
    """`value` read from `folder`; absolute and home-relative paths stay as they are."""
    if value.startswith("~") or os.path.isabs(value):
        return value
    return os.path.join(folder, value)


def resolve_config_paths(values: dict[str, Any], config_file: str | Path) -> dict[str, Any]:
    """`values` read from `config_file`, with every relative path made relative to the file's folder instead
    of the current one; a weights option keeps a name (a published one, random, none) unless the file's
    folder holds a file of that name, as a path given there would win over the name too."""
    folder = os.path.dirname(str(config_file))
    resolved = dict(values)
    for name, value in values.items():
        if not isinstance(value, str) or not value:
            continue
        if name in INPUT_PATHS or name in OUTPUT_PATHS:
            resolved[name] = _from_folder(value, folder)
        elif name in WEIGHTS:
            there = _from_folder(value, folder)
            if os.path.isfile(os.path.expanduser(there)) or (
                    not is_weights_name(value, WEIGHTS[name]) and looks_like_path(value)):
                resolved[name] = there
    return resolved


def absolute_paths(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every relative path made absolute (from the current folder), so that a configuration
    file written from them reads back the same wherever it is put; names stay names."""
    made = dict(values)
    for name, value in values.items():
        if not isinstance(value, str) or not value or value.startswith("~"):
            continue
        weights_file = name in WEIGHTS and not is_weights_name(value, WEIGHTS[name]) and (
            looks_like_path(value) or os.path.isfile(value))
        if name in INPUT_PATHS or name in OUTPUT_PATHS or weights_file:
            made[name] = os.path.abspath(value)
    return made


def check_config_inputs(resolved: dict[str, Any], given: dict[str, Any], config_file: str | Path) -> None:
    """ConfigError naming the configuration file, the option, what it says and where that was looked for, for
    an input path of the file (`given`, as `resolve_config_paths` made it: `resolved`) that does not exist."""
    for name, value in resolved.items():
        written = given.get(name)
        if not isinstance(value, str) or not isinstance(written, str):
            continue
        if name in WEIGHTS:  # a name (vcdb, random, or one unknown: refused as such) is not looked for
            if is_weights_name(written, WEIGHTS[name]) or (value == written and not looks_like_path(written)):
                continue
        elif name not in INPUT_PATHS:
            continue
        if not os.path.exists(os.path.expanduser(value)):
            raise ConfigError(f"{config_file}: {name} '{written}' not found (looked for {value}: a relative path "
                              "in a configuration file is read from the file's folder)")


def check_augmentation(options: Any, max_resize: int) -> None:
    """ConfigError (naming the `augmentation.` key) unless every probability and range of training's
    augmentations (config.AugmentationOptions) holds; crops are at most `max_resize` pixels."""
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if f.name.endswith("_p") and not 0 <= value <= 1:
            raise ConfigError(f"augmentation.{f.name} must be a probability in [0, 1], got {value}")
    for low, high in (("weak_scale_min", None), ("strong_scale_min", None), ("text_size_min", "text_size_max"),
                      ("text_opacity_min", "text_opacity_max"), ("emoji_size_min", "emoji_size_max"),
                      ("emoji_opacity_min", "emoji_opacity_max"), ("viv_lambda_min", "viv_lambda_max")):
        top = 1.0 if high is None else getattr(options, high)
        if not 0 < getattr(options, low) <= top <= 1:
            raise ConfigError(f"augmentation.{low} .. {high or '1'} must satisfy 0 < min <= max <= 1, "
                              f"got {getattr(options, low)} .. {top}")
    if not 0 <= options.blur_radius_min <= options.blur_radius_max:
        raise ConfigError(f"augmentation.blur_radius_min .. blur_radius_max must satisfy 0 <= min <= max, "
                          f"got {options.blur_radius_min} .. {options.blur_radius_max}")
    if not 16 <= options.crop_size <= max_resize:
        raise ConfigError(f"augmentation.crop_size must be between 16 and {max_resize} pixels, got {options.crop_size}")
    if not 1 <= options.segment_min <= options.segment_max:
        raise ConfigError(f"augmentation.segment_min .. segment_max must satisfy 1 <= min <= max, "
                          f"got {options.segment_min} .. {options.segment_max}")
    if not 0 <= options.randaugment_ops or not 0 <= options.randaugment_magnitude <= 30:
        raise ConfigError("augmentation.randaugment_ops must be >= 0 and randaugment_magnitude in 0..30")
    temporal = (options.shuffle_dropout_p + options.fast_forward_p + options.slow_motion_p + options.reverse_p
                + options.pause_p)
    if temporal > 1 + 1e-9:
        raise ConfigError(f"augmentation: the temporal transform probabilities sum to {temporal:g}, over 1")
