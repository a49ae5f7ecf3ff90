"""`egogrpo train-prior`: train the diffusion motion prior on crops of a preprocessed motion file.

A linear loop (nanoGPT-style) run by HF accelerate: one process, `torchrun`, or `accelerate launch`
(DDP on GPUs, gloo on CPUs). Each step's batch and noise are pure functions of (seed, step, batch row),
and a checkpoint holds the model, the optimizer and the step, so a resumed run continues exactly
as if it had never stopped. Rank 0 writes the run directory:

    run_dir/config.json          the resolved TrainPriorConfig
    run_dir/meta.json            egogrpo version, git commit, torch, world size, device
    run_dir/metrics.jsonl        one JSON object per logged step (losses, lr, grad norm, speed, val MPJPE)
    run_dir/checkpoints/step_N/  model.safetensors + config.json (a model checkpoint) + training_state.pt
                                 (with `ema_decay` > 0 the model checkpoint holds the averaged weights and
                                 training_state.pt the raw ones)
    run_dir/checkpoints/latest   the name of the newest complete checkpoint
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from egogrpo.body import BodyModel, load_body_model
from egogrpo.config import AugmentConfig, DenoiserConfig, TrainPriorConfig, TrainRewardConfig
from egogrpo.data.crops import MotionCrop, MotionCropDataset, collate_crops
from egogrpo.data.hdf5_schema import require_body_model
from egogrpo.errors import EgogrpoError
from egogrpo.eval.windows import mean_pose_state, mean_pose_to_json, split_windows
from egogrpo.model import noise
from egogrpo.model.checkpoint import save_checkpoint
from egogrpo.model.conditioning import cpf_conditioning
from egogrpo.model.denoiser import EgoDenoiser
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState
from egogrpo.train.averaging import WeightAverage, warmup_decay
from egogrpo.train.batching import EpochIndexed, StepBatches
from egogrpo.train.interrupt import StopRequests, stop_requested
from egogrpo.train.prior_loss import prior_loss
from egogrpo.train.run_dir import (
    append_metrics,
    check_positive_numbers,
    check_resumable,
    check_run_dir,
    check_whole_numbers,
    checkpoint_folder,
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
from egogrpo.train.validation import validation_errors

#: TrainPriorConfig fields that may change when a run is resumed.
RESUMABLE = {
    "resume",
    "max_steps",
    "log_every",
    "val_every",
    "val_seeds",
    "checkpoint_every",
    "num_workers",
    "compile",
    "device",
}


@dataclass
class TrainSummary:
    run_dir: Path
    final_step: int
    last_checkpoint: Path | None
    seconds: float
    stop_reason: str = "finished"  # "finished" or "interrupted" (Ctrl-C: checkpoint kept)


def step_noise(
    seed: int,
    step: int,
    rows: torch.Tensor,
    max_t: int,
    shape: tuple[int, ...],
    device: torch.device,
    purpose: int = noise.PURPOSE_PRIOR,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise levels t ∈ 1..max_t (rows,) and standard normal noise (rows, *shape) of one step, drawn on `device`.

    Counter-based (`model.noise`), keyed by (seed, purpose, step, global batch row): a row's draws do not depend
    on the number of processes, and a resumed run draws exactly what an uninterrupted one does.
    """
    rows = rows.to(device)
    levels = noise.uniform(noise.stream_key(seed, purpose, step, rows, 0, device=device), ())
    t = (1 + (levels * max_t).long()).clamp_max(max_t)
    return t, noise.normal(noise.stream_key(seed, purpose, step, rows, 1, device=device), shape)


def denoising_losses(
    forward: Callable[..., torch.Tensor],
    crop: MotionCrop,
    model_config: DenoiserConfig,
    schedule: NoiseSchedule,
    seed: int,
    step: int,
    rows: torch.Tensor,
    autocast: bool = False,
    purpose: int = noise.PURPOSE_PRIOR,
) -> dict[str, torch.Tensor]:
    """EgoAllo's training loss terms (`prior_loss`; "total" is the loss) of the denoiser `forward` on a batch of
    real crops (B,), each noised at a keyed level t with keyed noise (`step_noise`, global batch rows `rows`)."""
    x0 = MotionState.from_crop(crop, include_hands=model_config.include_hands).pack()
    cond = cpf_conditioning(crop.T_cpf_tm1_cpf_t, crop.T_world_cpf, config=model_config)
    t, z = step_noise(seed, step, rows, model_config.max_t, tuple(x0.shape[1:]), x0.device, purpose)
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=autocast):
        x0_hat = forward(schedule.q_sample(x0, t, z), t, cond).float()
    weight = schedule.loss_weight(t).to(x0.dtype)
    return prior_loss(x0_hat, x0, weight, model_config.num_betas, model_config.include_hands)


def learning_rate(config: TrainPriorConfig | TrainRewardConfig, step: int) -> float:
    """Linear warm-up over `warmup_steps`, then constant (EgoAllo's LambdaLR); step 0-based."""
    return config.learning_rate * min(1.0, (step + 1) / max(config.warmup_steps, 1))


