#!/usr/bin/env python
"""Post-train the shipped default prior with MotionGRPO, choose a checkpoint on val, evaluate it, ship it if it is better.

1. Preprocess the CMU ASF/AMC sample clips onto the default body (`data_manifests/cmu.json` splits).
2. `train-grpo` from the shipped prior (`cpu` preset unless overridden), resuming the run if it exists.
3. Choose the checkpoint with the lowest val-split MPJPE (`checkpoints/best`, written by the loop); the prior
   itself competes through its own val MPJPE at iteration 0.
4. `egogrpo eval` on the CMU test split (protocol `cmu-test`, 3 seeds) for the prior and the chosen checkpoint,
   every Table-1 metric plus the mean-pose baseline.
5. With `--ship`, and only if the chosen checkpoint beats the prior on val, copy it into
   `egogrpo/model/assets/default_grpo/` with `report.json` (recipe, val curve, test table); `default` then
   names it and `default-prior` the plain prior.

    python scripts/make_default_grpo.py --work runs/default_grpo --iterations 300 [--ship]
    python scripts/make_default_grpo.py --work runs/default_draft --algo draft --group-size 2 --batch-groups 16 \
        --perlin-lambda 0 --iterations 1000 --time-budget 45
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
from pathlib import Path

import torch

from egogrpo.config import GRPO_PRESETS, EvalConfig, PerlinConfig, PreprocessConfig, TrainGRPOConfig
from egogrpo.data.preprocess import run_preprocess
from egogrpo.eval.evaluate import evaluate
from egogrpo.fileio import atomic_output
from egogrpo.model.checkpoint import DEFAULT_PRIOR_NAME, default_prior_dir, grpo_default_dir
from egogrpo.train.grpo import train_grpo
from egogrpo.train.run_dir import read_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/default_grpo"))
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--perlin-lambda", type=float, default=0.1)
    parser.add_argument("--algo", default="grpo", choices=("grpo", "awm", "nft", "draft"), help="update rule")
    parser.add_argument("--draft-k", type=int, default=3)
    parser.add_argument("--group-size", type=int, default=None, help="override the cpu preset's G")
    parser.add_argument("--batch-groups", type=int, default=None, help="override the cpu preset's conditions")
    parser.add_argument("--time-budget", type=float, default=None, help="minutes of training (resumes summed)")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--ship", action="store_true", help="copy the chosen checkpoint into the package")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "cmu.h5"
    if not data.exists():
        subjects = args.data_root / "cmu/asfamc/subjects"
        run_preprocess(PreprocessConfig(source="cmu", inputs=(str(subjects),), out=str(data), skip_short=True))
    run_dir = args.work / "run"
    preset = {**GRPO_PRESETS["cpu"], "iterations": args.iterations}
    if args.lr is not None:
        preset["learning_rate"] = args.lr
    for key, value in (("group_size", args.group_size), ("batch_groups", args.batch_groups)):
        if value is not None:
            preset[key] = value
    config = TrainGRPOConfig(
        prior=str(default_prior_dir()), data=str(data), run_dir=str(run_dir),
        perlin=PerlinConfig(amplitude=args.perlin_lambda), resume=(run_dir / "config.json").exists(), algo=args.algo,
        draft_k=args.draft_k, time_budget_minutes=args.time_budget, **preset,
    )  # fmt: skip
    summary = train_grpo(config, progress=lambda i, n, record: print(json.dumps(record), flush=True))
    records = read_metrics(run_dir / "metrics.jsonl")
    val = [{k: r[k] for k in ("iteration", "val/mpjpe_mm", "val/pa_mpjpe_mm")} for r in records if "val/mpjpe_mm" in r]
    if summary.best_checkpoint is None:
        print("no iteration beat the prior on val MPJPE: nothing to ship")
        return
    best = summary.best_checkpoint
    result = evaluate(
        EvalConfig(
            data=str(data), checkpoints=(str(default_prior_dir()), str(best)), protocol="cmu-test",
            seeds=args.seeds, baseline=True, out=str(args.work / "cmu-test"),
        )
    )  # fmt: skip
    table = {row.name: {k: {"mean": v[0], "se": v[1]} for k, v in row.values.items()} for row in result.rows}
    run_config = json.loads((run_dir / "config.json").read_text())
    report = {
        "model": f"egogrpo default prior post-trained with train-grpo --algo {args.algo} (joint rewards)",
        "starting_prior": f"{DEFAULT_PRIOR_NAME} (egogrpo/model/assets/default_prior)",
        "chosen_checkpoint": {"iteration": int(best.name.split("_")[-1]), "rule": "lowest val-split MPJPE"},
        "training": {
            "data": "CMU sample clips (subjects 01-03), data_manifests/cmu.json train split",
            "config": run_config,
            "seconds": round(sum(r.get(k, 0.0) for r in records for k in r if k.startswith("seconds/")), 1),
            "hardware": f"{platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}",
        },
        "val_curve": val,
        "test": {"protocol": "cmu-test", "seeds": args.seeds, "record": "cmu-test.json", "rows": table},
    }
    (args.work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["test"], indent=2))
    if args.ship:
        target = grpo_default_dir()
        target.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "config.json"):
            shutil.copy(best / name, target / name)
        with atomic_output(target / "report.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        print(f"shipped to {target}")


if __name__ == "__main__":
    main()
