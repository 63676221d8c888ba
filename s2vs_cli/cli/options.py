"""Options shared by the commands: same names, same meaning, same help and the same panel everywhere."""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Optional, TypeVar

import typer

from ..artifacts import BACKBONE, NETWORK, WHITENING, help_names
from ..datasets.registry import VIDEO_LIST_NAMES

F = TypeVar("F", bound=Callable)

# Help panels: every command groups its options the same way (cli/help.py shows them in this order).
INPUT, MODEL, OUTPUT, RUNTIME = "Input", "Model", "Output", "Runtime"
# Appended to the help of an option that is required but may come from --config instead of the command line
# (so Typer cannot mark it): the same words Typer writes for required parameters.
REQUIRED = "  [dim red]\\[required][/]"

# Options of earlier releases -> the option that does their work now, and what to know. A command that still has
# the name (train's --batch-size: videos per step) never asks; one without the new option gives click's message.
REMOVED_OPTIONS = {
    "--batch-size": ("--frames-per-batch", "it is now --frames-per-batch (frames per model batch; --batch-size "
                                           "is only train's videos per step)"),
    "--batch-size-fe": ("--frames-per-batch", "it is now --frames-per-batch (frames per backbone batch)"),
}

# --- what every command has --------------------------------------------------------------------------------
Config = Annotated[Optional[str], typer.Option(
    "--config", metavar="FILE.yaml",
    help="Read options from a YAML file (a relative path in it is read from its folder); flags given here "
         "override it.",
    rich_help_panel=RUNTIME)]
PrintConfig = Annotated[bool, typer.Option(
    "--print-config", help="Print the effective configuration as YAML and exit.", rich_help_panel=OUTPUT)]
Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress or status output, only results and errors.", rich_help_panel=OUTPUT)]
Json = Annotated[bool, typer.Option(
    "--json", help="Print the result as one JSON object on stdout.", rich_help_panel=OUTPUT)]

# --- the models; their published choices come from the one artifacts table ----------------------------------
_PUBLISHED = "published: downloaded once, then cached"
Model = Annotated[Optional[str], typer.Option(
    "--model", metavar="NAME|PATH",
    help=f"Similarity network: {help_names(NETWORK)} ({_PUBLISHED}), random (seeded) or a checkpoint file.  "
         "\\[default: s2vs_dns]", rich_help_panel=MODEL)]
Backbone = Annotated[Optional[str], typer.Option(
    "--backbone", metavar="NAME",
    help="Region extractor, by its registered name (resnet50_l3imac: ResNet-50 L3-iMAC, the paper's).  "
         "\\[default: resnet50_l3imac]", rich_help_panel=MODEL)]
BackboneWeights = Annotated[Optional[str], typer.Option(
    "--backbone-weights", metavar="NAME|PATH",
    help=f"ResNet-50 weights: {help_names(BACKBONE)} (torchvision's; {_PUBLISHED}), random (seeded) or a "
         "torchvision state-dict file.  \\[default: imagenet]", rich_help_panel=MODEL)]
Pca = Annotated[Optional[str], typer.Option(
    "--pca", metavar="NAME|PATH",
    help=f"PCA whitening of region vectors: {help_names(WHITENING)} ({_PUBLISHED}), none (3840-d features), "
         "random (seeded projection) or a file with mean, d and V.  \\[default: vcdb]", rich_help_panel=MODEL)]
Seed = Annotated[Optional[int], typer.Option(
    "--seed", help="Seed of `random` weights.  \\[default: 0]", rich_help_panel=MODEL)]
FeaturesOnly = Annotated[Optional[bool], typer.Option(
    "--features-only/--full", help="Features only: Chamfer similarity of raw region features, no attention and "
                                   "no comparator network.  \\[default: --full]", rich_help_panel=MODEL)]

# --- what a score means: a calibrated verdict, normalization with a noise set ---------------------------------
SCORES = "Scores"  # a panel of its own, between Model and Output
Thresholds = Annotated[Optional[str], typer.Option(
    "--thresholds", metavar="THRESHOLDS.json",
    help="Say \"copy\" or \"not a copy\" for each pair, with the threshold and the precision of a file from "
         "[bold]s2vs calibrate[/] (made for the same model and extractor).", rich_help_panel=SCORES)]
