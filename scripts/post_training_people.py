#!/usr/bin/env python
"""Post-training whose gain is measured on people it never saw (issue 23): the equal-budget study.

Every post-training row starts from the shipped default prior (trained on the train people of
data_manifests/free.json), trains on the same train people, validates on the val people (64 windows spread over
the val split, sample seed 0, every 10 iterations) and stops after 45 CPU-minutes of training (`--budget-clock
cpu`: rollouts, rewards, updates and validation; one thread per run, two runs side by side on the 2 cores).

`run ROW SEED` trains (resuming an interrupted run) and then finishes it, all choices on val people only:
  1. the iteration: the run's `best` checkpoint (lowest val MPJPE; the prior itself when none beat it);
  2. WiSE-FT: (1 − α)·prior + α·best for α ∈ {0.25, 0.5, 0.75} on the same val windows; α* the lowest val
     MPJPE over {0, 0.25, 0.5, 0.75, 1} (0 is the prior, 1 the best iteration);
  3. the test people (protocol `people`, every window, sample seed 0 — the prior's row uses the same sampler
     noise, so differences are paired by window and noise): the best iteration and the α* interpolation.
The result, per-window values of every metric included, goes to OUT/results/ROW-sSEED.json (atomic).

`test-time NAME` evaluates the prior with a test-time alternative on the test people (OUT/results/NAME.json).
`table` pools the results into OUT/README.md tables (paired to the prior, mean ± s.e. over windows; the
spread over training seeds beside it).

    OMP_NUM_THREADS=1 python scripts/post_training_people.py run draft 0 --data free.h5 --runs /work/runs/pt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
from pathlib import Path

import torch

from egogrpo.body import load_body_model
from egogrpo.config import EvalConfig, PerlinConfig, SamplerConfig, TrainGRPOConfig
from egogrpo.eval.evaluate import evaluate
from egogrpo.eval.metrics import paired_difference
from egogrpo.eval.windows import split_windows
from egogrpo.fileio import atomic_output
from egogrpo.model.checkpoint import (
    DEFAULT_PRIOR_NAME,
    interpolate_weights,
    load_checkpoint,
    merge_checkpoints,
    resolve_checkpoint,
)
from egogrpo.train.grpo import grpo_validation, train_grpo
from egogrpo.train.run_dir import read_metrics

BUDGET_CPU_MINUTES = 45.0
VAL_EVERY = 10
ALPHAS = (0.25, 0.5, 0.75)
DRAFT = dict(algo="draft", batch_groups=16, group_size=2, perlin=PerlinConfig(amplitude=0.0), draft_k=3)
#: Set before any run, from gradient magnitudes at the prior (not tuned on val or test): the anchor's gradient
#: norm at w = 1000 is about a third of DRaFT's reward gradient (the prior's own loss gradient is ~5e-4 at w = 1);
#: the KL's at β = 0.01 about equals it after one update (it starts at 0).
ANCHOR_WEIGHT, KL_WEIGHT = 1000.0, 0.01
ROWS: dict[str, dict] = {
    "draft": DRAFT,
    "draft+anchor": {**DRAFT, "anchor_weight": ANCHOR_WEIGHT},
    "draft+anchor+frozen": {**DRAFT, "anchor_weight": ANCHOR_WEIGHT, "freeze_condition_encoder": True},
    "draft+anchor+frozen+kl": {
        **DRAFT, "anchor_weight": ANCHOR_WEIGHT, "freeze_condition_encoder": True, "kl_weight": KL_WEIGHT,
    },
    # the cpu preset (4 conditions × G = 8, 6 trained transitions per rollout), stochastic and trained on the
    # first 10 of the 30 transitions only (the noisy ones), λ = 0.1 Perlin noise
    "grpo-early+kl": dict(
        algo="grpo", batch_groups=4, group_size=8, train_steps_per_trajectory=6, micro_batch=32,
        sampler=SamplerConfig(stochastic_steps=(0, 10)), kl_weight=KL_WEIGHT,
    ),
}  # fmt: skip
#: Test-time alternatives on the prior (no training): EgoAllo's post-sampling guidance, the mean of 4 samples,
#: and the best of 4 as scored by the perceptual model trained on the train people (`--verifier`).
TEST_TIME = {
    "refine": dict(guidance="post"),
    "mean-of-4": dict(combine="mean", candidates=4),
    "best-of-4": dict(combine="best", candidates=4),
}


def run_config(row: str, seed: int, data: str, run_dir: Path, resume: bool) -> TrainGRPOConfig:
    return TrainGRPOConfig(
        prior=DEFAULT_PRIOR_NAME, data=data, run_dir=str(run_dir), iterations=100_000, learning_rate=1e-5,
        val_every=VAL_EVERY, checkpoint_every=VAL_EVERY, val_windows=64, val_seeds=1, time_budget_minutes=BUDGET_CPU_MINUTES,
        budget_clock="cpu", seed=seed, resume=resume, **ROWS[row],
    )  # fmt: skip


def _test(data: str, checkpoints: list[str], **options) -> dict:
    result = evaluate(
        EvalConfig(data=data, checkpoints=tuple(checkpoints), protocol="people", split="test", seeds=1, **options)
    )
    rows = [r for r in result.rows if r.kind == "checkpoint"]
    return {
        "windows": result.record["data"]["windows"],
        "rows": [
            {
                "checkpoint": r.checkpoint, "weights_sha256": r.weights_sha256,
                "values": {k: list(v) for k, v in r.values.items()},
                "window_means": {k: [round(float(x), 4) for x in v] for k, v in r.window_means.items()},
            }
            for r in rows
        ],
    }  # fmt: skip


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def run(row: str, seed: int, data: str, runs: Path, out: Path) -> None:
    result_path = out / "results" / f"{row}-s{seed}.json"
    if result_path.exists():
        print(f"{result_path} exists: skipped")
        return
    run_dir = runs / f"{row}-s{seed}"
    config = run_config(row, seed, data, run_dir, resume=(run_dir / "checkpoints" / "latest").is_file())
    if run_dir.exists() and not config.resume:
        shutil.rmtree(run_dir)  # an interrupted start without any checkpoint
    summary = train_grpo(config, announce=print)
    records = read_metrics(run_dir / "metrics.jsonl")
    val = {int(r["iteration"]): r for r in records if "val/mpjpe_mm" in r}
    prior_folder = resolve_checkpoint(DEFAULT_PRIOR_NAME)
    best = summary.best_checkpoint
    best_iteration = 0 if best is None else int(Path(best).name.split("_")[1])
    best_folder = prior_folder if best is None else Path(best)

    # WiSE-FT on the same val windows, seed 0
    body = load_body_model(config.body)
    prior_model, model_config, _ = load_checkpoint(prior_folder)
    best_model, _, _ = load_checkpoint(best_folder)
    windows = split_windows(data, config.val_split, config.crop_length, config.val_windows)
    wise_val = {0.0: val[0]["val/mpjpe_mm"], 1.0: val[best_iteration]["val/mpjpe_mm"]}
    wise_val_pa = {0.0: val[0]["val/pa_mpjpe_mm"], 1.0: val[best_iteration]["val/pa_mpjpe_mm"]}
    prior_state, best_state = prior_model.state_dict(), best_model.state_dict()
    for alpha in ALPHAS if best is not None else ():
        prior_model.load_state_dict(interpolate_weights(prior_state, best_state, alpha))
        errors = grpo_validation(prior_model, config, model_config, body, windows.crops)
        wise_val[alpha], wise_val_pa[alpha] = errors["val/mpjpe_mm"], errors["val/pa_mpjpe_mm"]
        print(f"WiSE α {alpha}: val MPJPE {errors['val/mpjpe_mm']:.2f}")
    alpha_star = min(wise_val, key=lambda a: (wise_val[a], -a))
    wise_folder = run_dir / "wise"
    if wise_folder.exists():
        shutil.rmtree(wise_folder)
    merge_checkpoints(prior_folder, best_folder, alpha_star, wise_folder)

    test = _test(data, [str(best_folder), str(wise_folder)])
    last = records[-1]
    _write(
        result_path,
        {
            "row": row, "seed": seed, "config": dataclasses.asdict(config),
            "iterations": summary.final_iteration, "cpu_minutes": last.get("time/cpu_s", 0) / 60,
            "wall_minutes": last.get("time/elapsed_s", 0) / 60,
            "val_curve": {i: {"mpjpe": r["val/mpjpe_mm"], "pa_mpjpe": r["val/pa_mpjpe_mm"]} for i, r in val.items()},
            "best_iteration": best_iteration,
            "wise_val": {str(a): {"mpjpe": wise_val[a], "pa_mpjpe": wise_val_pa[a]} for a in sorted(wise_val)},
            "alpha": alpha_star,
            "test": test,
        },
    )  # fmt: skip
    print(f"{result_path}: best iteration {best_iteration}, α* {alpha_star}")


def test_time(name: str, data: str, out: Path, verifier: str | None) -> None:
    result_path = out / "results" / f"{name}.json"
    if result_path.exists():
        print(f"{result_path} exists: skipped")
        return
    options = dict(TEST_TIME[name]) if name != "prior" else {}
    if options.get("combine") == "best":
        if verifier is None:
            raise SystemExit(f"{name} needs --verifier (a perceptual checkpoint trained on the train people)")
        options["verifier"] = verifier
    test = _test(data, [DEFAULT_PRIOR_NAME], **options)
    _write(result_path, {"row": name, "options": options, "test": test})


# --- the table ---------------------------------------------------------------------------------------

METRICS = ("mpjpe", "pa_mpjpe", "mpjve", "mpjre", "jitter", "gp", "fs", "float")


def _paired(values: list[list[float]], reference: list[float]) -> tuple[float, float, float]:
    """The mean over seeds per window, paired against the reference (`eval.metrics.paired_difference`)."""
    seeds_mean = torch.tensor(values, dtype=torch.float64).mean(dim=0)
    d = paired_difference(seeds_mean, torch.tensor(reference, dtype=torch.float64))
    return d["mean"], d["standard_error"], math.nan if d["percent"] is None else d["percent"]


def table(out: Path) -> None:
    results = {p.stem: json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))}
    prior = results["prior"]["test"]["rows"][0]["window_means"]
    groups: dict[str, list[dict]] = {}
    for name, record in results.items():
        if name == "prior":
            continue
        if "seed" in record:
            groups.setdefault(record["row"], []).append(record["test"]["rows"][0]["window_means"])
            groups.setdefault(record["row"] + " + WiSE α", []).append(record["test"]["rows"][1]["window_means"])
        else:
            groups.setdefault(name, []).append(record["test"]["rows"][0]["window_means"])
    lines = [
        "| row | seeds | " + " | ".join(f"Δ{m}" for m in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for name, members in groups.items():
        cells = []
        for m in METRICS:
            mean, se, pct = _paired([v[m] for v in members], prior[m])
            cells.append(f"{mean:+.2f} ± {se:.2f} ({pct:+.1f} %)")
        lines.append(f"| {name} | {len(members)} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "test-time", "table"))
    parser.add_argument("args", nargs="*")
    parser.add_argument("--data", default="free.h5")
    parser.add_argument("--runs", type=Path, default=Path("/work/runs/pt"))
    parser.add_argument("--out", type=Path, default=Path("reports/post_training_people"))
    parser.add_argument("--verifier", help="best-of-N: the perceptual checkpoint (train-reward on the train people)")
    options = parser.parse_args()
    torch.set_num_threads(1)
    if options.command == "run":
        for spec in options.args:  # ROW:SEED …, in order
            row, seed = spec.rsplit(":", 1)
            if row not in ROWS:
                parser.error(f"unknown row {row!r}; known: {', '.join(ROWS)}")
            run(row, int(seed), options.data, options.runs, options.out)
    elif options.command == "test-time":
        for name in options.args:
            if name != "prior" and name not in TEST_TIME:
                parser.error(f"unknown test-time row {name!r}; known: prior, {', '.join(TEST_TIME)}")
            test_time(name, options.data, options.out, options.verifier)
    else:
        table(options.out)


if __name__ == "__main__":
    main()
