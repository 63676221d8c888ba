"""Self-supervised training of the ViSiL network (SPEC §5), on one process or many under torchrun.

Each step: B videos per process give a weak and a strong clip each (augmentations.py; ViV mixes the
strong ones), the frozen backbone turns the 2B clips into region features, the network scores all
2B x 2B pairs, and InfoNCE + λ·SSHN + r·regularisation is minimised with AdamW under the paper's
warm-up + cosine schedule. Only the similarity network trains.

The experiment folder holds config.yaml (the effective configuration), model.pth (loadable with
--model anywhere), checkpoint.pth (everything needed to resume at the exact step), metrics.jsonl (one
line per logged step) and loss.png. Batches depend only on (seed, step, rank) (clips.py), so a resumed
run continues exactly where an uninterrupted one would be.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..training.augmentations import parse_augmentations, strong_view, video_in_video, weak_view
from ..training.clips import BatchPlan, ClipSource, item_generator
from ..config import TrainConfig, config_to_yaml
from ..distributed import ProcessGroup
from ..errors import CheckpointError, ConfigError, S2VSError
from ..media.inputs import VideoInput
from ..training.losses import infonce_loss, positive_mask, sshn_losses
from ..runtime import autocast
from ..training.schedule import LearningRateSchedule
from ..models.visil import ViSiL

CHECKPOINT = "checkpoint.pth"
MODEL = "model.pth"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
LOSS_PLOT = "loss.png"


# ---------------------------------------------------------------------------------------------
# Batches


@dataclass
class Batch:
    """One process's input for one step: B weak and B strong clips (uint8 [B, W, S, S, 3]) and ViV labels."""

    step: int
    weak: torch.Tensor
    strong: torch.Tensor
    viv_labels: torch.Tensor  # float32 [B, B]: identity, λ where a strong slot was pasted into another clip
    video_ids: list[str]


class StepBatches(torch.utils.data.Dataset):
    """Batches for steps first, first + 1, ..., built in data-loading workers (one whole batch per item)."""

    def __init__(self, source: ClipSource, plan: BatchPlan, cfg: TrainConfig, rank: int, first: int, last: int):
        self.source, self.plan, self.cfg, self.rank = source, plan, cfg, rank
        self.first, self.last = first, last
        self.augmentations = parse_augmentations(cfg.augmentations)

    def __len__(self) -> int:
        return max(0, self.last - self.first)

    def __getitem__(self, index: int) -> Batch | str:
        try:
            return build_batch(self.source, self.plan, self.cfg, self.augmentations, self.first + index, self.rank)
        except S2VSError as e:  # a bad frame or video: its message, not a worker's traceback, reaches the user
            return str(e)


def build_batch(source: ClipSource, plan: BatchPlan, cfg: TrainConfig, augmentations: frozenset[str],
                step: int, rank: int = 0) -> Batch:
    """The weak and strong clips of process `rank`'s videos at `step` (SPEC §5)."""
    window, options = cfg.window_size, cfg.augmentation
    weak, strong, ids = [], [], []
    for slot, index in enumerate(plan.video_indices(step, rank)):
        generator = item_generator(cfg.seed, step, rank, slot)
        frames = source.window(index, 2 * window, generator)
        weak.append(weak_view(frames, window, options, generator))
        strong.append(strong_view(frames, window, options, augmentations, generator))
        ids.append(source.videos[index].video_id)
    strong_clips = torch.stack(strong)
    if "ViV" in augmentations:
        # The batch-level draw gets the slot number after the items'.
        strong_clips, labels = video_in_video(strong_clips, options, item_generator(cfg.seed, step, rank, len(ids)))
    else:
        labels = torch.eye(len(ids))
    return Batch(step, torch.stack(weak), strong_clips, labels, ids)


# ---------------------------------------------------------------------------------------------
# One step


@dataclass
class StepLosses:
    """The loss terms of one step (floats, for logging)."""

    loss: float
    infonce: float
    hard_negative: float
    self_similarity: float
    regularisation: float


def batch_features(extractor, batch: Batch, device: torch.device, precision: str, chunk: int) -> torch.Tensor:
    """Region features of the batch's 2B clips (weak first) from the frozen backbone -> [2B, W, 9, D]."""
    clips = torch.cat([batch.weak, batch.strong])
    n, frames = clips.shape[:2]
    features = extractor.extract(clips.flatten(0, 1), batch_size=chunk, precision=precision)
    # extract() runs in inference mode; a plain copy can enter the autograd graph of the network.
    return features.clone().view(n, frames, *features.shape[1:]).to(device)