DecisionsFile = Annotated[Optional[str], typer.Option(
    "--decisions", metavar="DECISIONS.json",
    help="Your decisions about pairs (README \"Decisions\"): pairs marked not_copy never come back, pairs marked "
         "copy are kept whatever their score.", rich_help_panel=SCORES)]
LabelsFile = Annotated[Optional[str], typer.Option(  # calibrate's: the same file as --decisions
    "--labels", metavar="DECISIONS.json",
    help="Your decisions (README \"Decisions\") as the labelled set: its pairs with both videos in "
         "--dataset-hdf5, copy a positive and not_copy a negative.", rich_help_panel=INPUT)]
NormalizeWith = Annotated[Optional[str], typer.Option(
    "--normalize-with", metavar="NOISE.hdf5",
    help="Features of videos unrelated to the queries: each query's scores are lowered by β × its similarity "
         "to its k-th nearest noise video, so that scores of different queries compare.", rich_help_panel=SCORES)]
NormalizeK = Annotated[Optional[int], typer.Option(
    "--normalize-k", metavar="K",
    help="Which nearest noise video (1: the nearest; the noise needs K videos or more).  \\[default: 10]",
    rich_help_panel=SCORES)]
NormalizeBeta = Annotated[Optional[float], typer.Option(
    "--normalize-beta", metavar="BETA", help="β: how much of that similarity is taken off.  \\[default: 1.0]",
    rich_help_panel=SCORES)]
KeepCommonFrames = Annotated[Optional[bool], typer.Option(
    "--keep-common-frames",
    help="Match every frame. By default frames whose near-duplicates occur in many videos of the collection "
         "(intros, outros, logo cards) and low-information frames (black, flat colour, fades) are left out, so "
         "that shared boilerplate is not taken for a copy.", rich_help_panel=SCORES)]
MinMatchSeconds = Annotated[Optional[float], typer.Option(
    "--min-match-seconds", metavar="SECONDS",
    help="Copied parts shorter than this on either video are not listed.  \\[default: 2]", rich_help_panel=OUTPUT)]
MinMatchScore = Annotated[Optional[float], typer.Option(
    "--min-match-score", metavar="SCORE",
    help="Copied parts whose score (the similarity map's mean along them) is below this are not listed.  "
         "\\[default: none]", rich_help_panel=OUTPUT)]

# --- where and how they run ----------------------------------------------------------------------------------
Device = Annotated[Optional[str], typer.Option(
    "--device", metavar="DEVICE", help="Where to run: auto (CUDA when present), cpu, cuda or cuda:N.  "
                                       "\\[default: auto]", rich_help_panel=RUNTIME)]
Precision = Annotated[Optional[str], typer.Option(
    "--precision", metavar="PRECISION",
    help="Numeric precision: fp32, bf16, fp16 or auto (fp16 on CUDA, bf16 on CPUs with native bf16, else "
         "fp32).  \\[default: auto]", rich_help_panel=RUNTIME)]
FramesPerBatch = Annotated[Optional[int], typer.Option(
    "--frames-per-batch", help="Frames per feature-extraction batch.  \\[default: 32]", rich_help_panel=RUNTIME)]
Compile = Annotated[Optional[bool], typer.Option(
    "--compile/--no-compile", help="torch.compile the CNN: a one-time warm-up (5-20 s), then up to 1.6x faster; "
                                   "for long runs.  \\[default: --no-compile]", rich_help_panel=RUNTIME)]
Workers = Annotated[Optional[int], typer.Option(
    "--workers", "-j", help="Decoding processes (0: decode in the main process).  "
                            "\\[default: one per CPU core, at most 8]", rich_help_panel=RUNTIME)]
Fps = Annotated[Optional[float], typer.Option(
    "--fps", help="Frames sampled per second of video.  \\[default: 1]", rich_help_panel=INPUT)]

