"""The ViSiL network: parity with the original implementation, and its math against brute force."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from s2vs_cli.models.visil import ViSiL, VideoComparator, chamfer, frame_to_frame_similarity, similarity_regularization
from s2vs_cli.scoring.many_targets import TargetColumns, coarse_size, padded_similarities, video_similarities
from s2vs_cli.scoring.retrieval import VideoScorer

PAIRS = range(5)  # (Tq, Tt) = (37, 53), (4, 90), (120, 17), (4, 5), (60, 40)
TOL = 1e-5


@pytest.fixture(scope="module")
def network(parity_dir):
    net = ViSiL()
    net.load_state_dict(torch.load(parity_dir / "visil_random.pth", weights_only=True)["model"])
    return net.eval()


@pytest.fixture(scope="module")
def seeded_network():
    """A seeded network with non-zero biases, for math tests that need no fixture files."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = ViSiL()
        for p in net.parameters():
            p.data.add_(0.05 * torch.randn_like(p))
    return net.eval()


def _pair(inputs, i):
    return torch.from_numpy(inputs[f"q{i}"]), torch.from_numpy(inputs[f"t{i}"])


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# --- parity with ../shared/parity (fp32, CPU) -------------------------------------------------------

@pytest.mark.parametrize("i", PAIRS)
def test_indexing_matches_original(network, parity_inputs, parity_ref, i):
    q, t = _pair(parity_inputs, i)
    with torch.inference_mode():
        np.testing.assert_allclose(network.index_video(q), parity_ref[f"idx_q{i}"], atol=TOL, rtol=0)
        np.testing.assert_allclose(network.index_video(t), parity_ref[f"idx_t{i}"], atol=TOL, rtol=0)


@pytest.mark.parametrize("i", PAIRS)
def test_similarity_outputs_match_original(network, parity_inputs, parity_ref, i):
    q, t = _pair(parity_inputs, i)
    with torch.inference_mode():
        iq, it = network.index_video(q), network.index_video(t)
        f2f = network.frame_to_frame_similarity(iq, it)
        visil_map = network.comparator_map(f2f)
        np.testing.assert_allclose(f2f, parity_ref[f"f2f{i}"], atol=TOL, rtol=0)
        np.testing.assert_allclose(visil_map.squeeze(), parity_ref[f"visil_map{i}"], atol=TOL, rtol=0)
        assert network.video_similarity(iq, it).item() == pytest.approx(parity_ref[f"sim{i}"], abs=TOL)
        assert network.video_similarity(iq, it, apply_comparator=False).item() == pytest.approx(
            parity_ref[f"sim_f{i}"], abs=TOL)


@pytest.mark.parametrize("i", PAIRS)
def test_features_only_matches_original(parity_inputs, parity_ref, i):
    q, t = _pair(parity_inputs, i)
    f2f = frame_to_frame_similarity(q, t)
    np.testing.assert_allclose(f2f, parity_ref[f"f2f_raw{i}"], atol=TOL, rtol=0)
    assert chamfer(f2f).item() == pytest.approx(parity_ref[f"sim_raw{i}"], abs=TOL)


def test_near_duplicate_pair_scores_highest(network, parity_inputs):
    """Pair 4 is a noisy, time-shifted near-duplicate: it must beat the unrelated pairs."""
    with torch.inference_mode():
        sims = [network.video_similarity(*(network.index_video(x) for x in _pair(parity_inputs, i))).item()
                for i in PAIRS]
    assert int(np.argmax(sims)) == 4


def test_training_forward_matches_original(network, parity_dir):
    expected = json.loads((parity_dir / "train_expected.json").read_text())["train_forward"]
    x = torch.from_numpy(np.load(parity_dir / "train_features.npy"))
    sim, loss = network(x)
    np.testing.assert_allclose(sim.detach(), np.array(expected["similarity"]), atol=TOL, rtol=0)
    assert loss.item() == pytest.approx(expected["regularisation"], abs=TOL)


def test_regularisation_matches_original(parity_dir):
    expected = json.loads((parity_dir / "train_expected.json").read_text())["regularisation_direct"]
    out = torch.tensor(expected["comparator_output"])
    assert similarity_regularization(out).item() == pytest.approx(expected["loss"], abs=TOL)


@pytest.mark.parametrize("i", PAIRS)
def test_bf16_accuracy_cost(network, parity_inputs, parity_ref, i):
    """bf16 autocast costs < 1e-3 on a video similarity in [-1, 1] (measured <= 2.6e-4 on these pairs)."""
    q, t = _pair(parity_inputs, i)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        full = network.video_similarity(network.index_video(q), network.index_video(t)).float().item()
        raw = chamfer(frame_to_frame_similarity(q, t)).float().item()
    assert full == pytest.approx(parity_ref[f"sim{i}"], abs=1e-3)
    assert raw == pytest.approx(parity_ref[f"sim_raw{i}"], abs=1e-3)


