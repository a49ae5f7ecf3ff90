"""Retarget a parsed mocap skeleton (`SkeletonMotion`) onto a body model's 22-joint topology.

1. **Mapping.** Each of our 22 joints takes a source node: its position (optionally a fraction of
   the way toward another node, e.g. our collar half-way along the clavicle) and its rotation.
   Known conventions: CMU ASF bone names, CMU's BVH conversion, and a resolver for the common
   BVH namings (MotionBuilder/Mixamo/LAFAN, 3ds Max and Xsens/100STYLE, Biped, Poser/DAZ). Intermediate source
   joints are folded into their parents: only the mapped nodes' rotations are used.
2. **Shape.** Betas are fitted (Gauss–Newton with a ridge prior) so that the body model's long
   limb bones (thighs, shins, upper arms, forearms) match the source's: every convention puts
   their ends at the same anatomical joints. Widths, feet, spine and neck follow from the shape
   space, since conventions place and count those joints differently.
3. **Rotations.** World rotations are transferred: our joint j turns as its source node does,
   W_j(t) = G_n(t) · C_j · A · Q, where Q takes the body's y-up rest frame into the z-up world,
   A turns our rest facing onto the source's (about the vertical), and C_j (limbs only) turns our
   rest bone direction onto the source's, so a splayed or A-posed source rest pose maps correctly.
   The torso, neck, head, feet and wrists take the source rotation as it is (C = I).
   Local rotations follow as W_parentᵀ W_j; the root is placed at the source's pelvis point.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import numpy as np
import torch

from egogrpo.body.model import BodyModel
from egogrpo.body.topology import BODY_JOINT_NAMES, BODY_PARENTS
from egogrpo.data.motion import MotionClip
from egogrpo.data.skeleton_motion import Y_UP_TO_Z_UP, SkeletonMotion
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_from_matrix

_J = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}


@dataclass(frozen=True)
class JointSource:
    """Where one of our joints comes from: `node`'s rotation, at `node` moved `fraction` toward `toward`.

    `between`, when given, places the joint at the mean of those nodes instead (our pelvis sits
    between the hip joints, whereas many sources put their root higher, at the sacrum).
    """

    node: str
    toward: str | None = None
    fraction: float = 0.0
    between: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkeletonMapping:
    """A source convention's name and the source of each of our 22 joints (BODY_JOINT_NAMES order)."""

    convention: str
    joints: tuple[JointSource, ...]


def _sided(table: dict[str, str | JointSource]) -> tuple[JointSource, ...]:
    """Expand a table keyed by side-less joint names; "{s}" in a source name becomes l/r, "{L}" L/R, "{S}" Left/Right."""

    def fill(text: str | None, side: str) -> str | None:
        if text is None:
            return None
        return (
            text.replace("{s}", side)
            .replace("{S}", {"l": "Left", "r": "Right"}.get(side, ""))
            .replace("{L}", side.upper())
        )

    joints = []
    for name in BODY_JOINT_NAMES:
        side = "l" if name.startswith("left_") else "r" if name.startswith("right_") else ""
        spec = table[name.removeprefix("left_").removeprefix("right_")]
        if isinstance(spec, str):
            spec = JointSource(spec)
        between = tuple(fill(n, side) or "" for n in spec.between)
        joints.append(JointSource(fill(spec.node, side), fill(spec.toward, side), spec.fraction, between))
    return tuple(joints)


#: CMU's ASF/AMC: a node is a bone's start and carries the bone's rotation.
CMU_ASF = SkeletonMapping(
    "cmu-asf",
    _sided(
        {
            "pelvis": JointSource("root", between=("lfemur", "rfemur")), "hip": "{s}femur", "knee": "{s}tibia", "ankle": "{s}foot", "foot": "{s}toes",
            "spine1": "upperback", "spine2": "thorax", "spine3": "lowerneck", "neck": "upperneck", "head": "head",
            "collar": JointSource("{s}clavicle", "{s}humerus", 0.5), "shoulder": "{s}humerus",
            "elbow": "{s}radius", "wrist": "{s}wrist",
        }
    ),
)  # fmt: skip

