"""`egogrpo train-reward`: contrastive training of the perceptual model (paper §3.4.1, Eq. 9, Appendix C).

Each step takes `batch_size` ground-truth crops (the conditions) and, for each, `num_negatives` negative
motions on the same CPF trajectory:

    policy    the prior (frozen) samples `num_negatives` members per condition (independent x_T); each negative
              is the x̂₀ of one of the last three sampling steps of its member, chosen at random (the rollout
              record keeps them: `Rollout.x0_hat_last`)
    gt-noise  the ground truth's packed state plus α·N(0, 1), its rotations re-projected onto SO(3)

Every motion is placed on the ground-truth CPF (`model.placement`) and scored; InfoNCE with logits s/δ puts the
positive first among its negatives. A negative within `min_negative_error` metres MPJPE of the ground truth is a
false negative: left out of the softmax and of the accuracy. All randomness is keyed by (seed, step, condition)
(`model.noise`), and a checkpoint holds the model, the optimizer and the step, so a resumed run continues exactly.
Rank 0 writes the run directory (`train.run_dir`): config.json, meta.json, metrics.jsonl (loss, pair accuracy,
wrong count, mean scores, dropped negatives, speed) and checkpoints/step_NNNNNNN (a perceptual checkpoint +
training_state.pt) with a `latest` pointer.

`train.online_scorer.OnlineScorer` (`train-grpo --reward-online`) reuses this loss, negative selection and
false-negative drop on each update iteration's own rollouts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from egogrpo.body import BodyModel, load_body_model
from egogrpo.config import DenoiserConfig, TrainRewardConfig
from egogrpo.data.crops import MotionCrop, MotionCropDataset, collate_crops
from egogrpo.errors import EgogrpoError
from egogrpo.eval.metrics import mpjpe, perceptual_accuracy
from egogrpo.eval.windows import Windows, split_windows
from egogrpo.model import noise
from egogrpo.model.checkpoint import load_checkpoint_for_body
from egogrpo.model.conditioning import cpf_conditioning
from egogrpo.model.perceptual import (
    PerceptualModel,
    check_perceptual_config,
    load_perceptual,
    save_perceptual,
    score_logits,
    state_inputs,
)
from egogrpo.model.placement import truth_joints
from egogrpo.model.policy import NUM_LAST_PREDICTIONS, DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim
from egogrpo.train.batching import EpochIndexed, StepBatches
from egogrpo.train.interrupt import StopRequests, stop_requested
from egogrpo.train.prior import check_training_data, learning_rate, validate_augment
from egogrpo.train.run_dir import (
    append_metrics,
    check_positive_numbers,
    check_run_dir,
    check_whole_numbers,
    checkpoint_folder,
    latest_checkpoint,
    load_training_state,
    log_scalars,
    point_to,
    prepare_run_dir,
    save_training_state,
    start_processes,
    tensorboard_writer,
    truncate_metrics,
)

#: TrainRewardConfig fields that may change when a run is resumed.
RESUMABLE = {"resume", "max_steps", "log_every", "checkpoint_every", "val_every", "device"}
NEGATIVES = ("policy", "gt-noise")


@dataclass
class RewardTrainSummary:
    run_dir: Path
    final_step: int
    last_checkpoint: Path | None
    seconds: float
    stop_reason: str = "finished"  # "finished" or "interrupted" (Ctrl-C: checkpoint kept)


def info_nce(logits_pos: Tensor, logits_neg: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean over conditions of −log(e^{ℓ⁺} / (e^{ℓ⁺} + Σ_i e^{ℓ⁻_i})) (Eq. 9 with ℓ = s/δ already divided).

    logits_pos (N,), logits_neg (N, M); `valid` (N, M) leaves negatives out (a row with none gives 0).
    """
    if valid is not None:
        logits_neg = logits_neg.masked_fill(~valid, -math.inf)
    all_logits = torch.cat((logits_pos[:, None], logits_neg), dim=1)
    return (torch.logsumexp(all_logits, dim=1) - logits_pos).mean()


