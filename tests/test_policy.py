"""The sampler as a GRPO policy (`DiffusionPolicy`): rollouts, stored transitions, log-probability recomputation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm
from test_sampler import NUM_BETAS, C, D, FrameLocal, window_mixing

from egogrpo.config import SamplerConfig
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_from_axis_angle, quat_multiply
from egogrpo.model import noise
from egogrpo.model.checkpoint import load_checkpoint, resolve_checkpoint
from egogrpo.model.conditioning import cpf_conditioning_from_trajectory, d_cond
from egogrpo.model.policy import DiffusionPolicy, Rollout, RolloutIds, Transitions
from egogrpo.model.sampler import (
    body_rotation_projection,
    predict_x0_stitched,
    quadratic_timesteps,
    step_coefficients,
    transition_log_prob,
)
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import packed_dim

EGOALLO = SamplerConfig()
K = 30  # transitions of the EgoAllo plan
PROJECT = body_rotation_projection(NUM_BETAS)


@pytest.fixture(scope="module")
def schedule() -> NoiseSchedule:
    return NoiseSchedule.cosine()


@pytest.fixture(scope="module")
def policy(schedule: NoiseSchedule) -> DiffusionPolicy:
    """EgoAllo's sampler without the SO(3) projection (the projection's SVDs dominate a stub rollout's time)."""
    return DiffusionPolicy(schedule, EGOALLO)


@pytest.fixture(scope="module")
def projected(schedule: NoiseSchedule) -> DiffusionPolicy:
    """EgoAllo's sampler as trained: x̂₀'s body rotations projected onto SO(3)."""
    return DiffusionPolicy(schedule, EGOALLO, project=PROJECT)


def _cond(B: int = 2, G: int = 3, L: int = 40, seed: int = 12) -> torch.Tensor:
    """A different random condition for every member: (B, G, L, C)."""
    return torch.randn(B, G, L, C, generator=torch.Generator().manual_seed(seed))


def _rollout(policy: DiffusionPolicy, cond: torch.Tensor, denoiser=None, seed: int = 10, iteration: int = 0, **kw):
    B, G = cond.shape[:2]
    ids = RolloutIds.grid(seed, iteration, B, G, kw.pop("share_initial", True))
    return policy.rollout(denoiser or FrameLocal(), cond, ids, D, **kw)


def _all_transitions(policy: DiffusionPolicy, rollout: Rollout) -> Transitions:
    """Every (row, MDP position) of a rollout, row-major."""
    rows, M = rollout.log_probs.shape[0] * rollout.log_probs.shape[1], len(rollout.mdp_steps)
    return policy.transitions(rollout, torch.arange(rows).repeat_interleave(M), torch.arange(M).repeat(rows))


def _x0_hat(denoiser, x_t: torch.Tensor, t: int, cond: torch.Tensor, project=PROJECT) -> torch.Tensor:
    """The stitched, projected x̂₀ of (B, G, L, D) latents at timestep t."""
    B, G, L, _ = x_t.shape
    rows = predict_x0_stitched(denoiser, x_t.reshape(B * G, L, D), t, cond.reshape(B * G, L, -1), 128, 32, project)
    return rows.reshape(B, G, L, D)


def _coefficients(schedule: NoiseSchedule, config: SamplerConfig, k: int) -> tuple[float, float, float]:
    """A, B, σ of transition k of the EgoAllo plan, from the float64 schedule, rounded to float32."""
    plan = quadratic_timesteps()
    c = step_coefficients(schedule, config, plan[k], plan[k + 1])
    return tuple(torch.tensor([float(c.a), float(c.b), float(c.std)], dtype=torch.float32))


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]).double())[0, 1])


# --- rollouts ---------------------------------------------------------------------------------------


