"""`egogrpo train-reward`: the perceptual reward model's contrastive training (no numerics here; see train.reward_model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from egogrpo.cli.common import (
    augmentation_options,
    console,
    report_interruption,
    split_list,
    training_progress,
    with_run_config,
)
from egogrpo.config import AUGMENT_PRESETS, PERCEPTUAL_PRESETS, TrainRewardConfig
from egogrpo.errors import EgogrpoError

#: train-reward's options → the TrainRewardConfig fields they set (what `--resume` may take from the command line).
OPTION_FIELDS: dict[str, str | tuple[str, ...]] = {
    "device": "device",
    "prior": "prior", "negatives": "negatives", "alpha": "alpha", "preset": "model", "body": "body",
    "steps": "max_steps", "batch_size": "batch_size", "num_negatives": "num_negatives", "batch_reuse": "batch_reuse",
    "lr": "learning_rate", "warmup_steps": "warmup_steps", "temperature": "temperature",
    "min_negative_error": "min_negative_error", "crop_length": "crop_length", "augment": "augment",
    "log_every": "log_every", "val_every": "val_every", "checkpoint_every": "checkpoint_every", "seed": "seed",
    "weight_decay": "weight_decay", "grad_clip": "grad_clip", "train_splits": "train_splits", "val_split": "val_split",
    "val_windows": "val_windows",
}  # fmt: skip


def train_reward_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Motion file from `egogrpo preprocess` (its train split is used).")],
    run_dir: Annotated[Path, typer.Option(help="New folder for this run (config, metrics.jsonl, checkpoints).")],
    prior: Annotated[
        str, typer.Option(help="Prior checkpoint whose last-three-step predictions are the negatives, or 'default'.")
    ] = "default",
    negatives: Annotated[
        str,
        typer.Option(help="'policy' (hard negatives from the prior, the paper) or 'gt-noise' (α·N(0,1) on the truth)."),
    ] = "policy",
    alpha: Annotated[float, typer.Option(help="--negatives gt-noise: the noise scale α on the packed state.")] = 0.05,
    preset: Annotated[str, typer.Option(help=f"Model size: {', '.join(PERCEPTUAL_PRESETS)}.")] = "cpu",
    body: Annotated[
        str, typer.Option(help="The body model the data was made with: 'default' or your .npz.")
    ] = "default",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 2000,
    batch_size: Annotated[int, typer.Option(help="Conditions per step (paper: 16).")] = 16,
    num_negatives: Annotated[int, typer.Option(help="Negatives per condition (paper: 15).")] = 15,
    batch_reuse: Annotated[
        int,
        typer.Option(help="Each batch and its policy rollouts serve R steps (1: fresh every step, the paper)."),
    ] = 1,
    lr: Annotated[float, typer.Option("--lr", help="AdamW learning rate (paper: 1e-4).")] = 1e-4,
    warmup_steps: Annotated[int, typer.Option(help="Linear learning-rate warm-up over N steps (0: none).")] = 0,
    temperature: Annotated[float, typer.Option(help="InfoNCE temperature δ (paper: 0.07).")] = 0.07,
    min_negative_error: Annotated[
        float, typer.Option(help="Negatives closer than this MPJPE (metres) to the truth are dropped.")
    ] = 0.005,
    crop_length: Annotated[int, typer.Option(help="Frames per motion.")] = 128,
    augment: Annotated[
        str, typer.Option(help=f"Crop augmentation as train-prior's: {', '.join(AUGMENT_PRESETS)} (default: none).")
    ] = "none",
    log_every: Annotated[int, typer.Option(help="Log every N steps.")] = 10,
    val_every: Annotated[
        int, typer.Option(help="Held-out Accuracy / Wrong Count on the val split every N steps (0: never).")
    ] = 0,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 200,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1e-2,
    grad_clip: Annotated[float, typer.Option(help="Clip the gradient norm to this.")] = 1.0,
    train_splits: Annotated[str, typer.Option(help="Comma-separated splits the conditions come from.")] = "train",
    val_split: Annotated[str, typer.Option(help="The split of the held-out windows (--val-every).")] = "val",
    val_windows: Annotated[int, typer.Option(help="Held-out windows, spread over the val split.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the data, negatives and initial weights.")] = 0,
    device: Annotated[str, typer.Option(help="Where to train: auto (CUDA when present), cpu or cuda.")] = "auto",
    resume: Annotated[bool, typer.Option(help="Continue the run in --run-dir from its latest checkpoint.")] = False,
) -> None:
    """Train the perceptual reward model with InfoNCE (one process, torchrun or accelerate launch)."""
    from egogrpo.train.reward_model import RESUMABLE, train_reward

    if preset not in PERCEPTUAL_PRESETS:
        raise EgogrpoError(f"unknown --preset {preset!r}; choose one of {', '.join(PERCEPTUAL_PRESETS)}")
    if not data.is_file():
        raise EgogrpoError(f"{data}: no such motion file")
    config = TrainRewardConfig(
        data=str(data), prior=prior, run_dir=str(run_dir), body=body, model=PERCEPTUAL_PRESETS[preset],
        negatives=negatives, alpha=alpha, num_negatives=num_negatives, temperature=temperature,
        min_negative_error=min_negative_error, batch_size=batch_size, batch_reuse=batch_reuse, learning_rate=lr,
        warmup_steps=warmup_steps, max_steps=steps, augment=augmentation_options(augment),
        log_every=log_every, val_every=val_every, checkpoint_every=checkpoint_every, crop_length=crop_length, seed=seed, resume=resume,
        weight_decay=weight_decay, grad_clip=grad_clip, train_splits=split_list(train_splits), val_split=val_split,
        val_windows=val_windows, device=device,
    )  # fmt: skip
    config = with_run_config(ctx, config, OPTION_FIELDS, RESUMABLE)

    def describe(record: dict) -> str:
        if "train/loss" not in record:  # before the first logged step
            return ""
        return f"loss {record['train/loss']:.4f}  accuracy {record['train/accuracy']:.3f}"

    with training_progress("train-reward", "step", config.max_steps, describe) as progress:
        summary = train_reward(config, progress)
    if summary.stop_reason == "interrupted":
        report_interruption("train-reward", data, run_dir, "step", summary.final_step, summary.last_checkpoint)
    console.print(
        f"trained to step {summary.final_step} in {summary.seconds:.0f} s; checkpoint: {summary.last_checkpoint}"
    )
