#!/usr/bin/env python
"""Record, and compare, tiny fixed-seed runs of every training loop and update rule: the behaviour-unchanged check
of a refactor (issue 24). Record before the change, record after it, compare.

    python scripts/behaviour_record.py record reports/house/before.json [--sample-data ../shared/data]
    python scripts/behaviour_record.py compare reports/house/before.json after.json

Each run: a random `tiny` prior (seed 0) or the loop's own initialisation, the CMU sample's subject 02 (02_05,
02_06 train, 02_09 val, preprocessed here), fixed seeds, one thread. Recorded per run: every metrics.jsonl number
except times and speeds, and the SHA-256 of the last checkpoint's weights. `compare` reports the largest relative
difference of every number (float32 rounding allowed) and whether the weights are bit-identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

TIMING_KEYS = ("seconds/", "time/", "steps_per_s")


def _data(sample_data: Path, root: Path) -> Path:
    from egogrpo.config import PreprocessConfig
    from egogrpo.data.preprocess import run_preprocess

    subject = root / "subjects" / "02"
    subject.mkdir(parents=True)
    for name in ("02.asf", "02_05.amc", "02_06.amc", "02_09.amc"):
        shutil.copy(sample_data / "cmu/asfamc/subjects/02" / name, subject / name)
    out = root / "cmu.h5"
    run_preprocess(PreprocessConfig(source="cmu", inputs=(str(root / "subjects"),), out=str(out), workers=1))
    return out


def _tiny_prior(root: Path) -> Path:
    from egogrpo.body import load_body_model
    from egogrpo.config import DENOISER_PRESETS
    from egogrpo.model.checkpoint import save_checkpoint
    from egogrpo.model.denoiser import EgoDenoiser

    torch.manual_seed(0)
    tiny = DENOISER_PRESETS["tiny"]
    return save_checkpoint(root / "tiny", EgoDenoiser(tiny), tiny, body_model_id=load_body_model("default").model_id)


def _summary(run_dir: Path, checkpoint: Path | None) -> dict:
    records = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        records.append({k: v for k, v in record.items() if not any(k.startswith(p) for p in TIMING_KEYS)})
    weights = None
    if checkpoint is not None:
        weights = hashlib.sha256((Path(checkpoint) / "model.safetensors").read_bytes()).hexdigest()
    return {"metrics": records, "weights_sha256": weights}


def record(out: Path, sample_data: Path) -> None:
    from egogrpo.config import (
        DENOISER_PRESETS,
        PERCEPTUAL_PRESETS,
        PerlinConfig,
        SamplerConfig,
        TrainGRPOConfig,
        TrainPriorConfig,
        TrainRewardConfig,
    )
    from egogrpo.train.grpo import train_grpo
    from egogrpo.train.prior import train_prior
    from egogrpo.train.reward_model import train_reward

    torch.set_num_threads(1)
    fast = SamplerConfig(rule="ddim", num_steps=5, eta=1.0)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = _data(sample_data, root)
        prior = _tiny_prior(root)
        run = train_prior(
            TrainPriorConfig(
                data=str(data), run_dir=str(root / "prior"), model=DENOISER_PRESETS["tiny"], batch_size=4, max_steps=4,
                warmup_steps=2, log_every=1, val_every=2, val_windows=2, checkpoint_every=2, sampler=fast, ema_decay=0.9,
            )
        )  # fmt: skip
        results["train-prior"] = _summary(run.run_dir, run.last_checkpoint)
        for negatives in ("gt-noise", "policy"):
            run = train_reward(
                TrainRewardConfig(
                    data=str(data), prior=str(prior), run_dir=str(root / f"reward-{negatives}"),
                    model=PERCEPTUAL_PRESETS["tiny"], negatives=negatives, num_negatives=3, batch_size=2, max_steps=3,
                    log_every=1, checkpoint_every=3, sampler=fast, val_every=3, val_windows=2,
                )
            )  # fmt: skip
            results[f"train-reward {negatives}"] = _summary(run.run_dir, run.last_checkpoint)
        base = dict(
            prior=str(prior), data=str(data), iterations=2, group_size=4, batch_groups=2, learning_rate=1e-3,
            train_steps_per_trajectory=2, micro_batch=8, sampler=fast, val_every=2, val_windows=2, val_seeds=1,
            checkpoint_every=2, perlin=PerlinConfig(amplitude=0.1, scope="member"),
        )  # fmt: skip
        variants = {
            "grpo": dict(clip_range=0.2, kl_weight=0.1, inner_epochs=2),
            "awm": dict(algo="awm", updates_per_epoch=2),
            "nft": dict(algo="nft"),
            "draft": dict(algo="draft", draft_k=2),
            "draft anchor frozen kl": dict(
                algo="draft", draft_k=2, anchor_weight=10.0, anchor_batch=2, freeze_condition_encoder=True,
                kl_weight=0.1,
            ),
            "grpo sde-window": dict(sampler=dataclasses.replace(fast, stochastic_steps=(0, 2))),
        }  # fmt: skip
        for name, changes in variants.items():
            config = TrainGRPOConfig(**{**base, **changes, "run_dir": str(root / name.replace(" ", "_"))})
            run = train_grpo(config)
            results[f"train-grpo {name}"] = _summary(run.run_dir, run.last_checkpoint)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"commit": commit, "torch": torch.__version__, "runs": results}, indent=1) + "\n")
    print(f"wrote {out}: {len(results)} runs")


def compare(before: Path, after: Path, rtol: float) -> int:
    a, b = json.loads(before.read_text())["runs"], json.loads(after.read_text())["runs"]
    failures = 0
    for name in a:
        if name not in b:
            print(f"{name}: missing after")
            failures += 1
            continue
        worst, where = 0.0, ""
        ra, rb = a[name]["metrics"], b[name]["metrics"]
        if [sorted(r) for r in ra] != [sorted(r) for r in rb]:
            print(f"{name}: the logged keys differ")
            failures += 1
        for x, y in zip(ra, rb, strict=False):
            for k, v in x.items():
                w = y.get(k)
                if isinstance(v, float) and isinstance(w, float):
                    d = abs(v - w) / max(abs(v), abs(w), 1e-12)
                    if d > worst:
                        worst, where = d, f"{k} at {x.get('iteration', x.get('step'))}"
                elif v != w:
                    worst, where = math.inf, f"{k}: {v} vs {w}"
        same = a[name]["weights_sha256"] == b[name]["weights_sha256"]
        ok = worst <= rtol
        failures += not ok
        print(f"{name}: largest relative difference {worst:.2e} ({where or '—'}); weights {'identical' if same else 'differ'}"
              f"{'' if ok else '  <-- FAIL'}")  # fmt: skip
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("record", "compare"))
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument(
        "--sample-data", type=Path, default=Path(os.environ.get("EGOGRPO_SAMPLE_DATA", "../shared/data"))
    )
    parser.add_argument("--rtol", type=float, default=1e-5, help="compare: relative difference allowed (float32)")
    args = parser.parse_args()
    if args.command == "record":
        record(args.paths[0], args.sample_data)
    else:
        sys.exit(1 if compare(args.paths[0], args.paths[1], args.rtol) else 0)


if __name__ == "__main__":
    main()
