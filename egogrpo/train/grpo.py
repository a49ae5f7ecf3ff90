"""`egogrpo train-grpo`: MotionGRPO post-training of a motion prior (paper Algorithm 1).

A linear loop over iterations; each iteration is a pure function of (seed, iteration) and the policy:

1. data:    `batch_groups` ground-truth crops of the train split (the same on every process);
2. perturb: Perlin noise on each condition's head translation (`train.perlin`), one per group or member;
3. rollout: `group_size` members per condition from the current policy (π_old) under no_grad; each process
            samples its contiguous share of the B·G rows (a group may span processes);
4. reward:  the joint rewards (and the visual reward when a scorer is given) of every member, gathered
            from all processes before the group-relative advantages are computed (`train.rewards`);
5. update:  inner epochs over a random subset of each trajectory's MDP transitions, shuffled and cut into
            optimizer steps; gradients are summed over processes by hand (so processes may hold different
            numbers of transitions), clipped, and applied with AdamW (`train.grpo_objective`).

All randomness is addressed by keys (`model.noise`), so results do not depend on the number of processes,
and a resumed run continues exactly. Rank 0 writes the run directory (`train.run_dir`): config.json,
meta.json, metrics.jsonl (every reward term, group std, degenerate groups, diversity, ratio statistics,
clip fraction, approximate KL, grad norm, seconds per phase, periodic val MPJPE / PA-MPJPE),
checkpoints/iter_N (a normal prior checkpoint + training_state.pt), `latest`, `best` (lowest val MPJPE)
and reward_curves.png.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from egogrpo.body import BodyModel, load_body_model
from egogrpo.config import DenoiserConfig, TrainGRPOConfig
from egogrpo.data.crops import MotionCrop, MotionCropDataset, collate_crops
from egogrpo.errors import EgogrpoError
from egogrpo.eval.metrics import intra_group_diversity
from egogrpo.eval.windows import sampled_errors, split_windows, truth_joints
from egogrpo.model import noise
from egogrpo.model.checkpoint import body_model_matches, load_checkpoint, resolve_checkpoint, save_checkpoint
from egogrpo.model.policy import DiffusionPolicy, Rollout, RolloutIds, Transitions
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim, state_layout
from egogrpo.train.grpo_objective import gaussian_mean_kl, grpo_objective
from egogrpo.train.perlin import perlin_keys, perturbed_condition
from egogrpo.train.plots import plot_reward_curves
from egogrpo.train.prior import StepBatches, _EpochIndexed, check_training_data
from egogrpo.train.rewards import JOINT_REWARDS, group_advantages, reward_joints, reward_terms
from egogrpo.train.run_dir import (
    append_metrics,
    latest_checkpoint,
    log_scalars,
    point_to,
    prepare_run_dir,
    read_metrics,
    restore_latest,
    save_training_state,
    tensorboard_writer,
    truncate_metrics,
)

#: TrainGRPOConfig fields that may change when a run is resumed.
RESUMABLE = {"resume", "iterations", "val_every", "checkpoint_every", "micro_batch"}
#: A scorer maps a state with leading (N, 1) and its crops (N,) to perceptual scores (N, 1) in (0, 1).
Scorer = Callable[[MotionState, MotionCrop], Tensor]


@dataclass
class GRPOSummary:
    run_dir: Path
    final_iteration: int
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    seconds: float


def validate_config(config: TrainGRPOConfig) -> None:
    """EgogrpoError naming the option for any value the loop cannot run with (checked before any work)."""
    minimum = {
        "iterations": 1, "group_size": 2, "batch_groups": 1, "crop_length": 1, "inner_epochs": 1,
        "updates_per_epoch": 1, "micro_batch": 1, "val_seeds": 1, "checkpoint_every": 1, "val_every": 0,
    }  # fmt: skip
    for name, least in minimum.items():
        if getattr(config, name) < least:
            raise EgogrpoError(f"--{name.replace('_', '-')} must be ≥ {least}, got {getattr(config, name)}")
    for name, option in (("learning_rate", "--lr"), ("weight_decay", "--weight-decay"), ("grad_clip", "--grad-clip")):
        value = getattr(config, name)
        if not (math.isfinite(value) and (value > 0 or (name == "weight_decay" and value == 0))):
            raise EgogrpoError(f"{option} must be a finite positive number, got {value}")
    if not (math.isfinite(config.kl_weight) and config.kl_weight >= 0):
        raise EgogrpoError(f"--kl-weight must be a finite number ≥ 0, got {config.kl_weight}")
    if config.clip_range is not None and not 0 < config.clip_range < 1:
        raise EgogrpoError(f"--clip-range must be in (0, 1), got {config.clip_range}")
    if config.seed < 0:
        raise EgogrpoError(f"--seed must be ≥ 0, got {config.seed}")
    if config.train_steps_per_trajectory is not None and config.train_steps_per_trajectory < 1:
        raise EgogrpoError(f"--train-steps must be ≥ 1, got {config.train_steps_per_trajectory}")
    p = config.perlin
    if not (math.isfinite(p.amplitude) and p.amplitude >= 0):
        raise EgogrpoError(f"--perlin-lambda must be a finite number ≥ 0 (metres), got {p.amplitude}")
    if p.scope not in ("group", "member"):
        raise EgogrpoError(f"--perlin-scope must be 'group' or 'member', got {p.scope!r}")
    if not (math.isfinite(config.reward.std_floor) and config.reward.std_floor > 0):
        raise EgogrpoError(f"--std-floor must be a finite positive number, got {config.reward.std_floor}")
    if config.reward.combine not in ("mean", "sum"):
        raise EgogrpoError(f"reward combine must be 'mean' or 'sum', got {config.reward.combine!r}")


def batch_arithmetic(config: TrainGRPOConfig, world: int, num_mdp: int) -> str:
    """One line: rollouts, transitions and optimizer steps per iteration, split over processes."""
    rollouts = config.batch_groups * config.group_size
    per_rollout = (
        num_mdp if config.train_steps_per_trajectory is None else min(config.train_steps_per_trajectory, num_mdp)
    )
    return (
        f"train-grpo: {config.batch_groups} conditions × G = {config.group_size} = {rollouts} rollouts per iteration "
        f"({rollouts // world} per process × {world}); {per_rollout} of {num_mdp} MDP transitions trained per rollout "
        f"× {config.inner_epochs} epoch(s) = {rollouts * per_rollout * config.inner_epochs} transitions in "
        f"{config.inner_epochs * config.updates_per_epoch} optimizer step(s), micro-batch {config.micro_batch}; "
        f"Perlin λ = {config.perlin.amplitude} m per {config.perlin.scope}; lr {config.learning_rate}; "
        f"iterations {config.iterations}"
    )


def log_prob_weights(model: DenoiserConfig, fields: tuple[str, ...] | None) -> Tensor | None:
    """Per-feature weights of the log-probability: 1 on `fields`, 0 elsewhere (None: exact, unweighted)."""
    if fields is None:
        return None
    layout = state_layout(model.num_betas, model.include_hands)
    known = [name for name, _ in layout]
    unknown = [f for f in fields if f not in known]
    if unknown or not fields:
        raise EgogrpoError(f"--log-prob-fields: unknown field(s) {unknown}; choose from {', '.join(known)}")
    return torch.cat([torch.full((width,), float(name in fields)) for name, width in layout])


# --- one iteration's pieces ------------------------------------------------------------------------


def iteration_crops(dataset: MotionCropDataset, config: TrainGRPOConfig, iteration: int) -> MotionCrop:
    """The iteration's `batch_groups` ground-truth crops (identical on every process)."""
    items = StepBatches(len(dataset), config.batch_groups, 0, 1, config.seed, 0, 0).batch_items(iteration)
    indexed = _EpochIndexed(dataset)
    return collate_crops([indexed[i] for i in items])


