"""Typed configuration: dataclasses whose defaults are the paper's, filled from YAML and then from flags.

An unknown YAML key is an error naming it; values are type-checked against the dataclass fields. How the
file itself is read (numbers like 1e-3, repeated keys) is yaml_file.py's.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TypeVar

import yaml

from .config_checks import (absolute_paths, check_augmentation, check_config_inputs, check_fps,
                            check_names, resolve_config_paths)
from .errors import ConfigError
from .yaml_file import read_yaml

T = TypeVar("T")

# Keys of earlier releases, and what they are called now (one name, one meaning: `batch_size` counts
# videos in training only; frames per model batch are `frames_per_batch` everywhere).
RENAMED_KEYS = {"batch_size_fe": "frames_per_batch", "batch_size": "frames_per_batch"}


@dataclass
class ExtractorOptions:
    """Options of every command that extracts features (same names, same meaning everywhere)."""

    backbone: str = "resnet50_l3imac"   # region extractor: a registered backbone (models/backbone_registry.py)
    backbone_weights: str = "imagenet"  # ResNet-50: imagenet, random or a torchvision state-dict path
    pca: str = "vcdb"                   # whitening: vcdb, none, random or a file in the published layout
    device: str = "auto"                # auto, cpu, cuda or cuda:N
    precision: str = "auto"             # auto (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32), fp32, bf16, fp16
    fps: float = 1.0                    # frames sampled per second of video
    frames_per_batch: int = 32          # frames per feature-extraction batch
    seed: int = 0                       # seed of `random` weights (reproducible experiments and tests)
    compile: bool = False               # torch.compile the CNN: slow to start, faster on long runs

    def __post_init__(self):
        check_fps(self.fps)
        if self.frames_per_batch < 1:
            raise ConfigError(f"frames_per_batch must be at least 1, got {self.frames_per_batch}")
        # An unknown name is a usage error now, not after the runtime started (ModelOptions' model too).
        check_names(self.device, self.precision, self.backbone_weights, self.pca, getattr(self, "model", None))


@dataclass
class ModelOptions(ExtractorOptions):
    """Options of commands that also run the similarity network."""

    model: str = "s2vs_dns"  # similarity network: s2vs_dns, s2vs_vcdb, random or a checkpoint path


@dataclass
class NormalizationOptions:
    """Score normalization with a noise set (scoring/normalization.py): search, calibrate and evaluate."""

    normalize_with: Optional[str] = None  # features of videos unrelated to the queries (NOISE.hdf5); None: off
    normalize_k: int = 10                 # the k-th nearest noise video counts (1 fails on noise of their scenes)
    normalize_beta: float = 1.0           # β: the share of its similarity taken off (the VSC 2022 baseline's)

    def __post_init__(self):
        if self.normalize_k < 1:
            raise ConfigError(f"normalize_k must be at least 1, got {self.normalize_k}")
        if not 0 <= self.normalize_beta <= MAX_NORMALIZE_BETA:  # also refuses nan
            raise ConfigError(f"normalize_beta must be between 0 and {MAX_NORMALIZE_BETA:g}, got {self.normalize_beta}")


@dataclass
class CompareConfig(ModelOptions):
    """`s2vs compare`: similarity of two videos and where they match."""

    features_only: bool = False  # raw region features, no attention and no comparator (docs/METHOD.md §3)
    min_match_seconds: float = 2.0  # copied parts shorter than this (on either video) are not reported
    min_match_score: Optional[float] = None  # nor those whose score (mean similarity along them) is lower
    thresholds: Optional[str] = None  # a thresholds file from `s2vs calibrate`: say "copy" / "not a copy"
    collection: Optional[str] = None  # a feature file whose boilerplate frames (intros, logos) are left out
    keep_common_frames: bool = False  # compare every frame: leave out no boilerplate or low-information frame

    def __post_init__(self):
        ExtractorOptions.__post_init__(self)
        if not self.min_match_seconds >= 0:
            raise ConfigError(f"min_match_seconds must be 0 or more, got {self.min_match_seconds}")


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

    def __post_init__(self):  # the loader's name is checked by media/source.py's registry, before any work
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"workers must be 0 or more, got {self.workers}")


@dataclass
class ExtractFeaturesConfig(InputOptions, ExtractorOptions):
    """`s2vs extract-features`: videos or frame folders -> one HDF5 file of region features."""

    frames_per_batch: int = 128    # frames per model batch, packed across videos
    dtype: str = "float16"         # stored feature type: float16 or float32
    compression: str = "none"      # HDF5 compression of the features: none, gzip or lzf
    strict: bool = False           # a damaged video (frames or seconds lost, decoder errors) fails, unwritten

    def __post_init__(self):
        ExtractorOptions.__post_init__(self)
        InputOptions.__post_init__(self)
        if self.dtype not in ("float16", "float32"):
            raise ConfigError(f"dtype must be float16 or float32, got '{self.dtype}'")
        if self.compression not in ("none", "gzip", "lzf"):
            raise ConfigError(f"compression must be none, gzip or lzf, got '{self.compression}'")


@dataclass
class ExtractFramesConfig(InputOptions):
    """`s2vs extract-frames`: videos -> folders of JPEG frames, the training input (docs/METHOD.md §5)."""

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
class EvaluateConfig(NormalizationOptions, ModelOptions):
    """`s2vs evaluate`: a benchmark's metrics for a model."""

    dataset: str = "FIVR-5K"              # FIVR-5K, FIVR-200K, VCDB, EVVE, CC_WEB_VIDEO, VSC22 or custom
    dataset_hdf5: Optional[str] = None    # features of the benchmark's videos (ours or the published files)
    annotations: Optional[str] = None     # the benchmark's annotation file (VSC22: the folder of its metadata CSVs)
    ground_truth: Optional[str] = None    # custom: the ground truth JSON file; VSC22: the challenge's CSV
    easy_duplicates: Optional[str] = None  # FIVR: the easy-duplicates list for the "hard" variant
    distractors: bool = False             # VCDB: add the ~100k distractors to the database
    features_only: bool = False           # raw region features, no attention and no comparator (docs/METHOD.md §3)
    strict: bool = False                  # missing queries or database videos are an error, not a count
    dataset_path: Optional[str] = None    # raw videos instead of --dataset-hdf5: extracted first
    pattern: Optional[str] = None         # where an id's video is under dataset_path; default '{id}/video.*'
    loader: str = "video"                 # video files, or frames: folders of frames
    workers: Optional[int] = None         # decoding processes; default: one per CPU core, at most 8
    save_features: Optional[str] = None   # keep the features extracted from dataset_path in this HDF5 file
    pairs_per_query: int = 25             # VSC22: predicted (and located) pairs, 25 × the queries: the official limit
    min_match_seconds: float = 2.0        # VSC22, custom segments: shorter copied parts are not predicted (as compare)

    def __post_init__(self):
        ExtractorOptions.__post_init__(self)
        NormalizationOptions.__post_init__(self)
        if self.pairs_per_query < 1:
            raise ConfigError(f"pairs_per_query must be at least 1, got {self.pairs_per_query}")
        if not self.min_match_seconds >= 0:
            raise ConfigError(f"min_match_seconds must be 0 or more, got {self.min_match_seconds}")


