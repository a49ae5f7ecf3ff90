"""Free corpora through `egogrpo preprocess`: each one's joint naming, hierarchy, units and frame rate, and its licence.

Every fixture is synthetic, written here with the corpus's joint names and layout (no data from the
corpora): a person standing with the left arm held out sideways and the right arm hanging, the left
elbow and the head turning. The checks are anatomical, so they fail when a naming is not
recognised (the command exits 1), when sides are swapped (the raised wrist lands on the right) or
when units or frame rates are misread (heights, lengths and frame counts go wrong).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_preprocess_cli import world_joints

from egogrpo.body.topology import BODY_JOINT_NAMES
from egogrpo.data.hdf5_schema import MotionFile, partial_path_for

J = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}
SECONDS = 2.0  # clip length: 60 frames at 30 fps after the first is dropped
CMU_UNIT = 0.0254 / 0.45  # metres per CMU length unit

# --- BVH fixtures ------------------------------------------------------------------------------------

#: A bone: (name, parent, offset in metres (y-up, the character faces +z, its left is +x), rotation order).
Bone = tuple[str, str | None, tuple[float, float, float], str]


def _fill(text: str | None, full: str) -> str | None:
    """ "{S}" → Left/Right, "{L}" → L/R, "{s}" → l/r in a bone name (`full` is "Left" or "Right")."""
    if text is None:
        return None
    return text.replace("{S}", full).replace("{L}", full[0]).replace("{s}", full[0].lower())


def _side(bones: list[Bone]) -> list[Bone]:
    """Each bone whose name holds "{S}", "{L}" or "{s}" for both sides; the right one mirrored."""
    out: list[Bone] = []
    for name, parent, offset, order in bones:
        if not any(key in name for key in ("{S}", "{L}", "{s}")):
            out.append((name, parent, offset, order))
            continue
        for full, sign in (("Left", 1.0), ("Right", -1.0)):
            mirrored = (sign * offset[0], offset[1], offset[2])
            out.append((_fill(name, full), _fill(parent, full), mirrored, order))  # type: ignore[arg-type]
    return out


def _depth_first(bones: list[Bone]) -> list[Bone]:
    """The bones in the order a BVH file lists them (and its channels): depth first from the root."""
    children: dict[str | None, list[Bone]] = {}
    for bone in bones:
        children.setdefault(bone[1], []).append(bone)
    order, pending = [], [children[None][0]]
    while pending:
        bone = pending.pop()
        order.append(bone)
        pending += reversed(children.get(bone[0], []))
    return order


def _bvh_hierarchy(
    bones: list[Bone], scale: float, root_order: str, end_sites: dict[str, tuple[float, float, float]] | None = None
) -> list[str]:
    """HIERARCHY lines; `scale` file units per metre; leaves get an End Site 5 cm further along (or `end_sites[leaf]`)."""
    children: dict[str | None, list[Bone]] = {}
    for bone in bones:
        children.setdefault(bone[1], []).append(bone)

    def channels(order: str) -> str:
        return " ".join(f"{axis.upper()}rotation" for axis in order)

    def node(bone: Bone, depth: int) -> list[str]:
        name, parent, offset, order = bone
        pad = "\t" * depth
        head = f"{pad}ROOT {name}" if parent is None else f"{pad}JOINT {name}"
        chans = f"6 Xposition Yposition Zposition {channels(root_order)}" if parent is None else f"3 {channels(order)}"
        lines = [
            head,
            f"{pad}{{",
            f"{pad}\tOFFSET {' '.join(f'{v * scale:.5f}' for v in offset)}",
            f"{pad}\tCHANNELS {chans}",
        ]
        kids = children.get(name, [])
        for kid in kids:
            lines += node(kid, depth + 1)
        if not kids:
            tip = np.array(offset) / max(np.linalg.norm(offset), 1e-9) * 0.05
            if end_sites and name in end_sites:
                tip = np.array(end_sites[name])
            lines += [
                f"{pad}\tEnd Site",
                f"{pad}\t{{",
                f"{pad}\t\tOFFSET {' '.join(f'{v * scale:.5f}' for v in tip)}",
                f"{pad}\t}}",
            ]
        return [*lines, f"{pad}}}"]

    return ["HIERARCHY", *node(children[None][0], 0)]


def _pose_angles(t: float, roles: dict[str, str]) -> dict[str, dict[str, float]]:
    """Joint → {axis: degrees} at time t: the right arm hangs, the left elbow swings forward, the head turns."""
    return {
        roles["right_arm"]: {"z": 90.0},  # the right upper arm from pointing −x (T-pose) to down
        roles["left_elbow"]: {"y": -35.0 * (1 - np.cos(2 * np.pi * t))},  # the left forearm swings forward (+z)
        roles["neck"]: {"y": 15.0 * np.sin(2 * np.pi * t)},
    }


def write_bvh(
    path: Path,
    bones: list[Bone],
    roles: dict[str, str],
    fps: float,
    scale: float,
    root_order: str = "zyx",
    bind_frame: bool = False,
    end_sites: dict[str, tuple[float, float, float]] | None = None,
    frame_time: float | None = None,
    root_velocity: float = 0.0,
) -> Path:
    """A BVH file of the standing pose (see `_pose_angles`), SECONDS long at `fps`; optionally a T-pose first frame.

    `frame_time` is the Frame Time the file states (default 1 / fps: a mislabelled file states another);
    `root_velocity` (m/s) moves the root along +x (the character's left) at a constant speed.
    """
    hips_height = 0.97  # metres: legs of 0.92 m + the foot's drop
    times = np.arange(round(SECONDS * fps) + 1) / fps
    rows = []
    for frame, t in enumerate(times):
        angles = {} if bind_frame and frame == 0 else _pose_angles(float(t), roles)
        values = []
        for name, parent, _, order in _depth_first(bones):
            if parent is None:
                values += [root_velocity * float(t) * scale, hips_height * scale, 0.0]
            joint = angles.get(name, {})
            values += [joint.get(axis, 0.0) for axis in (root_order if parent is None else order)]
        rows.append(" ".join(f"{v:.4f}" for v in values))
    lines = [
        *_bvh_hierarchy(bones, scale, root_order, end_sites),
        "MOTION",
        f"Frames: {len(rows)}",
        f"Frame Time: {frame_time or 1 / fps:.7f}",
        *rows,
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


#: 100STYLE (Xsens MVN export): Hips → Chest…Chest4 → Neck → Head; collars on Chest4; Hip/Knee/Ankle/Toe legs.
STYLE100 = _side(
    [
        ("Hips", None, (0, 0, 0), "yxz"),
        ("Chest", "Hips", (0, 0.10, 0), "yxz"), ("Chest2", "Chest", (0, 0.10, 0), "yxz"),
        ("Chest3", "Chest2", (0, 0.10, 0), "yxz"), ("Chest4", "Chest3", (0, 0.10, 0), "yxz"),
        ("Neck", "Chest4", (0, 0.14, 0), "yxz"), ("Head", "Neck", (0, 0.10, 0.01), "yxz"),
        ("{S}Collar", "Chest4", (0.03, 0.09, 0), "yxz"), ("{S}Shoulder", "{S}Collar", (0.15, 0, 0), "yxz"),
        ("{S}Elbow", "{S}Shoulder", (0.28, 0, 0), "yxz"), ("{S}Wrist", "{S}Elbow", (0.25, 0, 0), "yxz"),
        ("{S}Hip", "Hips", (0.09, 0, 0), "yxz"), ("{S}Knee", "{S}Hip", (0, -0.42, 0), "yxz"),
        ("{S}Ankle", "{S}Knee", (0, -0.45, 0), "yxz"), ("{S}Toe", "{S}Ankle", (0, -0.08, 0.14), "yxz"),
    ]
)  # fmt: skip
STYLE100_ROLES = {"right_arm": "RightShoulder", "left_elbow": "LeftElbow", "neck": "Neck"}

#: CMU's BVH release (B. Hahne's MotionBuilder-friendly conversion): 31 joints; its Neck and Shoulders
#: start where Spine1 starts, its FingerBase and Thumb where the Hand starts.
CMU_BVH = _side(
    [
        ("Hips", None, (0, 0, 0), "zyx"),
        ("{L}HipJoint", "Hips", (0, 0, 0), "zyx"), ("{S}UpLeg", "{L}HipJoint", (0.09, -0.08, 0.02), "zyx"),
        ("{S}Leg", "{S}UpLeg", (0, -0.42, 0), "zyx"), ("{S}Foot", "{S}Leg", (0, -0.42, 0), "zyx"),
        ("{S}ToeBase", "{S}Foot", (0, -0.05, 0.13), "zyx"),
        ("LowerBack", "Hips", (0, 0, 0), "zyx"), ("Spine", "LowerBack", (0, 0.12, 0), "zyx"),
        ("Spine1", "Spine", (0, 0.12, 0), "zyx"), ("Neck", "Spine1", (0, 0, 0), "zyx"),
        ("Neck1", "Neck", (0, 0.09, 0), "zyx"), ("Head", "Neck1", (0, 0.08, 0.01), "zyx"),
        ("{S}Shoulder", "Spine1", (0, 0, 0), "zyx"), ("{S}Arm", "{S}Shoulder", (0.18, 0.11, 0), "zyx"),
        ("{S}ForeArm", "{S}Arm", (0.28, 0, 0), "zyx"), ("{S}Hand", "{S}ForeArm", (0.25, 0, 0), "zyx"),
        ("{S}FingerBase", "{S}Hand", (0, 0, 0), "zyx"), ("{S}HandIndex1", "{S}FingerBase", (0.06, 0, 0), "zyx"),
        ("{L}Thumb", "{S}Hand", (0, 0, 0), "zyx"),
    ]
)  # fmt: skip
CMU_BVH_ROLES = {"right_arm": "RightArm", "left_elbow": "LeftForeArm", "neck": "Neck1"}

#: ACCAD's BVH exports: MotionBuilder naming assumed (the lab attaches skeletons in MotionBuilder); not verified.
ACCAD = _side(
    [
        ("Hips", None, (0, 0, 0), "zxy"),
        ("Spine", "Hips", (0, 0.12, 0), "zxy"), ("Spine1", "Spine", (0, 0.14, 0), "zxy"),
        ("Spine2", "Spine1", (0, 0.14, 0), "zxy"), ("Neck", "Spine2", (0, 0.10, 0), "zxy"),
        ("Head", "Neck", (0, 0.10, 0.01), "zxy"),
        ("{S}Shoulder", "Spine2", (0.04, 0.07, 0), "zxy"), ("{S}Arm", "{S}Shoulder", (0.14, 0, 0), "zxy"),
        ("{S}ForeArm", "{S}Arm", (0.28, 0, 0), "zxy"), ("{S}Hand", "{S}ForeArm", (0.25, 0, 0), "zxy"),
        ("{S}UpLeg", "Hips", (0.09, -0.05, 0), "zxy"), ("{S}Leg", "{S}UpLeg", (0, -0.42, 0), "zxy"),
        ("{S}Foot", "{S}Leg", (0, -0.42, 0), "zxy"), ("{S}ToeBase", "{S}Foot", (0, -0.05, 0.13), "zxy"),
    ]
)  # fmt: skip
ACCAD_ROLES = {"right_arm": "RightArm", "left_elbow": "LeftForeArm", "neck": "Neck"}

# --- ASF/AMC fixtures (CMU's and HDM05's Vicon BodyBuilder bone names) --------------------------------

#: (bone, parent, direction (y-up, left +x), length in metres, dofs); "{s}" is l/r.
ASF_BONES = [
    ("{s}hipjoint", "root", (0.75, -0.63, 0.2), 0.12, ""),
    ("{s}femur", "{s}hipjoint", (0, -1, 0), 0.42, "rx ry rz"), ("{s}tibia", "{s}femur", (0, -1, 0), 0.42, "rx"),
    ("{s}foot", "{s}tibia", (0, -0.35, 0.94), 0.14, "rx rz"), ("{s}toes", "{s}foot", (0, 0, 1), 0.05, "rx"),
    ("lowerback", "root", (0, 1, 0), 0.11, "rx ry rz"), ("upperback", "lowerback", (0, 1, 0), 0.11, "rx ry rz"),
    ("thorax", "upperback", (0, 1, 0), 0.11, "rx ry rz"), ("lowerneck", "thorax", (0, 1, 0), 0.09, "rx ry rz"),
    ("upperneck", "lowerneck", (0, 1, 0.1), 0.08, "rx ry rz"), ("head", "upperneck", (0, 1, 0), 0.10, "rx ry rz"),
    ("{s}clavicle", "lowerneck", (1, 0.15, 0), 0.17, "ry rz"), ("{s}humerus", "{s}clavicle", (1, 0, 0), 0.28, "rx ry rz"),
    ("{s}radius", "{s}humerus", (1, 0, 0), 0.25, "rx"), ("{s}wrist", "{s}radius", (1, 0, 0), 0.08, "ry"),
    ("{s}hand", "{s}wrist", (1, 0, 0), 0.06, "rx rz"), ("{s}fingers", "{s}hand", (1, 0, 0), 0.04, "rx"),
    ("{s}thumb", "{s}wrist", (0.7, 0, 0.7), 0.04, "rx rz"),
]  # fmt: skip


def _asf_bones() -> list[tuple[str, str, np.ndarray, float, str]]:
    out = []
    for name, parent, direction, length, dofs in ASF_BONES:
        sides = (("l", 1.0), ("r", -1.0)) if "{s}" in name else (("", 1.0),)
        for s, sign in sides:
            d = np.array(direction, dtype=float) * [sign, 1, 1]
            out.append((name.replace("{s}", s), parent.replace("{s}", s), d / np.linalg.norm(d), length, dofs))
    return out


def write_asf_amc(asf: Path, amc: Path, size: float = 1.0, fps: float = 120.0, length_unit: float = 0.45) -> None:
    """An ASF skeleton (`size` × the bone lengths above, in units of 1 / `length_unit` inch) and an AMC of the pose."""
    per_metre = length_unit / 0.0254
    bones = _asf_bones()
    lines = [":version 1.10", f":name {asf.stem}", ":units", "  mass 1.0", f"  length {length_unit}", "  angle deg",
             ":documentation", "  synthetic test skeleton", ":root", "  order TX TY TZ RX RY RZ", "  axis XYZ",
             "  position 0 0 0", "  orientation 0 0 0", ":bonedata"]  # fmt: skip
    for number, (name, _, direction, length, dofs) in enumerate(bones, start=1):
        lines += ["  begin", f"    id {number}", f"    name {name}", f"    direction {' '.join(f'{v:.6f}' for v in direction)}",
                  f"    length {length * size * per_metre:.5f}", "    axis 0 0 0 XYZ"]  # fmt: skip
        if dofs:
            lines.append(f"    dof {dofs}")
        lines.append("  end")
    children: dict[str, list[str]] = {}
    for name, parent, *_ in bones:
        children.setdefault(parent, []).append(name)
    lines += [":hierarchy", "  begin", *(f"    {p} {' '.join(k)}" for p, k in children.items()), "  end"]
    asf.parent.mkdir(parents=True, exist_ok=True)
    asf.write_text("\n".join(lines) + "\n")

    rows = [":FULLY-SPECIFIED", ":DEGREES"]
    for frame, t in enumerate(np.arange(round(SECONDS * fps) + 1) / fps, start=1):
        angles = {"rhumerus": {"rz": 90.0}, "lradius": {"rx": 70.0 * (1 - np.cos(2 * np.pi * t)) / 2},
                  "upperneck": {"ry": 15.0 * np.sin(2 * np.pi * t)}}  # fmt: skip
        rows += [str(frame), f"root 0 {0.97 * size * per_metre:.4f} 0 0 0 0"]
        for name, _, _, _, dofs in bones:
            if dofs:
                rows.append(f"{name} " + " ".join(f"{angles.get(name, {}).get(d, 0.0):.4f}" for d in dofs.split()))
    amc.write_text("\n".join(rows) + "\n")


# --- checks ------------------------------------------------------------------------------------------


def check_standing_pose(joints: np.ndarray, size: float = 1.0) -> None:
    """(T, 22, 3) world joints of the fixture's pose: upright, feet on the floor, left arm out to the left, right arm down."""
    forward = (joints[:, J["left_foot"]] - joints[:, J["left_ankle"]]).mean(0)  # the toes point forward
    forward[2] = 0.0
    forward /= np.linalg.norm(forward)
    left = np.cross([0.0, 0.0, 1.0], forward)  # z-up: up × forward is the body's left
    along_left = lambda a, b: (joints[:, J[a]] - joints[:, J[b]]) @ left
    height = lambda name: joints[:, J[name]][:, 2]

    assert np.all((0.08 < along_left("left_hip", "right_hip")) & (along_left("left_hip", "right_hip") < 0.35))
    assert np.all(along_left("left_shoulder", "right_shoulder") > 0.15)
    assert np.all(along_left("left_wrist", "left_shoulder") > 0.3 * size)  # the left arm held out to the left
    assert np.all(np.abs(height("left_wrist") - height("left_shoulder")) < 0.15 * size)
    assert np.all(height("right_shoulder") - height("right_wrist") > 0.35 * size)  # the right arm hangs
    assert np.all(np.abs(along_left("right_wrist", "right_shoulder")) < 0.2)
    assert np.all((0.45 * size < height("head") - height("pelvis")) & (height("head") - height("pelvis") < 0.85 * size))
    assert np.all((1.35 * size < height("head")) & (height("head") < 2.0 * size))
    assert np.all(height("left_foot") < 0.08) and np.all(height("right_foot") < 0.08)  # feet on the floor
    assert np.all(height("left_ankle") < 0.2) and np.all(height("right_ankle") < 0.2)


def read_sequences(path: Path) -> tuple[dict, dict[str, tuple[dict, np.ndarray]]]:
    """The file's options and, per sequence, its attributes and world joints."""
    with MotionFile(path) as motion:
        sequences = {name: (motion.sequence_attrs(name), world_joints(motion.read(name))) for name in motion.names()}
        return json.loads(motion.info.options_json), sequences


PREPROCESS = ("--workers", "1", "--min-frames", "30")


# --- BVH corpora -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("corpus", "bones", "roles", "fps", "scale", "root_order", "convention"),
    [
        ("100style", STYLE100, STYLE100_ROLES, 60.0, 100.0, "yxz", "bvh-generic"),  # Xsens export: cm, 60 fps
        ("accad", ACCAD, ACCAD_ROLES, 120.0, 100.0, "zxy", "bvh-generic"),
    ],
)
def test_bvh_corpora(corpus, bones, roles, fps, scale, root_order, convention, tmp_path: Path, run_cli) -> None:
    folder = tmp_path / corpus
    write_bvh(folder / "Walking" / "Walking_FW.bvh", bones, roles, fps, scale, root_order)
    write_bvh(folder / "Zombie_ID.bvh", bones, roles, fps, scale, root_order)
    out = tmp_path / f"{corpus}.h5"
    licence = ["--licence", "terms as downloaded"] if corpus == "accad" else []
    result = run_cli("preprocess", "bvh", str(folder), "--out", str(out), "--corpus", corpus, *licence, *PREPROCESS)
    assert result.exit_code == 0, result.stderr
    options, sequences = read_sequences(out)
    prefix = {"100style": "100STYLE", "accad": "ACCAD"}[corpus]
    assert sorted(sequences) == [f"{prefix}/Walking/Walking_FW", f"{prefix}/Zombie_ID"]
    expected_licence = "CC BY 4.0" if corpus == "100style" else "terms as downloaded"
    assert options["corpus"] == corpus and expected_licence in options["licence"]
    for attrs, joints in sequences.values():
        assert attrs["skeleton_convention"] == convention and attrs["corpus"] == corpus and attrs["split"] == "train"
        assert expected_licence in attrs["licence"]
        assert attrs["num_frames"] == SECONDS * 30  # frame rate read from Frame Time, first frame dropped
        check_standing_pose(joints)


