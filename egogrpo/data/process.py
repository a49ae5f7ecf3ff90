"""From a `MotionClip` to stored `SequenceArrays`: resample to 30 fps by time, floor and contacts, CPF quantities.

Steps: check the clip, resample by timestamp (slerp for rotations, lerp for positions), trim the
ends if asked, forward kinematics on the body model, estimate the floor from static toes
(HuMoR-style) and move it to z = 0, label contacts, then compute the CPF trajectory, its
frame-to-frame motion and the joints in the CPF frame, and drop the first frame.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from egogrpo.body.model import BodyModel
from egogrpo.body.topology import BODY_JOINT_NAMES
from egogrpo.config import FloorContactConfig, ProcessConfig
from egogrpo.data.motion import MotionClip
from egogrpo.data.sequence import SequenceArrays
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_normalize, quat_slerp, se3_apply, se3_compose, se3_inverse

_J = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}
TOES = (_J["left_foot"], _J["right_foot"])  # SMPL's "foot" joints sit at the balls of the feet
ANKLES = (_J["left_ankle"], _J["right_ankle"])
KNEES = (_J["left_knee"], _J["right_knee"])
WRISTS = (_J["left_wrist"], _J["right_wrist"])


class ShortClipError(EgogrpoError):
    """A clip too short to give one training crop (the CLI can skip these when asked)."""


def check_clip(clip: MotionClip) -> None:
    """Refuse a clip with an unusable frame rate, NaNs or non-unit quaternions (one line naming its source)."""
    if not np.isfinite(clip.fps) or clip.fps <= 0:
        raise EgogrpoError(f"{clip.source}: unknown or invalid frame rate ({clip.fps})")
    arrays = {"T_world_root": clip.T_world_root, "body_quats": clip.body_quats, "betas": clip.betas}
    if clip.hand_quats is not None:
        arrays["hand_quats"] = clip.hand_quats
    for name in ("joints_world", "T_world_cpf"):
        if getattr(clip, name) is not None:
            arrays[name] = getattr(clip, name)
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise EgogrpoError(f"{clip.source}: {name} contains NaN or infinite values")
    for name, quats in (("root", clip.T_world_root[:, :4]), ("body", clip.body_quats)):
        if np.abs(np.linalg.norm(quats, axis=-1) - 1.0).max(initial=0.0) > 1e-3:
            raise EgogrpoError(f"{clip.source}: {name} rotations are not unit quaternions")


def resample_clip(clip: MotionClip, fps: float) -> MotionClip:
    """Resample to `fps` by timestamp: frame k is at time k / fps from the first source frame."""
    if clip.fps == fps:
        return clip
    count = int(np.floor(clip.duration * fps + 1e-9)) + 1
    position = np.arange(count) * (clip.fps / fps)  # fractional source index of each output frame
    lower = np.minimum(np.floor(position).astype(np.int64), clip.num_frames - 1)
    upper = np.minimum(lower + 1, clip.num_frames - 1)
    weight = position - lower

    def lerp(x: np.ndarray) -> np.ndarray:
        w = weight.reshape(-1, *([1] * (x.ndim - 1)))
        return (1.0 - w) * x[lower] + w * x[upper]

    def slerp(q: np.ndarray) -> np.ndarray:
        q = torch.from_numpy(np.ascontiguousarray(q, dtype=np.float64))
        w = torch.from_numpy(weight).reshape(-1, *([1] * (q.ndim - 2)))
        return quat_normalize(quat_slerp(q[lower], q[upper], w.expand(q[lower].shape[:-1]))).numpy()

    def pose(T: np.ndarray | None) -> np.ndarray | None:
        return None if T is None else np.concatenate([slerp(T[:, :4]), lerp(T[:, 4:])], axis=-1)

    return dataclasses.replace(
        clip,
        fps=fps,
        T_world_root=pose(clip.T_world_root),
        T_world_cpf=pose(clip.T_world_cpf),
        body_quats=slerp(clip.body_quats),
        hand_quats=None if clip.hand_quats is None else slerp(clip.hand_quats),
        joints_world=None if clip.joints_world is None else lerp(clip.joints_world),
    )


def trim_clip(clip: MotionClip, fraction: float) -> MotionClip:
    """Drop `fraction` of the frames at each end."""
    cut = int(clip.num_frames * fraction)
    if cut == 0:
        return clip
    keep = slice(cut, clip.num_frames - cut)
    return dataclasses.replace(
        clip,
        T_world_root=clip.T_world_root[keep],
        body_quats=clip.body_quats[keep],
        hand_quats=None if clip.hand_quats is None else clip.hand_quats[keep],
        joints_world=None if clip.joints_world is None else clip.joints_world[keep],
        T_world_cpf=None if clip.T_world_cpf is None else clip.T_world_cpf[keep],
    )


def joint_speeds(joints: np.ndarray, fps: float) -> np.ndarray:
    """(T, J, 3) positions → (T, J) speeds in m/s (central differences, one-sided at the ends)."""
    if joints.shape[0] < 2:
        return np.zeros(joints.shape[:2])
    return np.linalg.norm(np.gradient(joints, 1.0 / fps, axis=0), axis=-1)


def estimate_floor(joints: np.ndarray, speeds: np.ndarray, config: FloorContactConfig) -> float:
    """Floor height (z, metres) from the toes' heights while they are static.

    Static toe heights are sorted and split into clusters at gaps above `cluster_gap`; the floor is
    the median of the lowest cluster with at least `min_cluster_size` samples, minus
    `toe_clearance`. Without such a cluster (no static toes), the lowest toe height is used.
    """
    toes = joints[:, TOES, 2]
    static = toes[speeds[:, TOES] < config.static_speed]
    if static.size >= config.min_cluster_size:
        heights = np.sort(static)
        breaks = np.flatnonzero(np.diff(heights) > config.cluster_gap) + 1
        for cluster in np.split(heights, breaks):
            if cluster.size >= config.min_cluster_size:
                return float(np.median(cluster)) - config.toe_clearance
    return float(toes.min()) - config.toe_clearance


def contact_labels(joints: np.ndarray, speeds: np.ndarray, config: FloorContactConfig) -> np.ndarray:
    """(T, 21) labels of the non-root joints: static and close to the floor (z = 0); 0 for unlabelled joints."""
    contacts = np.zeros((joints.shape[0], len(BODY_JOINT_NAMES)), dtype=np.float32)
    static = speeds < config.static_speed
    for indices, height in ((TOES, config.toe_height), (ANKLES + KNEES + WRISTS, config.joint_height)):
        idx = list(indices)
        contacts[:, idx] = (static[:, idx] & (joints[:, idx, 2] < height)).astype(np.float32)
    return contacts[:, 1:]


def process_clip(
    clip: MotionClip, body: BodyModel, config: ProcessConfig, floor: float | None = None
) -> SequenceArrays:
    """Turn a clip into the arrays of one HDF5 group (float32), on the given body model.

    Kinematics run in float64: pass a float64 body (`body.to(dtype=torch.float64)`) when processing
    many clips, so that it is not converted for each one. `floor` is the floor height (z, metres)
    when it is known (e.g. 0 for a stored sequence being augmented); None estimates it.
    """
    check_clip(clip)
    clip = trim_clip(resample_clip(clip, config.fps), config.trim_fraction)
    stored = clip.num_frames - 1
    if stored < config.min_frames:
        raise ShortClipError(
            f"{clip.source}: {clip.duration:.2f} s gives {max(stored, 0)} frames at {config.fps:g} fps, "
            f"fewer than one {config.min_frames}-frame crop"
        )
    joints, T_world_cpf = clip.joints_world, clip.T_world_cpf
    if joints is None or T_world_cpf is None:  # forward kinematics only for what the clip lacks
        model = body if body.joints_mean.dtype == torch.float64 else body.to(dtype=torch.float64)
        betas = torch.from_numpy(np.asarray(clip.betas, dtype=np.float64))
        root = torch.from_numpy(clip.T_world_root.astype(np.float64))
        hands = None
        if clip.hand_quats is not None and model.has_hands:
            hands = torch.from_numpy(clip.hand_quats.astype(np.float64))
        posed = model.with_shape(betas).with_pose(root, torch.from_numpy(clip.body_quats.astype(np.float64)), hands)
        joints = posed.joints[:, :22].numpy() if joints is None else joints
        T_world_cpf = posed.T_world_cpf.numpy() if T_world_cpf is None else T_world_cpf
    speeds = joint_speeds(joints, config.fps)
    if floor is None:
        floor = estimate_floor(joints, speeds, config.floor)
    lift = np.array([0.0, 0.0, -floor])
    joints = joints + lift
    T_world_root = clip.T_world_root.copy()
    T_world_root[:, 4:] += lift
    T_world_cpf = T_world_cpf.copy()
    T_world_cpf[:, 4:] += lift
    contacts = contact_labels(joints, speeds, config.floor)

    cpf = torch.from_numpy(T_world_cpf)
    T_cpf_tm1_cpf_t = se3_compose(se3_inverse(cpf[:-1]), cpf[1:]).numpy()
    joints_wrt_cpf = se3_apply(se3_inverse(cpf)[:, None, :], torch.from_numpy(joints[:, 1:])).numpy()
    arrays = SequenceArrays(
        T_world_root=T_world_root[1:],
        body_quats=clip.body_quats[1:],
        hand_quats=None if clip.hand_quats is None else clip.hand_quats[1:],
        contacts=contacts[1:],
        betas=np.asarray(clip.betas, dtype=np.float64)[None, :],
        T_world_cpf=T_world_cpf[1:],
        T_cpf_tm1_cpf_t=T_cpf_tm1_cpf_t,
        height_from_floor=T_world_cpf[1:, 6:7],
        joints_wrt_cpf=joints_wrt_cpf[1:],
    ).astype(np.float32)
    problems = arrays.problems()
    if problems:
        raise EgogrpoError(f"{clip.source}: processing produced invalid arrays: {'; '.join(problems)}")
    return arrays
