"""train-grpo throughput: seconds per iteration per phase, rollouts/s, peak memory, and the cost of the paper's run.

Measured configurations on the CMU sample train split (preprocessed into a temporary folder):
  cpu    the `cpu` preset with the shipped default prior (2 M parameters): 4 conditions × G = 8, 6 MDP steps
         trained per rollout, EgoAllo's 30-step sampler — a whole iteration as `train-grpo` runs it, once per
         update rule in --algos (grpo; awm / nft: 6 re-noised timesteps per final sample; draft: the reward
         back-propagated through the last `draft_k` = 3 transitions; the "transitions" column then counts
         re-noised samples or rollouts);
  paper  EgoAllo's 50 M-parameter size (random weights, default body) with the paper's recipe per rollout
         (EgoAllo's sampler, all 29 MDP steps trained), measured on a reduced batch (1 condition × G members,
         `--train-steps` of them) and extrapolated per rollout and per transition to the paper's 64 × 16
         rollouts and ~2000 iterations (72 A6000 GPU-hours in the paper, Appendix C).
Numbers depend on the machine; the table says which one. On CUDA the same code runs on the GPU.

    python benchmarks/bench_grpo.py [--paper-group 4] [--paper-train-steps 2] [--iterations 2] [--algos grpo,awm]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cmu_subjects

from egogrpo.body import load_body_model
from egogrpo.config import DENOISER_PRESETS, GRPO_PRESETS, PreprocessConfig, TrainGRPOConfig
from egogrpo.data.preprocess import run_preprocess
from egogrpo.model.checkpoint import save_checkpoint
from egogrpo.model.denoiser import EgoDenoiser
from egogrpo.train.grpo import train_grpo

PAPER_ROLLOUTS, PAPER_ITERATIONS, PAPER_MDP_STEPS, PAPER_GPU_HOURS = 64 * 16, 2000, 29, 72.0


def _run(config: TrainGRPOConfig) -> dict[str, float]:
    """Run the configured iterations; the per-phase seconds of the last one (the first pays warm-up costs)."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    train_grpo(config)
    records = [json.loads(line) for line in (Path(config.run_dir) / "metrics.jsonl").read_text().splitlines()]
    last = records[-1]
    out = {k.removeprefix("seconds/"): v for k, v in last.items() if k.startswith("seconds/")}
    out["transitions"] = last["trained_transitions"]
    out["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return out


def measure(
    data: str, folder: Path, iterations: int, paper_group: int, paper_train_steps: int, algos: list[str]
) -> None:
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    print(f"machine: {platform.machine()}, {device}, torch {torch.__version__}")
    preset = {**GRPO_PRESETS["cpu"], "iterations": iterations, "val_every": 0, "checkpoint_every": 10_000}
    cpu = TrainGRPOConfig(prior="default-prior", data=data, run_dir=str(folder / "cpu"), **preset)
    rows = [
        (f"cpu preset, shipped prior, {algo}", cpu.batch_groups * cpu.group_size,
         _run(dataclasses.replace(cpu, algo=algo, run_dir=str(folder / f"cpu_{algo}"))))
        for algo in algos
    ]  # fmt: skip

    paper_model = dataclasses.replace(DENOISER_PRESETS["egoallo"], num_betas=10, include_hands=False)
    torch.manual_seed(0)
    prior = folder / "paper_prior"
    save_checkpoint(prior, EgoDenoiser(paper_model), paper_model, body_model_id=load_body_model("default").model_id)
    paper = dataclasses.replace(
        cpu, prior=str(prior), run_dir=str(folder / "paper"), batch_groups=1, group_size=paper_group,
        train_steps_per_trajectory=paper_train_steps, micro_batch=paper_group, iterations=1, learning_rate=1e-5,
    )  # fmt: skip
    paper_row = _run(paper)
    rows.append((f"EgoAllo size (50 M), 1 × G = {paper_group}", paper_group, paper_row))

    print(f"{'configuration':40} {'rollouts':>8} {'rollout s':>9} {'reward s':>8} {'update s':>8} {'transitions':>11} "
          f"{'s/iteration':>11} {'rollouts/s':>10} {'peak GPU GiB':>12}")  # fmt: skip
    for name, count, r in rows:
        total = r["rollout"] + r["reward"] + r["update"]
        print(f"{name:40} {count:8d} {r['rollout']:9.2f} {r['reward']:8.2f} {r['update']:8.2f} {r['transitions']:11d} "
              f"{total:11.2f} {count / r['rollout']:10.2f} {r['peak_gpu_gib']:12.2f}")  # fmt: skip
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak host memory of this process: {peak_rss:.2f} GiB")

    per_rollout = (paper_row["rollout"] + paper_row["reward"]) / paper_group
    per_transition = paper_row["update"] / max(paper_row["transitions"], 1)
    iteration = PAPER_ROLLOUTS * (per_rollout + PAPER_MDP_STEPS * per_transition)
    hours = iteration * PAPER_ITERATIONS / 3600
    print(
        f"paper recipe extrapolated on this machine: {per_rollout:.2f} s per rollout + {per_transition:.2f} s per trained "
        f"transition → {iteration / 60:.1f} min per iteration of {PAPER_ROLLOUTS} rollouts × {PAPER_MDP_STEPS} steps; "
        f"{PAPER_ITERATIONS} iterations ≈ {hours:.0f} h (paper: {PAPER_GPU_HOURS:.0f} A6000 GPU-hours)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--paper-group", type=int, default=4)
    parser.add_argument("--paper-train-steps", type=int, default=2)
    parser.add_argument("--data", type=str, default=None)
    parser.add_argument("--algos", type=str, default="grpo,awm,nft,draft", help="update rules for the cpu rows")
    args = parser.parse_args([] if __name__ != "__main__" else None)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            subjects = cmu_subjects()
            if subjects is None:
                return
            data = str(Path(tmp) / "cmu.h5")
            run_preprocess(
                PreprocessConfig(source="cmu", inputs=(str(subjects),), out=data, skip_short=True, workers=1)
            )
        tick = time.perf_counter()
        algos = [a.strip() for a in args.algos.split(",") if a.strip()]
        measure(data, Path(tmp), args.iterations, args.paper_group, args.paper_train_steps, algos)
        print(f"benchmark wall time {time.perf_counter() - tick:.0f} s")


if __name__ == "__main__":
    main()
