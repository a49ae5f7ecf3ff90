"""`--algo awm` and `--algo nft`: post-training on the forward process, Advantage Weighted Matching and DiffusionNFT.

Both need only each member's FINAL sample x₀ⁱ, its condition cⁱ and its group-relative advantage Âᵢ — no
log-probabilities, so no σ → 0 transition, no bf16 ratio drift, and any sampler may produce the rollouts.
Each trained item re-noises a final sample at one of the sampler's timesteps t (a keyed subset of
`train_steps_per_trajectory` per group; the members of a group share t and the noise ε — common random
numbers, so the advantage-weighted sum over a group compares its members at equal (t, ε)):

    x_t = √ᾱ_t·x₀ⁱ + √(1−ᾱ_t)·ε,   x̂ = f_θ(x_t, t, cⁱ)   (unprojected, as in the prior's training)
    ℓ(x̂) = SNR(1)·the prior's own loss (`train.prior_loss`: EgoAllo's component weights and w(t)) of x̂ against x₀ⁱ

    AWM (arXiv 2509.25050):  loss = Âᵢ·ℓ(x̂)
    NFT (arXiv 2509.16117):  loss = (c/β)·[r·ℓ((1−β)x̂_old + βx̂) + (1−r)·ℓ((1+β)x̂_old − βx̂)],  r = ½ + ½·Âᵢ/c

with x̂_old the prediction of the rollout's parameters θ_old and c = `advantage_clip` (Â ∈ [−c, c]). At θ = θ_old
the NFT gradient is 2(2r−1)·c·∂ℓ-direction = AWM's (both are 2Â·w(t)·(x̂ − x₀ⁱ)·∂x̂/∂θ per state entry, up to
ℓ's weights); NFT differs once θ moves away from θ_old within an iteration (several optimizer steps per rollout
batch), where its negative branch keeps θ near θ_old. With `kl_weight` β_KL, both add β_KL·ℓ_ref, the prior's
loss of x̂ against the frozen prior's x̂ at the same (x_t, t, c).

SNR(1) ≈ 2.4e4 turns EgoAllo's w(t) = 0.99·SNR(t)/SNR(1) + 0.01 back into ε-prediction units (the units of
AWM's and NFT's flow-matching losses). A constant factor, so Adam's steps are unchanged — except that in the
prior's own units the advantage-weighted gradient of the shipped prior was ~1e-9 per parameter, below Adam's
ε = 1e-8, and AWM did not move.
"""

from __future__ import annotations

import copy

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.config import TrainGRPOConfig
from egogrpo.model import noise
from egogrpo.model.policy import DiffusionPolicy
from egogrpo.train.prior_loss import prior_loss
from egogrpo.train.rules.base import RolloutNeeds
from egogrpo.train.rules.grpo import refuse_grpo_options
from egogrpo.train.update import UpdateInputs, cat, optimize_items, summary, trained_positions


def per_sample_prior_loss(
    pred: Float[Tensor, "N L D"],
    target: Float[Tensor, "N L D"],
    weight_t: Float[Tensor, "N"],  # noqa: F821
    num_betas: int,
    include_hands: bool,
) -> Float[Tensor, "N"]:  # noqa: F821
    """The prior's training loss ("total") of each sample on its own (a batch of one), in pred's dtype."""
    return torch.stack(
        [
            prior_loss(pred[i : i + 1], target[i : i + 1], weight_t[i : i + 1], num_betas, include_hands)["total"]
            for i in range(pred.shape[0])
        ]
    )


def awm_loss(
    pred: Float[Tensor, "N L D"],
    target: Float[Tensor, "N L D"],
    advantages: Float[Tensor, "N"],  # noqa: F821
    weight_t: Float[Tensor, "N"],  # noqa: F821
    num_betas: int,
    include_hands: bool,
) -> Float[Tensor, "N"]:  # noqa: F821
    """Advantage Weighted Matching per item: Â·ℓ(pred; target, w(t)) (minimised)."""
    return advantages * per_sample_prior_loss(pred, target, weight_t, num_betas, include_hands)


def nft_loss(
    pred: Float[Tensor, "N L D"],
    old_pred: Float[Tensor, "N L D"],
    target: Float[Tensor, "N L D"],
    advantages: Float[Tensor, "N"],  # noqa: F821
    weight_t: Float[Tensor, "N"],  # noqa: F821
    beta: float,
    advantage_scale: float,
    num_betas: int,
    include_hands: bool,
) -> Float[Tensor, "N"]:  # noqa: F821
    """DiffusionNFT per item: (c/β)·[r·ℓ(x̂⁺) + (1−r)·ℓ(x̂⁻)], r = ½ + ½·clip(Â/c, −1, 1), c = advantage_scale."""
    old_pred = old_pred.detach()
    r = 0.5 + 0.5 * (advantages / advantage_scale).clamp(-1.0, 1.0)
    positive = (1.0 - beta) * old_pred + beta * pred
    negative = (1.0 + beta) * old_pred - beta * pred
    loss_positive = per_sample_prior_loss(positive, target, weight_t, num_betas, include_hands)
    loss_negative = per_sample_prior_loss(negative, target, weight_t, num_betas, include_hands)
    return (advantage_scale / beta) * (r * loss_positive + (1.0 - r) * loss_negative)


