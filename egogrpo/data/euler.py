"""Rotation maths shared by the mocap readers (ASF/AMC, BVH): Euler-angle matrices and forward kinematics.

Plain numpy, float64, vectorised over any leading (frame) axes. Matrices act on column vectors
(v' = R v) and are right-handed; angles are in radians.

Two Euler conventions, which give the same matrix for mirrored orders (zyx about moving axes is
xyz about fixed axes):

    euler_matrix("zyx", a)              = Rz(a₀) · Ry(a₁) · Rx(a₂)   (moving axes, BVH channel order)
    fixed_axes_euler_matrix("xyz", a)   = Rz(a₂) · Ry(a₁) · Rx(a₀)   (fixed axes, ASF/AMC order)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from egogrpo.data.skeleton_motion import Y_UP_TO_Z_UP, SkeletonMotion


def euler_matrix(axes: str, angles: np.ndarray) -> np.ndarray:
    """Rotations about moving axes, in listed order: R = R_axes[0](a₀) · R_axes[1](a₁) · …

    axes:    k letters from "xyz" (any case), e.g. "zyx"; "" gives the identity
    angles:  (..., k) radians, one per letter
    returns  (..., 3, 3)
    """
    angles = np.asarray(angles, dtype=np.float64)
    if angles.shape[-1] != len(axes):
        raise ValueError(f"{len(axes)} axes {axes!r} but {angles.shape[-1]} angles")
    result = np.zeros((*angles.shape[:-1], 3, 3))
    result[..., [0, 1, 2], [0, 1, 2]] = 1.0
    for n, axis in enumerate(axes):
        # Right-multiplying by a rotation about axis i turns the two other columns j → k (cyclic):
        # R·R_i(a) has column j = cos·R[:, j] + sin·R[:, k] and column k = cos·R[:, k] − sin·R[:, j].
        j, k = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis.lower()]
        c = np.cos(angles[..., n])[..., None]
        s = np.sin(angles[..., n])[..., None]
        column_j, column_k = result[..., :, j].copy(), result[..., :, k].copy()
        result[..., :, j] = c * column_j + s * column_k
        result[..., :, k] = c * column_k - s * column_j
    return result


def fixed_axes_euler_matrix(axes: str, angles: np.ndarray) -> np.ndarray:
    """Rotations about fixed (world) axes, applied in listed order: R = … · R_axes[1](a₁) · R_axes[0](a₀).

    This is the ASF/AMC convention for the root `order`, a bone's `axis` and its `dof` angles.
    Same shapes as `euler_matrix`.
    """
    angles = np.asarray(angles, dtype=np.float64)
    return euler_matrix(axes[::-1], angles[..., ::-1])


def conjugate(basis: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """basis · M · basisᵀ for a fixed (3, 3) basis and matrices (..., 3, 3), e.g. a rotation re-expressed in another frame.

    Computed as one (…, 9) × (9, 9) product: row-major vec(B M Bᵀ) = (B ⊗ B) vec(M).
    """
    matrices = np.asarray(matrices, dtype=np.float64)
    flat = matrices.reshape(-1, 9) @ np.kron(basis, basis).T
    return flat.reshape(matrices.shape)


def forward_kinematics(
    parents: Sequence[int],
    offsets: np.ndarray,
    local_rotations: np.ndarray,
    translations: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """World positions and rotations of every node of a tree, for all frames at once.

    parents:          (N,) parent index per node, −1 for a root; every parent comes before its children
    offsets:          (N, 3) each node's position in its parent's frame at rest (a root's: in the world)
    local_rotations:  (T, N, 3, 3) each node's rotation relative to its parent's frame
    translations:     (T, N, 3) per-frame additions to the offsets (e.g. a root's motion), or None
    returns           positions (T, N, 3) and rotations (T, N, 3, 3), in the world frame

    A node's position is its parent's position plus the parent's world rotation applied to its
    offset; its world rotation is the parent's world rotation times its local rotation.
    """
    num_frames, num_nodes = local_rotations.shape[:2]
    node_offsets = np.broadcast_to(np.asarray(offsets, dtype=np.float64), (num_frames, num_nodes, 3))
    if translations is not None:
        node_offsets = node_offsets + translations
    positions = np.empty((num_frames, num_nodes, 3))
    rotations = np.empty((num_frames, num_nodes, 3, 3))
    for node, parent in enumerate(parents):
        if parent < 0:
            positions[:, node] = node_offsets[:, node]
            rotations[:, node] = local_rotations[:, node]
        else:
            if parent >= node:
                raise ValueError(f"node {node}'s parent {parent} does not come before it")
            offset_world = np.einsum("tij,tj->ti", rotations[:, parent], node_offsets[:, node])
            positions[:, node] = positions[:, parent] + offset_world
            rotations[:, node] = rotations[:, parent] @ local_rotations[:, node]
    return positions, rotations


def skeleton_motion_from_y_up(
    names: Sequence[str],
    parents: Sequence[int],
    offsets: np.ndarray,
    local_rotations: np.ndarray,
    translations: np.ndarray | None,
    fps: float,
    source: str,
) -> SkeletonMotion:
    """Run `forward_kinematics` on a y-up skeleton in metres and return it as a z-up `SkeletonMotion`.

    Arguments as for `forward_kinematics` (lengths in metres, y-up). The rest pose is every local
    rotation the identity, no translations, and the roots' offsets zeroed (root at the origin).
    Local rotations that are the identity for all-zero channels make the world rotations relative
    to that rest pose, as `SkeletonMotion` requires.
    """
    offsets = np.asarray(offsets, dtype=np.float64)
    positions, rotations = forward_kinematics(parents, offsets, local_rotations, translations)
    rest_offsets = offsets.copy()
    rest_offsets[[node for node, parent in enumerate(parents) if parent < 0]] = 0.0
    rest_identity = np.broadcast_to(np.eye(3), (1, len(parents), 3, 3))
    rest_positions, _ = forward_kinematics(parents, rest_offsets, rest_identity)

    to_z_up = Y_UP_TO_Z_UP
    return SkeletonMotion(
        names=tuple(names),
        parents=tuple(int(p) for p in parents),
        rest_positions=rest_positions[0] @ to_z_up.T,
        positions=positions @ to_z_up.T,
        rotations=conjugate(to_z_up, rotations),
        fps=float(fps),
        source=source,
    )
