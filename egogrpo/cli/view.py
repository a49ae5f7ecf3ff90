"""`egogrpo view`: look at a recovered motion in the browser, or as a PNG strip (no numerics here; see egogrpo.viz)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from egogrpo.cli.common import console, err_console


def view_command(
    output: Annotated[Path, typer.Argument(help="recovered.npz written by `egogrpo recover` (or its folder).")],
    png: Annotated[
        Path | None, typer.Option(help="Write a PNG strip of frames to this file and exit, instead of serving.")
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames in the PNG strip, evenly spaced.")] = 6,
    sample: Annotated[int, typer.Option(help="Sample to draw (the viewer starts on it and can switch).")] = 0,
    port: Annotated[int, typer.Option(help="Viewer port (the next free one if taken).")] = 8080,
    host: Annotated[str, typer.Option(help="Viewer address; 0.0.0.0 serves other machines too.")] = "127.0.0.1",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --png file.")] = False,
) -> None:
    """Show a recovered motion: skeleton, head path, floor and point cloud in the browser, or a PNG with --png."""
    from egogrpo.errors import EgogrpoError
    from egogrpo.viz.motion_file import load_recovered

    if png is not None and png.is_file() and not overwrite:
        raise EgogrpoError(f"--png {png}: exists; pass --overwrite to replace it")
    view = load_recovered(output)
    if png is not None:
        from egogrpo.viz.png import render_strip

        written = render_strip(view, png, frames=frames, sample=sample)
        console.print(f"wrote {written}", soft_wrap=True, markup=False, highlight=False)
        return

    from egogrpo.viz.viewer import serve

    def log(text: str) -> None:
        err_console.print(text, soft_wrap=True, markup=False, highlight=False)

    serve(view, port=port, host=host, block=True, sample=sample, log=log)
