"""Issue 25, the cases of training, thresholds and the files a person hands us: thresholds bound to the content
of their weights (7), checkpoints on a full disk or killed between renames (11), one run per experiment
folder (12), JSON nested too deeply (13), thresholds out of range (14), pickle payloads (16), YAML numbers
and repeated keys (19). Real files, a real tmpfs, a real second process and a real kill -9."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.atomic import OutputWriteError
from s2vs_cli.datasets.files import AnnotationError
from s2vs_cli.cli import app
from s2vs_cli.config import CompareConfig, TrainConfig, build_config
from s2vs_cli.errors import CheckpointError, ConfigError, S2VSError
from s2vs_cli.models.checkpoints import save_checkpoint
from s2vs_cli.models.loading import load_similarity_network
from s2vs_cli.models.visil import ViSiL
from s2vs_cli.scoring.calibration import ScoreIdentity, Thresholds, load_thresholds
from s2vs_cli.scoring.normalization import NoiseNormalization
from s2vs_cli.training.experiment import CHECKPOINT, MODEL, save_run
from s2vs_cli.training.metrics_log import read_metrics
from test_calibrate import _error, labelled  # noqa: F401 - `labelled` is a fixture

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
RANDOM = ["--backbone-weights", "random", "--pca", "random"]
TRAIN = dict(batch_size=3, window_size=4, precision="fp32", device="cpu", workers=0, backbone_weights="random",
             pca="random", warmup_iterations=0, run_length="steps", iterations=2)


def _network_file(path: Path, seed: int, dims: int = 16) -> Path:
    torch.manual_seed(seed)
    network = ViSiL(dims=dims)
    save_checkpoint(path, network.state_dict(), network.config())
    return path


def _thresholds(**changes) -> Thresholds:
    values = dict(threshold=0.61, target_precision=0.95, precision=0.96, recall=0.8,
                  identity=ScoreIdentity("s2vs_dns", "ResNet-50 imagenet", "vcdb", 1.0), normalization=None,
                  calibration_set={"name": "custom", "file": "gt.json", "pairs": 900, "positives": 100,
                                   "accepted": 90, "missing_pairs": 0}, version="0.1.0")
    return Thresholds(**(values | changes))


# --- case 7: thresholds are bound to the content of the weights ----------------------------------------------

def test_case_7_thresholds_refuse_a_checkpoint_overwritten_with_other_weights(labelled, tmp_path):  # noqa: F811
    """issue 25 case 7: the calibrated --model file overwritten with another network gives no verdict."""
    model = _network_file(tmp_path / "net.pth", seed=1)
    thresholds = tmp_path / "thresholds.json"
    calibrated = runner.invoke(app, ["calibrate", "--ground-truth", str(labelled["gt.json"]), "--dataset-hdf5",
                                     str(labelled["features.h5"]), "--model", str(model), "--target-precision", "0.5",
                                     "-o", str(thresholds)])  # a random network: its scores reach 0.5 only
    assert calibrated.exit_code == 0, calibrated.output
    recorded = json.loads(thresholds.read_text())["model_weights"]
    assert recorded == load_similarity_network(str(model), "cpu").weights_digest() and len(recorded) == 64
    search = ["search", "q0", "--database", str(labelled["features.h5"]), "--model", str(model), "--thresholds",
              str(thresholds), "--json"]
    hits = json.loads(runner.invoke(app, search).stdout)["results"][0]["hits"]
    assert {hit["verdict"] for hit in hits} <= {"copy", "not a copy"} and hits[0]["verdict"] is not None
    other = load_similarity_network(str(_network_file(tmp_path / "other.pth", seed=2)), "cpu").weights_digest()
    shutil.copyfile(tmp_path / "other.pth", model)  # same path, same size, other weights
    assert _error(runner.invoke(app, search), 2) == (
        f"thresholds.json was calibrated for other weights of {model} (sha256 {recorded[:12]}; this run's: sha256 "
        f"{other[:12]}): calibrate again for these weights")


def test_case_7_thresholds_from_saved_similarities_record_the_file_models_weights(labelled, tmp_path):  # noqa: F811
    """issue 25 case 7: calibrate --from-similarities --model FILE records that file's weights too."""
    gt = json.loads(labelled["gt.json"].read_text())
    sims = {q: {v: 0.9 if v in gt["positives"][q] else 0.1 for v in gt["database"]} for q in gt["queries"]}
    (tmp_path / "sims.json").write_text(json.dumps(sims))
    model = _network_file(tmp_path / "net.pth", seed=1)
    result = runner.invoke(app, ["calibrate", "--ground-truth", str(labelled["gt.json"]), "--from-similarities",
                                 str(tmp_path / "sims.json"), "--model", str(model), *RANDOM, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model_weights"] == load_similarity_network(str(model), "cpu").weights_digest()


def test_case_7_compare_refuses_other_weights_before_any_extraction(videos_dir, tmp_path):
    """issue 25 case 7: compare --thresholds checks the content of --model too."""
    model = _network_file(tmp_path / "net.pth", seed=1, dims=512)
    calibrated_for = load_similarity_network(str(model), "cpu").weights_digest()
    _thresholds(identity=ScoreIdentity(str(model), "ResNet-50 random (seed 0)", "random (seed 0)", 1.0,
                                       calibrated_for)).save(tmp_path / "thresholds.json")
    _network_file(model, seed=2, dims=512)
    clip = str(videos_dir / "carphone_pristine.mp4")
    result = runner.invoke(app, ["compare", clip, clip, *RANDOM, "--model", str(model), "--thresholds",
                                 str(tmp_path / "thresholds.json"), "--device", "cpu"])
    assert _error(result, 2).startswith(f"thresholds.json was calibrated for other weights of {model} (sha256 "
                                        f"{calibrated_for[:12]}; this run's: sha256 ")


def test_case_7_thresholds_without_a_digest_serve_names_but_not_paths():
    """issue 25 case 7: older files (no model_weights) are accepted for a published name, random weights or
    features only (the name fixes the weights), refused for a network named by its path."""
    for model in ("s2vs_dns", "random (seed 0)", "features only"):
        identity = ScoreIdentity(model, "ResNet-50 imagenet", "vcdb", 1.0)
        _thresholds(identity=identity).check_applies(ScoreIdentity(model, "ResNet-50 imagenet", "vcdb", 1.0,
                                                                   None if model == "features only" else "a" * 64),
                                                     None)
    by_path = _thresholds(identity=ScoreIdentity("/models/net.pth", "ResNet-50 imagenet", "vcdb", 1.0))
    with pytest.raises(ConfigError) as refused:
        by_path.check_applies(ScoreIdentity("/models/net.pth", "ResNet-50 imagenet", "vcdb", 1.0, "b" * 64), None)
    assert str(refused.value) == ("the thresholds names its network by path only (/models/net.pth), not by the "
                                  "content of its weights, so a file overwritten since cannot be told apart: "
                                  "calibrate again")


def test_case_7_the_digest_is_of_the_weights_not_the_file(tmp_path):
    """issue 25 case 7: the same weights in another file (a DDP prefix, other metadata) keep their digest."""
    torch.manual_seed(3)
    network = ViSiL(dims=16)
    save_checkpoint(tmp_path / "a.pth", network.state_dict(), network.config(), training={"step": 7})
    torch.save({"model": {f"module.{k}": v for k, v in network.state_dict().items()}, "config": network.config()},
               tmp_path / "b.pth")
    a, b = (load_similarity_network(str(tmp_path / name), "cpu") for name in ("a.pth", "b.pth"))
    assert a.weights_digest() == b.weights_digest() == network.weights_digest()
    with torch.no_grad():
        next(b.parameters()).view(-1)[0] += 1e-6  # one weight, one ulp or so
    assert b.weights_digest() != a.weights_digest()


# --- case 11: checkpoints on a full disk, and a kill between the two renames -----------------------------------

@pytest.fixture()
def disk(tmp_path, mount_tmpfs):
    """A real 4 MB filesystem (tmpfs); needs root and mount rights, else skipped."""
    return mount_tmpfs(tmp_path / "disk", "4m")


def _run_state(network_seed: int):
    torch.manual_seed(network_seed)
    network = ViSiL(dims=16)
    return network, torch.optim.AdamW(network.parameters(), lr=1e-3)


def _steps(experiment: Path) -> tuple[int, int]:
    model = torch.load(experiment / MODEL, weights_only=True)
    checkpoint = torch.load(experiment / CHECKPOINT, weights_only=True)
    return model["training"]["step"], checkpoint["step"]


def _fill(folder: Path, leave: int) -> None:
    """Write a file that leaves `leave` bytes free on the file system of `folder`."""
    stats = os.statvfs(folder)
    with open(folder / "filler", "wb") as out:
        out.write(b"\0" * (stats.f_bavail * stats.f_frsize - leave))


@pytest.mark.parametrize("failing", [MODEL, CHECKPOINT])
def test_case_11_a_full_disk_keeps_the_previous_checkpoint_pair(disk, failing):
    """issue 25 case 11: whichever of the two files the full disk stops, one line names it, both files stay those
    of the previous step (no model.pth newer than checkpoint.pth) and no temporary file is left."""
    cfg = TrainConfig(data="frames", experiment_path=str(disk), **TRAIN)
    network, optimizer = _run_state(0)
    save_run(disk, network, optimizer, None, 1, cfg)
    before = {name: (disk / name).read_bytes() for name in (MODEL, CHECKPOINT)}
    sizes = {name: len(data) for name, data in before.items()}  # the next step's files are as large
    _fill(disk, leave=sizes[MODEL] // 2 if failing == MODEL else sizes[MODEL] + sizes[CHECKPOINT] // 2)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(1.0)
    with pytest.raises(OutputWriteError) as full:
        save_run(disk, network, optimizer, None, 2, cfg)
    assert str(full.value) == f"{disk / failing}: cannot write (No space left on device)"
    assert {name: (disk / name).read_bytes() for name in (MODEL, CHECKPOINT)} == before
    assert sorted(p.name for p in disk.iterdir()) == sorted([MODEL, CHECKPOINT, "filler"])
    (disk / "filler").unlink()
    save_run(disk, network, optimizer, None, 2, cfg)
    assert _steps(disk) == (2, 2)


KILLED_BETWEEN_RENAMES = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    import torch
    from s2vs_cli.config import TrainConfig
    from s2vs_cli.models.visil import ViSiL
    from s2vs_cli.training.experiment import MODEL, save_run

    cfg = TrainConfig(**json.loads(sys.argv[1]))
    torch.manual_seed(cfg.seed)
    network = ViSiL()  # the run's own network: what train() restores into
    optimizer = torch.optim.AdamW(network.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    save_run(Path(cfg.experiment_path), network, optimizer, None, 1, cfg)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.5)
    rename = os.replace
    def killed_before_model(source, target):
        if Path(target).name == MODEL:
            os.kill(os.getpid(), signal.SIGKILL)
        rename(source, target)
    os.replace = killed_before_model
    save_run(Path(cfg.experiment_path), network, optimizer, None, 2, cfg)
""")


def test_case_11_a_kill_between_the_renames_is_repaired_by_resume(tmp_path):
    """issue 25 case 11: killed after checkpoint.pth of step 2 and before model.pth, the pair is of two steps;
    --resume rewrites model.pth from the checkpoint (and removes the dead writer's temporary file)."""
    from media import write_moving_shape_folders

    from s2vs_cli.jobs.train import load_training_videos, train
    from s2vs_cli.runtime import Runtime

    (tmp_path / "frames").mkdir()
    frames = write_moving_shape_folders(tmp_path / "frames", videos=3, frames=4, height=32, width=32)
    settings = dict(TRAIN, data=str(frames), experiment_path=str(tmp_path / "run"))
    experiment = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, json.dumps(settings)],
                           env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert _steps(experiment) == (1, 2)
    assert [p.name for p in experiment.iterdir() if p.name.endswith(".s2vs-tmp")]  # the dead writer's model.pth
    cfg = TrainConfig(**settings, resume=True)
    runtime = Runtime.cpu("fp32", seed=cfg.seed)
    runtime.extractor = object()  # no step is left to run (the run is at its last), so it is never called
    result = train(cfg, *load_training_videos(cfg), runtime)
    assert (result.first_step, result.steps) == (2, 2)
    assert _steps(experiment) == (2, 2)
    model = torch.load(experiment / MODEL, weights_only=True)["model"]
    checkpoint = torch.load(experiment / CHECKPOINT, weights_only=True)["model"]
    assert model.keys() == checkpoint.keys() and all(torch.equal(model[k], checkpoint[k]) for k in model)
    assert not [p.name for p in experiment.iterdir() if p.name.endswith(".s2vs-tmp")]


# --- case 12: one run per experiment folder -------------------------------------------------------------------

HOLD_THE_LOCK = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from s2vs_cli.training.experiment import experiment_lock
    with experiment_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_case_12_a_second_run_on_one_experiment_fails_at_once_and_the_lock_dies_with_its_process(tmp_path,
                                                                                                  monkeypatch):
    """issue 25 case 12: while one process trains into a folder, `train --resume` there fails at once (before any
    weights are loaded), in one line naming the holder; kill -9 of the holder leaves no lock held."""
    from media import write_moving_shape_folders

    import s2vs_cli.runtime
    from s2vs_cli.jobs.train import train
    from s2vs_cli.training.experiment import LOCK, check_not_running, experiment_lock

    (tmp_path / "frames").mkdir()
    frames = write_moving_shape_folders(tmp_path / "frames", videos=3, frames=4, height=32, width=32)
    experiment = tmp_path / "run"
    experiment.mkdir()
    (experiment / CHECKPOINT).write_bytes(b"a checkpoint")  # what --resume looks for first
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(experiment)], stdout=subprocess.PIPE,
                              text=True, env=os.environ | {"PYTHONPATH": str(ROOT)})
    runtime = s2vs_cli.runtime.Runtime.cpu("fp32")
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = []
        monkeypatch.setattr(s2vs_cli.runtime.Runtime, "start", lambda *a, **k: started.append(1))
        result = runner.invoke(app, ["train", str(frames), "--experiment-path", str(experiment), "--resume",
                                     "--batch-size", "3", "--device", "cpu", *RANDOM])
        expected = (f"{experiment} (a training run) is being written by another run (pid {holder.pid}); wait for "
                    "it to finish or choose another output")
        assert _error(result, 1) == expected and not started
        cfg = TrainConfig(**TRAIN, data=str(frames), experiment_path=str(experiment), resume=True)
        with pytest.raises(S2VSError) as refused:  # the library's entry point takes the lock itself
            train(cfg, [], "frames", runtime)
        assert str(refused.value) == expected
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (experiment / LOCK).exists()  # the killed run's file stays, holding no lock
    check_not_running(experiment)
    with experiment_lock(experiment):
        assert (experiment / LOCK).read_text() == str(os.getpid())
    assert not (experiment / LOCK).exists()


# --- case 13: JSON nested too deeply, not UTF-8, or not JSON: one line naming the file ------------------------

DEEP = "[" * 5000 + "]" * 5000
TOO_DEEP = "not valid JSON (arrays or objects nested too deeply to read)"


@pytest.fixture()
def deep_json(tmp_path) -> Path:
    path = tmp_path / "deep.json"
    path.write_text(DEEP)
    return path


def test_case_13_deep_json_is_one_line_in_every_command(deep_json, labelled, videos_dir, tmp_path):  # noqa: F811
    """issue 25 case 13: evaluate --ground-truth, calibrate (ground truth and saved similarities), report,
    compare --thresholds and search --thresholds."""
    sims = tmp_path / "sims.json"
    sims.write_text(json.dumps({"q0": {"q0-copy0": 0.9}}))
    gt = str(labelled["gt.json"])
    clip = str(videos_dir / "carphone_pristine.mp4")
    commands = {
        ("evaluate", "--dataset", "custom", "--ground-truth", str(deep_json), "--from-similarities", str(sims)): 1,
        ("calibrate", "--ground-truth", str(deep_json), "--from-similarities", str(sims), "--features-only",
         "--json"): 1,
        ("calibrate", "--ground-truth", gt, "--from-similarities", str(deep_json), "--features-only", "--json"): 1,
        ("report", str(deep_json), "-o", str(tmp_path / "out.html")): 2,
        ("compare", clip, clip, "--thresholds", str(deep_json)): 2,
        ("search", "q0", "--database", str(labelled["features.h5"]), "--features-only", "--thresholds",
         str(deep_json)): 2,
    }
    for command, code in commands.items():
        line = _error(runner.invoke(app, list(command)), code)
        assert line.startswith(f"{deep_json}: ") and "nested too deeply" in line, (command, line)
    assert _error(runner.invoke(app, ["report", str(deep_json), "-o", str(tmp_path / "out.html")]), 2) == \
        f"{deep_json}: {TOO_DEEP}"


@pytest.mark.parametrize("content, problem", [
    (DEEP.encode(), "arrays or objects nested too deeply to read"),
    (b'{"threshold": "\xff"}', "not UTF-8 text (byte 0xff at offset 15)"),
    (b'{"threshold": 0.5,\n "format": }', "line 2 column 12: Expecting value"),
])
def test_case_13_one_reader_for_every_json_file(tmp_path, content, problem):
    """issue 25 case 13: the shared reader names the file and the problem; each reader keeps its error class."""
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as thresholds:
        load_thresholds(path)
    assert str(thresholds.value) == f"{path}: not valid JSON ({problem})"
    from s2vs_cli.datasets import load_custom_ground_truth
    from s2vs_cli.report.saved_results import load_results
    from s2vs_cli.scoring.retrieval import load_similarities

    with pytest.raises(AnnotationError, match="not valid JSON"):
        load_custom_ground_truth(path)
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_results(path)
    with pytest.raises(S2VSError, match="not a similarities file"):
        load_similarities(path)


def test_case_13_a_metrics_row_nested_too_deeply_is_skipped_like_a_cut_one(tmp_path):
    from s2vs_cli.json_file import parse_json

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "loss": 2.0}\n' + DEEP + '\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert [row["step"] for row in read_metrics(metrics)] == [1, 2]
    assert parse_json(b"\xef\xbb\xbf[1]") == [1]  # a byte-order mark, as Windows editors write


