"""`s2vs train` and the training loop: one step, save/resume, the experiment folder, torchrun, the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from media import write_moving_shape_folders
from PIL import Image
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.config import AugmentationOptions, TrainConfig
from s2vs_cli.models.loading import load_extractor, load_similarity_network
from s2vs_cli.jobs.train import load_training_videos, train
from s2vs_cli.progress import SILENT, Progress
from s2vs_cli.runtime import Runtime
from s2vs_cli.training.batches import build_batch
from s2vs_cli.training.experiment import CHECKPOINT, METRICS, MODEL
from s2vs_cli.training.metrics_log import read_metrics
from s2vs_cli.training.step import batch_features, training_step

runner = CliRunner()
# Small and fast: 3 videos a step, 4-frame clips, fp32 (deterministic), the data loaded in this process, and
# exactly the asked steps (the tests of whole epochs, the default, say so).
# Views of 112 pixels: a quarter of the backbone's work of the paper's 224, and nothing these tests check depends on it.
SMALL = dict(batch_size=3, window_size=4, precision="fp32", device="cpu", workers=0, backbone_weights="random",
             pca="random", log_every=1, warmup_iterations=0, run_length="steps",
             augmentation=AugmentationOptions(crop_size=112))
SMALL_FLAGS = ["--batch-size", "3", "--run-length", "steps", "--window-size", "4", "--precision", "fp32", "--device",
               "cpu", "-j", "0", "--backbone-weights", "random", "--pca", "random"]


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory) -> Path:
    """Five 'videos' of 12 frames (shapes moving over noise), as s2vs extract-frames writes them."""
    return write_moving_shape_folders(tmp_path_factory.mktemp("frames"), videos=5, frames=12, height=256, width=320)


@pytest.fixture(scope="module")
def extractor():
    return load_extractor("random", "random", "cpu")


def _small_flags(folder: Path) -> list[str]:
    """SMALL_FLAGS and a config file of SMALL's 112-pixel views (the crop size is set in YAML only)."""
    (folder / "small.yaml").write_text("augmentation:\n  crop_size: 112\n")
    return [*SMALL_FLAGS, "--config", str(folder / "small.yaml")]


def _config(frames_dir: Path, experiment: Path, **overrides) -> TrainConfig:
    return TrainConfig(data=str(frames_dir), experiment_path=str(experiment), **(SMALL | overrides))


def _train(cfg: TrainConfig, extractor, progress: Progress = SILENT):
    """Train in this process on the CPU with the shared random extractor."""
    runtime = Runtime.cpu("fp32", seed=cfg.seed)
    runtime.extractor = extractor
    return train(cfg, *load_training_videos(cfg), runtime, progress)


def test_one_step_changes_only_the_similarity_networks_parameters(frames_dir, tmp_path, extractor):
    from s2vs_cli.training.augmentations import parse_augmentations
    from s2vs_cli.training.clips import BatchPlan, ClipSource
    from s2vs_cli.models.visil import ViSiL

    cfg = _config(frames_dir, tmp_path / "run", augmentation=AugmentationOptions())  # the paper's 224-pixel views
    videos, loader = load_training_videos(cfg)
    assert loader == "frames" and len(videos) == 5
    batch = build_batch(ClipSource(videos, loader), BatchPlan(5, 3), cfg, parse_augmentations(cfg.augmentations), 0)
    assert batch.weak.shape == batch.strong.shape == (3, 4, 224, 224, 3)
    torch.manual_seed(0)
    network = ViSiL().train()
    before_net = {k: v.clone() for k, v in network.state_dict().items()}
    before_cnn = {k: v.clone() for k, v in extractor.state_dict().items()}
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=0.01)
    features = batch_features(extractor, batch, torch.device("cpu"), "fp32", 512)
    assert features.shape == (6, 4, 9, 512)
    losses = training_step(network, features, batch.viv_labels, optimizer, None, 1e-3, cfg, "fp32")
    assert np.isfinite(losses.loss) and losses.loss == pytest.approx(
        losses.infonce + 3 * (losses.hard_negative + losses.self_similarity) + losses.regularisation, rel=1e-5)
    assert all(not torch.equal(before_net[k], v) for k, v in network.state_dict().items())
    assert all(torch.equal(before_cnn[k], v) for k, v in extractor.state_dict().items())


