"""The evaluation metrics on hand-worked cases, invariances and independent float64 numpy references."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from egogrpo.eval.metrics import (
    egoallo_foot_contact,
    egoallo_foot_skate,
    floating_height,
    foot_skating,
    ground_penetration,
    head_position_error,
    intra_group_diversity,
    jitter,
    mean_and_standard_error,
    mpjpe,
    mpjre,
    mpjve,
    pa_mpjpe,
    perceptual_accuracy,
)


def test_mpjpe_hand_worked() -> None:
    truth = torch.zeros(2, 22, 3, dtype=torch.float64)
    predicted = truth.clone()
    predicted[0, :, 0] = 0.01  # every joint 1 cm off
    predicted[1, 0] = torch.tensor([0.0, 0.03, 0.04])  # one joint 5 cm off
    np.testing.assert_allclose(mpjpe(predicted, truth).numpy(), [10.0, 50.0 / 22])
    assert float(mpjpe(truth, truth).max()) == 0.0


def test_pa_mpjpe_ignores_similarity_transforms() -> None:
    rng = np.random.default_rng(0)
    truth = torch.from_numpy(rng.normal(size=(5, 22, 3)))
    noisy = truth + 0.02 * torch.from_numpy(rng.normal(size=(5, 22, 3)))
    R = torch.from_numpy(Rotation.random(5, random_state=1).as_matrix())
    moved = 1.7 * noisy @ R.transpose(-1, -2) + torch.tensor([0.3, -2.0, 1.0], dtype=torch.float64)
    np.testing.assert_allclose(pa_mpjpe(moved, truth).numpy(), pa_mpjpe(noisy, truth).numpy(), atol=1e-9)
    assert float(pa_mpjpe(1.3 * truth + 5.0, truth).max()) < 1e-9
    assert (pa_mpjpe(noisy, truth) <= mpjpe(noisy, truth) + 1e-9).all()


# ----------------------------------------------------------------------------------------------
# Independent float64 numpy references, written from the definitions (Appendix E; EgoAllo §9).

FPS = 30.0
FEET = [7, 8, 10, 11]  # ankles, toes
EGOALLO_HEIGHTS = np.array([0.08, 0.08, 0.04, 0.04])


def np_mpjve(pred: np.ndarray, gt: np.ndarray, fps: float) -> np.ndarray:
    v_pred = np.diff(pred, axis=-3) * fps
    v_gt = np.diff(gt, axis=-3) * fps
    return 1000.0 * np.sqrt(((v_pred - v_gt) ** 2).sum(-1)).mean(axis=(-1, -2))


def np_mpjre(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    relative = np.swapaxes(pred, -1, -2) @ gt
    cos = (np.trace(relative, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean(axis=(-1, -2))


def np_jitter(joints: np.ndarray, fps: float) -> np.ndarray:
    jerk = np.diff(joints, n=3, axis=-3) * fps**3
    return np.sqrt((jerk**2).sum(-1)).mean(axis=(-1, -2)) / 100.0


def np_foot_skating(joints: np.ndarray) -> np.ndarray:
    """FS by loops: a foot joint slides in contact when it is below its height (ankles 8 cm, toes 4 cm) at both frames."""
    out = np.zeros(joints.shape[:-3])
    for idx in np.ndindex(*out.shape):
        for j, height in zip(FEET, EGOALLO_HEIGHTS, strict=True):
            p = joints[idx][:, j]
            for t in range(len(p) - 1):
                if p[t, 2] < height and p[t + 1, 2] < height:
                    out[idx] += np.hypot(*(p[t + 1, :2] - p[t, :2]))
    return out


def np_egoallo_foot_skate(joints: np.ndarray) -> np.ndarray:
    out = np.zeros(joints.shape[:-3])
    for idx in np.ndindex(*out.shape):
        p = joints[idx].copy()
        p[..., 2] -= p[:, 1:, 2].min()  # EgoAllo's 21 joints exclude the pelvis
        for k, j in enumerate(FEET):
            h = EGOALLO_HEIGHTS[k]
            for t in range(p.shape[0] - 1):
                z = p[t + 1, j, 2]
                if z < h:
                    out[idx] += np.abs(p[t + 1, j, :2] - p[t, j, :2]).sum() * (2.0 - 2.0 ** (z / h))
    return out


def standing_body(T: int, batch: tuple[int, ...] = ()) -> torch.Tensor:
    """Joints at 0.3–1.7 m, except the feet: ankles at 0.1 m and toes at 0.05 m (no contact anywhere)."""
    z = torch.linspace(0.3, 1.7, 22, dtype=torch.float64)
    z[[7, 8]] = 0.1
    z[[10, 11]] = 0.05
    joints = torch.zeros(*batch, T, 22, 3, dtype=torch.float64)
    joints[..., 2] = z
    return joints


def random_motion(rng: np.random.Generator, shape: tuple[int, ...]) -> torch.Tensor:
    """A smooth random walk plus noise, feet near the floor (some below it)."""
    steps = 0.01 * rng.normal(size=shape)
    joints = np.cumsum(steps, axis=-3) + 0.003 * rng.normal(size=shape)
    joints[..., 2] += np.linspace(0.0, 1.6, shape[-2])  # joint j around height 1.6·j/21
    return torch.from_numpy(joints)


# ----------------------------------------------------------------------------------------------
# MPJVE


def test_mpjve_hand_worked_and_constant_offset() -> None:
    T = 10
    truth = standing_body(T)
    moving = truth.clone()
    moving[:, 3, 0] = torch.arange(T, dtype=torch.float64) / FPS  # one joint at 1 m/s more than truth
    np.testing.assert_allclose(mpjve(moving, truth, FPS).numpy(), 1000.0 / 22)
    np.testing.assert_allclose(mpjve(moving, truth, fps=60.0).numpy(), 2000.0 / 22)  # same steps, twice the rate
    offset = truth + torch.tensor([0.2, -0.1, 0.05], dtype=torch.float64)
    assert float(mpjve(offset, truth, FPS).abs().max()) < 1e-9
    assert float(mpjve(truth, truth, FPS).max()) == 0.0


def test_mpjve_matches_numpy_reference() -> None:
    rng = np.random.default_rng(2)
    pred, truth = random_motion(rng, (2, 3, 16, 22, 3)), random_motion(rng, (2, 3, 16, 22, 3))
    value = mpjve(pred, truth, FPS)
    assert value.shape == (2, 3)
    np.testing.assert_allclose(value.numpy(), np_mpjve(pred.numpy(), truth.numpy(), FPS), rtol=1e-12)
    np.testing.assert_allclose(mpjve(pred.float(), truth.float(), FPS).numpy(), value.numpy(), rtol=1e-4)


# ----------------------------------------------------------------------------------------------
# MPJRE


def test_mpjre_hand_worked() -> None:
    truth = torch.eye(3, dtype=torch.float64).expand(4, 21, 3, 3).clone()
    predicted = truth.clone()
    predicted[:, 5] = torch.from_numpy(Rotation.from_euler("z", 10.0, degrees=True).as_matrix())
    predicted[2, 9] = torch.from_numpy(Rotation.from_rotvec([0.0, np.pi / 2, 0.0]).as_matrix())
    expected = np.full(4, 10.0 / 21)
    expected[2] += 90.0 / 21  # one joint of 21 in one frame
    np.testing.assert_allclose(float(mpjre(predicted, truth)), expected.mean(), rtol=1e-12)
    assert float(mpjre(truth, truth)) < 1e-6


def test_mpjre_matches_numpy_and_ignores_a_shared_rotation() -> None:
    pred = torch.from_numpy(Rotation.random(2 * 8 * 21, random_state=3).as_matrix()).reshape(2, 8, 21, 3, 3)
    truth = torch.from_numpy(Rotation.random(2 * 8 * 21, random_state=4).as_matrix()).reshape(2, 8, 21, 3, 3)
    value = mpjre(pred, truth)
    assert value.shape == (2,)
    np.testing.assert_allclose(value.numpy(), np_mpjre(pred.numpy(), truth.numpy()), rtol=1e-9)
    # Local rotations do not change when the whole body turns; a rotation shared by both sides, on
    # either side of the joint rotations (e.g. the root's), does not change the geodesic distance.
    Q = torch.from_numpy(Rotation.random(random_state=5).as_matrix())
    np.testing.assert_allclose(mpjre(Q @ pred, Q @ truth).numpy(), value.numpy(), rtol=1e-9)
    np.testing.assert_allclose(mpjre(pred @ Q, truth @ Q).numpy(), value.numpy(), rtol=1e-9)


# ----------------------------------------------------------------------------------------------
# Jitter


def test_jitter_is_zero_for_constant_velocity_and_acceleration() -> None:
    t = (torch.arange(40, dtype=torch.float64) / FPS)[:, None, None]
    start = standing_body(40)
    velocity = torch.linspace(-1.0, 1.0, 66, dtype=torch.float64).reshape(22, 3)
    acceleration = torch.linspace(2.0, -3.0, 66, dtype=torch.float64).reshape(22, 3)
    assert float(jitter(start, FPS)) < 1e-9  # rounding of the differences, times fps³
    assert float(jitter(start + velocity * t, FPS)) < 1e-8
    assert float(jitter(start + velocity * t + 0.5 * acceleration * t**2, FPS)) < 1e-8


def test_jitter_hand_worked_and_numpy_reference() -> None:
    t = torch.arange(20, dtype=torch.float64) / FPS
    joints = standing_body(20)
    joints[:, 4, 1] += 2.0 * t**3  # jerk d³y/dt³ = 12 m/s³ on one joint
    np.testing.assert_allclose(float(jitter(joints, FPS)), 12.0 / 22 / 100.0, rtol=1e-9)
    rng = np.random.default_rng(6)
    motion = random_motion(rng, (3, 24, 22, 3))
    np.testing.assert_allclose(jitter(motion, FPS).numpy(), np_jitter(motion.numpy(), FPS), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Ground penetration and foot skating


def test_ground_penetration() -> None:
    joints = standing_body(6, batch=(2,))
    assert ground_penetration(joints).tolist() == [0.0, 0.0]
    joints[1, 0:3, 10, 2] = -0.05  # a toe 5 cm under the floor for three frames
    joints[1, 4, 0, 2] = -0.1  # the pelvis 10 cm under for one frame
    joints[1, 5, 7, 2] = 0.0  # touching the floor is not penetrating
    np.testing.assert_allclose(ground_penetration(joints).numpy(), [0.0, 0.25], rtol=1e-12)


def test_foot_skating_hand_worked() -> None:
    T = 31
    joints = standing_body(T, batch=(4,))
    joints[..., [10, 11], 2] = 0.01  # toes in contact (below 4 cm) in all samples
    # Sample 0: planted feet. Sample 1: the left toe slides at 0.5 m/s along (3, 4)/5.
    # Sample 2: the same slide with the toe 5 cm up (no contact).
    # Sample 3: the left ANKLE (at 7 cm, under its 8 cm contact height) slides at 0.5 m/s.
    slide = 0.5 * torch.arange(T, dtype=torch.float64) / FPS
    joints[1, :, 10, 0] += 0.6 * slide
    joints[1, :, 10, 1] += 0.8 * slide
    joints[2, :, 10, :2] = joints[1, :, 10, :2]
    joints[2, :, 10, 2] = 0.05
    joints[3, :, 7, 0] += slide
    joints[3, :, 7, 2] = 0.07
    expected = [0.0, 0.5 * (T - 1) / FPS, 0.0, 0.5 * (T - 1) / FPS]
    np.testing.assert_allclose(foot_skating(joints, FPS).numpy(), expected, atol=1e-12)
    # Contact is needed at both ends of a step: lifting the toe above 4 cm at the last frame removes one step.
    joints[1, -1, 10, 2] = 0.045
    np.testing.assert_allclose(float(foot_skating(joints, FPS)[1]), 0.5 * (T - 2) / FPS, rtol=1e-12)


def test_floating_body_is_caught_by_floating_height_not_fs() -> None:
    T = 31
    joints = standing_body(T, batch=(2,))
    joints[..., [10, 11], 2] = 0.01  # toes 1 cm above the floor
    joints[..., 11, 0] += 0.5 * torch.arange(T, dtype=torch.float64) / FPS  # the right toe skates
    joints[1, ..., 2] += 0.06  # sample 1: the same motion floating 6 cm higher
    fs = foot_skating(joints, FPS)
    assert float(fs[0]) > 0.4 and float(fs[1]) == 0.0  # floating removes every contact …
    assert float(ground_penetration(joints)[1]) == 0.0
    np.testing.assert_allclose(floating_height(joints).numpy(), [0.01, 0.07], rtol=1e-12)  # … Float shows it
    joints[0, :10, 10, 2] = -0.02  # a toe below the floor for 10 frames: Float counts 0 there
    np.testing.assert_allclose(float(floating_height(joints)[0]), 21 * 0.01 / T, rtol=1e-12)


def test_floating_height_matches_numpy_reference() -> None:
    rng = np.random.default_rng(3)
    motion = random_motion(rng, (2, 3, 20, 22, 3))
    motion[..., FEET, 2] = torch.from_numpy(rng.uniform(-0.02, 0.1, size=(2, 3, 20, 4)))
    lowest = motion.numpy()[..., FEET, 2].min(axis=-1)
    np.testing.assert_allclose(floating_height(motion).numpy(), np.maximum(lowest, 0.0).mean(-1), rtol=1e-12)


def test_foot_skating_matches_numpy_reference() -> None:
    rng = np.random.default_rng(7)
    motion = random_motion(rng, (2, 3, 20, 22, 3))
    motion[..., FEET, 2] = torch.from_numpy(rng.uniform(-0.01, 0.1, size=(2, 3, 20, 4)))
    value = foot_skating(motion, FPS)
    assert value.shape == (2, 3) and float(value.min()) > 0.0
    np.testing.assert_allclose(value.numpy(), np_foot_skating(motion.numpy()), rtol=1e-12)


def test_egoallo_foot_contact() -> None:
    joints = standing_body(5, batch=(4,))  # ankles 0.1 m, toes 0.05 m: above both heights
    joints[1, 2, 11, 2] = 0.039  # a toe under 0.04 m in one frame
    joints[2, 4, 8, 2] = 0.07  # an ankle under 0.08 m in one frame
    joints[3, :, [10, 11], 2] = 0.07  # toes at 0.07 m are not in contact
    assert egoallo_foot_contact(joints).tolist() == [0.0, 1.0, 1.0, 0.0]


def test_egoallo_foot_skate_hand_worked() -> None:
    T = 11
    joints = standing_body(T, batch=(3,))
    joints[0, :, 10, 2] = 0.0  # lowest joint: the floor stays where it is
    frames = torch.arange(T, dtype=torch.float64)
    joints[0, :, 10, 0] = 0.01 * frames  # steps of |Δx| + |Δy| = 0.01 + 0.02
    joints[0, :, 10, 1] = -0.02 * frames
    joints[1] = joints[0]
    joints[1, ..., 2] += 1.0  # a floating body is dropped to the floor first
    joints[2] = joints[0]
    joints[2, :, 10, 2] = 0.02  # half the toe height: weight 2 − √2 (the lowest joint is now elsewhere)
    joints[2, :, 0, 2] = 0.0  # ... except that the pelvis is ignored by the drop
    joints[2, :, 11, 2] = 0.0
    expected = 0.03 * (T - 1)
    np.testing.assert_allclose(
        egoallo_foot_skate(joints).numpy(), [expected, expected, expected * (2.0 - np.sqrt(2.0))], rtol=1e-12
    )
    assert float(egoallo_foot_skate(standing_body(T)).abs()) == 0.0  # feet do not move


def test_egoallo_foot_skate_matches_numpy_reference() -> None:
    rng = np.random.default_rng(8)
    motion = random_motion(rng, (4, 20, 22, 3))
    motion[..., FEET, 2] = torch.from_numpy(rng.uniform(-0.01, 0.1, size=(4, 20, 4)))
    motion[:2, ..., 5:7, 2] -= 6.0  # knees 6 m down: after the drop the feet are 6 m up, 2^(z/H) > float32's range
    value = egoallo_foot_skate(motion)
    assert float(value[2:].min()) > 0.0
    assert egoallo_foot_skate(motion.float()).tolist()[:2] == [0.0, 0.0]  # no inf · 0
    np.testing.assert_allclose(value.numpy(), np_egoallo_foot_skate(motion.numpy()), rtol=1e-12)


def test_head_position_error() -> None:
    truth = random_motion(np.random.default_rng(9), (2, 7, 22, 3))
    predicted = truth + 0.5  # every joint off ...
    predicted[..., 15, :] = truth[..., 15, :] + torch.tensor([0.0, 0.006, 0.0], dtype=torch.float64)  # ... head 6 mm
    predicted[1, 3, 15, 1] += 0.064  # one frame of seven 7 cm off
    np.testing.assert_allclose(head_position_error(predicted, truth).numpy(), [0.006, 0.006 + 0.064 / 7], rtol=1e-9)


# ----------------------------------------------------------------------------------------------
# Diversity, perceptual accuracy, aggregation


def test_intra_group_diversity() -> None:
    sample = torch.from_numpy(np.random.default_rng(10).normal(size=(8, 22, 3)))
    assert float(intra_group_diversity(sample.expand(4, 8, 22, 3))) == 0.0
    line = torch.tensor([[0.0], [1.0], [3.0]])  # pair distances 1, 3, 2: ordered sum 12 over 6 pairs
    np.testing.assert_allclose(float(intra_group_diversity(line)), 2.0)
    two = torch.zeros(2, 4, 2)
    two[1, 0] = torch.tensor([3.0, 4.0])
    np.testing.assert_allclose(float(intra_group_diversity(two)), 5.0)
    group = np.random.default_rng(11).normal(size=(16, 10, 5, 3))
    flat = group.reshape(16, -1)
    reference = np.mean([np.linalg.norm(flat[i] - flat[j]) for i in range(16) for j in range(16) if i != j])
    np.testing.assert_allclose(float(intra_group_diversity(torch.from_numpy(group))), reference, rtol=1e-12)


def test_perceptual_accuracy_on_a_score_table() -> None:
    positive = torch.tensor([0.9, 0.5, 0.2, 0.7, 0.4, 3.0])
    negative = torch.tensor([0.1, 0.5, 0.3, 0.6, -1.0, 2.9])  # right, tie (wrong), wrong, right, right, right
    assert perceptual_accuracy(positive, negative) == (4 / 6, 2)
    # One positive against two negatives each: 3 of 4 pairs right.
    assert perceptual_accuracy(torch.tensor([[1.0], [0.0]]), torch.tensor([[0.5, 0.9], [-0.1, 0.2]])) == (0.75, 1)
    # Only the valid pairs count (dropped false negatives): the tie and the wrong pair masked out.
    valid = torch.tensor([True, False, False, True, True, True])
    assert perceptual_accuracy(positive, negative, valid) == (1.0, 0)
    accuracy, wrong = perceptual_accuracy(positive, negative, torch.zeros(6, dtype=torch.bool))
    assert math.isnan(accuracy) and wrong == 0


def test_mean_and_standard_error() -> None:
    mean, se = mean_and_standard_error(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_allclose([mean, se], [2.5, np.sqrt(1.25) / 2.0])
    values = np.random.default_rng(12).normal(size=(5, 7))
    mean, se = mean_and_standard_error(torch.from_numpy(values))
    np.testing.assert_allclose([mean, se], [values.mean(), values.std() / np.sqrt(35)], rtol=1e-12)
    assert mean_and_standard_error(torch.tensor([3.0])) == (3.0, 0.0)