@dataclass
class SearchConfig(NormalizationOptions, ModelOptions):
    """`s2vs search`: rank a collection's videos against query videos."""

    database: Optional[str] = None  # the collection's feature file (from extract-features)
    top_k: int = 20                 # results per query
    candidates: int = 1000          # videos the index proposes, per query (the cascade's first stage)
    rerank: int = 100               # of those, the best by frame-level score that ViSiL re-ranks (at least top_k)
    exhaustive: bool = False        # score every video with ViSiL, no index (slow; to check recall)
    features_only: bool = False     # raw region features, no attention and no comparator (docs/METHOD.md §3)
    rebuild_index: bool = False     # rebuild the index from scratch instead of updating it
    thresholds: Optional[str] = None  # a thresholds file from `s2vs calibrate`: a verdict per hit
    min_match_seconds: float = 2.0  # copied parts shorter than this (on either video) are not reported, as compare
    min_match_score: Optional[float] = None  # nor those whose score (mean similarity along them) is lower
    keep_common_frames: bool = False  # match every frame: leave out no boilerplate or low-information frame
    decisions: Optional[str] = None  # a decisions file: a stored query's not_copy hits dropped, copy hits marked

    def __post_init__(self):
        ExtractorOptions.__post_init__(self)
        NormalizationOptions.__post_init__(self)
        if not self.min_match_seconds >= 0:
            raise ConfigError(f"min_match_seconds must be 0 or more, got {self.min_match_seconds}")
        if min(self.top_k, self.candidates, self.rerank) < 1:
            raise ConfigError(f"top_k, candidates and rerank must be at least 1, got {self.top_k}, {self.candidates} "
                              f"and {self.rerank}")