# --- case 14: a thresholds file's values within their ranges --------------------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"threshold": -5}, "'threshold' is -5, outside the scores' range [-1, 1]"),
    ({"threshold": 1.01}, "'threshold' is 1.01, outside the scores' range [-1, 1]"),
    ({"precision": -1}, "'precision' is -1, outside (0, 1]"),
    ({"precision": 1.2}, "'precision' is 1.2, outside (0, 1]"),
    ({"recall": 0}, "'recall' is 0, outside (0, 1]"),
    ({"target_precision": 1}, "'target_precision' is 1, outside [0.5, 1)"),
    ({"precision": 0.9}, "'precision' 0.9 is below its 'target_precision' 0.95: calibrate never writes that"),
    ({"extractor": {"backbone": "b", "whitening": "w", "fps": 0}}, "'extractor.fps' is 0, outside [0.001, 1000]"),
    ({"calibration_set": {"pairs": -3}}, "'calibration_set.pairs' is -3, not a count (a whole number, 0 or more)"),
    ({"calibration_set": {"pairs": 90.5}}, "'calibration_set.pairs' is 90.5, not a count"),
    ({"calibration_set": {"pairs": 10, "accepted": 11}}, "'calibration_set.accepted' 11 exceeds its 'pairs' 10"),
    ({"normalization": {"noise": "n.h5", "digest": "ab", "videos": 4, "k": 0, "beta": 1.0}},
     "'normalization.k' is 0; it must be at least 1"),
    ({"normalization": {"noise": "n.h5", "digest": "ab", "videos": 4, "k": 1, "beta": -1.0}},
     "'normalization.beta' is -1, outside [0, 10]"),
    ({"random_weights": "no"}, "malformed thresholds file (expected true or false, got 'no')"),
    ({"model": 5}, "malformed thresholds file (expected a string, got 5)"),
    ({"model_weights": "abc"}, "malformed thresholds file (model_weights: expected 64 hex digits, got 'abc')"),
])
def test_case_14_thresholds_out_of_range_name_the_file_and_field(tmp_path, change, message):
    """issue 25 case 14: no calibration writes these; each is one line naming the file and the field."""
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_thresholds().as_dict() | change))
    with pytest.raises(ConfigError) as refused:
        load_thresholds(path)
    assert str(refused.value).startswith(f"{path}: {message}") and "\n" not in str(refused.value)