def test_rollout_shapes_and_mdp(projected: DiffusionPolicy, schedule: NoiseSchedule) -> None:
    policy, cond = projected, _cond(L=64)
    rollout = _rollout(policy, cond)
    assert policy.mdp_steps == tuple(range(29)) and rollout.mdp_steps == policy.mdp_steps
    assert rollout.timesteps == tuple(quadratic_timesteps()) and policy.num_transitions == K
    assert rollout.latent_positions == tuple(range(K + 1))  # every MDP step, its successor, and the final
    assert rollout.latents.shape == (2, 3, K + 1, 64, D)
    assert rollout.log_probs.shape == (2, 3, 29) and rollout.log_probs.dtype == torch.float32
    assert rollout.x0_hat_last.shape == (2, 3, 3, 64, D)
    assert torch.equal(rollout.x0_hat_last[:, :, -1], rollout.final)  # the last transition returns x̂₀
    assert torch.equal(rollout.final, rollout.latent(K))
    assert torch.equal(rollout.cond, cond)  # the condition each member saw
    assert not rollout.latents.requires_grad
    # the final sample is a projected x̂₀: its body matrices are orthogonal
    body = rollout.final[..., NUM_BETAS : NUM_BETAS + 189].unflatten(-1, (21, 3, 3))
    torch.testing.assert_close(body @ body.mT, torch.eye(3).expand_as(body), rtol=0, atol=1e-5)

    bare = _rollout(policy, cond, record=False)
    assert bare.latent_positions == (K,) and bare.x0_hat_last is None
    assert torch.equal(bare.final, rollout.final)  # recording changes nothing

    ddim = DiffusionPolicy(schedule, SamplerConfig(rule="ddim", num_steps=10))
    r = _rollout(ddim, cond[..., :40, :])
    assert ddim.mdp_steps == tuple(range(9)) and r.log_probs.shape == (2, 3, 9)
    assert r.latent_positions == tuple(range(11)) and r.latents.shape == (2, 3, 11, 40, D)

    eta0 = DiffusionPolicy(schedule, SamplerConfig(rule="ddim", num_steps=5, eta=0.0))
    r = _rollout(eta0, cond[..., :40, :])
    assert eta0.mdp_steps == () and r.log_probs.shape == (2, 3, 0) and r.latent_positions == (5,)
    with pytest.raises(EgogrpoError, match="no stochastic transition"):
        eta0.transitions(r, torch.tensor([0]), torch.tensor([0]))


def test_each_latent_stored_once_and_the_noise_keys(projected: DiffusionPolicy, schedule: NoiseSchedule) -> None:
    """latent(k+1) is what transition k produced: mean(latent(k)) + σ·z with z keyed (seed, STEP, it, group, member, k)."""
    policy, (B, G, L, seed, iteration) = projected, (2, 3, 40, 21, 4)
    cond, denoiser = _cond(B, G, L), FrameLocal()
    ids = RolloutIds(seed, iteration, torch.tensor([5, 2]), torch.tensor([[0, 1, 2], [3, 7, 1]]))
    rollout = policy.rollout(denoiser, cond, ids, D)
    groups, members = ids.group_ids[:, None], ids.member_ids
    x_T = noise.normal(noise.stream_key(seed, noise.PURPOSE_INITIAL, iteration, groups, 0), (L, D))
    assert torch.equal(rollout.latent(0), x_T.expand(B, G, L, D))
    plan = quadratic_timesteps()
    for k in range(K):
        a, b, sigma = _coefficients(schedule, EGOALLO, k)
        torch.testing.assert_close(policy.table[k], torch.stack([a, b, sigma]), rtol=0, atol=0)
        x_t = rollout.latent(k)
        mean = a * _x0_hat(denoiser, x_t, plan[k], cond) + b * x_t
        if k < K - 1:
            z = noise.normal(noise.stream_key(seed, noise.PURPOSE_STEP, iteration, groups, members, k), (L, D))
            assert torch.equal(rollout.latent(k + 1), mean + sigma * z), k
            assert torch.equal(rollout.log_probs[..., k], transition_log_prob(rollout.latent(k + 1), mean, sigma))
        else:
            assert float(sigma) == 0.0 and torch.equal(rollout.final, mean)
    # transitions() addresses the stored latents by flat row b·G + g and MDP position
    rows, positions = torch.tensor([4, 0, 5, 1]), torch.tensor([28, 3, 0, 17])
    batch = policy.transitions(rollout, rows, positions)
    assert len(batch) == 4 and batch.step.tolist() == [28, 3, 0, 17] and batch.row.tolist() == rows.tolist()
    for n, (r, p) in enumerate(zip(rows.tolist(), positions.tolist(), strict=True)):
        bi, gi = divmod(r, G)
        assert torch.equal(batch.x_t[n], rollout.latent(p)[bi, gi])
        assert torch.equal(batch.x_prev[n], rollout.latent(p + 1)[bi, gi])
        assert torch.equal(batch.cond[n], cond[bi, gi])
        assert batch.old_log_prob[n] == rollout.log_probs[bi, gi, p]
    sub = batch.select(torch.tensor([2, 0]))
    assert sub.step.tolist() == [0, 28] and torch.equal(sub.x_t[1], batch.x_t[0])


