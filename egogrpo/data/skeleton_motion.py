"""A parsed mocap skeleton with its motion, in metres and a z-up world (what ASF/AMC and BVH readers return).

Every joint ("node") has a parent, a rest position (all rotations zero) and, per frame, a world
position and a world rotation. A node's rotation turns the segment(s) that start at it, so the
rotation of `lfemur` (ASF) or `LeftUpLeg` (BVH) is the thigh's. World rotations are relative to
the rest pose: a frame whose channels are all zero has identity rotations everywhere.

Readers convert at load time: y-up sources become z-up by (x, y, z) ↦ (x, −z, y), and lengths are
scaled to metres. The body's rest frame before that conversion is y-up, facing +z, left at +x
(as SMPL's), which after conversion is z-up, facing −y, left at +x.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from egogrpo.errors import EgogrpoError

#: y-up (x, y, z) to z-up (x, −z, y): a proper rotation (det = +1).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class SkeletonMotion:
    """A source skeleton and its motion.

    names:            (N,) node names as in the file
    parents:          (N,) parent index, −1 for the root
    rest_positions:   (N, 3) node positions with every rotation zero and the root at the origin, metres,
                      expressed in the *source's own rest frame converted to z-up* (so legs point to −z)
    positions:        (T, N, 3) world node positions per frame, metres, z-up
    rotations:        (T, N, 3, 3) world node rotations relative to the rest pose, z-up
    fps:              frames per second of the source
    source:           the file(s) it was read from
    """

    names: tuple[str, ...]
    parents: tuple[int, ...]
    rest_positions: np.ndarray
    positions: np.ndarray
    rotations: np.ndarray
    fps: float
    source: str

    @property
    def num_frames(self) -> int:
        return self.positions.shape[0]

    def index(self, name: str) -> int:
        """The index of node `name`; EgogrpoError naming the file when there is none."""
        try:
            return self.names.index(name)
        except ValueError:
            raise EgogrpoError(f"{self.source}: no joint named {name!r} in this skeleton") from None


def drop_leading_bind_frame(
    motion: SkeletonMotion, min_jump: float = 0.05, ratio: float = 10.0
) -> tuple[SkeletonMotion, bool]:
    """Drop frame 0 when it is a bind pose that the motion jumps away from.

    Many BVH exports (CMU's conversion among them) start with a T-pose frame that is not part of
    the motion. It shows as a jump: some node moves more than `min_jump` metres from frame 0 to 1,
    and more than `ratio` times the median largest per-frame move of the next second.
    Returns the motion and whether a frame was dropped.
    """
    if motion.num_frames < 3:
        return motion, False
    steps = np.linalg.norm(np.diff(motion.positions[: int(motion.fps) + 2], axis=0), axis=-1).max(axis=-1)
    if steps[0] <= max(min_jump, ratio * float(np.median(steps[1:]))):
        return motion, False
    return dataclasses.replace(motion, positions=motion.positions[1:], rotations=motion.rotations[1:]), True
