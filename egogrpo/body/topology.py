"""Joint names and parent tables of the SMPL family (facts of the published topology)."""

from __future__ import annotations

#: The 22 body joints (root + 21), in SMPL-H order. Index 0 is the pelvis (the root).
BODY_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip

#: Parent of each body joint (−1 for the root).
BODY_PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

NUM_BODY_JOINTS = 22  # root included; the motion state holds the 21 non-root local rotations
HEAD = BODY_JOINT_NAMES.index("head")  # 15 (EgoAllo's index 14 among the 21 non-root joints)
LEFT_WRIST = BODY_JOINT_NAMES.index("left_wrist")
RIGHT_WRIST = BODY_JOINT_NAMES.index("right_wrist")

_FINGERS = ("index", "middle", "pinky", "ring", "thumb")  # MANO's order
HAND_JOINT_NAMES: tuple[str, ...] = tuple(
    f"{side}_{finger}{k}" for side in ("left", "right") for finger in _FINGERS for k in (1, 2, 3)
)


def _hand_parents(wrist: int, first: int) -> tuple[int, ...]:
    """Each finger is a chain of three joints hanging from the wrist."""
    parents: list[int] = []
    for f in range(len(_FINGERS)):
        base = first + 3 * f
        parents += [wrist, base, base + 1]
    return tuple(parents)


#: SMPL-H: 22 body joints then 15 left-hand and 15 right-hand joints (52).
SMPLH_JOINT_NAMES = BODY_JOINT_NAMES + HAND_JOINT_NAMES
SMPLH_PARENTS = BODY_PARENTS + _hand_parents(LEFT_WRIST, 22) + _hand_parents(RIGHT_WRIST, 37)
SMPLH_HAND_JOINTS = tuple(range(22, 52))

#: SMPL-X: 22 body joints, jaw and eyes, then the two hands (55).
SMPLX_JOINT_NAMES = (*BODY_JOINT_NAMES, "jaw", "left_eye", "right_eye", *HAND_JOINT_NAMES)
SMPLX_PARENTS = (*BODY_PARENTS, 15, 15, 15, *_hand_parents(LEFT_WRIST, 25), *_hand_parents(RIGHT_WRIST, 40))
SMPLX_HAND_JOINTS = tuple(range(25, 55))

#: EgoAllo's CPF: the midpoint of two vertex pairs at the eyes of the SMPL/SMPL-H mesh (6890 vertices).
SMPLH_RIGHT_EYE_VERTICES = (6260, 6262)
SMPLH_LEFT_EYE_VERTICES = (2800, 2802)