#: CMU's BVH release (B. Hahne's conversion): MotionBuilder-like names plus LHipJoint/LowerBack/Neck1.
CMU_BVH = SkeletonMapping(
    "cmu-bvh",
    _sided(
        {
            "pelvis": JointSource("Hips", between=("LeftUpLeg", "RightUpLeg")), "hip": "{S}UpLeg", "knee": "{S}Leg", "ankle": "{S}Foot", "foot": "{S}ToeBase",
            "spine1": "Spine", "spine2": "Spine1", "spine3": "Neck", "neck": "Neck1", "head": "Head",
            "collar": JointSource("{S}Shoulder", "{S}Arm", 0.5), "shoulder": "{S}Arm",
            "elbow": "{S}ForeArm", "wrist": "{S}Hand",
        }
    ),
)  # fmt: skip

#: Rigify / FreeMoCap (ReActIdle): "pelvis", "spine" (the lower back, at the pelvis), "spine.001" (the chest),
#: "neck", "face" (the head), "shoulder.L" (the clavicle), "upper_arm.L", "forearm.L", "thigh.L", "shin.L",
#: "foot.L"; wrists and toes exist only as end sites ("forearm.L_end", "foot.L_end"), so the wrists turn
#: with the forearms. spine1/spine2 sit a third and two thirds of the way up the lower back, which turns them.
RIGIFY = SkeletonMapping(
    "rigify",
    _sided(
        {
            "pelvis": JointSource("pelvis", between=("thigh.L", "thigh.R")), "hip": "thigh.{L}", "knee": "shin.{L}",
            "ankle": "foot.{L}", "foot": "foot.{L}_end", "spine1": JointSource("spine", "spine.001", 1 / 3),
            "spine2": JointSource("spine", "spine.001", 2 / 3), "spine3": "spine.001", "neck": "neck", "head": "face",
            "collar": JointSource("shoulder.{L}", "upper_arm.{L}", 0.5), "shoulder": "upper_arm.{L}",
            "elbow": "forearm.{L}", "wrist": "forearm.{L}_end",
        }
    ),
)  # fmt: skip

#: Aria Digital Twin's OptiTrack skeleton (positions only; see `retarget_positions`).
ADT_OPTITRACK = SkeletonMapping(
    "adt-optitrack",
    _sided(
        {
            "pelvis": JointSource("Skeleton", between=("LThigh", "RThigh")), "hip": "{L}Thigh", "knee": "{L}Shin",
            "ankle": "{L}Foot", "foot": "{L}Toe", "spine1": "Ab", "spine2": JointSource("Ab", "Chest", 0.5),
            "spine3": "Chest", "neck": "Neck", "head": "Head", "collar": JointSource("{L}Shoulder", "{L}UArm", 0.5),
            "shoulder": "{L}UArm", "elbow": "{L}FArm", "wrist": "{L}Hand",
        }
    ),
)  # fmt: skip

# Generic BVH naming: candidate (normalised) names per role; "{s}" is "left"/"l", and so on. Xsens MVN
# exports (100STYLE: Chest…Chest4, {Side}Collar/Shoulder/Elbow/Wrist, {Side}Hip/Knee/Ankle/Toe) take
# the 3ds Max branch below.
_ROLE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "pelvis": ("hips", "hip", "pelvis", "root"),
    "hip": ("{side}upleg", "{side}thigh", "{side}upperleg", "{side}hip"),
    "knee": ("{side}leg", "{side}shin", "{side}knee", "{side}calf", "{side}lowerleg"),
    "ankle": ("{side}foot", "{side}ankle"),
    "foot": ("{side}toebase", "{side}toe", "{side}toes", "{side}toe0", "{side}ball"),
    "arm_mb": ("{side}arm", "{side}upperarm", "{side}shldr"),
    "shoulder_max": ("{side}shoulder",),
    "collar": ("{side}collar", "{side}clavicle", "{side}shoulder"),
    "elbow": ("{side}forearm", "{side}elbow", "{side}lowerarm"),
    "wrist": ("{side}hand", "{side}wrist"),
    "neck": ("neck", "neck1", "neck01", "lowerneck"),
    "head": ("head",),
}
_SIDES = {"left": ("left", "l"), "right": ("right", "r")}


def _normalise(name: str) -> str:
    """Lower case without namespaces ("mixamorig:"), Biped's "Bip01", separators and digits-only suffix noise."""
    name = name.split(":")[-1].split("|")[-1].lower()
    name = re.sub(r"^bip0?\d*", "", name)
    return re.sub(r"[\s_\-.]", "", name)


def _is_cmu_asf(names: set[str]) -> bool:
    return {"lfemur", "ltibia", "lhumerus", "lradius", "upperneck"} <= names


def _is_cmu_bvh(names: set[str]) -> bool:
    return {"LHipJoint", "LowerBack", "Neck1", "LeftUpLeg", "LeftForeArm"} <= names


