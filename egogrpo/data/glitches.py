"""Single-frame glitches in source mocap, found before resampling, and what to do with them.

A glitch frame t is one where some node leaves the path of its neighbours and comes back:
the deviation d_t = max over nodes |p_t − (p_{t−1} + p_{t+1}) / 2| (metres, the source's own frames)
exceeds a threshold and is at least that of frames t − 1 and t + 1 (a spike at t also shows, halved,
at its neighbours). The threshold is max(0.3 m, 250 m/s² / fps²): 250 m/s² is beyond the
acceleration of any body part in everyday mocap, so at 24 fps (markerless ReActIdle) fast but real
motion is not flagged, and at 60 or 120 fps any jump of 30 cm for one frame is (CMU 09_10 has a foot 0.96 m
below the floor in one frame). The first and last frames are not tested.

Policies: "keep" (record only), "trim" (keep the longest run of frames without a glitch), "drop" (leave
the clip out). What was found and done is recorded in the clip's attributes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np

from egogrpo.data.skeleton_motion import SkeletonMotion
from egogrpo.errors import EgogrpoError

GLITCH_POLICIES = ("keep", "trim", "drop")
MIN_GLITCH_M = 0.3
MAX_ACCELERATION = 250.0  # m/s²


class DroppedClipError(EgogrpoError):
    """A clip left out by the glitch policy (the run records it and goes on)."""


def glitch_threshold(fps: float) -> float:
    """The deviation (metres) above which a frame is a glitch at `fps` (see the module docstring)."""
    return max(MIN_GLITCH_M, MAX_ACCELERATION / fps**2)


def glitch_frames(positions: np.ndarray, fps: float) -> np.ndarray:
    """Indices of glitch frames in node positions (T, N, 3), metres."""
    if len(positions) < 3:
        return np.zeros(0, dtype=int)
    middle = positions[1:-1] - 0.5 * (positions[:-2] + positions[2:])
    deviation = np.linalg.norm(middle, axis=-1).max(axis=-1)  # (T-2,) for frames 1 … T-2
    padded = np.concatenate([[0.0], deviation, [0.0]])
    peak = (padded[1:-1] >= padded[:-2]) & (padded[1:-1] >= padded[2:])
    return np.flatnonzero((deviation > glitch_threshold(fps)) & peak) + 1


def longest_clean_run(num_frames: int, glitches: np.ndarray) -> tuple[int, int]:
    """The longest [start, stop) of frames containing no glitch frame (the earliest when tied)."""
    edges = [-1, *sorted(int(g) for g in glitches), num_frames]
    runs = [(a + 1, b) for a, b in itertools.pairwise(edges)]
    return max(runs, key=lambda run: (run[1] - run[0], -run[0]))


def apply_glitch_policy(motion: SkeletonMotion, policy: str) -> tuple[SkeletonMotion, dict[str, str | int]]:
    """Find glitches and keep, trim or drop (DroppedClipError) as `policy` (one of GLITCH_POLICIES, checked where
    the run's config is) says; the attributes to record."""
    found = glitch_frames(motion.positions, motion.fps)
    attrs: dict[str, str | int] = {"glitch_frames": json.dumps([int(g) for g in found]), "glitch_policy": policy}
    if found.size == 0 or policy == "keep":
        return motion, attrs
    if policy == "drop":
        raise DroppedClipError(f"{motion.source}: {found.size} glitch frame(s) at source frame(s) {found.tolist()}")
    start, stop = longest_clean_run(motion.num_frames, found)
    trimmed = dataclasses.replace(
        motion, positions=motion.positions[start:stop], rotations=motion.rotations[start:stop]
    )
    return trimmed, {**attrs, "glitch_kept_frames": json.dumps([start, stop])}
