"""BVH (Biovision hierarchy) files.

    read_bvh(path, units="auto") -> SkeletonMotion (metres, z-up)

Nodes: every ROOT and JOINT, named as in the file, and every `End Site`, named `<parent>_end`.
Kinematics (standard BVH): a joint's transform relative to its parent is
Translate(OFFSET + its position channels) · R(ch₁) · R(ch₂) · R(ch₃), its rotation channels
composed in the order listed (rotations about moving axes), angles in degrees. A frame whose
channels are all zero is the rest pose (the OFFSETs). BVH is y-up; the result is converted to z-up.

Units: lengths are multiplied by metres per unit, given as "m", "cm", "mm", "inch", "cmu"
(CMU's ASF units: 0.0254 / 0.45 m), a number, or "auto". "auto" measures the rest skeleton's
height (the extent of the OFFSET-only node positions along y, the file's up axis) and picks the
unit among m, cm, mm, inch, cmu that makes it 1.2–2.2 m tall; those ranges do not overlap, so at
most one fits, and when none does the reader asks for explicit units.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from egogrpo.data.euler import euler_matrix, forward_kinematics, skeleton_motion_from_y_up
from egogrpo.data.skeleton_motion import SkeletonMotion
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import read_text

#: Metres per file unit for each named unit.
UNITS: dict[str, float] = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}

#: Rest heights (metres) that "auto" units accept as a human's.
PLAUSIBLE_HEIGHT_M = (1.2, 2.2)

_CHANNELS = ("xposition", "yposition", "zposition", "xrotation", "yrotation", "zrotation")


class _Hierarchy:
    """The HIERARCHY section: nodes in file order (parents first), their offsets and channels."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.parents: list[int] = []
        self.offsets: list[np.ndarray] = []  # (3,) file units
        self.channels: list[tuple[str, ...]] = []  # lower case, e.g. ("zrotation", "yrotation", "xrotation")

    def add(self, name: str, parent: int) -> int:
        self.names.append(name)
        self.parents.append(parent)
        self.offsets.append(np.zeros(3))
        self.channels.append(())
        return len(self.names) - 1


def _parse_hierarchy(path: Path, lines: list[str]) -> _Hierarchy:
    """Parse the lines before MOTION (recursive descent over tokens, each with its line number)."""
    tokens = [(token, number) for number, line in enumerate(lines, start=1) for token in line.split()]
    if not tokens or tokens[0][0].upper() != "HIERARCHY":
        raise EgogrpoError(f"{path}: missing HIERARCHY section")
    hierarchy = _Hierarchy()
    position = 1

    def take(expected: str | None = None) -> tuple[str, int]:
        nonlocal position
        if position >= len(tokens):
            raise EgogrpoError(f"{path}:{tokens[-1][1]}: HIERARCHY ends early (expected {expected or '}'!r})")
        token, number = tokens[position]
        if expected is not None and token.upper() != expected.upper():
            raise EgogrpoError(f"{path}:{number}: expected {expected!r}, found {token!r}")
        position += 1
        return token, number

    def numbers(count: int, what: str) -> list[float]:
        values = []
        for _ in range(count):
            token, number = take()
            try:
                values.append(float(token))
            except ValueError:
                raise EgogrpoError(f"{path}:{number}: non-numeric value {token!r} in {what}") from None
            if not np.isfinite(values[-1]):
                raise EgogrpoError(f"{path}:{number}: NaN or infinite value in {what}")
        return values

    def parse_node(parent: int, is_end_site: bool) -> None:
        if is_end_site:
            take("Site")
            name = f"{hierarchy.names[parent]}_end"
            suffix = itertools.count(2)
            while name in hierarchy.names:
                name = f"{hierarchy.names[parent]}_end{next(suffix)}"
        else:
            name, number = take()
            if name in hierarchy.names:
                raise EgogrpoError(f"{path}:{number}: joint name {name!r} appears twice")
        node = hierarchy.add(name, parent)
        take("{")
        while True:
            token, number = take()
            keyword = token.upper()
            if keyword == "}":
                return
            if keyword == "OFFSET":
                hierarchy.offsets[node] = np.array(numbers(3, f"{name} OFFSET"))
            elif keyword == "CHANNELS" and not is_end_site:
                (count,) = numbers(1, f"{name} CHANNELS")
                if count != int(count) or count < 0:
                    raise EgogrpoError(f"{path}:{number}: bad channel count {count:g} for {name!r}")
                channels = tuple(take()[0].lower() for _ in range(int(count)))
                bad = [c for c in channels if c not in _CHANNELS]
                if bad or len(set(channels)) != len(channels):
                    raise EgogrpoError(f"{path}:{number}: bad channels {' '.join(channels)!r} for {name!r}")
                hierarchy.channels[node] = channels
            elif keyword == "JOINT" and not is_end_site:
                parse_node(node, is_end_site=False)
            elif keyword == "END" and not is_end_site:
                parse_node(node, is_end_site=True)
            else:
                raise EgogrpoError(f"{path}:{number}: unexpected {token!r} in {name!r}")

    take("ROOT")
    parse_node(-1, is_end_site=False)
    if position < len(tokens):
        token, number = tokens[position]
        raise EgogrpoError(f"{path}:{number}: unexpected {token!r} after the root joint (one ROOT is supported)")
    return hierarchy


def _header_value(path: Path, lines: list[str], index: int, label: str) -> float:
    """The number after `label` (e.g. "Frames:") on line `index` (0-based), or an EgogrpoError."""
    line = lines[index] if index < len(lines) else ""
    if not line.strip().lower().startswith(label.lower()):
        raise EgogrpoError(f"{path}:{index + 1}: expected {label!r} after MOTION")
    text = line.strip()[len(label) :].strip()
    try:
        return float(text)
    except ValueError:
        raise EgogrpoError(f"{path}:{index + 1}: {label} {text!r} is not a number") from None


