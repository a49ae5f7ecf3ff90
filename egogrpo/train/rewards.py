"""MotionGRPO's hybrid reward (paper §3.4, Eqs. 10–15) and group-relative advantages (Algorithm 1, lines 7–12).

Joint rewards, each exp(−ω·err) with err averaged over frames and joints (weights in `RewardConfig`):

    rot     L1 norm (Σ of |·| over the 9 entries) of R_pred − R_gt, local rotations of the 21 body joints
    pos     ‖p − p̂‖₂ of the 22 world joint positions, metres
    pos_pa  the same after a per-frame Umeyama similarity alignment of the prediction, metres
    vel     ‖v − v̂‖₂ of the joint velocities v = (p_{t+1} − p_t)·fps, m/s at 30 fps

The predicted body is placed on the GROUND-TRUTH CPF trajectory (`crops.T_world_cpf`): that is where
evaluation places it, so these are the errors the metrics measure. The Perlin perturbation of the
condition is an exploration device, not a target, and never enters the rewards. The visual reward is
R_vis = exp(ω_vis·s) for a perceptual score s ∈ (0, 1) (Eq. 10).

Advantages normalise each of the K sub-rewards within its group of G samples first, (r − mean)/max(std, floor)
with the unbiased std, then combine them (mean, Algorithm 1; or sum, Eq. 8) and clip: normalise-then-combine
keeps a sub-reward with a tiny spread (e.g. R_pos_pa) from being drowned by one with a large spread.
The position errors come from `egogrpo.eval.metrics` (millimetres there, converted to metres here).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.config import RewardConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.errors import EgogrpoError
from egogrpo.eval.metrics import mpjpe, mpjve, pa_mpjpe
from egogrpo.geometry import quat_to_matrix
from egogrpo.model.placement import placed_joints
from egogrpo.model.state import MotionState

JOINT_REWARDS = ("rot", "pos", "pos_pa", "vel")
FPS = 30.0  # frame rate of the crops, for the velocities
_MM_PER_M = 1000.0  # the metrics module reports millimetres


def reward_joints(body: BodyModel, state: MotionState, crops: MotionCrop) -> tuple[Tensor, Tensor]:
    """Predicted (placed on the ground-truth CPF) and true world joints, (B, G, T, 22, 3) each."""
    lead = state.body_rotmats.shape[:-4]
    if len(lead) != 2 or lead[0] != crops.T_world_cpf.shape[0]:
        raise ValueError(f"state must have leading (B, G) with B = {crops.T_world_cpf.shape[0]}, got {tuple(lead)}")
    reference = crops.T_world_cpf
    return placed_joints(body.to(device=reference.device, dtype=reference.dtype), state, crops)


def joint_errors_for_reward(
    body: BodyModel, state: MotionState, crops: MotionCrop, joints: tuple[Tensor, Tensor] | None = None
) -> dict[str, Tensor]:
    """Errors of each group member, (B, G) each: `state` has leading (B, G), `crops` leading (B,).

    rot is unitless, pos and pos_pa in metres, vel in m/s (see the module docstring). Computed in the
    crops' dtype on their device; differentiable in `state` (DRaFT back-propagates through them; GRPO
    calls this under no_grad, its rewards being constants to the policy gradient).
    `joints`: `reward_joints(body, state, crops)` when the caller already has them.
    """
    predicted, truth = reward_joints(body, state, crops) if joints is None else joints
    R_gt = quat_to_matrix(crops.body_quats)[:, None]  # (B, 1, T, 21, 3, 3)
    return {
        "rot": (state.body_rotmats - R_gt).abs().sum(dim=(-1, -2)).mean(dim=(-1, -2)),
        "pos": mpjpe(predicted, truth).mean(dim=-1) / _MM_PER_M,
        "pos_pa": pa_mpjpe(predicted, truth).mean(dim=-1) / _MM_PER_M,
        "vel": mpjve(predicted, truth, fps=FPS) / _MM_PER_M,
    }


def joint_rewards(errors: dict[str, Tensor], config: RewardConfig) -> dict[str, Tensor]:
    """exp(−ω·err) for each of `JOINT_REWARDS`, in that order, each of the errors' shape."""
    weights = {
        "rot": config.rot_weight,
        "pos": config.pos_weight,
        "pos_pa": config.pos_pa_weight,
        "vel": config.vel_weight,
    }
    return {name: torch.exp(-weights[name] * errors[name]) for name in JOINT_REWARDS}