def test_cmu_bvh_release(tmp_path: Path, run_cli) -> None:
    """CMU units, 120 fps, a T-pose bind frame first, and the CMU split by clip name (01_14 is a test clip)."""
    folder = tmp_path / "cmuconvert"
    for clip in ("01/01_14", "05/05_01"):
        write_bvh(folder / f"{clip}.bvh", CMU_BVH, CMU_BVH_ROLES, 120.0, 1 / CMU_UNIT, bind_frame=True)
    out = tmp_path / "cmu_bvh.h5"
    result = run_cli("preprocess", "bvh", str(folder), "--out", str(out), "--corpus", "cmu-bvh", *PREPROCESS)
    assert result.exit_code == 0, result.stderr
    options, sequences = read_sequences(out)
    assert sorted(sequences) == ["CMU-BVH/01/01_14", "CMU-BVH/05/05_01"]
    assert sequences["CMU-BVH/01/01_14"][0]["split"] == "test" and sequences["CMU-BVH/05/05_01"][0]["split"] == "train"
    assert "mocap.cs.cmu.edu" in options["licence"]
    for attrs, joints in sequences.values():
        assert attrs["skeleton_convention"] == "cmu-bvh" and attrs["dropped_bind_frame"] == 1
        assert "mocap.cs.cmu.edu" in attrs["licence"] and attrs["corpus"] == "cmu-bvh"
        assert attrs["num_frames"] == SECONDS * 30 - 1  # the bind frame (1/120 s) is gone
        check_standing_pose(joints)


