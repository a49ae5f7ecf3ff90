"""Linear maps between the shape spaces of two body models (e.g. male SMPL-H betas → neutral betas).

Rest vertices are linear in β: v(β) = v_template + D β, with D the shape directions flattened to
(V·3, B). The map β_t = A β_s + b that makes the target's rest mesh closest (least squares over
every vertex) to the source's, for every β_s, is

    A = D_t⁺ D_s,    b = D_t⁺ (v_template_s − v_template_t),

with D_t⁺ the pseudo-inverse of the target's shape directions. This is computed from the user's own
model files, in place of the conversion files EgoAllo downloads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from egogrpo.body.model import BodyModel
from egogrpo.errors import EgogrpoError


@dataclass(frozen=True)
class BetaMap:
    """β_target = A β_source + b.

    A:             (B_t, B_s) float64
    b:             (B_t,) float64
    residual_rms:  RMS vertex distance (metres) between the source's rest mesh at β_s = 0 and the
                   target's at β_t = b: what the target's shape space cannot represent
    """

    A: np.ndarray
    b: np.ndarray
    residual_rms: float = 0.0

    @property
    def num_source_betas(self) -> int:
        return self.A.shape[1]

    @property
    def num_target_betas(self) -> int:
        return self.A.shape[0]

    def apply(self, betas: np.ndarray) -> np.ndarray:
        """Map source betas (..., B_s) to target betas (..., B_t), float64."""
        betas = np.asarray(betas, dtype=np.float64)
        if betas.shape[-1:] != (self.num_source_betas,):
            raise ValueError(f"expected betas with {self.num_source_betas} entries, got shape {betas.shape}")
        return betas @ self.A.T + self.b


def _flat_mesh(model: BodyModel) -> tuple[np.ndarray, np.ndarray]:
    """v_template flattened to (V·3,) and shape directions to (V·3, B), float64."""
    if model.mesh is None:
        raise EgogrpoError(f"{model.source}: the {model.kind} body model has no mesh; a shape map needs one")
    v_template = model.mesh.v_template.detach().cpu().double().numpy()
    shape_dirs = model.mesh.shape_dirs.detach().cpu().double().numpy()
    return v_template.reshape(-1), shape_dirs.reshape(-1, shape_dirs.shape[-1])


def fit_beta_map(source: BodyModel, target: BodyModel) -> BetaMap:
    """Least-squares map from the source model's betas to the target model's (see the module docstring).

    Both models need a mesh with the same vertex count (e.g. male and neutral SMPL-H, 6890 vertices).
    """
    v_source, d_source = _flat_mesh(source)
    v_target, d_target = _flat_mesh(target)
    if v_source.shape != v_target.shape:
        raise EgogrpoError(
            f"{source.source}: {v_source.size // 3} vertices, but {target.source} has {v_target.size // 3}; "
            "a shape map needs meshes with the same vertices"
        )
    rhs = np.concatenate((d_source, (v_source - v_target)[:, None]), axis=1)
    solution, *_ = np.linalg.lstsq(d_target, rhs, rcond=None)
    A, b = solution[:, :-1], solution[:, -1]
    residual = (v_target + d_target @ b - v_source).reshape(-1, 3)
    rms = float(np.sqrt((residual**2).sum(axis=1).mean()))
    return BetaMap(A=A, b=b, residual_rms=rms)
