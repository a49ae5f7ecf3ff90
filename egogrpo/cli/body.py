"""`egogrpo body …`: inspect body models."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer
from rich.table import Table

from egogrpo.body import load_body_model
from egogrpo.body.summary import summarize_body_model
from egogrpo.cli.common import console

app = typer.Typer(help="Inspect body models (the shipped default or your SMPL-H/SMPL-X .npz).", no_args_is_help=True)


@app.command("info")
def info(
    model: Annotated[str, typer.Argument(help="'default', or the path to an SMPL-H/SMPL-X .npz file.")] = "default",
    num_betas: Annotated[int | None, typer.Option(help="Shape parameters to use (SMPL-H: 16, SMPL-X: 10).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Joint names, parents, shape parameters, and rest/CPF heights at β = 0 and at shape extremes."""
    summary = summarize_body_model(load_body_model(model, num_betas=num_betas))
    if as_json:
        print(json.dumps(dataclasses.asdict(summary), indent=2))
        return
    console.print(f"[bold]{summary.model_id}[/bold]  {summary.description}")
    console.print(f"source: {summary.source}")
    console.print(f"sha256: {summary.sha256}")
    mesh = "none" if summary.mesh_vertices is None else f"{summary.mesh_vertices} vertices, {summary.mesh_faces} faces"
    console.print(
        f"joints: {summary.num_joints} ({'22 body + hands' if summary.has_hands else '22 body'}), "
        f"shape parameters: {summary.num_betas}, mesh: {mesh}"
    )
    joints = Table(title="Joints", show_lines=False)
    for column in ("index", "name", "parent"):
        joints.add_column(column)
    for index, name, parent in summary.joints:
        joints.add_row(str(index), name, parent or "—")
    console.print(joints)
    heights = Table(title="Rest pose by shape (metres)")
    for column in ("shape", "height", "CPF above soles", "CPF − head (x, y, z)"):
        heights.add_column(column, justify="right")
    for s in summary.shapes:
        offset = ", ".join(f"{c:+.3f}" for c in s.cpf_offset)
        heights.add_row(s.label, f"{s.rest_height:.3f}", f"{s.cpf_height:.3f}", offset)
    console.print(heights)
    limb_names = list(summary.shapes[0].limb_lengths)
    limbs = Table(title="Limb lengths by shape (metres)")
    for column in ("shape", *limb_names):
        limbs.add_column(column, justify="right")
    for s in summary.shapes:
        limbs.add_row(s.label, *(f"{s.limb_lengths[n]:.3f}" for n in limb_names))
    console.print(limbs)
