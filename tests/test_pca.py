"""PCA whitening fit (s2vs_cli.jobs.fit_pca): scatter accumulation, eigendecomposition, sampling plan, saving."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from s2vs_cli.jobs import fit_pca as pca
from s2vs_cli.errors import S2VSError
from s2vs_cli.models.resnet import REGION_DIMS
from s2vs_cli.models.whitening import WHITENING_EPS, PCAWhitening
from s2vs_cli.models.loading import load_whitening
from s2vs_cli.jobs.fit_pca import ScatterAccumulator, fit_whitening, sample_plan, save_whitening, whitening_note


def gaussian(n: int, dims: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n draws of N(mu, C) with C = Q diag(lam) Qᵀ (random orthonormal Q, distinct eigenvalues)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dims, dims)))
    lam = np.geomspace(10.0, 0.1, dims)  # descending, well separated
    mu = rng.uniform(0.5, 2.0, dims)  # a mean far from 0, as region vectors have
    x = mu + (rng.standard_normal((n, dims)) * np.sqrt(lam)) @ q.T
    return x, mu, lam, q


def brute_scatter(x: np.ndarray) -> np.ndarray:
    c = x - x.mean(0)
    return c.T @ c


@pytest.fixture(scope="module")
def known():
    return gaussian(200_000, 16, seed=0)


def test_fit_recovers_known_covariance(known):
    x, mu, lam, q = known
    acc = ScatterAccumulator(16)
    acc.add(x)
    w = fit_whitening(acc)
    assert set(w) == {"mean", "d", "V"} and all(v.dtype == torch.float32 for v in w.values())
    assert np.allclose(w["mean"].numpy(), mu, atol=0.02)
    d = w["d"].double().numpy()
    assert np.all(np.diff(d) <= 0)  # descending
    np.testing.assert_allclose(d / len(x), lam, rtol=0.02)  # the scatter is not divided by N
    cos = np.abs(np.sum(w["V"].double().numpy() * q, axis=0))  # columns matched in order, up to sign
    assert cos.min() > 0.99


def test_scatter_independent_of_batching_and_dtype(known):
    x = known[0][:50_000].astype(np.float32).astype(np.float64)  # exact in float32 too
    whole = ScatterAccumulator(16)
    whole.add(torch.from_numpy(x))
    split = ScatterAccumulator(16)
    for i, chunk in enumerate(np.array_split(x, [1, 7, 1000, 20_000, 33_333])):
        split.add(chunk.astype(np.float32) if i % 2 else chunk)  # float32 and float64 chunks, numpy or torch
    ref = whole.scatter()
    assert split.count == whole.count == len(x)
    assert torch.allclose(split.scatter(), ref, rtol=1e-9, atol=1e-9 * float(ref.abs().max()))
    assert torch.allclose(split.mean(), whole.mean(), rtol=1e-12, atol=1e-12)
    # Tiny blocks (many passes of the block loop) give the same numbers as one block.
    tiny = ScatterAccumulator(16)
    tiny._block_rows = 3
    tiny.add(x[:1000])
    once = ScatterAccumulator(16)
    once.add(x[:1000])
    assert torch.allclose(tiny.scatter(), once.scatter(), rtol=1e-12, atol=1e-9)


def test_float16_and_float32_inputs():
    x = np.random.default_rng(1).random((3000, 24)).astype(np.float16)
    a, b = ScatterAccumulator(24), ScatterAccumulator(24)
    a.add(x)
    b.add(torch.from_numpy(x.astype(np.float32)))  # float16 values are exact in float32
    np.testing.assert_allclose(a.scatter().numpy(), brute_scatter(x.astype(np.float64)), rtol=1e-10, atol=1e-10)
    assert torch.allclose(a.scatter(), b.scatter(), rtol=1e-12, atol=1e-12)


def test_scatter_matches_brute_force():
    rng = np.random.default_rng(2)
    x = rng.random((500, 12)) + 5.0  # large mean: the shifted moments must not lose the spread
    acc = ScatterAccumulator(12)
    acc.add(x[:123])
    acc.add(x[123:])
    ref = brute_scatter(x)
    np.testing.assert_allclose(acc.scatter().numpy(), ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(acc.mean().numpy(), x.mean(0), rtol=1e-12)
    assert torch.equal(acc.scatter(), acc.scatter().T)


def test_whitened_scatter_is_identity(known):
    x = known[0][:20_000]
    acc = ScatterAccumulator(16)
    acc.add(x)
    w = fit_whitening(acc)
    white = PCAWhitening.from_eigen(w["mean"], w["d"], w["V"], dims=10)
    # (x − μ) P without the final L2 normalisation: its scatter Pᵀ S P is I (d ≫ eps here).
    y = (torch.from_numpy(x) - w["mean"].double()) @ white.projection.double()
    s = (y - y.mean(0)).T @ (y - y.mean(0))
    assert torch.allclose(s, torch.eye(10, dtype=torch.float64), atol=1e-4)


@pytest.mark.gpu
def test_accumulates_on_cuda_like_on_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    x = torch.from_numpy(np.random.default_rng(6).random((4000, 32)))
    cpu, gpu = ScatterAccumulator(32), ScatterAccumulator(32, device="cuda")
    cpu.add(x)
    gpu.add(x[:1000])
    gpu.add(x[1000:].cuda().half().double())  # batches may live on either device
    gpu_ref = ScatterAccumulator(32)
    gpu_ref.add(torch.cat([x[:1000], x[1000:].half().double()]))
    assert gpu.scatter().device.type == "cpu"
    assert torch.allclose(gpu.scatter(), gpu_ref.scatter(), rtol=1e-10, atol=1e-10)


def test_degenerate_inputs():
    acc = ScatterAccumulator(8)
    with pytest.raises(ValueError, match="at least 2 vectors"):
        fit_whitening(acc)
    acc.add(np.ones((1, 8)))
    with pytest.raises(ValueError, match="at least 2 vectors"):
        fit_whitening(acc)
    with pytest.raises(ValueError, match=r"shape \[N, 8\]"):
        acc.add(np.ones((3, 7)))
    with pytest.raises(ValueError, match="floating point"):
        acc.add(np.ones((3, 8), dtype=np.int64))
    bad = np.ones((5, 8))
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        acc.add(bad)
    assert acc.count == 1  # a rejected batch leaves the totals alone
    # Fewer vectors than dims is allowed: the surplus eigenvalues are zero, and the note says so.
    acc.add(np.random.default_rng(3).random((3, 8)))
    w = fit_whitening(acc)
    assert torch.all(w["d"] >= 0) and int((w["d"] > 1e-9).sum()) == 3  # rank = N − 1
    assert whitening_note(w, keep=3) is None
    assert "5 of the 8 kept eigenvalues are zero: the vectors span only 3 dimensions" in whitening_note(w, keep=8)


def test_sample_plan_takes_everything_when_it_fits():
    plan = sample_plan([3, 0, 5], max_vectors=8, seed=0)
    assert [p.tolist() for p in plan] == [[0, 1, 2], [], [0, 1, 2, 3, 4]]
    assert all(p.dtype == np.int64 for p in plan)


def test_sample_plan_subsamples_uniformly():
    lengths = np.random.default_rng(4).integers(0, 200, size=500)
    lengths[::7] = 0
    plan = sample_plan(lengths, max_vectors=10_000, seed=1)
    assert len(plan) == len(lengths)
    assert sum(len(p) for p in plan) == 10_000
    for p, n in zip(plan, lengths):
        assert p.dtype == np.int64 and np.all(np.diff(p) > 0)  # sorted and distinct
        assert len(p) == 0 or (p[0] >= 0 and p[-1] < n)
    assert all(np.array_equal(a, b) for a, b in zip(plan, sample_plan(lengths, 10_000, seed=1)))
    assert not all(np.array_equal(a, b) for a, b in zip(plan, sample_plan(lengths, 10_000, seed=2)))
    # Each video gets about its share: chi-square over 500 videos, loose bound (mean ≈ 500 - empties).
    counts = np.array([len(p) for p in plan])
    expected = lengths * 10_000 / lengths.sum()
    chi2 = np.sum((counts[expected > 0] - expected[expected > 0]) ** 2 / expected[expected > 0])
    assert chi2 < 1.5 * np.count_nonzero(expected)
    # ... and positions within videos are uniform too: early and late halves about equal.
    early = sum(int(np.sum(p < n // 2)) for p, n in zip(plan, lengths))
    assert abs(early / 10_000 - 0.5) < 0.03


def test_sample_plan_subsets_are_equally_likely(monkeypatch):
    # Blocks of 3 over 8 vectors: the per-block counts and the draws inside blocks must combine
    # into a uniform choice among all C(8, 3) = 56 subsets.
    monkeypatch.setattr(pca, "SAMPLE_BLOCK", 3)
    plans = (sample_plan([5, 3], 3, seed=seed) for seed in range(11_200))
    seen = Counter(tuple(first.tolist()) + tuple((5 + second).tolist()) for first, second in plans)
    assert len(seen) == 56
    counts = np.array(list(seen.values()))
    assert np.sum((counts - 200) ** 2 / 200) < 100  # chi-square, 55 degrees of freedom


def test_sample_plan_is_light_on_huge_collections():
    plan = sample_plan(np.full(200_000, 900), max_vectors=1_000_000, seed=0)  # 1.8e8 vectors
    assert sum(len(p) for p in plan) == 1_000_000
    assert max(int(p[-1]) for p in plan if len(p)) < 900


def test_sample_plan_rejects_bad_arguments():
    with pytest.raises(ValueError):
        sample_plan([1, 2], max_vectors=0, seed=0)
    with pytest.raises(ValueError):
        sample_plan([1, -2], max_vectors=5, seed=0)


def test_save_and_load_round_trip(tmp_path):
    # A 1024-d whitening, loaded as a backbone of that width: the round trip is the same at any width, and a
    # 3840-d fit takes ~13 s on two cores (test_extraction's fit-pca test feeds a 3840-d file to --pca).
    dims = 1024
    x = torch.rand(2000, dims, generator=torch.Generator().manual_seed(5)).half()
    acc = ScatterAccumulator(dims)
    acc.add(x)
    w = fit_whitening(acc)
    path = tmp_path / "sub" / "pca.pth"
    save_whitening(path, w)
    assert [p.name for p in path.parent.iterdir()] == ["pca.pth"]  # no temporary left behind
    loaded, label = load_whitening(str(path), dims=512, in_dims=dims)
    direct = PCAWhitening.from_eigen(w["mean"], w["d"], w["V"], dims=512)
    assert label.startswith("pca.pth (sha256 ")  # named by content: a refitted file is another whitening
    assert torch.equal(loaded.projection, direct.projection) and torch.equal(loaded.mean, direct.mean)
    assert torch.allclose(loaded(x[:10].float()), direct(x[:10].float()))
    # The kept eigenvalues are far above the epsilon: 2000 vectors fill the top 512 dimensions.
    assert whitening_note(w, keep=512) is None and float(w["d"][511]) > 1e3 * WHITENING_EPS
    with pytest.raises(S2VSError, match=rf"mean has shape \({dims},\), expected \({REGION_DIMS},\)"):
        load_whitening(str(path), dims=512)  # by default the file must fit the default backbone's regions


def test_save_whitening_errors(tmp_path):
    w = {"mean": torch.zeros(4), "d": torch.ones(4), "V": torch.eye(4)}
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(S2VSError, match="cannot write whitening") as info:
        save_whitening(blocker / "pca.pth", w)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="exactly mean"):
        save_whitening(tmp_path / "pca.pth", {**w, "count": torch.tensor(3)})
    with pytest.raises(ValueError, match="exactly mean"):
        save_whitening(tmp_path / "pca.pth", {"d": w["d"], "V": w["V"]})
    save_whitening(tmp_path / "pca.pth", w)
    assert set(torch.load(tmp_path / "pca.pth", weights_only=True)) == {"mean", "d", "V"}


def _raw_store(tmp_path, dims: int, whitening: str = "none"):
    from s2vs_cli.storage.parts import PartWriter, merge_parts
    from s2vs_cli.storage.store import StoreIdentity

    identity = StoreIdentity("test", whitening, 1.0, dims, dtype="float32")
    rng = np.random.default_rng(0)
    with PartWriter(tmp_path / "parts", identity, "test", dtype="float32") as writer:
        for i, frames in enumerate((3, 5, 4)):
            x = rng.random((frames, 9, dims), dtype=np.float32)
            writer.add(f"v{i}", x / np.linalg.norm(x, axis=-1, keepdims=True), np.arange(frames, dtype=float))
    store = tmp_path / "raw.h5"
    merge_parts(store, writer.written, identity, "test")
    return store


def test_fit_pca_job_runs_on_the_runtime_and_reports_progress(tmp_path):
    from s2vs_cli.errors import ConfigError
    from s2vs_cli.progress import CallbackProgress
    from s2vs_cli.runtime import Runtime

    store, seen = _raw_store(tmp_path, 16), []
    progress = CallbackProgress(update=lambda done, total: seen.append((done, total)))
    result = pca.fit_pca([store], tmp_path / "pca.pth", Runtime.cpu(), max_vectors=50, progress=progress)
    assert (result.vectors, result.dims) == (50, 16) and seen[-1] == (3, 3)
    assert result.dims_note == "16-d vectors: --pca expects 3840-d (ResNet-50 L3-iMAC) whitenings"
    assert set(torch.load(tmp_path / "pca.pth", weights_only=True)) == {"mean", "d", "V"}
    with pytest.raises(ConfigError, match="--max-vectors must be at least 2"):
        pca.fit_pca([store], tmp_path / "pca.pth", Runtime.cpu(), max_vectors=1)
    with pytest.raises(S2VSError, match="already whitened"):
        pca.fit_pca([_raw_store(tmp_path / "w", 16, "vcdb")], tmp_path / "x.pth", Runtime.cpu())
