"""Metrics of recovered motion (MotionGRPO, Appendix E; EgoAllo's variants, reference/egoallo.md §9).

Inputs are in metres and radians, in the z-up world with the floor at z = 0; joints are the 22 body
joints in SMPL order (pelvis 0, ankles 7/8, feet (toes) 10/11, head 15), T frames at `fps` (30 by
default). The prediction is placed by EgoAllo's head anchoring; no other alignment unless stated.
Each function returns per-frame or per-sample values: the caller aggregates (`mean_and_standard_error`).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from egogrpo.body.topology import BODY_JOINT_NAMES, HEAD
from egogrpo.geometry import geodesic_angle, umeyama_alignment

LEFT_ANKLE = BODY_JOINT_NAMES.index("left_ankle")  # 7
RIGHT_ANKLE = BODY_JOINT_NAMES.index("right_ankle")  # 8
LEFT_TOE = BODY_JOINT_NAMES.index("left_foot")  # 10 (SMPL's "foot" joint is at the toes)
RIGHT_TOE = BODY_JOINT_NAMES.index("right_foot")  # 11

#: Foot joints of the foot-skating metrics: both ankles and both toes (EgoEgo/kinpoly, EgoAllo, HumanML3D).
FOOT_JOINTS = (LEFT_ANKLE, RIGHT_ANKLE, LEFT_TOE, RIGHT_TOE)
#: Contact heights above the floor of `FOOT_JOINTS`, metres: ankles 0.08, toes 0.04. HuMoR's heights, which
#: also label the contacts of AMASS data; EgoAllo's GND and foot skate use the same (from EgoEgo/kinpoly).
FOOT_CONTACT_HEIGHTS = (0.08, 0.08, 0.04, 0.04)


# ----------------------------------------------------------------------------------------------
# Joint accuracy (Appendix E, Eqs. 17–19)


def mpjpe(predicted: Float[Tensor, "*batch J 3"], truth: Float[Tensor, "*batch J 3"]) -> Float[Tensor, "*batch"]:
    """Mean per-joint position error per frame, millimetres (Eq. 17)."""
    return torch.linalg.vector_norm(predicted - truth, dim=-1).mean(dim=-1) * 1000.0


def pa_mpjpe(predicted: Float[Tensor, "*batch J 3"], truth: Float[Tensor, "*batch J 3"]) -> Float[Tensor, "*batch"]:
    """MPJPE after a per-frame Umeyama similarity alignment (rotation, translation, scale) of the prediction, mm."""
    aligned = umeyama_alignment(predicted.double(), truth.double()).apply(predicted.double())
    return mpjpe(aligned, truth.double()).to(predicted.dtype)


def _velocities(joints: Float[Tensor, "*batch T J 3"], fps: float = 30.0) -> Float[Tensor, "*batch T-1 J 3"]:
    """Forward-difference joint velocities (p_{t+1} − p_t)·fps, in the input's length unit per second."""
    return (joints[..., 1:, :, :] - joints[..., :-1, :, :]) * fps


def mpjve(
    pred_joints: Float[Tensor, "*batch T J 3"], gt_joints: Float[Tensor, "*batch T J 3"], fps: float = 30.0
) -> Float[Tensor, "*batch"]:
    """Mean per-joint velocity error per sample, mm/s (Eq. 18): ‖v̂ − v‖₂ over T−1 forward differences and J joints."""
    error = _velocities(pred_joints, fps) - _velocities(gt_joints, fps)
    return torch.linalg.vector_norm(error, dim=-1).mean(dim=(-1, -2)) * 1000.0


def mpjre(
    pred_rotmats: Float[Tensor, "*batch T J 3 3"], gt_rotmats: Float[Tensor, "*batch T J 3 3"]
) -> Float[Tensor, "*batch"]:
    """Mean per-joint rotation error per sample, degrees (Eq. 19, as the geodesic angle of R̂ᵀR).

    Defined on *local* (parent-relative) joint rotations, like the SMPL pose parameters of
    AvatarPoser/AGRoL's MPJRE: pass the 21 non-root body rotations of the motion state
    (`MotionState.body_rotmats`); the root orientation, placed from the head, is not part of it.
    """
    return torch.rad2deg(geodesic_angle(pred_rotmats, gt_rotmats)).mean(dim=(-1, -2))


