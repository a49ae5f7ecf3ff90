"""A headless PNG strip of recovered motion: evenly spaced frames drawn with matplotlib (Agg, no display).

Each panel is a 3D view of one frame (world frame, z up, metres, equal scaling on all axes) centred
on the pelvis: the skeleton (bones from BODY_PARENTS; the body's left side blue, right side red),
the head (CPF) path (solid up to the frame, dashed after it; a dot at the frame), and the floor at
floor_z as a grey square with grid lines every GRID_M metres in world coordinates, so that motion
shows against them. Every panel uses the same viewing direction and box size.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from egogrpo.body.topology import BODY_JOINT_NAMES, BODY_PARENTS, NUM_BODY_JOINTS
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import atomic_output, check_writable
from egogrpo.viz.motion_file import RecoveredView

GRID_M = 0.5  # floor grid spacing, metres
MIN_BOX_M = 2.0  # smallest horizontal side of each panel's box, metres
PANEL_PX = (320, 400)  # default size of one panel (width, height), pixels
DPI = 100

LEFT_COLOR = "#1f5fbf"
RIGHT_COLOR = "#c8322d"
CENTER_COLOR = "#333333"
HEAD_PATH_COLOR = "#2a9d57"
FLOOR_COLOR = "#d9d9d9"
GRID_COLOR = "#a8a8a8"


def bone_color(joint: int) -> str:
    """Colour of the bone ending at `joint`: by the body side its name says (left, right or centre)."""
    name = BODY_JOINT_NAMES[joint]
    return LEFT_COLOR if name.startswith("left") else RIGHT_COLOR if name.startswith("right") else CENTER_COLOR


def strip_frames(num_frames: int, frames: int) -> np.ndarray:
    """Indices of `frames` evenly spaced frames from the first to the last (fewer if the motion is shorter)."""
    if frames < 1:
        raise EgogrpoError(f"the number of frames to draw must be at least 1, got {frames}")
    return np.unique(np.round(np.linspace(0, num_frames - 1, min(frames, num_frames))).astype(int))


def render_strip(
    view: RecoveredView,
    path: str | Path,
    frames: int = 6,
    sample: int = 0,
    size: tuple[int, int] | None = None,
) -> Path:
    """Draw `frames` evenly spaced frames of one sample of a recovered motion into the PNG `path`.

    size: (width, height) of the image in pixels; default PANEL_PX per panel. Written atomically.
    The sample, the number of frames and the output's folder are checked before anything is drawn.
    """
    joints = view.sample_joints(sample)
    strip_frames(view.num_frames, frames)
    check_writable(path, "--png")
    body = view.metadata.get("body_model_id", "unknown body")
    title = (
        f"{view.path.name}: sample {sample} of {view.num_samples}, {view.num_frames} frames "
        f"({view.times_s[-1]:.1f} s), body {body}"
    )
    return render_strip_from_joints(
        joints,
        path,
        cpf=view.cpf_positions,
        floor_z=view.floor_z,
        times_s=view.times_s,
        frames=frames,
        title=title,
        size=size,
    )


def render_strip_from_joints(
    joints: np.ndarray,
    path: str | Path,
    *,
    cpf: np.ndarray | None = None,
    floor_z: float | None = None,
    times_s: np.ndarray | None = None,
    fps: float = 30.0,
    frames: int = 6,
    title: str | None = None,
    size: tuple[int, int] | None = None,
) -> Path:
    """Draw `frames` evenly spaced frames of a motion into the PNG `path`; returns `path`.

    joints:   (T, 22, 3) world joint positions, metres, z up (BODY_JOINT_NAMES order)
    cpf:      (T, 3) head (CPF) positions to draw as the head path; None: none drawn
    floor_z:  floor height; None: the lowest joint of the whole motion
    times_s:  (T,) frame times in seconds for the panel titles; None: frame / fps
    size:     (width, height) in pixels; None: PANEL_PX per panel
    The file is written atomically (a temporary .png beside it, then renamed).
    """
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_BODY_JOINTS, 3) or joints.shape[0] < 1:
        raise ValueError(f"joints must have shape (T, 22, 3) with T ≥ 1, got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints must be finite (no NaN or infinity)")
    T = joints.shape[0]
    if cpf is not None:
        cpf = np.asarray(cpf, dtype=np.float64)
        if cpf.shape != (T, 3):
            raise ValueError(f"cpf must have shape ({T}, 3), got {cpf.shape}")
    times_s = np.arange(T) / fps if times_s is None else np.asarray(times_s, dtype=np.float64)
    if times_s.shape != (T,):
        raise ValueError(f"times_s must have shape ({T},), got {times_s.shape}")
    floor_z = float(joints[..., 2].min()) if floor_z is None else float(floor_z)
    picked = strip_frames(T, frames)

    # One box size and one viewing direction for every panel.
    box, box_height = MIN_BOX_M, 0.0
    for k in picked:
        box = max(box, 2 * float(np.abs(joints[k, :, :2] - joints[k, 0, :2]).max()) + 0.3)
        box_height = max(box_height, float(joints[k, :, 2].max() - min(floor_z, joints[k, :, 2].min())) + 0.2)
    azimuth = _viewing_azimuth(joints[picked])

    width, height = size or (PANEL_PX[0] * len(picked), PANEL_PX[1])
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    for i, k in enumerate(picked):
        ax = fig.add_subplot(1, len(picked), i + 1, projection="3d", computed_zorder=False)
        _draw_panel(ax, joints[k], cpf, int(k), floor_z, box, box_height, azimuth)
        ax.set_title(f"t = {times_s[k]:.2f} s  (frame {k})", fontsize=10, y=0.97)
    if title:
        fig.suptitle(title, fontsize=11)
    legend = ["skeleton: left side blue, right side red"]
    if cpf is not None:
        legend.append("head path: solid before the frame, dashed after")
    legend.append(f"floor grid {GRID_M:g} m, equal axis scaling")
    if width < 1000:  # a narrow strip: one line each
        fig.text(0.5, 0.01, "\n".join(legend), ha="center", va="bottom", fontsize=8, color="#555555")
        bottom = 0.02 + 12 * len(legend) / height
    else:
        fig.text(0.5, 0.01, " · ".join(legend), ha="center", va="bottom", fontsize=8, color="#555555")
        bottom = 0.05
    fig.subplots_adjust(left=0.0, right=1.0, bottom=bottom, top=0.92 if title else 0.97, wspace=0.0)

    path = Path(path)
    try:
        with atomic_output(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, facecolor="white")
    except OSError as e:
        raise EgogrpoError(f"{path}: cannot write the PNG ({e.strerror or e})") from None
    return path


def _viewing_azimuth(joints: np.ndarray) -> float:
    """Camera azimuth (degrees) that sees the body from 60° off its mean facing direction (front-right).

    joints (N, 22, 3). Facing = left × up, with left the right-hip → left-hip direction.
    """
    left = joints[:, BODY_JOINT_NAMES.index("left_hip")] - joints[:, BODY_JOINT_NAMES.index("right_hip")]
    forward = np.cross(left, np.array([0.0, 0.0, 1.0])).mean(axis=0)
    if np.hypot(forward[0], forward[1]) < 1e-6:
        return -60.0
    return math.degrees(math.atan2(forward[1], forward[0])) - 60.0


def _draw_panel(
    ax,
    joints: np.ndarray,
    cpf: np.ndarray | None,
    frame: int,
    floor_z: float,
    box: float,
    box_height: float,
    azimuth: float,
) -> None:
    """One frame in a box `box` × `box` × `box_height` (metres, equally scaled), centred on the pelvis
    horizontally, from just below the floor (or the lowest joint) up."""
    cx, cy = joints[0, 0], joints[0, 1]
    half = box / 2
    x0, x1, y0, y1 = cx - half, cx + half, cy - half, cy + half
    z0 = min(floor_z, float(joints[:, 2].min())) - 0.05
    z1 = z0 + box_height

    # floor: a grey square and world-aligned grid lines
    corners = [(x0, y0, floor_z), (x1, y0, floor_z), (x1, y1, floor_z), (x0, y1, floor_z)]
    ax.add_collection3d(Poly3DCollection([corners], facecolor=FLOOR_COLOR, edgecolor="none", alpha=0.6, zorder=0))
    for g in np.arange(math.ceil(x0 / GRID_M), math.floor(x1 / GRID_M) + 1) * GRID_M:
        ax.plot([g, g], [y0, y1], [floor_z, floor_z], color=GRID_COLOR, linewidth=0.6, zorder=1)
    for g in np.arange(math.ceil(y0 / GRID_M), math.floor(y1 / GRID_M) + 1) * GRID_M:
        ax.plot([x0, x1], [g, g], [floor_z, floor_z], color=GRID_COLOR, linewidth=0.6, zorder=1)

    # head path, clipped to the box (NaN breaks the line), and its shadow on the floor
    if cpf is not None:
        inside = (cpf[:, 0] >= x0) & (cpf[:, 0] <= x1) & (cpf[:, 1] >= y0) & (cpf[:, 1] <= y1)
        path = np.where(inside[:, None], cpf, np.nan)
        past, future = path[: frame + 1], path[frame:]
        ax.plot(path[:, 0], path[:, 1], np.full(len(path), floor_z), color=GRID_COLOR, linewidth=1.0, zorder=1)
        ax.plot(past[:, 0], past[:, 1], past[:, 2], color=HEAD_PATH_COLOR, linewidth=1.6, zorder=2)
        ax.plot(
            future[:, 0], future[:, 1], future[:, 2], color=HEAD_PATH_COLOR, linewidth=1.0, linestyle="--", zorder=2
        )
        ax.scatter(*cpf[frame], color=HEAD_PATH_COLOR, s=18, zorder=4, depthshade=False)

    # skeleton
    for child, parent in enumerate(BODY_PARENTS):
        if parent < 0:
            continue
        a, b = joints[parent], joints[child]
        ax.plot([a[0], b[0]], [a[1], b[1]], [a[2], b[2]], color=bone_color(child), linewidth=2.2, zorder=3)
    ax.scatter(joints[:, 0], joints[:, 1], joints[:, 2], color=CENTER_COLOR, s=4, zorder=3, depthshade=False)

    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_zlim(z0, z1)
    ax.set_box_aspect((box, box, box_height), zoom=1.2)
    ax.view_init(elev=15.0, azim=azimuth)
    ax.set_axis_off()