def renoise_positions(inputs: UpdateInputs, epoch: int) -> Tensor:
    """(B·G, n) transition indices k (timestep plan[k]) re-noised for every global row: one keyed subset per group."""
    B, G = inputs.advantages.shape
    per_group = trained_positions(inputs.config, inputs.iteration, epoch, B, inputs.policy.num_transitions)
    return per_group[torch.arange(B * G) // G]


def matching_update(inputs: UpdateInputs, variant: str) -> dict[str, float]:
    """Inner epochs of AWM or DiffusionNFT updates on this process's rows; the iteration's diagnostics."""
    config, policy, model = inputs.config, inputs.policy, inputs.model
    G = inputs.advantages.shape[1]
    first_row = int(inputs.local_rows[0])
    device = inputs.rollout.latents.device
    flat_advantages = inputs.advantages.flatten().to(device)
    final = inputs.rollout.final[:, 0].detach()  # (n, L, D)
    cond = inputs.rollout.cond[:, 0]
    L, D = final.shape[-2:]
    plan = torch.tensor(policy.plan, dtype=torch.long)
    snr_1 = float(policy.schedule.snr(torch.ones((), dtype=torch.long)))  # ε-prediction units (module docstring)
    steps = config.inner_epochs * config.updates_per_epoch
    old_model = copy.deepcopy(model).requires_grad_(False) if variant == "nft" and steps > 1 else None
    num_betas, hands = inputs.model_config.num_betas, inputs.model_config.include_hands
    reference_losses = []

    def item_loss(rows: Tensor, positions: Tensor, epoch: int) -> Tensor:
        global_rows = rows + first_row
        keys = noise.stream_key(
            config.seed, noise.PURPOSE_RENOISE, inputs.iteration, epoch, global_rows // G, positions, device=device
        )
        t = plan[positions].to(device)
        target = final[rows.to(device)]
        x_t = policy.schedule.q_sample(target, t, noise.normal(keys, (L, D)))
        weight_t = (policy.schedule.loss_weight(t) * snr_1).float()
        row_cond = cond[rows.to(device)]
        pred = policy.denoiser_x0(model, x_t, t, row_cond)
        advantages = flat_advantages[global_rows.to(device)]
        if variant == "awm":
            loss = awm_loss(pred, target, advantages, weight_t, num_betas, hands)
        else:
            if old_model is None:
                old_pred = pred.detach()
            else:
                with torch.no_grad():
                    old_pred = policy.denoiser_x0(old_model, x_t, t, row_cond)
            c = config.reward.advantage_clip
            loss = nft_loss(pred, old_pred, target, advantages, weight_t, config.nft_beta, c, num_betas, hands)
        if inputs.reference is not None:
            with torch.no_grad():
                reference_pred = policy.denoiser_x0(inputs.reference, x_t, t, row_cond)
            to_reference = per_sample_prior_loss(pred, reference_pred, weight_t, num_betas, hands)
            reference_losses.append(to_reference.detach())
            loss = loss + config.kl_weight * to_reference
        return loss

    skip = (flat_advantages == 0) if variant == "awm" and inputs.reference is None else None
    stats = optimize_items(inputs, lambda epoch: renoise_positions(inputs, epoch), item_loss, skip, block=G)
    if inputs.reference is not None:
        stats["kl_to_prior"] = summary(cat(reference_losses, device), inputs.accelerator)["mean"]
    return stats


class MatchingRule:
    """AWM ("awm") or DiffusionNFT ("nft") on the rollouts' final samples, re-noised at the sampler's timesteps."""

    def __init__(self, variant: str) -> None:
        self.name = variant

    def check_config(self, config: TrainGRPOConfig) -> None:
        refuse_grpo_options(config)

    def check_policy(self, config: TrainGRPOConfig, policy: DiffusionPolicy, has_scorer: bool) -> None:
        pass

    def rollout_needs(self, config: TrainGRPOConfig, policy: DiffusionPolicy) -> RolloutNeeds:
        return RolloutNeeds(record=False, keep=(), last_predictions=False)

    def items_per_rollout(self, config: TrainGRPOConfig, policy: DiffusionPolicy) -> tuple[int, str]:
        total, limit = policy.num_transitions, config.train_steps_per_trajectory
        per_rollout = total if limit is None else min(limit, total)
        return per_rollout, f"final samples re-noised at {per_rollout} of {total} sampler timesteps"

    def update(self, inputs: UpdateInputs) -> dict[str, float]:
        return matching_update(inputs, self.name)
