"""`s2vs train`: self-supervised training of the ViSiL network (SPEC §5)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from . import options
from .common import console, download_progress, load_config, reported_errors

EPILOG = ("Multi-GPU / multi-node: [bold]torchrun --nproc-per-node 2 -m s2vs_cli train FRAMES_DIR[/] (each process "
          "takes --batch-size videos per step). Paper settings: [bold]--config examples/train_s2vs_dns.yaml[/].")


def train(
    data: Annotated[Optional[str], typer.Argument(
        metavar="FRAMES_DIR", help="Frame folders from s2vs extract-frames ({id}/00000.jpg ...), or a folder of videos.",
        show_default=False)] = None,
    experiment_path: Annotated[Optional[str], typer.Option(
        "--experiment-path", "-o", metavar="DIR",
        help="Where the run's files go: config.yaml, model.pth, checkpoint.pth, metrics.jsonl, loss.png.  "
             "\\[default: experiments/s2vs]")] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", help="Optimiser steps.  \\[default: 30000]")] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Videos per process and step (each gives a weak and a strong clip).  \\[default: 64]")] = None,
    window_size: Annotated[Optional[int], typer.Option("--window-size", help="Frames per clip.  \\[default: 32]")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Peak learning rate (AdamW, warm-up then cosine).  "
                                                             "\\[default: 5e-5]")] = None,
    augmentations: Annotated[Optional[str], typer.Option(
        "--augmentations", metavar="GT,FT,TT,ViV",
        help="Strong-view augmentations, any subset: GT (RandAugment), FT (text, icons, blur), TT (temporal), "
             "ViV (video in video); none for none.  \\[default: GT,FT,TT,ViV]")] = None,
    save_every: Annotated[Optional[int], typer.Option(
        "--save-every", help="Write checkpoint.pth and model.pth every this many steps.  \\[default: 1000]")] = None,
    resume: Annotated[Optional[bool], typer.Option(
        "--resume", help="Continue the run in --experiment-path at its checkpoint's step.")] = None,
    eval_every: Annotated[Optional[int], typer.Option(
        "--eval-every", help="Report mAP on --eval-ground-truth every this many steps.  \\[default: 0 = never]")] = None,
    eval_ground_truth: Annotated[Optional[str], typer.Option(
        "--eval-ground-truth", metavar="GT.json", help="Custom ground truth (as s2vs evaluate takes it).")] = None,
    eval_dataset_path: Annotated[Optional[str], typer.Option(
        "--eval-dataset-path", metavar="DIR", help="Folder of the ground truth's videos.")] = None,
    eval_pattern: Annotated[Optional[str], typer.Option(
        "--eval-pattern", metavar="GLOB", help="Where an id's video is under --eval-dataset-path.  "
                                               "\\[default: {id}/video.*]")] = None,
    batch_size_fe: Annotated[Optional[int], typer.Option(
        "--batch-size-fe", help="Frames per chunk through the frozen backbone.  \\[default: 512]")] = None,
    loader: Annotated[Optional[str], typer.Option(
        "--loader", metavar="auto|frames|video", help="What FRAMES_DIR holds.  \\[default: auto]")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", "-j", help="Data-loading processes (0: in the main process).  \\[default: one per core, at most 8]")] = None,
    preview_augmentations: Annotated[Optional[str], typer.Option(
        "--preview-augmentations", metavar="OUT_DIR",
        help="Write weak/strong clip strips of a few videos as PNG files, and exit without training.")] = None,
    backbone_weights: options.BackboneWeights = None,
    pca: options.Pca = None,
    device: options.Device = None,
    precision: options.Precision = None,
    fps: Annotated[Optional[float], typer.Option("--fps", help="Frames per second decoded from videos.  \\[default: 1]")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of the initial weights, batches and augmentations.  "
                                                               "\\[default: 0]")] = None,
    config: options.Config = None,
    print_config: options.PrintConfig = False,
    quiet: options.Quiet = False,
) -> None:
    """Train the similarity network without labels (S2VS): weak and strong views of each video, InfoNCE + SSHN.

    Example: [bold]s2vs train frames/ --experiment-path runs/mine --iterations 2000 --batch-size 16[/]
    """
    with reported_errors(interrupted="continue with --resume"):
        from ..config import TrainConfig
        from ..training.augmentations import parse_augmentations

        if resume and config is None:  # a run resumes with the settings it was started with
            saved = Path(experiment_path or TrainConfig().experiment_path) / "config.yaml"
            config = str(saved) if saved.is_file() else None
        cfg = load_config(TrainConfig, config, print_config, data=data, experiment_path=experiment_path,
                          iterations=iterations, batch_size=batch_size, window_size=window_size, lr=lr,
                          augmentations=augmentations, save_every=save_every, resume=resume, eval_every=eval_every,
                          eval_ground_truth=eval_ground_truth, eval_dataset_path=eval_dataset_path,
                          eval_pattern=eval_pattern, batch_size_fe=batch_size_fe, loader=loader, workers=workers,
                          backbone_weights=backbone_weights, pca=pca, device=device, precision=precision, fps=fps,
                          seed=seed)
        parse_augmentations(cfg.augmentations)  # an unknown name fails here, before anything loads
        from ..jobs.train import load_training_videos

        videos, data_loader = load_training_videos(cfg)
        if preview_augmentations is not None:
            from ..jobs.train import preview_augmentations as write_previews

            written = write_previews(cfg, videos, data_loader, Path(preview_augmentations))
            console.print(f"wrote {len(written)} previews (weak clip above, strong below) to "
                          f"{escape(preview_augmentations)}", highlight=False)
            return
        from ..training.clips import BatchPlan
        from ..jobs.train import check_experiment

        check_experiment(Path(cfg.experiment_path), cfg.resume)  # before minutes of loading weights
        BatchPlan(len(videos), cfg.batch_size)
        _run(cfg, videos, data_loader, quiet)


def _run(cfg, videos, loader: str, quiet: bool) -> None:
    from ..distributed import join_process_group
    from ..models.loading import load_extractor
    from ..runtime import resolve_device
    from ..jobs.train import TrainingEvaluator, train as run_training

    device = resolve_device(cfg.device)
    group = join_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        quiet = quiet or not group.is_main
        with download_progress(quiet) as progress:
            extractor = load_extractor(cfg.backbone_weights, cfg.pca, device, cfg.seed, progress)
        evaluator = None
        if cfg.eval_ground_truth is not None and group.is_main:  # rank 0 alone evaluates
            if not quiet:
                console.print("extracting the evaluation videos' features (once)", highlight=False)
            evaluator = TrainingEvaluator(cfg, extractor)
        if not quiet:
            console.print(f"training on {len(videos)} videos ({loader}), {group.world_size} process(es), "
                          f"{cfg.batch_size} videos per process and step; experiment: {escape(cfg.experiment_path)}",
                          highlight=False, soft_wrap=True)
        columns = (TextColumn("step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[status]}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=quiet) as bar:
            task = bar.add_task("train", total=cfg.iterations, status="")

            def show(report) -> None:
                status = (f"loss {report.losses.loss:.4f}  lr {report.lr:.2e}  "
                          f"{report.frames_per_second:.1f} frames/s")
                if report.evaluation:
                    status += f"  mAP {report.evaluation.get('mAP', float('nan')):.4f}"
                bar.update(task, completed=report.step, status=status)

            result = run_training(cfg, videos, loader, group, extractor, show, evaluator)
        if not quiet:
            last = f"; last loss {result.last.loss:.4f}" if result.last else ""
            console.print(f"done: step {result.steps}{last}; model: {escape(str(result.model))}", highlight=False)
    finally:
        group.close()
