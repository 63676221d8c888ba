"""A training run's folder: its files, the guard against overwriting an earlier run, and the checkpoint that
lets a resumed run continue at the exact step.

config.yaml (the effective configuration), model.pth (loadable with --model anywhere), checkpoint.pth
(network, optimiser, scaler and RNG state), metrics.jsonl (metrics_log.py) and loss.png (plots.py).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from ..config import TrainConfig
from ..errors import CheckpointError, ConfigError
from ..models.visil import ViSiL

CHECKPOINT = "checkpoint.pth"
MODEL = "model.pth"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
LOSS_PLOT = "loss.png"

# Settings that change what a step computes: a resumed run must keep them to continue exactly.
RESUME_FIXED = ("data", "loader", "run_length", "batch_size", "window_size", "seed", "augmentations", "augmentation",
                "lr", "warmup_lr", "final_lr", "warmup_iterations", "decay_iterations", "weight_decay", "temperature",
                "sshn_weight", "regularization_weight", "backbone_weights", "pca", "fps")


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


def save_run(experiment: Path, network: ViSiL, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler | None, step: int, cfg: TrainConfig) -> None:
    """model.pth (the published layout plus config and metadata), then checkpoint.pth; both atomic."""
    from ..models.checkpoints import save_atomically, save_checkpoint

    training = {"step": step, "iterations": cfg.iterations, "augmentations": cfg.augmentations,
                "backbone_weights": cfg.backbone_weights, "pca": cfg.pca}
    save_checkpoint(experiment / MODEL, network.state_dict(), network.config(), training=training)
    state = {"optimizer": optimizer.state_dict(), "step": step, "rng": torch.get_rng_state(),
             "train_config": _plain(cfg)}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    save_atomically(experiment / CHECKPOINT, {"model": network.state_dict(), "config": network.config(), **state})


def resume_differences(saved: dict, cfg: TrainConfig) -> list[str]:
    """Settings of `cfg` that differ from those a run was started with (its saved train_config)."""
    now = _plain(cfg)
    if saved:  # runs saved before run_length existed ran whole batches for exactly their iterations
        saved = {"run_length": "steps", **saved}
    return [f"{name} {now[name]!r} (the run: {saved[name]!r})" for name in RESUME_FIXED
            if name in saved and saved[name] != now[name]]


def restore_run(path: Path, network: ViSiL, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                device: torch.device, cfg: TrainConfig) -> int:
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


def _plain(cfg: TrainConfig) -> dict:
    """The configuration as plain JSON values (tuples become lists), as it is saved and compared."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
