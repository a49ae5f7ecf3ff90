"""`egogrpo train-prior`: train the diffusion motion prior (no numerics here; see egogrpo.train.prior)."""

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
from egogrpo.config import AUGMENT_PRESETS, DENOISER_PRESETS, TrainPriorConfig
from egogrpo.errors import EgogrpoError

#: train-prior's options → the TrainPriorConfig fields they set (what `--resume` may take from the command line).
OPTION_FIELDS: dict[str, str | tuple[str, ...]] = {
    "device": "device",
    "autocast": "autocast", "compile_forward": "compile", "tf32": "tf32",
    "body": "body", "preset": "model", "batch_size": "batch_size", "max_steps": "max_steps",
    "learning_rate": "learning_rate", "warmup_steps": "warmup_steps", "val_every": "val_every",
    "val_seeds": "val_seeds", "checkpoint_every": "checkpoint_every", "log_every": "log_every",
    "num_workers": "num_workers", "seed": "seed", "crop_length": "crop_length", "weight_decay": "weight_decay",
    "grad_clip": "grad_clip", "train_splits": "train_splits", "val_split": "val_split", "val_windows": "val_windows",
    "preload": "preload", "augment": "augment", "mirror_prob": "augment",
    "shape_prob": "augment", "shape_std": "augment", "speed_range": "augment", "ema_decay": "ema_decay",
}  # fmt: skip


def train_prior(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Motion file from `egogrpo preprocess`.")],
    run_dir: Annotated[Path, typer.Option(help="New folder for this run (config, metrics.jsonl, checkpoints).")],
    body: Annotated[
        str, typer.Option(help="The body model the data was made with: 'default' or your .npz.")
    ] = "default",
    preset: Annotated[str, typer.Option(help=f"Model size: {', '.join(DENOISER_PRESETS)}.")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Global batch (EgoAllo: 256), split over processes.")] = 32,
    max_steps: Annotated[int, typer.Option("--steps", "--max-steps", help="Optimizer steps.")] = 10_000,
    learning_rate: Annotated[float, typer.Option("--lr", help="AdamW learning rate after warm-up.")] = 1e-4,
    warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 1000,
    val_every: Annotated[int, typer.Option(help="Sampled val MPJPE every N steps (0: never).")] = 1000,
    val_seeds: Annotated[int, typer.Option(help="Samples per val window (seeds 0, 1, …: the same for every run).")] = 1,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 1000,
    log_every: Annotated[int, typer.Option(help="Log metrics every N steps.")] = 50,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers per process.")] = 0,
    crop_length: Annotated[int, typer.Option(help="Frames per training crop and per val window.")] = 128,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 1e-4,
    grad_clip: Annotated[float, typer.Option(help="Clip the gradient norm to this.")] = 1.0,
    train_splits: Annotated[str, typer.Option(help="Comma-separated splits the training crops come from.")] = "train",
    val_split: Annotated[str, typer.Option(help="The split of the validation windows.")] = "val",
    val_windows: Annotated[int, typer.Option(help="Val windows, spread over the val split.")] = 16,
    preload: Annotated[bool, typer.Option(help="Read the whole motion file into memory (small datasets).")] = True,
    seed: Annotated[int, typer.Option(help="Seed for batches, noise and validation sampling.")] = 0,
    augment: Annotated[
        str, typer.Option(help=f"Crop augmentation: {', '.join(AUGMENT_PRESETS)} (standard: mirror, shape, speed).")
    ] = "none",
    mirror_prob: Annotated[float | None, typer.Option(help="Probability of a left/right mirrored crop.")] = None,
    shape_prob: Annotated[float | None, typer.Option(help="Probability of replaying a crop on another body.")] = None,
    shape_std: Annotated[float | None, typer.Option(help="Std of the sampled betas (shape-space units).")] = None,
    speed_range: Annotated[
        str | None, typer.Option(help="Playback-speed factor range MIN:MAX, e.g. 0.8:1.2 (1:1 = off).")
    ] = None,
    ema_decay: Annotated[
        float, typer.Option(help="EMA of the weights (e.g. 0.999), validated and saved instead of them (0: off).")
    ] = 0.0,
    device: Annotated[str, typer.Option(help="Where to train: auto (CUDA when present), cpu or cuda.")] = "auto",
    autocast: Annotated[
        bool, typer.Option(help="bf16 autocast of the denoiser's forward/backward (loss in float32).")
    ] = False,
    compile_forward: Annotated[bool, typer.Option("--compile", help="torch.compile the training forward.")] = False,
    tf32: Annotated[bool, typer.Option(help="CUDA only: TensorFloat-32 float32 matmuls.")] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in --run-dir from its latest checkpoint.")] = False,
) -> None:
    """Train the EgoAllo-style diffusion prior (one process, torchrun or accelerate launch; CPU or CUDA)."""
    from egogrpo.train.prior import RESUMABLE
    from egogrpo.train.prior import train_prior as run

    if preset not in DENOISER_PRESETS:
        raise EgogrpoError(f"unknown --preset {preset!r}; choose one of {', '.join(DENOISER_PRESETS)}")
    model = DENOISER_PRESETS[preset]
    augmentation = augmentation_options(augment, mirror_prob, shape_prob, shape_std, speed_range)
    config = TrainPriorConfig(
        data=str(data), run_dir=str(run_dir), body=body, model=model, batch_size=batch_size, max_steps=max_steps,
        learning_rate=learning_rate, warmup_steps=warmup_steps, val_every=val_every, checkpoint_every=checkpoint_every,
        log_every=log_every, num_workers=num_workers, seed=seed, resume=resume, augment=augmentation,
        ema_decay=ema_decay, val_seeds=val_seeds, crop_length=crop_length, weight_decay=weight_decay,
        grad_clip=grad_clip, train_splits=split_list(train_splits), val_split=val_split, val_windows=val_windows,
        preload=preload, device=device, autocast=autocast, compile=compile_forward, tf32=tf32,
    )  # fmt: skip
    config = with_run_config(ctx, config, OPTION_FIELDS, RESUMABLE)

    def describe(record: dict) -> str:
        if "loss/total" not in record:  # before the first logged step
            return ""
        info = f"loss {record['loss/total']:.4f}"
        if "val/mpjpe_mm" in record:
            info += f"  val MPJPE {record['val/mpjpe_mm']:.1f} mm"
        return info

    with training_progress("train-prior", "step", config.max_steps, describe) as progress:
        summary = run(config, progress)
    if summary.stop_reason == "interrupted":
        report_interruption("train-prior", data, run_dir, "step", summary.final_step, summary.last_checkpoint)
    console.print(
        f"trained to step {summary.final_step} in {summary.seconds:.0f} s; checkpoint: {summary.last_checkpoint}"
    )
