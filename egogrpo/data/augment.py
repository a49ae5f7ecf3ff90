"""On-the-fly augmentation of training crops: left/right mirroring, other body shapes, playback speed.

A crop is augmented from its pose, not from its derived fields: the stored window (with one frame
before it) becomes a `MotionClip` at the sequence frame rate, which is mirrored (`mirror_clip`),
given another body (new betas; root translation scaled to the new legs) and retimed (its frame
rate set to `speed · fps`, then `process_clip` resamples it back to `fps`). `process_clip` then
recomputes the CPF trajectory, relative CPF motion, contacts and CPF-frame joints — the same code
that preprocessing runs — with the floor kept at z = 0. So the condition, the state and the labels
of an augmented crop agree with each other exactly as those of a preprocessed sequence do.

Draws (`AugmentDraw`) come from a NumPy generator the caller seeds per crop, so a crop depends only
on (seed, epoch, index).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from egogrpo.body.model import BodyModel
from egogrpo.config import AugmentConfig, ProcessConfig
from egogrpo.data.motion import MotionClip, mirror_clip
from egogrpo.data.process import process_clip
from egogrpo.data.sequence import SequenceArrays
from egogrpo.geometry import se3_apply


@dataclass(frozen=True)
class AugmentDraw:
    """The augmentation of one crop: mirror or not, playback speed, and new betas (None: the stored body)."""

    mirror: bool
    speed: float
    betas: np.ndarray | None

    @property
    def identity(self) -> bool:
        return not self.mirror and self.speed == 1.0 and self.betas is None


def draw_augmentation(config: AugmentConfig, num_betas: int, rng: np.random.Generator) -> AugmentDraw:
    """One crop's draws, in a fixed order (mirror, speed, shape), each from `rng`."""
    mirror = bool(rng.random() < config.mirror)
    speed = float(
        rng.uniform(config.speed_min, config.speed_max) if config.speed_max > config.speed_min else config.speed_min
    )
    betas = None
    if rng.random() < config.shape_prob:
        betas = rng.normal(0.0, config.shape_std, size=num_betas)
    return AugmentDraw(mirror=mirror, speed=speed, betas=betas)


def source_frames(length: int, speed: float) -> int:
    """Stored frames to read for a `length`-frame crop at `speed`: the span plus the frame before it."""
    return math.ceil(length * speed - 1e-9) + 1


def augment_window(
    window: SequenceArrays, draw: AugmentDraw, body: BodyModel, length: int, fps: float = 30.0
) -> SequenceArrays:
    """A `length`-frame augmented crop from `source_frames(length, draw.speed)` stored frames.

    window: the stored frames (fields as in a motion file, the floor at z = 0), the first of them
            being the frame before the crop; body: the motion file's body model (float64 is fastest).
    """
    pelvis = window.T_world_root[:, 4:].astype(np.float64)
    cpf = torch.from_numpy(window.T_world_cpf.astype(np.float64))
    joints_wrt_cpf = torch.from_numpy(window.joints_wrt_cpf.astype(np.float64))
    joints = se3_apply(cpf[:, None, :], joints_wrt_cpf).numpy()  # the stored labels, in the world
    clip = MotionClip(
        name="augmented",
        source="training crop",
        dataset="augmented",
        fps=fps * draw.speed,
        T_world_root=window.T_world_root.astype(np.float64),
        body_quats=window.body_quats.astype(np.float64),
        betas=window.betas[0].astype(np.float64),
        hand_quats=None if window.hand_quats is None else window.hand_quats.astype(np.float64),
        joints_world=np.concatenate([pelvis[:, None, :], joints], axis=1),
        T_world_cpf=window.T_world_cpf.astype(np.float64),
    )
    if draw.mirror:
        clip = mirror_clip(clip, suffix="")
    if draw.betas is not None:
        clip = reshape_clip(clip, body, draw.betas)
    process = ProcessConfig(fps=fps, min_frames=length)
    return process_clip(clip, body, process, floor=0.0).slice(0, length)


def reshape_clip(clip: MotionClip, body: BodyModel, betas: np.ndarray) -> MotionClip:
    """The same joint rotations on the body with shape `betas`.

    The root translation is scaled about the first frame's ground point by the ratio of rest pelvis
    heights above the soles (new / old), so that strides and the pelvis height fit the new legs. The
    joints and the CPF become forward kinematics of the new body (the old labels no longer apply).
    """
    ratio = float(_pelvis_height(body, betas) / _pelvis_height(body, clip.betas))
    root = clip.T_world_root.copy()
    origin = np.array([root[0, 4], root[0, 5], 0.0])
    root[:, 4:] = origin + ratio * (root[:, 4:] - origin)
    return dataclasses.replace(
        clip, T_world_root=root, betas=np.asarray(betas, dtype=np.float64), joints_world=None, T_world_cpf=None
    )


def _pelvis_height(body: BodyModel, betas: np.ndarray) -> float:
    """Rest-pose height of the pelvis above the soles (metres) for shape `betas`."""
    b = torch.as_tensor(np.asarray(betas), dtype=body.joints_mean.dtype)
    return float(body.with_shape(b).rest_joints[0, 1] - body.rest_floor_y(b))
