#!/usr/bin/env python
"""Train one recipe of the default-prior study on a motion file split by person (`preprocess corpus`).

Validation runs on every window of the val people every `--val-every` steps (MPJPE and PA-MPJPE in
metrics.jsonl, one sample per window) and a checkpoint is kept at each of them, so that steps and EMA
are chosen afterwards on val only (`eval --split val`). The run resumes when its folder exists.

    python scripts/train_free_prior.py free.h5 --run-dir runs/free/all --steps 6000 --threads 1
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from egogrpo.config import AUGMENT_PRESETS, DENOISER_PRESETS, TrainPriorConfig
from egogrpo.train.prior import train_prior


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--preset", default="cpu", choices=sorted(DENOISER_PRESETS))
    parser.add_argument("--augment", default="standard", choices=sorted(AUGMENT_PRESETS))
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--ema-decay", type=float, default=0.999, help="EMA of the weights (0: off)")
    parser.add_argument("--val-every", type=int, default=500, help="validation and checkpoint interval")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = TrainPriorConfig(
        data=str(args.data),
        run_dir=str(args.run_dir),
        model=DENOISER_PRESETS[args.preset],
        augment=AUGMENT_PRESETS[args.augment],
        batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay,
        log_every=50,
        val_every=args.val_every,
        val_windows=100_000,
        checkpoint_every=args.val_every,
        seed=args.seed,
        resume=(args.run_dir / "config.json").exists(),
    )
    train_prior(config, progress=lambda step, total, record: print(json.dumps(record), flush=True))


if __name__ == "__main__":
    main()
