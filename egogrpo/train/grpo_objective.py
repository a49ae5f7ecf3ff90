"""The GRPO objective on diffusion transitions (paper Eq. 8; reference/grpo-for-diffusion.md §3).

Per trained transition i with advantage Â_i and importance ratio ρ_i = π_θ(x_p|x_s,c)/π_old(x_p|x_s,c)
(per-dimension-mean log-probabilities, so ρ = exp(Δ/D) of the summed density):

    loss_i = −Â_i·ρ_i                                      (no clipping)
    loss_i = max(−Â_i·ρ_i, −Â_i·clip(ρ_i, 1−ε, 1+ε))        (PPO clipping, ε = clip_range)
    + β·KL_i,  KL_i = mean_d (μ_θ − μ_ref)² / (2σ²)         (`model.sampler.gaussian_mean_kl`, to the frozen prior)

With one optimizer step per rollout batch ρ = 1 and the gradient is REINFORCE with a group baseline:
−Â·∇ log π. The loss of an update is the mean of loss_i over its transitions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


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
