"""`s2vs train`: self-supervised training of the ViSiL network (docs/METHOD.md §5).

Examples:
  s2vs train frames/ --experiment-path runs/mine --iterations 2000 --batch-size 16
  s2vs train frames/ --config examples/train_s2vs_dns.yaml          (the paper's settings)
  s2vs train --experiment-path runs/mine --resume --iterations 4000  (continue a run)
  torchrun --nproc-per-node 2 -m s2vs_cli train frames/             (one GPU per process)
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options
from ..config import TrainConfig
from ..distributed import place_from_env
from .common import check_writable, command_config, console, reported_errors, terminal_safe
from .options import INPUT, OUTPUT, RUNTIME
from .progress import plural, running

TRAINING = "Training"  # the schedule and what a step computes

EPILOG = ("Multi-GPU / multi-node: [bold]torchrun --nproc-per-node 2 -m s2vs_cli train FRAMES_DIR[/] (each process "
          "takes --batch-size videos per step, on the GPU of its LOCAL_RANK). Paper settings: "
          "[bold]--config examples/train_s2vs_dns.yaml[/].")


@options.takes("backbone", "backbone_weights", "pca", "frames_per_batch", "workers", "device", "precision", "config",
               "print_config", "quiet")
def train(
    data: Annotated[Optional[str], typer.Argument(
        metavar="FRAMES_DIR", help="Frame folders from s2vs extract-frames ({id}/00000.jpg ...), or a folder of videos "
                                  "(with --resume: the run's own).",
        show_default=False)] = None,
    experiment_path: Annotated[Optional[str], typer.Option(
        "--experiment-path", "-o", metavar="DIR",
        help="Where the run's files go: config.yaml, model.pth, checkpoint.pth, metrics.jsonl, loss.png.  "
             "\\[default: experiments/s2vs]", rich_help_panel=OUTPUT)] = None,
    iterations: Annotated[Optional[int], typer.Option(
        "--iterations", help="Optimiser steps asked for (see --run-length); the cosine learning rate reaches its "
                             "final value (5e-6) there, unless the config sets decay_iterations.  \\[default: 30000]",
        rich_help_panel=TRAINING)] = None,
    run_length: Annotated[Optional[str], typer.Option(
        "--run-length", metavar="epochs|steps",
        help="epochs: whole passes over the videos covering --iterations, iterations // steps-per-epoch + 1 of "
             "them, each pass's last (partial) batch kept, as the original S2VS; steps: exactly --iterations steps "
             "of whole batches.  \\[default: epochs]", rich_help_panel=TRAINING)] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Videos per process and step (each gives a weak and a strong clip).  \\[default: 64]",
        rich_help_panel=TRAINING)] = None,
    window_size: Annotated[Optional[int], typer.Option(
        "--window-size", help="Frames per clip.  \\[default: 32]", rich_help_panel=TRAINING)] = None,
    lr: Annotated[Optional[float], typer.Option(
        "--lr", help="Peak learning rate (AdamW, warm-up then cosine).  \\[default: 5e-5]",
        rich_help_panel=TRAINING)] = None,
    augmentations: Annotated[Optional[str], typer.Option(
        "--augmentations", metavar="GT,FT,TT,ViV",
        help="Strong-view augmentations, any subset: GT (RandAugment), FT (text, icons, blur), TT (temporal), "
             "ViV (video in video); none for none.  \\[default: GT,FT,TT,ViV]", rich_help_panel=TRAINING)] = None,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", help="Seed of the initial weights, batches and augmentations.  \\[default: 0]",
        rich_help_panel=TRAINING)] = None,
    save_every: Annotated[Optional[int], typer.Option(
        "--save-every", help="Write checkpoint.pth and model.pth every this many steps.  \\[default: 1000]",
        rich_help_panel=OUTPUT)] = None,
    resume: Annotated[Optional[bool], typer.Option(
        "--resume", help="Continue the run in --experiment-path at its checkpoint's step.",
        rich_help_panel=TRAINING)] = None,
    eval_every: Annotated[Optional[int], typer.Option(
        "--eval-every", help="Report mAP on --eval-ground-truth every this many steps.  \\[default: 0 = never]",
        rich_help_panel=TRAINING)] = None,
    eval_ground_truth: Annotated[Optional[str], typer.Option(
        "--eval-ground-truth", metavar="GT.json", help="Custom ground truth (as s2vs evaluate takes it).",
        rich_help_panel=INPUT)] = None,
    eval_dataset_path: Annotated[Optional[str], typer.Option(
        "--eval-dataset-path", metavar="DIR", help="Folder of the ground truth's videos.", rich_help_panel=INPUT)] = None,
    eval_pattern: Annotated[Optional[str], typer.Option(
        "--eval-pattern", metavar="GLOB", help="Where an id's video is under --eval-dataset-path.  "
                                               "\\[default: {id}/video.*]", rich_help_panel=INPUT)] = None,
    loader: Annotated[Optional[str], typer.Option(
        "--loader", metavar="auto|frames|video", help="What FRAMES_DIR holds.  \\[default: auto]",
        rich_help_panel=INPUT)] = None,
    fps: Annotated[Optional[float], typer.Option(
        "--fps", help="Frames per second decoded from videos.  \\[default: 1]", rich_help_panel=INPUT)] = None,
    preview_augmentations: Annotated[Optional[str], typer.Option(
        "--preview-augmentations", metavar="OUT_DIR",
        help="Write weak/strong clip strips of a few videos as PNG files, and exit without training.",
        rich_help_panel=OUTPUT)] = None,
    frames_per_batch: Annotated[Optional[int], typer.Option(
        "--frames-per-batch", help="Frames per batch through the frozen backbone.  \\[default: 512]",
        rich_help_panel=RUNTIME)] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", "-j", help="Data-loading processes (0: in the main process).  "
                                "\\[default: one per core, at most 8]", rich_help_panel=RUNTIME)] = None,
    **shared,
) -> None:
    """Train the similarity network without labels (S2VS): weak and strong views of each video, InfoNCE + SSHN.

    Example: [bold]s2vs train frames/ --experiment-path runs/mine --iterations 2000 --batch-size 16[/]
    """
    with reported_errors(interrupted="continue with --resume"):
        own = False  # a run's own config.yaml keeps its paths as they were given: from the current folder
        if resume and shared["config"] is None:  # a run resumes with the settings it was started with
            saved = Path(experiment_path or TrainConfig().experiment_path) / "config.yaml"
            shared["config"], own = (str(saved), True) if saved.is_file() else (None, False)
        cfg = command_config(TrainConfig, locals() | shared, relative_to_file=not own)
        # The folder written, before anything is imported or loaded.
        check_writable(folders=(cfg.experiment_path if preview_augmentations is None else preview_augmentations,))
        # late: torch and torchvision, only once the command runs
        from ..jobs.train import (check_training, preview_augmentations as write_previews, run_length_text,
                                  train as run_training)

        if preview_augmentations is not None:
            written = write_previews(cfg, Path(preview_augmentations))
            console.print(f"wrote {plural(len(written), 'previews')} (weak clip above, strong below) to "
                          f"{terminal_safe(preview_augmentations)}", highlight=False)
            return
        videos, data_loader = check_training(cfg)  # before minutes of loading weights
        quiet = shared["quiet"] or not place_from_env().is_main  # one rank speaks
        with running(cfg, quiet, distributed=True, backend="auto") as (runtime, progress):
            if not quiet:
                length = run_length_text(cfg, len(videos), runtime.group.world_size)
                console.print(f"training on {plural(len(videos), 'videos')} ({data_loader}), "
                              f"{_processes(runtime.group.world_size)}, {cfg.batch_size} videos per "
                              f"process and step, {length}; experiment: {terminal_safe(cfg.experiment_path)}",
                              highlight=False, soft_wrap=True)
            result = run_training(cfg, videos, data_loader, runtime, progress)
        if not quiet:
            last = f"; last loss {result.last.loss:.4f}" if result.last else ""
            console.print(f"done: step {result.steps}{last}; model: {terminal_safe(result.model)}", highlight=False)


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"
