"""Intra-group diversity of GRPO rollouts against the Perlin amplitude (paper Table 3), with the reward spread.

For λ ∈ {0, 0.05, 0.1} m and both scopes (one perturbation per group, or per member), the shipped prior is
rolled out G times on crops of the CMU sample train split (the same crops and noise keys for every row of
the table), exactly as `train-grpo` does at iteration 0. Printed per row: Eq. 22 diversity of the placed
world joints (metres, the flattened T×22×3 motion), mean per-joint spread within a group (mm), each joint
reward's mean within-group std, the share of degenerate groups and the joint error of the members (mm).

`--per-step` asks instead which sampling step's noise makes a group's members differ: with λ = 0 and x_T shared,
noise is drawn at one transition k only (an SDE window k:k+1, every other step deterministic), and the table gives
the members' within-group spread of joint error (mm) and of each joint reward, per k. Where the spread comes from
is where GRPO's log-probability gradient carries signal (train-grpo --sde-window).

    python benchmarks/grpo_diversity.py [--groups 8] [--group-size 8] [--data cmu.h5] [--per-step]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cmu_subjects

from egogrpo.body import load_body_model
from egogrpo.config import PerlinConfig, PreprocessConfig, RewardConfig, SamplerConfig, TrainGRPOConfig
from egogrpo.data.crops import MotionCropDataset
from egogrpo.data.preprocess import run_preprocess
from egogrpo.eval.metrics import intra_group_diversity
from egogrpo.model.checkpoint import load_checkpoint, resolve_checkpoint
from egogrpo.model.placement import placed_joints, truth_joints
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim
from egogrpo.train.grpo import iteration_crops
from egogrpo.train.perlin import perlin_keys, perturbed_condition
from egogrpo.train.rewards import JOINT_REWARDS, group_advantages, reward_terms


def setup(data: str, groups: int, group_size: int, seed: int) -> tuple:
    """The shipped prior, its config, the body, train-grpo's iteration-0 crops and the packed state size."""
    model, model_config, _ = load_checkpoint(resolve_checkpoint("default"))
    config = TrainGRPOConfig(prior="default", data=data, run_dir="", batch_groups=groups, group_size=group_size)
    dataset = MotionCropDataset(data, splits=("train",), crop_length=128, seed=seed, preload=True)
    crops = iteration_crops(dataset, config, 0)
    return model, model_config, load_body_model("default"), crops


def measure(data: str, groups: int, group_size: int, seed: int = 0) -> None:
    model, model_config, body, crops = setup(data, groups, group_size, seed)
    policy = DiffusionPolicy(NoiseSchedule.cosine(), SamplerConfig(), body_rotation_projection(model_config.num_betas))
    state_dim = packed_dim(model_config.num_betas, model_config.include_hands)
    B, G = groups, group_size
    print(f"shipped prior, CMU train crops: {B} groups × G = {G}, EgoAllo sampler (30 steps), x_T shared in a group")
    header = f"{'λ (m)':>6} {'scope':>7} {'Diversity':>9} {'spread':>7} " + " ".join(
        f"{'std ' + n:>9}" for n in JOINT_REWARDS
    )
    print(header + f" {'degenerate':>10} {'MPJPE':>7} {'s':>5}")
    for amplitude in (0.0, 0.05, 0.1):
        for scope in ("group", "member"):
            if amplitude == 0.0 and scope == "member":
                continue
            tick = time.perf_counter()
            perlin = PerlinConfig(amplitude=amplitude, scope=scope)
            keys = perlin_keys(seed, 0, torch.arange(B), torch.arange(G), scope)
            cond = perturbed_condition(crops, keys, perlin, model_config)
            rollout = policy.rollout(model, cond, RolloutIds.grid(seed, 0, B, G), state_dim, record=False)
            state = MotionState.unpack(rollout.final, model_config.num_betas, model_config.include_hands)
            terms = reward_terms(body, state, crops, RewardConfig())
            advantages = group_advantages(torch.stack([terms[n] for n in JOINT_REWARDS], dim=-1), RewardConfig())
            joints, _ = placed_joints(body, state, crops)  # (B, G, T, 22, 3)
            diversity = torch.stack([intra_group_diversity(j) for j in joints]).mean()
            spread = (joints - joints.mean(dim=1, keepdim=True)).norm(dim=-1).mean() * 1000
            error = (joints - truth_joints(crops)[:, None]).norm(dim=-1).mean() * 1000
            stds = " ".join(f"{float(advantages.group_std[:, k].mean()):9.5f}" for k in range(len(JOINT_REWARDS)))
            print(
                f"{amplitude:6.2f} {scope:>7} {float(diversity):9.4f} {float(spread):7.2f} {stds} "
                f"{float(advantages.degenerate.float().mean()):10.2f} {float(error):7.1f} {time.perf_counter() - tick:5.1f}",
                flush=True,
            )


def measure_per_step(data: str, groups: int, group_size: int, seed: int = 0) -> None:
    model, model_config, body, crops = setup(data, groups, group_size, seed)
    state_dim = packed_dim(model_config.num_betas, model_config.include_hands)
    B, G = groups, group_size
    cond = perturbed_condition(crops, perlin_keys(seed, 0, torch.arange(B), torch.arange(G), "group"),
                               PerlinConfig(amplitude=0.0), model_config)  # fmt: skip
    K = len(DiffusionPolicy(NoiseSchedule.cosine(), SamplerConfig()).plan) - 1
    print(f"shipped prior, CMU train crops: {B} groups × G = {G}, x_T shared; noise at the listed transitions only")
    print(f"{'noisy steps':>12} {'error spread':>12} " + " ".join(f"{'std ' + n:>9}" for n in JOINT_REWARDS))
    windows = [None] + [(k, k + 1) for k in (0, 1, 2, 3, 5, 8, 12, 17, 22, K - 2)] + [(0, 3), (3, K - 1)]
    for window in windows:
        sampler = dataclasses.replace(SamplerConfig(), stochastic_steps=window)
        policy = DiffusionPolicy(NoiseSchedule.cosine(), sampler, body_rotation_projection(model_config.num_betas))
        rollout = policy.rollout(model, cond, RolloutIds.grid(seed, 0, B, G), state_dim, record=False)
        state = MotionState.unpack(rollout.final, model_config.num_betas, model_config.include_hands)
        terms = reward_terms(body, state, crops, RewardConfig())
        joints, _ = placed_joints(body, state, crops)
        error = (joints - truth_joints(crops)[:, None]).norm(dim=-1).mean(dim=(-1, -2)) * 1000  # (B, G) mm
        label = "all" if window is None else f"{window[0]}:{window[1]}"
        stds = " ".join(f"{float(terms[n].std(dim=1).mean()):9.5f}" for n in JOINT_REWARDS)
        print(f"{label:>12} {float(error.std(dim=1).mean()):12.2f} {stds}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--data", type=str, default=None, help="a CMU HDF5 (default: preprocess the sample data)")
    parser.add_argument("--per-step", action="store_true", help="which step's noise spreads a group's rewards")
    args = parser.parse_args([] if __name__ != "__main__" else None)
    run = measure_per_step if args.per_step else measure
    if args.data is not None:
        run(args.data, args.groups, args.group_size)
        return
    subjects = cmu_subjects()
    if subjects is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "cmu.h5")
        run_preprocess(
            PreprocessConfig(
                source="cmu", inputs=(str(subjects),), out=out, skip_short=True, workers=1, splits=("train",)
            )
        )
        run(out, args.groups, args.group_size)


if __name__ == "__main__":
    main()