def validate_config(config: TrainRewardConfig) -> None:
    """EgogrpoError naming the option for any value the loop cannot run with (checked before any work)."""
    minimum = {
        "batch_size": 1, "batch_reuse": 1, "max_steps": 1, "warmup_steps": 0, "log_every": 1, "checkpoint_every": 1,
        "num_negatives": 1, "crop_length": 2, "seed": 0, "val_every": 0, "val_windows": 1,
    }  # fmt: skip
    options = {
        "num_negatives": "--num-negatives", "crop_length": "--crop-length", "max_steps": "--steps",
        "batch_reuse": "--batch-reuse", "warmup_steps": "--warmup-steps",
    }  # fmt: skip
    check_whole_numbers(config, minimum, options)
    if config.negatives not in NEGATIVES:
        raise EgogrpoError(f"--negatives must be one of {', '.join(NEGATIVES)}, got {config.negatives!r}")
    check_positive_numbers(
        config,
        (
            ("learning_rate", "--lr", False),
            ("temperature", "--temperature", False),
            ("alpha", "--alpha", config.negatives != "gt-noise"),
            ("weight_decay", "weight_decay", True),
            ("grad_clip", "grad_clip", False),
            ("min_negative_error", "--min-negative-error", True),
        ),
    )
    check_perceptual_config(config.model)
    validate_augment(config.augment)


def gt_noise_negatives(x0: Tensor, alpha: float, seed: int, step: int, rows: Tensor, num_negatives: int) -> Tensor:
    """(N, M, L, D) packed ground-truth states x0 (N, L, D) plus α·z, z keyed by (seed, step, row, member)."""
    keys = noise.stream_key(
        seed, noise.PURPOSE_NEGATIVE, step, rows.to(x0.device)[:, None], torch.arange(num_negatives)[None] + 1,
        device=x0.device,
    )  # fmt: skip
    return x0[:, None] + alpha * noise.normal(keys, tuple(x0.shape[1:]))


def policy_last_predictions(
    policy: DiffusionPolicy, prior: torch.nn.Module, cond: Tensor, seed: int, step: int, rows: Tensor, M: int, D: int
) -> Tensor:
    """(N, M, 3, L, D): per condition, M rollouts of the prior (independent x_T, keyed by (seed, step, row,
    member)), each with the x̂₀ of its last three sampling steps."""
    ids = RolloutIds(seed, step, rows, torch.arange(M).expand(rows.shape[0], M), share_initial=False)
    rollout = policy.rollout(prior, cond[:, None].expand(-1, M, -1, -1), ids, D, record=False, last_predictions=True)
    if rollout.x0_hat_last is None:
        raise EgogrpoError("the sampler recorded no x̂₀ (it needs at least one transition)")
    return rollout.x0_hat_last


def policy_negatives(last: Tensor, seed: int, step: int, rows: Tensor) -> Tensor:
    """(N, M, L, D): each of the M rollouts of conditions `rows` (N,) gives the x̂₀ of one of its last three sampling
    steps (`last` (N, M, 3, L, D), `policy_last_predictions`), chosen by a keyed uniform draw (seed, step, row, 0)."""
    M, available = last.shape[1], last.shape[2]
    return pick_last_predictions(last, last_step_choice(seed, step, rows, M, available, last.device))


def last_step_choice(seed: int, step: int, rows: Tensor, M: int, available: int, device: torch.device) -> Tensor:
    """(N, M) which of the `available` last x̂₀ each of the M negatives of conditions `rows` (N,) takes: a uniform
    draw keyed by (seed, step, row, 0) (train-reward: step; train-grpo --reward-online: iteration, row = group)."""
    keys = noise.stream_key(seed, noise.PURPOSE_NEGATIVE, step, rows.to(device), 0, device=device)
    return (noise.uniform(keys, (M,)) * available).long().clamp_max(available - 1)


def pick_last_predictions(last: Tensor, choice: Tensor) -> Tensor:
    """The x̂₀ `choice` (*lead) of each member of `last` (*lead, 3, L, D): shape (*lead, L, D)."""
    index = choice[..., None, None, None].expand(*choice.shape, 1, *last.shape[-2:])
    return last.gather(choice.dim(), index).squeeze(choice.dim())


