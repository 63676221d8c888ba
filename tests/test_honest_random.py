"""Random weights said wherever they were used (issue 26): a feature file records its extractor, so every command
reading it (search, evaluate, fit-pca) and every page built from their results says random weights when any part
of the pipeline was random, its backbone, its whitening or the features a whitening file was fitted on."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from s2vs_cli.cli import app
from s2vs_cli.models.extractor import RegionExtractor
from s2vs_cli.models.loading import load_whitening
from s2vs_cli.storage.parts import PartWriter, merge_parts
from s2vs_cli.storage.store import FeatureStore, StoreIdentity
from test_report_cli import page_data

runner = CliRunner()
NOTE = "random weights: a test of the pipeline"
# What `extract-features --backbone-weights random` (whitening vcdb) records: only the backbone's label says random.
RANDOM_BACKBONE = StoreIdentity("ResNet-50 random (seed 0)", "vcdb", 1.0, 16, dtype="float32")
PUBLISHED = StoreIdentity("ResNet-50 imagenet", "vcdb", 1.0, 16, dtype="float32")


@pytest.fixture(autouse=True)
def _offline(offline):
    """Every test here runs offline (conftest's `offline`)."""


def _write(path: Path, identity: StoreIdentity, dims: int = 16) -> Path:
    """Five small videos: q1, its noisy copy d1 and three others."""
    rng = np.random.default_rng(0)
    q1 = rng.standard_normal((6, 9, dims))
    videos = {"q1": q1, "d1": q1 + 0.1 * rng.standard_normal(q1.shape),
              **{f"d{i}": rng.standard_normal((int(rng.integers(4, 8)), 9, dims)) for i in (2, 3, 4)}}
    with PartWriter(path.with_name(path.name + ".parts"), identity, "test", dtype="float32") as writer:
        for name, x in videos.items():
            writer.add(name, (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32),
                       np.arange(len(x), dtype=float))
    merge_parts(path, writer.written, identity, "test")
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A store of a random backbone (all.h5), its ground truth (gt.json), one of published weights (real.h5)."""
    folder = tmp_path_factory.mktemp("honest-random")
    _write(folder / "all.h5", RANDOM_BACKBONE)
    _write(folder / "real.h5", PUBLISHED)
    (folder / "gt.json").write_text(json.dumps({"queries": ["q1"], "database": ["d1", "d2", "d3", "d4"],
                                                "positives": {"q1": ["d1"]}}))
    return folder


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _search(store: Path, *more: str):
    return runner.invoke(app, ["search", "q1", "-d", str(store), "--features-only", "--exhaustive", "-k", "2", *more])


def _evaluate(folder: Path, store: str, *more: str):
    return runner.invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(folder / "gt.json"),
                               "--dataset-hdf5", str(folder / store), "--features-only", *more])


def test_search_says_random_weights_of_the_store_in_json_and_note(folder):
    assert _json(_search(folder / "all.h5", "--json"))["random_weights"] is True
    shown = _search(folder / "all.h5")
    assert shown.exit_code == 0 and NOTE in shown.stderr
    assert _json(_search(folder / "real.h5", "--json"))["random_weights"] is False
    assert NOTE not in _search(folder / "real.h5").stderr


def test_evaluate_custom_says_random_weights_of_the_store_in_json_and_note(folder):
    assert _json(_evaluate(folder, "all.h5", "--json"))["random_weights"] is True
    shown = _evaluate(folder, "all.h5")
    assert shown.exit_code == 0 and "random weights: a test of the pipeline, not meaningful metrics" in shown.output
    assert _json(_evaluate(folder, "real.h5", "--json"))["random_weights"] is False


def test_report_pages_of_search_and_evaluate_say_random_weights(folder, tmp_path):
    summary = _json(_search(folder / "all.h5", "--report", str(tmp_path / "search.html"), "-o",
                            str(tmp_path / "search.json"), "--json"))
    assert summary["random_weights"] is True and page_data(tmp_path / "search.html")["random_weights"] is True
    _json(_evaluate(folder, "all.h5", "--report", str(tmp_path / "evaluate.html"), "-o",
                    str(tmp_path / "evaluate.json"), "--json"))
    assert page_data(tmp_path / "evaluate.html")["random_weights"] is True
    for saved in ("search", "evaluate"):  # `s2vs report` of the saved results says it too
        assert runner.invoke(app, ["report", str(tmp_path / f"{saved}.json"), "-o",
                                   str(tmp_path / f"{saved}-again.html")]).exit_code == 0
        assert page_data(tmp_path / f"{saved}-again.html")["random_weights"] is True


def test_evaluate_vsc22_says_random_weights_of_the_store(tmp_path):
    identity = StoreIdentity("ResNet-50 random (seed 0)", "vcdb", 1.0, 16, dtype="float32")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 9, 16))
    with PartWriter(tmp_path / "parts", identity, "test", dtype="float32") as writer:
        for name, v in {"Q100000": x, "R200000": x + 0.1 * rng.standard_normal(x.shape),
                        "R200001": rng.standard_normal((5, 9, 16))}.items():
            writer.add(name, (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32),
                       np.arange(len(v), dtype=float))
    merge_parts(tmp_path / "vsc.h5", writer.written, identity, "test")
    (tmp_path / "gt.csv").write_text("query_id,ref_id,query_start,query_end,ref_start,ref_end\n"
                                     "Q100000,R200000,0,6,0,6\n")
    result = runner.invoke(app, ["evaluate", "--dataset", "VSC22", "--ground-truth", str(tmp_path / "gt.csv"),
                                 "--dataset-hdf5", str(tmp_path / "vsc.h5"), "--features-only", "--json"])
    assert _json(result)["random_weights"] is True


def test_old_stores_without_the_flag_still_say_it_by_their_labels(folder, tmp_path):
    """Files written before the flag: the labels tell a random backbone; a published one stays not random,
    and a damaged flag reads as not recorded (no crash)."""
    for name, source in (("old.h5", "all.h5"), ("old-real.h5", "real.h5"), ("odd.h5", "real.h5")):
        (tmp_path / name).write_bytes((folder / source).read_bytes())
        with h5py.File(tmp_path / name, "r+") as f:
            if "random_weights" in f.attrs:
                del f.attrs["random_weights"]
            if name == "odd.h5":
                f.attrs["random_weights"] = "yes"
    assert _json(_search(tmp_path / "old.h5", "--json"))["random_weights"] is True
    assert _json(_search(tmp_path / "old-real.h5", "--json"))["random_weights"] is False
    assert _json(_search(tmp_path / "odd.h5", "--json"))["random_weights"] is False


def test_a_whitening_fitted_on_random_features_marks_what_it_whitens(tmp_path):
    """fit-pca on a random backbone's raw features records it in the file; an extractor with that whitening is
    random (whatever its backbone), so is the file it writes, and search on that file says so."""
    raw = _write(tmp_path / "raw.h5", StoreIdentity("ResNet-50 random (seed 0)", "none", 1.0, 16, dtype="float32"))
    fitted = _json(runner.invoke(app, ["fit-pca", str(raw), "-o", str(tmp_path / "pca.pth"), "--json"]))
    assert fitted["random_weights"] is True
    assert torch.load(tmp_path / "pca.pth", weights_only=True)["random_weights"] is True
    whitening, label = load_whitening(str(tmp_path / "pca.pth"), dims=16, in_dims=16)
    assert whitening.is_random and label.startswith("pca.pth (sha256 ")
    extractor = RegionExtractor(torch.nn.Identity(), whitening, backbone_label="ResNet-50 mine.pth (sha256 0)",
                                whitening_label=label)
    assert extractor.is_random
    identity = StoreIdentity.of(extractor, 1.0, dtype="float32")
    assert identity.random_weights
    whitened = _write(tmp_path / "whitened.h5", identity)
    with FeatureStore(whitened) as store:
        assert store.identity == identity and store.random_weights
    assert _json(_search(whitened, "--json"))["random_weights"] is True
    # Fitted on real features: the published layout exactly, and nothing random.
    real = _write(tmp_path / "real-raw.h5", StoreIdentity("ResNet-50 imagenet", "none", 1.0, 16, dtype="float32"))
    assert _json(runner.invoke(app, ["fit-pca", str(real), "-o", str(tmp_path / "real.pth"), "--json"]))[
        "random_weights"] is False
    assert set(torch.load(tmp_path / "real.pth", weights_only=True)) == {"mean", "d", "V"}
    assert not load_whitening(str(tmp_path / "real.pth"), dims=16, in_dims=16)[0].is_random


def test_a_merge_keeps_the_flag_of_any_of_its_files(tmp_path):
    """A file whose only random part is its whitening's source (the flag, not the labels) merged after one
    without the flag: the merged file still says random weights."""
    plain = _write(tmp_path / "plain.h5", PUBLISHED)
    flagged = StoreIdentity("ResNet-50 imagenet", "vcdb", 1.0, 16, dtype="float32", random_weights=True)
    marked = _write(tmp_path / "marked.h5", flagged)
    result = runner.invoke(app, ["merge", str(tmp_path / "out.h5"), str(plain), str(marked)])
    assert result.exit_code == 0, result.output
    with FeatureStore(tmp_path / "out.h5") as store:
        assert store.random_weights and store.identity == PUBLISHED


def test_thresholds_of_a_random_whitening_say_random_weights():
    from s2vs_cli.scoring.calibration import ScoreIdentity

    assert ScoreIdentity("features only", "ResNet-50 imagenet", "random (seed 0)", 1.0).random_weights
    assert not ScoreIdentity("features only", "ResNet-50 imagenet", "vcdb", 1.0).random_weights
