"""`--algo draft`, DRaFT-K (Clark et al., arXiv 2309.17400): back-propagate the differentiable joint reward through
the sampler's last K transitions.

The rollout (no gradients) stores each member's latent at chain position K_total − K; the update replays the
last K transitions from there with the same keyed noise (`DiffusionPolicy.denoise_from`, so at θ_old it
reaches the rollout's final sample) and maximises

    R_joint(x₀) = R_rot + R_pos + R'_pos + R_vel        (paper Eq. 15, each exp(−ω·err), `train.rewards`)

of the body placed on the ground-truth CPF: the loss of a member is −R_joint (+ β·KL with `kl_weight` β: the mean
per-step Gaussian KL of the replayed transitions' means to the frozen prior's, `DiffusionPolicy.denoise_from`). Gradients flow through the K
denoiser calls, the SO(3) projection, forward kinematics and the Umeyama alignment; the earlier transitions
are constants (DRaFT's truncation). No advantages are used. The perceptual reward is never differentiated
(a learned scorer invites adversarial gradients; reference/grpo-for-diffusion.md §6).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.config import RewardConfig, TrainGRPOConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.errors import EgogrpoError
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.state import MotionState
from egogrpo.tensor_dataclass import map_fields
from egogrpo.train.rewards import JOINT_REWARDS, joint_errors_for_reward, joint_rewards
from egogrpo.train.rules.base import RolloutNeeds
from egogrpo.train.rules.grpo import refuse_grpo_options
from egogrpo.train.update import UpdateInputs, cat, optimize_items, summary


def joint_reward(
    body: BodyModel,
    final: Float[Tensor, "N L D"],
    crops: MotionCrop,
    config: RewardConfig,
    num_betas: int,
    include_hands: bool,
) -> Float[Tensor, "N"]:  # noqa: F821
    """R_joint of each packed final sample against its crop (N crops), differentiable in `final`."""
    state = MotionState.unpack(final[:, None], num_betas, include_hands)  # (N, 1, …): groups of one
    rewards = joint_rewards(joint_errors_for_reward(body, state, crops), config)
    return torch.stack([rewards[name][:, 0] for name in JOINT_REWARDS]).sum(dim=0)


def draft_update(inputs: UpdateInputs) -> dict[str, float]:
    """Inner epochs of DRaFT-K updates over this process's rows (one item per row); the iteration's diagnostics."""
    config, policy, rollout = inputs.config, inputs.policy, inputs.rollout
    first = policy.num_transitions - config.draft_k
    start = rollout.latent(first)  # (n, 1, L, D)
    ids = inputs.ids
    num_rows = inputs.advantages.numel()
    kls: list[Tensor] = []

    def item_loss(rows: Tensor, positions: Tensor, epoch: int) -> Tensor:
        index = rows.to(start.device)
        row_ids = RolloutIds(ids.seed, ids.iteration, ids.group_ids[rows], ids.member_ids[rows], ids.share_initial)
        replay = policy.denoise_from(
            inputs.model, start[index], first, rollout.cond[index], row_ids, reference=inputs.reference
        )
        crops = map_fields(inputs.crops, lambda t: t[index])
        m = inputs.model_config
        loss = -joint_reward(inputs.body, replay.final[:, 0], crops, config.reward, m.num_betas, m.include_hands)
        if replay.kl is not None:
            kls.append(replay.kl[:, 0].detach())
            loss = loss + config.kl_weight * replay.kl[:, 0]
        return loss

    stats = optimize_items(inputs, lambda epoch: torch.zeros(num_rows, 1, dtype=torch.long), item_loss)
    if kls:
        stats["kl_to_prior"] = summary(cat(kls, start.device), inputs.accelerator)["mean"]
    return stats


class DraftRule:
    """Reward back-propagation through the last `draft_k` transitions (the joint rewards only)."""

    name = "draft"

    def check_config(self, config: TrainGRPOConfig) -> None:
        refuse_grpo_options(config)
        if config.draft_k < 1:
            raise EgogrpoError(f"--draft-k must be ≥ 1, got {config.draft_k}")
        if config.reward_online:
            raise EgogrpoError(
                "--reward-online does not apply to --algo draft (it differentiates the joint rewards only)"
            )

    def check_policy(self, config: TrainGRPOConfig, policy: DiffusionPolicy, has_scorer: bool) -> None:
        if config.draft_k > policy.num_transitions:
            raise EgogrpoError(
                f"--draft-k must be ≤ {policy.num_transitions} (the sampler's transitions), got {config.draft_k}"
            )
        if has_scorer:
            raise EgogrpoError(
                "--algo draft differentiates the joint rewards only; train with a perceptual reward via grpo"
            )

    def rollout_needs(self, config: TrainGRPOConfig, policy: DiffusionPolicy) -> RolloutNeeds:
        return RolloutNeeds(record=False, keep=(policy.num_transitions - config.draft_k,), last_predictions=False)

    def items_per_rollout(self, config: TrainGRPOConfig, policy: DiffusionPolicy) -> tuple[int, str]:
        return 1, f"reward back-propagated through the last {config.draft_k} of {policy.num_transitions} transitions"

    def update(self, inputs: UpdateInputs) -> dict[str, float]:
        return draft_update(inputs)