def crop_rollouts(
    config: TrainRewardConfig,
    policy: DiffusionPolicy,
    prior: torch.nn.Module,
    prior_config: DenoiserConfig,
    crops: MotionCrop,
    step: int,
    rows: Tensor,
) -> Tensor:
    """(N, M, 3, L, D): `config.num_negatives` rollouts of the prior on each crop's condition, keyed by
    (seed, step, rows), with the x̂₀ of their last three sampling steps (`policy_last_predictions`)."""
    D = packed_dim(prior_config.num_betas, prior_config.include_hands)
    with torch.no_grad():
        cond = cpf_conditioning(crops.T_cpf_tm1_cpf_t, crops.T_world_cpf, config=prior_config)
        return policy_last_predictions(policy, prior, cond, config.seed, step, rows, config.num_negatives, D)


def make_negatives(
    config: TrainRewardConfig,
    policy: DiffusionPolicy,
    prior: torch.nn.Module,
    prior_config: DenoiserConfig,
    crops: MotionCrop,
    step: int,
    rows: Tensor,
    last: Tensor | None = None,
) -> MotionState:
    """`config.num_negatives` negatives of each crop (config.negatives), leading (N, M), keyed by (seed, step, rows).

    Policy negatives come from `last` (N, M, 3, L, D), the crops' rollouts' last three x̂₀ when the caller holds
    them (`crop_rollouts`), else from rollouts keyed by `step`."""
    with torch.no_grad():
        if config.negatives == "gt-noise":
            x0 = MotionState.from_crop(crops, include_hands=prior_config.include_hands).pack()
            packed = gt_noise_negatives(x0, config.alpha, config.seed, step, rows, config.num_negatives)
        else:
            if last is None:
                last = crop_rollouts(config, policy, prior, prior_config, crops, step, rows)
            packed = policy_negatives(last, config.seed, step, rows)
        return MotionState.unpack(packed, prior_config.num_betas, prior_config.include_hands)


def placed_negatives(
    body: BodyModel, crops: MotionCrop, negatives: MotionState, min_negative_error: float
) -> tuple[Tensor, Tensor, Tensor]:
    """The model's inputs of negatives (leading (N, M)) placed on their crop's CPF — local quaternions
    (N, M, T, 21, 4) and joints (N, M, T, 21, 3) — and which count (N, M): the false-negative drop keeps those at
    least `min_negative_error` metres MPJPE (21 joints) from the crop's ground truth. No gradients."""
    N, M = negatives.body_rotmats.shape[:2]
    T_world_cpf = crops.T_world_cpf
    with torch.no_grad():
        quats, joints = state_inputs(body, negatives, T_world_cpf[:, None].expand(N, M, *T_world_cpf.shape[1:]))
        valid = mpjpe(joints, positive_joints(crops)[:, None]).mean(dim=-1) / 1000.0 >= min_negative_error  # mm → m
    return quats, joints, valid


def positive_joints(crops: MotionCrop) -> Tensor:
    """(N, T, 21, 3) the ground truth's 21 non-root world joints: the positions the model sees of a positive."""
    return truth_joints(crops)[..., 1:, :]


def pair_scores(
    model: PerceptualModel, body: BodyModel, crops: MotionCrop, negatives: MotionState, min_negative_error: float
) -> tuple[Tensor, Tensor]:
    """Scores (N, 1 + M) of each crop's ground truth (column 0) and its negatives (leading (N, M)), all placed on
    the crop's CPF, and which negatives count (N, M) (`placed_negatives`)."""
    N, M = negatives.body_rotmats.shape[:2]
    T_world_cpf = crops.T_world_cpf
    quats, joints, valid = placed_negatives(body, crops, negatives, min_negative_error)
    quat_all = torch.cat((crops.body_quats[:, None], quats), dim=1).flatten(0, 1)
    joints_all = torch.cat((positive_joints(crops)[:, None], joints), dim=1).flatten(0, 1)
    cpf_all = T_world_cpf[:, None].expand(N, M + 1, *T_world_cpf.shape[1:]).flatten(0, 1)
    return torch.sigmoid(score_logits(model, quat_all, joints_all, cpf_all)).reshape(N, M + 1), valid


def step_losses(
    model: PerceptualModel, body: BodyModel, crops: MotionCrop, negatives: MotionState, config: TrainRewardConfig
) -> dict[str, Tensor]:
    """InfoNCE of the crops (positives) against the negatives (leading (N, M)), with accuracy statistics."""
    scores, valid = pair_scores(model, body, crops, negatives, config.min_negative_error)
    return contrastive_terms(scores, valid, config.temperature)