def visual_reward(scores: Tensor, config: RewardConfig) -> Tensor:
    """R_vis = exp(ω_vis·s) for perceptual scores s ∈ (0, 1) (Eq. 10), of the scores' shape."""
    return torch.exp(config.visual_weight * scores)


def reward_terms(
    body: BodyModel,
    state: MotionState,
    crops: MotionCrop,
    config: RewardConfig,
    scorer: Callable[[MotionState, Any], Tensor] | None = None,
    condition: Any = None,
    joints: tuple[Tensor, Tensor] | None = None,
) -> dict[str, Tensor]:
    """The joint rewards (and "vis" from `scorer(state, condition)` → scores (B, G), when given), each (B, G).

    `joints`: `reward_joints(body, state, crops)` when the caller already has them.
    """
    terms = joint_rewards(joint_errors_for_reward(body, state, crops, joints), config)
    if scorer is not None:
        with torch.no_grad():
            terms["vis"] = visual_reward(scorer(state, condition), config)
    return terms


@dataclass(frozen=True)
class GroupAdvantages:
    """Group-relative advantages of B groups of G samples with K sub-rewards."""

    advantages: Tensor  # (B, G) combined, clipped; zero for degenerate groups
    normalized: Tensor  # (B, G, K) each sub-reward normalised within its group (degenerate groups included)
    group_std: Tensor  # (B, K) unbiased std of each sub-reward in each group
    degenerate: Tensor  # (B,) bool: every sub-reward's std below config.std_floor


def group_advantages(rewards: Tensor, config: RewardConfig) -> GroupAdvantages:
    """Advantages of rewards (B, G, K): per sub-reward (r − mean_G)/max(std_G, floor), combined over K, clipped.

    combine "mean" (Algorithm 1) or "sum" (Eq. 8); a group whose every sub-reward std is below
    `config.std_floor` is degenerate and gets advantage 0. With `config.advantage == "rank"` each sub-reward
    is first replaced by its `win_rates` (Pref-GRPO), so only the order within the group matters.
    Raises EgogrpoError for G < 2 or another combine or advantage.
    """
    if config.combine not in ("mean", "sum"):
        raise EgogrpoError(f"reward combine must be 'mean' or 'sum', got {config.combine!r}")
    if config.advantage not in ("normalized", "rank"):
        raise EgogrpoError(f"--advantage must be 'normalized' or 'rank', got {config.advantage!r}")
    if rewards.dim() != 3:
        raise ValueError(f"rewards must be (B, G, K), got shape {tuple(rewards.shape)}")
    if rewards.shape[1] < 2:
        raise EgogrpoError(f"group-relative advantages need a group size G ≥ 2, got {rewards.shape[1]}")
    if config.advantage == "rank":
        rewards = win_rates(rewards)
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, unbiased=True)  # (B, K)
    normalized = (rewards - mean) / std.clamp_min(config.std_floor)[:, None, :]
    combined = normalized.mean(dim=-1) if config.combine == "mean" else normalized.sum(dim=-1)
    degenerate = (std < config.std_floor).all(dim=-1)
    clipped = combined.clamp(-config.advantage_clip, config.advantage_clip)
    advantages = torch.where(degenerate[:, None], torch.zeros_like(clipped), clipped)
    return GroupAdvantages(advantages=advantages, normalized=normalized, group_std=std, degenerate=degenerate)


def win_rates(rewards: Tensor) -> Tensor:
    """Each member's within-group win rate per sub-reward, (B, G, K) → (B, G, K) in [0, 1] (Pref-GRPO).

    w_i = (#{j ≠ i: r_j < r_i} + ½·#{j ≠ i: r_j = r_i}) / (G − 1); a group of equal rewards gets ½ everywhere
    (std 0: degenerate). Only the order within the group counts: the advantages are bounded whatever the spread,
    where (r − mean)/std blows a near-equal group's differences up to unit size by their magnitude alone.
    """
    difference = rewards[:, :, None, :] - rewards[:, None, :, :]  # (B, G_i, G_j, K): r_i − r_j
    wins = (difference > 0).to(rewards.dtype) + 0.5 * (difference == 0).to(rewards.dtype)
    G = rewards.shape[1]
    return (wins.sum(dim=2) - 0.5) / (G - 1)  # the j = i term counted ½
