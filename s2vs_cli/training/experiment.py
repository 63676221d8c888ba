"""A training run's folder: its files, the guard against overwriting an earlier run, the lock against two runs
writing it at once, and the checkpoint that lets a resumed run continue at the exact step.

config.yaml (the effective configuration), model.pth (loadable with --model anywhere), checkpoint.pth
(network, optimiser, scaler and RNG state), metrics.jsonl (metrics_log.py) and loss.png (plots.py).

model.pth and checkpoint.pth are always from one step. Both are written whole and synced before either
replaces its previous file, so a full disk leaves the previous pair; checkpoint.pth (what --resume reads) is
renamed first, and a crash between the two renames, which would leave model.pth a step behind, is repaired
by the next --resume, which rewrites model.pth from the checkpoint.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from ..atomic import atomic_write, write_bytes_atomically
from ..config import TrainConfig
from ..errors import CheckpointError, ConfigError
from ..models.checkpoints import checkpoint_payload, load_torch_file, serialized
from ..models.visil import ViSiL
from ..storage.bookkeeping import exclusive_lock

CHECKPOINT = "checkpoint.pth"
MODEL = "model.pth"
METRICS = "metrics.jsonl"
CONFIG = "config.yaml"
LOSS_PLOT = "loss.png"
LOCK = ".s2vs-lock"  # held by the run writing the folder; dies with its process

# Settings that change what a step computes: a resumed run must keep them to continue exactly.
RESUME_FIXED = ("data", "loader", "run_length", "batch_size", "window_size", "seed", "augmentations", "augmentation",
                "lr", "warmup_lr", "final_lr", "warmup_iterations", "decay_iterations", "weight_decay", "temperature",
                "sshn_weight", "regularization_weight", "backbone_weights", "pca", "fps")


def check_experiment(experiment: Path, resume: bool) -> None:
    """Refuse to overwrite an earlier run's files by accident, and to resume one that has no checkpoint."""
    checkpoint = experiment / CHECKPOINT
    if experiment.exists() and not experiment.is_dir():
        raise ConfigError(f"{experiment}: exists and is not a folder; give the experiment folder")
    earlier = [name for name in (CHECKPOINT, MODEL, METRICS) if (experiment / name).exists()]
    if earlier == [METRICS]:  # a run stopped (full disk, kill) before its first checkpoint: nothing to resume
        raise ConfigError(f"{experiment}: holds a run that stopped before its first checkpoint (only {METRICS}); "
                          f"remove {experiment / METRICS} to start again here, or choose another --experiment-path")
    if resume and not checkpoint.is_file():
        raise ConfigError(f"{checkpoint}: no checkpoint to resume from")
    if not resume and earlier:
        raise ConfigError(f"{experiment}: already holds a training run ({', '.join(earlier)}); --resume continues "
                          "it, or choose another --experiment-path")


@contextlib.contextmanager
def experiment_lock(experiment: Path, held: bool = True) -> Iterator[None]:
    """Hold the experiment folder's lock (when `held`: rank 0 writes, the other ranks do not lock) while a run
    writes it; a second run fails at once, in one line naming the folder and the holder's pid."""
    if not held:
        yield
        return
    with exclusive_lock(experiment / LOCK, f"{experiment} (a training run)"):
        yield


def check_not_running(experiment: Path) -> None:
    """S2VSError when another run holds the folder's lock now (before minutes of loading weights)."""
    if (experiment / LOCK).exists():  # a killed run's file holds no lock: taking it here removes it
        with experiment_lock(experiment):
            pass


def save_run(experiment: Path, network: ViSiL, optimizer: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler | None, step: int, cfg: TrainConfig) -> None:
    """checkpoint.pth and model.pth of `step`, as a pair (the module's docstring); OutputWriteError naming the
    file that could not be written, the previous pair then unchanged."""
    state = {"model": network.state_dict(), "config": network.config(), "optimizer": optimizer.state_dict(),
             "step": step, "rng": torch.get_rng_state(), "train_config": _plain(cfg)}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    model, run = serialized(_model_payload(network, step, cfg)), serialized(state)
    experiment.mkdir(parents=True, exist_ok=True)
    with atomic_write(experiment / MODEL, "wb") as model_out:
        model_out.write(model)
        model_out.flush()
        os.fsync(model_out.fileno())  # on disk before the checkpoint moves on: only the renames remain
        write_bytes_atomically(experiment / CHECKPOINT, run)


def repair_model(experiment: Path, network: ViSiL, step: int, cfg: TrainConfig) -> bool:
    """Rewrite model.pth from `network` (just restored from checkpoint.pth at `step`) unless it is of that step
    already: a run killed between save_run's two renames. True when it was rewritten."""
    try:
        if int(load_torch_file(experiment / MODEL, "model")["training"]["step"]) == step:
            return False
    except (CheckpointError, KeyError, TypeError, ValueError):
        pass  # missing, damaged or without its step: rewritten from the checkpoint, the reference
    write_bytes_atomically(experiment / MODEL, serialized(_model_payload(network, step, cfg)))
    return True


def _model_payload(network: ViSiL, step: int, cfg: TrainConfig) -> dict:
    """model.pth: the published layout plus config and what the run was."""
    training = {"step": step, "iterations": cfg.iterations, "augmentations": cfg.augmentations,
                "backbone_weights": cfg.backbone_weights, "pca": cfg.pca}
    return checkpoint_payload(network.state_dict(), network.config(), training=training)


def resume_differences(saved: dict, cfg: TrainConfig) -> list[str]:
    """Settings of `cfg` that differ from those a run was started with (its saved train_config)."""
    now = _plain(cfg)
    if saved:  # runs saved before run_length existed ran whole batches for exactly their iterations
        saved = {"run_length": "steps", **saved}
    if isinstance(saved.get("augmentation"), dict):  # and before overlay_emoji_alpha, pasted emoji through alpha
        saved["augmentation"] = {"overlay_emoji_alpha": True, **saved["augmentation"]}
    differences = []
    for name in RESUME_FIXED:
        if name not in saved or saved[name] == now[name]:
            continue
        if isinstance(saved[name], dict) and isinstance(now[name], dict):  # the augmentation section: its keys
            differences += [f"{name}.{key} {now[name].get(key)!r} (the run: {saved[name].get(key)!r})"
                            for key in {**saved[name], **now[name]} if saved[name].get(key) != now[name].get(key)]
        else:
            differences.append(f"{name} {now[name]!r} (the run: {saved[name]!r})")
    return differences


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