def check_training_data(data: str, dataset: MotionCropDataset, body: BodyModel, model: DenoiserConfig) -> None:
    """EgogrpoError unless the motion file suits the body model and the denoiser's state layout."""
    info = dataset.info
    require_body_model(data, info, body.model_id, body.sha256)
    if info.num_betas != model.num_betas:
        raise EgogrpoError(
            f"{data}: {info.num_betas} shape parameters per sequence, the model config expects {model.num_betas}"
        )
    if model.include_hands and not dataset.has_hand_quats:
        raise EgogrpoError(f"{data}: the model predicts hands but the data has no hand rotations")


def validate_config(config: TrainPriorConfig) -> None:
    """EgogrpoError naming the option for any value the loop cannot run with (checked before any work)."""
    minimum = {
        "batch_size": 1, "max_steps": 1, "warmup_steps": 0, "val_every": 0, "checkpoint_every": 1,
        "log_every": 1, "num_workers": 0, "seed": 0, "crop_length": 1, "val_windows": 1, "val_seeds": 1,
    }  # fmt: skip
    options = {"num_workers": "--num-workers", "crop_length": "crop_length", "val_windows": "val_windows"}
    check_whole_numbers(config, minimum, options)
    check_positive_numbers(
        config,
        (("learning_rate", "--lr", False), ("weight_decay", "weight_decay", True), ("grad_clip", "grad_clip", False)),
    )
    if not (math.isfinite(config.ema_decay) and 0 <= config.ema_decay < 1):
        raise EgogrpoError(f"--ema-decay must be in [0, 1) (0: off), got {config.ema_decay}")
    validate_augment(config.augment)


def validate_augment(augment: AugmentConfig) -> None:
    """EgogrpoError naming the option for an augmentation setting out of range."""
    for name, option in (("mirror", "--mirror-prob"), ("shape_prob", "--shape-prob")):
        value = getattr(augment, name)
        if not (math.isfinite(value) and 0 <= value <= 1):
            raise EgogrpoError(f"{option} must be a probability in [0, 1], got {value}")
    if not (math.isfinite(augment.shape_std) and augment.shape_std >= 0):
        raise EgogrpoError(f"--shape-std must be a finite number ≥ 0, got {augment.shape_std}")
    low, high = augment.speed_min, augment.speed_max
    if not (math.isfinite(low) and math.isfinite(high) and 0.25 <= low <= high <= 4):
        raise EgogrpoError(f"--speed-range must be MIN:MAX with 0.25 ≤ MIN ≤ MAX ≤ 4, got {low}:{high}")


