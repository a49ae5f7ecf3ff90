"""MPJPE and PA-MPJPE on hand-worked cases and invariances."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from egogrpo.eval.metrics import mpjpe, pa_mpjpe


def test_mpjpe_hand_worked() -> None:
    truth = torch.zeros(2, 22, 3, dtype=torch.float64)
    predicted = truth.clone()
    predicted[0, :, 0] = 0.01  # every joint 1 cm off
    predicted[1, 0] = torch.tensor([0.0, 0.03, 0.04])  # one joint 5 cm off
    np.testing.assert_allclose(mpjpe(predicted, truth).numpy(), [10.0, 50.0 / 22])
    assert float(mpjpe(truth, truth).max()) == 0.0


def test_pa_mpjpe_ignores_similarity_transforms() -> None:
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.normal(size=(5, 22, 3)))
    noisy = truth + 0.02 * torch.from_numpy(rng.normal(size=(5, 22, 3)))
    R = torch.from_numpy(Rotation.random(5, random_state=1).as_matrix())
    moved = 1.7 * noisy @ R.transpose(-1, -2) + torch.tensor([0.3, -2.0, 1.0], dtype=torch.float64)
    np.testing.assert_allclose(pa_mpjpe(moved, truth).numpy(), pa_mpjpe(noisy, truth).numpy(), atol=1e-9)
    assert float(pa_mpjpe(1.3 * truth + 5.0, truth).max()) < 1e-9
    assert (pa_mpjpe(noisy, truth) <= mpjpe(noisy, truth) + 1e-9).all()