def test_published_layout_keys_and_shapes():
    shapes = {k: tuple(v.shape) for k, v in ViSiL().state_dict().items()}
    assert shapes == {
        "attention.transform.weight": (512, 512), "attention.transform.bias": (512,),
        "attention.context_vector.weight": (1, 512),
        "visil_head.conv1.weight": (32, 1, 3, 3), "visil_head.conv1.bias": (32,),
        "visil_head.conv2.weight": (64, 32, 3, 3), "visil_head.conv2.bias": (64,),
        "visil_head.conv3.weight": (128, 64, 3, 3), "visil_head.conv3.bias": (128,),
        "visil_head.fconv.weight": (1, 128, 1, 1), "visil_head.fconv.bias": (1,),
    }


# --- math against brute force ------------------------------------------------------------------------

def test_frame_to_frame_equals_loop():
    q, t = unit(3, 4, 8, seed=1), unit(5, 2, 8, seed=2)
    expected = torch.zeros(3, 5)
    for i in range(3):
        for j in range(5):
            expected[i, j] = np.mean([max(float(q[i, o] @ t[j, p]) for p in range(2)) for o in range(4)])
    torch.testing.assert_close(frame_to_frame_similarity(q, t), expected)


def test_chamfer_hand_computed():
    sim = torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.2, 0.4]])
    assert chamfer(sim).item() == pytest.approx((0.9 + 0.5) / 2)
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])  # second row and third column padded
    assert chamfer(sim, mask).item() == pytest.approx(0.9)


def test_masked_chamfer_equals_loop():
    g = torch.Generator().manual_seed(3)
    sim = torch.randn(4, 6, 7, generator=g)
    rows = torch.tensor([6, 3, 1, 4])
    cols = torch.tensor([7, 2, 5, 1])
    mask = ((torch.arange(6)[None, :, None] < rows[:, None, None]) &
            (torch.arange(7)[None, None, :] < cols[:, None, None])).float()
    expected = torch.stack([sim[n, :rows[n], :cols[n]].max(1).values.mean() for n in range(4)])
    torch.testing.assert_close(chamfer(sim, mask), expected)


def test_comparator_output_shape_and_hardtanh_range(seeded_network):
    for tq, tt in [(4, 4), (5, 9), (37, 53), (120, 17)]:
        out = seeded_network.comparator_map(torch.rand(tq, tt) * 4 - 2)
        assert out.shape == (tq // 2 // 2, tt // 2 // 2)
        assert out.min() >= -1 and out.max() <= 1


def test_comparator_refuses_videos_shorter_than_four_frames(seeded_network):
    with pytest.raises(ValueError, match="at least 4 frames"):
        seeded_network.comparator_map(torch.rand(3, 10))


def test_comparator_with_full_mask_equals_unmasked(seeded_network):
    sim = torch.rand(2, 1, 13, 22)
    plain, _ = seeded_network.visil_head(sim)
    masked, _ = seeded_network.visil_head(sim, torch.ones_like(sim))
    torch.testing.assert_close(plain, masked)


@pytest.mark.parametrize("tq,tt", [(37, 53), (101, 230), (64, 9)])
def test_chunked_frame_similarity_equals_unchunked(tq, tt):
    q, t = unit(tq, 9, 64, seed=4), unit(tt, 9, 64, seed=5)
    whole = frame_to_frame_similarity(q, t, chunk_elements=1 << 40)
    chunked = frame_to_frame_similarity(q, t, chunk_elements=1)  # one query frame at a time
    # Within float32 rounding, not bit for bit: the BLAS may pick another kernel for another shape
    # (measured: identical in some runs, 3e-8 apart in others on the same machine).
    torch.testing.assert_close(whole, chunked, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tq,tt", [(37, 53), (101, 230), (64, 9), (47, 47)])
@pytest.mark.parametrize("tile", [8, 12, 32])
def test_tiled_comparator_equals_untiled(seeded_network, tq, tt, tile):
    f2f = torch.rand(tq, tt, generator=torch.Generator().manual_seed(tq * tt)) * 2 - 1
    with torch.inference_mode():
        whole = seeded_network.comparator_map(f2f, tile=1 << 20)
        tiled = seeded_network.comparator_map(f2f, tile=tile)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=0)


def test_many_targets_equal_one_at_a_time(seeded_network):
    q = seeded_network.index_video(unit(30, 9, 512, seed=6))
    targets = [seeded_network.index_video(unit(n, 9, 512, seed=n)) for n in (30, 17, 30, 4, 17, 61)]
    with torch.inference_mode():
        batched = video_similarities(seeded_network, q, targets)
        single = torch.stack([seeded_network.video_similarity(q, t) for t in targets])
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=0)


@pytest.mark.parametrize("query_frames", [4, 23, 30])
def test_padded_batches_of_mixed_lengths_equal_each_target_alone(seeded_network, query_frames):
    """Lengths of every residue mod 4 in one padded batch: masking and floor pooling stay exact."""
    q = seeded_network.index_video(unit(query_frames, 9, 512, seed=7))
    lengths = (4, 5, 6, 7, 8, 9, 13, 22, 31, 40)
    targets = [seeded_network.index_video(unit(n, 9, 512, seed=n)) for n in lengths]
    with torch.inference_mode():
        padded = padded_similarities(seeded_network, q, TargetColumns(targets))
        batched = video_similarities(seeded_network, q, targets)
        single = torch.stack([seeded_network.video_similarity(q, t) for t in targets])
    torch.testing.assert_close(padded, single, atol=1e-6, rtol=0)
    torch.testing.assert_close(batched, single, atol=1e-6, rtol=0)