@dataclass
class DedupConfig(CompareConfig):
    """`s2vs dedup`: every pair of a collection's videos that shares copied content, and groups of duplicates."""

    neighbours: int = 100                   # self-join: nearest segments each segment looks up in the index
    probes: Optional[int] = None            # self-join above 65,536 segments: inverted lists searched; None: 16
    min_frame_level: Optional[float] = None  # self-join: frame-level floor of a candidate pair; None: its default
    exhaustive: bool = False                # every pair of videos scored, no index (small stores, checks)
    duplicate_coverage: float = 0.8         # copied parts covering this share of both videos: duplicates
    keep: str = "resolution"                # keeper: resolution (then duration), duration, size, first; ties: bitrate
    keep_common_frames: bool = False        # match boilerplate too (intros, logos, black frames)
    decisions: Optional[str] = None         # a decisions file: not_copy pairs never listed, copy pairs grouped
    previous: Optional[str] = None          # an earlier run's duplicates.json: score only the pairs of new videos

    def __post_init__(self):
        CompareConfig.__post_init__(self)
        for name, value in (("neighbours", self.neighbours), ("probes", self.probes)):  # probes None: the default
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if not 0 < self.duplicate_coverage <= 1:  # also refuses nan
            raise ConfigError(f"duplicate_coverage must be above 0 and at most 1, got {self.duplicate_coverage}")
        if self.keep not in KEEP_RULES:
            raise ConfigError(f"keep must be {', '.join(KEEP_RULES[:-1])} or {KEEP_RULES[-1]}, got '{self.keep}'")


@dataclass
class CalibrateConfig(NormalizationOptions, ModelOptions):
    """`s2vs calibrate`: the score threshold that reaches a target precision on a labelled set."""

    dataset: Optional[str] = None         # a benchmark that labels copies (VCDB, FIVR-5K, ...); default: custom
    ground_truth: Optional[str] = None    # custom: the ground truth JSON file (the evaluate command's format)
    annotations: Optional[str] = None     # the benchmark's annotation file, instead of downloading it
    dataset_hdf5: Optional[str] = None    # features of the set's videos (from extract-features)
    distractors: bool = False             # VCDB: add the distractors to the database (as negatives)
    features_only: bool = False           # raw region features, no attention and no comparator (docs/METHOD.md §3)
    target_precision: float = 0.95        # one verdict in 20 may be wrong: 76 copy pairs can show it
    keep_common_frames: bool = False      # score every frame; default: leave out the file's boilerplate, as search
    labels: Optional[str] = None          # a decisions file: its pairs in dataset_hdf5 are the labelled set

    def __post_init__(self):
        ExtractorOptions.__post_init__(self)
        NormalizationOptions.__post_init__(self)
        if not MIN_TARGET_PRECISION <= self.target_precision < 1:  # also refuses nan
            raise ConfigError(f"target_precision must be at least {MIN_TARGET_PRECISION:g} and below 1, got "
                              f"{self.target_precision}")


