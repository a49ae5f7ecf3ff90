"""Recovered motion out to common formats: world joints as CSV, the motion as BVH (animation tools)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from egogrpo.body.topology import BODY_JOINT_NAMES, BODY_PARENTS
from egogrpo.data.skeleton_motion import Y_UP_TO_Z_UP
from egogrpo.fileio import atomic_output

BVH_CENTIMETRES = 100.0  # metres → centimetres, the unit most BVH importers assume


def write_joints_csv(path: Path, joints: np.ndarray, timestamps_ns: np.ndarray) -> None:
    """World joints (S, T, 22, 3) in metres as CSV: frame, timestamp_ns, sample, then x/y/z per joint."""
    S, T = joints.shape[:2]
    header = ["frame", "timestamp_ns", "sample"] + [f"{n}_{a}" for n in BODY_JOINT_NAMES for a in "xyz"]
    lines = [",".join(header)]
    for s in range(S):
        for t in range(T):
            values = ",".join(f"{v:.5f}" for v in joints[s, t].reshape(-1))
            lines.append(f"{t},{int(timestamps_ns[t])},{s},{values}")
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _euler_zyx_degrees(R: np.ndarray) -> np.ndarray:
    """Angles (z, y, x) in degrees with R = Rz · Ry · Rx, for (..., 3, 3) matrices."""
    y = np.arcsin(np.clip(-R[..., 2, 0], -1.0, 1.0))
    z = np.arctan2(R[..., 1, 0], R[..., 0, 0])
    x = np.arctan2(R[..., 2, 1], R[..., 2, 2])
    gimbal = np.abs(R[..., 2, 0]) > 1 - 1e-9  # y = ±90°: put the whole turn into z
    z = np.where(gimbal, np.arctan2(-R[..., 0, 1], R[..., 1, 1]), z)
    x = np.where(gimbal, 0.0, x)
    return np.degrees(np.stack([z, y, x], axis=-1))


def write_bvh(
    path: Path,
    rest_joints: np.ndarray,
    R_world_root: np.ndarray,
    p_world_root: np.ndarray,
    local_rotmats: np.ndarray,
    fps: float,
) -> None:
    """One sample as BVH: the 22-joint skeleton with its rest offsets, y-up, centimetres, ZYX Euler channels.

    rest_joints (22, 3) in the body rest frame (y-up, metres); R_world_root (T, 3, 3) and p_world_root
    (T, 3) in the z-up world; local_rotmats (T, 21, 3, 3).
    """
    to_y_up = Y_UP_TO_Z_UP.T
    children = {j: [c for c, p in enumerate(BODY_PARENTS) if p == j] for j in range(len(BODY_PARENTS))}
    lines = ["HIERARCHY"]

    def emit(joint: int, depth: int) -> None:
        pad = "  " * depth
        parent = BODY_PARENTS[joint]
        offset = (rest_joints[joint] - (rest_joints[parent] if parent >= 0 else rest_joints[joint])) * BVH_CENTIMETRES
        lines.append(f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {BODY_JOINT_NAMES[joint]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {offset[0]:.5f} {offset[1]:.5f} {offset[2]:.5f}")
        channels = "6 Xposition Yposition Zposition" if parent < 0 else "3"
        lines.append(f"{pad}  CHANNELS {channels} Zrotation Yrotation Xrotation")
        for child in children[joint]:
            emit(child, depth + 1)
        if not children[joint]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0.00000 0.00000 0.00000", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    T = R_world_root.shape[0]
    root_position = (p_world_root @ to_y_up.T) * BVH_CENTIMETRES
    root_angles = _euler_zyx_degrees(to_y_up @ R_world_root)
    local_angles = _euler_zyx_degrees(local_rotmats)
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / fps:.8f}"]
    order = []  # the joints in the order their channels appear (depth-first, as emitted)

    def visit(joint: int) -> None:
        order.append(joint)
        for child in children[joint]:
            visit(child)

    visit(0)
    for t in range(T):
        values = list(root_position[t]) + list(root_angles[t])
        for joint in order[1:]:
            values += list(local_angles[t, joint - 1])
        lines.append(" ".join(f"{v:.5f}" if math.isfinite(v) else "0" for v in values))
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
