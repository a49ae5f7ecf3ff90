#!/usr/bin/env python
"""Train, evaluate and ship egogrpo's default motion prior on the free CMU sample clips.

1. Preprocess the CMU ASF/AMC sample clips onto the default body twice: with egogrpo's clip split
   (`data_manifests/cmu.json`) and with subject 02 held out (`cmu_subject02.json`).
2. Train the recipe on the held-out file (subjects 01 and 03; checkpoints chosen on subject 02's val clips)
   and evaluate the chosen checkpoint on subject 02's test clips (protocol `cmu-subject02`): how the recipe
   does on a person it has never seen, beside the mean-pose baseline, the oracle and the ground truth.
3. Train the same recipe on all the sample subjects (the clip split) for the number of steps chosen in step 2
   (the held-out val choice: the clip split's val clips come from the training subjects, so they would
   reward memorising them), and evaluate its final checkpoint on the CMU test split (protocol `cmu-test`).
4. Copy the step-3 checkpoint into `egogrpo/model/assets/default_prior/` with `report.json` (recipe, both
   tables, training time, hardware).

Runs resume when their folder exists, so the script can be stopped and started again. Usage (from the
repository root, in the project's venv; each training run takes ~40 min on 2 CPU cores at 3000 steps):

    python scripts/make_default_prior.py --work runs/default_prior --steps 1500 --augment standard --ema-decay 0.999
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from egogrpo.config import (
    AUGMENT_PRESETS,
    DENOISER_PRESETS,
    EvalConfig,
    PreprocessConfig,
    TrainPriorConfig,
    config_to_dict,
)
from egogrpo.data.preprocess import run_preprocess
from egogrpo.eval.evaluate import evaluate
from egogrpo.fileio import atomic_output
from egogrpo.model.checkpoint import load_checkpoint
from egogrpo.train.prior import train_prior
from egogrpo.train.run_dir import latest_checkpoint

ASSET_DIR = Path(__file__).resolve().parents[1] / "egogrpo" / "model" / "assets" / "default_prior"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/default_prior"))
    parser.add_argument("--preset", default="cpu", choices=sorted(DENOISER_PRESETS))
    parser.add_argument("--augment", default="standard", choices=sorted(AUGMENT_PRESETS))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--ema-decay", type=float, default=0.0, help="EMA of the weights (0: off)")
    parser.add_argument("--val-every", type=int, default=250, help="held-out validation (and checkpoint) interval")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    parser.add_argument("--heldout-run", type=Path, help="an existing held-out run of the same recipe to reuse")
    parser.add_argument("--no-ship", action="store_true", help="evaluate only; do not copy into the package")
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    subjects = args.data_root / "cmu/asfamc/subjects"
    files = {"clips": args.work / "cmu.h5", "heldout": args.work / "cmu_subject02.h5"}
    for manifest, path in (("cmu", files["clips"]), ("cmu_subject02", files["heldout"])):
        if not path.exists():
            run_preprocess(
                PreprocessConfig(source="cmu", inputs=(str(subjects),), out=str(path), split_manifest=manifest)
            )

    def recipe(data: Path, run_dir: Path, steps: int) -> TrainPriorConfig:
        return TrainPriorConfig(
            data=str(data),
            run_dir=str(run_dir),
            model=DENOISER_PRESETS[args.preset],
            augment=AUGMENT_PRESETS[args.augment],
            batch_size=args.batch_size,
            max_steps=steps,
            learning_rate=args.lr,
            warmup_steps=args.warmup_steps,
            ema_decay=args.ema_decay,
            log_every=50,
            val_every=args.val_every,
            checkpoint_every=args.val_every,
            resume=(run_dir / "config.json").exists(),
        )

    def train(config: TrainPriorConfig, pointer: str) -> tuple[Path, float]:
        start = time.perf_counter()
        train_prior(config, progress=lambda step, total, record: print(json.dumps(record), flush=True))
        chosen = latest_checkpoint(config.run_dir, pointer) or latest_checkpoint(config.run_dir)
        assert chosen is not None
        return chosen, time.perf_counter() - start

    def table(checkpoint: Path, data: Path, protocol: str, out: Path) -> dict:
        result = evaluate(
            EvalConfig(
                data=str(data), checkpoints=(str(checkpoint),), protocol=protocol, seeds=args.seeds,
                baseline=True, out=str(out),
            )
        )  # fmt: skip
        rows = {row.kind: {k: {"mean": v[0], "se": v[1]} for k, v in row.values.items()} for row in result.rows}
        return {
            "protocol": protocol,
            "seeds": args.seeds,
            "windows": len(result.record["data"]["windows"]),
            "rows": rows,
        }

    heldout_run = args.heldout_run or args.work / "heldout"
    if (heldout_run / "config.json").exists():  # a reused run keeps its own copy of the held-out file
        files["heldout"] = Path(json.loads((heldout_run / "config.json").read_text())["data"])
    heldout_checkpoint, heldout_seconds = train(recipe(files["heldout"], heldout_run, args.steps), "best")
    heldout = table(heldout_checkpoint, files["heldout"], "cmu-subject02", args.work / "eval-subject02")
    chosen_steps = int(load_checkpoint(heldout_checkpoint)[2]["extra"]["step"])
    config = recipe(files["clips"], args.work / "run", chosen_steps)
    shipped_checkpoint, seconds = train(config, "latest")
    test = table(shipped_checkpoint, files["clips"], "cmu-test", args.work / "eval-cmu-test")

    model, _, meta = load_checkpoint(shipped_checkpoint)
    report = {
        "model": f"egogrpo default prior ({args.preset} preset)",
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "body_model_id": meta["body_model_id"],
        "recipe": {
            key: value
            for key, value in config_to_dict(dataclasses.replace(config, data="", run_dir="")).items()
            if key not in ("data", "run_dir", "resume")
        },
        "training": {
            "data": "CMU sample clips (subjects 01-03), data_manifests/cmu.json train split",
            "steps": f"{chosen_steps}: the subject-held-out run's val-chosen step",
            "checkpoint": shipped_checkpoint.name,
            "seconds": round(seconds, 1),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, "
            f"torch {torch.__version__}",
        },
        "subject_held_out": {
            "data": "trained on subjects 01 and 03, chosen on subject 02's val clips (02_05, 02_08, 02_09), "
            "tested on subject 02's test clips (02_06, 02_07, 02_10): data_manifests/cmu_subject02.json",
            "checkpoint": heldout_checkpoint.name,
            "seconds": round(heldout_seconds, 1),
            **heldout,
        },
        "test": test,
    }
    print(json.dumps(report, indent=2))
    (args.work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_ship:
        ASSET_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "config.json"):
            shutil.copy(shipped_checkpoint / name, ASSET_DIR / name)
        with atomic_output(ASSET_DIR / "report.json") as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n")
        print(f"shipped to {ASSET_DIR}")


if __name__ == "__main__":
    main()
