"""Training plots: the reward curves of a post-training run (the paper's Fig. 2) and its validation error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egogrpo.fileio import atomic_output


def plot_reward_curves(records: list[dict[str, Any]], path: str | Path) -> None:
    """PNG of every `reward/*` series against iteration (left) and val MPJPE / PA-MPJPE (right), atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    iterations = [r["iteration"] for r in records]
    for key in sorted({k for r in records for k in r if k.startswith("reward/")}):
        left.plot(iterations, [r.get(key, float("nan")) for r in records], label=key.removeprefix("reward/"), lw=1)
    left.set_xlabel("iteration")
    left.set_ylabel("mean reward")
    left.set_title("rewards (mean over rollouts)")
    left.legend(fontsize=8)
    for key in ("val/mpjpe_mm", "val/pa_mpjpe_mm"):
        points = [(r["iteration"], r[key]) for r in records if key in r]
        if points:
            right.plot(*zip(*points, strict=True), marker="o", label=key.removeprefix("val/"))
    right.set_xlabel("iteration")
    right.set_ylabel("mm")
    right.set_title("validation error")
    if right.lines:
        right.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_val_against_time(runs: dict[str, list[dict[str, Any]]], path: str | Path) -> None:
    """PNG of each run's val MPJPE against its training wall-clock minutes (left) and CPU minutes (right).

    `runs` maps a label to a post-training run's metrics records (`time/elapsed_s`, `time/cpu_s` as logged by
    train-grpo; the iteration-0 validation sits at time 0). Written atomically.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for label, records in runs.items():
        for axis, key in zip(axes, ("time/elapsed_s", "time/cpu_s"), strict=True):
            points = [
                (r.get(key, 0.0 if r["iteration"] == 0 else float("nan")) / 60, r["val/mpjpe_mm"])
                for r in records
                if "val/mpjpe_mm" in r
            ]
            if points:
                axis.plot(*zip(*points, strict=True), marker=".", label=label)
    for axis, title in zip(axes, ("wall-clock minutes of training", "CPU minutes (all threads)"), strict=True):
        axis.set_xlabel(title)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("val MPJPE (mm)")
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