def contrastive_terms(scores: Tensor, valid: Tensor, temperature: float) -> dict[str, Tensor]:
    """InfoNCE with logits s/δ of scores (N, 1 + M) (positive in column 0; `valid` (N, M) negatives counted),
    and its statistics: pair accuracy, wrong count, mean scores, the fraction of dropped negatives."""
    loss = info_nce(scores[:, 0] / temperature, scores[:, 1:] / temperature, valid)
    accuracy, wrong = perceptual_accuracy(scores[:, :1].detach(), scores[:, 1:].detach(), valid)
    return {
        "loss": loss,
        "accuracy": torch.tensor(accuracy),
        "wrong_count": torch.tensor(float(wrong)),
        "score_gt": scores[:, 0].detach().mean(),
        "score_negative": scores[:, 1:].detach()[valid].mean() if bool(valid.any()) else torch.tensor(math.nan),
        "dropped_negatives": (~valid).float().mean(),
    }


#: The `step` of the held-out negatives' keys: far beyond any training step, the same at every evaluation.
HELD_OUT_STEP = 2**40


def held_out_discrimination(
    model: PerceptualModel,
    config: TrainRewardConfig,
    policy: DiffusionPolicy,
    prior: torch.nn.Module,
    prior_config: DenoiserConfig,
    body: BodyModel,
    windows: Windows,
    device: torch.device | str = "cpu",
    chunk: int = 8,
) -> dict[str, float]:
    """Accuracy and Wrong Count (paper Eq. 21) on held-out crops, each against `config.num_negatives` negatives
    of `config.negatives` keyed by (seed, HELD_OUT_STEP, window index): a fixed test set for a fixed prior.
    `body`, `prior` and `model` on `device`."""
    wrong, pairs = 0, 0
    for first in range(0, len(windows), chunk):
        part = windows.chunk(first, min(first + chunk, len(windows)), device).crops
        rows = torch.arange(first, first + part.T_world_cpf.shape[0])
        negatives = make_negatives(config, policy, prior, prior_config, part, HELD_OUT_STEP, rows)
        with torch.no_grad():
            scores, valid = pair_scores(model, body, part, negatives, config.min_negative_error)
        _, part_wrong = perceptual_accuracy(scores[:, :1], scores[:, 1:], valid)
        wrong, pairs = wrong + part_wrong, pairs + int(valid.sum())
    return {
        "val/accuracy": (pairs - wrong) / pairs if pairs else math.nan,
        "val/wrong_count": wrong,
        "val/pairs": pairs,
    }


