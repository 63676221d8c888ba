"""Region extractor: parity with the original (ResNet-50 L3-iMAC + PCA whitening), inputs, precision."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2vs_cli.models.extractor import RegionExtractor
from s2vs_cli.models.resnet import ResNet50LiMAC, build_resnet50, to_model_input
from s2vs_cli.models.seeding import seeded
from s2vs_cli.models.whitening import PCAWhitening

TOL = 1e-4


@pytest.fixture(scope="module")
def parity_extractor(parity_weights):
    cnn = build_resnet50()
    state = torch.load(parity_weights / "resnet_random.pth", weights_only=True)
    cnn.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    pca = torch.load(parity_weights / "pca_random.pth", weights_only=True)
    return RegionExtractor(ResNet50LiMAC(cnn), PCAWhitening.from_eigen(pca["mean"], pca["d"], pca["V"]))


@pytest.fixture(scope="module")
def optimized_extractor(parity_extractor):
    import copy
    return copy.deepcopy(parity_extractor).optimize_for_inference()


def test_region_vectors_match_original(parity_extractor, parity_inputs, parity_ref):
    frames = torch.from_numpy(parity_inputs["frames"])
    unwhitened = RegionExtractor(parity_extractor.backbone, None)
    with torch.inference_mode():
        raw = unwhitened(frames)
        whitened = parity_extractor(frames)
    assert raw.shape == (6, 9, 3840) and whitened.shape == (6, 9, 512)
    np.testing.assert_allclose(raw, parity_ref["region_raw"], atol=TOL, rtol=0)
    np.testing.assert_allclose(whitened, parity_ref["region_features"], atol=TOL, rtol=0)


def test_inference_optimizations_keep_parity(optimized_extractor, parity_inputs, parity_ref):
    """BatchNorm folding, channels-last and batching change nothing beyond rounding."""
    frames = torch.from_numpy(parity_inputs["frames"])
    features = optimized_extractor.extract(frames, frames_per_batch=4)
    assert features.dtype == torch.float32 and features.shape == (6, 9, 512)
    np.testing.assert_allclose(features, parity_ref["region_features"], atol=TOL, rtol=0)


def test_bf16_accuracy_cost(optimized_extractor, parity_inputs, parity_ref):
    """bf16 autocast on the CNN: every region vector within cosine 0.9995 of fp32 (measured ~0.99998)."""
    frames = torch.from_numpy(parity_inputs["frames"])
    features = optimized_extractor.extract(frames, precision="bf16")
    cosine = (features * torch.from_numpy(parity_ref["region_features"])).sum(-1)
    assert float(cosine.min()) >= 0.9995


def test_input_layouts_agree(optimized_extractor, parity_inputs):
    """uint8 NHWC, float [0,1] NHWC and float NCHW are the same frames."""
    frames = torch.from_numpy(parity_inputs["frames"][:2])
    as_float = frames.float() / 255
    with torch.inference_mode():
        a = optimized_extractor(frames)
        b = optimized_extractor(as_float)
        c = optimized_extractor(as_float.permute(0, 3, 1, 2))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_normalisation_is_imagenet():
    white = torch.full((1, 2, 2, 3), 255, dtype=torch.uint8)
    x = to_model_input(white)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[0, :, 0, 0], expected)
    assert x.shape == (1, 3, 2, 2)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="frames must be"):
        to_model_input(torch.zeros(224, 224, 3))


def test_whitening_formula():
    g = torch.Generator().manual_seed(0)
    dims_in, dims_out = 12, 4
    mean = torch.randn(dims_in, generator=g)
    d = torch.rand(dims_in, generator=g) + 0.1
    V, _ = torch.linalg.qr(torch.randn(dims_in, dims_in, generator=g))
    whitening = PCAWhitening.from_eigen(mean, d, V, dims=dims_out)
    x = torch.randn(5, dims_in, generator=g)
    keep = torch.argsort(d, descending=True)[:dims_out]
    expected = (x - mean) @ (V[:, keep] / torch.sqrt(d[keep] + 1e-7))
    expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(whitening(x), expected)


def test_random_whitening_is_seeded_and_orthonormal():
    a, b = PCAWhitening.random(3, dims=16), PCAWhitening.random(3, dims=16)
    assert torch.equal(a.projection, b.projection)
    torch.testing.assert_close(a.projection.T @ a.projection, torch.eye(16), atol=1e-5, rtol=0)
    assert not torch.equal(a.projection, PCAWhitening.random(4, dims=16).projection)


def test_seeded_random_backbone_is_the_parity_backbone(parity_weights):
    """`--backbone-weights random --seed 99` builds exactly the fixture's ResNet-50."""
    with seeded(99):
        cnn = build_resnet50()
    reference = torch.load(parity_weights / "resnet_random.pth", weights_only=True)
    for key, value in cnn.state_dict().items():
        assert torch.equal(value, reference[key]), key


@pytest.mark.slow
def test_compiled_extractor_matches_eager(optimized_extractor, parity_inputs, parity_ref):
    """--compile (torch.compile, frozen weights): same features; a short last batch is padded, not recompiled."""
    frames = torch.from_numpy(parity_inputs["frames"][:5])
    features = optimized_extractor.extract(frames, frames_per_batch=4, compiled=True)
    assert features.shape == (5, 9, 512)
    np.testing.assert_allclose(features, parity_ref["region_features"][:5], atol=TOL, rtol=0)
