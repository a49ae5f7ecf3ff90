"""`egogrpo train-grpo`: MotionGRPO post-training (no numerics here; see egogrpo.train.grpo)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from egogrpo.cli.common import (
    augmentation_options,
    console,
    err_console,
    report_interruption,
    split_list,
    training_progress,
    with_run_config,
)
from egogrpo.config import AUGMENT_PRESETS, GRPO_PRESETS, PerlinConfig, RewardConfig, SamplerConfig, TrainGRPOConfig
from egogrpo.errors import EgogrpoError

#: --help panels of train-grpo's options.
ROLLOUTS = "Rollouts and rewards"
UPDATE = "Update rule"
PRIOR_TIES = "Staying close to the prior (generalisation)"
PERCEPTUAL = "Perceptual reward"
RUN = "Length, validation, checkpoints, compute"


def _presets(field: str) -> str:
    """The presets' values of a TrainGRPOConfig field, for --help: "(cpu: 300, paper: 2000)"."""
    default = {f.name: f.default for f in dataclasses.fields(TrainGRPOConfig)}[field]
    values = {name: preset.get(field, default) for name, preset in GRPO_PRESETS.items()}
    return "(" + ", ".join(f"{name}: {'all' if v is None else v}" for name, v in values.items()) + ")."


def _parse_window(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        first, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise EgogrpoError(f"--sde-window must look like FIRST:STOP (transition indices), got {text!r}") from None
    return first, stop


def _parse_fields(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(f.strip() for f in text.split(",") if f.strip())


#: train-grpo's options → the TrainGRPOConfig fields they set (what `--resume` may take from the command line).
OPTION_FIELDS: dict[str, str | tuple[str, ...]] = {
    "device": "device",
    "prior": "prior", "body": "body", "iterations": "iterations", "group_size": "group_size",
    "batch_groups": "batch_groups", "lr": "learning_rate", "perlin_lambda": "perlin", "perlin_scope": "perlin",
    "train_steps": "train_steps_per_trajectory", "sde_window": "sampler", "projection": "sampler",
    "clip_range": "clip_range", "kl_weight": "kl_weight", "inner_epochs": "inner_epochs",
    "updates_per_epoch": "updates_per_epoch", "micro_batch": "micro_batch", "log_prob_fields": "log_prob_fields",
    "share_initial_noise": "share_initial_noise", "recompute_old_log_probs": "recompute_old_log_probs",
    "std_floor": "reward", "advantage": "reward", "algo": "algo", "draft_k": "draft_k", "nft_beta": "nft_beta",
    "val_every": "val_every", "checkpoint_every": "checkpoint_every", "augment": "augment",
    "time_budget": "time_budget_minutes", "budget_clock": "budget_clock", "anchor_weight": "anchor_weight",
    "anchor_batch": "anchor_batch", "freeze_condition_encoder": "freeze_condition_encoder",
    "val_windows": "val_windows", "val_seeds": "val_seeds", "reward_model": "reward_model",
    "reward_online": "reward_online", "reward_update_every": "reward_update_every",
    "reward_ema_decay": "reward_ema_decay", "reward_lr": "reward_learning_rate",
    "reward_min_negative_error": "reward_min_negative_error", "seed": "seed", "crop_length": "crop_length",
    "weight_decay": "weight_decay", "grad_clip": "grad_clip", "reward_temperature": "reward_temperature",
    "reward_weight_decay": "reward_weight_decay", "train_splits": "train_splits", "val_split": "val_split",
    "preset": ("iterations", "group_size", "batch_groups", "learning_rate", "micro_batch",
               "train_steps_per_trajectory", "val_every", "checkpoint_every", "val_seeds"),
}  # fmt: skip


def train_grpo_command(
    ctx: typer.Context,
    data: Annotated[Path, typer.Argument(help="Motion file from `egogrpo preprocess` (its train split is used).")],
    run_dir: Annotated[Path, typer.Option(help="New folder for this run (config, metrics.jsonl, checkpoints).")],
    prior: Annotated[str, typer.Option(help="Prior checkpoint folder to post-train, or 'default'.")] = "default",
    preset: Annotated[str, typer.Option(help=f"Recipe: {', '.join(GRPO_PRESETS)}.")] = "cpu",
    body: Annotated[
        str, typer.Option(help="The body model the data was made with: 'default' or your .npz.")
    ] = "default",
    iterations: Annotated[
        int | None, typer.Option(rich_help_panel=RUN, help="Override: GRPO iterations " + _presets("iterations"))
    ] = None,
    group_size: Annotated[
        int | None,
        typer.Option(rich_help_panel=ROLLOUTS, help="Override: G, rollouts per condition " + _presets("group_size")),
    ] = None,
    batch_groups: Annotated[
        int | None,
        typer.Option(rich_help_panel=ROLLOUTS, help="Override: conditions per iteration " + _presets("batch_groups")),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option("--lr", rich_help_panel=UPDATE, help="Override: AdamW learning rate " + _presets("learning_rate")),
    ] = None,
    perlin_lambda: Annotated[
        float | None,
        typer.Option(rich_help_panel=ROLLOUTS, help="Override: Perlin amplitude λ in metres (peak, per axis; 0: off)."),
    ] = None,
    perlin_scope: Annotated[
        str, typer.Option(rich_help_panel=ROLLOUTS, help="'group' (Algorithm 1) or 'member'.")
    ] = "group",
    train_steps: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=UPDATE,
            help="Override: MDP transitions trained per trajectory " + _presets("train_steps_per_trajectory"),
        ),
    ] = None,
    sde_window: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=ROLLOUTS, help="Only transitions FIRST:STOP are stochastic and trained (e.g. 0:4)."
        ),
    ] = None,
    projection: Annotated[
        str,
        typer.Option(
            rich_help_panel=ROLLOUTS,
            help="SO(3) projection of x̂₀ in rollouts and log-probs: svd (EgoAllo's) or polar (faster).",
        ),
    ] = "svd",
    clip_range: Annotated[
        float | None, typer.Option(rich_help_panel=UPDATE, help="PPO clip range of the ratio (default: none).")
    ] = None,
    kl_weight: Annotated[
        float,
        typer.Option(
            rich_help_panel=PRIOR_TIES,
            help="β of the KL to the frozen prior (every rule: per-step Gaussian KL of the means).",
        ),
    ] = 0.0,
    inner_epochs: Annotated[
        int, typer.Option(rich_help_panel=UPDATE, help="Passes over each iteration's transitions.")
    ] = 1,
    updates_per_epoch: Annotated[int, typer.Option(rich_help_panel=UPDATE, help="Optimizer steps per pass.")] = 1,
    micro_batch: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=UPDATE, help="Override: transitions per forward/backward " + _presets("micro_batch")
        ),
    ] = None,
    log_prob_fields: Annotated[
        str | None,
        typer.Option(
            rich_help_panel=UPDATE, help="Comma-separated state fields in the log-prob (default: all, exact)."
        ),
    ] = None,
    share_initial_noise: Annotated[
        bool,
        typer.Option(
            rich_help_panel=ROLLOUTS,
            help="One x_T per condition (Algorithm 1); --no-share-initial-noise: one per member.",
        ),
    ] = True,
    recompute_old_log_probs: Annotated[
        bool,
        typer.Option(
            rich_help_panel=UPDATE, help="Recompute π_old's log-probs in the training layout (bit-exact ratio 1)."
        ),
    ] = False,
    std_floor: Annotated[
        float | None, typer.Option(rich_help_panel=ROLLOUTS, help="Override: spread floor of the group normalisation.")
    ] = None,
    advantage: Annotated[
        str,
        typer.Option(
            rich_help_panel=ROLLOUTS,
            help="'normalized' ((r − mean)/std, the paper) or 'rank' (within-group win rates, Pref-GRPO).",
        ),
    ] = "normalized",
    algo: Annotated[
        str,
        typer.Option(
            rich_help_panel=UPDATE,
            help="Update rule on the same rollouts: 'grpo' (the paper, Eq. 8), 'awm' (advantage-weighted matching), "
            "'nft' (DiffusionNFT) or 'draft' (DRaFT-K reward back-propagation).",
        ),
    ] = "grpo",
    draft_k: Annotated[
        int,
        typer.Option(rich_help_panel=UPDATE, help="--algo draft: transitions the reward is back-propagated through."),
    ] = 3,
    nft_beta: Annotated[float, typer.Option(rich_help_panel=UPDATE, help="--algo nft: DiffusionNFT's β.")] = 1.0,
    val_every: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=RUN, help="Override: val MPJPE every N iterations (0: never) " + _presets("val_every")
        ),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=RUN, help="Override: checkpoint every N iterations " + _presets("checkpoint_every")
        ),
    ] = None,
    augment: Annotated[
        str,
        typer.Option(
            rich_help_panel=ROLLOUTS,
            help=f"Crop augmentation as train-prior's: {', '.join(AUGMENT_PRESETS)} (default: none).",
        ),
    ] = "none",
    time_budget: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=RUN,
            help="Stop (validated and checkpointed) once the run has trained this many minutes, resumes summed.",
        ),
    ] = None,
    budget_clock: Annotated[
        str,
        typer.Option(
            rich_help_panel=RUN,
            help="What --time-budget counts: 'wall' (minutes of training) or 'cpu' (process CPU minutes).",
        ),
    ] = "wall",
    anchor_weight: Annotated[
        float,
        typer.Option(
            rich_help_panel=PRIOR_TIES,
            help="w of the prior's denoising loss on real training crops, added to every update (0: off).",
        ),
    ] = 0.0,
    anchor_batch: Annotated[
        int, typer.Option(rich_help_panel=PRIOR_TIES, help="Real crops per optimizer step of the anchor loss.")
    ] = 8,
    freeze_condition_encoder: Annotated[
        bool,
        typer.Option(
            rich_help_panel=PRIOR_TIES,
            help="Keep the condition encoder (latent_from_cond) fixed, as the first author's script.",
        ),
    ] = False,
    val_windows: Annotated[
        int | None,
        typer.Option(rich_help_panel=RUN, help="Override: val windows (spread over the val split's windows)."),
    ] = None,
    val_seeds: Annotated[
        int | None, typer.Option(rich_help_panel=RUN, help="Override: samples per val window " + _presets("val_seeds"))
    ] = None,
    reward_model: Annotated[
        Path | None,
        typer.Option(
            "--reward",
            rich_help_panel=PERCEPTUAL,
            help="Perceptual model from `train-reward`: adds the frozen visual reward exp(ω·s).",
        ),
    ] = None,
    reward_online: Annotated[
        bool,
        typer.Option(
            "--reward-online",
            rich_help_panel=PERCEPTUAL,
            help="Keep training the --reward model on this run's rollouts (hard negatives) and score with its EMA.",
        ),
    ] = False,
    reward_update_every: Annotated[
        int | None,
        typer.Option(
            rich_help_panel=PERCEPTUAL, help="--reward-online: iterations between scorer updates (default 5)."
        ),
    ] = None,
    reward_ema_decay: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=PERCEPTUAL, help="--reward-online: EMA decay of the scoring copy, per update (default 0.9)."
        ),
    ] = None,
    reward_lr: Annotated[
        float | None,
        typer.Option(
            "--reward-lr", rich_help_panel=PERCEPTUAL, help="--reward-online: the scorer's AdamW lr (default 1e-5)."
        ),
    ] = None,
    reward_min_negative_error: Annotated[
        float | None,
        typer.Option(
            rich_help_panel=PERCEPTUAL,
            help="--reward-online: drop negatives within this MPJPE of the truth, metres (default 0.005).",
        ),
    ] = None,
    crop_length: Annotated[int, typer.Option(rich_help_panel=ROLLOUTS, help="Frames per condition crop.")] = 128,
    weight_decay: Annotated[float, typer.Option(rich_help_panel=UPDATE, help="AdamW weight decay.")] = 0.0,
    grad_clip: Annotated[float, typer.Option(rich_help_panel=UPDATE, help="Clip the gradient norm to this.")] = 1.0,
    reward_temperature: Annotated[
        float, typer.Option(rich_help_panel=PERCEPTUAL, help="--reward-online: InfoNCE temperature δ.")
    ] = 0.07,
    reward_weight_decay: Annotated[
        float, typer.Option(rich_help_panel=PERCEPTUAL, help="--reward-online: the scorer's AdamW weight decay.")
    ] = 1e-2,
    train_splits: Annotated[
        str, typer.Option(rich_help_panel=RUN, help="Comma-separated splits the conditions come from.")
    ] = "train",
    val_split: Annotated[str, typer.Option(rich_help_panel=RUN, help="The split of the val windows.")] = "val",
    seed: Annotated[int, typer.Option(rich_help_panel=RUN, help="Seed of the data, noise and Perlin streams.")] = 0,
    device: Annotated[
        str, typer.Option(rich_help_panel=RUN, help="Where to train: auto (CUDA when present), cpu or cuda.")
    ] = "auto",
    resume: Annotated[
        bool, typer.Option(rich_help_panel=RUN, help="Continue the run in --run-dir from its latest checkpoint.")
    ] = False,
) -> None:
    """Post-train a prior with MotionGRPO or a cheaper rule (--algo; one process, torchrun or accelerate launch)."""
    from egogrpo.train.grpo import RESUMABLE, train_grpo

    if preset not in GRPO_PRESETS:
        raise EgogrpoError(f"unknown --preset {preset!r}; choose one of {', '.join(GRPO_PRESETS)}")
    if not data.is_file():
        raise EgogrpoError(f"{data}: no such motion file")
    if projection not in ("svd", "polar"):
        raise EgogrpoError(f"--projection must be svd or polar, got {projection!r}")
    if reward_model is not None and not (reward_model / "config.json").is_file():
        raise EgogrpoError(f"--reward {reward_model}: not a perceptual model checkpoint folder (no config.json)")
    values = dict(GRPO_PRESETS[preset])
    overrides = {
        "iterations": iterations, "group_size": group_size, "batch_groups": batch_groups, "learning_rate": lr,
        "train_steps_per_trajectory": train_steps, "micro_batch": micro_batch, "val_every": val_every,
        "checkpoint_every": checkpoint_every, "clip_range": clip_range, "val_windows": val_windows, "val_seeds": val_seeds, "reward_update_every": reward_update_every,
        "reward_ema_decay": reward_ema_decay, "reward_learning_rate": reward_lr,
        "reward_min_negative_error": reward_min_negative_error,
    }  # fmt: skip
    values.update({k: v for k, v in overrides.items() if v is not None})
    perlin = PerlinConfig(scope=perlin_scope)
    if perlin_lambda is not None:
        perlin = dataclasses.replace(perlin, amplitude=perlin_lambda)
    reward = RewardConfig(advantage=advantage)
    if std_floor is not None:
        reward = dataclasses.replace(reward, std_floor=std_floor)
    config = TrainGRPOConfig(
        prior=prior, data=str(data), run_dir=str(run_dir), body=body, perlin=perlin, reward=reward,
        sampler=SamplerConfig(stochastic_steps=_parse_window(sde_window), projection=projection), kl_weight=kl_weight,
        inner_epochs=inner_epochs, updates_per_epoch=updates_per_epoch, log_prob_fields=_parse_fields(log_prob_fields),
        share_initial_noise=share_initial_noise, recompute_old_log_probs=recompute_old_log_probs,
        seed=seed, resume=resume, time_budget_minutes=time_budget, augment=augmentation_options(augment), algo=algo,
        draft_k=draft_k, nft_beta=nft_beta, budget_clock=budget_clock, anchor_weight=anchor_weight,
        anchor_batch=anchor_batch, freeze_condition_encoder=freeze_condition_encoder, crop_length=crop_length,
        weight_decay=weight_decay, grad_clip=grad_clip, reward_temperature=reward_temperature,
        reward_weight_decay=reward_weight_decay, train_splits=split_list(train_splits), val_split=val_split, device=device,
        reward_model=None if reward_model is None else str(reward_model), reward_online=reward_online, **values,
    )  # fmt: skip

    def describe(record: dict) -> str:
        info = ""
        if "reward/total" in record:
            info = f"reward {record['reward/total']:.4f}  degenerate {record['degenerate_fraction']:.2f}"
        if "val/mpjpe_mm" in record:
            info += f"  val MPJPE {record['val/mpjpe_mm']:.1f} mm"
        return info

    config = with_run_config(ctx, config, OPTION_FIELDS, RESUMABLE)
    with training_progress("train-grpo", "iteration", config.iterations, describe) as progress:
        summary = train_grpo(config, progress, announce=lambda text: err_console.print(text, soft_wrap=True))
    if summary.stop_reason == "interrupted":
        report_interruption("train-grpo", data, run_dir, "iteration", summary.final_iteration, summary.last_checkpoint)
    best = summary.best_checkpoint if summary.best_checkpoint is not None else "the prior (no iteration beat it on val)"
    console.print(
        f"post-trained to iteration {summary.final_iteration} in {summary.seconds:.0f} s ({summary.stop_reason}); "
        f"latest: {summary.last_checkpoint}; best on val: {best}"
    )
