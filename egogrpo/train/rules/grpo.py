"""`--algo grpo`, the faithful MotionGRPO update: the GRPO objective on diffusion transitions (paper Eq. 8;
reference/grpo-for-diffusion.md §3).

Per trained transition i with advantage Â_i and importance ratio ρ_i = π_θ(x_p|x_s,c)/π_old(x_p|x_s,c)
(per-dimension-mean log-probabilities, so ρ = exp(Δ/D) of the summed density):

    loss_i = −Â_i·ρ_i                                      (no clipping)
    loss_i = max(−Â_i·ρ_i, −Â_i·clip(ρ_i, 1−ε, 1+ε))        (PPO clipping, ε = clip_range)
    + β·KL_i,  KL_i = mean_d (μ_θ − μ_ref)² / (2σ²)         (`model.sampler.gaussian_mean_kl`, to the frozen prior)

With one optimizer step per rollout batch ρ = 1 and the gradient is REINFORCE with a group baseline:
−Â·∇ log π. The loss of an update is the mean of loss_i over its transitions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.config import TrainGRPOConfig
from egogrpo.errors import EgogrpoError
from egogrpo.model.policy import DiffusionPolicy, Transitions
from egogrpo.model.sampler import gaussian_mean_kl
from egogrpo.train.rules.base import RolloutNeeds
from egogrpo.train.update import UpdateInputs, cat, optimize_items, summary, trained_positions


@dataclass(frozen=True, eq=False)
class ObjectiveTerms:
    """Per-transition loss and what the diagnostics need."""

    loss: Float[Tensor, "N"]  # noqa: F821
    log_ratio: Float[Tensor, "N"]  # noqa: F821
    clipped: Float[Tensor, "N"]  # noqa: F821  # 1.0 where the clipped branch was taken


def grpo_objective(
    log_prob: Float[Tensor, "N"],  # noqa: F821
    old_log_prob: Float[Tensor, "N"],  # noqa: F821
    advantages: Float[Tensor, "N"],  # noqa: F821
    clip_range: float | None,
) -> ObjectiveTerms:
    """The (optionally clipped) importance-weighted advantage loss of each transition (to be minimised)."""
    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    if clip_range is None:
        return ObjectiveTerms(unclipped, log_ratio.detach(), torch.zeros_like(ratio))
    clipped = -advantages * ratio.clamp(1.0 - clip_range, 1.0 + clip_range)
    loss = torch.maximum(unclipped, clipped)
    return ObjectiveTerms(loss, log_ratio.detach(), (clipped > unclipped).float().detach())


def grpo_update(inputs: UpdateInputs) -> dict[str, float]:
    """Inner epochs of GRPO updates (Eq. 8) on this process's rows; returns the diagnostics of the iteration."""
    config, policy, model, rollout = inputs.config, inputs.policy, inputs.model, inputs.rollout
    num_rows, num_mdp = inputs.advantages.numel(), len(rollout.mdp_steps)
    first_row = int(inputs.local_rows[0])
    device = rollout.latents.device
    flat_advantages = inputs.advantages.flatten().to(device)
    log_ratios, clipped, kls = [], [], []
    old_override: dict[tuple[int, int], Tensor] = {}

    def item_loss(rows: Tensor, positions: Tensor, epoch: int) -> Tensor:
        batch = policy.transitions(rollout, rows, positions)
        if config.recompute_old_log_probs:
            key_rows = list(zip(rows.tolist(), positions.tolist(), strict=True))
            if any(k not in old_override for k in key_rows):
                with torch.no_grad():
                    fresh, _ = policy.log_prob_and_mean(model, batch)
                for k, value in zip(key_rows, fresh, strict=True):
                    old_override.setdefault(k, value)
            batch = _with_old(batch, torch.stack([old_override[k] for k in key_rows]))
        log_prob, mean = policy.log_prob_and_mean(model, batch)
        terms = grpo_objective(log_prob, batch.old_log_prob, flat_advantages[rows + first_row], config.clip_range)
        loss = terms.loss
        if inputs.reference is not None:
            with torch.no_grad():
                _, reference_mean = policy.log_prob_and_mean(inputs.reference, batch)
            kl = gaussian_mean_kl(mean, reference_mean, policy.step_std(batch.step))
            loss = loss + config.kl_weight * kl
            kls.append(kl.detach())
        log_ratios.append(terms.log_ratio)
        clipped.append(terms.clipped)
        return loss

    # rows of degenerate groups (Â = 0) contribute nothing without a KL term: skip their compute
    skip = (flat_advantages == 0) if inputs.reference is None else None
    stats = optimize_items(
        inputs,
        lambda epoch: trained_positions(config, inputs.iteration, epoch, num_rows, num_mdp),
        item_loss,
        skip,
        # before the iteration's first update θ = θ_old: ρ must be 1
        before_first_step=lambda: _check_first_ratio(summary(cat(log_ratios, device), inputs.accelerator)),
    )
    log_ratio = summary(cat(log_ratios, device), inputs.accelerator)
    ratio = summary(torch.exp(cat(log_ratios, device)), inputs.accelerator)
    stats.update(
        {
            "ratio/mean": ratio["mean"],
            "ratio/min": ratio["min"],
            "ratio/max": ratio["max"],
            "clip_fraction": summary(cat(clipped, device), inputs.accelerator)["mean"],
            "approx_kl": 0.5 * log_ratio["mean_square"],
        }
    )
    if kls:
        stats["kl_to_prior"] = summary(cat(kls, device), inputs.accelerator)["mean"]
    return stats


