"""The embedded input of `egogrpo demo` (run by `egogrpo.viz.demo`): a synthetic Aria recording.

It is a synthetic Aria recording written in MPS's own formats: a closed-loop
trajectory of a person walking a curve, pausing to look around and walking on (head bob and sway
at the step frequency, eyes slightly down), and a semidense point cloud of the floor with some
clutter. Recovery then runs as on a real recording: the nominal Aria CPF calibration (there is no
VRS), the floor estimated from the points, the shipped default prior and body, 30 fps output,
plus CSV, BVH and a PNG strip of frames.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from egogrpo.geometry import quat_from_matrix, se3_compose, se3_inverse
from egogrpo.recover.aria import NOMINAL_T_DEVICE_CPF

GRAPH_UID = "00000000-0000-0000-0000-000000000000"
TRAJECTORY_HEADER = (
    "graph_uid,tracking_timestamp_us,utc_timestamp_ns,tx_world_device,ty_world_device,tz_world_device,"
    "qx_world_device,qy_world_device,qz_world_device,qw_world_device,device_linear_velocity_x_device,"
    "device_linear_velocity_y_device,device_linear_velocity_z_device,angular_velocity_x_device,"
    "angular_velocity_y_device,angular_velocity_z_device,gravity_x_world,gravity_y_world,gravity_z_world,quality_score"
)


def synthetic_head_path(
    seconds: float = 12.0, rate: float = 200.0, eye_height: float = 1.58
) -> tuple[np.ndarray, np.ndarray]:
    """Times (N,) in seconds and T_world_cpf (N, 7) of a walk: 5 s along a curve, 2 s looking around, on again.

    World z-up, floor at z = 0; CPF axes x = left, y = up, z = forward (Aria's convention).
    """
    t = np.arange(int(seconds * rate) + 1) / rate
    walking = (t < 5.0) | (t > 7.0)
    speed = np.where(walking, 1.1, 0.0)
    distance = np.cumsum(speed) / rate
    heading = 0.35 * np.sin(distance / 2.5)  # a gentle S-curve
    step = np.cumsum(np.where(walking, 2 * np.pi * 1.8, 0.0)) / rate  # step phase at 1.8 Hz
    dx, dy = speed * np.cos(heading) / rate, speed * np.sin(heading) / rate
    x, y = np.cumsum(dx), np.cumsum(dy)
    sway = 0.02 * np.sin(step / 2) * walking
    x, y = x - sway * np.sin(heading), y + sway * np.cos(heading)
    z = eye_height + 0.02 * np.cos(step) * walking
    look = np.where(walking, 0.0, 0.6 * np.sin(2 * np.pi * (t - 5.0) / 2.0))  # look left and right while standing
    yaw, pitch = heading + look, np.radians(10.0)
    forward = np.stack(
        [np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch) * np.ones_like(yaw)], -1
    )
    left = np.stack([-np.sin(yaw), np.cos(yaw), np.zeros_like(yaw)], -1)
    up = np.cross(forward, left)
    R = np.stack([left, up, forward], axis=-1)  # columns: the CPF axes in the world
    q = quat_from_matrix(torch.from_numpy(R)).numpy()
    return t, np.concatenate([q, np.stack([x, y, z], -1)], -1)


def write_synthetic_recording(folder: Path, seconds: float = 12.0, seed: int = 0) -> Path:
    """Write `folder/trajectory/closed_loop_trajectory.csv` and `global_points.csv.gz` (MPS formats)."""
    times, T_world_cpf = synthetic_head_path(seconds)
    T_cpf_device = se3_inverse(torch.from_numpy(NOMINAL_T_DEVICE_CPF))
    T_world_device = se3_compose(torch.from_numpy(T_world_cpf), T_cpf_device[None].expand(len(times), 7)).numpy()
    trajectory = folder / "trajectory"
    trajectory.mkdir(parents=True, exist_ok=True)
    rows = [TRAJECTORY_HEADER]
    for time, pose in zip(times, T_world_device, strict=True):
        w, qx, qy, qz, tx, ty, tz = pose
        rows.append(
            f"{GRAPH_UID},{round(time * 1e6) + 1_000_000},-1,{tx:.6f},{ty:.6f},{tz:.6f},{qx:.9f},{qy:.9f},{qz:.9f},{w:.9f},"
            "0,0,0,0,0,0,0,0,-9.81,1.0"
        )
    (trajectory / "closed_loop_trajectory.csv").write_text("\n".join(rows) + "\n")
    rng = np.random.default_rng(seed)
    extent = np.array(
        [
            T_world_cpf[:, 4].min() - 3,
            T_world_cpf[:, 4].max() + 3,
            T_world_cpf[:, 5].min() - 3,
            T_world_cpf[:, 5].max() + 3,
        ]
    )
    floor = np.stack([rng.uniform(*extent[:2], 4000), rng.uniform(*extent[2:], 4000), rng.normal(0.0, 0.002, 4000)], -1)
    clutter = np.stack(
        [rng.uniform(*extent[:2], 1500), rng.uniform(*extent[2:], 1500), rng.uniform(0.3, 2.5, 1500)], -1
    )
    points = np.concatenate([floor, clutter])
    lines = ["uid,graph_uid,px_world,py_world,pz_world,inv_dist_std,dist_std"]
    lines += [f"{i},{GRAPH_UID},{p[0]:.6f},{p[1]:.6f},{p[2]:.6f},0.000050,0.001000" for i, p in enumerate(points)]
    with gzip.open(trajectory / "global_points.csv.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    return folder