def test_a_one_video_batch_trains_with_the_originals_losses(frames_dir, tmp_path, extractor):
    """The last batch of an epoch may hold one video a process: no negatives, so the hard-negative term is the
    constant −log(1 − (−100)) of the original's SSHNLoss; the step still trains on the video's two views."""
    from s2vs_cli.training.augmentations import parse_augmentations
    from s2vs_cli.training.clips import BatchPlan, ClipSource
    from s2vs_cli.models.visil import ViSiL

    cfg = _config(frames_dir, tmp_path / "run")
    videos, loader = load_training_videos(cfg)
    plan = BatchPlan(5, 2, world_size=2, run_length="epochs")  # 3 videos a process and pass: 2, then 1
    batch = build_batch(ClipSource(videos, loader), plan, cfg, parse_augmentations(cfg.augmentations), 1, rank=1)
    assert batch.weak.shape[0] == batch.strong.shape[0] == 1 and batch.viv_labels.tolist() == [[1.0]]
    torch.manual_seed(0)
    network = ViSiL().train()
    before = {k: v.clone() for k, v in network.state_dict().items()}
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3, weight_decay=0.01)
    features = batch_features(extractor, batch, torch.device("cpu"), "fp32", 512)
    losses = training_step(network, features, batch.viv_labels, optimizer, None, 1e-3, cfg, "fp32")
    assert np.isfinite(losses.loss) and losses.hard_negative == pytest.approx(-np.log(101), rel=1e-6)
    assert any(not torch.equal(before[k], v) for k, v in network.state_dict().items())


def test_batches_are_reproducible_and_differ_between_steps(frames_dir, tmp_path):
    from s2vs_cli.training.augmentations import parse_augmentations
    from s2vs_cli.training.clips import BatchPlan, ClipSource

    cfg = _config(frames_dir, tmp_path / "run")
    videos, loader = load_training_videos(cfg)
    make = lambda step: build_batch(ClipSource(videos, loader), BatchPlan(5, 3), cfg,  # noqa: E731
                                    parse_augmentations("GT,FT,TT,ViV"), step)
    a, b, c = make(4), make(4), make(5)
    assert torch.equal(a.strong, b.strong) and torch.equal(a.weak, b.weak) and torch.equal(a.viv_labels, b.viv_labels)
    assert not torch.equal(a.strong, c.strong)


