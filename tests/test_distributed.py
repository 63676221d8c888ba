"""Training under torchrun: two CPU processes (gloo) end with the same weights, equal to one process that
averages the gradients of the same two per-rank batches (each rank's contrastive loss stays within its own
batch, no all-gather, as the original)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from media import write_moving_shape_folders

from distributed_train import tiny_config
from s2vs_cli.jobs.train import load_training_videos
from s2vs_cli.models.loading import load_extractor, load_similarity_network
from s2vs_cli.training.augmentations import parse_augmentations
from s2vs_cli.training.batches import build_batch
from s2vs_cli.training.clips import BatchPlan, ClipSource
from s2vs_cli.training.schedule import LearningRateSchedule
from s2vs_cli.training.step import batch_features, loss_terms

STEPS, WORLD = 1, 2  # 5 videos, 2 a rank: one epoch of 2 steps, the second with 1 video a rank
DRIVER = Path(__file__).with_name("distributed_train.py")

pytestmark = pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists()
    or not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torchrun with gloo is not available")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tiny_frames(tmp_path_factory) -> Path:
    """Five 'videos' of 10 small frames (a shape moving over noise), as s2vs extract-frames writes them."""
    return write_moving_shape_folders(tmp_path_factory.mktemp("tiny_frames"), videos=5, frames=10, height=72, width=96)


@pytest.fixture(scope="module")
def torchrun_weights(tiny_frames, tmp_path_factory) -> list[dict[str, torch.Tensor]]:
    """Each rank's final weights after STEPS steps of `torchrun --nproc_per_node 2` on the CPU."""
    out = tmp_path_factory.mktemp("torchrun")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent.parent), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD), "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), str(DRIVER), str(tiny_frames), str(out), str(STEPS)],
        capture_output=True, text=True, env=env, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    return [torch.load(out / f"rank{rank}.pth", weights_only=True) for rank in range(WORLD)]


def _reference_weights(frames: Path, experiment: Path) -> dict[str, torch.Tensor]:
    """One process: from the same initial weights, each rank's batch's loss separately, the two gradients
    averaged, and the same optimiser step."""
    cfg = tiny_config(str(frames), str(experiment), STEPS)
    videos, loader = load_training_videos(cfg)
    extractor = load_extractor(cfg.backbone_weights, cfg.pca, "cpu", cfg.seed)
    network = load_similarity_network("random", "cpu", cfg.seed).train()
    parameters = list(network.parameters())
    optimizer = torch.optim.AdamW(parameters, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = LearningRateSchedule(cfg.lr, cfg.warmup_lr, cfg.final_lr, cfg.warmup_iterations, cfg.decay_iterations)
    plan = BatchPlan(len(videos), cfg.batch_size, WORLD, cfg.seed, cfg.run_length)
    source, augmentations = ClipSource(videos, loader, cfg.fps), parse_augmentations(cfg.augmentations)
    for step in range(plan.run_steps(STEPS)):
        gradients = []
        for rank in range(WORLD):
            batch = build_batch(source, plan, cfg, augmentations, step, rank)  # seeded by (seed, step, rank)
            features = batch_features(extractor, batch, torch.device("cpu"), "fp32", cfg.frames_per_batch)
            similarity, regularisation = network(features)
            total, _ = loss_terms(similarity, regularisation, batch.viv_labels, cfg)
            gradients.append(torch.autograd.grad(total, parameters))
        for parameter, *per_rank in zip(parameters, *gradients):
            parameter.grad = sum(per_rank) / WORLD
        for group in optimizer.param_groups:
            group["lr"] = schedule(step)
        optimizer.step()
    return network.state_dict()


def test_both_ranks_end_with_the_same_weights(torchrun_weights):
    rank0, rank1 = torchrun_weights
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)


def test_torchrun_equals_one_process_averaging_the_two_ranks_gradients(torchrun_weights, tiny_frames, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (OMP_NUM_THREADS=1): the same summation order
    try:
        reference = _reference_weights(tiny_frames, tmp_path / "reference")
    finally:
        torch.set_num_threads(threads)
    initial = load_similarity_network("random", "cpu", 0).state_dict()
    assert any(not torch.equal(initial[key], reference[key]) for key in reference)  # the steps changed something
    for key in reference:
        torch.testing.assert_close(torchrun_weights[0][key], reference[key], rtol=1e-5, atol=1e-5, msg=key)
