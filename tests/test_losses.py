"""Training objective and schedule against the original code's values (../shared/parity/train_expected.json)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from s2vs_cli.training.losses import infonce_loss, positive_mask, sshn_losses
from s2vs_cli.training.schedule import LearningRateSchedule
from s2vs_cli.models.visil import ViSiL, similarity_regularization


@pytest.fixture(scope="module")
def expected(parity_dir) -> dict:
    return json.loads((parity_dir / "train_expected.json").read_text())


def _viv_labels(b: int, mixes) -> torch.Tensor:
    labels = torch.eye(b)
    for slot, clip, lam in mixes:
        labels[int(slot), int(clip)] = lam
    return labels


def test_positive_mask_from_viv_labels(expected):
    fixture = expected["losses"]
    mask = positive_mask(_viv_labels(fixture["B"], fixture["viv"]))
    assert mask.tolist() == (np.array(fixture["labels"]) > 0).tolist()


def test_positive_mask_without_mixing_pairs_the_two_views():
    mask = positive_mask(torch.eye(3))
    expected = np.zeros((6, 6), dtype=bool)
    for i in range(3):
        expected[i, i] = expected[i, i + 3] = expected[i + 3, i] = expected[i + 3, i + 3] = True
    assert mask.numpy().tolist() == expected.tolist()


def test_losses_equal_the_originals(expected):
    fixture = expected["losses"]
    similarity = torch.tensor(fixture["similarity"])
    positives = torch.tensor(fixture["labels"]) > 0
    assert float(infonce_loss(similarity, positives)) == pytest.approx(fixture["infonce_tau0.03"], rel=1e-5)
    hard_negative, self_term = sshn_losses(similarity, positives)
    assert float(hard_negative) == pytest.approx(fixture["sshn_hardneg"], rel=1e-5)
    assert float(self_term) == pytest.approx(fixture["sshn_self"], rel=1e-5)


def test_infonce_by_hand():
    """Two clips, positives of each other: p = e^{s01/τ} / (e^{s01/τ} + 0 + 1e-6) -> loss ~ 0."""
    similarity = torch.tensor([[1.0, 0.9], [0.9, 1.0]])
    positives = torch.ones(2, 2, dtype=torch.bool)
    assert float(infonce_loss(similarity, positives)) == pytest.approx(0.0, abs=1e-6)
    # With a third clip negative to both at similarity 0.9, p = 1/2 for every positive pair.
    similarity = torch.full((3, 3), 0.9)
    positives = torch.tensor([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    rows = [np.log(2), np.log(2), 0.0]  # the third row has no positive besides itself
    assert float(infonce_loss(similarity, positives)) == pytest.approx(np.mean(rows), rel=1e-5)


def test_regularisation_equals_the_originals(expected):
    fixture = expected["regularisation_direct"]
    out = torch.tensor(fixture["comparator_output"])
    assert float(similarity_regularization(out)) == pytest.approx(fixture["loss"], rel=1e-6)


def test_training_forward_equals_the_originals(expected, parity_dir):
    fixture = expected["train_forward"]
    network = ViSiL()
    network.load_state_dict(torch.load(parity_dir / "visil_random.pth", weights_only=True)["model"])
    features = torch.from_numpy(np.load(parity_dir / "train_features.npy"))
    similarity, regularisation = network.eval()(features)
    np.testing.assert_allclose(similarity.detach().numpy(), fixture["similarity"], atol=1e-6, rtol=0)
    assert float(regularisation.detach()) == pytest.approx(fixture["regularisation"], abs=1e-6)


def test_learning_rate_schedule_equals_the_originals(expected):
    schedule = LearningRateSchedule()
    fixture = expected["lr_schedule"]
    for step, lr in zip(fixture["steps"], fixture["lr"]):
        assert schedule(step) == pytest.approx(lr, rel=1e-12, abs=1e-15), step
