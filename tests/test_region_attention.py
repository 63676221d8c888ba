"""Targets indexed in reused buffers (scoring/region_attention.py): the network's values, and no stale views scored."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from s2vs_cli.models.visil import ViSiL
from s2vs_cli.compute import autocast
from s2vs_cli.scoring import region_attention
from s2vs_cli.scoring.region_attention import RegionAttention, frame_groups
from s2vs_cli.scoring.retrieval import VideoScorer


def _videos(seed: int, lengths: list[int], dtype=torch.float16) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.standard_normal((t, 9, 64)).astype(np.float32) / 8).to(dtype) for t in lengths]


@pytest.fixture()
def network() -> ViSiL:
    torch.manual_seed(0)
    return ViSiL(dims=64).eval()


def test_frame_groups_hold_at_most_the_budget_or_one_long_item():
    assert frame_groups([3, 4, 5, 20, 1, 1], 8) == [[0, 1], [2], [3], [4, 5]]
    assert frame_groups([], 8) == []


def test_fp32_indexing_is_the_networks(monkeypatch, network):
    monkeypatch.setattr(region_attention, "PRODUCT_FRAMES", 32)  # several groups, some padded, one longer than a group
    videos = _videos(1, [5, 17, 3, 40, 9, 12])
    indexed = RegionAttention(network, torch.device("cpu"), "fp32").apply(videos)
    with torch.inference_mode():
        for video, got in zip(videos, indexed):
            # Equal up to the products' summation order (batch shapes differ): float32 rounding.
            torch.testing.assert_close(got, network.index_video(video.float()), atol=1e-6, rtol=1e-5)


def test_bf16_indexing_stays_within_bf16_rounding_of_autocast(network):
    videos = _videos(2, [30, 7])
    indexed = RegionAttention(network, torch.device("cpu"), "bf16").apply(videos)
    with torch.inference_mode(), autocast(torch.device("cpu"), "bf16"):
        for video, got in zip(videos, indexed):
            expected = network.index_video(video.float()).float()
            assert (got - expected).abs().max() <= 0.01 * expected.abs().max()


def test_targets_of_an_older_block_are_refused(network):
    scorer = VideoScorer(network, torch.device("cpu"))
    query = scorer.prepare_query(_videos(3, [6], torch.float32)[0].numpy())
    first = scorer.prepare_targets([v.numpy() for v in _videos(4, [8, 9])])
    scorer.prepare_targets([v.numpy() for v in _videos(5, [8])])  # overwrites the buffer first's views are in
    with pytest.raises(RuntimeError, match="overwritten"):
        scorer.score(query, first)