def trained_positions(config: TrainGRPOConfig, iteration: int, epoch: int, num_rows: int, num_mdp: int) -> Tensor:
    """(num_rows, n) MDP positions trained for every row of the global batch: a keyed random subset per row."""
    n = num_mdp if config.train_steps_per_trajectory is None else min(config.train_steps_per_trajectory, num_mdp)
    keys = noise.stream_key(config.seed, noise.PURPOSE_SUBSET, iteration, epoch, torch.arange(num_rows))
    return noise.uniform(keys, (num_mdp,)).argsort(dim=-1)[:, :n]


def transition_order(config: TrainGRPOConfig, iteration: int, epoch: int, count: int) -> Tensor:
    """A keyed permutation of the global list of (row, position) pairs."""
    keys = noise.stream_key(config.seed, noise.PURPOSE_SHUFFLE, iteration, epoch)
    return noise.uniform(keys, (count,)).argsort()


def validation_errors(
    model: torch.nn.Module, config: TrainGRPOConfig, model_config: DenoiserConfig, body: BodyModel, crops: MotionCrop
) -> dict[str, float]:
    """Val-split MPJPE / PA-MPJPE (mm), the body placed on the ground-truth CPF, over `val_seeds` seeds."""
    errors = sampled_errors(model, model_config, config.sampler, body, crops, tuple(range(config.val_seeds)))
    return {f"val/{name}_mm": value for name, value in errors.items()}