# --- ASF/AMC corpora ---------------------------------------------------------------------------------


def test_hdm05_actors_share_a_folder(tmp_path: Path, run_cli) -> None:
    """HDM05 keeps every actor's ASF beside the clips: each clip takes its own actor's skeleton."""
    folder = tmp_path / "HDM05" / "squat1Reps"
    write_asf_amc(folder / "HDM_bd.asf", folder / "HDM_bd_squat1Reps_001_120.amc", size=0.95)
    write_asf_amc(folder / "HDM_tr.asf", folder / "HDM_tr_squat1Reps_001_120.amc", size=1.1)
    out = tmp_path / "hdm05.h5"
    result = run_cli("preprocess", "cmu", str(tmp_path / "HDM05"), "--out", str(out), "--corpus", "hdm05", *PREPROCESS)
    assert result.exit_code == 0, result.stderr
    options, sequences = read_sequences(out)
    bd, tr = "HDM05/bd/HDM_bd_squat1Reps_001_120", "HDM05/tr/HDM_tr_squat1Reps_001_120"
    assert sorted(sequences) == [bd, tr]
    assert options["corpus"] == "hdm05" and "CC BY-SA 3.0" in options["licence"]
    for name, size in ((bd, 0.95), (tr, 1.1)):
        attrs, joints = sequences[name]
        assert attrs["skeleton_convention"] == "cmu-asf" and attrs["split"] == "train" and attrs["corpus"] == "hdm05"
        assert "CC BY-SA 3.0" in attrs["licence"]
        assert attrs["num_frames"] == SECONDS * 30  # AMC at --fps 120 (the default)
        check_standing_pose(joints, size)
    head = {name: np.median(sequences[name][1][:, J["head"], 2]) for name in (bd, tr)}
    assert head[tr] - head[bd] > 0.15  # tr's skeleton is 15 % taller: its own ASF was used


