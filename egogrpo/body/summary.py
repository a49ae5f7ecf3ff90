"""A plain-data summary of a body model: topology, shape space, rest heights (for `egogrpo body info`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from egogrpo.body.model import BodyModel
from egogrpo.body.topology import BODY_JOINT_NAMES

#: Limbs reported for plausibility checks, as (name, from joint, to joint).
LIMBS = (
    ("thigh", "left_hip", "left_knee"),
    ("shin", "left_knee", "left_ankle"),
    ("upper arm", "left_shoulder", "left_elbow"),
    ("forearm", "left_elbow", "left_wrist"),
    ("shoulders", "left_shoulder", "right_shoulder"),
    ("hips", "left_hip", "right_hip"),
)


@dataclass(frozen=True)
class ShapeSummary:
    """Rest-pose measurements (metres) for one shape vector."""

    label: str
    betas: list[float]
    rest_height: float
    cpf_height: float  # CPF above the soles
    cpf_offset: list[float]  # CPF − head joint, in the head frame (x left, y up, z forward)
    limb_lengths: dict[str, float]


@dataclass(frozen=True)
class BodyModelSummary:
    kind: str
    model_id: str
    source: str
    sha256: str
    description: str
    num_joints: int
    num_betas: int
    has_hands: bool
    mesh_vertices: int | None
    mesh_faces: int | None
    joints: list[tuple[int, str, str | None]]  # (index, name, parent name)
    shapes: list[ShapeSummary]


def _shape_grid(model: BodyModel) -> list[tuple[str, torch.Tensor]]:
    """β = 0, then ±2 along the first two shape directions (±2 std: both shape spaces are standardised)."""
    grid = [("β=0", torch.zeros(model.num_betas))]
    for k in range(min(2, model.num_betas)):
        for value in (-2.0, 2.0):
            betas = torch.zeros(model.num_betas)
            betas[k] = value
            grid.append((f"β{k + 1}={value:+.0f}", betas))
    return grid


def summarize_body_model(model: BodyModel) -> BodyModelSummary:
    """Measure a body model at a few shapes; all distances in metres."""
    shapes = []
    index = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}
    for label, betas in _shape_grid(model):
        shaped = model.with_shape(betas)
        joints = shaped.rest_joints
        limbs = {name: float(torch.linalg.vector_norm(joints[index[b]] - joints[index[a]])) for name, a, b in LIMBS}
        shapes.append(
            ShapeSummary(
                label=label,
                betas=[round(float(b), 4) for b in betas],
                rest_height=float(model.rest_height(betas)),
                cpf_height=float(model.rest_cpf_height(betas)),
                cpf_offset=[float(c) for c in shaped.cpf_offset],
                limb_lengths=limbs,
            )
        )
    names = model.joint_names
    return BodyModelSummary(
        kind=model.kind,
        model_id=model.model_id,
        source=model.source,
        sha256=model.sha256,
        description=model.description,
        num_joints=model.num_joints,
        num_betas=model.num_betas,
        has_hands=model.has_hands,
        mesh_vertices=None if model.mesh is None else int(model.mesh.v_template.shape[0]),
        mesh_faces=None if model.mesh is None else int(model.mesh.faces.shape[0]),
        joints=[
            (i, n, names[p] if p >= 0 else None) for i, (n, p) in enumerate(zip(names, model.parents, strict=True))
        ],
        shapes=shapes,
    )
