"""Score normalization with a noise set: the offsets (k-th nearest, β) by hand, the noise file's checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2vs_cli.errors import ConfigError
from s2vs_cli.scoring.normalization import (NoiseNormalization, NoiseSet, noise_offsets, normalize_similarities,
                                            normalize_with_noise)
from s2vs_cli.scoring.retrieval import VideoScorer, score_store
from s2vs_cli.storage.store import StoreIdentity
from test_search import _unit, write_store

IDENTITY = StoreIdentity("test", "test", 1.0, 16, dtype="float32")


def test_offsets_are_beta_times_the_kth_nearest_noise_similarity():
    to_noise = {"a": {"n1": 0.2, "n2": 0.9, "n3": 0.5, "n4": -0.1}, "b": {"n1": 0.3, "n2": 0.3, "n3": 0.1, "n4": 0.0}}
    assert noise_offsets(to_noise, k=1, beta=1.0) == {"a": 0.9, "b": 0.3}
    assert noise_offsets(to_noise, k=2, beta=1.0) == {"a": 0.5, "b": 0.3}  # b's two equal nearest: 0.3 twice
    assert noise_offsets(to_noise, k=3, beta=0.5) == pytest.approx({"a": 0.1, "b": 0.05})
    assert noise_offsets(to_noise, k=4, beta=2.0) == pytest.approx({"a": -0.2, "b": 0.0})
    with pytest.raises(ConfigError, match="normalize_k is 5 but only 4 noise videos were scored against 'a'"):
        noise_offsets(to_noise, k=5, beta=1.0)


def test_normalized_scores_are_each_querys_scores_less_its_offset():
    similarities = {"a": {"x": 0.95, "y": 0.6}, "b": {"x": 0.4, "y": 0.7}}
    normalized = normalize_similarities(similarities, {"a": 0.5, "b": 0.25})
    assert normalized["a"] == pytest.approx({"x": 0.45, "y": 0.1})
    assert normalized["b"] == pytest.approx({"x": 0.15, "y": 0.45})


def _videos(rng, count: int, prefix: str, frames: int = 5) -> dict[str, np.ndarray]:
    return {f"{prefix}{i}": _unit(rng.standard_normal((frames, 2, 16))) for i in range(count)}


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(3)
    collection = _videos(rng, 4, "v")
    collection["q"] = _unit(rng.standard_normal((5, 2, 16)))
    noise = _videos(rng, 6, "noise")
    write_store(tmp_path / "collection.h5", collection, identity=IDENTITY)
    write_store(tmp_path / "noise.h5", noise, identity=IDENTITY)
    return tmp_path / "collection.h5", tmp_path / "noise.h5"


def test_normalize_with_noise_matches_scores_computed_by_hand(files):
    collection, noise = files
    scorer = VideoScorer(None, torch.device("cpu"))
    similarities = score_store(str(collection), ["q"], ["v0", "v1", "v2", "v3"], scorer).similarities
    # The same noise videos scored as a database of their own, in a store that holds q too.
    both = collection.with_name("both.h5")
    from s2vs_cli.storage.store import FeatureStore

    with FeatureStore(noise) as store:
        videos = {i: store.read(i).features for i in store.ids()}
    with FeatureStore(collection) as store:
        videos["q"] = store.read("q").features
    write_store(both, videos, identity=IDENTITY)
    to_noise = sorted(score_store(str(both), ["q"], [f"noise{i}" for i in range(6)], scorer).similarities["q"].values())
    normalized, record = normalize_with_noise(similarities, collection, ["q"], noise, scorer, k=2, beta=0.5)
    expected = {t: s - 0.5 * to_noise[-2] for t, s in similarities["q"].items()}
    assert normalized["q"] == pytest.approx(expected, abs=1e-6)
    assert (record.videos, record.k, record.beta, record.noise) == (6, 2, 0.5, str(noise))


def test_the_noise_record_names_the_set_by_content(files, tmp_path):
    collection, noise = files
    moved = tmp_path / "elsewhere.h5"
    moved.write_bytes(noise.read_bytes())
    with NoiseSet(noise, 1, 1.0) as a, NoiseSet(moved, 1, 1.0) as b:
        assert a.record.digest == b.record.digest and a.record.same_as(b.record)
        assert not a.record.same_as(NoiseNormalization(**{**a.record.as_dict(), "k": 2}))
        assert NoiseNormalization.from_dict(a.record.as_dict()) == a.record
        assert a.record.describe() == "noise.h5 (6 videos), k 1, β 1"
    with NoiseSet(collection, 1, 1.0) as other:
        assert other.record.digest != a.record.digest


def test_noise_must_be_unrelated_made_alike_and_large_enough(files, tmp_path):
    collection, noise = files
    scorer = VideoScorer(None, torch.device("cpu"))
    similarities = {"q": {"v0": 0.5}}
    with pytest.raises(ConfigError, match="'q' is also in .*collection.h5 .*unrelated to the queries"):
        normalize_with_noise(similarities, collection, ["q"], collection, scorer, 1, 1.0)
    with pytest.raises(ConfigError, match="normalize_k is 7 but the noise set holds 6 videos"):
        normalize_with_noise(similarities, collection, ["q"], noise, scorer, 7, 1.0)
    other = tmp_path / "other.h5"
    write_store(other, _videos(np.random.default_rng(0), 2, "o"), identity=StoreIdentity("other", "test", 1.0, 16,
                                                                                          dtype="float32"))
    with pytest.raises(ConfigError, match="other.h5 was made with other settings than .*collection.h5: backbone "
                                          "'other' \\(collection.h5: 'test'\\)"):
        normalize_with_noise(similarities, collection, ["q"], other, scorer, 1, 1.0)


def test_evaluate_normalizes_with_the_noise_set(files, tmp_path):
    """`evaluate --normalize-with`: the metrics of the normalized scores, and the normalization recorded."""
    import json

    from typer.testing import CliRunner

    from s2vs_cli.cli import app

    collection, noise = files
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"queries": ["q"], "database": ["v0", "v1", "v2", "v3"], "positives": {"q": ["v1"]}}))
    base = ["evaluate", "--dataset", "custom", "--ground-truth", str(gt), "--dataset-hdf5", str(collection),
            "--features-only", "--json"]
    plain = CliRunner().invoke(app, base)
    normalized = CliRunner().invoke(app, [*base, "--normalize-with", str(noise), "--normalize-k", "2",
                                          "--normalize-beta", "0.5"])
    assert plain.exit_code == 0 and normalized.exit_code == 0, normalized.output
    summary = json.loads(normalized.stdout)
    assert summary["normalization"]["k"] == 2 and summary["normalization"]["beta"] == 0.5
    assert summary["normalization"]["videos"] == 6
    # One query: its ranking, hence its mAP, is the same once its offset is taken off.
    assert summary["metrics"] == json.loads(plain.stdout)["metrics"]
    refused = CliRunner().invoke(app, ["evaluate", "--dataset", "custom", "--ground-truth", str(gt),
                                       "--from-similarities", str(tmp_path / "s.json"), "--normalize-with", str(noise)])
    assert refused.exit_code == 2 and "--normalize-with scores the queries' features" in refused.output