# --- the loop -----------------------------------------------------------------------------------------


def train_grpo(
    config: TrainGRPOConfig,
    progress: Callable[[int, int, dict], None] | None = None,
    scorer: Scorer | None = None,
    announce: Callable[[str], None] | None = None,
) -> GRPOSummary:
    """Post-train (or resume) a prior as configured; returns where the checkpoints are.

    `announce` receives the batch arithmetic once every input has been checked (rank 0).
    """
    from accelerate import Accelerator  # slow to import; only training needs it

    start_time = time.perf_counter()
    validate_config(config)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    B, G = config.batch_groups, config.group_size
    if (B * G) % world:
        raise EgogrpoError(f"{B} groups × {G} members = {B * G} rollouts do not split evenly over {world} processes")
    prior_folder = resolve_checkpoint(config.prior)
    model, model_config, meta = load_checkpoint(prior_folder, device="cpu")
    body = load_body_model(config.body)
    if not body_model_matches(str(meta["body_model_id"]), body.model_id):
        raise EgogrpoError(
            f"{prior_folder}: the prior was trained for body model {meta['body_model_id']}, but --body is {body.model_id}"
        )
    dataset = MotionCropDataset(
        config.data, splits=config.train_splits, crop_length=config.crop_length, seed=config.seed, preload=True
    )
    check_training_data(config.data, dataset, body, model_config)
    dim_weights = log_prob_weights(model_config, config.log_prob_fields)
    val_windows = None
    if config.val_every:
        val_windows = split_windows(config.data, config.val_split, config.crop_length, config.val_windows)
        if val_windows is None:
            raise EgogrpoError(f"{config.data}: no {config.crop_length}-frame window in split {config.val_split!r}")
    policy = DiffusionPolicy(
        NoiseSchedule.cosine(), config.sampler, body_rotation_projection(model_config.num_betas), dim_weights, device
    )
    if not policy.mdp_steps:
        raise EgogrpoError("the sampler has no stochastic transition: nothing to train (check --sde-window)")
    run_dir = Path(config.run_dir)
    if accelerator.is_main_process:
        prepare_run_dir(config, run_dir, config.resume, RESUMABLE, world, str(device))
        if announce is not None:
            announce(batch_arithmetic(config, world, len(policy.mdp_steps)))
    accelerator.wait_for_everyone()

    model.to(device).eval()  # no dropout: rollouts and updates see the same function
    reference = copy.deepcopy(model).requires_grad_(False) if config.kl_weight > 0 else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    start, best_val = 0, math.inf
    restored = restore_latest(run_dir, model, optimizer) if config.resume else None
    checkpoint = None if restored is None else restored[0]
    if restored is not None:
        start, best_val = int(restored[1]["iteration"]), float(restored[1]["best_val_mpjpe"])
        if accelerator.is_main_process:
            truncate_metrics(run_dir / "metrics.jsonl", start, key="iteration")

    state_dim = packed_dim(model_config.num_betas, model_config.include_hands)
    per_rank = B * G // world
    local_rows = torch.arange(rank * per_rank, (rank + 1) * per_rank)
    body_device = body.to(device)
    names = JOINT_REWARDS + (("vis",) if scorer is not None else ())
    last_checkpoint, best_checkpoint = checkpoint, latest_checkpoint(run_dir, "best")

    writer = tensorboard_writer(run_dir) if accelerator.is_main_process else None
    if val_windows is not None and start == 0 and accelerator.is_main_process:
        initial = {
            "iteration": 0,
            **validation_errors(model, config, model_config, body_device, val_windows.crops.to(device)),
        }
        append_metrics(run_dir / "metrics.jsonl", initial)
        best_val = initial["val/mpjpe_mm"]
        if progress is not None:
            progress(0, config.iterations, initial)
    accelerator.wait_for_everyone()

    iteration = start
    for iteration in range(start, config.iterations):
        times: dict[str, float] = {}
        tick = time.perf_counter()
        crops = iteration_crops(dataset, config, iteration).to(device)
        keys = perlin_keys(config.seed, iteration, torch.arange(B), torch.arange(G), config.perlin.scope).to(device)
        cond = perturbed_condition(crops, keys, config.perlin, model_config).flatten(0, 1)[local_rows]
        ids = RolloutIds(config.seed, iteration, local_rows // G, (local_rows % G)[:, None], config.share_initial_noise)
        rollout = policy.rollout(model, cond[:, None], ids, state_dim)
        times["rollout"] = _lap(tick)

        tick = time.perf_counter()
        row_crops = _select_crops(crops, (local_rows // G).to(device))
        final = MotionState.unpack(rollout.final, model_config.num_betas, model_config.include_hands)  # (n, 1, …)
        with torch.no_grad():
            placed = reward_joints(body_device, final, row_crops)  # forward kinematics once per iteration
            terms = reward_terms(body_device, final, row_crops, config.reward, scorer=scorer, joints=placed)
        joints = placed[0][:, 0]  # (n, T, 22, 3)
        local_rewards = torch.stack([terms[name][:, 0] for name in names], dim=-1)  # (n, K)
        rewards = accelerator.gather(local_rewards).reshape(B, G, len(names))
        advantages = group_advantages(rewards, config.reward)
        all_joints = accelerator.gather(joints.contiguous()).reshape(B, G, *joints.shape[1:])
        times["reward"] = _lap(tick)

        tick = time.perf_counter()
        stats = _update(
            config,
            policy,
            model,
            reference,
            optimizer,
            rollout,
            advantages.advantages,
            local_rows,
            iteration,
            accelerator,
        )
        times["update"] = _lap(tick)

        done = iteration + 1
        record = {
            "iteration": done,
            **{f"reward/{name}": float(rewards[..., k].mean()) for k, name in enumerate(names)},
            "reward/total": float(rewards.sum(dim=-1).mean()),
            **{f"group_std/{name}": float(advantages.group_std[:, k].mean()) for k, name in enumerate(names)},
            "degenerate_fraction": float(advantages.degenerate.float().mean()),
            "diversity_m": float(torch.stack([intra_group_diversity(g) for g in all_joints]).mean()),
            "mpjpe_train_mm": float(1000 * (all_joints - truth_joints(crops)[:, None]).norm(dim=-1).mean()),
            **stats,
            **{f"seconds/{k}": v for k, v in times.items()},
        }
        is_checkpoint = done % config.checkpoint_every == 0 or done == config.iterations
        if val_windows is not None and (done % config.val_every == 0 or done == config.iterations):
            if accelerator.is_main_process:
                tick = time.perf_counter()
                record.update(validation_errors(model, config, model_config, body_device, val_windows.crops.to(device)))
                record["seconds/val"] = _lap(tick)
        if not all(math.isfinite(v) for v in record.values() if isinstance(v, float)):
            raise EgogrpoError(f"{run_dir}: a non-finite value at iteration {done} ({_non_finite(record)}); lower --lr")
        if accelerator.is_main_process:
            append_metrics(run_dir / "metrics.jsonl", record)
            log_scalars(writer, record, "iteration")
            if is_checkpoint:
                improved = record.get("val/mpjpe_mm", math.inf) < best_val
                best_val = min(best_val, record.get("val/mpjpe_mm", math.inf))
                last_checkpoint = _save(
                    run_dir, done, model, model_config, optimizer, config, body, best_val, prior_folder
                )
                if improved:
                    point_to(run_dir, "best", last_checkpoint)
                    best_checkpoint = last_checkpoint
                plot_reward_curves(read_metrics(run_dir / "metrics.jsonl"), run_dir / "reward_curves.png")
            if progress is not None:
                progress(done, config.iterations, record)
        accelerator.wait_for_everyone()
        iteration = done
    return GRPOSummary(run_dir, iteration, last_checkpoint, best_checkpoint, time.perf_counter() - start_time)


def _update(
    config: TrainGRPOConfig,
    policy: DiffusionPolicy,
    model: torch.nn.Module,
    reference: torch.nn.Module | None,
    optimizer: torch.optim.Optimizer,
    rollout: Rollout,
    advantages: Tensor,
    local_rows: Tensor,
    iteration: int,
    accelerator,
) -> dict[str, float]:
    """Inner epochs of GRPO updates on this process's rows; returns the diagnostics of the iteration."""
    num_rows, num_mdp = advantages.numel(), len(rollout.mdp_steps)
    first_row = int(local_rows[0])
    flat_advantages = advantages.flatten().to(rollout.latents.device)
    log_ratios, clipped, kls, grad_norms, losses = [], [], [], [], []
    old_override: dict[tuple[int, int], Tensor] = {}
    for epoch in range(config.inner_epochs):
        positions = trained_positions(config, iteration, epoch, num_rows, num_mdp)  # (rows, n)
        pairs_row = torch.arange(num_rows)[:, None].expand_as(positions).flatten()
        pairs_pos = positions.flatten()
        order = transition_order(config, iteration, epoch, pairs_row.numel())
        for chunk in order.tensor_split(config.updates_per_epoch):
            total = chunk.numel()  # transitions in this optimizer step over all processes
            rows, pos = pairs_row[chunk], pairs_pos[chunk]
            mine = (rows >= first_row) & (rows < first_row + local_rows.numel())
            if reference is None:  # rows of degenerate groups (Â = 0) contribute nothing: skip their compute
                mine &= flat_advantages.cpu()[rows] != 0
            rows, pos = rows[mine], pos[mine]
            optimizer.zero_grad(set_to_none=False)
            for micro in torch.arange(rows.numel()).split(config.micro_batch):
                batch = policy.transitions(rollout, rows[micro] - first_row, pos[micro])
                key_rows = list(zip(rows[micro].tolist(), pos[micro].tolist(), strict=True))
                if config.recompute_old_log_probs:
                    old = [old_override.get(k) for k in key_rows]
                    if any(o is None for o in old):
                        with torch.no_grad():
                            fresh, _ = policy.log_prob_and_mean(model, batch)
                        for k, value in zip(key_rows, fresh, strict=True):
                            old_override.setdefault(k, value)
                        old = [old_override[k] for k in key_rows]
                    batch = _with_old(batch, torch.stack(old))
                log_prob, mean = policy.log_prob_and_mean(model, batch)
                terms = grpo_objective(log_prob, batch.old_log_prob, flat_advantages[rows[micro]], config.clip_range)
                loss = terms.loss
                if reference is not None:
                    with torch.no_grad():
                        _, reference_mean = policy.log_prob_and_mean(reference, batch)
                    kl = gaussian_mean_kl(mean, reference_mean, policy.step_std(batch.step))
                    loss = loss + config.kl_weight * kl
                    kls.append(kl.detach())
                (loss.sum() / total).backward()
                log_ratios.append(terms.log_ratio)
                clipped.append(terms.clipped)
                losses.append(loss.detach())
            if epoch == 0 and not grad_norms:  # before the iteration's first update θ = θ_old: ρ must be 1
                _check_first_ratio(_summary(_cat(log_ratios, flat_advantages.device), accelerator))
            active = int(accelerator.reduce(torch.tensor(rows.numel(), device=flat_advantages.device), "sum"))
            if active == 0:  # every group degenerate: no signal, and Adam's momentum alone should not move θ
                grad_norms.append(0.0)
                continue
            _sum_gradients(model, accelerator)
            grad_norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)))
            optimizer.step()
    device = rollout.latents.device
    log_ratio = _summary(_cat(log_ratios, device), accelerator)
    ratio = _summary(torch.exp(_cat(log_ratios, device)), accelerator)
    loss = _summary(_cat(losses, device), accelerator)
    stats = {
        "loss": loss["mean"],
        "ratio/mean": ratio["mean"],
        "ratio/min": ratio["min"],
        "ratio/max": ratio["max"],
        "clip_fraction": _summary(_cat(clipped, device), accelerator)["mean"],
        "approx_kl": 0.5 * log_ratio["mean_square"],
        "grad_norm": sum(grad_norms) / len(grad_norms),
        "trained_transitions": loss["count"],
    }
    if kls:
        stats["kl_to_prior"] = _summary(_cat(kls, device), accelerator)["mean"]
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