def _read_frames(path: Path, lines: list[str], first: int, declared: int, num_channels: int) -> np.ndarray:
    """The motion rows from line index `first` on: (declared, num_channels) floats, or an EgogrpoError."""
    rows = [(index + 1, line.split()) for index, line in enumerate(lines[first:], start=first) if line.strip()]
    for count, (number, values) in enumerate(rows):
        if len(values) == num_channels:
            continue
        if count == len(rows) - 1 and len(values) < num_channels:
            raise EgogrpoError(
                f"{path}:{number}: truncated file: declared {declared} frames, found {count} complete "
                f"(the last row has {len(values)} of {num_channels} values)"
            )
        raise EgogrpoError(
            f"{path}:{number}: {len(values)} values in a frame, but HIERARCHY declares {num_channels} channels"
        )
    if len(rows) != declared:
        raise EgogrpoError(f"{path}: truncated or padded file: declared {declared} frames, found {len(rows)}")
    try:
        data = np.array(list(itertools.chain.from_iterable(values for _, values in rows)), dtype=np.float64)
    except ValueError:
        for number, values in rows:
            for token in values:
                try:
                    float(token)
                except ValueError:
                    raise EgogrpoError(f"{path}:{number}: non-numeric value {token!r}") from None
        raise
    data = data.reshape(declared, num_channels)
    bad_rows = np.flatnonzero(~np.all(np.isfinite(data), axis=1))
    if bad_rows.size:
        raise EgogrpoError(f"{path}:{rows[bad_rows[0]][0]}: NaN or infinite value")
    return data


def _metres_per_unit(path: Path, units: str | float, rest_height_units: float) -> float:
    """Resolve `units` (see the module docstring) to metres per file unit."""
    if isinstance(units, str) and units.lower() == "auto":
        for scale in UNITS.values():
            if PLAUSIBLE_HEIGHT_M[0] <= rest_height_units * scale <= PLAUSIBLE_HEIGHT_M[1]:
                return scale
        raise EgogrpoError(
            f"{path}: cannot infer units: the rest skeleton is {rest_height_units:g} units tall, which is not "
            f"{PLAUSIBLE_HEIGHT_M[0]}–{PLAUSIBLE_HEIGHT_M[1]} m in any of {', '.join(UNITS)}; give the units"
        )
    if isinstance(units, str):
        if units.lower() not in UNITS:
            raise EgogrpoError(
                f"{path}: unknown units {units!r} (use {', '.join(UNITS)}, auto, or metres per unit as a number)"
            )
        return UNITS[units.lower()]
    scale = float(units)
    if not (scale > 0 and np.isfinite(scale)):
        raise EgogrpoError(f"{path}: metres per unit must be a positive number, got {units!r}")
    return scale


def read_bvh(path: str | Path, units: str | float = "auto") -> SkeletonMotion:
    """Read a BVH file into a `SkeletonMotion` (metres, z-up); fps is 1 / `Frame Time`, snapped to a whole number within 0.01 %.

    units:  "m", "cm", "mm", "inch", "cmu", metres per unit as a number, or "auto" (see the module docstring)
    """
    path = Path(path)
    if not (isinstance(units, str) and units.lower() == "auto"):
        _metres_per_unit(path, units, rest_height_units=0.0)  # bad units fail before reading the file
    lines = read_text(path).splitlines()
    motion = next((index for index, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if motion is None:
        raise EgogrpoError(f"{path}: missing MOTION section")
    hierarchy = _parse_hierarchy(path, lines[:motion])

    declared = _header_value(path, lines, motion + 1, "Frames:")
    if declared != int(declared) or declared < 1:
        raise EgogrpoError(f"{path}:{motion + 2}: Frames: must be a positive whole number, got {declared:g}")
    frame_time = _header_value(path, lines, motion + 2, "Frame Time:")
    if not (frame_time > 0 and np.isfinite(frame_time)):
        raise EgogrpoError(f"{path}:{motion + 3}: Frame Time must be positive, got {frame_time:g}")
    num_channels = sum(len(channels) for channels in hierarchy.channels)
    data = _read_frames(path, lines, motion + 3, int(declared), num_channels)

    num_nodes = len(hierarchy.names)
    offsets = np.array(hierarchy.offsets)
    rest_identity = np.broadcast_to(np.eye(3), (1, num_nodes, 3, 3))
    rest_positions, _ = forward_kinematics(hierarchy.parents, offsets, rest_identity)
    scale = _metres_per_unit(path, units, float(np.ptp(rest_positions[0, :, 1])))

    local_rotations = np.broadcast_to(np.eye(3), (data.shape[0], num_nodes, 3, 3)).copy()
    translations = np.zeros((data.shape[0], num_nodes, 3))
    column = 0
    for node, channels in enumerate(hierarchy.channels):
        columns = data[:, column : column + len(channels)]
        column += len(channels)
        rotation = [n for n, channel in enumerate(channels) if channel.endswith("rotation")]
        if rotation:
            axes = "".join(channels[n][0] for n in rotation)
            local_rotations[:, node] = euler_matrix(axes, np.deg2rad(columns[:, rotation]))
        for n, channel in enumerate(channels):
            if channel.endswith("position"):
                translations[:, node, "xyz".index(channel[0])] = columns[:, n] * scale

    fps = 1.0 / frame_time
    if abs(fps - round(fps)) < 1e-4 * fps:
        fps = float(round(fps))  # Frame Time is printed rounded: .0083333 s is 120 fps
    return skeleton_motion_from_y_up(
        hierarchy.names, hierarchy.parents, offsets * scale, local_rotations, translations, fps, str(path)
    )