def test_case_14_a_normalized_threshold_may_leave_minus_one_to_one(tmp_path, labelled):  # noqa: F811
    """issue 25 case 14: normalized scores reach 1 + β; a threshold there is kept; -5 fails in search too."""
    path = tmp_path / "t.json"
    noise = NoiseNormalization("noise.h5", "ab", 40, 2, 0.5)
    _thresholds(threshold=1.2, normalization=noise).save(path)
    assert load_thresholds(path).threshold == 1.2
    path.write_text(json.dumps(_thresholds(identity=ScoreIdentity("features only", "test", "test", 1.0)).as_dict()
                               | {"threshold": -5}))
    result = runner.invoke(app, ["search", "q0", "--database", str(labelled["features.h5"]), "--features-only",
                                 "--thresholds", str(path)])
    assert _error(result, 2) == f"{path}: 'threshold' is -5, outside the scores' range [-1, 1]"


# --- case 16: a pickle payload is not a damaged file -----------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch, on the bare pickle
@pytest.mark.parametrize("write", ["torch.save", "pickle"])
def test_case_16_a_pickle_payload_is_named_and_not_run(tmp_path, write):
    """issue 25 case 16: a .pth holding a callable (torch.save's zip or a bare pickle) says it holds objects other
    than tensors and was not loaded; the payload never runs."""
    marker, path = tmp_path / "ran", tmp_path / "payload.pth"
    if write == "torch.save":
        torch.save({"model": {"w": torch.zeros(2)}, "extra": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"model": _Payload(marker)}, protocol=4))
    with pytest.raises(CheckpointError) as refused:
        load_similarity_network(str(path), "cpu")
    assert str(refused.value) == (
        f"{path}: cannot load similarity network: it holds objects other than tensors (posix.mkdir) and was not "
        "loaded (loading them could run code); save the weights alone: torch.save(model.state_dict(), path)")
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_case_16_a_truncated_checkpoint_is_still_called_truncated(tmp_path, legacy):
    """issue 25 case 16: a real checkpoint cut in half (zip, or torch's legacy format) is damage, not objects."""
    torch.manual_seed(0)
    network = ViSiL(dims=16)
    path = tmp_path / "cut.pth"
    torch.save({"model": network.state_dict(), "config": network.config()}, path,
               _use_new_zipfile_serialization=not legacy)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as damaged:
        load_similarity_network(str(path), "cpu")
    assert str(damaged.value) == (f"{path}: cannot load similarity network: not a valid PyTorch file (truncated or "
                                  "corrupt)")


