"""Speed options keep the numerics they promise: the polar projection in the sampler (within a stated bound of
the SVD's), bf16 autocast for sampling only (log-probabilities stay float32, the first ratio stays 1), and
train-prior's device-side counter-based noise (keyed by global batch row) and autocast."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from test_policy import _synthetic_cpf_trajectories

from egogrpo.config import DENOISER_PRESETS, SamplerConfig, TrainPriorConfig
from egogrpo.errors import EgogrpoError
from egogrpo.model.checkpoint import load_checkpoint, resolve_checkpoint
from egogrpo.model.conditioning import cpf_conditioning_from_trajectory
from egogrpo.model.denoiser import EgoDenoiser, sampling_denoiser
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import packed_dim
from egogrpo.train.prior import step_noise, train_prior


@pytest.fixture(scope="module")
def prior():
    model, config, _ = load_checkpoint(resolve_checkpoint("default"))
    B, G, L = 1, 2, 128
    trajectories = _synthetic_cpf_trajectories(B * G, L, seed=4)
    cond = cpf_conditioning_from_trajectory(trajectories, 0.0, config=config).reshape(B, G, L, -1)
    return model, config, cond


def _all_transitions(policy: DiffusionPolicy, rollout):
    rows, M = rollout.log_probs.shape[0] * rollout.log_probs.shape[1], len(rollout.mdp_steps)
    return policy.transitions(rollout, torch.arange(rows).repeat_interleave(M), torch.arange(M).repeat(rows))


def test_polar_projection_in_the_sampler_stays_within_float32_rounding_of_svd(prior) -> None:
    """A whole 30-step rollout of the shipped prior: the polar projection's final samples are within 1e-5 of the
    SVD's (each step's projections agree to float32 rounding; measured: < 1e-6 on samples of magnitude 1.6);
    the log-probabilities recomputed under the polar policy give ratio 1."""
    model, config, cond = prior
    schedule, D = NoiseSchedule.cosine(), packed_dim(config.num_betas, config.include_hands)
    ids = RolloutIds.grid(3, 0, 1, 2)
    svd = DiffusionPolicy(schedule, SamplerConfig(), project=body_rotation_projection(config.num_betas))
    polar = DiffusionPolicy(
        schedule, SamplerConfig(projection="polar"), project=body_rotation_projection(config.num_betas)
    )
    assert svd.project.method == "svd" and polar.project.method == "polar"
    explicit = DiffusionPolicy(schedule, SamplerConfig(projection="polar"), body_rotation_projection(10, method="svd"))
    assert explicit.project.method == "svd"  # an explicit method is kept
    with torch.no_grad():
        a, b = svd.rollout(model, cond, ids, D), polar.rollout(model, cond, ids, D)
        assert not torch.equal(a.final, b.final)
        assert float((a.final - b.final).abs().max()) < 1e-5
        batch = _all_transitions(polar, b)
        log_prob, _ = polar.log_prob_and_mean(model, batch)
    torch.testing.assert_close(log_prob, batch.old_log_prob, atol=1e-6, rtol=0)


def test_sampling_denoiser_autocast_is_bf16_and_off_is_the_model() -> None:
    torch.manual_seed(0)
    model = EgoDenoiser(DENOISER_PRESETS["tiny"]).eval()
    x, cond = torch.randn(2, 16, model.d_state), torch.randn(2, 16, model.d_cond)
    t = torch.tensor([3, 700])
    with torch.no_grad():
        plain = model(x, t, cond)
        assert torch.equal(sampling_denoiser(model, SamplerConfig())(x, t, cond), plain)
        fast = sampling_denoiser(model, SamplerConfig(autocast=True))(x, t, cond)
    assert fast.dtype == torch.float32 and not torch.equal(fast, plain)
    assert float((fast - plain).abs().max()) < 0.05 * float(plain.abs().max())  # bf16: 8 mantissa bits
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.slow
def test_bf16_rollouts_with_float32_recomputed_old_log_probs_give_ratio_one(prior) -> None:
    """bf16 rollouts store log-probs of the bf16 means; GRPO must recompute them in float32 (the plain model),
    after which a recomputation in another layout reproduces them: ratio 1."""
    model, config, cond = prior
    D = packed_dim(config.num_betas, config.include_hands)
    policy = DiffusionPolicy(
        NoiseSchedule.cosine(), SamplerConfig(stochastic_steps=(24, 29)), body_rotation_projection(config.num_betas)
    )
    with torch.no_grad():
        rollout = policy.rollout(
            sampling_denoiser(model, SamplerConfig(autocast=True)), cond, RolloutIds.grid(5, 0, 1, 2), D
        )
        batch = _all_transitions(policy, rollout)
        old, _ = policy.log_prob_and_mean(model, batch)
        assert float((old - batch.old_log_prob).abs().max()) > 1e-4  # the bf16 rollout's own log-probs differ
        batch = dataclasses.replace(batch, old_log_prob=old)
        order = torch.randperm(len(batch), generator=torch.Generator().manual_seed(1))
        shuffled = batch.select(order)
        new, _ = policy.log_prob_and_mean(model, shuffled)
    torch.testing.assert_close(new, shuffled.old_log_prob, atol=1e-6, rtol=0)


def test_prior_step_noise_is_keyed_by_global_batch_row() -> None:
    device = torch.device("cpu")
    t, z = step_noise(4, 17, torch.arange(8), 1000, (5, 3), device)
    t_half, z_half = step_noise(4, 17, torch.arange(4, 8), 1000, (5, 3), device)  # rank 1 of 2
    assert torch.equal(t[4:], t_half) and torch.equal(z[4:], z_half)
    _, z_next = step_noise(4, 18, torch.arange(8), 1000, (5, 3), device)
    assert not torch.equal(z, z_next)
    levels, draws = step_noise(0, 0, torch.arange(4096), 1000, (16,), device)
    assert levels.dtype == torch.long and int(levels.min()) >= 1 and int(levels.max()) <= 1000
    assert abs(float(levels.double().mean()) - 500.5) < 20  # uniform: σ of the mean 289/64 ≈ 4.5
    assert abs(float(draws.mean())) < 0.01 and abs(float(draws.std()) - 1.0) < 0.01


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss/total"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_train_prior_autocast_trains_close_to_float32(cmu_small: Path, tmp_path: Path) -> None:
    base = dict(
        data=str(cmu_small), model=DENOISER_PRESETS["tiny"], batch_size=4, max_steps=3, warmup_steps=1,
        log_every=1, val_every=0, checkpoint_every=3, learning_rate=1e-3,
    )  # fmt: skip
    train_prior(TrainPriorConfig(run_dir=str(tmp_path / "fp32"), **base))  # type: ignore[arg-type]
    train_prior(TrainPriorConfig(run_dir=str(tmp_path / "bf16"), autocast=True, **base))  # type: ignore[arg-type]
    fp32, bf16 = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    assert fp32 != bf16
    for a, b in zip(fp32, bf16, strict=True):
        assert abs(a - b) < 0.05 * abs(a)


def test_unknown_projection_is_refused_in_one_line() -> None:
    with pytest.raises(EgogrpoError, match="sampler projection must be 'svd' or 'polar', got 'qr'"):
        DiffusionPolicy(NoiseSchedule.cosine(), SamplerConfig(projection="qr"), body_rotation_projection(10))
