"""Retargeting: exact recovery on a skeleton that is our own body, name conventions, shape fit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egogrpo.body import load_body_model
from egogrpo.body.topology import BODY_JOINT_NAMES, BODY_PARENTS
from egogrpo.data.retarget import (
    CMU_ASF,
    JointSource,
    SkeletonMapping,
    fit_betas,
    mapped_points,
    resolve_mapping,
    retarget,
)
from egogrpo.data.skeleton_motion import Y_UP_TO_Z_UP, SkeletonMotion
from egogrpo.errors import EgogrpoError


@pytest.fixture(scope="module")
def body():
    return load_body_model("default").to(dtype=torch.float64)


def _body_as_source(body, betas: np.ndarray, frames: int, seed: int) -> tuple[SkeletonMotion, np.ndarray, np.ndarray]:
    """Our own body posed by random rotations, described as a mocap skeleton (z-up, rotations relative to rest)."""
    rng = np.random.default_rng(seed)
    local = Rotation.random(frames * 21, random_state=seed).as_quat(scalar_first=True).reshape(frames, 21, 4)
    root_q = Rotation.random(frames, random_state=seed + 1).as_quat(scalar_first=True)
    root = np.concatenate([root_q, rng.normal(size=(frames, 3))], -1)
    shaped = body.with_shape(torch.from_numpy(betas))
    posed = shaped.with_pose(torch.from_numpy(root), torch.from_numpy(local))
    world_rel_rest = posed.R_world_joint.numpy() @ Y_UP_TO_Z_UP.T  # rest (z-up) → world
    motion = SkeletonMotion(
        names=BODY_JOINT_NAMES,
        parents=BODY_PARENTS,
        rest_positions=shaped.rest_joints.numpy() @ Y_UP_TO_Z_UP.T,
        positions=posed.joints.numpy(),
        rotations=world_rel_rest,
        fps=30.0,
        source="synthetic.bvh",
    )
    return motion, root, local


IDENTITY = SkeletonMapping("identity", tuple(JointSource(n) for n in BODY_JOINT_NAMES))


def _same_rotations(a: np.ndarray, b: np.ndarray) -> float:
    return float(
        (
            Rotation.from_quat(a.reshape(-1, 4), scalar_first=True).inv()
            * Rotation.from_quat(b.reshape(-1, 4), scalar_first=True)
        )
        .magnitude()
        .max()
    )


def test_retargeting_our_own_body_is_exact(body) -> None:
    betas = np.random.default_rng(0).normal(size=body.num_betas)
    motion, root, local = _body_as_source(body, betas, frames=20, seed=3)
    true_shape = fit_betas(body, mapped_points(motion, IDENTITY, motion.rest_positions))
    true_shape = type(true_shape)(
        betas=betas, source_lengths=true_shape.source_lengths, fitted_lengths=true_shape.source_lengths
    )
    clip, _ = retarget(motion, body, "x", "test", mapping=IDENTITY, shape=true_shape)
    assert _same_rotations(clip.body_quats, local) < 1e-9
    assert _same_rotations(clip.T_world_root[:, :4], root[:, :4]) < 1e-9
    np.testing.assert_allclose(clip.T_world_root[:, 4:], root[:, 4:], atol=1e-12)


def test_shape_fit_matches_limb_lengths(body) -> None:
    betas = np.zeros(body.num_betas)
    betas[:2] = [1.5, -1.0]
    motion, _, local = _body_as_source(body, betas, frames=5, seed=4)
    clip, shape = retarget(motion, body, "x", "test", mapping=IDENTITY)
    assert shape.rms_error < 0.005  # metres, over thighs, shins, upper arms, forearms
    fitted = body.with_shape(torch.from_numpy(shape.betas)).rest_joints.numpy()
    truth = body.with_shape(torch.from_numpy(betas)).rest_joints.numpy()
    assert np.abs(fitted - truth).max() < 0.03
    # Rest directions nearly agree, so the limb calibrations are small and the pose transfers closely.
    assert _same_rotations(clip.body_quats, local) < 0.1


def _skeleton(
    bones: dict[str, tuple[str | None, tuple[float, float, float]]], source: str = "test.bvh"
) -> SkeletonMotion:
    """A one-frame skeleton from {name: (parent, offset in y-up units)}, converted to z-up metres."""
    names = tuple(bones)
    parents = tuple(-1 if p is None else names.index(p) for p, _ in bones.values())
    rest = np.zeros((len(names), 3))
    for i, (parent, offset) in enumerate(bones.values()):
        rest[i] = (0 if parent is None else rest[names.index(parent)]) + np.array(offset)
    rest = rest @ Y_UP_TO_Z_UP.T
    return SkeletonMotion(names, parents, rest, rest[None], np.tile(np.eye(3), (1, len(names), 1, 1)), 30.0, source)


def _limbs(prefix: dict[str, str], names: dict[str, str]) -> dict[str, tuple[str | None, tuple[float, float, float]]]:
    """Legs and arms for both sides with the given naming."""
    bones: dict[str, tuple[str | None, tuple[float, float, float]]] = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        n = {k: v.format(S=prefix[side]) for k, v in names.items()}
        bones[n["hip"]] = (n["pelvis"], (sign * 0.1, -0.05, 0))
        bones[n["knee"]] = (n["hip"], (0, -0.42, 0))
        bones[n["ankle"]] = (n["knee"], (0, -0.42, 0))
        if n.get("toe"):
            bones[n["toe"]] = (n["ankle"], (0, -0.05, 0.12))
        if n.get("collar"):
            bones[n["collar"]] = (n["chest"], (sign * 0.03, 0.05, 0))
        bones[n["shoulder"]] = (n.get("collar") or n["chest"], (sign * 0.15, 0.02, 0))
        bones[n["elbow"]] = (n["shoulder"], (sign * 0.27, 0, 0))
        bones[n["wrist"]] = (n["elbow"], (sign * 0.24, 0, 0))
    return bones


def _torso(chain: list[str], neck: list[str]) -> dict[str, tuple[str | None, tuple[float, float, float]]]:
    bones: dict[str, tuple[str | None, tuple[float, float, float]]] = {chain[0]: (None, (0, 0.95, 0))}
    for parent, child in itertools.pairwise(chain):
        bones[child] = (parent, (0, 0.12, 0))
    for parent, child in zip([chain[-1], *neck], neck, strict=False):
        bones[child] = (parent, (0, 0.12, 0))
    return bones


def _mapped(mapping: SkeletonMapping) -> dict[str, JointSource]:
    return dict(zip(BODY_JOINT_NAMES, mapping.joints, strict=True))


def test_motionbuilder_mixamo_naming() -> None:
    torso = _torso(
        ["mixamorig:Hips", "mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2"],
        ["mixamorig:Neck", "mixamorig:Head"],
    )
    names = {"pelvis": "mixamorig:Hips", "chest": "mixamorig:Spine2", "hip": "mixamorig:{S}UpLeg", "knee": "mixamorig:{S}Leg",
             "ankle": "mixamorig:{S}Foot", "toe": "mixamorig:{S}ToeBase", "collar": "mixamorig:{S}Shoulder",
             "shoulder": "mixamorig:{S}Arm", "elbow": "mixamorig:{S}ForeArm", "wrist": "mixamorig:{S}Hand"}  # fmt: skip
    motion = _skeleton(torso | _limbs({"left": "Left", "right": "Right"}, names))
    m = _mapped(resolve_mapping(motion))
    assert m["spine3"].node == "mixamorig:Spine2" and m["spine1"].node == "mixamorig:Spine"
    assert m["neck"].node == "mixamorig:Neck" and m["left_collar"].node == "mixamorig:LeftShoulder"
    assert m["left_shoulder"].node == "mixamorig:LeftArm" and m["right_foot"].node == "mixamorig:RightToeBase"
    assert m["pelvis"].between == ("mixamorig:LeftUpLeg", "mixamorig:RightUpLeg")


def test_3ds_max_naming() -> None:
    torso = _torso(["Hips", "Chest", "Chest2"], ["Neck", "Head"])
    names = {"pelvis": "Hips", "chest": "Chest2", "hip": "{S}Hip", "knee": "{S}Knee", "ankle": "{S}Ankle", "toe": "{S}Toe",
             "collar": "{S}Collar", "shoulder": "{S}Shoulder", "elbow": "{S}Elbow", "wrist": "{S}Wrist"}  # fmt: skip
    motion = _skeleton(torso | _limbs({"left": "Left", "right": "Right"}, names))
    m = _mapped(resolve_mapping(motion))
    assert m["left_shoulder"].node == "LeftShoulder" and m["left_collar"].node == "LeftCollar"
    assert m["left_elbow"].node == "LeftElbow" and m["left_knee"].node == "LeftKnee"
    assert m["spine3"].node == "Chest2" and m["spine1"].node == "Chest"
    assert m["spine2"] == JointSource("Chest", "Chest2", 0.5)


def test_biped_and_poser_naming() -> None:
    torso = _torso(["Bip01 Pelvis", "Bip01 Spine", "Bip01 Spine1", "Bip01 Spine2"], ["Bip01 Neck", "Bip01 Head"])
    names = {"pelvis": "Bip01 Pelvis", "chest": "Bip01 Spine2", "hip": "Bip01 {S} Thigh", "knee": "Bip01 {S} Calf",
             "ankle": "Bip01 {S} Foot", "toe": "Bip01 {S} Toe0", "collar": "Bip01 {S} Clavicle",
             "shoulder": "Bip01 {S} UpperArm", "elbow": "Bip01 {S} Forearm", "wrist": "Bip01 {S} Hand"}  # fmt: skip
    m = _mapped(resolve_mapping(_skeleton(torso | _limbs({"left": "L", "right": "R"}, names))))
    assert m["left_foot"].node == "Bip01 L Toe0" and m["left_collar"].node == "Bip01 L Clavicle"
    # Poser/DAZ: no toe joints, so the toe is the foot's end site.
    torso = _torso(["hip", "abdomen", "chest"], ["neck", "head"])
    names = {"pelvis": "hip", "chest": "chest", "hip": "{S}Thigh", "knee": "{S}Shin", "ankle": "{S}Foot", "toe": "",
             "collar": "{S}Collar", "shoulder": "{S}Shldr", "elbow": "{S}ForeArm", "wrist": "{S}Hand"}  # fmt: skip
    bones = torso | _limbs({"left": "l", "right": "r"}, names)
    bones["lFoot_end"] = ("lFoot", (0, -0.05, 0.12))
    bones["rFoot_end"] = ("rFoot", (0, -0.05, 0.12))
    m = _mapped(resolve_mapping(_skeleton(bones)))
    assert m["left_foot"].node == "lFoot_end" and m["left_shoulder"].node == "lShldr" and m["spine3"].node == "chest"


def test_unknown_skeleton_is_refused() -> None:
    bones = {"Root": (None, (0, 1, 0)), "Thing": ("Root", (0, 0.5, 0)), "Other": ("Thing", (0, 0.5, 0))}
    with pytest.raises(EgogrpoError) as info:
        resolve_mapping(_skeleton(bones, source="weird.bvh"))
    message = str(info.value)
    assert message.startswith("weird.bvh: unknown skeleton") and "\n" not in message and "left hip" in message


def test_cmu_asf_mapping_covers_every_joint() -> None:
    assert len(CMU_ASF.joints) == 22
    m = _mapped(CMU_ASF)
    assert m["left_hip"].node == "lfemur" and m["right_wrist"].node == "rwrist"
    assert m["left_collar"] == JointSource("lclavicle", "lhumerus", 0.5)