# --- case 19: YAML numbers as a person writes them, and repeated keys -----------------------------------------

def test_case_19_exponent_numbers_are_numbers(tmp_path):
    """issue 25 case 19: 1e-3, 1E5 and -2.5e-1 fill float options; a whole one (1e2, 3e4) fills an int option."""
    path = tmp_path / "c.yaml"
    path.write_text("fps: 1e-3\nmin_match_score: -2.5e-1\nframes_per_batch: 1e2\nmin_match_seconds: 1E1\n")
    cfg = build_config(CompareConfig, path)
    assert (cfg.fps, cfg.min_match_score, cfg.frames_per_batch, cfg.min_match_seconds) == (0.001, -0.25, 100, 10.0)
    assert isinstance(cfg.frames_per_batch, int) and isinstance(cfg.min_match_seconds, float)
    path.write_text("iterations: 3e4\nlr: 1E-4\naugmentation:\n  flip_p: 5e-1\n")
    train = build_config(TrainConfig, path)
    assert (train.iterations, train.lr, train.augmentation.flip_p) == (30000, 1e-4, 0.5)
    path.write_text("fps: 2.5e-1\nframes_per_batch: 2.5e0\n")  # not whole: an int option still refuses it
    with pytest.raises(ConfigError, match="'frames_per_batch': expected an integer, got 2.5"):
        build_config(CompareConfig, path)
    path.write_text("fps: 5E-1\n")
    shown = runner.invoke(app, ["compare", "a.mp4", "b.mp4", "--config", str(path), "--print-config"])
    assert shown.exit_code == 0 and "fps: 0.5\n" in shown.stdout


