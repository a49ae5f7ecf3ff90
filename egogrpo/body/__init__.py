"""Body models: a linear joint model with forward kinematics and a CPF (SMPL-H/SMPL-X files or the default)."""

from __future__ import annotations

from pathlib import Path

from egogrpo.body.default_model import default_body_asset_path, load_default_body
from egogrpo.body.model import BodyModel, PosedBody, ShapedBody, SkinnedMesh, forward_kinematics
from egogrpo.body.smplformat import load_smpl_npz
from egogrpo.errors import EgogrpoError

DEFAULT_BODY = "default"


def load_body_model(spec: str | Path = DEFAULT_BODY, num_betas: int | None = None) -> BodyModel:
    """`"default"` for the shipped license-free model, or a path to an SMPL-H/SMPL-X `.npz`."""
    if str(spec) == DEFAULT_BODY:
        if num_betas is not None:
            raise EgogrpoError("--num-betas applies to SMPL-H/SMPL-X files, not to the default body model")
        return load_default_body()
    path = Path(spec)
    if path.suffix.lower() not in (".npz", ".pkl"):
        raise EgogrpoError(f"{path}: expected 'default' or an SMPL-H/SMPL-X .npz file")
    return load_smpl_npz(path, num_betas=num_betas)


__all__ = [
    "DEFAULT_BODY",
    "BodyModel",
    "PosedBody",
    "ShapedBody",
    "SkinnedMesh",
    "default_body_asset_path",
    "forward_kinematics",
    "load_body_model",
    "load_default_body",
    "load_smpl_npz",
]