def _synthetic_cpf_trajectories(n: int, frames: int, seed: int) -> torch.Tensor:
    """n smooth head trajectories (wxyz_xyz, z up) of frames + 1 poses: walking, turning, nodding."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(frames + 1, dtype=torch.float32) / 30.0
    speed, turn, nod = (torch.rand(n, 1, generator=g) for _ in range(3))
    yaw = turn * t + torch.rand(n, 1, generator=g) * 6.0
    pitch = 0.2 * nod * torch.sin(2.0 * t)
    heading = torch.stack([torch.cos(yaw), torch.sin(yaw), torch.zeros_like(yaw)], dim=-1)
    position = torch.cumsum(heading * (0.5 + speed)[..., None] / 30.0, dim=1)
    position[..., 2] = 1.6 + 0.02 * torch.sin(6.0 * t)
    # the CPF looks along +z: a z-up yaw, then the camera's +z tilted to the horizontal forward direction
    q_yaw = quat_from_axis_angle(torch.stack([torch.zeros_like(yaw), torch.zeros_like(yaw), yaw], dim=-1))
    q_forward = quat_from_axis_angle(torch.tensor([0.0, math.pi / 2, 0.0]).expand(n, frames + 1, 3))
    q_pitch = quat_from_axis_angle(torch.stack([pitch, torch.zeros_like(pitch), torch.zeros_like(pitch)], dim=-1))
    q = quat_multiply(quat_multiply(q_yaw, q_forward), q_pitch)
    return torch.cat([q, position], dim=-1)


def test_ratio_is_one_with_the_real_denoiser_in_another_layout_under_autocast(schedule: NoiseSchedule) -> None:
    """THE key property: recomputing stored log-probs with π_old gives ρ = 1 (|log ρ| ≤ 1e-6), even when the
    caller asks for bf16 autocast and the transitions come in another batch layout (shuffled, mixed steps)."""
    model, config, _ = load_checkpoint(resolve_checkpoint("default"))
    state_dim = packed_dim(config.num_betas, config.include_hands)
    B, G, L = 2, 3, 128
    trajectories = _synthetic_cpf_trajectories(B * G, L, seed=3)
    cond = cpf_conditioning_from_trajectory(trajectories, 0.0, config=config).reshape(B, G, L, -1)
    assert cond.shape[-1] == d_cond(config) and bool(torch.isfinite(cond).all())
    policy = DiffusionPolicy(schedule, EGOALLO, project=body_rotation_projection(config.num_betas))
    rollout = policy.rollout(model, cond, RolloutIds.grid(7, 0, B, G), state_dim)
    assert bool(torch.isfinite(rollout.log_probs).all())

    g = torch.Generator().manual_seed(0)
    positions = torch.cat([torch.tensor([28, 27, 0, 14]), torch.randint(0, 29, (6,), generator=g)])
    rows = torch.randint(0, B * G, (10,), generator=g)
    order = torch.randperm(10, generator=g)
    batch = policy.transitions(rollout, rows[order], positions[order])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        log_prob, mean = policy.log_prob_and_mean(model, batch)
        # the same maths without disabling autocast: the denoiser then runs in bf16
        x0_bf16 = predict_x0_stitched(model, batch.x_t, policy.t[batch.step], batch.cond, 128, 32, policy.project)
    assert log_prob.dtype == torch.float32 and mean.dtype == torch.float32
    torch.testing.assert_close(log_prob, batch.old_log_prob, atol=1e-6, rtol=0)

    table = policy.table[batch.step]
    mean_bf16 = table[:, 0, None, None] * x0_bf16.float() + table[:, 1, None, None] * batch.x_t
    log_prob_bf16 = transition_log_prob(batch.x_prev, mean_bf16, table[:, 2])
    late = batch.step == 28  # 4 → 1, where A/σ ≈ 196
    assert bool(late.any())
    assert float((log_prob_bf16 - batch.old_log_prob)[late].abs().max()) > 1e-3


def test_per_member_conditions_and_layout_invariance(policy: DiffusionPolicy) -> None:
    cond = _cond(L=140)
    full = _rollout(policy, cond, seed=5, iteration=2)
    # a member's rollout depends on its own condition only
    changed = cond.clone()
    changed[0, 1] = torch.randn(140, C, generator=torch.Generator().manual_seed(99))
    other = _rollout(policy, changed, seed=5, iteration=2)
    assert not torch.allclose(other.final[0, 1], full.final[0, 1], atol=1e-3)
    keep = [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2)]
    for b, g in keep:
        assert torch.equal(other.latents[b, g], full.latents[b, g])
    # a sub-batch: group 1 alone with members (2, 0), in that order
    ids = RolloutIds(5, 2, torch.tensor([1]), torch.tensor([[2, 0]]))
    sub = policy.rollout(FrameLocal(), cond[1:2, [2, 0]], ids, D)
    for name in ("latents", "log_probs", "x0_hat_last"):
        torch.testing.assert_close(getattr(sub, name), getattr(full, name)[1:2, [2, 0]], atol=1e-5, rtol=0)
    # the training layout: one row per (group, member), G = 1 (as train/grpo.py lays out each process's rows)
    flat = torch.arange(6)
    ids = RolloutIds(5, 2, flat // 3, (flat % 3)[:, None])
    rows = policy.rollout(FrameLocal(), cond.reshape(6, 1, 140, C), ids, D)
    for name in ("latents", "log_probs", "x0_hat_last"):
        torch.testing.assert_close(getattr(rows, name), getattr(full, name).flatten(0, 1)[:, None], atol=1e-5, rtol=0)


def test_initial_noise_sharing_seeds_and_reproducibility(policy: DiffusionPolicy) -> None:
    cond = _cond(L=40)
    shared = _rollout(policy, cond)
    x_T = shared.latent(0)
    assert torch.equal(x_T[:, 0], x_T[:, 1]) and torch.equal(x_T[:, 0], x_T[:, 2])
    assert abs(_correlation(x_T[0, 0], x_T[1, 0])) < 0.05  # groups do not share
    batch = _all_transitions(policy, shared)
    _, mean = policy.log_prob_and_mean(FrameLocal(), batch)
    step_noise = ((batch.x_prev - mean) / policy.step_std(batch.step)[:, None, None]).reshape(2, 3, 29, 40, D)
    for g1, g2 in ((0, 1), (0, 2), (1, 2)):  # each member draws its own step noise
        assert abs(_correlation(step_noise[:, g1, 0], step_noise[:, g2, 0])) < 0.05
        assert abs(_correlation(step_noise[:, g1, 28], step_noise[:, g2, 28])) < 0.05
    assert abs(_correlation(step_noise[:, :, 0], step_noise[:, :, 1])) < 0.05  # and each step its own

    independent = _rollout(policy, cond, share_initial=False)
    x_T = independent.latent(0)
    for g1, g2 in ((0, 1), (0, 2), (1, 2)):
        assert abs(_correlation(x_T[:, g1], x_T[:, g2])) < 0.05
    for b in range(2):
        assert abs(_correlation(x_T[b, 0], shared.latent(0)[b, 0])) < 0.05

    again = _rollout(policy, cond)
    assert torch.equal(again.latents, shared.latents) and torch.equal(again.log_probs, shared.log_probs)
    for kwargs in ({"seed": 11}, {"iteration": 1}):
        other = _rollout(policy, cond, **kwargs)
        assert abs(_correlation(other.latent(0), shared.latent(0))) < 0.05, kwargs
        assert not torch.allclose(other.final, shared.final, atol=1e-3), kwargs


def test_sde_window(schedule: NoiseSchedule) -> None:
    full = DiffusionPolicy(schedule, EGOALLO, project=PROJECT)
    window = DiffusionPolicy(schedule, SamplerConfig(stochastic_steps=(0, 3)), project=PROJECT)
    assert window.mdp_steps == (0, 1, 2)
    assert bool((window.table[:3, 2] > 0).all()) and bool((window.table[3:, 2] == 0).all())
    torch.testing.assert_close(window.table[:3], full.table[:3], rtol=0, atol=0)
    cond, denoiser = _cond(), FrameLocal()
    rollout = _rollout(window, cond, denoiser)
    assert rollout.log_probs.shape == (2, 3, 3) and rollout.latent_positions == (0, 1, 2, 3, K)
    # outside the window the sampler is deterministic DDIM-like (σ = 0): the final follows from latent(3)
    plan = quadratic_timesteps()
    x = rollout.latent(3)
    for k in range(3, K):
        a, b, sigma = window.table[k]
        assert float(sigma) == 0.0
        x = a * _x0_hat(denoiser, x, plan[k], cond) + b * x
    assert torch.equal(x, rollout.final)
    # B of a deterministic transition is √(1 − ᾱ_p)/√(1 − ᾱ_s + 0.1): the marginal-keeping zero-noise mean
    ab = schedule.alpha_bar
    for k in range(3, K - 1):
        s, p = plan[k], plan[k + 1]
        expected_b = ((1 - ab[p]) / (1 - ab[s] + EGOALLO.egoallo_eps_damping)).sqrt()
        torch.testing.assert_close(window.table[k, 1].double(), expected_b, rtol=1e-6, atol=0)
    # only the window is addressable, and a hand-built batch at a deterministic step is refused
    with pytest.raises(IndexError):
        window.transitions(rollout, torch.tensor([0]), torch.tensor([3]))
    batch = window.transitions(rollout, torch.tensor([0, 1]), torch.tensor([2, 0]))
    window.log_prob_and_mean(denoiser, batch)
    outside = Transitions(
        *(getattr(batch, f) for f in ("x_t", "x_prev", "cond")), torch.tensor([2, 5]), batch.row, batch.old_log_prob
    )
    with pytest.raises(ValueError, match="deterministic"):
        window.log_prob_and_mean(denoiser, outside)

    # a window in the middle: x_T is not stored, latent(10) is the deterministic image of x_T
    middle = DiffusionPolicy(schedule, SamplerConfig(stochastic_steps=(10, 12)), project=PROJECT)
    r = _rollout(middle, cond, denoiser)
    assert middle.mdp_steps == (10, 11) and r.latent_positions == (10, 11, 12, K)
    initial_keys = noise.stream_key(10, noise.PURPOSE_INITIAL, 0, torch.arange(2)[:, None], 0)
    x = noise.normal(initial_keys, (40, D)).expand(2, 3, 40, D)
    for k in range(10):
        a, b, _ = middle.table[k]
        x = a * _x0_hat(denoiser, x, plan[k], cond) + b * x
    assert torch.equal(x, r.latent(10))

    # the window that holds only the (always deterministic) last transition: no MDP at all
    assert DiffusionPolicy(schedule, SamplerConfig(stochastic_steps=(29, 30))).mdp_steps == ()
    assert DiffusionPolicy(schedule, SamplerConfig(stochastic_steps=(0, 30))).mdp_steps == full.mdp_steps
    for bad in ((3, 3), (5, 2), (0, 31), (-1, 3), (30, 31)):
        with pytest.raises(EgogrpoError, match="stochastic_steps"):
            DiffusionPolicy(schedule, SamplerConfig(stochastic_steps=bad))


# --- log-probabilities ------------------------------------------------------------------------------


def test_log_prob_equals_scipy(policy: DiffusionPolicy) -> None:
    denoiser = FrameLocal()
    rollout = _rollout(policy, _cond(), denoiser)
    batch = policy.transitions(rollout, torch.tensor([0, 5, 3, 2, 4]), torch.tensor([0, 28, 9, 27, 1]))
    log_prob, mean = policy.log_prob_and_mean(denoiser, batch)
    sigma = policy.step_std(batch.step)
    torch.testing.assert_close(sigma, policy.table[batch.step, 2], rtol=0, atol=0)
    expected = norm.logpdf(batch.x_prev.double().numpy(), mean.double().numpy(), sigma.double().numpy()[:, None, None])
    np.testing.assert_allclose(log_prob.numpy(), expected.mean(axis=(-2, -1)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(log_prob, batch.old_log_prob, rtol=0, atol=1e-6)  # ρ = 1 with the stub too


def test_log_prob_magnitudes_are_those_of_the_policy(policy: DiffusionPolicy) -> None:
    """At θ_old the residual (x_prev − μ)/σ is standard normal, so log π ≈ −½ − log σ − ½ log 2π."""
    rollout = _rollout(policy, _cond(G=2, L=64))
    sigma = policy.table[list(policy.mdp_steps), 2]
    expected = -0.5 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(rollout.log_probs, expected.expand_as(rollout.log_probs), rtol=0, atol=0.02)


def test_dim_weights(schedule: NoiseSchedule, policy: DiffusionPolicy) -> None:
    denoiser = FrameLocal()
    rollout = _rollout(policy, _cond(), denoiser)
    batch = policy.transitions(rollout, torch.tensor([1, 4, 0, 5]), torch.tensor([0, 28, 13, 27]))
    plain, mean = policy.log_prob_and_mean(denoiser, batch)

    ones = DiffusionPolicy(schedule, EGOALLO, dim_weights=torch.ones(D))
    torch.testing.assert_close(ones.log_prob_and_mean(denoiser, batch)[0], plain, rtol=1e-6, atol=1e-6)

    body = torch.zeros(D)
    body[NUM_BETAS : NUM_BETAS + 189] = 1.0  # the body rotations only
    weighted = DiffusionPolicy(schedule, EGOALLO, dim_weights=body)
    log_prob, weighted_mean = weighted.log_prob_and_mean(denoiser, batch)
    assert torch.equal(weighted_mean, mean)  # the weights change the density, not the policy
    sigma = policy.table[batch.step, 2].double()
    z = (batch.x_prev.double() - mean.double()) / sigma[:, None, None]
    selected = z[..., NUM_BETAS : NUM_BETAS + 189]
    expected = -0.5 * (selected**2).mean(dim=(-2, -1)) - sigma.log() - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(log_prob.double(), expected, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(log_prob, plain, atol=1e-4)

    # a rollout of the weighted policy stores weighted log-probs: recomputation gives ρ = 1 again
    r = _rollout(weighted, _cond(seed=13), denoiser)
    b = _all_transitions(weighted, r)
    again = weighted.log_prob_and_mean(denoiser, b)[0]
    torch.testing.assert_close(again, b.old_log_prob, rtol=0, atol=1e-6)
    unweighted = policy.log_prob_and_mean(denoiser, b)[0]
    assert not torch.allclose(unweighted, b.old_log_prob, atol=1e-4)


def test_log_probs_are_differentiable(policy: DiffusionPolicy) -> None:
    denoiser = FrameLocal()
    denoiser.wx.requires_grad_()
    rollout = _rollout(policy, _cond(G=2, L=40), denoiser)
    assert not rollout.latents.requires_grad and not rollout.log_probs.requires_grad
    batch = policy.transitions(rollout, torch.tensor([0, 3, 1]), torch.tensor([3, 27, 28]))
    log_prob, mean = policy.log_prob_and_mean(denoiser, batch)
    assert log_prob.requires_grad and mean.requires_grad
    log_prob.sum().backward()
    assert denoiser.wx.grad is not None and bool(torch.isfinite(denoiser.wx.grad).all())
    assert float(denoiser.wx.grad.abs().sum()) > 0
    with torch.no_grad():
        log_prob, mean = policy.log_prob_and_mean(denoiser, batch)
    assert log_prob.grad_fn is None and not log_prob.requires_grad and mean.grad_fn is None


def test_deterministic_transitions_are_refused(policy: DiffusionPolicy) -> None:
    rollout = _rollout(policy, _cond(G=2, L=40))
    batch = policy.transitions(rollout, torch.tensor([0, 1]), torch.tensor([0, 28]))
    last = Transitions(batch.x_t, batch.x_prev, batch.cond, torch.tensor([0, K - 1]), batch.row, batch.old_log_prob)
    with pytest.raises(ValueError, match="deterministic"):
        policy.log_prob_and_mean(FrameLocal(), last)
    with pytest.raises(IndexError):
        policy.transitions(rollout, torch.tensor([0]), torch.tensor([29]))  # past the last MDP position


# --- evaluation sampling ------------------------------------------------------------------------------


def test_sample_streams(policy: DiffusionPolicy) -> None:
    """`sample` is a rollout of groups = sequences; seeds k and k+1 share no stream (the old bug: seed k's
    step noise was seed k+1's initial noise); samples of one sequence do not share x_T by default."""
    B, S, L = 2, 2, 64
    cond = torch.randn(B, L, C, generator=torch.Generator().manual_seed(3))
    denoiser = FrameLocal()
    out = policy.sample(denoiser, cond, D, seed=4, num_samples=S)
    assert out.shape == (B, S, L, D)

    streams = {}
    for seed in (4, 5):
        ids = RolloutIds.grid(seed, 0, B, S, share_initial=False)
        rollout = policy.rollout(denoiser, cond[:, None].expand(B, S, L, C), ids, D)
        if seed == 4:
            assert torch.equal(rollout.final, out)
        batch = policy.transitions(rollout, torch.arange(B * S), torch.zeros(B * S, dtype=torch.long))
        _, mean = policy.log_prob_and_mean(denoiser, batch)
        streams[f"initial {seed}"] = rollout.latent(0).flatten(0, 1)
        streams[f"step {seed}"] = (batch.x_prev - mean) / policy.table[0, 2]  # the noise of transition 0
        x_T = rollout.latent(0)
        assert abs(_correlation(x_T[:, 0], x_T[:, 1])) < 0.05  # members do not share x_T
    names = list(streams)
    for i, first in enumerate(names):
        assert abs(float(streams[first].std()) - 1.0) < 0.02
        for second in names[i + 1 :]:
            for row in range(B * S):
                r = _correlation(streams[first][row], streams[second][row])
                assert abs(r) < 0.05, (first, second, row, r)


def test_window_mixing_denoiser_rollouts_are_reproducible(policy: DiffusionPolicy) -> None:
    """With a denoiser that mixes frames (stitching matters), rollouts are still a function of their ids."""
    cond = _cond(L=200)
    a = _rollout(policy, cond, window_mixing)
    b = policy.rollout(window_mixing, cond[1:], RolloutIds(10, 0, torch.tensor([1]), torch.arange(3)[None]), D)
    torch.testing.assert_close(b.latents, a.latents[1:], atol=1e-5, rtol=0)
    batch = _all_transitions(policy, a)
    torch.testing.assert_close(policy.log_prob_and_mean(window_mixing, batch)[0], batch.old_log_prob, atol=1e-6, rtol=0)
