#!/usr/bin/env python
"""Compare post-training runs on compute: val MPJPE against training wall-clock and CPU minutes.

Reads each run folder's metrics.jsonl (`train-grpo` logs `time/elapsed_s`, `time/cpu_s` and the val errors),
prints one Markdown row per run (iterations, minutes, CPU minutes, val MPJPE at the start, at the best
checkpoint and at the end, the best iteration), and writes the curves of all runs into one PNG.

    python scripts/compare_grpo_runs.py grpo=/runs/i12/grpo awm=/runs/i12/awm --out val_vs_time.png
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from egogrpo.train.plots import plot_val_against_time
from egogrpo.train.run_dir import read_metrics


def summary_row(label: str, records: list[dict]) -> str:
    """One Markdown row: the run's compute and its val MPJPE at the start, best and end (mm)."""
    validated = [r for r in records if "val/mpjpe_mm" in r]
    timed = [r for r in records if "time/elapsed_s" in r]
    last = timed[-1] if timed else {}
    start = validated[0]["val/mpjpe_mm"] if validated else math.nan
    best = min(validated, key=lambda r: r["val/mpjpe_mm"]) if validated else {}
    end = validated[-1]["val/mpjpe_mm"] if validated else math.nan
    cells = (
        label,
        str(last.get("iteration", 0)),
        f"{last.get('time/elapsed_s', math.nan) / 60:.1f}",
        f"{last.get('time/cpu_s', math.nan) / 60:.1f}",
        f"{start:.2f}",
        f"{best.get('val/mpjpe_mm', math.nan):.2f} (it. {best.get('iteration', '—')})",
        f"{end:.2f}",
    )
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR (a train-grpo run folder)")
    parser.add_argument("--out", type=Path, required=True, help="PNG of val MPJPE against minutes")
    args = parser.parse_args()
    if not args.out.parent.is_dir():
        raise SystemExit(f"--out {args.out}: folder {args.out.parent} does not exist")
    runs: dict[str, list[dict]] = {}
    for item in args.runs:
        label, _, folder = item.partition("=")
        metrics = Path(folder or label) / "metrics.jsonl"
        if not metrics.is_file():
            raise SystemExit(f"{metrics}: no such metrics file")
        runs[label] = read_metrics(metrics)
    print("| run | iterations | wall min | CPU min | val MPJPE start | best (iteration) | end |")
    print("|---|---|---|---|---|---|---|")
    for label, records in runs.items():
        print(summary_row(label, records))
    plot_val_against_time(runs, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
