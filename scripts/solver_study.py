#!/usr/bin/env python
"""Accuracy against sampling steps on people the prior never saw (issue 26).

Evaluates a prior (default: the shipped `default-prior`) on the val people of a `preprocess corpus` file
(data_manifests/free.json's split; protocol `people`, `--split val`) with EgoAllo's 30-step sampler and with
each low-step setting (`--solver ddim|dpmpp2m`, `--steps`, `--spacing`), the same seeds for every setting, and
reports every metric paired by window against the 30-step default (mean ± s.e. over windows of the per-window
mean over seeds) with the process CPU time per window and sample. Choices are made on these val people only.

    OMP_NUM_THREADS=1 python scripts/solver_study.py --data free.h5 --out reports/solvers
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from egogrpo.config import EvalConfig
from egogrpo.eval.evaluate import evaluate
from egogrpo.eval.metrics import paired_difference
from egogrpo.fileio import atomic_output

METRICS = ("mpjpe", "pa_mpjpe", "mpjve", "mpjre", "jitter", "fs")
SETTINGS = [
    ("egoallo-30", {}),
    *[(f"ddim-{n}-{sp}", {"solver": "ddim", "steps": n, "spacing": sp}) for sp in ("linear", "quadratic") for n in (5, 10, 15, 20)],
    *[(f"dpmpp2m-{n}-{sp}", {"solver": "dpmpp2m", "steps": n, "spacing": sp}) for sp in ("linear", "quadratic") for n in (5, 10, 15, 20)],
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--prior", default="default-prior")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--bf16", action="store_true", help="also every setting under bf16 autocast")
    parser.add_argument("--only", nargs="*", help="settings to run (names as in the table); default: all")
    parser.add_argument("--out", type=Path, default=Path("reports/solvers"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    record_path = args.out / "results.json"
    results = json.loads(record_path.read_text()) if record_path.exists() else {}
    settings = [(n, o) for n, o in SETTINGS if not args.only or n in args.only]
    if args.bf16:
        settings += [(n + "-bf16", {**o, "bf16": True}) for n, o in settings]
    for name, options in settings:
        if name in results:
            continue
        tick = time.process_time()
        result = evaluate(
            EvalConfig(data=args.data, checkpoints=(args.prior,), protocol="people", split="val", seeds=args.seeds,
                       projection="polar", **options)
        )  # fmt: skip
        row = result.rows[-1]
        samples = len(row.window_means["mpjpe"]) * args.seeds
        results[name] = {
            "options": options,
            "sampler": result.record["protocol"]["sampler"],
            "cpu_s_per_window_sample": (time.process_time() - tick) / samples,
            "values": {k: list(v) for k, v in row.values.items()},
            "window_means": {k: [float(x) for x in v] for k, v in row.window_means.items()},
        }
        with atomic_output(record_path) as tmp:
            tmp.write_text(json.dumps(results, indent=1) + "\n")
        print(f"{name}: MPJPE {row.values['mpjpe'][0]:.2f}, {results[name]['cpu_s_per_window_sample']:.3f} CPU-s")
    reference = results["egoallo-30"]
    lines = [
        "| setting | CPU s / window | " + " | ".join(f"Δ{m}" for m in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for name, entry in results.items():
        cells = []
        for m in METRICS:
            d = paired_difference(torch.tensor(entry["window_means"][m]), torch.tensor(reference["window_means"][m]))
            cells.append(f"{d['mean']:+.2f} ± {d['standard_error']:.2f} ({d['percent'] or math.nan:+.1f} %)")
        lines.append(f"| {name} | {entry['cpu_s_per_window_sample']:.3f} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