def _is_rigify(names: set[str]) -> bool:
    return {"spine.001", "upper_arm.L", "forearm.L", "thigh.L", "shin.L", "foot.L", "face"} <= names


#: The conventions `resolve_mapping` tells apart (a corpus manifest's "naming" names one of them).
NAMINGS = ("cmu-asf", "cmu-bvh", "rigify", "adt-optitrack", "bvh-generic")


def resolve_mapping(motion: SkeletonMotion) -> SkeletonMapping:
    """The mapping for a parsed skeleton: a known convention, or resolved from common BVH joint names.

    CMU ASF names under a root that is not called "root" (amc2bvh wrote CMU 16_01/16_02 with a root
    named "hip") take the file's root node as the pelvis.
    """
    names = set(motion.names)
    if _is_cmu_asf(names):
        root = motion.names[motion.parents.index(-1)]
        if root == "root":
            return CMU_ASF
        pelvis = dataclasses.replace(CMU_ASF.joints[0], node=root)
        return dataclasses.replace(CMU_ASF, joints=(pelvis, *CMU_ASF.joints[1:]))
    if _is_rigify(names):
        return RIGIFY
    if _is_cmu_bvh(names):
        return CMU_BVH
    if {"Skeleton", "Ab", "Chest", "LUArm", "LFArm", "LThigh", "LShin"} <= names:
        return ADT_OPTITRACK
    return _resolve_generic(motion)


def _resolve_generic(motion: SkeletonMotion) -> SkeletonMapping:
    lookup: dict[str, str] = {}
    for name in motion.names:
        if not name.endswith("_end"):
            lookup.setdefault(_normalise(name), name)

    def find(role: str, side: str = "") -> str | None:
        for pattern in _ROLE_CANDIDATES[role]:
            for prefix in _SIDES[side] if side else ("",):
                hit = lookup.get(pattern.replace("{side}", prefix))
                if hit is not None:
                    return hit
        return None

    missing: list[str] = []

    def need(role: str, side: str = "") -> str:
        hit = find(role, side)
        if hit is None:
            missing.append(f"{side + ' ' if side else ''}{role}".replace("_mb", "").replace("_max", ""))
            return ""
        return hit

    pelvis, head = need("pelvis"), need("head")
    sided: dict[str, dict[str, JointSource]] = {}
    for side in ("left", "right"):
        arm = find("arm_mb", side)
        if arm is not None:  # MotionBuilder/Mixamo: Shoulder = collar, Arm = upper arm
            shoulder, collar, elbow = arm, find("collar", side), need("elbow", side)
        else:  # 3ds Max style: Collar, Shoulder, Elbow
            shoulder, elbow = need("shoulder_max", side), need("elbow", side)
            collar = lookup.get(f"{side}collar") or lookup.get(f"{side[0]}collar") or lookup.get(f"{side}clavicle")
        ankle = need("ankle", side)
        toe = find("foot", side) or (f"{ankle}_end" if f"{ankle}_end" in motion.names else need("foot", side))
        sided[side] = {
            "hip": JointSource(need("hip", side)),
            "knee": JointSource(need("knee", side)),
            "ankle": JointSource(ankle),
            "foot": JointSource(toe),
            "shoulder": JointSource(shoulder),
            "elbow": JointSource(elbow),
            "wrist": JointSource(need("wrist", side)),
            "collar": JointSource(collar, shoulder, 0.5) if collar else JointSource("", shoulder, 0.0),
        }
    if missing:
        raise EgogrpoError(
            f"{motion.source}: unknown skeleton: no joint found for {', '.join(missing)} among "
            f"{', '.join(n for n in motion.names if not n.endswith('_end'))}; supported namings: CMU ASF/BVH, "
            "MotionBuilder/Mixamo/LAFAN, 3ds Max/Xsens (100STYLE), Biped, Poser/DAZ"
        )
    spine = _spine_sources(motion, pelvis, sided["left"]["collar"], sided["left"]["shoulder"].node, head)
    for side in ("left", "right"):  # no collar joint: half-way from spine3 toward the shoulder
        if not sided[side]["collar"].node:
            sided[side]["collar"] = JointSource(spine["spine3"].node, sided[side]["shoulder"].node, 0.5)
    joints = []
    for name in BODY_JOINT_NAMES:
        if name.startswith(("left_", "right_")):
            side, role = name.split("_", 1)
            joints.append(sided[side][role])
        elif name == "pelvis":
            joints.append(JointSource(pelvis, between=(sided["left"]["hip"].node, sided["right"]["hip"].node)))
        elif name == "head":
            joints.append(JointSource(head))
        else:
            joints.append(spine[name])
    return SkeletonMapping("bvh-generic", tuple(joints))


