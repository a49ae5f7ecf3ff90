"""Acclaim ASF (skeleton) and AMC (motion) files, as CMU's mocap database ships them.

    read_asf(path)                          -> AsfSkeleton
    read_asf_amc(asf_path, amc_path, fps)   -> SkeletonMotion (metres, z-up)

Nodes: `root`, one node per ASF bone at the bone's *start* (its parent's end) named as the bone
(`lfemur` is the hip, `ltibia` the knee, `lfoot` the ankle), and `<bone>_end` at the end of every
leaf bone. A bone node's rotation is the bone's world rotation; an end node carries its bone's.

Kinematics (ASF 1.10). Rotations about fixed axes are applied in the listed order, so dof
`rx ry rz` or axis `XYZ` means M = Rz · Ry · Rx. A bone's `axis a b c XYZ` is its local frame C
in the world at rest (angles listed in the order of the letters); its dof angles rotate about the
axes of C, so its rotation relative to its parent is L = C · M(dofs) · C⁻¹ and its world rotation
is parent world · L. Its end is its start plus world · direction · length. The root's rotation
is M(RX, RY, RZ in `order`); its position is `position` + (TX, TY, TZ). Translation dofs
(tx ty tz l) of bones are read but ignored. Lengths in file units times 0.0254 / `:units length`
metres (CMU: 0.0254 / 0.45 ≈ 0.05644 m). ASF files are y-up; the result is converted to z-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egogrpo.data.euler import conjugate, fixed_axes_euler_matrix, skeleton_motion_from_y_up
from egogrpo.data.skeleton_motion import SkeletonMotion
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import read_text

#: Metres per inch; ASF `:units length L` means one file unit is 1 / L inches.
METRES_PER_INCH = 0.0254

_BONE_DOFS = ("rx", "ry", "rz", "tx", "ty", "tz", "l")
_ROOT_DOFS = ("rx", "ry", "rz", "tx", "ty", "tz")


@dataclass(frozen=True)
class AsfBone:
    """One ASF bone, as written in the file (file units, y-up, angles in radians).

    direction:   (3,) the bone's direction at rest, in the world (a unit vector in practice)
    length:      the bone's length, file units
    axis_order:  the letters of `axis`, e.g. "xyz"
    axis:        (3,) the `axis` angles, radians, in the order of `axis_order`
    dofs:        the `dof` tokens in file order (lower case: rx ry rz tx ty tz l); the AMC
                 values of this bone come in this order
    """

    name: str
    direction: np.ndarray
    length: float
    axis_order: str
    axis: np.ndarray
    dofs: tuple[str, ...]

    @property
    def vector(self) -> np.ndarray:
        """(3,) from the bone's start to its end at rest, file units."""
        return self.direction * self.length

    @property
    def frame(self) -> np.ndarray:
        """(3, 3) the bone's local frame C at rest (columns: its axes in the world)."""
        return fixed_axes_euler_matrix(self.axis_order, self.axis)


