"""Self-supervised training of the ViSiL network (docs/METHOD.md §5), on one process or many under torchrun.

Each step: B videos per process give a weak and a strong clip each (training/batches.py; ViV mixes the
strong ones), the frozen backbone turns the 2B clips into region features, the network scores all
2B x 2B pairs, and InfoNCE + λ·SSHN + r·regularisation is minimised with AdamW under the paper's
warm-up + cosine schedule (training/step.py). Only the similarity network trains. By default a run is
whole epochs covering cfg.iterations with each epoch's last, smaller batch kept, as the original; with
run_length "steps", exactly cfg.iterations steps of whole batches (training/clips.py, BatchPlan).

The runtime decides where it runs (cuda:LOCAL_RANK under torchrun) and holds the frozen extractor and
the network. Rank 0 writes the experiment folder (training/experiment.py), holding its lock: config.yaml,
model.pth, checkpoint.pth, metrics.jsonl and loss.png. Batches depend only on (seed, step, rank), so a resumed
run continues exactly where an uninterrupted one would be.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import remove_stale_temporaries, write_text_atomically
from ..datasets.custom import load_custom_ground_truth
from ..config import TrainConfig, config_to_yaml
from ..distributed import place_from_env
from ..errors import ConfigError, S2VSError
from ..media.inputs import VideoInput, collect_inputs, is_frame_folder
from ..media.source import source_class
from ..models.visil import ViSiL
from ..progress import SILENT, Progress
from ..runtime import Runtime
from ..storage.bookkeeping import ExtractionOptions
from ..training.augmentations import parse_augmentations
from ..training.batches import StepBatches, build_batch
from ..training.clips import BatchPlan, ClipSource
from ..training.evaluator import EVAL_FEATURES, TrainingEvaluator, evaluated
from ..training.experiment import (CHECKPOINT, CONFIG, LOSS_PLOT, METRICS, MODEL, check_experiment, check_not_running,
                                   experiment_lock, repair_model, restore_run, save_run)
from ..training.metrics_log import append_row, keep_metrics_until, metrics_row
from ..training.overlay_assets import overlay_assets
from ..training.plots import save_loss_curve
from ..training.preview import save_preview
from ..training.schedule import LearningRateSchedule
from ..training.step import StepLosses, batch_features, training_step
from ..workers.pool import default_workers
from .extract_features import extract_benchmark_features

Evaluation = Callable[[ViSiL], dict[str, float]]


@dataclass
class TrainingResult:
    """Where the run left its files, and how it ended."""

    experiment: Path
    model: Path
    first_step: int          # 0, or the step a resumed run continued at
    steps: int               # the step count reached
    total: int               # the run's steps: cfg.iterations, or the whole epochs covering them (run_length)
    last: StepLosses | None  # the losses of the last step run (None when nothing was left to run)
    videos: int


def train(cfg: TrainConfig, videos: list[VideoInput], loader: str, runtime: Runtime, progress: Progress = SILENT,
          evaluate: Evaluation | None = None) -> TrainingResult:
    """Train (or resume training) the ViSiL network on `videos` where `runtime` runs; rank 0 writes the run.

    The frozen extractor is `runtime.extractor` when one is loaded (else cfg's weights are loaded into the
    runtime); the network starts from the runtime's seeded random weights and is left in `runtime.network`.
    Progress: stage "training" counts steps, each update's status gives the loss, learning rate, speed and
    the latest evaluation. `evaluate` (default: `training_evaluator(cfg)` when cfg.eval_ground_truth is set) scores
    the network at the start and every cfg.eval_every steps, on rank 0 only. Another run writing the same
    experiment folder is an S2VSError at once.
    """
    with experiment_lock(Path(cfg.experiment_path), runtime.group.is_main):
        return _train(cfg, videos, loader, runtime, progress, evaluate)


def _train(cfg: TrainConfig, videos: list[VideoInput], loader: str, runtime: Runtime, progress: Progress,
           evaluate: Evaluation | None) -> TrainingResult:
    """train(), with the experiment folder locked."""
    if runtime.seed != cfg.seed:
        raise ConfigError(f"the runtime's seed {runtime.seed} is not the configuration's {cfg.seed}: start the "
                          "runtime with seed=cfg.seed (the network's initial weights come from it)")
    group, device, precision = runtime.group, runtime.device, runtime.precision
    experiment = Path(cfg.experiment_path)
    check_experiment(experiment, cfg.resume)
    if group.is_main:  # half-written checkpoints of a killed run
        remove_stale_temporaries(experiment)
    if runtime.extractor is None:  # else the caller's (tests and benchmarks share one across runs)
        runtime.load_extractor(cfg.backbone_weights, cfg.pca, cfg.backbone)
    extractor = runtime.extractor
    if evaluate is None and cfg.eval_ground_truth is not None and group.is_main:  # rank 0 alone evaluates
        evaluate = training_evaluator(cfg, runtime, progress)
    evaluate = evaluate if group.is_main else None  # the other ranks wait for it at the next step

    plan = BatchPlan(len(videos), cfg.batch_size, group.world_size, cfg.seed, cfg.run_length)
    total = plan.run_steps(cfg.iterations)
    schedule = LearningRateSchedule.from_config(cfg)
    network = runtime.load_network("random").train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    first = 0
    if cfg.resume:
        checkpoint = experiment / CHECKPOINT
        first = restore_run(checkpoint, network, optimizer, scaler, device, cfg)
        if group.is_main:  # a run killed between the checkpoint's rename and model.pth's left it a step behind
            repair_model(experiment, network, first, cfg)
        if first > total:
            steps = "" if total == cfg.iterations else f" ({total} steps in whole epochs)"
            raise ConfigError(f"{checkpoint}: the run is at step {first}; --iterations {cfg.iterations}{steps} "
                              "would go back (give at least that many)")
    model: torch.nn.Module = network
    if group.distributed:  # averages the ranks' gradients in backward(); each loss stays within its rank's batch
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None)
    if group.is_main:
        experiment.mkdir(parents=True, exist_ok=True)
        write_text_atomically(experiment / CONFIG, config_to_yaml(cfg, absolute=False))  # as --resume reads it
        keep_metrics_until(experiment / METRICS, first)  # steps after the checkpoint are about to be redone

    workers = _workers(cfg)
    batches = torch.utils.data.DataLoader(
        StepBatches(ClipSource(videos, loader, cfg.fps), plan, cfg, group.rank, first, total),
        batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=2 if workers else None,
        persistent_workers=False)
    if evaluate is not None and first == 0:  # the starting point, to compare the trained network with
        initial = evaluated(network, evaluate)
        append_row(experiment / METRICS, {"step": 0, **{f"eval_{k}": v for k, v in initial.items()}})
    progress.stage("training", total=total, unit="steps")
    progress.update(first)
    last, reached, evaluation = None, first, {}
    started, clips_done = time.perf_counter(), 0
    for batch in batches:
        if isinstance(batch, str):
            raise S2VSError(f"{batch} (training stopped; the last checkpoint is kept, --resume continues from it)")
        features = batch_features(extractor, batch, device, precision, cfg.frames_per_batch)
        lr = schedule(batch.step)
        last = training_step(model, features, batch.viv_labels, optimizer, scaler, lr, cfg, precision)
        clips_done += features.shape[0]
        elapsed = time.perf_counter() - started
        clips_per_second, frames_per_second = clips_done / elapsed, clips_done * cfg.window_size / elapsed
        done = reached = batch.step + 1
        evaluated_now = {}
        if evaluate is not None and cfg.eval_every and (done % cfg.eval_every == 0 or done == total):
            evaluation = evaluated_now = evaluated(network, evaluate)
        if group.is_main:
            if done % cfg.log_every == 0 or done == total or evaluated_now:
                row = metrics_row(done, last, lr, clips_per_second, frames_per_second, evaluated_now)
                append_row(experiment / METRICS, row)
            if done % cfg.save_every == 0 or done == total:
                save_run(experiment, network, optimizer, scaler, done, cfg)
        status = f"loss {last.loss:.4f}  lr {lr:.2e}  {frames_per_second:.1f} frames/s"
        if evaluation:
            status += f"  mAP {evaluation.get('mAP', float('nan')):.4f}"
        progress.update(done, status=status)
    if group.is_main:
        if last is None and not (experiment / MODEL).exists():
            save_run(experiment, network, optimizer, scaler, first, cfg)
        save_loss_curve(experiment / METRICS, experiment / LOSS_PLOT)
    group.barrier()
    return TrainingResult(experiment, experiment / MODEL, first, reached, total, last, len(videos))


def training_evaluator(cfg: TrainConfig, runtime: Runtime, progress: Progress = SILENT) -> TrainingEvaluator:
    """The evaluator of cfg.eval_ground_truth: its videos (under cfg.eval_dataset_path) extracted once by the
    runtime's frozen extractor into the experiment folder (resumable), to be rescored at each evaluation."""
    if runtime.extractor is None:
        raise ValueError("the runtime has no extractor loaded: the evaluation videos need one")
    benchmark = load_custom_ground_truth(cfg.eval_ground_truth)
    features = Path(cfg.experiment_path) / EVAL_FEATURES
    features.parent.mkdir(parents=True, exist_ok=True)
    options = ExtractionOptions(fps=cfg.fps, loader="video", workers=0)
    extraction = extract_benchmark_features(benchmark, cfg.eval_dataset_path, cfg.eval_pattern, features, runtime,
                                            options, progress)
    return TrainingEvaluator(benchmark, features, runtime, extraction)