def test_cmu_asf_amc_records_the_cmu_licence(tmp_path: Path, run_cli) -> None:
    write_asf_amc(tmp_path / "subjects" / "86" / "86.asf", tmp_path / "subjects" / "86" / "86_01.amc")
    out = tmp_path / "cmu.h5"
    result = run_cli("preprocess", "cmu", str(tmp_path / "subjects"), "--out", str(out), *PREPROCESS)
    assert result.exit_code == 0, result.stderr
    options, sequences = read_sequences(out)
    attrs, joints = sequences["CMU/86/86_01"]
    assert attrs["corpus"] == "cmu" and options["corpus"] == "cmu" and attrs["split"] == "train"  # 86 mod 10 = 6
    assert "mocap.cs.cmu.edu" in attrs["licence"] and "NSF EIA-0196217" in options["licence"]
    check_standing_pose(joints)


# --- refusals ----------------------------------------------------------------------------------------


def test_unknown_skeleton_is_refused(tmp_path: Path, run_cli) -> None:
    bones: list[Bone] = [("Root", None, (0, 0, 0), "zyx"), ("Thing", "Root", (0, 0.8, 0), "zyx"),
                         ("Other", "Thing", (0, 0.8, 0), "zyx")]  # fmt: skip
    path = write_bvh(tmp_path / "weird.bvh", bones, {"right_arm": "x", "left_elbow": "x", "neck": "x"}, 60.0, 100.0)
    out = tmp_path / "out.h5"
    result = run_cli("preprocess", "bvh", str(path), "--out", str(out), "--corpus", "100style", *PREPROCESS)
    assert result.exit_code == 1
    assert (
        result.stderr.strip().count("\n") == 0 and "unknown skeleton" in result.stderr and "weird.bvh" in result.stderr
    )
    assert not out.exists() and not partial_path_for(out).exists()


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("bvh", ["--corpus", "accad"], "--licence"),  # a corpus whose licence egogrpo has not verified
        ("bvh", ["--corpus", "hdm05"], "preprocess cmu"),  # an ASF/AMC corpus given to the BVH reader
        ("cmu", ["--corpus", "100style"], "preprocess bvh"),
        ("bvh", ["--corpus", "nosuch"], "not a known corpus"),
    ],
)
def test_corpus_options_are_checked(command, args, message, tmp_path: Path, run_cli) -> None:
    given = tmp_path / "in.bvh" if command == "bvh" else tmp_path
    given.touch() if command == "bvh" else None
    out = tmp_path / "out.h5"
    result = run_cli("preprocess", command, str(given), "--out", str(out), *args, *PREPROCESS)
    assert result.exit_code == 1 and message in result.stderr and result.stderr.strip().count("\n") == 0
    assert not out.exists() and not partial_path_for(out).exists()


