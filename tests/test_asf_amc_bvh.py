"""ASF/AMC and BVH readers: CMU 01_01 read both ways agrees, units and frames, hand-worked cases, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egogrpo.data.asf_amc import read_asf, read_asf_amc
from egogrpo.data.bvh import read_bvh
from egogrpo.data.euler import euler_matrix, fixed_axes_euler_matrix
from egogrpo.data.skeleton_motion import Y_UP_TO_Z_UP, SkeletonMotion
from egogrpo.errors import EgogrpoError

CMU_METRES_PER_UNIT = 0.0254 / 0.45

#: ASF bone (node at the bone's start) -> the CMU BVH joint at the same place with the same rotation.
ASF_TO_BVH = {
    "root": "Hips",
    "lowerback": "LowerBack",
    "upperback": "Spine",
    "thorax": "Spine1",
    "lowerneck": "Neck",
    "upperneck": "Neck1",
    "head": "Head",
    "head_end": "Head_end",
}
for _side, _bvh_side in (("l", "Left"), ("r", "Right")):
    ASF_TO_BVH |= {
        f"{_side}hipjoint": f"{_side.upper()}HipJoint",
        f"{_side}femur": f"{_bvh_side}UpLeg",
        f"{_side}tibia": f"{_bvh_side}Leg",
        f"{_side}foot": f"{_bvh_side}Foot",
        f"{_side}toes": f"{_bvh_side}ToeBase",
        f"{_side}toes_end": f"{_bvh_side}ToeBase_end",
        f"{_side}clavicle": f"{_bvh_side}Shoulder",
        f"{_side}humerus": f"{_bvh_side}Arm",
        f"{_side}radius": f"{_bvh_side}ForeArm",
        f"{_side}wrist": f"{_bvh_side}Hand",
        f"{_side}hand": f"{_bvh_side}FingerBase",
        f"{_side}fingers": f"{_side.upper()}Fingers",
        f"{_side}fingers_end": f"{_side.upper()}Fingers_end",
        f"{_side}thumb": f"{_side.upper()}Thumb",
        f"{_side}thumb_end": f"{_side.upper()}Thumb_end",
    }


# --- the shared CMU data, each file parsed once -------------------------------------------------


@pytest.fixture(scope="module")
def cmu_amc(sample_data: Path) -> SkeletonMotion:
    subject = sample_data / "cmu" / "asfamc" / "subjects" / "01"
    return read_asf_amc(subject / "01.asf", subject / "01_01.amc", fps=120.0)


@pytest.fixture(scope="module")
def cmu_bvh(sample_data: Path) -> SkeletonMotion:
    return read_bvh(sample_data / "cmu" / "bvh" / "01_01.bvh")


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle of aᵀb for rotation matrices (..., 3, 3), degrees."""
    cos = (np.einsum("...ji,...ji->...", a, b) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _ancestors(motion: SkeletonMotion, name: str) -> set[str]:
    names, node = set(), motion.index(name)
    while node >= 0:
        names.add(motion.names[node])
        node = motion.parents[node]
    return names


def test_asf_amc_and_bvh_of_01_01_agree(cmu_amc: SkeletonMotion, cmu_bvh: SkeletonMotion) -> None:
    assert cmu_bvh.num_frames == cmu_amc.num_frames + 1  # the BVH starts with an extra T-pose frame
    bvh_positions, bvh_rotations = cmu_bvh.positions[1:], cmu_bvh.rotations[1:]
    assert set(ASF_TO_BVH) == set(cmu_amc.names)
    assert set(ASF_TO_BVH.values()) == set(cmu_bvh.names)

    # CMU's BVH drops two ASF segments: its Neck and Shoulders start where the thorax starts (ASF:
    # where it ends), and its FingerBase and Thumb start where the wrist starts. Take those
    # segments out of the ASF positions; everything else is the same place.
    def amc_segment(start: str, end: str) -> np.ndarray:
        return cmu_amc.positions[:, cmu_amc.index(end)] - cmu_amc.positions[:, cmu_amc.index(start)]

    thorax = amc_segment("thorax", "lowerneck")
    assert np.allclose(np.linalg.norm(thorax, axis=-1), 2.06488 * CMU_METRES_PER_UNIT)
    worst_mm, worst_deg = 0.0, 0.0
    for asf_name, bvh_name in ASF_TO_BVH.items():
        expected = cmu_amc.positions[:, cmu_amc.index(asf_name)].copy()
        ancestors = _ancestors(cmu_amc, asf_name)
        if ancestors & {"lowerneck", "lclavicle", "rclavicle"}:
            expected -= thorax
        for side in "lr":
            if ancestors & {f"{side}hand", f"{side}thumb"}:
                expected -= amc_segment(f"{side}wrist", f"{side}hand")
        error_mm = 1000 * np.linalg.norm(expected - bvh_positions[:, cmu_bvh.index(bvh_name)], axis=-1).max()
        angle = _angle_deg(cmu_amc.rotations[:, cmu_amc.index(asf_name)], bvh_rotations[:, cmu_bvh.index(bvh_name)])
        worst_mm, worst_deg = max(worst_mm, error_mm), max(worst_deg, angle.max())
    print(f"\n01_01 ASF/AMC vs BVH over {cmu_amc.num_frames} frames: max {worst_mm:.4f} mm, max {worst_deg:.5f} deg")
    assert worst_mm < 0.1  # the BVH's numbers are rounded to 4 decimals
    assert worst_deg < 0.01

    # Without the correction the BVH's head is one thorax (11.7 cm) lower: the data's own quirk.
    head_gap = cmu_amc.positions[:, cmu_amc.index("head")] - bvh_positions[:, cmu_bvh.index("Head")]
    assert np.allclose(head_gap, thorax, atol=1e-4)


def test_cmu_units_frames_and_rest_pose(cmu_amc: SkeletonMotion, cmu_bvh: SkeletonMotion, sample_data: Path) -> None:
    assert read_asf(sample_data / "cmu/asfamc/subjects/01/01.asf").metres_per_unit == pytest.approx(0.056444, abs=1e-6)
    assert cmu_amc.fps == 120.0 and cmu_bvh.fps == 120.0  # BVH: Frame Time .0083333
    assert cmu_amc.num_frames == 2751 and cmu_bvh.num_frames == 2752

    amc_names = ("lfemur", "ltibia", "lfoot", "rfoot", "head", "lhumerus", "rfemur")
    bvh_names = ("LeftUpLeg", "LeftLeg", "LeftFoot", "RightFoot", "Head", "LeftArm", "RightUpLeg")
    # The BVH lacks the thorax segment (see above), so its skeleton is shorter.
    for motion, names, (low, high) in ((cmu_amc, amc_names, (1.5, 1.9)), (cmu_bvh, bvh_names, (1.3, 1.9))):
        hip, knee, ankle, right_ankle, head, left_shoulder, right_hip = (motion.index(n) for n in names)
        rest = motion.rest_positions
        assert low < np.ptp(rest[:, 2]) < high
        assert np.allclose(rest[0], 0.0)
        for upper, lower in ((hip, knee), (knee, ankle)):  # legs point down (−z), splayed 20° outwards
            segment = rest[lower] - rest[upper]
            assert segment[2] < -0.9 * np.linalg.norm(segment)
        assert rest[hip, 0] > 0 and rest[left_shoulder, 0] > 0 and rest[right_hip, 0] < 0
        assert rest[head, 2] > 0.3
        # z-up in motion: the head well above both feet in every frame, the floor near z = 0.
        z = motion.positions[..., 2]
        assert np.all(z[:, head] > np.maximum(z[:, ankle], z[:, right_ankle]) + 0.5)
        assert -0.15 < z.min() < 0.15

    # Segments at rest are the files' numbers in CMU units, turned z-up: ASF lfemur is
    # `direction 0.34202 -0.939693 0, length 7.1578`; the BVH's LeftLeg has `OFFSET 2.44811 -6.72613 0`
    # (its units were inferred: "auto").
    thigh_asf = cmu_amc.rest_positions[cmu_amc.index("ltibia")] - cmu_amc.rest_positions[cmu_amc.index("lfemur")]
    thigh_bvh = cmu_bvh.rest_positions[cmu_bvh.index("LeftLeg")] - cmu_bvh.rest_positions[cmu_bvh.index("LeftUpLeg")]
    assert np.allclose(thigh_asf, _z_up([0.34202, -0.939693, 0.0]) * 7.1578 * CMU_METRES_PER_UNIT)
    assert np.allclose(thigh_bvh, _z_up([2.44811, -6.72613, 0.0]) * CMU_METRES_PER_UNIT)


@pytest.mark.slow
def test_all_cmu_clips_read(sample_data: Path) -> None:
    """Every shared AMC clip (01_01 is read by the fixture) parses into a plausible motion."""
    total = 2751
    for amc in sorted((sample_data / "cmu" / "asfamc" / "subjects").glob("*/*.amc")):
        if amc.name == "01_01.amc":
            continue
        motion = read_asf_amc(amc.parent / f"{amc.parent.name}.asf", amc)
        total += motion.num_frames
        assert np.all(np.isfinite(motion.positions)) and np.all(np.isfinite(motion.rotations))
        assert 1.5 < np.ptp(motion.rest_positions[:, 2]) < 1.9
        z = motion.positions[..., 2]
        lower_foot = np.minimum(z[:, motion.index("lfoot")], z[:, motion.index("rfoot")])
        assert np.all(z[:, motion.index("head")] > lower_foot)  # even while hanging from the bars
    assert total == 77_754


# --- hand-worked synthetic cases ------------------------------------------------------------------

# Two bones (metres: `length 0.0254` makes one unit one metre): `upper` along +x, 2 long, frame
# identity; `lower` along +x, 1 long, with axis 0 0 90 (its frame is Rz(90°)) and one dof rx.
TWO_BONE_ASF = """\
# a hand-written skeleton
:version 1.10
:name two_bones
:units
  mass 1.0
  length 0.0254
  angle deg
:documentation
  two bones
:root
  order TX TY TZ RX RY RZ
  axis XYZ
  position 0 0 0
  orientation 0 0 0
:bonedata
  begin
    id 1
    name upper
    direction 1 0 0
    length 2
    axis 0 0 0 XYZ
    dof rx ry rz
    limits (-180.0 180.0)
           (-180.0 180.0)
           (-180.0 180.0)
  end
  begin
    id 2
    name lower
    direction 1 0 0
    length 1
    axis 0 0 90 XYZ
    dof rx
    limits (-180.0 180.0)
  end
:hierarchy
  begin
    root upper
    upper lower
  end
"""


def _amc(frames: list[dict[str, list[float]]]) -> str:
    lines = [":FULLY-SPECIFIED", ":DEGREES"]
    for number, frame in enumerate(frames, start=1):
        lines.append(str(number))
        lines += [f"{name} {' '.join(format(float(v), '.17g') for v in values)}" for name, values in frame.items()]
    return "\r\n".join(lines) + "\r\n"  # CMU's files have CRLF line endings


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def _z_up(v: np.ndarray) -> np.ndarray:
    return np.asarray(v) @ Y_UP_TO_Z_UP.T


def test_two_bone_chain_by_hand(tmp_path: Path) -> None:
    asf = _write(tmp_path, "two.asf", TWO_BONE_ASF)
    frames = [
        {"root": [1, 2, 3, 0, 0, 0], "upper": [0, 0, 0], "lower": [0]},  # rest, moved to (1, 2, 3)
        {"root": [1, 2, 3, 0, 0, 0], "upper": [0, 0, 90], "lower": [0]},  # upper turned 90° about z
        # lower's dof rx turns about its frame's x axis, which Rz(90°) makes the world's y axis:
        {"root": [1, 2, 3, 0, 0, 0], "upper": [0, 0, 0], "lower": [90]},
    ]
    motion = read_asf_amc(asf, _write(tmp_path, "two.amc", _amc(frames)), fps=60.0)
    assert motion.names == ("root", "upper", "lower", "lower_end")
    assert motion.parents == (-1, 0, 1, 2)
    assert motion.fps == 60.0
    assert np.allclose(motion.rest_positions, _z_up([[0, 0, 0], [0, 0, 0], [2, 0, 0], [3, 0, 0]]))
    y_up_expected = [
        [[1, 2, 3], [1, 2, 3], [3, 2, 3], [4, 2, 3]],
        [[1, 2, 3], [1, 2, 3], [1, 4, 3], [1, 5, 3]],
        [[1, 2, 3], [1, 2, 3], [3, 2, 3], [3, 2, 2]],  # Ry(90°) takes +x to −z
    ]
    assert np.allclose(motion.positions, _z_up(y_up_expected))
    assert np.allclose(motion.rotations[0], np.eye(3))
    # The end node carries its bone's rotation.
    assert np.allclose(motion.rotations[:, 3], motion.rotations[:, 2])


def test_asf_translation_dofs_are_read_and_ignored(tmp_path: Path) -> None:
    asf = _write(tmp_path, "two.asf", TWO_BONE_ASF.replace("dof rx\n", "dof tx rx l\n"))
    frames = [{"root": [1, 2, 3, 0, 0, 0], "upper": [0, 0, 0], "lower": [7, 90, 9]}]
    motion = read_asf_amc(asf, _write(tmp_path, "two.amc", _amc(frames)))
    assert np.allclose(motion.positions[0], _z_up([[1, 2, 3], [1, 2, 3], [3, 2, 3], [3, 2, 2]]))


def test_asf_amc_against_scipy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    asf_text = TWO_BONE_ASF.replace("axis 0 0 90 XYZ", "axis 30 -40 75 XYZ").replace(
        "direction 1 0 0\n    length 1", "direction 0.6 0 0.8\n    length 1"
    )
    asf = _write(tmp_path, "two.asf", asf_text)
    values = rng.uniform(-170, 170, size=(5, 10))
    frames = [{"root": list(v[:6]), "upper": list(v[6:9]), "lower": [v[9]]} for v in values]
    motion = read_asf_amc(asf, _write(tmp_path, "two.amc", _amc(frames)), metres_per_unit=0.5)

    for t, v in enumerate(values):
        # ASF: rotations about fixed axes in listed order = scipy's extrinsic (lower-case) sequence.
        root = Rotation.from_euler("xyz", v[3:6], degrees=True)
        upper = root * Rotation.from_euler("xyz", v[6:9], degrees=True)
        frame = Rotation.from_euler("xyz", [30, -40, 75], degrees=True)
        lower = upper * frame * Rotation.from_euler("x", v[9], degrees=True) * frame.inv()
        root_position = 0.5 * v[:3]
        lower_start = root_position + upper.apply([1.0, 0.0, 0.0])  # upper: 2 units of 0.5 m
        lower_end = lower_start + lower.apply([0.3, 0.0, 0.4])
        expected = _z_up([root_position, root_position, lower_start, lower_end])
        assert np.allclose(motion.positions[t], expected, atol=1e-12)
        for node, rotation in ((0, root), (1, upper), (2, lower), (3, lower)):
            assert np.allclose(motion.rotations[t, node], Y_UP_TO_Z_UP @ rotation.as_matrix() @ Y_UP_TO_Z_UP.T)


def test_amc_bones_in_another_order_per_frame(tmp_path: Path) -> None:
    """Frames need not list bones in the same order (the line-by-line reader takes those)."""
    asf = _write(tmp_path, "two.asf", TWO_BONE_ASF)
    frames = [
        {"root": [0, 0, 0, 10, 20, 30], "upper": [1, 2, 3], "lower": [4]},
        {"lower": [5], "root": [1, 1, 1, 11, 21, 31], "upper": [6, 7, 8]},
    ]
    mixed = read_asf_amc(asf, _write(tmp_path, "mixed.amc", _amc(frames)))
    ordered = read_asf_amc(asf, _write(tmp_path, "ordered.amc", _amc([dict(sorted(f.items())) for f in frames])))
    assert np.allclose(mixed.positions, ordered.positions) and np.allclose(mixed.rotations, ordered.rotations)


# Root with an unusual channel order; a child with position channels of its own; End Sites.
SMALL_BVH = """\
HIERARCHY
ROOT Pelvis
{
  OFFSET 0.5 0 0
  CHANNELS 6 Xposition Yposition Zposition Yrotation Xrotation Zrotation
  JOINT Thigh
  {
    OFFSET 0 -1 0
    CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 0 2
    }
  }
  JOINT Chest
  {
    OFFSET 0 1 0
    CHANNELS 3 Xrotation Zrotation Yrotation
    End Site
    {
      OFFSET 0 0.5 0
    }
  }
}
MOTION
Frames: {frames}
Frame Time: 0.02
{rows}
"""


def _bvh(rows: np.ndarray | list[list[float]]) -> str:
    return SMALL_BVH.replace("{frames}", str(len(rows))).replace(
        "{rows}", "\n".join(" ".join(f"{x:.6f}" for x in row) for row in rows)
    )


def test_bvh_by_hand(tmp_path: Path) -> None:
    rows = [[0.0] * 15, [0, 0, 0, 90] + [0.0] * 11]  # rest; then the root turned 90° about y
    motion = read_bvh(_write(tmp_path, "small.bvh", _bvh(rows)), units="m")
    assert motion.names == ("Pelvis", "Thigh", "Thigh_end", "Chest", "Chest_end")
    assert motion.parents == (-1, 0, 1, 0, 3)
    assert motion.fps == 50.0
    assert np.allclose(motion.rest_positions, _z_up([[0, 0, 0], [0, -1, 0], [0, -1, 2], [0, 1, 0], [0, 1.5, 0]]))
    # Rest frame: the root sits at its OFFSET (0.5, 0, 0).
    assert np.allclose(
        motion.positions[0], _z_up([[0.5, 0, 0], [0.5, -1, 0], [0.5, -1, 2], [0.5, 1, 0], [0.5, 1.5, 0]])
    )
    # Ry(90°) takes +z to +x: the thigh's end site (0, 0, 2) below the thigh swings to (2, 0, 0).
    assert np.allclose(motion.positions[1, 2], _z_up([2.5, -1, 0]))
    assert np.allclose(motion.rotations[0], np.eye(3))


def test_bvh_against_scipy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    columns = [
        rng.uniform(-2, 2, (4, 3)),  # Pelvis X, Y, Z position
        rng.uniform(-170, 170, (4, 3)),  # Pelvis Y, X, Z rotation
        rng.uniform(-1, 1, (4, 3)),  # Thigh X, Y, Z position
        rng.uniform(-170, 170, (4, 6)),  # Thigh Z, X, Y and Chest X, Z, Y rotation
    ]
    rows = np.concatenate(columns, axis=1)
    motion = read_bvh(_write(tmp_path, "small.bvh", _bvh(rows)), units=0.01)
    for t, row in enumerate(np.round(rows, 6)):
        # BVH: rotations about moving axes in channel order = scipy's intrinsic (upper-case) sequence.
        pelvis = Rotation.from_euler("YXZ", row[3:6], degrees=True)
        thigh = pelvis * Rotation.from_euler("ZXY", row[9:12], degrees=True)
        chest = pelvis * Rotation.from_euler("XZY", row[12:15], degrees=True)
        pelvis_at = np.array([0.5, 0, 0]) + row[0:3]
        thigh_at = pelvis_at + pelvis.apply(np.array([0, -1, 0]) + row[6:9])
        chest_at = pelvis_at + pelvis.apply([0, 1, 0])
        thigh_end = thigh_at + thigh.apply([0, 0, 2])
        chest_end = chest_at + chest.apply([0, 0.5, 0])
        expected = 0.01 * np.array([pelvis_at, thigh_at, thigh_end, chest_at, chest_end])
        assert np.allclose(motion.positions[t], _z_up(expected), atol=1e-12)
        for node, rotation in ((0, pelvis), (1, thigh), (2, thigh), (3, chest), (4, chest)):
            assert np.allclose(motion.rotations[t, node], Y_UP_TO_Z_UP @ rotation.as_matrix() @ Y_UP_TO_Z_UP.T)


def _bvh_of_height(head: float, foot: float) -> str:
    """A three-joint BVH whose rest skeleton spans `foot` below to `head` above the root (file units, y-up)."""
    return (
        f"HIERARCHY\nROOT Hips\n{{\n OFFSET 0 0 0\n CHANNELS 3 Zrotation Xrotation Yrotation\n"
        f" JOINT Head\n {{\n  OFFSET 0 {head} 0\n  CHANNELS 1 Xrotation\n  End Site\n  {{\n   OFFSET 0 0 0\n  }}\n }}\n"
        f" JOINT Foot\n {{\n  OFFSET 0 {-foot} 0\n  CHANNELS 0\n }}\n}}\n"
        f"MOTION\nFrames: 1\nFrame Time: 0.0333333\n0 0 0 0\n"
    )


@pytest.mark.parametrize(
    ("head", "foot", "metres_per_unit"),
    [(0.7, 1.0, 1.0), (70, 100, 0.01), (700, 1000, 0.001), (27, 40, 0.0254), (12, 18, CMU_METRES_PER_UNIT)],
)
def test_bvh_auto_units(tmp_path: Path, head: float, foot: float, metres_per_unit: float) -> None:
    path = _write(tmp_path, "tall.bvh", _bvh_of_height(head, foot))
    motion = read_bvh(path)
    assert motion.fps == 30.0
    assert np.ptp(motion.rest_positions[:, 2]) == pytest.approx((head + foot) * metres_per_unit)
    assert motion.names == ("Hips", "Head", "Head_end", "Foot")
    assert np.allclose(read_bvh(path, units=metres_per_unit).positions, motion.positions)


def test_euler_helpers_against_scipy() -> None:
    angles = np.random.default_rng(2).uniform(-np.pi, np.pi, (7, 3))
    for order in ("xyz", "zyx", "yxz", "zxy"):
        intrinsic = Rotation.from_euler(order.upper(), angles).as_matrix()
        extrinsic = Rotation.from_euler(order, angles).as_matrix()
        assert np.allclose(euler_matrix(order, angles), intrinsic)
        assert np.allclose(fixed_axes_euler_matrix(order, angles), extrinsic)
    assert np.allclose(euler_matrix("", np.zeros((4, 0))), np.eye(3))


# --- bad input -----------------------------------------------------------------------------------


def _one_line_error(path: Path, call, *args, **kwargs) -> str:
    with pytest.raises(EgogrpoError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and path.name in message, message
    return message


GOOD_FRAMES = [
    {"root": [0, 0, 0, 1, 2, 3], "upper": [1, 2, 3], "lower": [4]},
    {"root": [0, 0, 0, 1, 2, 3], "upper": [1, 2, 3], "lower": [5]},
]


@pytest.mark.parametrize(
    ("case", "amc_text", "expected"),
    [
        ("truncated frame", _amc(GOOD_FRAMES).rsplit("lower", 1)[0], "no line for bone 'lower'"),
        ("too few values", _amc(GOOD_FRAMES).replace("upper 1 2 3\r\nlower 5", "upper 1 2\r\nlower 5"), "2 values"),
        ("non-numeric", _amc(GOOD_FRAMES).replace("lower 5", "lower five"), "non-numeric value 'five'"),
        ("NaN", _amc(GOOD_FRAMES).replace("lower 5", "lower nan"), "NaN"),
        ("inf", _amc(GOOD_FRAMES).replace("lower 5", "lower -inf"), "infinite"),
        ("unknown bone", _amc(GOOD_FRAMES).replace("lower 5", "lower 5\r\nelbow 1"), "'elbow' is not in the ASF"),
        ("no frames", ":FULLY-SPECIFIED\r\n:DEGREES\r\n", "no frames"),
    ],
)
def test_bad_amc(tmp_path: Path, case: str, amc_text: str, expected: str) -> None:
    asf = _write(tmp_path, "two.asf", TWO_BONE_ASF)
    amc = _write(tmp_path, "bad.amc", amc_text)
    assert expected in _one_line_error(amc, read_asf_amc, asf, amc), case


def test_bad_amc_line_numbers(tmp_path: Path) -> None:
    asf = _write(tmp_path, "two.asf", TWO_BONE_ASF)
    amc = _write(tmp_path, "bad.amc", _amc(GOOD_FRAMES).replace("lower 5", "lower 5x"))
    assert "bad.amc:10:" in _one_line_error(amc, read_asf_amc, asf, amc)


def test_truncated_real_amc(tmp_path: Path, sample_data: Path) -> None:
    subject = sample_data / "cmu" / "asfamc" / "subjects" / "01"
    text = (subject / "01_01.amc").read_bytes()
    cut = text[: text.index(b"\r\n201\r\n") + 200]  # 200 whole frames, then part of frame 201
    amc = tmp_path / "01_01_cut.amc"
    amc.write_bytes(cut)
    message = _one_line_error(amc, read_asf_amc, subject / "01.asf", amc)
    assert "01_01_cut.amc:6004: frame 201 has no line for bone" in message


def test_missing_files(tmp_path: Path) -> None:
    asf = _write(tmp_path, "two.asf", TWO_BONE_ASF)
    missing = tmp_path / "nowhere.amc"
    _one_line_error(missing, read_asf_amc, asf, missing)
    _one_line_error(tmp_path / "nowhere.asf", read_asf_amc, tmp_path / "nowhere.asf", missing)
    _one_line_error(tmp_path / "nowhere.bvh", read_bvh, tmp_path / "nowhere.bvh")


@pytest.mark.parametrize(
    ("case", "edit", "expected"),
    [
        ("row too long", lambda t: t.replace("\n0.0 ", "\n0.0 0.0 ", 1), "16 values in a frame"),
        ("truncated", lambda t: t.rsplit(" ", 5)[0], "truncated file: declared 3 frames, found 2"),
        ("missing rows", lambda t: t.rsplit("\n", 2)[0], "declared 3 frames, found 2"),
        ("no MOTION", lambda t: t.split("MOTION")[0], "missing MOTION"),
        ("no HIERARCHY", lambda t: t.replace("HIERARCHY\n", ""), "missing HIERARCHY"),
        ("non-numeric", lambda t: t.replace("\n0.0 ", "\nabc ", 1), "non-numeric value 'abc'"),
        ("NaN", lambda t: t.replace("\n0.0 ", "\nnan ", 1), "NaN"),
        ("zero frame time", lambda t: t.replace("Frame Time: 0.02", "Frame Time: 0"), "must be positive"),
        ("no frame time", lambda t: t.replace("Frame Time: 0.02\n", ""), "expected 'Frame Time:'"),
        ("bad channel", lambda t: t.replace("Xrotation Zrotation", "Xrotation Wrotation"), "bad channels"),
        ("unclosed", lambda t: t.replace("}\nMOTION", "MOTION"), "HIERARCHY ends early"),
    ],
)
def test_bad_bvh(tmp_path: Path, case: str, edit, expected: str) -> None:
    text = _bvh([[0.0] * 15] * 3).replace("0.000000", "0.0")
    read_bvh(_write(tmp_path, "good.bvh", text), units="m")  # the unedited file reads
    path = _write(tmp_path, "bad.bvh", edit(text))
    assert expected in _one_line_error(path, read_bvh, path, units="m"), case


def test_bad_units(tmp_path: Path) -> None:
    path = _write(tmp_path, "small.bvh", _bvh([[0.0] * 15]))
    assert "unknown units 'furlong'" in _one_line_error(path, read_bvh, path, units="furlong")
    assert "positive" in _one_line_error(path, read_bvh, path, units=-1.0)
    # 2.5 units tall: 2.5 m, 2.5 cm, 6 cm (inch), 14 cm (cmu) … none is a human.
    assert "cannot infer units" in _one_line_error(path, read_bvh, path)
    asf = _write(tmp_path, "two.asf", TWO_BONE_ASF)
    amc = _write(tmp_path, "two.amc", _amc(GOOD_FRAMES))
    assert "fps" in _one_line_error(amc, read_asf_amc, asf, amc, fps=0.0)