def run_length_text(cfg: TrainConfig, videos: int, world_size: int) -> str:
    """How long the run is, in words: '30770 steps (34 epochs of 905)' or '30000 steps'."""
    plan = BatchPlan(videos, cfg.batch_size, world_size, cfg.seed, cfg.run_length)
    total = plan.run_steps(cfg.iterations)
    if cfg.run_length == "steps":
        return f"{total} steps"
    return f"{total} steps ({total // plan.steps_per_epoch} epochs of {plan.steps_per_epoch})"


def _workers(cfg: TrainConfig) -> int:
    return default_workers() if cfg.workers is None else cfg.workers


def load_training_videos(cfg: TrainConfig) -> tuple[list[VideoInput], str]:
    """The training videos under cfg.data and the loader they need (frames or video)."""
    if cfg.data is None:
        raise ConfigError("no training data: give FRAMES_DIR (from s2vs extract-frames) or a folder of videos")
    root = Path(cfg.data)
    if not root.is_dir():
        raise S2VSError(f"{root}: training data folder not found")  # an input that cannot be used: exit 1
    loader = cfg.loader
    if loader == "auto":
        loader = "frames" if any(is_frame_folder(p) for p in root.iterdir() if not p.name.startswith(".")) else "video"
    found = collect_inputs([root], loader=loader)
    if not found.inputs:
        raise ConfigError(f"{root}: no {source_class(loader).noun}s found")
    return found.inputs, loader