def test_training_forward_masks_padded_frames():
    """In a padded batch the padding never leaks into the similarities."""
    torch.manual_seed(0)
    net = ViSiL().eval()
    lengths = [8, 6, 4]
    x = torch.zeros(3, 8, 9, 512)
    for n, length in enumerate(lengths):
        x[n, :length] = unit(length, 9, 512, seed=10 + n)
    mask = (torch.arange(8)[None] < torch.tensor(lengths)[:, None]).float()
    with torch.no_grad():
        sim, _ = net(x, mask)
    # Padding content must not matter.
    x_noise = x + (1 - mask)[..., None, None] * torch.randn_like(x)
    with torch.no_grad():
        sim_noise, _ = net(x_noise, mask)
    torch.testing.assert_close(sim, sim_noise)
    assert sim.shape == (3, 3) and float(sim.min()) >= 0 and float(sim.max()) <= 1


def test_regularisation_counts_only_values_outside_range():
    out = torch.tensor([-3.0, -1.0, 0.0, 0.5, 1.0, 2.5])
    assert similarity_regularization(out).item() == pytest.approx(2.0 + 1.5)


def test_binarization_divides_by_bits():
    torch.manual_seed(0)
    net = ViSiL(attention=False, binarization=True, binary_bits=64).eval()
    q = net.index_video(unit(6, 9, 512, seed=7))
    assert set(q.unique().tolist()) <= {-1.0, 1.0}
    f2f = net.frame_to_frame_similarity(q, q)
    assert torch.allclose(f2f.diagonal(), torch.ones(6))  # identical codes agree on every bit


def test_attention_and_binarization_exclusive():
    with pytest.raises(ValueError):
        ViSiL(attention=True, binarization=True)


def test_comparator_init_is_xavier_with_zero_bias():
    torch.manual_seed(0)
    comparator = VideoComparator()
    for conv in (comparator.conv1, comparator.conv2, comparator.conv3, comparator.fconv):
        assert torch.count_nonzero(conv.bias) == 0
        fan_in = conv.weight[0].numel()
        fan_out = conv.weight.shape[0] * conv.weight[0, 0].numel()
        assert conv.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_padding_the_query_rows_changes_no_chamfer_score_or_map(dtype):
    """dedup pads every query's rows to a few sizes (a kernel a shape piled up in memory): same scores, same maps."""
    generator = torch.Generator().manual_seed(0)
    targets = [torch.randn(n, 9, 64, generator=generator) for n in (5, 17, 33)]
    columns = TargetColumns(targets, dtype)
    for frames in (3, 16, 21, 70):
        query = torch.randn(frames, 9, 64, generator=generator)
        plain_maps, padded_maps = [], []
        plain = columns.chamfer_similarities(query, maps=plain_maps)
        padded = columns.chamfer_similarities(query, maps=padded_maps, pad_rows=True)
        assert torch.equal(plain, padded)
        assert all(torch.equal(a, b) and a.shape[0] == frames for a, b in zip(plain_maps, padded_maps))


def test_coarse_sizes_are_few_and_at_most_half_again_the_length():
    sizes = {coarse_size(n) for n in range(1, 6145)}
    assert sorted(sizes)[:8] == [16, 24, 32, 48, 64, 96, 128, 192] and len(sizes) == 18
    assert all(n <= coarse_size(n) <= max(16, 1.5 * n) for n in range(1, 6145))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("features_only", [True, False])
def test_few_shapes_change_no_score_or_map(seeded_network, precision, features_only):
    """dedup's scorer pads queries, targets and the comparator's batches to coarse sizes: the same scores and maps."""
    network = None if features_only else seeded_network
    query = unit(21, 9, 512, seed=1).numpy()
    targets = [unit(n, 9, 512, seed=n).numpy() for n in (5, 17, 33, 70)]
    results = []
    for scorer in (VideoScorer(network, torch.device("cpu"), precision),
                   VideoScorer(network, torch.device("cpu"), precision, few_shapes=True)):
        maps = {}
        scores = scorer.score(scorer.prepare_query(query), scorer.prepare_targets(targets), maps)
        results.append((scores, [maps[k] for k in range(len(targets))]))
    (plain, plain_maps), (few, few_maps) = results
    if features_only:
        assert np.array_equal(plain, few) and all(torch.equal(a, b) for a, b in zip(plain_maps, few_maps))
    else:  # the comparator's convolutions sum in another order over larger padded inputs
        np.testing.assert_allclose(few, plain, rtol=0, atol=1e-6 if precision == "fp32" else 2e-3)
        assert all(torch.allclose(a, b, rtol=0, atol=1e-6 if precision == "fp32" else 2e-3)
                   for a, b in zip(plain_maps, few_maps))
