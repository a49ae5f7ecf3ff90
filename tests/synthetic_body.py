"""Synthetic SMPL-H / SMPL-X model files with the real keys and shapes (never a real model).

The vertices are clustered around a hand-made, human-sized T-pose skeleton so that heights, CPF and
floors come out plausible, and every joint is regressed from its own cluster.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egogrpo.body.topology import (
    SMPLH_LEFT_EYE_VERTICES,
    SMPLH_PARENTS,
    SMPLH_RIGHT_EYE_VERTICES,
    SMPLX_PARENTS,
)

# A rough adult T-pose (x = left, y = up, z = forward; metres; floor at y = 0).
_BODY_JOINTS = np.array(
    [
        [0.00, 0.95, 0.00], [0.09, 0.87, 0.00], [-0.09, 0.87, 0.00], [0.00, 1.06, -0.01],
        [0.10, 0.49, 0.01], [-0.10, 0.49, 0.01], [0.00, 1.19, 0.00], [0.11, 0.08, -0.03],
        [-0.11, 0.08, -0.03], [0.00, 1.25, 0.02], [0.12, 0.02, 0.10], [-0.12, 0.02, 0.10],
        [0.00, 1.47, -0.01], [0.07, 1.37, 0.00], [-0.07, 1.37, 0.00], [0.00, 1.56, 0.03],
        [0.17, 1.40, -0.01], [-0.17, 1.40, -0.01], [0.43, 1.40, -0.03], [-0.43, 1.40, -0.03],
        [0.68, 1.40, -0.02], [-0.68, 1.40, -0.02],
    ]
)  # fmt: skip


def _hand(wrist: np.ndarray, side: float) -> np.ndarray:
    """15 finger joints (index, middle, pinky, ring, thumb; 3 each) hanging from a wrist."""
    joints = []
    for finger, (dz, dy) in enumerate([(0.03, 0.0), (0.01, 0.0), (-0.04, -0.005), (-0.015, 0.0), (0.05, -0.02)]):
        start = wrist + np.array([side * (0.09 if finger < 4 else 0.04), dy, dz])
        for k in range(3):
            joints.append(start + np.array([side * 0.03 * k, 0.0, 0.0]))
    return np.array(joints)


def _skeleton(num_joints: int) -> np.ndarray:
    hands = np.concatenate([_hand(_BODY_JOINTS[20], 1.0), _hand(_BODY_JOINTS[21], -1.0)])
    if num_joints == 52:
        return np.concatenate([_BODY_JOINTS, hands])
    face = np.array([[0.0, 1.58, 0.06], [0.032, 1.63, 0.08], [-0.032, 1.63, 0.08]])  # jaw, left eye, right eye
    return np.concatenate([_BODY_JOINTS, face, hands])


def make_synthetic_model(
    kind: str = "smplh", num_betas: int = 16, seed: int = 0, dtype: type = np.float32
) -> dict[str, np.ndarray]:
    """Arrays with the keys, shapes and kinematic tree of a real SMPL-H (52 joints) or SMPL-X (55) npz."""
    rng = np.random.default_rng(seed)
    parents = SMPLH_PARENTS if kind == "smplh" else SMPLX_PARENTS
    num_joints = len(parents)
    num_vertices = 6890 if kind == "smplh" else 10475
    skeleton = _skeleton(num_joints)
    owner = np.arange(num_vertices) % num_joints  # the joint each vertex clusters around
    spread = np.where(np.isin(owner, range(22)), 0.05, 0.01)[:, None]
    v_template = skeleton[owner] + spread * rng.normal(size=(num_vertices, 3))
    if kind == "smplh":  # eyes in front of the head, a crown above it, soles at the floor
        for vertices, x in ((SMPLH_RIGHT_EYE_VERTICES, -0.032), (SMPLH_LEFT_EYE_VERTICES, 0.032)):
            v_template[list(vertices)] = [[x, 1.63, 0.085], [x, 1.64, 0.09]]
    v_template[0] = [0.0, 1.72, 0.0]
    v_template[1:3] = [[0.1, 0.0, 0.05], [-0.1, 0.0, 0.05]]

    J_regressor = np.zeros((num_joints, num_vertices))
    for j in range(num_joints):
        members = np.flatnonzero(owner == j)
        w = rng.uniform(0.5, 1.5, size=len(members))
        J_regressor[j, members] = w / w.sum()
    # Shape directions: a global stature scaling first, then random local changes of a few cm.
    shapedirs = 0.01 * rng.normal(size=(num_vertices, 3, num_betas))
    shapedirs[:, :, 0] = 0.05 * v_template
    weights = np.zeros((num_vertices, num_joints))
    weights[np.arange(num_vertices), owner] = 0.7
    parent_of_owner = np.array([max(parents[o], 0) for o in owner])
    weights[np.arange(num_vertices), parent_of_owner] += 0.3
    kintree = np.stack(
        [np.array([p if p >= 0 else 4294967295 for p in parents], dtype=np.int64), np.arange(num_joints)]
    )
    return {
        "v_template": v_template.astype(dtype),
        "shapedirs": shapedirs.astype(dtype),
        "posedirs": (1e-3 * rng.normal(size=(num_vertices, 3, 9 * (num_joints - 1)))).astype(dtype),
        "J_regressor": J_regressor.astype(dtype),
        "kintree_table": kintree,
        "weights": weights.astype(dtype),
        "f": rng.integers(0, num_vertices, size=(2 * num_vertices - 4, 3)).astype(np.uint32),
    }


def write_synthetic_model(path: Path, **kwargs: object) -> dict[str, np.ndarray]:
    arrays = make_synthetic_model(**kwargs)  # type: ignore[arg-type]
    np.savez(path, **arrays)
    return arrays


def smplx_data_struct(arrays: dict[str, np.ndarray]) -> object:
    """The same model as smplx's `Struct`, with shapedirs padded to 300 so smplx keeps all betas."""
    import smplx.utils

    shapedirs = arrays["shapedirs"]
    padded = np.zeros((*shapedirs.shape[:2], 300), dtype=shapedirs.dtype)
    padded[:, :, : shapedirs.shape[2]] = shapedirs
    fields = dict(arrays, shapedirs=padded, kintree_table=arrays["kintree_table"].astype(np.int64))
    fields.update(
        hands_componentsl=np.eye(45), hands_componentsr=np.eye(45), hands_meanl=np.zeros(45), hands_meanr=np.zeros(45)
    )
    return smplx.utils.Struct(**fields)
