"""`egogrpo train-grpo`: MotionGRPO post-training of a motion prior (paper Algorithm 1).

A linear loop over iterations; each iteration is a pure function of (seed, iteration) and the policy:

1. data:    `batch_groups` ground-truth crops of the train split (the same on every process);
2. perturb: Perlin noise on each condition's head translation (`train.perlin`), one per group or member;
3. rollout: `group_size` members per condition from the current policy (π_old) under no_grad; each process
            samples its contiguous share of the B·G rows (a group may span processes);
4. reward:  the joint rewards (and the visual reward when a scorer is given) of every member, gathered
            from all processes before the group-relative advantages are computed (`train.rewards`); with
            --reward-online the visual reward comes from an EMA copy of a scorer that, every
            `reward_update_every` iterations, takes an InfoNCE step on this iteration's rollouts
            (`train.online_scorer.OnlineScorer`);
5. update:  inner epochs over a random subset of each trajectory's MDP transitions, shuffled and cut into
            optimizer steps; gradients are summed over processes by hand (so processes may hold different
            numbers of transitions), clipped, and applied with AdamW (`train.rules.grpo`). `config.algo`
            swaps this step alone for a cheaper rule on the same rollouts (`train.rules.matching`: AWM and
            DiffusionNFT; `train.rules.draft`: DRaFT-K); every other step, the diagnostics and resume are shared.

All randomness is addressed by keys (`model.noise`), so results do not depend on the number of processes,
and a resumed run continues exactly. Rank 0 writes the run directory (`train.run_dir`): config.json,
meta.json, metrics.jsonl (every reward term, group std, degenerate groups, diversity, ratio statistics,
clip fraction, approximate KL, grad norm, seconds per phase, periodic val MPJPE / PA-MPJPE and, with a
scorer, the held-out correlation of the visual reward with MPJPE; reward_model/* at each online scorer update),
checkpoints/iter_NNNNNNN (a normal prior checkpoint + training_state.pt; with --reward-online also reward_online/ and
reward_ema/, perceptual checkpoints), `latest`, `best` (lowest val MPJPE) and reward_curves.png.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from egogrpo.body import BodyModel, load_body_model
from egogrpo.config import DenoiserConfig, SamplerConfig, TrainGRPOConfig
from egogrpo.data.crops import MotionCrop, MotionCropDataset, collate_crops
from egogrpo.errors import EgogrpoError
from egogrpo.eval.metrics import intra_group_diversity
from egogrpo.eval.windows import split_windows
from egogrpo.model.checkpoint import (
    load_checkpoint_for_body,
    save_checkpoint,
)
from egogrpo.model.denoiser import condition_encoder
from egogrpo.model.perceptual import PerceptualScorer, load_perceptual
from egogrpo.model.placement import truth_joints
from egogrpo.model.policy import NUM_LAST_PREDICTIONS, DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim, state_layout
from egogrpo.tensor_dataclass import map_fields
from egogrpo.train.anchor import AnchorLoss
from egogrpo.train.batching import EpochIndexed, StepBatches
from egogrpo.train.interrupt import StopRequests, stop_requested
from egogrpo.train.online_scorer import OnlineScorer
from egogrpo.train.perlin import perlin_keys, perturbed_condition
from egogrpo.train.plots import plot_reward_curves
from egogrpo.train.prior import check_training_data, validate_augment
from egogrpo.train.rewards import JOINT_REWARDS, group_advantages, reward_joints, reward_terms, visual_reward
from egogrpo.train.rules import rule_for
from egogrpo.train.run_dir import (
    append_metrics,
    checkpoint_folder,
    latest_checkpoint,
    log_scalars,
    point_to,
    prepare_run_dir,
    read_metrics,
    restore_latest,
    save_training_state,
    start_processes,
    tensorboard_writer,
    truncate_metrics,
)
from egogrpo.train.update import UpdateInputs
from egogrpo.train.validation import correlation, validation_errors

#: TrainGRPOConfig fields that may change when a run is resumed.
RESUMABLE = {
    "resume", "iterations", "val_every", "checkpoint_every", "micro_batch", "time_budget_minutes", "budget_clock",
    "device",
}  # fmt: skip
#: What `TrainGRPOConfig.time_budget_minutes` may count: training wall-clock or the process's CPU time.
BUDGET_CLOCKS = ("wall", "cpu")
#: A scorer maps a state with leading (N, 1) and its crops (N,) to perceptual scores (N, 1) in (0, 1).
Scorer = Callable[[MotionState, MotionCrop], Tensor]


@dataclass
class GRPOSummary:
    run_dir: Path
    final_iteration: int
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    seconds: float
    stop_reason: str = "finished"  # "finished", "time budget" or "interrupted" (Ctrl-C: checkpoint kept)


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
    validate_augment(config.augment)
    budget = config.time_budget_minutes
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise EgogrpoError(f"--time-budget must be a finite positive number of minutes, got {budget}")
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
    if config.reward.advantage not in ("normalized", "rank"):
        raise EgogrpoError(f"--advantage must be 'normalized' or 'rank', got {config.reward.advantage!r}")
    rule_for(config.algo).check_config(config)
    if config.sampler.rule == "dpmpp2m":
        raise EgogrpoError("the dpmpp2m sampler is deterministic (inference only): post-train with egoallo or ddim")
    if config.budget_clock not in BUDGET_CLOCKS:
        raise EgogrpoError(f"--budget-clock must be one of {', '.join(BUDGET_CLOCKS)}, got {config.budget_clock!r}")
    if not (math.isfinite(config.anchor_weight) and config.anchor_weight >= 0):
        raise EgogrpoError(f"--anchor-weight must be a finite number ≥ 0, got {config.anchor_weight}")
    if config.anchor_batch < 1:
        raise EgogrpoError(f"--anchor-batch must be ≥ 1, got {config.anchor_batch}")
    if not (math.isfinite(config.nft_beta) and config.nft_beta > 0):
        raise EgogrpoError(f"--nft-beta must be a finite positive number, got {config.nft_beta}")
    validate_online_reward(config)


#: The options of --reward-online: refused without it rather than silently ignored.
ONLINE_ONLY = {
    "reward_update_every": "--reward-update-every", "reward_ema_decay": "--reward-ema-decay",
    "reward_learning_rate": "--reward-lr", "reward_weight_decay": "reward_weight_decay",
    "reward_temperature": "reward_temperature", "reward_min_negative_error": "--reward-min-negative-error",
}  # fmt: skip


def validate_online_reward(config: TrainGRPOConfig) -> None:
    """EgogrpoError naming the option for a --reward-online setting the loop cannot run with."""
    if config.reward_update_every < 1:
        raise EgogrpoError(f"--reward-update-every must be ≥ 1, got {config.reward_update_every}")
    if not (math.isfinite(config.reward_ema_decay) and 0 <= config.reward_ema_decay < 1):
        raise EgogrpoError(f"--reward-ema-decay must be in [0, 1), got {config.reward_ema_decay}")
    for name, zero_ok in (
        ("reward_learning_rate", False), ("reward_weight_decay", True), ("reward_temperature", False),
        ("reward_min_negative_error", True),
    ):  # fmt: skip
        value = getattr(config, name)
        if not (math.isfinite(value) and (value > 0 or (zero_ok and value == 0))):
            kind = "a finite number ≥ 0" if zero_ok else "a finite positive number"
            raise EgogrpoError(f"{ONLINE_ONLY[name]} must be {kind}, got {value}")
    if not config.reward_online:
        defaults = {f.name: f.default for f in dataclasses.fields(TrainGRPOConfig)}
        for name, option in ONLINE_ONLY.items():
            if getattr(config, name) != defaults[name]:
                raise EgogrpoError(f"{option} applies to --reward-online only")
        return
    if config.reward_model is None:
        raise EgogrpoError("--reward-online needs --reward CKPT: the perceptual model it starts from")


def batch_arithmetic(config: TrainGRPOConfig, world: int, policy: DiffusionPolicy) -> str:
    """One line: rollouts, training items and optimizer steps per iteration, split over processes."""
    rollouts = config.batch_groups * config.group_size
    per_rollout, what = rule_for(config.algo).items_per_rollout(config, policy)
    return (
        f"train-grpo --algo {config.algo}: {config.batch_groups} conditions × G = {config.group_size} = {rollouts} "
        f"rollouts per iteration ({rollouts // world} per process × {world}); {what} "
        f"× {config.inner_epochs} epoch(s) = {rollouts * per_rollout * config.inner_epochs} items in "
        f"{config.inner_epochs * config.updates_per_epoch} optimizer step(s), micro-batch {config.micro_batch}; "
        f"Perlin λ = {config.perlin.amplitude} m per {config.perlin.scope}; lr {config.learning_rate}; "
        f"iterations {config.iterations}"
        + (
            f"; online reward model: an InfoNCE step every {config.reward_update_every} iteration(s) on "
            f"{config.batch_groups} conditions × {config.group_size} negatives, lr {config.reward_learning_rate}, "
            f"scored by its EMA (d = {config.reward_ema_decay})"
            if config.reward_online
            else ""
        )
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
    indexed = EpochIndexed(dataset)
    return collate_crops([indexed[i] for i in items])


def validation_sampler(config: TrainGRPOConfig) -> SamplerConfig:
    """The rollout sampler made stochastic at every step (its SDE window dropped): the SDE window is a training
    device, and the model is used, and evaluated, with the full sampler."""
    return dataclasses.replace(config.sampler, stochastic_steps=None)


def grpo_validation(
    model: torch.nn.Module,
    config: TrainGRPOConfig,
    model_config: DenoiserConfig,
    body: BodyModel,
    crops: MotionCrop,
    scorer: Scorer | None = None,
) -> dict[str, float | None]:
    """`train.validation.validation_errors` of the run's val windows with `validation_sampler`, and with a scorer
    the visual reward of those samples."""

    def visual(states: MotionState) -> Tensor:
        return visual_reward(scorer(states, crops), config.reward)

    sampler = validation_sampler(config)
    return validation_errors(
        model, model_config, sampler, body, crops, config.val_seeds, visual if scorer is not None else None
    )


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

    start_time = time.perf_counter()
    validate_config(config)
    B, G = config.batch_groups, config.group_size
    accelerator, rank, world, device = start_processes(
        B * G, f"{B} groups × {G} members = {B * G} rollouts", config.device
    )
    body = load_body_model(config.body)
    prior_folder, model, model_config, _ = load_checkpoint_for_body(config.prior, body.model_id)
    dataset = MotionCropDataset(
        config.data, splits=config.train_splits, crop_length=config.crop_length, seed=config.seed, preload=True,
        augment=config.augment, body=body,
    )  # fmt: skip
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
    rule = rule_for(config.algo)
    online = None
    if config.reward_online:
        if scorer is not None:
            raise EgogrpoError("--reward-online trains the model of --reward: pass reward_model, not a scorer")
        if policy.num_transitions < NUM_LAST_PREDICTIONS:
            raise EgogrpoError(
                f"the sampler has {policy.num_transitions} steps; --reward-online negatives need ≥ {NUM_LAST_PREDICTIONS}"
            )
        online = OnlineScorer(load_perceptual(config.reward_model, device=device)[0], body.to(device), config)
        scorer = online.scorer  # R_vis from the EMA copy
    elif config.reward_model is not None and scorer is None:
        scorer = PerceptualScorer(load_perceptual(config.reward_model, device=device)[0], body)  # frozen
    rule.check_policy(config, policy, scorer is not None)
    run_dir = Path(config.run_dir)
    if accelerator.is_main_process:
        prepare_run_dir(config, run_dir, config.resume, RESUMABLE, world, str(device))
        if announce is not None:
            announce(batch_arithmetic(config, world, policy))
    accelerator.wait_for_everyone()

    if config.anchor_batch % world:
        raise EgogrpoError(f"--anchor-batch {config.anchor_batch} must be divisible by the {world} processes")
    model.to(device).eval()  # no dropout: rollouts and updates see the same function
    reference = copy.deepcopy(model).requires_grad_(False) if config.kl_weight > 0 else None
    if config.freeze_condition_encoder:
        condition_encoder(model).requires_grad_(False)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=config.learning_rate, weight_decay=config.weight_decay)
    anchor = AnchorLoss(dataset, config, model_config, rank, world, device) if config.anchor_weight > 0 else None
    start, best_val = 0, math.inf
    restored = restore_latest(run_dir, model, optimizer) if config.resume else None
    checkpoint = None if restored is None else restored[0]
    if restored is not None:
        start, best_val = int(restored[1]["iteration"]), float(restored[1]["best_val_mpjpe"])
        if online is not None:
            online.restore(restored[0], restored[1].get("reward_optimizer"))
        if accelerator.is_main_process:
            truncate_metrics(run_dir / "metrics.jsonl", start, key="iteration")
    clock = _RunClock.resumed(run_dir / "metrics.jsonl", start)

    state_dim = packed_dim(model_config.num_betas, model_config.include_hands)
    per_rank = B * G // world
    local_rows = torch.arange(rank * per_rank, (rank + 1) * per_rank)
    body_device = body.to(device)
    names = JOINT_REWARDS + (("vis",) if scorer is not None else ())
    needs = rule.rollout_needs(config, policy)
    last_checkpoint, best_checkpoint = checkpoint, latest_checkpoint(run_dir, "best")

    writer = tensorboard_writer(run_dir) if accelerator.is_main_process else None
    if val_windows is not None and start == 0 and accelerator.is_main_process:
        initial = {
            "iteration": 0,
            **grpo_validation(model, config, model_config, body_device, val_windows.crops.to(device), scorer),
        }
        append_metrics(run_dir / "metrics.jsonl", initial)
        best_val = initial["val/mpjpe_mm"]
        if progress is not None:
            progress(0, config.iterations, initial)
    accelerator.wait_for_everyone()

    if restored is not None and progress is not None and accelerator.is_main_process:
        progress(start, config.iterations, {"resumed": True})
    iteration, stop_reason = start, "finished"
    with StopRequests() as stops:  # Ctrl-C: stop after this iteration with a checkpoint
        for iteration in range(start, config.iterations):
            times: dict[str, float] = {}
            clock.start_iteration()
            tick = time.perf_counter()
            crops = iteration_crops(dataset, config, iteration).to(device)
            keys = perlin_keys(config.seed, iteration, torch.arange(B), torch.arange(G), config.perlin.scope).to(device)
            cond = perturbed_condition(crops, keys, config.perlin, model_config).flatten(0, 1)[local_rows]
            ids = RolloutIds(
                config.seed, iteration, local_rows // G, (local_rows % G)[:, None], config.share_initial_noise
            )
            negatives_due = online is not None and online.is_due(iteration)  # the scorer needs the last x̂₀
            rollout = policy.rollout(
                model, cond[:, None], ids, state_dim, record=needs.record, keep=needs.keep,
                last_predictions=needs.last_predictions or negatives_due,
            )  # fmt: skip
            times["rollout"] = _lap(tick)

            tick = time.perf_counter()
            row_crops = _select_crops(crops, (local_rows // G).to(device))
            final = MotionState.unpack(rollout.final, model_config.num_betas, model_config.include_hands)  # (n, 1, …)
            with torch.no_grad():
                placed = reward_joints(body_device, final, row_crops)  # forward kinematics once per iteration
                terms = reward_terms(
                    body_device, final, row_crops, config.reward, scorer=scorer, condition=row_crops, joints=placed
                )
            joints = placed[0][:, 0]  # (n, T, 22, 3)
            local_rewards = torch.stack([terms[name][:, 0] for name in names], dim=-1)  # (n, K)
            rewards = accelerator.gather(local_rewards).reshape(B, G, len(names))
            advantages = group_advantages(rewards, config.reward)
            all_joints = accelerator.gather(joints.contiguous()).reshape(B, G, *joints.shape[1:])
            times["reward"] = _lap(tick)

            tick = time.perf_counter()
            inputs = UpdateInputs(
                config, policy, model, reference, optimizer, accelerator, iteration, rollout, ids,
                advantages.advantages, local_rows, row_crops, body_device, model_config, anchor,
            )  # fmt: skip
            stats = rule.update(inputs)
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
            if "vis" in names:  # reward hacking shows as a visual reward that stops tracking the joint error
                member_mpjpe = (all_joints - truth_joints(crops)[:, None]).norm(dim=-1).mean(dim=(-1, -2)).flatten()
                record["reward/vis_mpjpe_corr"] = correlation(rewards[..., names.index("vis")].flatten(), member_mpjpe)
            if online is not None and online.is_due(iteration):  # after the rewards: they came from the EMA before it
                tick = time.perf_counter()
                negatives = online.negatives(rollout.x0_hat_last, local_rows, iteration)
                unpacked = MotionState.unpack(negatives[:, None], model_config.num_betas, model_config.include_hands)
                record.update(online.update(crops, unpacked, local_rows, accelerator))
                record["seconds/reward_model"] = _lap(tick)
            out_of_time = _budget_spent(clock, config, accelerator)
            interrupted = stop_requested(stops, accelerator)
            last = done == config.iterations or out_of_time or interrupted
            is_checkpoint = done % config.checkpoint_every == 0 or last
            if val_windows is not None and (done % config.val_every == 0 or (last and not interrupted)):
                if accelerator.is_main_process:
                    tick = time.perf_counter()
                    val_crops = val_windows.crops.to(device)
                    record.update(grpo_validation(model, config, model_config, body_device, val_crops, scorer))
                    record["seconds/val"] = _lap(tick)
            record.update(clock.stop_iteration())
            if not all(math.isfinite(v) for v in record.values() if isinstance(v, float)):
                raise EgogrpoError(
                    f"{run_dir}: a non-finite value at iteration {done} ({_non_finite(record)}); lower --lr"
                )
            if accelerator.is_main_process:
                append_metrics(run_dir / "metrics.jsonl", record)
                log_scalars(writer, record, "iteration")
                if is_checkpoint:
                    improved = record.get("val/mpjpe_mm", math.inf) < best_val
                    best_val = min(best_val, record.get("val/mpjpe_mm", math.inf))
                    last_checkpoint = _save(
                        run_dir, done, model, model_config, optimizer, config, body, best_val, prior_folder, online
                    )
                    if improved:
                        point_to(run_dir, "best", last_checkpoint)
                        best_checkpoint = last_checkpoint
                    plot_reward_curves(read_metrics(run_dir / "metrics.jsonl"), run_dir / "reward_curves.png")
                if progress is not None:
                    progress(done, config.iterations, record)
            accelerator.wait_for_everyone()
            iteration = done
            if interrupted or out_of_time:
                stop_reason = "interrupted" if interrupted else "time budget"
                break
    return GRPOSummary(
        run_dir, iteration, last_checkpoint, best_checkpoint, time.perf_counter() - start_time, stop_reason
    )


class _RunClock:
    """The run's training time, summed over resumes: wall seconds and this process's CPU seconds (all threads).

    Counts the iterations only (rollouts, rewards, updates, validation), not start-up or checkpoint writing,
    so runs compare on the compute their update rule spends.
    """

    def __init__(self, elapsed_s: float, cpu_s: float) -> None:
        self.elapsed_s, self.cpu_s = elapsed_s, cpu_s
        self._wall, self._cpu = 0.0, 0.0

    @classmethod
    def resumed(cls, metrics: Path, iteration: int) -> _RunClock:
        """The clock as the run left it at `iteration` (zero for a new run or a log without times)."""
        records = [r for r in read_metrics(metrics) if r.get("iteration") == iteration] if iteration else []
        last = records[-1] if records else {}
        return cls(float(last.get("time/elapsed_s", 0.0)), float(last.get("time/cpu_s", 0.0)))

    def start_iteration(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def running_minutes(self, clock: str = "wall") -> float:
        """Minutes of training so far, the current iteration included: wall-clock or ("cpu") process CPU time."""
        if clock == "cpu":
            return (self.cpu_s + time.process_time() - self._cpu) / 60
        return (self.elapsed_s + time.perf_counter() - self._wall) / 60

    def stop_iteration(self) -> dict[str, float]:
        self.elapsed_s += time.perf_counter() - self._wall
        self.cpu_s += time.process_time() - self._cpu
        return {"time/elapsed_s": self.elapsed_s, "time/cpu_s": self.cpu_s}


def _budget_spent(clock: _RunClock, config: TrainGRPOConfig, accelerator: Any) -> bool:
    """Whether the time budget is spent — rank 0's clock decides, so every process stops at the same iteration."""
    if config.time_budget_minutes is None:
        return False
    minutes = clock.running_minutes(config.budget_clock)
    spent = torch.tensor([float(minutes >= config.time_budget_minutes)], device=accelerator.device)
    if accelerator.num_processes > 1:
        torch.distributed.broadcast(spent, src=0)
    return bool(spent.item())


# --- small helpers ------------------------------------------------------------------------------------


def _lap(tick: float) -> float:
    return time.perf_counter() - tick


def _non_finite(record: dict) -> str:
    return ", ".join(k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v))


def _select_crops(crops: MotionCrop, index: Tensor) -> MotionCrop:
    """Crop b of every row (the ground truth each rollout is scored against)."""
    return map_fields(crops, lambda t: t[index])


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
    online: OnlineScorer | None = None,
) -> Path:
    """A complete checkpoint: a normal prior checkpoint (+ the online scorer and its EMA) + the training state,
    then the `latest` pointer."""
    folder = checkpoint_folder(run_dir, "iter", iteration)
    extra = {"iteration": iteration, "algorithm": config.algo, "prior": str(prior_folder), "data": config.data}
    save_checkpoint(folder, model, model_config, body_model_id=body.model_id, extra=extra)
    state = {"optimizer": optimizer.state_dict(), "iteration": iteration, "best_val_mpjpe": best_val}
    if online is not None:
        state["reward_optimizer"] = online.save(folder, {"iteration": iteration, "start": config.reward_model})
    save_training_state(folder, state)
    point_to(run_dir, "latest", folder)
    return folder
