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

from dataclasses import dataclass

import numpy as np

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
        return self.names.index(name)
