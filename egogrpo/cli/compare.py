"""`egogrpo compare`: post-training runs side by side on compute (no numerics here; see egogrpo.train.compare)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from egogrpo.cli.common import console
from egogrpo.errors import EgogrpoError


def compare_command(
    runs: Annotated[list[str], typer.Argument(help="Run folders, each optionally labelled: LABEL=RUN_DIR.")],
    out: Annotated[Path | None, typer.Option(help="Also write a PNG of val MPJPE against minutes.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out.")] = False,
) -> None:
    """Compare train-grpo runs: iterations, wall and CPU minutes, val MPJPE at the start, best and end."""
    from egogrpo.train.compare import compare_runs

    if out is not None and out.exists() and not overwrite:
        raise EgogrpoError(f"--out {out}: exists; pass --overwrite to replace it")
    labelled = {}
    for item in runs:
        label, _, folder = item.partition("=")
        labelled[label] = Path(folder or label)
    for line in compare_runs(labelled, out):
        console.print(line, soft_wrap=True, highlight=False)
    if out is not None:
        console.print(f"wrote {out}", soft_wrap=True)