# --- inputs of the bulk commands (extract-frames, extract-features) -------------------------------------------
Inputs = Annotated[Optional[list[str]], typer.Argument(
    help="Video files, folders of videos, or (with --loader frames) frame folders or folders of them. "
         "The video id is the file stem or folder name.", show_default=False)]
VideoInputs = Annotated[Optional[list[str]], typer.Argument(
    help="Video files or folders of videos. The video id is the file stem.", show_default=False)]
Loader = Annotated[Optional[str], typer.Option(
    "--loader", metavar="video|frames",
    help="Read video files, or folders of JPEG/PNG frames ({id}/00000.jpg ...).  \\[default: video]",
    rich_help_panel=INPUT)]
DatasetPath = Annotated[Optional[str], typer.Option(
    "--dataset-path", metavar="DIR", help="Folder holding a dataset's videos, found by --pattern.",
    rich_help_panel=INPUT)]
Pattern = Annotated[Optional[str], typer.Option(
    "--pattern", metavar="GLOB",
    help="Where an id's video is under --dataset-path, {id} standing for the id.  "
         "\\[default: {id}/video.* ({id} with --loader frames)]", rich_help_panel=INPUT)]
IdList = Annotated[Optional[str], typer.Option(
    "--list", metavar="IDS.txt",
    help="Video ids to take from --dataset-path, one per line. Without --list or --dataset every match "
         "of --pattern is taken.", rich_help_panel=INPUT)]
Dataset = Annotated[Optional[str], typer.Option(
    "--dataset", metavar="NAME",
    help=f"Take the videos of a benchmark ({', '.join(VIDEO_LIST_NAMES)}) from --dataset-path.",
    rich_help_panel=INPUT)]
Annotations = Annotated[Optional[str], typer.Option(
    "--annotations", metavar="FILE", help="The benchmark's annotation file, instead of downloading it.",
    rich_help_panel=INPUT)]
SkipMissing = Annotated[Optional[bool], typer.Option(
    "--skip-missing", help="Go on when named videos are missing; they are listed with the failures.  "
                           "\\[default: stop before starting]", rich_help_panel=INPUT)]
Overwrite = Annotated[Optional[bool], typer.Option(
    "--overwrite", help="Redo every video, replacing earlier output.  \\[default: skip videos already done]",
    rich_help_panel=OUTPUT)]

# --- the shared options by parameter name: a command takes them with @takes(...) instead of writing each out ------
SHARED = {
    "config": Config, "print_config": PrintConfig, "quiet": Quiet, "json_output": Json,
    "model": Model, "backbone": Backbone, "backbone_weights": BackboneWeights, "pca": Pca, "seed": Seed,
    "features_only": FeaturesOnly,
    "thresholds": Thresholds, "decisions": DecisionsFile, "normalize_with": NormalizeWith, "normalize_k": NormalizeK,
    "normalize_beta": NormalizeBeta, "keep_common_frames": KeepCommonFrames, "min_match_seconds": MinMatchSeconds,
    "min_match_score": MinMatchScore,
    "device": Device, "precision": Precision, "frames_per_batch": FramesPerBatch, "compile_cnn": Compile,
    "workers": Workers, "fps": Fps, "loader": Loader, "dataset_path": DatasetPath, "pattern": Pattern,
    "id_list": IdList, "dataset": Dataset, "annotations": Annotations, "skip_missing": SkipMissing,
    "overwrite": Overwrite,
}
_FLAGS = ("print_config", "quiet", "json_output")  # plain switches: False when not given (the rest: None)


def takes(*names: str) -> Callable[[F], F]:
    """Give a command the options `names`, in this order after its other parameters: a shared one (SHARED) as
    defined here, one of its own where it has it. They reach the command as keywords (`**shared`)."""
    def add(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        own = signature.parameters
        first = [p for name, p in own.items() if name not in names and p.kind is not p.VAR_KEYWORD]
        listed = [own[name].replace(kind=inspect.Parameter.KEYWORD_ONLY) if name in own else
                  inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=SHARED[name],
                                    default=False if name in _FLAGS else None) for name in names]
        command.__signature__ = signature.replace(parameters=first + listed)
        return command
    return add