def _chain(motion: SkeletonMotion, top: str, bottom: str) -> list[str]:
    """Nodes strictly between `bottom` (an ancestor) and `top`, from the bottom up."""
    path = []
    index = motion.parents[motion.index(top)]
    while index >= 0 and motion.names[index] != bottom:
        path.append(motion.names[index])
        index = motion.parents[index]
    if index < 0:
        raise EgogrpoError(f"{motion.source}: {top} does not descend from {bottom}; cannot map the spine")
    return path[::-1]


def _spine_sources(
    motion: SkeletonMotion, pelvis: str, collar: JointSource, shoulder: str, head: str
) -> dict[str, JointSource]:
    """spine1–3 and neck from the source chain pelvis → (collar's parent) → head.

    spine3 is the node the collar (or shoulder) hangs from; neck is the next node toward the head;
    spine1/spine2 are spread over the nodes below spine3 (zero-length nodes skipped).
    """
    anchor = collar.node or shoulder
    attach = motion.names[motion.parents[motion.index(anchor)]]
    rest = motion.rest_positions

    def moves(a: str, b: str) -> bool:
        return np.linalg.norm(rest[motion.index(a)] - rest[motion.index(b)]) > 1e-4

    lower = [n for n in [*_chain(motion, attach, pelvis), attach] if moves(n, pelvis)]
    spine3 = lower[-1] if lower else pelvis
    below = lower[:-1]
    if len(below) >= 2:
        spine1, spine2 = JointSource(below[0]), JointSource(below[len(below) // 2] if len(below) > 2 else below[1])
    elif len(below) == 1:
        spine1, spine2 = JointSource(below[0]), JointSource(below[0], spine3, 0.5)
    else:
        spine1, spine2 = JointSource(pelvis, spine3, 1 / 3), JointSource(pelvis, spine3, 2 / 3)
    upper = [n for n in _chain(motion, head, attach) if moves(n, attach)]
    neck = JointSource(upper[0]) if upper else JointSource(spine3, head, 0.5)
    return {"spine1": spine1, "spine2": spine2, "spine3": JointSource(spine3), "neck": neck}


def mapped_points(motion: SkeletonMotion, mapping: SkeletonMapping, positions: np.ndarray) -> np.ndarray:
    """Source positions (..., N, 3) → our 22 joints' source points (..., 22, 3)."""
    points = []
    for source in mapping.joints:
        if source.between:
            points.append(np.mean([positions[..., motion.index(n), :] for n in source.between], axis=0))
            continue
        p = positions[..., motion.index(source.node), :]
        if source.toward is not None and source.fraction:
            p = p + source.fraction * (positions[..., motion.index(source.toward), :] - p)
        points.append(p)
    return np.stack(points, axis=-2)


#: Bones used for the shape fit, as (child, parent) joints: the long limb bones, whose ends every
#: convention places at the same anatomical joints (hip and shoulder widths, feet, spine and neck
#: are placed differently by different conventions, so they are left to the shape space).
FIT_BONES = (
    ("left_knee", "left_hip"), ("right_knee", "right_hip"), ("left_ankle", "left_knee"),
    ("right_ankle", "right_knee"), ("left_elbow", "left_shoulder"), ("right_elbow", "right_shoulder"),
    ("left_wrist", "left_elbow"), ("right_wrist", "right_elbow"),
)  # fmt: skip


@dataclass(frozen=True)
class ShapeFit:
    """Fitted betas and the bone lengths (metres) of the source and of the fitted body, per FIT_BONES entry."""

    betas: np.ndarray
    source_lengths: np.ndarray
    fitted_lengths: np.ndarray

    @property
    def rms_error(self) -> float:
        return float(np.sqrt(np.mean((self.fitted_lengths - self.source_lengths) ** 2)))


def fit_betas(body: BodyModel, source_rest_points: np.ndarray, prior: float = 3e-4, iterations: int = 20) -> ShapeFit:
    """Betas whose rest bone lengths best match the source's (least squares + prior·|β|², metres²)."""
    a = np.array([_J[c] for c, _ in FIT_BONES])
    b = np.array([_J[p] for _, p in FIT_BONES])
    J0 = body.joints_mean.double().numpy()
    S = body.joints_shape_dirs.double().numpy()
    offset0, offset_dirs = J0[a] - J0[b], S[a] - S[b]  # (K, 3), (K, 3, B)
    target = np.linalg.norm(source_rest_points[a] - source_rest_points[b], axis=-1)
    betas = np.zeros(body.num_betas)
    for _ in range(iterations):
        offset = offset0 + offset_dirs @ betas
        length = np.linalg.norm(offset, axis=-1)
        jac = np.einsum("kc,kcb->kb", offset / length[:, None], offset_dirs)
        lhs = jac.T @ jac + prior * np.eye(body.num_betas)
        rhs = jac.T @ (length - target) + prior * betas
        step = np.linalg.solve(lhs, rhs)
        betas = betas - step
        if np.abs(step).max() < 1e-8:
            break
    fitted = np.linalg.norm(offset0 + offset_dirs @ betas, axis=-1)
    return ShapeFit(betas=betas, source_lengths=target, fitted_lengths=fitted)


def _minimal_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction u to direction v (3,), as a 3×3 matrix."""
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    axis, c = np.cross(u, v), float(u @ v)
    if c < -1 + 1e-9:  # opposite: turn by π about any perpendicular axis
        perp = np.cross(u, [1.0, 0, 0] if abs(u[0]) < 0.9 else [0, 1.0, 0])
        perp /= np.linalg.norm(perp)
        return 2 * np.outer(perp, perp) - np.eye(3)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + K + K @ K / (1 + c)


#: Our joints whose rest bone direction is calibrated to the source's: joint → the child it aims at.
LIMB_AIMS = {
    j: c
    for side in ("left", "right")
    for j, c in (
        (f"{side}_hip", f"{side}_knee"), (f"{side}_knee", f"{side}_ankle"), (f"{side}_ankle", f"{side}_foot"),
        (f"{side}_collar", f"{side}_shoulder"), (f"{side}_shoulder", f"{side}_elbow"), (f"{side}_elbow", f"{side}_wrist"),
    )
}  # fmt: skip


def rest_calibration(body_rest_joints: np.ndarray, source_rest_points: np.ndarray) -> np.ndarray:
    """(22, 3, 3) matrices C_j · A · Q taking each joint's body rest frame (y-up) to the source rest frame (z-up)."""
    ours = body_rest_joints @ Y_UP_TO_Z_UP.T  # our rest skeleton in the z-up world
    left_src = source_rest_points[_J["left_hip"]] - source_rest_points[_J["right_hip"]]
    left_ours = ours[_J["left_hip"]] - ours[_J["right_hip"]]
    yaw = np.arctan2(left_src[1], left_src[0]) - np.arctan2(left_ours[1], left_ours[0])
    c, s = np.cos(yaw), np.sin(yaw)
    A = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    ours = ours @ A.T
    calibration = np.tile(A @ Y_UP_TO_Z_UP, (len(BODY_JOINT_NAMES), 1, 1))
    for joint, child in LIMB_AIMS.items():
        j, k = _J[joint], _J[child]
        source_dir = source_rest_points[k] - source_rest_points[j]
        if np.linalg.norm(source_dir) > 1e-6:
            calibration[j] = _minimal_rotation(ours[k] - ours[j], source_dir) @ calibration[j]
    return calibration


def retarget(
    motion: SkeletonMotion,
    body: BodyModel,
    name: str,
    dataset: str,
    mapping: SkeletonMapping | None = None,
    shape: ShapeFit | None = None,
) -> tuple[MotionClip, ShapeFit]:
    """A `MotionClip` of `body` that moves like the source skeleton (see the module docstring).

    Pass `shape` to reuse one subject's fitted betas across its clips.
    """
    mapping = mapping or resolve_mapping(motion)
    source_rest = mapped_points(motion, mapping, motion.rest_positions)
    shape = shape or fit_betas(body, source_rest)
    body_rest = body.with_shape(torch.from_numpy(shape.betas).to(body.joints_mean.dtype)).rest_joints.double().numpy()
    calibration = rest_calibration(body_rest, source_rest)

    nodes = [motion.index(s.node) for s in mapping.joints]
    world = motion.rotations[:, nodes] @ calibration  # (T, 22, 3, 3): body rest frame → world, per joint
    parents = np.array([max(p, 0) for p in BODY_PARENTS[1:]])
    local = np.swapaxes(world[:, parents], -1, -2) @ world[:, 1:]
    to_quat = lambda m: quat_from_matrix(torch.from_numpy(np.ascontiguousarray(m))).numpy()
    pelvis = mapped_points(motion, mapping, motion.positions)[:, 0]
    clip = MotionClip(
        name=name,
        source=motion.source,
        dataset=dataset,
        fps=motion.fps,
        T_world_root=np.concatenate([to_quat(world[:, 0]), pelvis], axis=-1),
        body_quats=to_quat(local),
        betas=shape.betas,
        attrs={"skeleton_convention": mapping.convention, "shape_fit_rms_m": shape.rms_error},
    )
    return clip, shape


def _minimal_rotations(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Batched smallest rotations taking directions u (..., 3) to v (..., 3)."""
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    axis, c = np.cross(u, v), (u * v).sum(-1)
    zero = np.zeros_like(c)
    K = np.stack(
        [zero, -axis[..., 2], axis[..., 1], axis[..., 2], zero, -axis[..., 0], -axis[..., 1], axis[..., 0], zero], -1
    )
    K = K.reshape(*c.shape, 3, 3)
    return np.eye(3) + K + K @ K / np.maximum(1.0 + c, 1e-9)[..., None, None]


def _best_rotations(ours: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Batched Kabsch: rotations R (T, 3, 3) with R · ours_k ≈ source_k (T, K, 3) over unit directions."""
    a = ours / np.linalg.norm(ours, axis=-1, keepdims=True)
    b = source / np.linalg.norm(source, axis=-1, keepdims=True)
    U, _, Vh = np.linalg.svd(np.einsum("tki,kj->tij", b, a))
    flip = np.ones((len(b), 3))
    flip[:, 2] = np.sign(np.linalg.det(U @ Vh))
    return (U * flip[:, None, :]) @ Vh


def retarget_positions(
    motion: SkeletonMotion,
    body: BodyModel,
    name: str,
    dataset: str,
    head_rotations: np.ndarray | None = None,
    mapping: SkeletonMapping | None = None,
) -> tuple[MotionClip, ShapeFit]:
    """Retarget a skeleton that has joint positions only (e.g. ADT's OptiTrack skeleton).

    Betas are fitted to the limb lengths of the first frame. Each joint then turns so that its bones
    point where the source's do: the smallest turn from its parent's frame for one child, the best
    rotation over all children for the pelvis and spine3; leaves keep their parent's frame, except
    the head, which takes `head_rotations` (T, 3, 3) when given (e.g. an Aria device's CPF, whose
    axes are the head's). The source points become `joints_world`, the ground truth.
    """
    mapping = mapping or resolve_mapping(motion)
    points = mapped_points(motion, mapping, motion.positions)  # (T, 22, 3)
    shape = fit_betas(body, points[0])
    rest = body.with_shape(torch.from_numpy(shape.betas).to(body.joints_mean.dtype)).rest_joints.double().numpy()
    children = {j: [c for c, p in enumerate(BODY_PARENTS) if p == j] for j in range(len(BODY_PARENTS))}
    world = np.empty((len(points), len(BODY_PARENTS), 3, 3))
    for j, parent in enumerate(BODY_PARENTS):
        base = np.broadcast_to(Y_UP_TO_Z_UP, world[:, 0].shape) if parent < 0 else world[:, parent]
        kids = children[j]
        if j == _J["head"] and head_rotations is not None:
            world[:, j] = head_rotations
        elif not kids:
            world[:, j] = base
        elif len(kids) == 1:
            k = kids[0]
            swing = _minimal_rotations(base @ (rest[k] - rest[j]), points[:, k] - points[:, j])
            world[:, j] = swing @ base
        else:
            world[:, j] = _best_rotations(rest[kids] - rest[j], points[:, kids] - points[:, j : j + 1])
    parents = np.array([max(p, 0) for p in BODY_PARENTS[1:]])
    local = np.swapaxes(world[:, parents], -1, -2) @ world[:, 1:]
    to_quat = lambda m: quat_from_matrix(torch.from_numpy(np.ascontiguousarray(m))).numpy()
    clip = MotionClip(
        name=name,
        source=motion.source,
        dataset=dataset,
        fps=motion.fps,
        T_world_root=np.concatenate([to_quat(world[:, 0]), points[:, 0]], axis=-1),
        body_quats=to_quat(local),
        betas=shape.betas,
        joints_world=points,
        attrs={"skeleton_convention": mapping.convention, "shape_fit_rms_m": shape.rms_error},
    )
    return clip, shape