# --- merging corpora ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 100STYLE file and an HDM05 file (default body), and a 100STYLE file made on a synthetic SMPL-H body."""
    from synthetic_body import write_synthetic_model
    from typer.testing import CliRunner

    from egogrpo.cli.main import app

    root = tmp_path_factory.mktemp("corpora")
    write_bvh(root / "100STYLE" / "Zombie_ID.bvh", STYLE100, STYLE100_ROLES, 60.0, 100.0, "yxz")
    write_asf_amc(root / "HDM05" / "HDM_bd.asf", root / "HDM05" / "HDM_bd_walk_001_120.amc")
    write_synthetic_model(root / "smplh.npz")
    runs = {
        "100style": ["bvh", str(root / "100STYLE"), "--corpus", "100style"],
        "hdm05": ["cmu", str(root / "HDM05"), "--corpus", "hdm05"],
        "smplh": ["bvh", str(root / "100STYLE"), "--corpus", "100style", "--smplh", str(root / "smplh.npz")],
    }
    files = {}
    for key, args in runs.items():
        files[key] = root / f"{key}.h5"
        result = CliRunner().invoke(app, ["preprocess", *args, "--out", str(files[key]), *PREPROCESS])
        assert result.exit_code == 0, result.output
    return files


def test_merge_keeps_every_sequence_and_its_licence(corpus_files: dict[str, Path], tmp_path: Path, run_cli) -> None:
    out = tmp_path / "merged.h5"
    result = run_cli(
        "preprocess", "merge", str(corpus_files["100style"]), str(corpus_files["hdm05"]), "--out", str(out)
    )
    assert result.exit_code == 0, result.stderr
    with MotionFile(out) as merged:
        assert merged.info.source_dataset == "merged"
        sources = json.loads(merged.info.options_json)["merged_from"]
        assert [(s["file"], s["source_dataset"], s["options"]["corpus"]) for s in sources] == [
            ("100style.h5", "bvh", "100style"),
            ("hdm05.h5", "cmu", "hdm05"),
        ]
        assert merged.names() == ["100STYLE/Zombie_ID", "HDM05/bd/HDM_bd_walk_001_120"]
        for key, licence in (("100style", "CC BY 4.0"), ("hdm05", "CC BY-SA 3.0")):
            with MotionFile(corpus_files[key]) as single:
                (name,) = single.names()
                assert merged.sequence_attrs(name) == single.sequence_attrs(name)
                assert licence in merged.sequence_attrs(name)["licence"]
                a, b = merged.read(name), single.read(name)
                for field in ("T_world_root", "body_quats", "betas", "contacts", "joints_wrt_cpf"):
                    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        (("100style", "smplh"), "body_model_sha256"),  # another body model
        (("100style", "100style"), "different files"),
    ],
)
def test_merge_refuses_files_that_do_not_fit(pair, message, corpus_files, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "merged.h5"
    result = run_cli("preprocess", "merge", *(str(corpus_files[k]) for k in pair), "--out", str(out))
    assert result.exit_code == 1 and message in result.stderr and result.stderr.strip().count("\n") == 0
    assert not out.exists() and not partial_path_for(out).exists()


def test_merge_refuses_a_sequence_name_twice(corpus_files, tmp_path: Path, run_cli) -> None:
    copy = tmp_path / "copy.h5"
    copy.write_bytes(corpus_files["100style"].read_bytes())
    out = tmp_path / "merged.h5"
    result = run_cli("preprocess", "merge", str(corpus_files["100style"]), str(copy), "--out", str(out))
    assert result.exit_code == 1 and "'100STYLE/Zombie_ID' is also in" in result.stderr
    assert not out.exists() and not partial_path_for(out).exists()
