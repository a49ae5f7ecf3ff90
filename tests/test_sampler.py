"""The sampler's pieces: timestep plans, step rules, log-probabilities, window stitching and the SO(3) projection.

Whole rollouts and log-probability recomputation (`DiffusionPolicy`) are tested in test_policy.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import norm

from egogrpo.config import SamplerConfig
from egogrpo.geometry import nearest_rotation
from egogrpo.geometry.so3 import matrix_from_axis_angle
from egogrpo.model.sampler import (
    body_rotation_projection,
    predict_x0_stitched,
    quadratic_timesteps,
    step_coefficients,
    stitch_weights,
    strided_timesteps,
    timestep_plan,
    transition_log_prob,
    transition_mean,
    window_starts,
)
from egogrpo.model.schedule import NoiseSchedule

EGOALLO = SamplerConfig()
DDIM = SamplerConfig(rule="ddim", num_steps=10, eta=1.0)
NUM_BETAS = 10
D = NUM_BETAS + 21 * 9 + 21  # the state without hands
C = 6


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.cosine()


class FrameLocal:
    """A stub denoiser that maps every frame on its own (a fixed random linear map, scaled by t)."""

    def __init__(self, seed: int = 0, d: int = D, c: int = C) -> None:
        g = torch.Generator().manual_seed(seed)
        self.wx = torch.randn(d, d, generator=g) * 0.1
        self.wc = torch.randn(c, d, generator=g)
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.calls.append(tuple(x.shape))
        assert t.shape == x.shape[:1] and t.dtype == torch.long
        return torch.tanh(x @ self.wx + cond @ self.wc) * (1.0 + t[:, None, None] / 1000.0)


def window_mixing(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """A stub denoiser whose output depends on the whole window (not frame-local)."""
    return x.mean(dim=1, keepdim=True) + 0.5 * x + cond.sum(-1, keepdim=True) * 1e-2


# --- timestep plans ---------------------------------------------------------------------------------


def test_plans() -> None:
    plan = quadratic_timesteps(1000)
    assert plan == [1000, *[k * k for k in range(29, -1, -1)]]
    assert len(plan) == 31 and plan[:4] == [1000, 841, 784, 729] and plan[-4:] == [9, 4, 1, 0]
    assert timestep_plan(EGOALLO) == plan
    strided = strided_timesteps(10)
    assert strided == [1000, 900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    s30 = timestep_plan(SamplerConfig(rule="ddim", num_steps=30))
    assert len(s30) == 31 and s30[0] == 1000 and s30[-1] == 0 and all(a > b for a, b in itertools.pairwise(s30))


# --- step rules -------------------------------------------------------------------------------------


def test_egoallo_sigma_along_plan(schedule: NoiseSchedule) -> None:
    """σ and A/σ along the quadratic plan (reference/grpo-for-diffusion.md §3, egoallo.md §5)."""
    std = {
        t: float(step_coefficients(schedule, EGOALLO, t, p).std) for t, p in itertools.pairwise(quadratic_timesteps())
    }
    assert std[1000] == pytest.approx(0.7996, abs=1e-4)
    assert std[841] == pytest.approx(0.0883, abs=1e-4)
    assert std[441] == pytest.approx(0.041, abs=1e-3)
    assert std[100] == pytest.approx(0.0182, abs=1e-4)
    assert std[9] == pytest.approx(0.0066, abs=1e-4)
    assert std[4] == pytest.approx(0.0050, abs=1e-4)
    assert std[1] == 0.0
    for (t, p), ratio in {(841, 784): 1.18, (100, 81): 33.8, (9, 4): 145, (4, 1): 196}.items():
        c = step_coefficients(schedule, EGOALLO, t, p)
        assert float(c.a / c.std) == pytest.approx(ratio, rel=5e-3)
    # DDIM η = 1 column of the same table
    for (t, p), sigma in {
        (1000, 841): 0.9695,
        (841, 784): 0.6521,
        (100, 81): 0.0787,
        (9, 4): 0.0112,
        (4, 1): 0.0057,
    }.items():
        assert float(step_coefficients(schedule, DDIM, t, p).std) == pytest.approx(sigma, abs=1e-4)


def _numpy_egoallo_step(x_t, x0_hat, z, t, p, noise_scale=0.8, damping=0.1):
    """An independent float64 transcription of EgoAllo's update (reference/egoallo.md §5)."""
    s = 0.008
    steps = np.arange(1001, dtype=np.float64)
    f = np.cos((steps / 1000 + s) / (1 + s) * np.pi / 2) ** 2
    raw = f / f[0]
    betas = np.clip(1 - raw[1:] / raw[:-1], 0, 0.999)
    alpha_bar = np.concatenate([[1.0], np.cumprod(1 - betas)])
    beta_t = betas[t - 1]
    sigma = noise_scale * np.sqrt((1 - alpha_bar[t - 1]) / (1 - alpha_bar[t]) * beta_t) if p > 0 else 0.0
    eps = (x_t - np.sqrt(alpha_bar[t]) * x0_hat) / np.sqrt(1 - alpha_bar[t] + damping)
    return np.sqrt(alpha_bar[p]) * x0_hat + np.sqrt(1 - alpha_bar[p] - sigma**2) * eps + sigma * z


