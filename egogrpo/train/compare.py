"""`egogrpo compare`: post-training runs side by side on compute — val MPJPE against training wall-clock and CPU
minutes (each run folder's metrics.jsonl: `train-grpo` logs `time/elapsed_s`, `time/cpu_s` and the val errors)."""

from __future__ import annotations

import math
from pathlib import Path

from egogrpo.errors import EgogrpoError
from egogrpo.fileio import check_writable
from egogrpo.train.plots import plot_val_against_time
from egogrpo.train.run_dir import read_metrics

TABLE_HEADER = (
    "| run | iterations | wall min | CPU min | val MPJPE start | best (iteration) | end |",
    "|---|---|---|---|---|---|---|",
)


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


def compare_runs(runs: dict[str, Path], out: Path | None) -> list[str]:
    """The Markdown table of `runs` (label → run folder) and, with `out`, the PNG of their val curves; every
    metrics file and the output are checked before anything is written."""
    if out is not None:
        check_writable(out, "--out")
    records: dict[str, list[dict]] = {}
    for label, folder in runs.items():
        metrics = Path(folder) / "metrics.jsonl"
        if not metrics.is_file():
            raise EgogrpoError(f"{metrics}: no such metrics file (is {folder} a train-grpo run folder?)")
        records[label] = read_metrics(metrics)
    if out is not None:
        plot_val_against_time(records, out)
    return [*TABLE_HEADER, *(summary_row(label, r) for label, r in records.items())]
