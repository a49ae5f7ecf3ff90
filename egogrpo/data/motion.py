"""`MotionClip`: one body motion on a body model, as every dataset reader produces it.

A clip is at its source frame rate, in a z-up world (metres), before floor estimation, contact
labels and resampling (see `egogrpo.data.process`). It is plain numpy so that it crosses process
boundaries cheaply.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from egogrpo.body.topology import BODY_JOINT_NAMES, HAND_JOINT_NAMES


@dataclass(frozen=True)
class MotionClip:
    """A body motion at the source frame rate.

    name:          the HDF5 group name it will get, e.g. "CMU/01/01_01" or "CMU/01/01_01_poses"
    source:        the file(s) it was read from
    dataset:       "amass", "cmu", "bvh", "rich" or "adt"
    fps:           source frames per second
    T_world_root:  (T, 7) wxyz_xyz; the translation is the pelvis joint's world position
    body_quats:    (T, 21, 4) local rotations of the 21 non-root body joints, wxyz
    betas:         (B,) shape parameters of the body model the clip is meant for
    hand_quats:    (T, 30, 4) local rotations of 15 left then 15 right hand joints, or None
    joints_world:  (T, 22, 3) ground-truth world joints when they differ from FK of the fields
                   above on the output body model (e.g. a gendered SMPL-H fit stored with
                   neutral betas, or a mocap skeleton), else None
    T_world_cpf:   (T, 7) measured CPF poses (e.g. an Aria device's, for ADT) to store instead of
                   the body's FK CPF, else None
    attrs:         extra per-sequence attributes recorded in the HDF5 (gender, source fps, …)
    """

    name: str
    source: str
    dataset: str
    fps: float
    T_world_root: np.ndarray
    body_quats: np.ndarray
    betas: np.ndarray
    hand_quats: np.ndarray | None = None
    joints_world: np.ndarray | None = None
    T_world_cpf: np.ndarray | None = None
    attrs: dict[str, str | float | int] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.T_world_root.shape[0]

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps


def _mirror_rotations(quats: np.ndarray) -> np.ndarray:
    """Reflect rotations through the x = 0 plane: M R M with M = diag(−1, 1, 1), i.e. (w, x, −y, −z)."""
    return quats * np.array([1.0, 1.0, -1.0, -1.0])


def _left_right_permutation(names: tuple[str, ...]) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    swapped = []
    for n in names:
        if n.startswith("left_"):
            n = "right_" + n[5:]
        elif n.startswith("right_"):
            n = "left_" + n[6:]
        swapped.append(index[n])
    return np.array(swapped)


_BODY_SWAP = _left_right_permutation(BODY_JOINT_NAMES[1:])
_HAND_SWAP = _left_right_permutation(HAND_JOINT_NAMES)


def mirror_clip(clip: MotionClip, suffix: str = "_mirror") -> MotionClip:
    """Left/right mirror image of a clip, reflected through the world plane x = 0.

    Joints are swapped left ↔ right (hands included: the left hand's rotations become the right
    hand's) and every rotation is reflected, so the mirrored motion is again a valid motion of the
    same (left/right symmetric) body: the world root pose becomes M R M and its position M p, with
    M = diag(−1, 1, 1) both in the world and in the body's rest frame (x is the body's left).
    """
    root = clip.T_world_root.copy()
    root[:, :4] = _mirror_rotations(root[:, :4])
    root[:, 4] *= -1.0
    hands = None if clip.hand_quats is None else _mirror_rotations(clip.hand_quats[:, _HAND_SWAP])
    joints = None
    if clip.joints_world is not None:
        joints = clip.joints_world[:, np.concatenate([[0], 1 + _BODY_SWAP])] * np.array([-1.0, 1.0, 1.0])
    cpf = None
    if clip.T_world_cpf is not None:
        cpf = clip.T_world_cpf.copy()
        cpf[:, :4] = _mirror_rotations(cpf[:, :4])
        cpf[:, 4] *= -1.0
    return dataclasses.replace(
        clip,
        name=clip.name + suffix,
        T_world_cpf=cpf,
        T_world_root=root,
        body_quats=_mirror_rotations(clip.body_quats[:, _BODY_SWAP]),
        hand_quats=hands,
        joints_world=joints,
        attrs={**clip.attrs, "mirrored": 1},
    )