def _transition(x_t, x0_hat, z, t, p, schedule, config):
    """x_p = μ + σ·z as `DiffusionPolicy` takes it: the float64 coefficients (`step_coefficients`) in float32,
    the one mean formula (`transition_mean`)."""
    c = step_coefficients(schedule, config, t, p)
    mean = transition_mean(c.a.float(), c.b.float(), x_t, x0_hat)
    return mean + c.std.float() * z


def test_egoallo_step_matches_float64_numpy(schedule: NoiseSchedule) -> None:
    g = torch.Generator().manual_seed(1)
    plan = quadratic_timesteps()
    for t, p in itertools.pairwise(plan):
        x_t, x0_hat, z = (torch.randn(2, 16, 8, generator=g) for _ in range(3))
        x_prev = _transition(x_t, x0_hat, z, t, p, schedule, EGOALLO)
        expected = _numpy_egoallo_step(*(v.double().numpy() for v in (x_t, x0_hat, z)), t, p)
        np.testing.assert_allclose(x_prev.numpy(), expected, rtol=1e-5, atol=2e-6, err_msg=f"{t}→{p}")
        assert x_prev.dtype == torch.float32
        assert (float(step_coefficients(schedule, EGOALLO, t, p).std) > 0) == (p > 0)


def test_ddim_eta1_is_the_strided_ddpm_posterior(schedule: NoiseSchedule) -> None:
    ab = schedule.alpha_bar
    g = torch.Generator().manual_seed(2)
    pairs = [(1000, 900), (1000, 841), (841, 784), (500, 433), (100, 67), (33, 1), (10, 9), (2, 1), (5, 0)]
    for s, p in pairs:
        c = step_coefficients(schedule, DDIM, s, p)
        coef_x0 = ab[p].sqrt() * (1 - ab[s] / ab[p]) / (1 - ab[s])
        coef_xt = (ab[s] / ab[p]).sqrt() * (1 - ab[p]) / (1 - ab[s])
        var = (1 - ab[p]) / (1 - ab[s]) * (1 - ab[s] / ab[p])
        torch.testing.assert_close(c.a, coef_x0, rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(c.b, coef_xt, rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(c.std**2, var, rtol=1e-8, atol=1e-12)
        # and the float32 step mean against the float64 closed form
        x_t, x0_hat = torch.randn(3, 8, 5, generator=g), torch.randn(3, 8, 5, generator=g)
        mean = _transition(x_t, x0_hat, torch.zeros(3, 8, 5), s, p, schedule, DDIM)
        expected = coef_x0 * x0_hat.double() + coef_xt * x_t.double()
        torch.testing.assert_close(mean.double(), expected, rtol=1e-5, atol=1e-6)
    # p = s − 1 is ancestral DDPM
    for s in (2, 10, 500, 1000):
        c = step_coefficients(schedule, DDIM, s, s - 1)
        beta, ab_s, ab_p = schedule.betas[s], ab[s], ab[s - 1]
        torch.testing.assert_close(c.a, ab_p.sqrt() * beta / (1 - ab_s), rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(c.b, (1 - beta).sqrt() * (1 - ab_p) / (1 - ab_s), rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(c.std**2, beta * (1 - ab_p) / (1 - ab_s), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("config", [DDIM, SamplerConfig(rule="ddim", num_steps=10, eta=0.6), EGOALLO])
def test_noise_scale_scales_sigma_and_keeps_the_marginal(schedule: NoiseSchedule, config: SamplerConfig) -> None:
    """σ → s·σ, B = √max(0, 1−ᾱ_p−s²σ²)/denominator, A = √ᾱ_p − B·√ᾱ_s (float64, by hand)."""
    ab = schedule.alpha_bar.numpy()
    damping = config.egoallo_eps_damping if config.rule == "egoallo" else 0.0
    pairs = list(itertools.pairwise(timestep_plan(config)))[:-1]  # the stochastic transitions
    deterministic_ddim = SamplerConfig(rule="ddim", num_steps=config.num_steps, eta=0.0)
    for s, p in pairs:
        base = float(step_coefficients(schedule, config, s, p).std)
        assert base > 0
        for scale in (0.0, 0.3, 1.0, 1.7):
            c = step_coefficients(schedule, config, s, p, noise_scale=scale)
            sigma = scale * base
            b = np.sqrt(max(0.0, 1.0 - ab[p] - sigma**2)) / np.sqrt(1.0 - ab[s] + damping)
            assert float(c.std) == pytest.approx(sigma, rel=1e-12, abs=1e-15)
            assert float(c.b) == pytest.approx(b, rel=1e-7, abs=1e-12)
            assert float(c.a) == pytest.approx(np.sqrt(ab[p]) - b * np.sqrt(ab[s]), rel=1e-7, abs=1e-12)
            if config.rule == "ddim" and sigma**2 <= 1.0 - ab[p]:
                # the marginal of x_p given x₀ = x̂₀ is that of the forward process: N(√ᾱ_p·x₀, (1−ᾱ_p)·I)
                assert float(c.a + c.b * np.sqrt(ab[s])) == pytest.approx(np.sqrt(ab[p]), rel=1e-10)
                assert float(c.b**2 * (1 - ab[s]) + c.std**2) == pytest.approx(1.0 - ab[p], rel=1e-10)
            if scale == 0.0:
                assert float(c.std) == 0.0
                if config.rule == "ddim":
                    d = step_coefficients(schedule, deterministic_ddim, s, p)
                    assert float(c.b) == float(d.b) and float(c.a) == float(d.a)
    # a tensor of scales, one per transition (how an SDE window is built)
    t = torch.tensor([s for s, _ in pairs])
    t_prev = torch.tensor([p for _, p in pairs])
    scales = torch.rand(len(pairs), generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    batched = step_coefficients(schedule, config, t, t_prev, scales)
    for k, (s, p) in enumerate(pairs):
        one = step_coefficients(schedule, config, s, p, noise_scale=float(scales[k]))
        for name in ("a", "b", "std"):
            torch.testing.assert_close(getattr(batched, name)[k], getattr(one, name), rtol=1e-14, atol=0)
    # the last transition stays deterministic whatever the scale
    assert float(step_coefficients(schedule, config, 1, 0, noise_scale=2.0).std) == 0.0


def test_final_and_deterministic_steps(schedule: NoiseSchedule) -> None:
    """The last transition (to t = 0) returns x̂₀ with σ = 0 whatever the rule; DDIM η = 0 is deterministic."""
    x_t, x0_hat = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    for config in (EGOALLO, DDIM):
        c = step_coefficients(schedule, config, 1, 0)
        assert float(c.std) == 0.0
        assert torch.equal(transition_mean(c.a.float(), c.b.float(), x_t, x0_hat), x0_hat)
    assert float(step_coefficients(schedule, SamplerConfig(rule="ddim", eta=0.0), 500, 400).std) == 0.0
    assert float(step_coefficients(schedule, EGOALLO, 500, 400).std) > 0.0


# --- log-probabilities ------------------------------------------------------------------------------


def test_log_prob_against_scipy() -> None:
    g = torch.Generator().manual_seed(3)
    x, mean = torch.randn(3, 5, 7, 4, generator=g), torch.randn(3, 5, 7, 4, generator=g)
    std = torch.rand(3, 5, generator=g) + 0.05
    lp = transition_log_prob(x, mean, std)
    expected = norm.logpdf(x.numpy(), mean.numpy(), std.numpy()[..., None, None]).mean(axis=(-2, -1))
    assert lp.shape == (3, 5) and lp.dtype == torch.float32
    np.testing.assert_allclose(lp.numpy(), expected, rtol=1e-5, atol=1e-5)
    # a scalar std
    lp = transition_log_prob(x, mean, 0.3)
    np.testing.assert_allclose(lp.numpy(), norm.logpdf(x.numpy(), mean.numpy(), 0.3).mean(axis=(-2, -1)), rtol=1e-5)


def test_log_prob_dim_weights() -> None:
    """dim_weights: ones give the plain per-dimension mean; otherwise Σ w·z²/(Σw·L) replaces the mean of z²."""
    g = torch.Generator().manual_seed(13)
    x, mean = torch.randn(3, 7, 5, generator=g), torch.randn(3, 7, 5, generator=g)
    std = torch.rand(3, generator=g) + 0.05
    plain = transition_log_prob(x, mean, std)
    torch.testing.assert_close(transition_log_prob(x, mean, std, torch.ones(5)), plain, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(transition_log_prob(x, mean, std, torch.full((5,), 3.0)), plain, rtol=1e-6, atol=1e-6)
    w = torch.tensor([0.0, 2.0, 0.0, 1.0, 0.5])
    z2 = ((x.double() - mean.double()) / std.double()[:, None, None]) ** 2
    expected = (
        -0.5 * (z2 * w.double()).sum((-2, -1)) / (w.sum().double() * 7) - std.double().log() - 0.5 * np.log(2 * np.pi)
    )
    torch.testing.assert_close(transition_log_prob(x, mean, std, w).double(), expected, rtol=1e-6, atol=1e-6)


# --- windows ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["aligned", "egoallo"])
@pytest.mark.parametrize("length", [1, 50, 96, 97, 127, 128, 129, 200, 224, 225, 300, 321, 1000])
def test_window_layout_and_weights(length: int, rule: str) -> None:
    window, overlap = 128, 32
    starts = window_starts(length, window, overlap, rule)
    w = min(window, length)
    assert starts[0] == 0 and max(min(s + w, length) for s in starts) == length
    assert all(b - a <= window - overlap for a, b in itertools.pairwise(starts))  # every overlap ≥ 32 frames
    if rule == "aligned":
        assert starts[-1] + w == length  # every window is whole; the last one is aligned to the end
        assert all(s % (window - overlap) == 0 for s in starts[:-1])
    else:
        assert starts == list(range(0, length, 96))
    weights = stitch_weights(length, window, overlap, rule)
    assert weights.shape == (len(starts), w) and bool((weights >= 0).all())
    total = torch.zeros(length + w)
    for k, s in enumerate(starts):
        total[s : s + w] += weights[k]
        assert bool((weights[k, : min(w, length - s)] > 0).all()) and bool((weights[k, length - s :] == 0).all())
    torch.testing.assert_close(total[:length], torch.ones(length), rtol=0, atol=1e-6)


def test_egoallo_window_rule_by_hand() -> None:
    # EgoAllo's loop: starts range(0, L, 96), each window cut at the sequence end.
    assert window_starts(128, 128, 32, "egoallo") == [0, 96]  # [0, 128) and a short [96, 128)
    assert window_starts(200, 128, 32, "egoallo") == [0, 96, 192]  # [0, 128), [96, 200), [192, 200)
    assert window_starts(96, 128, 32, "egoallo") == [0] and window_starts(97, 128, 32, "egoallo") == [0, 96]
    assert window_starts(128, 128, 32, "aligned") == [0] and window_starts(200, 128, 32, "aligned") == [0, 72]
    w = stitch_weights(128, 128, 32, "egoallo").double()
    # Frame 127: the long window's trapezoid is min(32, 128, 128 − 127)/32 = 1/32, the short window's
    # prefix at its frame 31 is min(32, 32, 128 − 31)/32 = 1: the short window takes 1/(1 + 1/32) = 32/33.
    assert abs(float(w[1, 31]) - 32 / 33) < 1e-7 and abs(float(w[0, 127]) - 1 / 33) < 1e-7
    # Frame 96: the long window weighs min(32, 97, 32)/32 = 1, the short one (its frame 0) 1/32: share 1/33.
    assert abs(float(w[1, 0]) - 1 / 33) < 1e-7 and abs(float(w[0, 96]) - 32 / 33) < 1e-7
    assert bool((w[1, 32:] == 0).all()) and bool((w[0, :96] == 1).all())
    with pytest.raises(Exception, match="window_rule"):
        window_starts(128, 128, 32, "nope")


def _egoallo_stitching_reference(denoiser, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> np.ndarray:
    """EgoAllo's stitching as reference/egoallo.md §4 describes it, in float64, with its own window layout.

    Windows start at range(0, L, 96) and end at min(start + 128, L); window frame i takes weight
    g(i) = min(32, i + 1, L − i)/32 (the prefix of the whole-sequence trapezoid); weighted sums divided by
    the summed weights.
    """
    L = x.shape[1]
    g = np.minimum(32.0, np.minimum(np.arange(L) + 1.0, L - np.arange(L))) / 32.0
    out, total = np.zeros((x.shape[0], L, x.shape[2])), np.zeros(L)
    for start in range(0, L, 96):
        end = min(start + 128, L)
        pred = denoiser(x[:, start:end].double(), t, cond[:, start:end].double()).double().numpy()
        out[:, start:end] += pred * g[: end - start, None]
        total[start:end] += g[: end - start]
    return out / total[:, None]


@pytest.mark.parametrize("length", [97, 128, 129, 200, 225, 321])
def test_egoallo_window_rule_matches_egoallo_loop(length: int) -> None:
    g = torch.Generator().manual_seed(4)
    x, cond = torch.randn(2, length, 5, generator=g), torch.randn(2, length, 3, generator=g)
    t = torch.tensor([400, 17])
    stitched = predict_x0_stitched(window_mixing, x, t, cond, 128, 32, rule="egoallo")
    expected = _egoallo_stitching_reference(window_mixing, x, t, cond)
    np.testing.assert_allclose(stitched.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    if length in (128, 200):  # the cut tail windows change the result: the aligned rule differs
        aligned = predict_x0_stitched(window_mixing, x, t, cond, 128, 32, rule="aligned")
        assert float((aligned.double() - torch.from_numpy(expected)).abs().max()) > 1e-3


def test_egoallo_window_rule_calls_the_denoiser_once_per_window_length() -> None:
    denoiser = FrameLocal()
    g = torch.Generator().manual_seed(5)
    x, cond = torch.randn(3, 200, D, generator=g), torch.randn(3, 200, C, generator=g)
    stitched = predict_x0_stitched(denoiser, x, 300, cond, 128, 32, rule="egoallo")
    assert denoiser.calls == [(3, 128, D), (3, 104, D), (3, 8, D)]  # [0, 128), [96, 200), [192, 200)
    torch.testing.assert_close(stitched, denoiser(x, torch.full((3,), 300), cond), rtol=0, atol=1e-6)


def test_policy_runs_the_window_rule_of_its_config() -> None:
    from egogrpo.model.policy import DiffusionPolicy

    denoiser = FrameLocal()
    policy = DiffusionPolicy(NoiseSchedule.cosine(), SamplerConfig(rule="ddim", num_steps=2, window_rule="egoallo"))
    cond = torch.randn(2, 128, C, generator=torch.Generator().manual_seed(1))
    policy.sample(denoiser, cond, D, seed=0)
    assert denoiser.calls == [(2, 128, D), (2, 32, D)] * 2


@pytest.mark.parametrize("length", [129, 200, 300, 1000])
def test_stitching_a_frame_local_denoiser_is_seamless(length: int) -> None:
    denoiser = FrameLocal()
    g = torch.Generator().manual_seed(5)
    x, cond = torch.randn(3, length, D, generator=g), torch.randn(3, length, C, generator=g)
    stitched = predict_x0_stitched(denoiser, x, 300, cond, 128, 32)
    assert len(denoiser.calls) == 1  # all windows of all sequences in one call
    assert denoiser.calls[0] == (3 * len(window_starts(length, 128, 32)), 128, D)
    whole = denoiser(x, torch.full((3,), 300), cond)
    torch.testing.assert_close(stitched, whole, rtol=0, atol=1e-6)
    single = window_starts(length, 128, 32)[1]  # frames before the second window are seen by one window only
    assert torch.equal(stitched[:, :single], whole[:, :single])


@pytest.mark.parametrize("length", [1, 37, 128])
def test_short_sequences_are_one_window(length: int) -> None:
    g = torch.Generator().manual_seed(6)
    x, cond = torch.randn(2, length, 5, generator=g), torch.randn(2, length, 3, generator=g)
    stitched = predict_x0_stitched(window_mixing, x, 100, cond, 128, 32)
    assert torch.equal(stitched, window_mixing(x, torch.full((2,), 100), cond))


def test_body_projection() -> None:
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 7, D, generator=g)
    projected = body_rotation_projection(NUM_BETAS)(x)
    body = x[..., NUM_BETAS : NUM_BETAS + 189].unflatten(-1, (21, 3, 3))
    assert torch.equal(
        projected[..., NUM_BETAS : NUM_BETAS + 189], nearest_rotation(body, fix_reflection=False).flatten(-3)
    )
    assert torch.equal(projected[..., :NUM_BETAS], x[..., :NUM_BETAS])
    assert torch.equal(projected[..., NUM_BETAS + 189 :], x[..., NUM_BETAS + 189 :])


def test_projection_gradient_is_finite_at_rotations() -> None:
    """At a rotation all singular values are 1: a plain SVD backward divides by σᵢ² − σⱼ² = 0, ours does not."""
    rotations = matrix_from_axis_angle(torch.randn(64, 3, generator=torch.Generator().manual_seed(9)))
    upstream = torch.randn(64, 3, 3, generator=torch.Generator().manual_seed(10))

    def plain_svd_projection(m: torch.Tensor) -> torch.Tensor:
        u, _, vh = torch.linalg.svd(m)
        return u @ vh

    m = rotations.clone().requires_grad_()
    (plain_svd_projection(m) * upstream).sum().backward()
    assert bool(torch.isnan(m.grad).any())  # the failure nearest_rotation exists to avoid
    for fix in (False, True):
        m = rotations.clone().requires_grad_()
        projected = nearest_rotation(m, fix_reflection=fix)
        torch.testing.assert_close(projected, rotations, rtol=0, atol=1e-5)
        (projected * upstream).sum().backward()
        assert bool(torch.isfinite(m.grad).all())
    generic = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    for fix in (False, True):
        assert torch.autograd.gradcheck(lambda a, fix=fix: nearest_rotation(a, fix), (generic,))


def test_nearest_rotation_reflection_fix() -> None:
    """The default (fix_reflection=True) always returns det = +1; EgoAllo's (False) keeps a reflection."""
    g = torch.Generator().manual_seed(11)
    m = torch.randn(256, 3, 3, generator=g)
    fixed, plain = nearest_rotation(m), nearest_rotation(m, fix_reflection=False)
    eye = torch.eye(3).expand_as(m)
    for r in (fixed, plain):
        torch.testing.assert_close(r @ r.mT, eye, rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.linalg.det(fixed), torch.ones(256), rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.linalg.det(plain), torch.sign(torch.linalg.det(m)), rtol=0, atol=1e-5)
    positive = torch.linalg.det(m) > 0
    assert 0 < int(positive.sum()) < 256
    torch.testing.assert_close(fixed[positive], plain[positive], rtol=0, atol=1e-6)
