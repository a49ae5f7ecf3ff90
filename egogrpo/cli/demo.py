"""`egogrpo demo`: recover a body from an embedded synthetic Aria recording (no data or license-gated files needed)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from egogrpo.cli.common import console, err_console


def demo_command(
    out: Annotated[
        Path, typer.Option(help="Output folder (recording, recovered.npz, joints.csv, motion.bvh, demo.png).")
    ] = Path("egogrpo-demo"),
    overwrite: Annotated[bool, typer.Option(help="Replace the outputs of an earlier demo in --out.")] = False,
) -> None:
    """Quick start: an embedded synthetic Aria walk → the shipped default prior → motion files and a PNG."""
    from egogrpo.viz.demo import run_demo

    with err_console.status("running the demo: writing a synthetic recording, recovering the body…"):
        result = run_demo(out, overwrite=overwrite)
    recovered = result.recovered
    console.print(
        f"recovered {recovered.num_frames} frames ({recovered.num_frames / 30:.1f} s of a synthetic walk) in "
        f"{recovered.seconds:.1f} s from the synthetic recording in {result.recording}"
    )
    console.print(
        "note: the shipped prior learnt from freely licensed mocap with little walking (1.8 of its 38 training "
        "minutes move at walking speed; most is standing), so it renders this walk as a shuffling stance rather than "
        "a stride; README, 'Building a larger training set', shows how to train on more."
    )
    for path in [*recovered.files, result.png]:
        console.print(f"  wrote {path}")
    command = sys.argv[0] if Path(sys.argv[0]).name == "egogrpo" else "egogrpo"  # the venv path from `make demo`
    console.print(f"look at it: {result.png}, or in a browser: {command} view {out / 'recovered.npz'}")
