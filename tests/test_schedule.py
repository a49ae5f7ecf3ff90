"""The cosine schedule matches EgoAllo's reference values; q_sample has the right statistics."""

from __future__ import annotations

import math

import pytest
import torch

from egogrpo.model.schedule import NoiseSchedule


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.cosine()


def test_shapes_and_endpoints(schedule: NoiseSchedule) -> None:
    assert schedule.num_timesteps == 1000
    assert schedule.alpha_bar.shape == schedule.betas.shape == (1001,)
    assert schedule.alpha_bar.dtype == schedule.betas.dtype == torch.float64
    assert schedule.alpha_bar[0] == 1.0 and schedule.betas[0] == 0.0
    assert bool((schedule.alpha_bar[1:] < schedule.alpha_bar[:-1]).all())
    # ᾱ is the cumulative product of the clipped (1 − β)
    torch.testing.assert_close(schedule.alpha_bar[1:], torch.cumprod(1.0 - schedule.betas[1:], 0), rtol=1e-12, atol=0)


def test_reference_values(schedule: NoiseSchedule) -> None:
    assert schedule.betas[1].item() == pytest.approx(4.13e-5, rel=2e-3)
    assert schedule.betas[1000].item() == 0.999
    assert int((schedule.betas >= 0.999).sum()) == 1  # only the last β is clipped
    assert schedule.alpha_bar[1000].item() == pytest.approx(2.4e-9, rel=2e-2)
    # the unclipped cosine at t = 500
    s = 0.008
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2
    assert schedule.alpha_bar[500].item() == pytest.approx(f(500) / f(0), rel=1e-12)


def test_loss_weight(schedule: NoiseSchedule) -> None:
    t = torch.tensor([1, 2, 5, 10, 50, 100, 500, 1000])
    w = schedule.loss_weight(t)
    assert w.dtype == torch.float64 and w.shape == (8,)
    assert w[0].item() == pytest.approx(1.0, abs=1e-12)
    expected = {2: 0.48, 5: 0.17, 10: 0.075, 50: 0.015, 100: 0.0114}
    for i, ti in enumerate(t.tolist()):
        if ti in expected:
            assert w[i].item() == pytest.approx(expected[ti], rel=2e-2), ti
    assert w[-2].item() == pytest.approx(0.010, abs=1e-4) and w[-1].item() == pytest.approx(0.01, abs=1e-9)


def test_q_sample_statistics(schedule: NoiseSchedule) -> None:
    generator = torch.Generator().manual_seed(0)
    n, d = 100_000, 4
    x0 = torch.tensor([1.0, -2.0, 0.5, 3.0]).expand(n, d)
    for t_value in (1, 300, 900):
        t = torch.full((n,), t_value)
        noise = torch.randn(n, d, generator=generator)
        x_t = schedule.q_sample(x0, t, noise)
        assert x_t.dtype == torch.float32 and x_t.shape == (n, d)
        ab = schedule.alpha_bar[t_value].item()
        torch.testing.assert_close(x_t.mean(0), math.sqrt(ab) * x0[0], atol=0.02, rtol=0)
        torch.testing.assert_close(x_t.var(0), torch.full((d,), 1.0 - ab), atol=0.02, rtol=0)


def test_q_sample_per_row_timesteps(schedule: NoiseSchedule) -> None:
    x0 = torch.randn(3, 5, 7, dtype=torch.float64)
    noise = torch.randn(3, 5, 7, dtype=torch.float64)
    t = torch.tensor([1, 500, 1000])
    x_t = schedule.q_sample(x0, t, noise)
    for i, ti in enumerate(t.tolist()):
        ab = schedule.alpha_bar[ti]
        torch.testing.assert_close(x_t[i], ab.sqrt() * x0[i] + (1 - ab).sqrt() * noise[i])
