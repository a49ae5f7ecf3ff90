"""`egogrpo import-egoallo …`: bring EgoAllo's released motion prior into egogrpo's checkpoint format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from egogrpo.cli.common import console
from egogrpo.model.checkpoint import merge_checkpoints
from egogrpo.model.egoallo_import import import_egoallo as run_import_egoallo


def import_egoallo(
    checkpoint_dir: Annotated[
        Path,
        typer.Argument(
            help="EgoAllo's release folder (model_config.yaml + checkpoints_<step>/), "
            "one checkpoints_<step> folder, or its model.safetensors."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="The egogrpo checkpoint folder to write.", file_okay=False)],
    overwrite: Annotated[bool, typer.Option(help="Replace a checkpoint already in --out.")] = False,
) -> None:
    """Convert EgoAllo's denoiser (config + weights, checked tensor by tensor) into an egogrpo checkpoint."""
    report = run_import_egoallo(checkpoint_dir, out, overwrite=overwrite)
    step = "" if report.step is None else f" (step {report.step})"
    console.print(f"read   {report.config_path}")
    console.print(f"read   {report.weights_path}{step}, sha256 {report.weights_sha256[:12]}")
    console.print(f"loaded {report.num_tensors} tensors, {report.num_parameters:,} parameters")
    if report.defaults_used:
        console.print(f"fields absent from the YAML, EgoAllo's defaults used: {', '.join(report.defaults_used)}")
    console.print(f"wrote  {report.out_dir} (body model smplh, {report.config.num_betas} shape parameters)")


def merge(
    start: Annotated[
        str, typer.Argument(help="Checkpoint at α = 0 (e.g. the prior, 'default-prior', or a run folder).")
    ],
    end: Annotated[str, typer.Argument(help="Checkpoint at α = 1 (e.g. a post-trained one).")],
    alpha: Annotated[float, typer.Option(help="Weight of END in [0, 1]: (1 − α)·START + α·END (WiSE-FT).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The checkpoint folder to write.", file_okay=False)],
    overwrite: Annotated[bool, typer.Option(help="Replace a checkpoint already in --out.")] = False,
) -> None:
    """Interpolate the weights of two checkpoints of one model (WiSE-FT): choose α on val people."""
    folder = merge_checkpoints(start, end, alpha, out, overwrite=overwrite)
    console.print(f"wrote  {folder}: (1 − {alpha})·{start} + {alpha}·{end}")