def test_resume_gives_the_same_next_loss_as_an_uninterrupted_run(frames_dir, tmp_path, extractor):
    # one schedule for both runs (by default it ends at the iterations)
    small = dict(decay_iterations=3)
    whole = _train(_config(frames_dir, tmp_path / "whole", iterations=3, **small), extractor)
    _train(_config(frames_dir, tmp_path / "parts", iterations=2, save_every=2, **small), extractor)
    resumed = _train(_config(frames_dir, tmp_path / "parts", iterations=3, resume=True, **small), extractor)
    assert resumed.first_step == 2 and resumed.steps == 3
    assert resumed.last.loss == pytest.approx(whole.last.loss, rel=1e-5, abs=1e-6)
    a = torch.load(tmp_path / "whole" / MODEL, weights_only=True)["model"]
    b = torch.load(tmp_path / "parts" / MODEL, weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    rows = read_metrics(tmp_path / "parts" / METRICS)
    assert [r["step"] for r in rows] == [1, 2, 3]
    # A run killed after its checkpoint had logged steps it will redo: resuming drops them first.
    with (tmp_path / "parts" / METRICS).open("a") as out:
        out.write(json.dumps({"step": 4, "loss": 1.0}) + "\n")
    _train(_config(frames_dir, tmp_path / "parts", iterations=3, resume=True, **small), extractor)
    assert [r["step"] for r in read_metrics(tmp_path / "parts" / METRICS)] == [1, 2, 3]
    assert set(rows[0]) >= {"loss", "infonce", "hard_negative", "self_similarity", "regularisation", "lr",
                            "clips_per_second", "frames_per_second"}


def test_experiment_folder_and_the_trained_model_loads_anywhere(frames_dir, tmp_path, extractor):
    class Recorder(Progress):
        def __init__(self):
            self.calls = []

        def stage(self, name, total=None, unit="items"):
            self.calls.append(("stage", name, total, unit))

        def update(self, done, total=None, *, failed=0, frames=0, status=""):
            self.calls.append(("update", done, status))

    progress = Recorder()
    result = _train(_config(frames_dir, tmp_path / "run", iterations=2), extractor, progress)
    assert progress.calls[0] == ("stage", "training", 2, "steps")
    assert [call[1] for call in progress.calls[1:]] == [0, 1, 2]
    assert progress.calls[-1][2].startswith("loss ") and " lr " in progress.calls[-1][2]
    folder = tmp_path / "run"
    assert {p.name for p in folder.iterdir()} >= {"config.yaml", MODEL, CHECKPOINT, METRICS, "loss.png"}
    assert "iterations: 2" in (folder / "config.yaml").read_text()
    network = load_similarity_network(str(result.model), device="cpu")
    assert network.attention is not None
    checkpoint = torch.load(folder / CHECKPOINT, weights_only=True)
    assert checkpoint["step"] == 2 and "optimizer" in checkpoint
    with Image.open(folder / "loss.png") as image:
        assert image.size == (800, 480)


def test_cli_errors_and_preview(frames_dir, tmp_path):
    base = ["train", str(frames_dir), "--experiment-path", str(tmp_path / "run"), *_small_flags(tmp_path)]
    bad = runner.invoke(app, base + ["--augmentations", "GT,XX"])
    assert bad.exit_code == 2 and "unknown augmentation 'XX'" in bad.output
    resume = runner.invoke(app, base + ["--resume"])
    assert resume.exit_code == 2 and "no checkpoint to resume from" in resume.output
    missing = runner.invoke(app, ["train", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "training data folder not found" in missing.output
    too_big = runner.invoke(app, base + ["--batch-size", "9"])
    assert too_big.exit_code == 2 and "a batch of 9 videos needs at least that many videos; found 5" in too_big.output
    shown = runner.invoke(app, base + ["--iterations", "7", "--print-config"])
    assert shown.exit_code == 0 and "iterations: 7" in shown.output and "viv_p: 0.3" in shown.output
    preview = runner.invoke(app, base + ["--preview-augmentations", str(tmp_path / "preview")])
    assert preview.exit_code == 0, preview.output
    pngs = sorted((tmp_path / "preview").glob("*.png"))
    assert len(pngs) == 4 and not (tmp_path / "run").exists()


def test_cli_refuses_to_overwrite_a_run(frames_dir, tmp_path):
    base = ["train", str(frames_dir), "--experiment-path", str(tmp_path / "run"), "--iterations", "1", "-q",
            *_small_flags(tmp_path)]
    assert runner.invoke(app, base).exit_code == 0
    again = runner.invoke(app, base)
    assert again.exit_code == 2
    assert "already holds a training run (checkpoint.pth, model.pth, metrics.jsonl); --resume continues it" in again.output
    (tmp_path / "run" / CHECKPOINT).unlink()  # a finished run's model is still not overwritten
    again = runner.invoke(app, base)
    assert again.exit_code == 2 and "already holds a training run (model.pth, metrics.jsonl)" in again.output
    (tmp_path / "run" / "model.pth").unlink()  # a run stopped before its first checkpoint: say what to do
    for flags in ([], ["--resume"]):
        again = runner.invoke(app, base + flags)
        assert again.exit_code == 2 and "holds a run that stopped before its first checkpoint (only metrics.jsonl); " \
            f"remove {tmp_path / 'run' / 'metrics.jsonl'} to start again here" in " ".join(again.output.split())


def test_resume_takes_the_runs_settings_and_refuses_others(frames_dir, tmp_path):
    run = str(tmp_path / "run")
    first = runner.invoke(app, ["train", str(frames_dir), "--experiment-path", run, "--iterations", "2", "-q",
                                *_small_flags(tmp_path), "--seed", "3"])
    assert first.exit_code == 0, first.output
    with (tmp_path / "run" / METRICS).open("a") as out:
        out.write('{"step": 3, "loss": 0.7')  # a line cut short by a kill
    resumed = runner.invoke(app, ["train", "--experiment-path", run, "--resume", "--iterations", "3", "-q"])
    assert resumed.exit_code == 0, resumed.output  # data, batch, window and seed come from the run's config.yaml
    assert [r["step"] for r in read_metrics(tmp_path / "run" / METRICS)] == [2, 3]  # logged every 10 and at the end
    other = runner.invoke(app, ["train", "--experiment-path", run, "--resume", "--iterations", "4", "--seed", "5"])
    assert other.exit_code == 2 and "--resume with other settings than the run was started with: seed 5 (the run: 3)" \
        in other.output
    back = runner.invoke(app, ["train", "--experiment-path", run, "--resume", "--iterations", "2"])
    assert back.exit_code == 2 and "the run is at step 3; --iterations 2 would go back" in back.output


def test_a_bad_frame_stops_training_with_one_line_from_a_worker(frames_dir, tmp_path):
    import shutil

    data = tmp_path / "frames"
    shutil.copytree(frames_dir, data)
    for folder in data.iterdir():
        (folder / "00003.jpg").write_bytes(b"not a jpeg")
    result = runner.invoke(app, ["train", str(data), "--experiment-path", str(tmp_path / "run"), "--iterations",
                                 "1", "-q", *SMALL_FLAGS[:-6], "--backbone-weights", "random", "--pca", "random",
                                 "-j", "1"])
    assert result.exit_code == 1 and "unreadable image" in result.output and "00003.jpg" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_two_processes_under_torchrun(frames_dir, tmp_path):
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    (tmp_path / "small.yaml").write_text("augmentation:\n  crop_size: 112\n")  # a quarter of the work of 224
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
         str(29700 + os.getpid() % 1000), "-m", "s2vs_cli", "train", str(frames_dir), "--experiment-path",
         str(tmp_path / "ddp"), "--iterations", "2", "-q", *SMALL_FLAGS[2:], "--batch-size", "2", "--config",
         str(tmp_path / "small.yaml")],
        capture_output=True, text=True, env=env, timeout=600)
    assert launched.returncode == 0, launched.stderr[-3000:]
    rows = read_metrics(tmp_path / "ddp" / METRICS)
    assert [r["step"] for r in rows] == [2]  # log_every 10: the last step only; rank 0 alone writes
    assert (tmp_path / "ddp" / MODEL).is_file()
    load_similarity_network(str(tmp_path / "ddp" / MODEL), device="cpu")


def test_eval_every_reports_map_at_the_start_and_during_training(frames_dir, tmp_path):
    from media import write_video

    rng = np.random.default_rng(1)
    videos = tmp_path / "eval"
    videos.mkdir()
    for name in ("a", "b"):
        frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(6)]
        write_video(videos / f"{name}.mp4", frames, rate=2)
        write_video(videos / f"{name}-copy.mp4", [f[8:88, 8:120] for f in frames], rate=2)
    gt = {"queries": ["a", "b"], "database": ["a-copy", "b-copy"], "positives": {"a": ["a-copy"], "b": ["b-copy"]}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    result = runner.invoke(app, ["train", str(frames_dir), "--experiment-path", str(tmp_path / "run"), "--iterations",
                                 "2", "--eval-every", "1", "--eval-ground-truth", str(tmp_path / "gt.json"),
                                 "--eval-dataset-path", str(videos), "--eval-pattern", "{id}.mp4", "-q",
                                 *_small_flags(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = read_metrics(tmp_path / "run" / METRICS)
    evaluated = [(r["step"], r["eval_mAP"]) for r in rows if "eval_mAP" in r]
    assert [step for step, _ in evaluated] == [0, 1, 2]
    assert all(0 < value <= 1 for _, value in evaluated)
    assert (tmp_path / "run" / "eval_features.hdf5").is_file()


# The two longest sample clips (139 and 40 s): most of the frames (179 of 287), and nothing the others lack.
LONGEST_CLIPS = ("one-by-one-person-detection", "bottle-detection")


@pytest.mark.slow
def test_a_short_cpu_run_on_the_shared_clips_lowers_the_loss_and_its_model_evaluates(videos_dir, tmp_path):
    """The sample clips' frames (all but the two longest), a whitening fitted on them (the random backbone's raw
    vectors are nearly parallel: nothing to learn from through a random projection), 12 steps of 4 videos in
    4-frame clips of 160 pixels (a quarter of the backbone's work of 8-frame 224-pixel ones) at a learning rate
    of 2e-3: the loss goes down (by 0.71 here, the mean of the last 4 steps against the first 4's)."""
    clips = [str(p) for p in sorted(videos_dir.iterdir()) if p.suffix in (".mp4", ".mkv") and
             p.stem not in LONGEST_CLIPS]
    frames, raw, pca, white = tmp_path / "frames", tmp_path / "raw.h5", tmp_path / "pca.pth", tmp_path / "white.h5"
    for args in (["extract-frames", *clips, "-o", str(frames), "-q", "-j", "0"],
                 ["extract-features", str(frames), "--loader", "frames", "--backbone-weights", "random", "--pca",
                  "none", "-o", str(raw), "-q", "-j", "0"],
                 ["fit-pca", str(raw), "-o", str(pca), "-q"],
                 ["extract-features", str(frames / "bikes"), str(frames / "car-detection"), str(frames / "walk"),
                  "--loader", "frames", "--backbone-weights", "random", "--pca", str(pca), "-o", str(white), "-q",
                  "-j", "0"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    (tmp_path / "small.yaml").write_text("log_every: 1\nwarmup_iterations: 2\ndecay_iterations: 12\n"
                                         "augmentation:\n  crop_size: 160\n")
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(frames), "--config", str(tmp_path / "small.yaml"), "--experiment-path",
                                 str(run), "--iterations", "12", "--batch-size", "4", "--window-size", "4", "--lr",
                                 "2e-3", "--backbone-weights", "random", "--pca", str(pca), "--device", "cpu", "-j", "0",
                                 "--run-length", "steps", "-q"])
    assert result.exit_code == 0, result.output
    losses = [row["loss"] for row in read_metrics(run / METRICS)]
    assert len(losses) == 12 and np.mean(losses[-4:]) < np.mean(losses[:4]) - 0.2
    gt = {"queries": ["bikes"], "database": ["car-detection", "walk"], "positives": {"bikes": ["walk"]}}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    evaluated = runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(tmp_path / "gt.json"),
                                    "--dataset-hdf5", str(white), "--model", str(run / MODEL), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    summary = json.loads(evaluated.stdout)
    assert summary["model"] == str(run / MODEL) and 0 < summary["metrics"]["mAP"] <= 1


# Whole epochs (the default): 5 videos, 3 a step -> epochs of 2 steps (3 videos, then the 2 left over);
# --iterations 3 -> 3 // 2 + 1 = 2 epochs, 4 steps. Checkpoints every step, so a run can be cut anywhere.
EPOCHS = dict(run_length="epochs", iterations=3, save_every=1)


def _recording_batches(monkeypatch, kill_at: int | None = None) -> list[int]:
    """The number of videos of each batch trained on, in order; with `kill_at`, the run dies before that step."""
    import s2vs_cli.jobs.train as job

    sizes, features_of = [], job.batch_features

    def recording(extractor, batch, *args):
        if batch.step == kill_at:
            raise RuntimeError("killed")
        sizes.append(len(batch.video_ids))
        return features_of(extractor, batch, *args)

    monkeypatch.setattr(job, "batch_features", recording)
    return sizes


@pytest.fixture(scope="module")
def whole_epochs(frames_dir, tmp_path_factory, extractor):
    """An uninterrupted run of whole epochs -> (its result, the size of each batch it trained on)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        sizes = _recording_batches(monkeypatch)
        result = _train(_config(frames_dir, tmp_path_factory.mktemp("epochs") / "run", **EPOCHS), extractor)
    return result, sizes


def test_a_run_of_whole_epochs_trains_on_the_partial_batches(whole_epochs):
    result, sizes = whole_epochs
    assert (result.first_step, result.steps, result.total) == (0, 4, 4)
    assert sizes == [3, 2, 3, 2]  # each epoch's last batch: the 2 videos left over, trained on
    assert [row["step"] for row in read_metrics(result.experiment / METRICS)] == [1, 2, 3, 4]
    assert all(np.isfinite(row["loss"]) for row in read_metrics(result.experiment / METRICS))
    assert torch.load(result.experiment / CHECKPOINT, weights_only=True)["step"] == 4
    assert "run_length: epochs" in (result.experiment / "config.yaml").read_text()


@pytest.mark.parametrize("kill_at", [1, 2, 3], ids=["mid-epoch-then-across", "at-the-boundary", "mid-epoch-2"])
def test_resuming_whole_epochs_gives_the_weights_of_an_uninterrupted_run(frames_dir, tmp_path, extractor,
                                                                         whole_epochs, monkeypatch, kill_at):
    whole, whole_sizes = whole_epochs
    cfg = _config(frames_dir, tmp_path / "run", **EPOCHS)
    with monkeypatch.context() as patch:
        before = _recording_batches(patch, kill_at)
        with pytest.raises(RuntimeError, match="killed"):
            _train(cfg, extractor)
    after = _recording_batches(monkeypatch)
    resumed = _train(_config(frames_dir, tmp_path / "run", resume=True, **EPOCHS), extractor)
    assert (resumed.first_step, resumed.steps) == (kill_at, 4) and before + after == whole_sizes
    assert resumed.last.loss == pytest.approx(whole.last.loss, rel=1e-5, abs=1e-6)
    a = torch.load(whole.model, weights_only=True)["model"]
    b = torch.load(resumed.model, weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    assert [row["step"] for row in read_metrics(tmp_path / "run" / METRICS)] == [1, 2, 3, 4]
    from s2vs_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=r"at step 4; --iterations 1 \(2 steps in whole epochs\) would go back"):
        _train(_config(frames_dir, tmp_path / "run", resume=True, **(EPOCHS | dict(iterations=1, decay_iterations=3))),
               extractor)


def test_run_length_on_the_command_line_and_in_old_runs(frames_dir):
    from s2vs_cli.training.experiment import resume_differences

    shown = runner.invoke(app, ["train", str(frames_dir), "--print-config"])
    assert shown.exit_code == 0 and "run_length: epochs" in shown.output
    steps = runner.invoke(app, ["train", str(frames_dir), "--run-length", "steps", "--print-config"])
    assert steps.exit_code == 0 and "run_length: steps" in steps.output
    bad = runner.invoke(app, ["train", str(frames_dir), "--run-length", "epoch"])
    assert bad.exit_code == 2 and "run_length must be epochs or steps, got 'epoch'" in bad.output
    # A run saved before run_length existed ran exactly its iterations: resuming it in epochs is refused.
    assert resume_differences({"seed": 0}, TrainConfig()) == ["run_length 'epochs' (the run: 'steps')"]
    assert resume_differences({"seed": 0}, TrainConfig(run_length="steps")) == []