def _summary(values: Tensor, accelerator) -> dict[str, float]:
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


# --- small helpers ------------------------------------------------------------------------------------


def _lap(tick: float) -> float:
    return time.perf_counter() - tick


def _cat(values: list[Tensor], device: torch.device) -> Tensor:
    return torch.cat(values) if values else torch.zeros(0, device=device)


def _non_finite(record: dict) -> str:
    return ", ".join(k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v))


def _select_crops(crops: MotionCrop, index: Tensor) -> MotionCrop:
    """Crop b of every row (the ground truth each rollout is scored against)."""
    return crops._map(lambda t: t[index])


def _with_old(batch: Transitions, old: Tensor) -> Transitions:
    return dataclasses.replace(batch, old_log_prob=old)


def _sum_gradients(model: torch.nn.Module, accelerator) -> None:
    """Sum every parameter's gradient over processes (each local loss was divided by the global count)."""
    if accelerator.num_processes == 1:
        return
    for p in model.parameters():
        grad = p.grad if p.grad is not None else torch.zeros_like(p)  # a process may have had no transition
        p.grad = accelerator.reduce(grad, reduction="sum")


def _save(
    run_dir: Path,
    iteration: int,
    model: torch.nn.Module,
    model_config: DenoiserConfig,
    optimizer: torch.optim.Optimizer,
    config: TrainGRPOConfig,
    body: BodyModel,
    best_val: float,
    prior_folder: Path,
) -> Path:
    """A complete checkpoint: a normal prior checkpoint + the training state, then the `latest` pointer."""
    folder = run_dir / "checkpoints" / f"iter_{iteration:06d}"
    extra = {"iteration": iteration, "algorithm": "grpo", "prior": str(prior_folder), "data": config.data}
    save_checkpoint(folder, model, model_config, body_model_id=body.model_id, extra=extra)
    save_training_state(
        folder, {"optimizer": optimizer.state_dict(), "iteration": iteration, "best_val_mpjpe": best_val}
    )
    point_to(run_dir, "latest", folder)
    return folder