#: |log ρ| allowed before the first update: float32 rounding of a different batch layout is ~1e-6.
FIRST_RATIO_TOLERANCE = 1e-3


def _check_first_ratio(log_ratio: dict[str, float]) -> None:
    """EgogrpoError when recomputed log-probabilities disagree with the rollout's at θ_old."""
    worst = max(abs(log_ratio["min"]), abs(log_ratio["max"])) if log_ratio["count"] else 0.0
    if worst > FIRST_RATIO_TOLERANCE:
        raise EgogrpoError(
            f"the importance ratio is not 1 before the first update (|log ρ| up to {worst:.2e}): the rollout and the "
            "log-probability recomputation disagree (autocast or a nondeterministic kernel in the rollout?); "
            "set recompute_old_log_probs"
        )


def _with_old(batch: Transitions, old: Tensor) -> Transitions:
    return dataclasses.replace(batch, old_log_prob=old)


#: Options that only the GRPO objective reads (refused with another rule rather than silently ignored).
GRPO_ONLY = {"clip_range": "--clip-range", "log_prob_fields": "--log-prob-fields"}


def refuse_grpo_options(config: TrainGRPOConfig) -> None:
    """EgogrpoError naming an option only `--algo grpo` reads, set for another rule."""
    for name, option in GRPO_ONLY.items():
        if getattr(config, name) is not None:
            raise EgogrpoError(f"{option} applies to --algo grpo only (this run uses --algo {config.algo})")
    if config.recompute_old_log_probs:
        raise EgogrpoError(
            f"--recompute-old-log-probs applies to --algo grpo only (this run uses --algo {config.algo})"
        )


class GRPORule:
    """The paper's update: clipped importance-weighted advantages on stored MDP transitions."""

    name = "grpo"

    def check_config(self, config: TrainGRPOConfig) -> None:
        pass

    def check_policy(self, config: TrainGRPOConfig, policy: DiffusionPolicy, has_scorer: bool) -> None:
        if not policy.mdp_steps:
            raise EgogrpoError("the sampler has no stochastic transition: nothing to train (check --sde-window)")

    def rollout_needs(self, config: TrainGRPOConfig, policy: DiffusionPolicy) -> RolloutNeeds:
        return RolloutNeeds(record=True, keep=(), last_predictions=True)

    def items_per_rollout(self, config: TrainGRPOConfig, policy: DiffusionPolicy) -> tuple[int, str]:
        num_mdp, limit = len(policy.mdp_steps), config.train_steps_per_trajectory
        per_rollout = num_mdp if limit is None else min(limit, num_mdp)
        return per_rollout, f"{per_rollout} of {num_mdp} MDP transitions trained per rollout"

    def update(self, inputs: UpdateInputs) -> dict[str, float]:
        return grpo_update(inputs)
