#!/usr/bin/env python
"""Train, evaluate and ship egogrpo's default motion prior (the `cpu` preset on the CMU sample clips).

1. Preprocess the CMU ASF/AMC clips of the sample data onto the default body (`data_manifests/cmu.json` splits).
2. Train the `cpu` preset with `egogrpo.train.prior` on the train split (validation on the val split).
3. Evaluate on the test split: non-overlapping 128-frame windows, the body placed on the ground-truth
   CPF (EgoAllo's protocol), MPJPE and PA-MPJPE over the 22 body joints — the model (mean over seeds)
   against the mean training pose placed at the head.
4. Copy the final checkpoint into `egogrpo/model/assets/default_prior/` with `report.json`.

Usage (from the repository root, in the project's venv):

    python scripts/make_default_prior.py --data-root ../shared/data --work runs/default_prior --steps 2000
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from egogrpo.body import load_body_model
from egogrpo.config import DENOISER_PRESETS, PreprocessConfig, SamplerConfig, TrainPriorConfig
from egogrpo.data.preprocess import run_preprocess
from egogrpo.eval.windows import joint_errors, mean_pose_state, sample_states, split_windows
from egogrpo.fileio import atomic_output
from egogrpo.model.checkpoint import load_checkpoint
from egogrpo.train.prior import train_prior

ASSET_DIR = Path(__file__).resolve().parents[1] / "egogrpo" / "model" / "assets" / "default_prior"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/default_prior"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--no-ship", action="store_true", help="evaluate only; do not copy into the package")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "cmu.h5"
    if not data.exists():
        run_preprocess(
            PreprocessConfig(source="cmu", inputs=(str(args.data_root / "cmu/asfamc/subjects"),), out=str(data))
        )
    config = TrainPriorConfig(
        data=str(data),
        run_dir=str(args.work / "run"),
        model=DENOISER_PRESETS["cpu"],
        batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        warmup_steps=min(200, args.steps // 10),
        log_every=50,
        val_every=max(args.steps // 4, 1),
        checkpoint_every=max(args.steps // 4, 1),
        val_windows=8,
        resume=(args.work / "run" / "config.json").exists(),
    )
    start = time.perf_counter()
    summary = train_prior(config, progress=lambda step, total, record: print(json.dumps(record), flush=True))
    train_seconds = time.perf_counter() - start

    body = load_body_model("default")
    model, model_config, _ = load_checkpoint(summary.last_checkpoint)
    windows = split_windows(str(data), "test", 128)
    assert windows is not None
    sampler = SamplerConfig()
    per_seed = []
    for seed in range(args.seeds):
        states = sample_states(model, model_config, sampler, windows.crops, seed=seed)
        errors = joint_errors(body, states, windows.crops)
        per_seed.append({k: float(v.mean()) for k, v in errors.items()})
    baseline = joint_errors(body, mean_pose_state(str(data), ("train",), body.num_betas), windows.crops)
    report = {
        "model": "egogrpo default prior (cpu preset)",
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "body_model_id": body.model_id,
        "training": {
            "data": "CMU sample clips (subjects 01-03), data_manifests/cmu.json train split",
            "steps": summary.final_step,
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "seconds": round(train_seconds, 1),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}",
        },
        "test": {
            "protocol": "CMU test split (01_14, 02_10, 03_04), non-overlapping 128-frame windows from frame 0, "
            "EgoAllo sampler (30 steps), 1 sample, head-anchored placement on the ground-truth CPF, 22 body joints",
            "windows": len(windows.names),
            "seeds": args.seeds,
            "model_mpjpe_mm": sum(r["mpjpe"] for r in per_seed) / len(per_seed),
            "model_pa_mpjpe_mm": sum(r["pa_mpjpe"] for r in per_seed) / len(per_seed),
            "per_seed": per_seed,
            "baseline": "mean training pose and shape placed at the head",
            "baseline_mpjpe_mm": float(baseline["mpjpe"].mean()),
            "baseline_pa_mpjpe_mm": float(baseline["pa_mpjpe"].mean()),
        },
    }
    print(json.dumps(report, indent=2))
    (args.work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_ship:
        ASSET_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "config.json"):
            shutil.copy(Path(summary.last_checkpoint) / name, ASSET_DIR / name)
        with atomic_output(ASSET_DIR / "report.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        print(f"shipped to {ASSET_DIR}")


if __name__ == "__main__":
    main()
