"""What an update rule of `train-grpo` is (`TrainGRPOConfig.algo`): a small object the loop calls.

Every rule shares the loop's data, Perlin noise, rollouts, rewards, advantages, processes, diagnostics,
checkpoints and resume; it says what it needs of the rollouts and how it turns them into an update:

    check_config(config)                  refuse what the rule cannot run with (before any work)
    check_policy(config, policy, scorer)  refuse a sampler or reward the rule cannot use
    rollout_needs(config, policy)         what the rollout must keep (`RolloutNeeds`)
    items_per_rollout(config, policy)     training items per rollout and how to say so (batch arithmetic)
    update(inputs)                        the iteration's optimizer steps → diagnostics
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from egogrpo.config import TrainGRPOConfig
from egogrpo.model.policy import DiffusionPolicy
from egogrpo.train.update import UpdateInputs


@dataclass(frozen=True)
class RolloutNeeds:
    """What `DiffusionPolicy.rollout` must keep for a rule: the MDP latents (`record`), further chain positions
    (`keep`, e.g. DRaFT's starting point) and the last three x̂₀ (`last_predictions`)."""

    record: bool
    keep: tuple[int, ...]
    last_predictions: bool


class UpdateRule(Protocol):
    name: str

    def check_config(self, config: TrainGRPOConfig) -> None: ...

    def check_policy(self, config: TrainGRPOConfig, policy: DiffusionPolicy, has_scorer: bool) -> None: ...

    def rollout_needs(self, config: TrainGRPOConfig, policy: DiffusionPolicy) -> RolloutNeeds: ...

    def items_per_rollout(self, config: TrainGRPOConfig, policy: DiffusionPolicy) -> tuple[int, str]: ...

    def update(self, inputs: UpdateInputs) -> dict[str, float]: ...