def train_prior(config: TrainPriorConfig, progress: Callable[[int, int, dict], None] | None = None) -> TrainSummary:
    """Train (or resume) a prior as configured; returns where the last checkpoint is.

    Every option, the data (schema, body model, finite values, the val split) and the run folder
    (new and writable, or resumable with a readable checkpoint) are checked before the run folder
    is written, so a refused run leaves nothing behind.
    """

    start_time = time.perf_counter()
    validate_config(config)
    run_dir = Path(config.run_dir)
    check_run_dir(run_dir, config.resume)
    accelerator, rank, world, device = start_processes(
        config.batch_size, f"--batch-size {config.batch_size}", config.device
    )
    body = load_body_model(config.body)
    dataset = MotionCropDataset(
        config.data,
        splits=config.train_splits,
        crop_length=config.crop_length,
        seed=config.seed,
        preload=config.preload,
        augment=config.augment,
        body=body,
    )
    check_training_data(config.data, dataset, body, config.model)
    mean_training_pose = mean_pose_to_json(
        mean_pose_state(config.data, config.train_splits, body.num_betas),
        f"{config.data}: {', '.join(config.train_splits)}",
    )
    val_windows = None
    if config.val_every:
        val_windows = split_windows(config.data, config.val_split, config.crop_length, config.val_windows)
    if config.resume:
        check_resumable(run_dir)
    if accelerator.is_main_process:
        prepare_run_dir(config, run_dir, config.resume, RESUMABLE, world, str(device))
    accelerator.wait_for_everyone()

    torch.manual_seed(config.seed)  # the initial weights: identical on every rank and every run
    model = EgoDenoiser(config.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    start_step = 0
    restored = restore_latest(run_dir, model, optimizer) if config.resume else None
    checkpoint = None if restored is None else restored[0]
    average = WeightAverage(model) if config.ema_decay > 0 else None
    if restored is not None:
        start_step = int(restored[1]["step"])
        if average is not None:  # the checkpoint's model holds the average, its training state the raw weights
            average.model.load_state_dict(model.state_dict())
            model.load_state_dict(restored[1]["raw_model"])
        if accelerator.is_main_process:
            truncate_metrics(run_dir / "metrics.jsonl", start_step)
    model, optimizer = accelerator.prepare(model, optimizer)
    schedule = NoiseSchedule.cosine()

    batches = StepBatches(len(dataset), config.batch_size, rank, world, config.seed, start_step, config.max_steps)
    loader = torch.utils.data.DataLoader(
        EpochIndexed(dataset), batch_sampler=batches, collate_fn=collate_crops, num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
    )  # fmt: skip
    rows = torch.arange(rank * batches.local, (rank + 1) * batches.local)  # this rank's global batch rows
    forward = torch.compile(model) if config.compile else model
    if config.tf32 and device.type == "cuda":
        torch.set_float32_matmul_precision("high")
    last_checkpoint = checkpoint
    tick, tick_step = time.perf_counter(), start_step
    if restored is not None and progress is not None and accelerator.is_main_process:
        progress(start_step, config.max_steps, {"resumed": True})
    step, stop_reason, last_record = start_step, "finished", {}
    writer = tensorboard_writer(run_dir) if accelerator.is_main_process else None
    with StopRequests() as stops:  # Ctrl-C: stop after this step with a checkpoint
        for step, crop in zip(range(start_step, config.max_steps), loader, strict=False):
            crop = crop.to(device, non_blocking=True)
            losses = denoising_losses(forward, crop, config.model, schedule, config.seed, step, rows, config.autocast)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(losses["total"])
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            optimizer.step()
            if average is not None:
                average.update(accelerator.unwrap_model(model), warmup_decay(config.ema_decay, step))

            done = step + 1
            if done % config.log_every == 0 or done == config.max_steps:
                reduced = {k: float(accelerator.reduce(v.detach(), reduction="mean")) for k, v in losses.items()}
                now = time.perf_counter()
                record = {
                    "step": done,
                    **{f"loss/{k}": v for k, v in reduced.items()},
                    "lr": learning_rate(config, step),
                    "grad_norm": float(grad_norm),
                    "steps_per_s": (done - tick_step) / max(now - tick, 1e-9),
                }
                tick, tick_step = now, done
                if val_windows is not None and (done % config.val_every == 0 or done == config.max_steps):
                    if accelerator.is_main_process:
                        evaluated = accelerator.unwrap_model(model) if average is None else average.model
                        crops = val_windows.crops.to(device)
                        errors = validation_errors(
                            evaluated, config.model, config.sampler, body.to(device), crops, config.val_seeds
                        )
                        record.update(errors)
                    accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    append_metrics(run_dir / "metrics.jsonl", record)
                    log_scalars(writer, record, "step")
                if not all(math.isfinite(v) for v in reduced.values()):
                    raise EgogrpoError(f"{run_dir}: the loss became non-finite at step {done}; lower the learning rate")
                last_record = record
            if progress is not None and accelerator.is_main_process:  # every step; the last logged values
                progress(done, config.max_steps, last_record)
            interrupted = stop_requested(stops, accelerator)
            if done % config.checkpoint_every == 0 or done == config.max_steps or interrupted:
                if accelerator.is_main_process:
                    last_checkpoint = _save(
                        run_dir,
                        done,
                        accelerator.unwrap_model(model),
                        optimizer,
                        config,
                        body,
                        mean_training_pose,
                        average,
                    )
                accelerator.wait_for_everyone()
            if interrupted:
                stop_reason = "interrupted"
                break
    return TrainSummary(
        run_dir,
        step + 1 if config.max_steps > start_step else start_step,
        last_checkpoint,
        time.perf_counter() - start_time,
        stop_reason,
    )


def _save(
    run_dir: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainPriorConfig,
    body: BodyModel,
    mean_training_pose: dict,
    average: WeightAverage | None,
) -> Path:
    """A complete checkpoint (model + training state), then the `latest` pointer (both atomic).

    `mean_training_pose` (`eval.windows.mean_pose_to_json`) lets `eval --baseline` use the training data's
    mean pose without the training file. With a weight average, the model checkpoint is the average and the
    training state keeps the raw weights for resuming.
    """
    folder = checkpoint_folder(run_dir, "step", step)
    extra = {"step": step, "data": config.data, "mean_training_pose": mean_training_pose}
    if average is not None:
        extra["ema_decay"] = config.ema_decay
    shipped = model if average is None else average.model
    save_checkpoint(folder, shipped, config.model, body_model_id=body.model_id, extra=extra)
    state = {"optimizer": optimizer.state_dict(), "step": step}
    if average is not None:
        state["raw_model"] = model.state_dict()
    save_training_state(folder, state)
    point_to(run_dir, "latest", folder)
    best = best_checkpoint(run_dir)
    if best is not None:
        point_to(run_dir, "best", best)
    return folder


def best_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint with the lowest logged val MPJPE among those saved (None before the first validation).

    Read from metrics.jsonl and the checkpoint folders, so it is the same after a resume; ties go to the earlier step.
    """
    scored = [
        (record["val/mpjpe_mm"], record["step"])
        for record in read_metrics(run_dir / "metrics.jsonl")
        if "val/mpjpe_mm" in record and checkpoint_folder(run_dir, "step", record["step"]).is_dir()
    ]
    return checkpoint_folder(run_dir, "step", min(scored)[1]) if scored else None
