"""EgoAllo's training loss for the x₀-predicting denoiser (reference/egoallo.md §5).

Per component: squared errors averaged over the feature dimension, masked, summed over time,
weighted by w(t) (which emulates ε-prediction), summed over the batch and divided by the number of
valid (batch, frame) pairs. Component weights: betas 0.1 (coefficient i also weighted 1/(i+1)),
body rotations 1.0, contacts 0.1, hand rotations 0.01 (only sequences whose hands move count, over
at least 256 frames).
"""

from __future__ import annotations

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from egogrpo.model.state import state_slices

LOSS_WEIGHTS = {"betas": 0.1, "body_rotmats": 1.0, "contacts": 0.1, "hand_rotmats": 0.01}


def _weighted_mean(
    err: Float[Tensor, "B T F"],
    weight_t: Float[Tensor, "B"],  # noqa: F821
    mask: Float[Tensor, "B T"],
    count: Tensor,
) -> Tensor:
    return ((err.mean(dim=-1) * mask).sum(dim=-1) * weight_t).sum() / count


def prior_loss(
    x0_hat: Float[Tensor, "B T D"],
    x0: Float[Tensor, "B T D"],
    weight_t: Float[Tensor, "B"],  # noqa: F821
    num_betas: int,
    include_hands: bool,
    mask: Bool[Tensor, "B T"] | None = None,
) -> dict[str, Tensor]:
    """Loss terms of a batch of packed states ([betas | 21·9 body | 21 contacts | 30·9 hands]); "total" is their weighted sum."""
    B, T, _ = x0.shape
    m = torch.ones(B, T, dtype=x0.dtype, device=x0.device) if mask is None else mask.to(x0.dtype)
    count = m.sum().clamp_min(1.0)
    sq = (x0_hat - x0) ** 2
    field = state_slices(num_betas, include_hands)
    coefficient = 1.0 / torch.arange(1, num_betas + 1, dtype=x0.dtype, device=x0.device)
    terms = {
        "betas": _weighted_mean(sq[..., field["betas"]] * coefficient, weight_t, m, count),
        "body_rotmats": _weighted_mean(sq[..., field["body_rotmats"]], weight_t, m, count),
        "contacts": _weighted_mean(sq[..., field["contacts"]], weight_t, m, count),
    }
    if include_hands:
        hands = x0[..., field["hand_rotmats"]]
        moving = (hands - hands[:, :1]).abs().sum(dim=(1, 2)) > 1e-5  # (B,) sequences whose hands change
        hand_mask = m * moving[:, None].to(x0.dtype)
        hand_count = hand_mask.sum().clamp_min(256.0)
        terms["hand_rotmats"] = _weighted_mean(sq[..., field["hand_rotmats"]], weight_t, hand_mask, hand_count)
    terms["total"] = sum(LOSS_WEIGHTS[name] * value for name, value in terms.items())
    return terms