def loss_terms(similarity: torch.Tensor, regularisation: torch.Tensor, viv_labels: torch.Tensor,
               cfg: TrainConfig) -> tuple[torch.Tensor, StepLosses]:
    """Total = InfoNCE + λ·(hard negative + self) + r·regularisation (SPEC §5) and its terms."""
    similarity = similarity.float()
    positives = positive_mask(viv_labels.to(similarity.device))
    infonce = infonce_loss(similarity, positives, cfg.temperature)
    hard_negative, self_similarity = sshn_losses(similarity, positives)
    total = infonce + cfg.sshn_weight * (hard_negative + self_similarity) + cfg.regularization_weight * regularisation
    terms = (total, infonce, hard_negative, self_similarity, regularisation)
    return total, StepLosses(*(float(term.detach()) for term in terms))


def training_step(network: torch.nn.Module, features: torch.Tensor, viv_labels: torch.Tensor,
                  optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None, lr: float,
                  cfg: TrainConfig, precision: str) -> StepLosses:
    """One optimiser step of the similarity network on a batch's features."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    with autocast(features.device, precision):
        similarity, regularisation = network(features)
        total, losses = loss_terms(similarity, regularisation, viv_labels, cfg)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        total.backward()
        optimizer.step()
    return losses


# ---------------------------------------------------------------------------------------------
# The run


@dataclass
class StepReport:
    """What a progress display hears after every step."""

    step: int
    iterations: int
    losses: StepLosses
    lr: float
    clips_per_second: float
    frames_per_second: float
    evaluation: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainingResult:
    """Where the run left its files, and how it ended."""

    experiment: Path
    model: Path
    first_step: int          # 0, or the step a resumed run continued at
    steps: int               # the step count reached
    last: StepLosses | None  # the losses of the last step run (None when nothing was left to run)
    videos: int


def train(cfg: TrainConfig, videos: list[VideoInput], loader: str, group: ProcessGroup | None = None,
          extractor=None, progress: Callable[[StepReport], None] | None = None,
          evaluate: Callable[[ViSiL], dict[str, float]] | None = None) -> TrainingResult:
    """Train (or resume training) the ViSiL network on `videos`; rank 0 writes the experiment folder.

    `extractor` is the frozen backbone (default: models.load_extractor with cfg's weights); `evaluate`,
    when given, scores the network at the start and every cfg.eval_every steps (its numbers go to
    metrics.jsonl and the progress reports).
    """
    from ..runtime import resolve_device, resolve_precision

    group = group or ProcessGroup()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and group.distributed:
        device = torch.device("cuda", group.local_rank)
    precision = resolve_precision(cfg.precision, device)
    experiment = Path(cfg.experiment_path)
    checkpoint_path = experiment / CHECKPOINT
    check_experiment(experiment, cfg.resume)
    if extractor is None:
        from ..models.loading import load_extractor

        extractor = load_extractor(cfg.backbone_weights, cfg.pca, device, cfg.seed)

    plan = BatchPlan(len(videos), cfg.batch_size, group.world_size, cfg.seed)
    schedule = LearningRateSchedule(cfg.lr, cfg.warmup_lr, cfg.final_lr, cfg.warmup_iterations, cfg.decay_iterations)
    from ..models.weights import seeded

    with seeded(cfg.seed):
        network = ViSiL().to(device)
    network.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    first = 0
    if cfg.resume:
        first = _restore(checkpoint_path, network, optimizer, scaler, device, cfg)
        if first > cfg.iterations:
            raise ConfigError(f"{checkpoint_path}: the run is at step {first}; --iterations {cfg.iterations} would "
                              "go back (give at least that many)")
    model: torch.nn.Module = network
    if group.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None)
    if group.is_main:
        experiment.mkdir(parents=True, exist_ok=True)
        (experiment / CONFIG).write_text(config_to_yaml(cfg), encoding="utf-8")
        _keep_metrics_until(experiment / METRICS, first)  # steps after the checkpoint are about to be redone

    batches = torch.utils.data.DataLoader(
        StepBatches(ClipSource(videos, loader, cfg.fps), plan, cfg, group.rank, first, cfg.iterations),
        batch_size=None, shuffle=False, num_workers=_workers(cfg),
        prefetch_factor=2 if _workers(cfg) else None, persistent_workers=False)
    evaluate = evaluate if group.is_main else None  # one process evaluates; the others wait at the next step
    if evaluate is not None and first == 0:  # the starting point, to compare the trained network with
        initial = _evaluated(network, evaluate)
        _append_row(experiment / METRICS, {"step": 0, **{f"eval_{k}": v for k, v in initial.items()}})
    last, reached = None, first
    started, clips_done = time.perf_counter(), 0
    for batch in batches:
        if isinstance(batch, str):
            raise S2VSError(f"{batch} (training stopped; the last checkpoint is kept, --resume continues from it)")
        step = batch.step
        features = batch_features(extractor, batch, device, precision, cfg.batch_size_fe)
        lr = schedule(step)
        last = training_step(model, features, batch.viv_labels, optimizer, scaler, lr, cfg, precision)
        clips_done += features.shape[0]
        elapsed = time.perf_counter() - started
        report = StepReport(step + 1, cfg.iterations, last, lr, clips_done / elapsed,
                            clips_done * cfg.window_size / elapsed)
        done = reached = step + 1
        if evaluate is not None and cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.iterations):
            report.evaluation = _evaluated(network, evaluate)
        if group.is_main:
            if done % cfg.log_every == 0 or done == cfg.iterations or report.evaluation:
                _append_metrics(experiment / METRICS, report)
            if done % cfg.save_every == 0 or done == cfg.iterations:
                _save(experiment, network, optimizer, scaler, done, cfg)
        if progress is not None:
            progress(report)
    if group.is_main:
        if last is None and not (experiment / MODEL).exists():
            _save(experiment, network, optimizer, scaler, first, cfg)
        save_loss_curve(experiment / METRICS, experiment / LOSS_PLOT)
    group.barrier()
    return TrainingResult(experiment, experiment / MODEL, first, reached, last, len(videos))


def _evaluated(network: ViSiL, evaluate: Callable[[ViSiL], dict[str, float]]) -> dict[str, float]:
    """The network's evaluation, in eval mode, and back to training."""
    network.eval()
    try:
        return evaluate(network)
    finally:
        network.train()


def _workers(cfg: TrainConfig) -> int:
    from .parallel import default_workers

    return default_workers() if cfg.workers is None else cfg.workers


def check_experiment(experiment: Path, resume: bool) -> None:
    """Refuse to overwrite an earlier run's files by accident, and to resume one that has no checkpoint."""
    checkpoint = experiment / CHECKPOINT
    if experiment.exists() and not experiment.is_dir():
        raise ConfigError(f"{experiment}: exists and is not a folder; give the experiment folder")
    if resume and not checkpoint.is_file():
        raise ConfigError(f"{checkpoint}: no checkpoint to resume from")
    earlier = [name for name in (CHECKPOINT, MODEL, METRICS) if (experiment / name).exists()]
    if not resume and earlier:
        raise ConfigError(f"{experiment}: already holds a training run ({', '.join(earlier)}); --resume continues "
                          "it, or choose another --experiment-path")


def _save(experiment: Path, network: ViSiL, optimizer, scaler, step: int, cfg: TrainConfig) -> None:
    """model.pth (the published layout plus config and metadata), then checkpoint.pth; both atomic."""
    from ..models.weights import save_atomically, save_checkpoint

    training = {"step": step, "iterations": cfg.iterations, "augmentations": cfg.augmentations,
                "backbone_weights": cfg.backbone_weights, "pca": cfg.pca}
    save_checkpoint(experiment / MODEL, network.state_dict(), network.config(), training=training)
    state = {"optimizer": optimizer.state_dict(), "step": step, "rng": torch.get_rng_state(),
             "train_config": json.loads(json.dumps(dataclasses.asdict(cfg)))}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    save_atomically(experiment / CHECKPOINT, {"model": network.state_dict(), "config": network.config(), **state})


# Settings that change what a step computes: a resumed run must keep them to continue exactly.
RESUME_FIXED = ("data", "loader", "batch_size", "window_size", "seed", "augmentations", "augmentation", "lr",
                "warmup_lr", "final_lr", "warmup_iterations", "decay_iterations", "weight_decay", "temperature",
                "sshn_weight", "regularization_weight", "backbone_weights", "pca", "fps")


def resume_differences(saved: dict, cfg: TrainConfig) -> list[str]:
    """Settings of `cfg` that differ from those a run was started with (its saved train_config)."""
    now = json.loads(json.dumps(dataclasses.asdict(cfg)))
    return [f"{name} {now[name]!r} (the run: {saved[name]!r})" for name in RESUME_FIXED
            if name in saved and saved[name] != now[name]]


def _restore(path: Path, network: ViSiL, optimizer, scaler, device: torch.device, cfg: TrainConfig) -> int:
    """Load checkpoint.pth into the network, optimiser and scaler -> the step to continue at."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        differences = resume_differences(state.get("train_config", {}), cfg)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"].cpu())
        step = int(state["step"])
    except (OSError, RuntimeError, KeyError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: cannot resume from it ({str(e).splitlines()[0]})") from None
    if differences:
        raise ConfigError(f"--resume with other settings than the run was started with: {'; '.join(differences)}; "
                          f"resume with them (the run's are in {path.parent / CONFIG})")
    return step


def _append_metrics(path: Path, report: StepReport) -> None:
    row = {"step": report.step, **{k: round(v, 6) for k, v in vars(report.losses).items()}, "lr": report.lr,
           "clips_per_second": round(report.clips_per_second, 3),
           "frames_per_second": round(report.frames_per_second, 2)}
    row.update({f"eval_{k}": v for k, v in report.evaluation.items()})
    _append_row(path, row)


def _keep_metrics_until(path: Path, step: int) -> None:
    """Drop the metrics.jsonl rows after `step` (all of them for a fresh start), atomically."""
    rows = [row for row in read_metrics(path) if row.get("step", 0) <= step] if step else []
    if not path.exists():
        return
    temporary = path.with_name(path.name + ".part")
    temporary.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    temporary.replace(path)


def _append_row(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl file (empty when there is none); a line cut short by a kill is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def save_loss_curve(metrics: Path, out: Path, size: tuple[int, int] = (800, 480)) -> bool:
    """Draw the total loss against the step from metrics.jsonl into a PNG; False when there is nothing to draw."""
    from PIL import Image, ImageDraw, ImageFont

    rows = [r for r in read_metrics(metrics) if "loss" in r]
    if len(rows) < 2:
        return False
    steps = [r["step"] for r in rows]
    losses = [r["loss"] for r in rows]
    width, height = size
    left, right, top, bottom = 70, 20, 30, 40
    low, high = min(losses), max(losses)
    high = high if high > low else low + 1.0
    x = lambda s: left + (s - steps[0]) / max(steps[-1] - steps[0], 1) * (width - left - right)  # noqa: E731
    y = lambda v: top + (high - v) / (high - low) * (height - top - bottom)  # noqa: E731
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=14)
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.line([(x(s), y(v)) for s, v in zip(steps, losses)], fill=(31, 119, 180), width=2)
    draw.text((left, 8), "training loss", fill="black", font=font)
    for value in (low, (low + high) / 2, high):
        draw.text((4, y(value) - 7), f"{value:.3g}", fill="black", font=font)
    for s in (steps[0], steps[-1]):
        draw.text((x(s) - 10, height - bottom + 6), str(s), fill="black", font=font)
    draw.text((width // 2 - 15, height - 20), "step", fill="black", font=font)
    image.save(out)
    return True


def load_training_videos(cfg: TrainConfig) -> tuple[list[VideoInput], str]:
    """The training videos under cfg.data and the loader they need (frames or video)."""
    from ..media.inputs import collect_inputs, is_frame_folder

    if cfg.data is None:
        raise ConfigError("no training data: give FRAMES_DIR (from s2vs extract-frames) or a folder of videos")
    root = Path(cfg.data)
    if not root.is_dir():
        raise ConfigError(f"{root}: training data folder not found")
    loader = cfg.loader
    if loader == "auto":
        loader = "frames" if any(is_frame_folder(p) for p in root.iterdir() if not p.name.startswith(".")) else "video"
    found = collect_inputs([root], loader=loader)
    if not found.inputs:
        kind = "frame folders" if loader == "frames" else "videos"
        raise ConfigError(f"{root}: no {kind} found")
    return found.inputs, loader


class TrainingEvaluator:
    """mAP (and the other custom-ground-truth metrics) of the network being trained, every few steps.

    The backbone is frozen, so the evaluation videos' region features never change: they are extracted
    once into the experiment folder (eval_features.hdf5, resumable) and only rescored each time.
    """

    def __init__(self, cfg: TrainConfig, extractor, progress: Callable | None = None):
        from ..benchmarks.annotations import load_custom_ground_truth
        from .evaluate import extract_benchmark_features
        from .extract_features import ExtractionOptions
        from ..runtime import resolve_device, resolve_precision
        from ..storage.store import StoreIdentity
        from ..models.weights import package_version

        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.benchmark = load_custom_ground_truth(cfg.eval_ground_truth)
        self.features = Path(cfg.experiment_path) / "eval_features.hdf5"
        self.features.parent.mkdir(parents=True, exist_ok=True)
        identity = StoreIdentity(extractor.backbone_label, extractor.whitening_label, cfg.fps, extractor.dims, "video")
        options = ExtractionOptions(fps=cfg.fps, loader="video", precision=self.precision, workers=0)
        self.extraction = extract_benchmark_features(self.benchmark, cfg.eval_dataset_path, cfg.eval_pattern, "video",
                                                     self.features, extractor, identity, package_version(), options,
                                                     progress=progress)

    def __call__(self, network: ViSiL) -> dict[str, float]:
        from ..benchmarks.metrics import evaluate_custom
        from ..scoring.retrieval import VideoScorer, score_store

        scorer = VideoScorer(network, self.device, self.precision)
        scored = score_store(str(self.features), self.benchmark.queries, self.benchmark.database, scorer)
        return evaluate_custom(self.benchmark, scored.similarities).metrics


def preview_augmentations(cfg: TrainConfig, videos: list[VideoInput], loader: str, out: Path,
                          count: int = 4) -> list[Path]:
    """Write weak/strong strips of `count` training videos' clips (as step 0 would make them) into `out`."""
    from ..training.augmentations import save_preview

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