@dataclass(frozen=True)
class AsfSkeleton:
    """A parsed ASF file.

    metres_per_unit:   0.0254 / `:units length` (1 / 0.45 inch per unit for CMU)
    degrees:           `:units angle deg` (True) or `rad`; applies to `axis` in the file and to AMC values
    root_order:        the root's `order` tokens in lower case, e.g. ("tx", "ty", "tz", "rx", "ry", "rz")
    root_position:     (3,) the root's preset `position`, file units
    bones:             every bone, in file order
    children:          `:hierarchy`: child bone names of "root" and of every bone that has children
    """

    path: str
    metres_per_unit: float
    degrees: bool
    root_order: tuple[str, ...]
    root_position: np.ndarray
    bones: dict[str, AsfBone]
    children: dict[str, tuple[str, ...]]

    def channel_counts(self) -> dict[str, int]:
        """Number of AMC values per line name: the root's `order` and every bone's `dof`."""
        return {"root": len(self.root_order), **{name: len(bone.dofs) for name, bone in self.bones.items()}}

    def nodes(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Node names and parent indices, depth first from `root`, each leaf bone followed by `<bone>_end`."""
        names: list[str] = ["root"]
        parents: list[int] = [-1]
        pending = [(child, 0) for child in reversed(self.children.get("root", ()))]
        while pending:
            bone, parent = pending.pop()
            names.append(bone)
            parents.append(parent)
            index = len(names) - 1
            kids = self.children.get(bone, ())
            if not kids:
                names.append(f"{bone}_end")
                parents.append(index)
            pending.extend((child, index) for child in reversed(kids))
        return tuple(names), tuple(parents)


def _numbers(path: Path, line: int, what: str, tokens: list[str], count: int | None = None) -> np.ndarray:
    """Parse `tokens` as finite floats (exactly `count` of them when given), or raise an EgogrpoError."""
    if count is not None and len(tokens) != count:
        raise EgogrpoError(f"{path}:{line}: {what} needs {count} numbers, found {len(tokens)}")
    try:
        values = np.array([float(token) for token in tokens])
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise EgogrpoError(f"{path}:{line}: non-numeric value {bad!r} in {what}") from None
    if not np.all(np.isfinite(values)):
        raise EgogrpoError(f"{path}:{line}: NaN or infinite value in {what}")
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_asf(path: str | Path) -> AsfSkeleton:
    """Read an ASF skeleton file (see the module docstring for what its fields mean)."""
    path = Path(path)
    length_unit = 1.0
    degrees = True
    root_order: tuple[str, ...] = ("tx", "ty", "tz", "rx", "ry", "rz")
    root_position = np.zeros(3)
    bones: dict[str, AsfBone] = {}
    children: dict[str, tuple[str, ...]] = {}
    has_parent: set[str] = set()
    raw_bones: list[tuple[int, dict[str, tuple[int, list[str]]]]] = []  # (line of `begin`, key -> (line, values))

    section = ""
    bone: dict[str, tuple[int, list[str]]] | None = None
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        # The spec treats commas and parentheses as whitespace; `#` starts a comment.
        tokens = re.sub(r"[(),]", " ", line.split("#", 1)[0]).split()
        if not tokens:
            continue
        key = tokens[0].lower()
        if key.startswith(":"):
            section = key
            continue
        if section == ":units":
            if key == "length":
                length_unit = _numbers(path, number, "units length", tokens[1:], 1)[0]
                if length_unit <= 0:
                    raise EgogrpoError(f"{path}:{number}: units length must be positive, got {length_unit:g}")
            elif key == "angle":
                if len(tokens) != 2 or tokens[1].lower() not in ("deg", "rad"):
                    raise EgogrpoError(f"{path}:{number}: units angle must be 'deg' or 'rad'")
                degrees = tokens[1].lower() == "deg"
        elif section == ":root":
            if key == "order":
                root_order = tuple(t.lower() for t in tokens[1:])
                unknown = [t for t in root_order if t not in _ROOT_DOFS]
                if unknown or len(set(root_order)) != len(root_order):
                    raise EgogrpoError(f"{path}:{number}: bad root order {' '.join(tokens[1:])!r}")
            elif key == "position":
                root_position = _numbers(path, number, "root position", tokens[1:], 3)
            elif key == "orientation":
                if np.any(_numbers(path, number, "root orientation", tokens[1:], 3) != 0):
                    raise EgogrpoError(f"{path}:{number}: a non-zero root orientation is not supported")
        elif section == ":bonedata":
            if key == "begin":
                bone = {}
                raw_bones.append((number, bone))
            elif key == "end":
                bone = None
            elif bone is not None and key in ("name", "direction", "length", "axis", "dof"):
                bone[key] = (number, tokens[1:])
            # Other keys (id, limits and their continuation lines, bodymass, cofmass) are not needed.
        elif section == ":hierarchy":
            if key in ("begin", "end"):
                continue
            parent, kids = tokens[0], tuple(tokens[1:])
            for kid in kids:
                if kid == "root":
                    raise EgogrpoError(f"{path}:{number}: root cannot be a child in :hierarchy")
                if kid in has_parent:
                    raise EgogrpoError(f"{path}:{number}: bone {kid!r} has two parents in :hierarchy")
                has_parent.add(kid)
            children[parent] = children.get(parent, ()) + kids

    angle_scale = np.pi / 180.0 if degrees else 1.0
    for begin_line, fields in raw_bones:
        for required in ("name", "direction", "length"):
            if required not in fields:
                raise EgogrpoError(f"{path}:{begin_line}: bone without {required!r}")
        name = fields["name"][1][0] if fields["name"][1] else ""
        if not name or name == "root" or name in bones:
            raise EgogrpoError(f"{path}:{fields['name'][0]}: missing, reserved or repeated bone name {name!r}")
        direction = _numbers(path, fields["direction"][0], f"{name} direction", fields["direction"][1], 3)
        length = _numbers(path, fields["length"][0], f"{name} length", fields["length"][1], 1)[0]
        axis_line, axis_tokens = fields.get("axis", (begin_line, ["0", "0", "0", "xyz"]))
        axis_order = axis_tokens[-1].lower() if axis_tokens else ""
        if len(axis_tokens) != 4 or sorted(axis_order) != ["x", "y", "z"]:
            raise EgogrpoError(f"{path}:{axis_line}: {name} axis must be three angles and an order such as XYZ")
        axis = _numbers(path, axis_line, f"{name} axis", axis_tokens[:3], 3) * angle_scale
        dof_line, dof_tokens = fields.get("dof", (begin_line, []))
        dofs = tuple(t.lower() for t in dof_tokens)
        if any(d not in _BONE_DOFS for d in dofs) or len(set(dofs)) != len(dofs):
            raise EgogrpoError(f"{path}:{dof_line}: bad dof list {' '.join(dof_tokens)!r} for bone {name!r}")
        bones[name] = AsfBone(name, direction, float(length), axis_order, axis, dofs)

    for parent, kids in children.items():
        for bone_name in (parent, *kids):
            if bone_name != "root" and bone_name not in bones:
                raise EgogrpoError(f"{path}: :hierarchy names bone {bone_name!r}, which :bonedata does not define")
    skeleton = AsfSkeleton(
        path=str(path),
        metres_per_unit=METRES_PER_INCH / length_unit,
        degrees=degrees,
        root_order=root_order,
        root_position=root_position,
        bones=bones,
        children=children,
    )
    node_names = skeleton.nodes()[0]
    unreached = [name for name in bones if name not in node_names]
    if unreached:
        raise EgogrpoError(f"{path}: bone {unreached[0]!r} is not connected to root in :hierarchy")
    if len(set(node_names)) != len(node_names):
        raise EgogrpoError(f"{path}: a bone is named like the end node of a leaf bone ('<bone>_end')")
    return skeleton


def read_asf_amc(
    asf_path: str | Path,
    amc_path: str | Path,
    fps: float = 120.0,
    metres_per_unit: float | None = None,
) -> SkeletonMotion:
    """Read an ASF skeleton and an AMC motion into a `SkeletonMotion` (metres, z-up).

    fps:              the AMC's frame rate (AMC files do not record it; CMU's are 120 fps)
    metres_per_unit:  overrides the ASF's `:units length` (0.0254 / length)
    """
    skeleton = read_asf(asf_path)
    if not (fps > 0 and np.isfinite(fps)):
        raise EgogrpoError(f"{amc_path}: fps must be a positive number, got {fps}")
    scale = skeleton.metres_per_unit if metres_per_unit is None else float(metres_per_unit)
    if not (scale > 0 and np.isfinite(scale)):
        raise EgogrpoError(f"{asf_path}: metres per unit must be a positive number, got {scale}")
    values, degrees = read_amc_values(amc_path, skeleton.channel_counts(), skeleton.degrees)
    angle_scale = np.pi / 180.0 if degrees else 1.0
    num_frames = values["root"].shape[0]

    names, parents = skeleton.nodes()
    offsets = np.zeros((len(names), 3))
    local_rotations = np.broadcast_to(np.eye(3), (num_frames, len(names), 3, 3)).copy()
    translations = np.zeros((num_frames, len(names), 3))

    # Root: rotation about fixed axes in `order`, position = preset + (TX, TY, TZ).
    root = values["root"]
    rotation_columns = [n for n, token in enumerate(skeleton.root_order) if token.startswith("r")]
    axes = "".join(skeleton.root_order[n][1] for n in rotation_columns)
    local_rotations[:, 0] = fixed_axes_euler_matrix(axes, root[:, rotation_columns] * angle_scale)
    translations[:, 0] = skeleton.root_position * scale
    for n, token in enumerate(skeleton.root_order):
        if token.startswith("t"):
            translations[:, 0, "xyz".index(token[1])] += root[:, n] * scale

    for node, name in enumerate(names):
        parent = parents[node]
        if parent > 0:  # a node starts where its parent bone ends
            offsets[node] = skeleton.bones[names[parent]].vector * scale
        bone = skeleton.bones.get(name)
        if bone is None:
            continue  # the root (done above), or an end node: the identity, so it carries its bone's rotation
        rotation_columns = [n for n, dof in enumerate(bone.dofs) if dof.startswith("r")]
        if not rotation_columns:
            continue
        axes = "".join(bone.dofs[n][1] for n in rotation_columns)
        dof_rotation = fixed_axes_euler_matrix(axes, values[name][:, rotation_columns] * angle_scale)
        local_rotations[:, node] = conjugate(bone.frame, dof_rotation)

    return skeleton_motion_from_y_up(
        names, parents, offsets, local_rotations, translations, fps, source=f"{amc_path} (skeleton {asf_path})"
    )


def read_amc_values(
    path: str | Path, channel_counts: dict[str, int], degrees: bool = True
) -> tuple[dict[str, np.ndarray], bool]:
    """The values of an AMC file: {line name: (T, count) array in file units}, and whether angles are degrees.

    channel_counts:  values per line name (`AsfSkeleton.channel_counts()`); every name with a
                     non-zero count must appear once in every frame, and no other name may appear
    degrees:         the ASF's angle unit, unless the AMC header says `:DEGREES` or `:RADIANS`

    A well-formed file is read in one go (all tokens at once, when every frame lists the same
    bones in the same order, as CMU's do); anything else is read line by line, which either
    reads it (bones in another order per frame) or raises an EgogrpoError naming the line.
    """
    path = Path(path)
    text = read_text(path)
    start, number = 0, 1  # where the current line starts, and its 1-based number
    while True:
        if start >= len(text):
            raise EgogrpoError(f"{path}: no frames")
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        tokens = text[start:end].split("#", 1)[0].split()
        if tokens and tokens[0].isdigit():
            break  # the first frame number
        if tokens and not tokens[0].startswith(":"):
            raise EgogrpoError(f"{path}:{number}: expected a header line or a frame number, found {tokens[0]!r}")
        if tokens and tokens[0].upper() in (":DEGREES", ":RADIANS"):
            degrees = tokens[0].upper() == ":DEGREES"
        start, number = end + 1, number + 1

    values = _read_amc_fast(text[start:], channel_counts)
    if values is None:
        values = _read_amc_by_line(path, text.splitlines(), number - 1, channel_counts)
    return values, degrees


def _read_amc_fast(body: str, channel_counts: dict[str, int]) -> dict[str, np.ndarray] | None:
    """Frames all laid out like the first (its frame number, then the same bone lines): all tokens at once.

    body:  the text from the first frame number on. Returns None when the frames are not laid out
    that way or hold any bad value; the line-by-line reader then says what and where.
    """
    if "#" in body:
        body = re.sub(r"#[^\n]*", "", body)
    layout: list[str] = []  # the bone names of the first frame, in order
    for line in body.split("\n", 1000)[1:1000]:
        tokens = line.split()
        if tokens and tokens[0].isdigit():
            break
        if tokens:
            layout.append(tokens[0])
    expected = {name for name, count in channel_counts.items() if count > 0}
    if len(set(layout)) != len(layout) or not expected <= set(layout) <= set(channel_counts):
        return None

    tokens = np.array(body.split(), dtype=object)
    per_frame = 1 + sum(1 + channel_counts[name] for name in layout)
    if tokens.size % per_frame:
        return None
    table = tokens.reshape(-1, per_frame)  # one row per frame
    if not all(token.isdigit() for token in table[:, 0]):
        return None
    values: dict[str, np.ndarray] = {}
    column = 1
    for name in layout:
        count = channel_counts[name]
        if not np.all(table[:, column] == name):
            return None
        try:
            values[name] = table[:, column + 1 : column + 1 + count].astype(np.float64)
        except ValueError:
            return None
        if not np.all(np.isfinite(values[name])):
            return None
        column += 1 + count
    return values


def _read_amc_by_line(
    path: Path, lines: list[str], first_frame: int, channel_counts: dict[str, int]
) -> dict[str, np.ndarray]:
    """Read the frames one line at a time, raising an EgogrpoError at the first problem."""
    expected = [name for name, count in channel_counts.items() if count > 0]
    rows: dict[str, list[np.ndarray]] = {name: [] for name in channel_counts}
    frame_line = 0
    seen: set[str] = set()

    def finish_frame() -> None:
        missing = [name for name in expected if name not in seen]
        if missing:
            raise EgogrpoError(
                f"{path}:{frame_line}: frame {lines[frame_line - 1].split()[0]} has no line for bone "
                f"{missing[0]!r} (truncated file?)"
            )

    for index in range(first_frame, len(lines)):
        number = index + 1
        tokens = lines[index].split("#", 1)[0].split()
        if not tokens:
            continue
        if tokens[0].isdigit():
            if len(tokens) != 1:
                raise EgogrpoError(f"{path}:{number}: a frame number line must hold only the frame number")
            if frame_line:
                finish_frame()
            frame_line, seen = number, set()
            continue
        name = tokens[0]
        if name not in channel_counts:
            raise EgogrpoError(f"{path}:{number}: bone {name!r} is not in the ASF skeleton")
        if name in seen:
            raise EgogrpoError(f"{path}:{number}: bone {name!r} appears twice in one frame")
        seen.add(name)
        count = channel_counts[name]
        if len(tokens) - 1 != count:
            raise EgogrpoError(f"{path}:{number}: bone {name!r} has {len(tokens) - 1} values, expected {count}")
        rows[name].append(_numbers(path, number, f"bone {name!r}", tokens[1:]))
    finish_frame()
    return {name: np.array(rows[name]).reshape(-1, channel_counts[name]) for name in expected}
