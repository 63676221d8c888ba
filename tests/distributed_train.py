"""Driver for tests/test_distributed.py, run by torchrun: train a few steps through the library, then save this
rank's final weights as rank{RANK}.pth in OUT_DIR.

Usage: torchrun --nproc_per_node 2 tests/distributed_train.py FRAMES_DIR OUT_DIR STEPS
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from s2vs_cli.config import AugmentationOptions, TrainConfig
from s2vs_cli.jobs.train import load_training_videos, train
from s2vs_cli.runtime import Runtime


def tiny_config(frames: str, experiment: str, steps: int) -> TrainConfig:
    """2 videos per rank and step, 4-frame clips of 160 x 160 pixels (4 regions a frame: half the work of 224),
    fp32, random weights, the data loaded in this process."""
    return TrainConfig(data=frames, experiment_path=experiment, iterations=steps, batch_size=2, window_size=4,
                       frames_per_batch=16, workers=0, precision="fp32", device="cpu", backbone_weights="random",
                       pca="random", warmup_iterations=0, log_every=1, lr=1e-3,
                       augmentation=AugmentationOptions(crop_size=160))


def main(frames: str, out: str, steps: int) -> None:
    cfg = tiny_config(frames, str(Path(out) / "run"), steps)
    runtime = Runtime.start(cfg.device, cfg.precision, seed=cfg.seed, distributed=True, backend="gloo")
    try:
        runtime.load_extractor(cfg.backbone_weights, cfg.pca)
        train(cfg, *load_training_videos(cfg), runtime)
        torch.save(runtime.network.state_dict(), Path(out) / f"rank{runtime.group.rank}.pth")
    finally:
        runtime.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
