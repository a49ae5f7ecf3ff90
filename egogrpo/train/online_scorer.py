"""`train-grpo --reward-online`: the perceptual model keeps learning from the current policy's rollouts — the
loss, negative selection and false-negative drop of `train.reward_model`, on each update iteration's own
rollouts — and an EMA copy of it scores the visual reward."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.config import TrainGRPOConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.errors import EgogrpoError
from egogrpo.model.perceptual import PerceptualModel, PerceptualScorer, load_perceptual, save_perceptual, score_logits
from egogrpo.model.state import MotionState
from egogrpo.tensor_dataclass import map_fields
from egogrpo.train.averaging import WeightAverage
from egogrpo.train.reward_model import (
    contrastive_terms,
    last_step_choice,
    pick_last_predictions,
    placed_negatives,
    positive_joints,
)
from egogrpo.train.update import sum_gradients


class OnlineScorer:
    """The perceptual model trained alongside GRPO (`TrainGRPOConfig.reward_online`), and the EMA copy that scores.

    `update` takes one InfoNCE step on an iteration: each condition's ground truth (positive) against its G
    group members, each member's negative the x̂₀ of one of its last three sampling steps (`last_step_choice`
    keyed by (seed, iteration, group)), false negatives dropped (`placed_negatives`). Under several processes each
    scores the negatives of its own rollout rows and the positive of every group whose first member it holds;
    the scores are summed into one (B, 1 + G) table on every process, so the loss is the global one, and each
    process back-propagates ∂L/∂s of its own motions, `micro_batch` at a time (a second, differentiable pass);
    the gradients are summed over processes (`train.update.sum_gradients`) — the same step as one process.
    After the step ē ← d·ē + (1 − d)·φ. `scorer` (the GRPO loop's `Scorer`) scores with ē.
    """

    def __init__(self, model: PerceptualModel, body: BodyModel, config: TrainGRPOConfig) -> None:
        self.model, self.body, self.config = model, body, config
        self.average = WeightAverage(model)  # ē, the scoring copy
        self.scorer = PerceptualScorer(self.average.model, body)  # frozen: eval, no gradients
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.reward_learning_rate, weight_decay=config.reward_weight_decay
        )

    def is_due(self, iteration: int) -> bool:
        """Whether the scorer learns from iteration `iteration`'s rollouts (0-based)."""
        return (iteration + 1) % self.config.reward_update_every == 0

    def negatives(self, last: Tensor, local_rows: Tensor, iteration: int) -> Tensor:
        """(n, L, D) the packed negative of each local rollout row (flat b·G + g) from its last three x̂₀
        `last` (n, 1, 3, L, D) (`Rollout.x0_hat_last`)."""
        G = self.config.group_size
        groups = torch.arange(self.config.batch_groups)
        choice = last_step_choice(self.config.seed, iteration, groups, G, last.shape[2], last.device)  # (B, G)
        local = choice[(local_rows // G).to(last.device), (local_rows % G).to(last.device)]
        return pick_last_predictions(last[:, 0], local)

    def update(
        self, crops: MotionCrop, negatives: MotionState, local_rows: Tensor, accelerator: Any
    ) -> dict[str, float | int | None]:
        """One InfoNCE step: crops (B,) every condition's ground truth; `negatives` with leading (n, 1) the negative
        of each of this process's rollout rows `local_rows` (n,). Returns the step's statistics (global)."""
        config, model = self.config, self.model
        B, G = config.batch_groups, config.group_size
        device = crops.T_world_cpf.device
        local_rows = local_rows.to(device)
        groups, members = local_rows // G, local_rows % G
        row_crops = map_fields(crops, lambda t: t[groups])
        quats, joints, valid = placed_negatives(self.body, row_crops, negatives, config.reward_min_negative_error)
        firsts = groups[members == 0]  # the groups whose positive this process scores
        inputs = (
            torch.cat((quats[:, 0], crops.body_quats[firsts])),
            torch.cat((joints[:, 0], positive_joints(crops)[firsts])),
            torch.cat((row_crops.T_world_cpf, crops.T_world_cpf[firsts])),
        )
        cells = (torch.cat((groups, firsts)), torch.cat((members + 1, torch.zeros_like(firsts))))  # table cells
        chunks = torch.arange(cells[0].numel(), device=device).split(config.micro_batch)
        with torch.no_grad():
            local = torch.cat([self._scores(inputs, c) for c in chunks]) if chunks else quats.new_zeros(0)
        table = torch.zeros(B, 1 + G, device=device).index_put(cells, local)
        counted = torch.zeros(B, G, device=device).index_put((groups, members), valid[:, 0].float())
        if accelerator.num_processes > 1:
            table, counted = accelerator.reduce(table, "sum"), accelerator.reduce(counted, "sum")
        counted = counted > 0.5
        leaf = table.clone().requires_grad_(True)
        terms = contrastive_terms(leaf, counted, config.reward_temperature)
        (slope,) = torch.autograd.grad(terms["loss"], leaf)  # ∂L/∂s of every scored motion
        self.optimizer.zero_grad(set_to_none=True)
        pairs = int(counted.sum())
        grad_norm = 0.0
        if pairs:  # no negative left: nothing to learn, and AdamW's momentum alone should not move φ
            weights = slope[cells]
            for c in chunks:
                (self._scores(inputs, c) * weights[c]).sum().backward()
            sum_gradients(model, accelerator)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip))
            self.optimizer.step()
            self.average.update(model, self.config.reward_ema_decay)
        return {
            "reward_model/loss": float(terms["loss"].detach()),
            "reward_model/accuracy": _finite_or_none(float(terms["accuracy"])),
            "reward_model/wrong_count": int(terms["wrong_count"]),
            "reward_model/pairs": pairs,
            "reward_model/dropped_negatives": B * G - pairs,
            "reward_model/score_gt": float(terms["score_gt"]),
            "reward_model/score_negative": _finite_or_none(float(terms["score_negative"])),
            "reward_model/grad_norm": grad_norm,
        }

    def _scores(self, inputs: tuple[Tensor, Tensor, Tensor], index: Tensor) -> Tensor:
        quats, joints, cpf = (x[index] for x in inputs)
        return torch.sigmoid(score_logits(self.model, quats, joints, cpf))

    def save(self, folder: Path, extra: dict[str, Any]) -> dict[str, Any]:
        """Write folder/reward_online and folder/reward_ema (perceptual checkpoints); returns the optimizer state
        for the training state."""
        save_perceptual(folder / ONLINE_FOLDER, self.model, extra)
        save_perceptual(folder / EMA_FOLDER, self.average.model, {**extra, "ema_decay": self.config.reward_ema_decay})
        return self.optimizer.state_dict()

    def restore(self, folder: Path, optimizer_state: dict[str, Any] | None) -> None:
        """Continue from a checkpoint written by `save` (EgogrpoError when it has none)."""
        if optimizer_state is None or not (folder / ONLINE_FOLDER).is_dir() or not (folder / EMA_FOLDER).is_dir():
            raise EgogrpoError(f"{folder}: no online reward model in this checkpoint; cannot resume --reward-online")
        device = next(self.model.parameters()).device
        self.model.load_state_dict(load_perceptual(folder / ONLINE_FOLDER, device)[0].state_dict())
        self.average.model.load_state_dict(load_perceptual(folder / EMA_FOLDER, device)[0].state_dict())
        self.optimizer.load_state_dict(optimizer_state)


#: Where a train-grpo checkpoint keeps the online scorer and its EMA (perceptual checkpoints).
ONLINE_FOLDER, EMA_FOLDER = "reward_online", "reward_ema"


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