def train_reward(
    config: TrainRewardConfig, progress: Callable[[int, int, dict], None] | None = None
) -> RewardTrainSummary:
    """Train (or resume) a perceptual model as configured; returns where the last checkpoint is.

    Options, the prior, the data and the run folder are checked before anything is written.
    """

    start_time = time.perf_counter()
    validate_config(config)
    run_dir = Path(config.run_dir)
    check_run_dir(run_dir, config.resume)
    accelerator, rank, world, device = start_processes(
        config.batch_size, f"--batch-size {config.batch_size}", config.device
    )
    body = load_body_model(config.body)
    prior_folder, prior, prior_config, _ = load_checkpoint_for_body(config.prior, body.model_id)
    dataset = MotionCropDataset(
        config.data, splits=config.train_splits, crop_length=config.crop_length, seed=config.seed, preload=True,
        augment=config.augment, body=body,
    )  # fmt: skip
    check_training_data(config.data, dataset, body, prior_config)
    val_windows = None
    if config.val_every:
        val_windows = split_windows(config.data, config.val_split, config.crop_length, config.val_windows)
        if val_windows is None:
            raise EgogrpoError(f"{config.data}: no {config.crop_length}-frame window in split {config.val_split!r}")
    checkpoint = latest_checkpoint(run_dir) if config.resume else None
    restored = None
    if checkpoint is not None:
        restored = (load_perceptual(checkpoint)[0], load_training_state(checkpoint))
    if accelerator.is_main_process:
        prepare_run_dir(config, run_dir, config.resume, RESUMABLE, world, str(device))
    accelerator.wait_for_everyone()

    torch.manual_seed(config.seed)  # the initial weights: identical on every rank and every run
    model = PerceptualModel(config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    start_step = 0
    if restored is not None:
        model.load_state_dict(restored[0].state_dict())
        optimizer.load_state_dict(restored[1]["optimizer"])
        start_step = int(restored[1]["step"])
        if accelerator.is_main_process:
            truncate_metrics(run_dir / "metrics.jsonl", start_step)
    model, optimizer = accelerator.prepare(model, optimizer)
    prior.to(device).eval().requires_grad_(False)
    body_device = body.to(device)
    policy = DiffusionPolicy(
        NoiseSchedule.cosine(), config.sampler, body_rotation_projection(prior_config.num_betas), None, device
    )
    if config.negatives == "policy" and policy.num_transitions < NUM_LAST_PREDICTIONS:
        raise EgogrpoError(f"the sampler has {policy.num_transitions} steps; policy negatives need ≥ 3")
    batches = StepBatches(len(dataset), config.batch_size, rank, world, config.seed, start_step, config.max_steps)
    indexed = EpochIndexed(dataset)
    rows = torch.arange(rank * batches.local, (rank + 1) * batches.local)
    last_checkpoint = checkpoint
    if restored is not None and progress is not None and accelerator.is_main_process:
        progress(start_step, config.max_steps, {"resumed": True})
    tick, tick_step, step, stop_reason = time.perf_counter(), start_step, start_step, "finished"
    last_record: dict = {}
    writer = tensorboard_writer(run_dir) if accelerator.is_main_process else None
    with StopRequests() as stops:  # Ctrl-C: stop after this step with a checkpoint
        for step in range(start_step, config.max_steps):
            if step % config.batch_reuse == 0 or step == start_step:  # a new block of R steps, or a resume inside one
                block = step - step % config.batch_reuse  # the block's batch and rollouts are keyed by its first step
                crops = collate_crops([indexed[i] for i in batches.batch_items(block)]).to(device)
                last = (
                    crop_rollouts(config, policy, prior, prior_config, crops, block, rows)
                    if config.negatives == "policy"
                    else None
                )
            negatives = make_negatives(config, policy, prior, prior_config, crops, step, rows, last)
            losses = step_losses(model, body_device, crops, negatives, config)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(losses["loss"])
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()

            done = step + 1
            if done % config.log_every == 0 or done == config.max_steps:
                reduced = {
                    k: float(accelerator.reduce(v.detach().to(device), reduction="mean")) for k, v in losses.items()
                }
                now = time.perf_counter()
                record = {
                    "step": done,
                    **{f"train/{k}": v for k, v in reduced.items()},
                    "grad_norm": float(grad_norm),
                    "lr": learning_rate(config, step),
                    "steps_per_s": (done - tick_step) / max(now - tick, 1e-9),
                }
                tick, tick_step = now, done
                if val_windows is not None and (done % config.val_every == 0 or done == config.max_steps):
                    if accelerator.is_main_process:
                        unwrapped = accelerator.unwrap_model(model).eval()
                        record.update(
                            held_out_discrimination(
                                unwrapped, config, policy, prior, prior_config, body_device, val_windows, device
                            )
                        )
                        unwrapped.train()
                    accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    append_metrics(run_dir / "metrics.jsonl", record)
                    log_scalars(writer, record, "step")
                last_record = record
                if not math.isfinite(reduced["loss"]):
                    raise EgogrpoError(f"{run_dir}: the loss became non-finite at step {done}; lower the learning rate")
            if progress is not None and accelerator.is_main_process:  # every step; the last logged values
                progress(done, config.max_steps, last_record)
            interrupted = stop_requested(stops, accelerator)
            if done % config.checkpoint_every == 0 or done == config.max_steps or interrupted:
                if accelerator.is_main_process:
                    folder = checkpoint_folder(run_dir, "step", done)
                    save_perceptual(folder, accelerator.unwrap_model(model), {"step": done, "prior": str(prior_folder)})
                    save_training_state(folder, {"optimizer": optimizer.state_dict(), "step": done})
                    point_to(run_dir, "latest", folder)
                    last_checkpoint = folder
                accelerator.wait_for_everyone()
            if interrupted:
                stop_reason = "interrupted"
                break
    final = step + 1 if config.max_steps > start_step else start_step
    return RewardTrainSummary(run_dir, final, last_checkpoint, time.perf_counter() - start_time, stop_reason)