@dataclass
class AugmentationOptions:
    """Every probability and range of the training augmentations (docs/METHOD.md §5), with the paper's values."""

    crop_size: int = 224              # side of the square frames both views are cropped and resized to
    weak_scale_min: float = 0.8       # RandomResizedCrop scale range of the weak view (max 1.0)
    strong_scale_min: float = 0.5     # ... of the strong view
    flip_p: float = 0.5               # horizontal flip, once per clip
    randaugment_ops: int = 2          # GT: RandAugment operations per clip
    randaugment_magnitude: int = 9    # GT: their magnitude (0-30)
    text_p: float = 0.3               # FT, drawn for every frame: text overlay
    text_size_min: float = 0.2        # font size as a fraction of the frame's short side
    text_size_max: float = 0.5
    text_opacity_min: float = 0.7
    text_opacity_max: float = 1.0
    emoji_p: float = 0.3              # FT: emoji/icon overlay
    emoji_size_min: float = 0.2       # size as a fraction of the short side
    emoji_size_max: float = 0.5
    emoji_opacity_min: float = 0.7
    emoji_opacity_max: float = 1.0
    # False: as the original, which pastes AugLy's palette Twemoji PNGs (828 of 872) as whole opaque squares, the
    # transparent pixels in their palette colours (docs/METHOD.md §5.2); true: only the emoji's pixels (alpha).
    overlay_emoji_alpha: bool = False
    blur_p: float = 0.5               # FT: Gaussian blur
    blur_radius_min: float = 0.1
    blur_radius_max: float = 2.0
    shuffle_dropout_p: float = 0.5    # TT: exactly one of these; "none" gets the rest (0.1)
    fast_forward_p: float = 0.1
    slow_motion_p: float = 0.1
    reverse_p: float = 0.1
    pause_p: float = 0.1
    segment_min: int = 4              # shuffle-dropout: segment length, uniform in [min, max]
    segment_max: int = 15
    segment_shuffle_p: float = 0.5    # shuffle the order of the segments
    segment_drop_p: float = 0.3       # drop a segment...
    segment_replace_p: float = 0.5    # ...by replacing its content (else removing it)
    noise_p: float = 0.5              # a replaced frame is uniform noise (else black)
    viv_p: float = 0.3                # ViV: a strong clip is pasted into another one
    viv_lambda_min: float = 0.3       # share of the frame the host clip keeps, uniform in [min, max]
    viv_lambda_max: float = 0.7

    def __post_init__(self):
        check_augmentation(self, MAX_RESIZE)


