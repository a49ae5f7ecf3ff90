"""What every post-training update rule of `train-grpo` shares (`TrainGRPOConfig.algo`).

An update rule receives one iteration's `UpdateInputs` — this process's rollout rows, the global
advantages, the ground truth of its rows — and returns the iteration's diagnostics. The helpers here
keep results independent of the number of processes: training items are a keyed function of
(seed, iteration, epoch); each process trains the items of its own rows, divides its losses by the
GLOBAL item count of the optimizer step, and the gradients are summed over processes by hand (so
processes may hold different numbers of items).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.config import DenoiserConfig, TrainGRPOConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.model import noise
from egogrpo.model.policy import DiffusionPolicy, Rollout, RolloutIds
from egogrpo.train.anchor import AnchorLoss


@dataclass(frozen=True, eq=False)
class UpdateInputs:
    """One iteration's update, on one process.

    rollout:    this process's rows as groups of one, (n, 1, …); `ids` its streams
    advantages: (B, G) group-relative advantages of EVERY row of the iteration (all processes)
    local_rows: (n,) global flat index b·G + g of each local row
    crops:      (n,) the ground truth each local row is scored against (its condition's crop)
    body:       the body model on the training device (rewards)
    reference:  the frozen prior (kl_weight > 0) or None
    anchor:     the anchor loss (anchor_weight > 0), added to every optimizer step, or None
    """

    config: TrainGRPOConfig
    policy: DiffusionPolicy
    model: torch.nn.Module
    reference: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    accelerator: object
    iteration: int
    rollout: Rollout
    ids: RolloutIds
    advantages: Tensor
    local_rows: Tensor
    crops: MotionCrop
    body: BodyModel
    model_config: DenoiserConfig
    anchor: AnchorLoss | None = None


#: item_loss(local_rows (m,), positions (m,), epoch) -> per-item losses (m,), differentiable
ItemLoss = Callable[[Tensor, Tensor, int], Tensor]


def trained_positions(config: TrainGRPOConfig, iteration: int, epoch: int, num_rows: int, num_mdp: int) -> Tensor:
    """(num_rows, n) positions in 0 … num_mdp−1 trained for every row: a keyed random subset of n per row."""
    n = num_mdp if config.train_steps_per_trajectory is None else min(config.train_steps_per_trajectory, num_mdp)
    keys = noise.stream_key(config.seed, noise.PURPOSE_SUBSET, iteration, epoch, torch.arange(num_rows))
    return noise.uniform(keys, (num_mdp,)).argsort(dim=-1)[:, :n]


def transition_order(config: TrainGRPOConfig, iteration: int, epoch: int, count: int) -> Tensor:
    """A keyed permutation of the global list of (row, position) pairs."""
    keys = noise.stream_key(config.seed, noise.PURPOSE_SHUFFLE, iteration, epoch)
    return noise.uniform(keys, (count,)).argsort()


def optimize_items(
    inputs: UpdateInputs,
    positions: Callable[[int], Tensor],
    item_loss: ItemLoss,
    skip_rows: Tensor | None = None,
    before_first_step: Callable[[], None] | None = None,
    block: int = 1,
) -> dict[str, float]:
    """`inner_epochs` passes over the global (row, position) items, shuffled and cut into `updates_per_epoch`
    optimizer steps of `micro_batch`-sized forward/backward passes (each step plus the anchor loss when configured); returns loss,
    grad_norm, item count (and anchor_loss).

    positions(epoch) -> (B·G, n) the positions each global row trains in that epoch; skip_rows (B·G,) bool:
    rows whose items contribute nothing (e.g. Â = 0) and are not computed (they still count in the divisor).
    before_first_step: called on every process once the first step's gradients exist, before θ changes
    (GRPO's ratio check). block: rows b·block … b·block + block − 1 (a group) share their positions, and the
    items of one position of such a block stay in one optimizer step (so an advantage-weighted sum over the
    group's members keeps its zero-sum baseline); 1: items are shuffled one by one.
    """
    config, accelerator = inputs.config, inputs.accelerator
    device = inputs.rollout.latents.device
    first_row, num_local = int(inputs.local_rows[0]), inputs.local_rows.numel()
    losses, grad_norms, anchor_losses = [], [], []
    step = inputs.iteration * config.inner_epochs * config.updates_per_epoch  # the run's optimizer step counter
    for epoch in range(config.inner_epochs):
        chosen = positions(epoch)  # (R, n)
        blocks, n = chosen.shape[0] // block, chosen.shape[1]
        block_rows = torch.arange(blocks * block).reshape(blocks, 1, block).expand(blocks, n, block)
        block_pos = chosen.reshape(blocks, block, n).transpose(1, 2)  # (blocks, n, block)
        block_rows, block_pos = block_rows.reshape(blocks * n, block), block_pos.reshape(blocks * n, block)
        order = transition_order(config, inputs.iteration, epoch, blocks * n)
        for chunk in order.tensor_split(config.updates_per_epoch):
            rows, pos = block_rows[chunk].flatten(), block_pos[chunk].flatten()
            total = rows.numel()  # items in this optimizer step over all processes
            mine = (rows >= first_row) & (rows < first_row + num_local)
            if skip_rows is not None:
                mine &= ~skip_rows.cpu()[rows]
            rows, pos = rows[mine], pos[mine]
            inputs.optimizer.zero_grad(set_to_none=False)
            for micro in torch.arange(rows.numel()).split(config.micro_batch):
                loss = item_loss(rows[micro] - first_row, pos[micro], epoch)
                (loss.sum() / total).backward()
                losses.append(loss.detach())
            if before_first_step is not None and epoch == 0 and not grad_norms:
                before_first_step()
            if inputs.anchor is not None:
                anchor_losses.append(inputs.anchor.backward(inputs.model, step))
            step += 1
            active = int(accelerator.reduce(torch.tensor(rows.numel(), device=device), "sum"))
            if active == 0 and inputs.anchor is None:  # nothing to learn from: Adam's momentum alone should not move θ
                grad_norms.append(0.0)
                continue
            grad_norms.append(apply_gradients(inputs))
    loss = summary(cat(losses, device), accelerator)
    stats = {"loss": loss["mean"], "grad_norm": sum(grad_norms) / len(grad_norms), "trained_transitions": loss["count"]}
    if anchor_losses:  # this process's rows (rank 0's is logged)
        stats["anchor_loss"] = sum(anchor_losses) / len(anchor_losses)
    return stats


def apply_gradients(inputs: UpdateInputs) -> float:
    """Sum the gradients over processes, clip them to `grad_clip`, take the optimizer step; the norm before clipping."""
    sum_gradients(inputs.model, inputs.accelerator)
    trained = [p for p in inputs.model.parameters() if p.requires_grad]
    norm = float(torch.nn.utils.clip_grad_norm_(trained, inputs.config.grad_clip))
    inputs.optimizer.step()
    return norm


def sum_gradients(model: torch.nn.Module, accelerator) -> None:
    """Sum every parameter's gradient over processes (each local loss was divided by the global count)."""
    if accelerator.num_processes == 1:
        return
    for p in model.parameters():
        if not p.requires_grad:  # frozen (e.g. --freeze-condition-encoder)
            continue
        grad = p.grad if p.grad is not None else torch.zeros_like(p)  # a process may have had no item
        p.grad = accelerator.reduce(grad, reduction="sum")


def summary(values: Tensor, accelerator) -> dict[str, float]:
    """Count, mean, mean square, min and max of values spread over processes (of unequal lengths)."""
    device = values.device
    sums = torch.stack(
        [torch.tensor(float(values.numel()), device=device), values.double().sum().float(), values.square().sum()]
    )
    low = values.min() if values.numel() else torch.tensor(math.inf, device=device)
    high = values.max() if values.numel() else torch.tensor(-math.inf, device=device)
    if accelerator.num_processes > 1:
        import torch.distributed as dist

        sums, low, high = sums.double(), low.clone(), high.clone()
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
    count = int(sums[0])
    if count == 0:  # nothing trained this iteration (every group degenerate)
        return {"count": 0, "mean": 0.0, "mean_square": 0.0, "min": 1.0, "max": 1.0}
    return {
        "count": count,
        "mean": float(sums[1]) / count,
        "mean_square": float(sums[2]) / count,
        "min": float(low),
        "max": float(high),
    }


def cat(values: list[Tensor], device: torch.device) -> Tensor:
    return torch.cat(values) if values else torch.zeros(0, device=device)
