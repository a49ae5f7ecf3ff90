"""Reader for the user's SMPL-H / SMPL-X model files in `.npz` form (this module owns that format).

Expected keys (the "Extended SMPL+H" release used by AMASS and EgoAllo, and SMPL-X's npz):
`v_template (V,3)`, `shapedirs (V,3,B)`, `posedirs (V,3,9(J−1))`, `J_regressor (J,V)`,
`kintree_table (2,J)`, `weights (V,J)`, `f (F,3)`. J = 52 for SMPL-H, 55 for SMPL-X.
Pickled `.pkl` models are refused: they need chumpy and unsafe unpickling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from egogrpo.body.model import BodyModel, SkinnedMesh
from egogrpo.body.topology import (
    HEAD,
    SMPLH_HAND_JOINTS,
    SMPLH_JOINT_NAMES,
    SMPLH_LEFT_EYE_VERTICES,
    SMPLH_PARENTS,
    SMPLH_RIGHT_EYE_VERTICES,
    SMPLX_HAND_JOINTS,
    SMPLX_JOINT_NAMES,
    SMPLX_PARENTS,
)
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import read_npz, sha256_of_file

REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "kintree_table", "weights", "f")
SMPLH_NUM_VERTICES = 6890
DEFAULT_NUM_BETAS = {"smplh": 16, "smplx": 10}


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    return read_npz(path, REQUIRED_KEYS, required="an SMPL-H/SMPL-X model file")


def _check_shape(path: Path, name: str, array: np.ndarray, expected: tuple[int | None, ...]) -> None:
    ok = array.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, array.shape, strict=True))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise EgogrpoError(f"{path}: {name} has shape {tuple(array.shape)}, expected {want}")


def load_smpl_npz(path: str | Path, num_betas: int | None = None) -> BodyModel:
    """Load an SMPL-H (52 joints) or SMPL-X (55 joints) `.npz` as a BodyModel with its skinned mesh.

    `num_betas` defaults to 16 for SMPL-H (the "Extended SMPL+H" model) and 10 for SMPL-X.
    The CPF is EgoAllo's: the midpoint of the eye vertices 6260/6262 and 2800/2802 (SMPL-H), or of
    the two eyeball joints (SMPL-X), with the head joint's orientation.
    """
    path = Path(path)
    if not path.is_file():
        raise EgogrpoError(f"{path}: no such body model file")
    if path.suffix.lower() == ".pkl":
        raise EgogrpoError(
            f"{path}: pickled SMPL models are not read (they need chumpy and unsafe unpickling); "
            "use the .npz release of the model"
        )
    arrays = _read_arrays(path)
    for name, array in arrays.items():
        if array.dtype.kind not in "fiu":
            raise EgogrpoError(f"{path}: {name} has dtype {array.dtype}, expected numbers")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise EgogrpoError(f"{path}: {name} contains NaN or infinite values")

    kintree = arrays["kintree_table"]
    _check_shape(path, "kintree_table", kintree, (2, None))
    num_joints = kintree.shape[1]
    if num_joints == len(SMPLH_PARENTS):
        kind, joint_names, expected_parents, hand_joints = "smplh", SMPLH_JOINT_NAMES, SMPLH_PARENTS, SMPLH_HAND_JOINTS
    elif num_joints == len(SMPLX_PARENTS):
        kind, joint_names, expected_parents, hand_joints = "smplx", SMPLX_JOINT_NAMES, SMPLX_PARENTS, SMPLX_HAND_JOINTS
    else:
        raise EgogrpoError(f"{path}: {num_joints} joints in kintree_table; expected 52 (SMPL-H) or 55 (SMPL-X)")
    parents = tuple(int(p) if 0 <= int(p) < num_joints else -1 for p in kintree[0].astype(np.int64))
    if parents != expected_parents:
        raise EgogrpoError(f"{path}: kintree_table is not the {kind.upper()} kinematic tree")

    v_template = arrays["v_template"]
    _check_shape(path, "v_template", v_template, (None, 3))
    num_vertices = v_template.shape[0]
    shapedirs = arrays["shapedirs"]
    _check_shape(path, "shapedirs", shapedirs, (num_vertices, 3, None))
    _check_shape(path, "posedirs", arrays["posedirs"], (num_vertices, 3, 9 * (num_joints - 1)))
    _check_shape(path, "J_regressor", arrays["J_regressor"], (num_joints, num_vertices))
    _check_shape(path, "weights", arrays["weights"], (num_vertices, num_joints))
    faces = arrays["f"]
    _check_shape(path, "f", faces, (None, 3))
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        raise EgogrpoError(f"{path}: f indexes vertices outside 0..{num_vertices - 1}")
    if kind == "smplh" and num_vertices != SMPLH_NUM_VERTICES:
        raise EgogrpoError(f"{path}: SMPL-H model has {num_vertices} vertices, expected {SMPLH_NUM_VERTICES}")

    available = (
        shapedirs.shape[2] if kind == "smplh" else min(shapedirs.shape[2], 300)
    )  # SMPL-X: 300 shape + expression
    if num_betas is None:
        num_betas = min(DEFAULT_NUM_BETAS[kind], available)
    if not 1 <= num_betas <= available:
        raise EgogrpoError(f"{path}: asked for {num_betas} shape parameters, the model has {available}")

    f64 = {k: arrays[k].astype(np.float64) for k in ("v_template", "shapedirs", "J_regressor")}
    shape_dirs = f64["shapedirs"][:, :, :num_betas]
    regressor = f64["J_regressor"]
    joints_mean = regressor @ f64["v_template"]
    joints_shape_dirs = np.einsum("jv,vcb->jcb", regressor, shape_dirs)
    if kind == "smplh":
        eye_vertices = list(SMPLH_RIGHT_EYE_VERTICES + SMPLH_LEFT_EYE_VERTICES)
        eyes_mean = f64["v_template"][eye_vertices].mean(axis=0)
        eyes_dirs = shape_dirs[eye_vertices].mean(axis=0)
    else:
        eye_joints = [joint_names.index("left_eye"), joint_names.index("right_eye")]
        eyes_mean = joints_mean[eye_joints].mean(axis=0)
        eyes_dirs = joints_shape_dirs[eye_joints].mean(axis=0)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    mesh = SkinnedMesh(
        v_template=t(f64["v_template"]),
        shape_dirs=t(shape_dirs),
        pose_dirs=t(arrays["posedirs"]),
        skin_weights=t(arrays["weights"]),
        faces=torch.from_numpy(faces.astype(np.int64)),
    )
    return BodyModel(
        kind=kind,
        source=str(path),
        sha256=sha256_of_file(path),
        description=f"{kind.upper()} model from a user-supplied .npz ({num_vertices} vertices)",
        joint_names=joint_names,
        parents=parents,
        joints_mean=t(joints_mean),
        joints_shape_dirs=t(joints_shape_dirs),
        cpf_offset_mean=t(eyes_mean - joints_mean[HEAD]),
        cpf_offset_shape_dirs=t(eyes_dirs - joints_shape_dirs[HEAD]),
        hand_joint_indices=hand_joints,
        mesh=mesh,
    )


# --- SMPL-X extras: hand pose PCA and expression shape directions ----------------------------------

SMPLX_EXTRA_KEYS = ("hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr", "shapedirs", "J_regressor")
SMPLX_SHAPE_SPACE = 300  # betas columns of a full SMPL-X shapedirs, followed by 100 expression columns
SMPLX_FULL_SHAPEDIRS = 400


@dataclass(frozen=True)
class SmplxExtras:
    """Arrays of an SMPL-X file beyond the joint model, float64, in the model's rest frame.

    hands_components_left/right:  (45, 45) rows are the hand-pose PCA basis, most significant first;
                                  full hand pose (15 joints × axis-angle) = coeffs @ components[:C] + mean
    hands_mean_left/right:        (45,) the mean hand pose (added unless the fit used a flat hand mean)
    joints_expression_dirs:       (J, 3, E) change of the rest joints per expression coefficient
                                  (J_regressor applied to the expression shape directions)
    """

    hands_components_left: np.ndarray
    hands_components_right: np.ndarray
    hands_mean_left: np.ndarray
    hands_mean_right: np.ndarray
    joints_expression_dirs: np.ndarray

    @property
    def num_expression(self) -> int:
        return self.joints_expression_dirs.shape[-1]


def load_smplx_extras(path: str | Path, num_expression: int = 10) -> SmplxExtras:
    """Hand-pose PCA and expression directions of an SMPL-X `.npz` (never unpickles anything).

    The expression columns of `shapedirs` are taken as the `smplx` package takes them: columns
    300:300+E of a full (…, 400) file, else columns 10:20 (the 20-column SMPL-X 1.0 release).
    """
    path = Path(path)
    if not path.is_file():
        raise EgogrpoError(f"{path}: no such body model file")
    arrays = read_npz(path, SMPLX_EXTRA_KEYS, required="an SMPL-X model file with hand PCA")
    for name, array in arrays.items():
        if array.dtype.kind not in "fiu":
            raise EgogrpoError(f"{path}: {name} has dtype {array.dtype}, expected numbers")
        if not np.isfinite(array).all():
            raise EgogrpoError(f"{path}: {name} contains NaN or infinite values")
    for side in "lr":
        _check_shape(path, f"hands_components{side}", arrays[f"hands_components{side}"], (45, 45))
        _check_shape(path, f"hands_mean{side}", arrays[f"hands_mean{side}"], (45,))
    shapedirs = arrays["shapedirs"]
    _check_shape(path, "shapedirs", shapedirs, (None, 3, None))
    _check_shape(path, "J_regressor", arrays["J_regressor"], (None, shapedirs.shape[0]))
    columns = shapedirs.shape[2]
    if columns >= SMPLX_FULL_SHAPEDIRS:
        start, available = SMPLX_SHAPE_SPACE, columns - SMPLX_SHAPE_SPACE
    else:
        start, available = 10, max(0, min(columns, 20) - 10)
    if not 0 <= num_expression <= available:
        raise EgogrpoError(f"{path}: asked for {num_expression} expression coefficients, the model has {available}")
    expression_dirs = shapedirs[:, :, start : start + num_expression].astype(np.float64)
    f64 = lambda name: arrays[name].astype(np.float64)
    return SmplxExtras(
        hands_components_left=f64("hands_componentsl"),
        hands_components_right=f64("hands_componentsr"),
        hands_mean_left=f64("hands_meanl"),
        hands_mean_right=f64("hands_meanr"),
        joints_expression_dirs=np.einsum("jv,vcb->jcb", f64("J_regressor"), expression_dirs),
    )