@dataclass
class TrainConfig(ExtractorOptions):
    """`s2vs train`: self-supervised training of the ViSiL network (docs/METHOD.md §5); defaults are the paper's."""

    data: Optional[str] = None            # frame folders from extract-frames ({id}/00000.jpg ...), or videos
    loader: str = "auto"                  # frames, video, or auto: what `data` holds
    experiment_path: str = "experiments/s2vs"  # config.yaml, model.pth, checkpoint.pth, metrics.jsonl, loss.png
    iterations: int = 30_000              # optimiser steps asked for (see run_length)
    run_length: str = "epochs"            # epochs (the original): whole epochs over iterations, partial batches kept;
                                          # steps: exactly iterations steps of whole batches
    batch_size: int = 64                  # videos per process and step; each gives a weak and a strong clip
    frames_per_batch: int = 512           # frames per chunk through the frozen backbone
    window_size: int = 32                 # frames per clip (each item reads 2 x window_size consecutive frames)
    lr: float = 5e-5                      # peak learning rate (AdamW)
    warmup_lr: float = 5e-7               # learning rate at step 0, rising linearly to lr
    final_lr: float = 5e-6                # learning rate at the end of the cosine decay
    warmup_iterations: int = 1_000
    # Where the cosine reaches final_lr (from step 0); None: `iterations` (the original's), resolved at once.
    decay_iterations: Optional[int] = None
    weight_decay: float = 0.01            # AdamW, on every parameter
    temperature: float = 0.03             # InfoNCE τ
    sshn_weight: float = 3.0              # λ: weight of the SSHN terms (hard negative + self)
    regularization_weight: float = 1.0    # r: weight of the similarity regularisation
    augmentations: str = "GT,FT,TT,ViV"   # any subset, any order; "none" for none
    augmentation: AugmentationOptions = dataclasses.field(default_factory=AugmentationOptions)
    save_every: int = 1_000               # write checkpoint.pth (and model.pth) every this many steps
    log_every: int = 10                   # append a metrics.jsonl line every this many steps
    resume: bool = False                  # continue from experiment_path/checkpoint.pth at its exact step
    eval_every: int = 0                   # evaluate mAP on eval_ground_truth every this many steps (0: never)
    eval_ground_truth: Optional[str] = None  # custom ground truth JSON (the evaluate command's format)
    eval_dataset_path: Optional[str] = None  # where its videos are
    eval_pattern: Optional[str] = None    # where an id's video is under eval_dataset_path; default '{id}/video.*'
    workers: Optional[int] = None         # data-loading processes; default: one per CPU core, at most 8

    def __post_init__(self):
        ExtractorOptions.__post_init__(self)
        if self.loader not in ("auto", "frames", "video"):
            raise ConfigError(f"loader must be auto, frames or video, got '{self.loader}'")
        if self.decay_iterations is None:
            self.decay_iterations = self.iterations
        if self.run_length not in ("epochs", "steps"):
            raise ConfigError(f"run_length must be epochs or steps, got '{self.run_length}'")
        for name in ("iterations", "batch_size", "window_size", "save_every", "log_every",
                     "decay_iterations"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_iterations", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.window_size < 4:
            raise ConfigError(f"window_size must be at least 4 (the comparator pools twice), got {self.window_size}")
        for name in ("lr", "warmup_lr", "final_lr", "temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("weight_decay", "sshn_weight", "regularization_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"{name} must be 0 or more, got {getattr(self, name)}")
        if self.eval_every and self.eval_ground_truth is None:
            raise ConfigError("eval_every needs eval_ground_truth (a custom ground truth JSON file)")
        if self.eval_ground_truth is not None and self.eval_dataset_path is None:
            raise ConfigError("eval_ground_truth needs eval_dataset_path (the folder of its videos)")
        if self.workers is not None and self.workers < 0:
            raise ConfigError(f"workers must be 0 or more, got {self.workers}")


MIN_TARGET_PRECISION = 0.5    # of calibrate (thresholds files are checked against it too)
MAX_NORMALIZE_BETA = 10.0     # β of noise normalization
MAX_RESIZE = 4096
KEEP_RULES = ("resolution", "duration", "size", "first")  # dedup's keeper rules


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


def build_config(cls: type[T], config_file: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                 relative_to_file: bool = True, check_inputs: bool = False) -> T:
    """Defaults <- YAML file <- flags (`overrides`, where None means 'not given').

    A field whose type is itself a config dataclass (e.g. training's `augmentation`) takes a nested
    mapping in YAML; its keys are checked the same way and named with their section in errors. A relative
    path in the file is read from the file's folder (config_checks.py; `relative_to_file` False keeps it
    relative to the current one, as a run's own config.yaml was written); with `check_inputs`, an input
    path of the file that does not exist is a ConfigError naming the file and where it looked.
    """
    values: dict[str, Any] = {}
    if config_file is not None:
        given = _from_mapping(cls, read_yaml(config_file), f"{config_file}: ")
        values = resolve_config_paths(given, config_file) if relative_to_file else dict(given)
    types_by_name = field_types(cls)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(value, types_by_name[name], f"--{name.replace('_', '-')}")
    if config_file is not None and check_inputs:  # what the file says and no flag replaced
        check_config_inputs({k: values[k] for k in given if (overrides or {}).get(k) is None}, given, config_file)
    return cls(**values)


def _from_mapping(cls: type, data: dict[str, Any], where: str, section: str = "") -> dict[str, Any]:
    """Constructor arguments of config dataclass `cls` from a YAML mapping; errors name file and key."""
    types_by_name = field_types(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in types_by_name:
            if not section and RENAMED_KEYS.get(name) in types_by_name:
                raise ConfigError(f"{where}unknown key '{key}': it is now called '{RENAMED_KEYS[name]}'")
            raise ConfigError(f"{where}unknown key '{section}{key}' (valid keys: {', '.join(types_by_name)})")
        annotation = types_by_name[name]
        if dataclasses.is_dataclass(annotation):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}'{section}{key}': expected a mapping of option: value")
            values[name] = annotation(**_from_mapping(annotation, value, where, f"{section}{key}."))
        else:
            values[name] = _coerce(value, annotation, f"{where}'{section}{key}'")
    return values


def config_to_yaml(config: Any, absolute: bool = True) -> str:
    """The effective configuration as YAML (what `--print-config` shows and `--config` reads back from any
    folder: paths absolute; `absolute` False keeps them as given, for a run's own config.yaml)."""
    values = dataclasses.asdict(config)
    return yaml.safe_dump(absolute_paths(values) if absolute else values, sort_keys=False)