def check_training(cfg: TrainConfig) -> tuple[list[VideoInput], str]:
    """Everything about a run that can fail before minutes of loading weights -> its videos and their loader."""
    if "FT" in parse_augmentations(cfg.augmentations):  # an unknown name fails here
        overlay_assets()  # AugLy's fonts and emoji: missing, they fail here, not in a loading worker
    videos, loader = load_training_videos(cfg)
    check_experiment(Path(cfg.experiment_path), cfg.resume)
    if place_from_env().is_main:  # the other ranks of this run wait for rank 0, which takes the lock
        check_not_running(Path(cfg.experiment_path))
    BatchPlan(len(videos), cfg.batch_size)  # too few videos for a batch
    return videos, loader


def preview_augmentations(cfg: TrainConfig, out: Path, count: int = 4) -> list[Path]:
    """Write weak/strong strips of `count` training videos' clips (as step 0 would make them) into `out`."""
    parse_augmentations(cfg.augmentations)  # an unknown name fails before the videos are listed
    videos, loader = load_training_videos(cfg)
    if len(videos) < 2:
        raise ConfigError("previews show a batch: give at least 2 videos")
    plan = BatchPlan(len(videos), min(count, len(videos)), 1, cfg.seed)
    batch = build_batch(ClipSource(videos, loader, cfg.fps), plan, cfg, parse_augmentations(cfg.augmentations), 0)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for weak, strong, video_id in zip(batch.weak, batch.strong, batch.video_ids):
        path = out / f"{video_id.replace('/', '_')}.png"
        save_preview(weak, strong, path)
        written.append(path)
    return written