def head_position_error(
    pred_joints: Float[Tensor, "*batch T J 3"], gt_joints: Float[Tensor, "*batch T J 3"]
) -> Float[Tensor, "*batch"]:
    """EgoAllo's T_head per sample, metres: mean over frames of the head joint's (15) position error."""
    return torch.linalg.vector_norm(pred_joints[..., HEAD, :] - gt_joints[..., HEAD, :], dim=-1).mean(dim=-1)


# ----------------------------------------------------------------------------------------------
# Visual quality (Appendix E, Eq. 20 and text)


def jitter(joints: Float[Tensor, "*batch T J 3"], fps: float = 30.0) -> Float[Tensor, "*batch"]:
    """Mean jerk magnitude per sample, in 10² m/s³ (the AvatarPoser/AGRoL unit; Appendix E "Jitter").

    Jerk is the third forward difference (p_{t+3} − 3p_{t+2} + 3p_{t+1} − p_t)·fps³ of every joint,
    so it is exactly 0 for constant-velocity and constant-acceleration motion; its norm is averaged
    over the T−3 frames and all J joints, then divided by 100.
    """
    p = joints
    jerk = (p[..., 3:, :, :] - 3.0 * p[..., 2:-1, :, :] + 3.0 * p[..., 1:-2, :, :] - p[..., :-3, :, :]) * fps**3
    return torch.linalg.vector_norm(jerk, dim=-1).mean(dim=(-1, -2)) / 100.0


def ground_penetration(joints: Float[Tensor, "*batch T J 3"]) -> Float[Tensor, "*batch"]:
    """GP per sample, metres (Eq. 20): Σ over frames and all J joints of max(0, −z), the depth below z = 0."""
    return torch.clamp(-joints[..., 2], min=0.0).sum(dim=(-1, -2))


def foot_contacts(
    joints: Float[Tensor, "*batch T J 3"], heights: tuple[float, ...] = FOOT_CONTACT_HEIGHTS
) -> Float[Tensor, "*batch T F"]:
    """Which foot joints touch the floor: joint `FOOT_JOINTS[f]` is in contact when its height above the
    floor (z, the floor at z = 0) is below `heights[f]` (ankles 0.08 m, toes 0.04 m). Boolean."""
    return joints[..., list(FOOT_JOINTS), 2] < joints.new_tensor(heights)


def foot_skating(
    joints: Float[Tensor, "*batch T J 3"], fps: float = 30.0, heights: tuple[float, ...] = FOOT_CONTACT_HEIGHTS
) -> Float[Tensor, "*batch"]:
    """FS per sample, metres: the horizontal distance the feet slide while in contact with the floor.

    For each foot joint (ankles 7/8, toes 10/11) and each step t → t+1 in which the joint is in contact
    (`foot_contacts`: below its contact height above the floor) at both frames, its horizontal speed
    ‖v_xy‖₂ (m/s, forward difference) times the frame time 1/fps is summed over steps and joints; fps
    cancels, so this is the summed horizontal displacement in contact. Contact is measured from the
    floor (z = 0), not from the motion's own lowest point: a floating body has no contacts and so no
    skating, which `floating_height` reports beside it (and a body below the floor, `ground_penetration`).
    """
    feet = joints[..., list(FOOT_JOINTS), :]
    speed = torch.linalg.vector_norm(_velocities(feet, fps)[..., :2], dim=-1)  # (*batch, T-1, F), m/s
    contact = foot_contacts(joints, heights)
    in_contact = contact[..., 1:, :] & contact[..., :-1, :]
    return torch.where(in_contact, speed, torch.zeros_like(speed)).sum(dim=(-1, -2)) / fps


def floating_height(joints: Float[Tensor, "*batch T J 3"]) -> Float[Tensor, "*batch"]:
    """Float per sample, metres: the mean over frames of max(0, the lowest foot joint's height above the floor).

    The lowest of the ankles and toes is the body's support; its height is its gap to the floor (0 when a
    foot is at or below the floor: depth below it is `ground_penetration`'s). Real motion scores a few
    centimetres (the toe joint sits above the sole; flight phases lift it), so read it against the
    ground-truth row of the same windows.
    """
    lowest = joints[..., list(FOOT_JOINTS), 2].amin(dim=-1)  # (*batch, T)
    return lowest.clamp_min(0.0).mean(dim=-1)


def egoallo_foot_contact(joints: Float[Tensor, "*batch T J 3"]) -> Float[Tensor, "*batch"]:
    """EgoAllo's GND per sample, 0 or 1: 1 if in any frame an ankle is below 0.08 m or a toe below 0.04 m."""
    heights = joints.new_tensor(FOOT_CONTACT_HEIGHTS)
    below = joints[..., list(FOOT_JOINTS), 2] < heights  # (*batch, T, 4)
    return below.flatten(start_dim=-2).any(dim=-1).to(joints.dtype)


