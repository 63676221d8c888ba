"""Issue 26, "Smaller things that mislead": outputs checked before any work (1), paths in a configuration file
read from its folder (2), unknown names are usage errors (3), an evaluation with none of the database (4),
outputs that follow the umask (5), the offline route named (6) and removed options naming their replacement (7)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.config import CompareConfig, build_config
from s2vs_cli.errors import ConfigError, WeightsError

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def _store(path: Path, ids: tuple[str, ...], dims: int = 8) -> Path:
    """A small feature file of unit vectors (float32, 4 frames a video)."""
    from s2vs_cli.storage.parts import PartWriter, merge_parts
    from s2vs_cli.storage.store import StoreIdentity

    rng = np.random.default_rng(0)
    identity = StoreIdentity("test", "none", 1.0, dims, dtype="float32")
    with PartWriter(path.parent / f"{path.stem}.parts-src", identity, "test", dtype="float32") as writer:
        for name in ids:
            x = rng.standard_normal((4, 9, dims)).astype(np.float32)
            writer.add(name, x / np.linalg.norm(x, axis=-1, keepdims=True), np.arange(4, dtype=float))
    merge_parts(path, writer.written, identity, "test")
    return path


# --- 1: every output checked before any work ------------------------------------------------------------------

BAD = "/proc/s2vs-x"  # a folder that exists and takes no new file, whoever runs the tests
OUTPUT_CASES = [
    ["compare", "a.mp4", "b.mp4", "--heatmap", f"{BAD}.png"],
    ["compare", "a.mp4", "b.mp4", "--report", f"{BAD}.html"],
    ["search", "q", "--database", "db.h5", "-o", f"{BAD}.json"],
    ["search", "q", "--database", "db.h5", "--report", f"{BAD}.html"],
    ["evaluate", "--dataset", "custom", "--ground-truth", "gt.json", "--dataset-hdf5", "f.h5", "-o", f"{BAD}.json"],
    ["evaluate", "--dataset", "custom", "--ground-truth", "gt.json", "--dataset-hdf5", "f.h5",
     "--save-similarities", f"{BAD}.json"],
    ["evaluate", "--dataset", "custom", "--ground-truth", "gt.json", "--dataset-hdf5", "f.h5", "--report",
     f"{BAD}.html"],
    ["evaluate", "--dataset", "VSC22", "--ground-truth", "gt.csv", "--dataset-hdf5", "f.h5", "--save-matches",
     f"{BAD}.csv"],
    ["evaluate", "--dataset", "custom", "--ground-truth", "gt.json", "--dataset-path", "videos", "--save-features",
     f"{BAD}.h5"],
    ["calibrate", "--ground-truth", "gt.json", "--dataset-hdf5", "f.h5", "-o", f"{BAD}.json"],
    ["extract-features", "a.mp4", "-o", f"{BAD}.h5"],
    ["extract-frames", "a.mp4", "-o", BAD],
    ["train", "frames", "--experiment-path", BAD],
    ["train", "frames", "--preview-augmentations", BAD],
    ["fit-pca", "raw.h5", "-o", f"{BAD}.pth"],
    ["merge", f"{BAD}.h5", "part.h5"],
    ["report", "results.json", "-o", f"{BAD}.html"],
]


def test_item_1_every_output_option_of_every_command_fails_at_once_in_one_line(tmp_path, monkeypatch):
    """/proc/x.png and its kind fail before anything is read, imported or loaded: under 1 s, one line, exit 1."""
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here (a folder that refuses new files)")
    import s2vs_cli.runtime

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the outputs were checked")

    monkeypatch.setattr(s2vs_cli.runtime.Runtime, "start", no_work)
    monkeypatch.chdir(tmp_path)  # every input named is missing: an output checked after an input fails this
    late = []
    for args in OUTPUT_CASES:
        started = time.perf_counter()
        result = runner.invoke(app, args)
        seconds = time.perf_counter() - started
        lines = result.output.strip().splitlines()
        if not (result.exit_code == 1 and len(lines) == 1 and BAD in lines[0] and "cannot write here" in lines[0]
                and seconds < 1):
            late.append(f"{' '.join(args)} -> exit {result.exit_code} in {seconds:.2f} s: {result.output.strip()}")
    assert not late, "\n".join(late)


def test_item_1_a_folder_a_missing_folder_and_a_file_in_the_way_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    (tmp_path / "a-folder").mkdir()
    for args, message in (
            (["compare", "a.mp4", "b.mp4", "--heatmap", "a-folder"], "a-folder: is a folder; give a file to write"),
            (["compare", "a.mp4", "b.mp4", "--report", "none/r.html"], "none/r.html: cannot write here (folder none "
                                                                       "not found)"),
            (["compare", "a.mp4", "b.mp4", "--heatmap", "a-file/new/h.png"], "a-file/new/h.png: cannot write here "
                                                                            "(a-file is not a folder)"),
            (["fit-pca", "raw.h5", "-o", "a-file/pca.pth"], "a-file/pca.pth: cannot write here (a-file is not a "
                                                             "folder)"),
            (["train", "frames", "--experiment-path", "a-file"], "a-file: exists and is not a folder"),
            (["train", "frames", "--experiment-path", "a-file/run"], "a-file/run: cannot write here (a-file is not a "
                                                                    "folder)")):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and message in _one_line(result), (args, result.output)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "a-folder"]  # no probe left behind


def test_item_1_outputs_whose_writers_make_folders_may_be_in_new_ones(tmp_path):
    from s2vs_cli.atomic import check_writable

    check_writable(tmp_path / "new" / "deeper" / "run", folder=True)  # train and extract-frames make them
    check_writable(tmp_path / "maps" / "map.png", parents=True)  # the heatmap and fit-pca too
    assert list(tmp_path.iterdir()) == []


# --- 2: a relative path in a configuration file is read from the file's folder ------------------------------

def test_item_2_relative_paths_in_a_config_are_read_from_its_folder_flags_from_the_current_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    for name in ("pca.pth", "t.json"):
        (tmp_path / "configs" / name).write_text("")
    config = tmp_path / "configs" / "run.yaml"
    config.write_text("pca: pca.pth\nthresholds: t.json\nmodel: s2vs_vcdb\nbackbone_weights: random\n")
    cfg = build_config(CompareConfig, "configs/run.yaml", check_inputs=True)
    assert (cfg.pca, cfg.thresholds) == (os.path.join("configs", "pca.pth"), os.path.join("configs", "t.json"))
    assert (cfg.model, cfg.backbone_weights) == ("s2vs_vcdb", "random")  # names are names
    flagged = build_config(CompareConfig, "configs/run.yaml", {"thresholds": "mine.json"})
    assert flagged.thresholds == "mine.json"  # a flag stays relative to the current folder
    from s2vs_cli.config import TrainConfig

    config.write_text("experiment_path: ../runs/one\ndata: /abs/frames\n")
    train = build_config(TrainConfig, str(config))
    made_from = os.path.join(str(tmp_path / "configs"), "../runs/one")  # outputs too; absolute paths as they are
    assert (train.experiment_path, train.data) == (made_from, "/abs/frames")


def test_item_2_a_missing_config_path_names_the_config_and_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    (tmp_path / "pca.pth").write_text("")  # beside the command, not beside the config: not the one meant
    (tmp_path / "configs" / "run.yaml").write_text("pca: pca.pth\n")
    result = runner.invoke(app, ["compare", "a.mp4", "b.mp4", "--config", "configs/run.yaml"])
    line = _one_line(result)
    assert result.exit_code == 2, result.output
    assert "configs/run.yaml: pca 'pca.pth' not found (looked for configs/pca.pth" in line
    shown = runner.invoke(app, ["compare", "a.mp4", "b.mp4", "--config", "configs/run.yaml", "--print-config"])
    # Shown as it will be read, and absolute: the printed configuration reads back the same from any folder.
    assert shown.exit_code == 0 and f"pca: {tmp_path / 'configs' / 'pca.pth'}\n" in shown.stdout


# --- 3: an unknown name of anything is a usage error ---------------------------------------------------------

NAME_CASES = [
    (["compare", "a.mp4", "b.mp4", "--model", "randm"], "unknown model 'randm': use s2vs_dns, s2vs_vcdb, random"),
    (["compare", "a.mp4", "b.mp4", "--backbone-weights", "randm"], "unknown backbone 'randm': use imagenet, random"),
    (["compare", "a.mp4", "b.mp4", "--pca", "randm"], "unknown whitening 'randm': use vcdb, none, random"),
    (["extract-features", "a.mp4", "-o", "x.h5", "--pca", "randm"], "unknown whitening 'randm'"),
    (["train", "frames", "--backbone-weights", "randm"], "unknown backbone 'randm'"),
    (["evaluate", "--dataset", "custom", "--ground-truth", "g.json", "--dataset-hdf5", "f.h5", "--model", "randm"],
     "unknown model 'randm'"),
    (["compare", "a.mp4", "b.mp4", "--precision", "float16"], "unknown precision 'float16'"),
    (["search", "q", "--database", "f.h5", "--device", "gpu"], "unknown device 'gpu'"),
    (["evaluate", "--dataset", "FIVR5K", "--from-similarities", "s.json"], "unknown benchmark 'FIVR5K'"),
    (["extract-features", "a.mp4", "-o", "x.h5", "--loader", "frame"], "unknown loader 'frame' (choose from video, frames)"),
    (["extract-frames", "a.mp4", "-o", "x", "--format", "gif"], "format must be jpg or png"),
]


def test_item_3_an_unknown_name_of_anything_exits_2_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no input exists: a name checked after the inputs fails this
    wrong = []
    for args, message in NAME_CASES:
        result = runner.invoke(app, args)
        lines = result.output.strip().splitlines()
        if not (result.exit_code == 2 and len(lines) == 1 and message in lines[0]):
            wrong.append(f"{' '.join(args)} -> exit {result.exit_code}: {result.output.strip()}")
    assert not wrong, "\n".join(wrong)


def test_item_3_the_library_says_usage_error_too(tmp_path, monkeypatch):
    from s2vs_cli.models.loading import load_whitening

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="unknown whitening 'randm'") as refused:
        load_whitening("randm")
    assert isinstance(refused.value, WeightsError)  # callers that caught WeightsError still do
    with pytest.raises(ConfigError, match="unknown model 'randm'"):
        CompareConfig(model="randm")
    (tmp_path / "randm").write_text("")  # a file of that name is a path, whatever it holds
    assert CompareConfig(model="randm").model == "randm"


# --- 4: an evaluation with none of the database (or none of the queries) -------------------------------------

def test_item_4_none_of_the_database_in_the_features_is_an_error_naming_file_and_count(tmp_path):
    features = _store(tmp_path / "queries.h5", ("q1", "q2"))
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"queries": ["q1", "q2"], "database": ["d1", "d2", "d3"], "positives": {"q1": ["d1"]}}))
    base = ["evaluate", "--dataset", "custom", "--ground-truth", str(gt), "--features-only"]
    result = runner.invoke(app, base + ["--dataset-hdf5", str(features)])
    assert result.exit_code == 1, result.output
    assert f"none of the 3 ground truth database videos is in {features}: all 3 are missing" in _one_line(result)
    gt.write_text(json.dumps({"queries": ["q3", "q4"], "database": ["q1", "q2"], "positives": {"q3": ["q1"]}}))
    result = runner.invoke(app, base + ["--dataset-hdf5", str(features)])
    assert result.exit_code == 1 and f"none of the 2 ground truth queries is in {features}" in _one_line(result)


# --- 5: every output follows the umask ------------------------------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_item_5_pca_model_checkpoint_and_json_follow_the_umask(tmp_path, umask):
    from s2vs_cli.cli.common import write_results
    from s2vs_cli.config import TrainConfig
    from s2vs_cli.models.visil import ViSiL
    from s2vs_cli.training.experiment import save_run

    raw = _store(tmp_path / "raw.h5", ("v1", "v2", "v3"), dims=16)
    previous = os.umask(umask)
    try:
        fitted = runner.invoke(app, ["fit-pca", str(raw), "-o", str(tmp_path / "pca.pth"), "-q"])
        assert fitted.exit_code == 0, fitted.output
        network = ViSiL(dims=16, attention=False)
        save_run(tmp_path / "made" / "run", network, torch.optim.AdamW(network.parameters()), None, 1, TrainConfig())
        write_results(str(tmp_path / "results.json"), {"metrics": {}})
    finally:
        os.umask(previous)
    files = [tmp_path / "pca.pth", tmp_path / "made" / "run" / "model.pth", tmp_path / "made" / "run" /
             "checkpoint.pth", tmp_path / "results.json"]
    assert {p.name: oct(_mode(p)) for p in files} == {p.name: oct(0o666 & ~umask) for p in files}
    folders = [tmp_path / "made", tmp_path / "made" / "run"]
    assert {p.name: oct(_mode(p)) for p in folders} == {p.name: oct(0o777 & ~umask) for p in folders}


# --- 6: offline, the random-weights route is named -----------------------------------------------------------

def test_item_6_a_failed_download_names_the_random_weights_route_and_what_it_is_worth(tmp_path, monkeypatch):
    from s2vs_cli.artifacts import ARTIFACTS
    from s2vs_cli.downloads import fetch
    from s2vs_cli.models.loading import check_available

    monkeypatch.setenv("S2VS_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("S2VS_OFFLINE", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def unreachable(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", unreachable)
    route = ("--backbone-weights random --pca random, and --model random", "make demo OFFLINE=1",
             "the results then mean nothing")
    with pytest.raises(WeightsError) as failed:
        fetch(ARTIFACTS["s2vs_dns"])
    assert "Name or service not known" in str(failed.value) and all(words in str(failed.value) for words in route)
    with pytest.raises(WeightsError) as offline:
        check_available(offline=True)
    assert str(offline.value).startswith("3 weight files are missing") and all(w in str(offline.value) for w in route)
    annotation = next(a for a in ARTIFACTS.values() if a.kind == "annotation")
    with pytest.raises(WeightsError) as failed:
        fetch(annotation)
    assert "random" not in str(failed.value)  # no random route for a benchmark's annotations
    if shutil.which("make") is not None:  # the route named exists
        shown = subprocess.run(["make", "-n", "-o", "install", "demo", "OFFLINE=1"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout
        assert "compare demo/original.mp4 demo/suspect.mp4" in shown
        assert "--backbone-weights random --pca random --model random" in shown


# --- 7: a removed option names its replacement ---------------------------------------------------------------

def test_item_7_a_removed_option_names_its_replacement():
    for args in (["compare", "a.mp4", "b.mp4", "--batch-size", "8"],
                 ["extract-features", "a.mp4", "-o", "x.h5", "--batch-size=8"],
                 ["train", "frames", "--batch-size-fe", "64"]):
        result = runner.invoke(app, args)
        said = " ".join(result.output.replace("│", " ").split())
        assert result.exit_code == 2 and "it is now --frames-per-batch" in said, result.output
        assert "--min-match-score" not in said
    shown = runner.invoke(app, ["train", "frames", "--batch-size", "8", "--print-config"])  # train's own: videos
    assert shown.exit_code == 0 and "batch_size: 8\n" in shown.stdout