@pytest.mark.parametrize("text, line", [
    ("fps: 1\nmodel: s2vs_vcdb\nfps: 2\n", "line 3: repeated key 'fps' (first given at line 1)"),
    ("augmentation:\n  flip_p: 0.5\n  crop_size: 160\n  flip_p: 0.2\n",
     "line 4: repeated key 'flip_p' (first given at line 2)"),
])
def test_case_19_a_repeated_key_is_refused_naming_it_and_its_lines(tmp_path, text, line):
    """issue 25 case 19: at the top or nested, a key given twice is an error, not the last value silently."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        build_config(TrainConfig, path)
    assert str(refused.value) == f"{path}: invalid YAML at {line}"
    from s2vs_cli.yaml_file import read_yaml

    path.write_text("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  x: 3\n")
    assert read_yaml(path) == {"a": {"x": 1, "y": 2}, "b": {"x": 3, "y": 2}}  # merge keys may be overridden


def test_case_13_a_frame_folders_settings_record_nested_too_deeply_is_no_record(tmp_path):
    """issue 25 case 13: extract-frames' own settings file in an output folder, edited by hand into deep JSON,
    is read as no record (then rewritten), not a RecursionError."""
    from s2vs_cli.jobs.extract_frames import SETTINGS_NAME, FrameOptions, _check_settings

    (tmp_path / SETTINGS_NAME).write_text(DEEP)
    _check_settings(tmp_path, FrameOptions())
    assert json.loads((tmp_path / SETTINGS_NAME).read_text())["fps"] == FrameOptions().fps