def egoallo_foot_skate(joints: Float[Tensor, "*batch T J 3"]) -> Float[Tensor, "*batch"]:
    """EgoAllo's (EgoEgo/kinpoly) foot skate per sample, metres, summed over frames and foot joints.

    The sample is first dropped to the floor: z minus its minimum over frames and the non-root joints
    (EgoAllo takes that minimum over all samples of a window; the same at its protocol's one sample).
    Then for each foot joint with height H (ankles 0.08 m, toes 0.04 m) and each step t → t+1:
    (|Δx| + |Δy|) · 1[z_{t+1} < H] · (2 − 2^{z_{t+1}/H}).
    """
    z_min = joints[..., 1:, 2].amin(dim=(-1, -2))  # (*batch,)
    feet = joints[..., list(FOOT_JOINTS), :]
    z = feet[..., 1:, :, 2] - z_min[..., None, None]  # (*batch, T-1, 4)
    step = (feet[..., 1:, :, :2] - feet[..., :-1, :, :2]).abs().sum(dim=-1)
    heights = joints.new_tensor(FOOT_CONTACT_HEIGHTS)
    # torch.where, not a product with the mask: 2^(z/H) overflows to inf for high joints.
    weight = torch.where(z < heights, 2.0 - torch.pow(2.0, z / heights), torch.zeros_like(z))
    return (step * weight).sum(dim=(-1, -2))


# ----------------------------------------------------------------------------------------------
# Perceptual model and intra-group diversity (Appendix E, Eqs. 21–22)


def intra_group_diversity(samples: Float[Tensor, "G ..."]) -> Float[Tensor, ""]:
    """Eq. 22: mean Euclidean distance between the flattened samples over all ordered pairs i ≠ j (input units)."""
    flat = samples.reshape(samples.shape[0], -1)
    num = flat.shape[0]
    if num < 2:
        raise ValueError(f"diversity needs at least 2 samples in the group, got {num}")
    distances = torch.linalg.vector_norm(flat[:, None, :] - flat[None, :, :], dim=-1)  # (G, G), 0 on the diagonal
    return distances.sum() / (num * (num - 1))


def perceptual_accuracy(
    scores_positive: Float[Tensor, "*pairs"],
    scores_negative: Float[Tensor, "*pairs"],
    valid: Bool[Tensor, "*pairs"] | None = None,
) -> tuple[float, int]:
    """Eq. 21: (Accuracy as a fraction, ×100 for Table 4's %, Wrong Count) over pairs (s_gt, s_gen).

    A pair is right when s_gt > s_gen; ties and s_gt < s_gen are wrong. The score tensors (and `valid`, the
    pairs that count; all when None) are broadcast against each other (e.g. positives (N, 1) against K
    negatives each, (N, K)). Accuracy is NaN when no pair counts.
    """
    wrong = torch.le(scores_positive, scores_negative)
    counted = torch.ones_like(wrong) if valid is None else torch.broadcast_to(valid, wrong.shape)
    pairs, num_wrong = int(counted.sum()), int((wrong & counted).sum())
    return ((pairs - num_wrong) / pairs if pairs else math.nan), num_wrong


def paired_difference(values: Tensor, reference: Tensor) -> dict[str, float | None]:
    """Per-window values (n,) of a row against a reference's (n,): the mean ± standard error (ddof 0) over windows of
    the difference, and that mean in % of the reference's mean (None when the reference's mean is 0)."""
    mean, error = mean_and_standard_error(
        torch.as_tensor(values, dtype=torch.float64) - torch.as_tensor(reference, dtype=torch.float64)
    )
    base = float(torch.as_tensor(reference, dtype=torch.float64).mean())
    return {"mean": mean, "standard_error": error, "percent": 100.0 * mean / base if base else None}


def mean_and_standard_error(values: Float[Tensor, "*n"]) -> tuple[float, float]:
    """EgoAllo's aggregation over all per-sample values: (mean, std/√n), std with ddof = 0 as np.std."""
    flat = values.detach().double().flatten()
    if flat.numel() == 0:
        raise ValueError("no values to aggregate")
    mean = flat.mean()
    std = torch.sqrt(((flat - mean) ** 2).mean())
    return float(mean), float(std) / math.sqrt(flat.numel())
