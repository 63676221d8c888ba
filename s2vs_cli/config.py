"""Typed configuration: dataclasses whose defaults are the paper's, filled from YAML and then from flags.

An unknown YAML key is an error naming it; values are type-checked against the dataclass fields.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")


@dataclass
class ExtractorOptions:
    """Options of every command that extracts features (same names, same meaning everywhere)."""

    backbone_weights: str = "imagenet"  # ResNet-50: imagenet, random or a torchvision state-dict path
    pca: str = "vcdb"                   # whitening: vcdb, none, random or a file in the published layout
    device: str = "auto"                # auto, cpu, cuda or cuda:N
    precision: str = "auto"             # auto (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), fp32, bf16, fp16
    fps: float = 1.0                    # frames sampled per second of video
    batch_size: int = 32                # frames per feature-extraction batch
    seed: int = 0                       # seed of `random` weights (reproducible experiments and tests)
    compile: bool = False               # torch.compile the CNN: slow to start, faster on long runs

    def __post_init__(self):
        check_fps(self.fps)
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class ModelOptions(ExtractorOptions):
    """Options of commands that also run the similarity network."""

    model: str = "s2vs_dns"  # similarity network: s2vs_dns, s2vs_vcdb, random or a checkpoint path


@dataclass
class CompareConfig(ModelOptions):
    """`s2vs compare`: similarity of two videos and where they match."""

    features_only: bool = False  # raw region features, no attention and no comparator (SPEC §3)


@dataclass
class InputOptions:
    """Which videos a bulk command works on (besides paths given on the command line)."""

    loader: str = "video"                 # video files, or frames: folders of JPEG/PNG frames ({id}/00000.jpg ...)
    dataset_path: Optional[str] = None    # folder holding the videos of a dataset
    pattern: Optional[str] = None         # where an id's video is under dataset_path; default '{id}/video.*' ('{id}' for frames)
    list: Optional[str] = None            # text file of video ids, one per line
    dataset: Optional[str] = None         # a benchmark whose videos to take: FIVR-5K, FIVR-200K, VCDB, EVVE, CC_WEB_VIDEO
    annotations: Optional[str] = None     # the benchmark's annotation file, instead of downloading it
    skip_missing: bool = False            # go on when some named videos are missing (they are listed as failed)
    workers: Optional[int] = None         # decoding processes; default: one per CPU core, at most 8
    overwrite: bool = False               # redo videos already done, replacing the earlier output

    def __post_init__(self):
        if self.loader not in ("video", "frames"):
            raise ConfigError(f"loader must be video or frames, got '{self.loader}'")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"workers must be 0 or more, got {self.workers}")


@dataclass
class ExtractFeaturesConfig(InputOptions, ExtractorOptions):
    """`s2vs extract-features`: videos or frame folders -> one HDF5 file of region features."""

    batch_size: int = 128          # frames per model batch, packed across videos
    dtype: str = "float16"         # stored feature type: float16 or float32
    compression: str = "none"      # HDF5 compression of the features: none, gzip or lzf

    def __post_init__(self):
        ExtractorOptions.__post_init__(self)
        InputOptions.__post_init__(self)
        if self.dtype not in ("float16", "float32"):
            raise ConfigError(f"dtype must be float16 or float32, got '{self.dtype}'")
        if self.compression not in ("none", "gzip", "lzf"):
            raise ConfigError(f"compression must be none, gzip or lzf, got '{self.compression}'")


@dataclass
class ExtractFramesConfig(InputOptions):
    """`s2vs extract-frames`: videos -> folders of JPEG frames, the training input (SPEC §5)."""

    fps: float = 1.0        # frames written per second of video
    resize: int = 256       # short side of the written frames in pixels; 0 keeps the video's size
    quality: int = 95       # JPEG quality, 1-100 (95 keeps nearly all detail)
    format: str = "jpg"     # jpg, or png (lossless, about 5x larger)

    def __post_init__(self):
        InputOptions.__post_init__(self)
        if self.loader != "video":
            raise ConfigError("extract-frames reads videos; --loader frames does not apply")
        check_fps(self.fps)
        if not 0 <= self.resize <= MAX_RESIZE:
            raise ConfigError(f"resize must be 0 (keep the size) or up to {MAX_RESIZE} pixels, got {self.resize}")
        self.format = self.format.lower()
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"quality must be between 1 and 100, got {self.quality}")
        if self.format not in ("jpg", "png"):
            raise ConfigError(f"format must be jpg or png, got '{self.format}'")


@dataclass
class EvaluateConfig(ModelOptions):
    """`s2vs evaluate`: a benchmark's metrics for a model."""

    dataset: str = "FIVR-5K"              # FIVR-5K, FIVR-200K, VCDB, EVVE, CC_WEB_VIDEO or custom
    dataset_hdf5: Optional[str] = None    # features of the benchmark's videos (ours or the published files)
    annotations: Optional[str] = None     # the benchmark's annotation file, instead of downloading it
    ground_truth: Optional[str] = None    # custom: the ground truth JSON file
    easy_duplicates: Optional[str] = None  # FIVR: the easy-duplicates list for the "hard" variant
    distractors: bool = False             # VCDB: add the ~100k distractors to the database
    features_only: bool = False           # raw region features, no attention and no comparator (SPEC §3)
    strict: bool = False                  # missing queries or database videos are an error, not a count
    dataset_path: Optional[str] = None    # raw videos instead of --dataset-hdf5: extracted first
    pattern: Optional[str] = None         # where an id's video is under dataset_path; default '{id}/video.*'
    loader: str = "video"                 # video files, or frames: folders of frames
    workers: Optional[int] = None         # decoding processes; default: one per CPU core, at most 8
    save_features: Optional[str] = None   # keep the features extracted from dataset_path in this HDF5 file


# Sampling rates beyond these are typing mistakes: a frame every 1,000 s, or 1,000 frames per second.
MIN_FPS, MAX_FPS = 0.001, 1000.0
MAX_RESIZE = 4096


def check_fps(fps: float) -> None:
    """ConfigError unless `fps` is a sampling rate FFmpeg can honour."""
    if not MIN_FPS <= fps <= MAX_FPS:  # also refuses nan and inf
        raise ConfigError(f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps}")


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a field's type (allowing int for float and None for optionals)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        annotation = next(a for a in options if a is not type(None))
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not isinstance(value, annotation):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or ConfigError saying why not."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config file ({e})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: invalid YAML{where}" + (f": {problem}" if problem else "")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value at the top level")
    return data


def build_config(cls: type[T], config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Defaults <- YAML file <- flags (`overrides`, where None means 'not given')."""
    types_by_name = field_types(cls)
    values: dict[str, Any] = {}
    if config_file is not None:
        for key, value in read_yaml(config_file).items():
            name = str(key).replace("-", "_")
            if name not in types_by_name:
                raise ConfigError(f"{config_file}: unknown key '{key}' (valid keys: {', '.join(types_by_name)})")
            values[name] = _coerce(value, types_by_name[name], f"{config_file}: '{key}'")
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(value, types_by_name[name], f"--{name.replace('_', '-')}")
    return cls(**values)


def config_to_yaml(config: Any) -> str:
    """The effective configuration as YAML (what `--print-config` shows and `--config` reads back)."""
    return yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)
