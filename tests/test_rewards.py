"""MotionGRPO's joint rewards (errors against numpy, exactness on the truth, offsets) and group advantages."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egogrpo.body import load_body_model
from egogrpo.config import RewardConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import (
    quat_from_axis_angle,
    quat_from_matrix,
    quat_to_matrix,
    se3_apply,
    se3_identity,
    se3_inverse,
)
from egogrpo.model.placement import placed_joints
from egogrpo.model.state import MotionState
from egogrpo.train.rewards import (
    JOINT_REWARDS,
    group_advantages,
    joint_errors_for_reward,
    joint_rewards,
    reward_terms,
    visual_reward,
)

B, G, T = 2, 3, 6


@pytest.fixture(scope="module")
def body():
    return load_body_model("default")


def _rotmats(g: torch.Generator, *shape: int, scale: float) -> torch.Tensor:
    return quat_to_matrix(quat_from_axis_angle(scale * torch.randn(*shape, 3, generator=g, dtype=torch.float64)))


def _crops_from_fk(body, g: torch.Generator) -> MotionCrop:
    """Crops whose ground truth is exactly forward kinematics of a known pose, root and shape (float32)."""
    body64 = body.to(dtype=torch.float64)
    betas = 0.5 * torch.randn(B, 1, body.num_betas, generator=g, dtype=torch.float64)
    local = _rotmats(g, B, T, 21, scale=0.3)
    R_root = _rotmats(g, B, T, scale=0.5)
    p_root = torch.randn(B, T, 3, generator=g, dtype=torch.float64) + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    posed = body64.with_shape(betas).with_pose_matrices(R_root, p_root, local)
    T_world_cpf = posed.T_world_cpf
    joints_wrt_cpf = se3_apply(se3_inverse(T_world_cpf)[..., None, :], posed.joints[..., 1:22, :])
    return MotionCrop(
        T_world_root=torch.cat((quat_from_matrix(R_root), p_root), dim=-1).float(),
        body_quats=quat_from_matrix(local).float(),
        contacts=torch.zeros(B, T, 21),
        betas=betas.float(),
        T_world_cpf=T_world_cpf.float(),
        T_cpf_tm1_cpf_t=se3_identity(B, T),
        height_from_floor=torch.ones(B, T, 1),
        joints_wrt_cpf=joints_wrt_cpf.float(),
    )


def _truth_state(crops: MotionCrop) -> MotionState:
    """The crops' own state, repeated for G group members: (B, G, T, …)."""
    return MotionState.from_crop(crops).map(lambda t: t[:, None].expand(B, G, *t.shape[1:]))


def _perturbed_state(crops: MotionCrop, g: torch.Generator) -> MotionState:
    truth = _truth_state(crops)
    noise = _rotmats(g, B, G, T, 21, scale=0.2).float()
    return dataclasses.replace(
        truth,
        betas=truth.betas + 0.3 * torch.randn(B, G, 1, truth.num_betas, generator=g),
        body_rotmats=noise @ truth.body_rotmats,
    )


def _np_umeyama_aligned(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """src (J, 3) moved by the least-squares similarity onto dst (Umeyama 1991)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    U, D, Vt = np.linalg.svd(xd.T @ xs / len(src))
    S = np.diag([1.0, 1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt))])
    R = U @ S @ Vt
    s = np.trace(np.diag(D) @ S) / (xs**2).sum(-1).mean()
    return s * xs @ R.T + mu_d


def test_errors_match_an_independent_numpy_computation(body) -> None:
    g = torch.Generator().manual_seed(0)
    crops = _crops_from_fk(body, g)
    state = _perturbed_state(crops, g)
    errors = joint_errors_for_reward(body, state, crops)
    assert all(errors[k].shape == (B, G) and errors[k].dtype == torch.float32 for k in JOINT_REWARDS)

    pred, truth = (x.double().numpy() for x in placed_joints(body, state, crops))  # (B, G, T, 22, 3)
    pos = np.linalg.norm(pred - truth, axis=-1).mean(axis=(-1, -2))
    vel = np.linalg.norm(np.diff(pred, axis=2) * 30.0 - np.diff(truth, axis=2) * 30.0, axis=-1).mean(axis=(-1, -2))
    aligned = np.stack(
        [_np_umeyama_aligned(p, t) for p, t in zip(pred.reshape(-1, 22, 3), truth.reshape(-1, 22, 3), strict=True)]
    )
    pa = np.linalg.norm(aligned - truth.reshape(-1, 22, 3), axis=-1).mean(-1).reshape(B, G, T).mean(-1)
    quats = crops.body_quats.double().numpy()
    R_gt = Rotation.from_quat(quats.reshape(-1, 4), scalar_first=True).as_matrix().reshape(B, 1, T, 21, 3, 3)
    rot = np.abs(state.body_rotmats.double().numpy() - R_gt).sum(axis=(-1, -2)).mean(axis=(-1, -2))

    for name, expected in (("rot", rot), ("pos", pos), ("pos_pa", pa), ("vel", vel)):
        np.testing.assert_allclose(errors[name].double().numpy(), expected, rtol=1e-4, atol=1e-6, err_msg=name)
    assert (pa < pos).all() and (pos > 0.01).all()  # a real perturbation, and alignment helps


def test_the_ground_truth_state_has_zero_errors_and_rewards_one(body) -> None:
    crops = _crops_from_fk(body, torch.Generator().manual_seed(1))
    errors = joint_errors_for_reward(body, _truth_state(crops), crops)
    for name in JOINT_REWARDS:
        assert errors[name].abs().max() < 1e-5, name
    rewards = joint_rewards(errors, RewardConfig())
    for name in JOINT_REWARDS:
        torch.testing.assert_close(rewards[name], torch.ones(B, G), atol=1e-5, rtol=0)


def _shift_cpf_keep_truth(crops: MotionCrop, offset: torch.Tensor) -> MotionCrop:
    """The GT CPF moved by `offset` (world), the GT joints unchanged: the placed prediction moves by `offset`."""
    R_world_cpf = quat_to_matrix(crops.T_world_cpf[..., :4])
    local_offset = (R_world_cpf.transpose(-1, -2) @ offset[:, None])[..., 0]  # (B, T, 3)
    T_world_cpf = torch.cat((crops.T_world_cpf[..., :4], crops.T_world_cpf[..., 4:] + offset), dim=-1)
    return dataclasses.replace(
        crops, T_world_cpf=T_world_cpf, joints_wrt_cpf=crops.joints_wrt_cpf - local_offset[..., None, :]
    )


def test_a_constant_world_offset_changes_pos_but_not_pos_pa_nor_vel(body) -> None:
    g = torch.Generator().manual_seed(2)
    crops = _crops_from_fk(body, g)
    offset = torch.tensor([0.3, -0.2, 0.1])
    shifted = _shift_cpf_keep_truth(crops, offset)
    exact = joint_errors_for_reward(body, _truth_state(crops), shifted)
    torch.testing.assert_close(exact["pos"], torch.full((B, G), float(offset.norm())), atol=1e-5, rtol=0)
    state = _perturbed_state(crops, g)
    before, after = joint_errors_for_reward(body, state, crops), joint_errors_for_reward(body, state, shifted)
    assert (after["pos"] > before["pos"] + 0.05).all()
    for name in ("rot", "pos_pa", "vel"):
        torch.testing.assert_close(after[name], before[name], atol=1e-5, rtol=1e-4, msg=name)


def test_joint_and_visual_rewards_are_exponentials_of_the_weighted_errors() -> None:
    config = RewardConfig(rot_weight=2.0, pos_weight=3.0, pos_pa_weight=0.5, vel_weight=0.25, visual_weight=1.5)
    errors = {name: torch.tensor([[0.1, 0.4]]) for name in JOINT_REWARDS}
    rewards = joint_rewards(errors, config)
    assert tuple(rewards) == JOINT_REWARDS
    for name, w in (("rot", 2.0), ("pos", 3.0), ("pos_pa", 0.5), ("vel", 0.25)):
        torch.testing.assert_close(rewards[name], torch.tensor([[math.exp(-0.1 * w), math.exp(-0.4 * w)]]))
    torch.testing.assert_close(visual_reward(torch.tensor([0.2, 0.9]), config), torch.exp(torch.tensor([0.3, 1.35])))


def test_reward_terms_adds_the_visual_reward_from_the_scorer(body) -> None:
    g = torch.Generator().manual_seed(3)
    crops = _crops_from_fk(body, g)
    state = _perturbed_state(crops, g)
    scores = torch.rand(B, G, generator=g)
    seen = {}

    def scorer(s: MotionState, condition: object) -> torch.Tensor:
        seen["state"], seen["condition"] = s, condition
        return scores

    config = RewardConfig()
    terms = reward_terms(body, state, crops, config, scorer=scorer, condition="cond")
    assert tuple(terms) == (*JOINT_REWARDS, "vis") and seen == {"state": state, "condition": "cond"}
    torch.testing.assert_close(terms["vis"], torch.exp(scores))
    expected = joint_rewards(joint_errors_for_reward(body, state, crops), config)
    for name in JOINT_REWARDS:
        assert terms[name].shape == (B, G) and torch.equal(terms[name], expected[name])
    assert tuple(reward_terms(body, state, crops, config)) == JOINT_REWARDS


def test_errors_reject_a_state_without_a_group_dimension(body) -> None:
    crops = _crops_from_fk(body, torch.Generator().manual_seed(4))
    with pytest.raises(ValueError, match=r"\(B, G\)"):
        joint_errors_for_reward(body, MotionState.from_crop(crops), crops)


# --- group advantages ---------------------------------------------------------------------------

# Group 0: sub-reward 0 spreads (mean 2, std 1); sub-reward 1 has std √3·1e-4 < floor 1e-3, so it is divided by
# the floor: (r − 1e-4)/1e-3 = (−0.1, −0.1, 0.2). Group 1: both spreads below the floor → degenerate.
REWARDS = torch.tensor(
    [
        [[1.0, 0.0], [2.0, 0.0], [3.0, 3e-4]],
        [[0.7, 0.2], [0.7, 0.2], [0.7, 0.2003]],
    ],
    dtype=torch.float64,
)


def test_hand_computed_advantages_mean_and_sum() -> None:
    result = group_advantages(REWARDS, RewardConfig(combine="mean", std_floor=1e-3))
    expected_normalized = torch.tensor(
        [[[-1.0, -0.1], [0.0, -0.1], [1.0, 0.2]], [[0.0, -0.1], [0.0, -0.1], [0.0, 0.2]]], dtype=torch.float64
    )
    torch.testing.assert_close(result.normalized, expected_normalized, atol=1e-9, rtol=0)
    expected_std = torch.tensor([[1.0, math.sqrt(3e-8)], [0.0, math.sqrt(3e-8)]], dtype=torch.float64)
    torch.testing.assert_close(result.group_std, expected_std, atol=1e-12, rtol=1e-6)
    assert result.degenerate.tolist() == [False, True]
    expected_mean = torch.tensor([[-0.55, -0.05, 0.6], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(result.advantages, expected_mean, atol=1e-9, rtol=0)

    summed = group_advantages(REWARDS, RewardConfig(combine="sum", std_floor=1e-3))
    expected_sum = torch.tensor([[-1.1, -0.1, 1.2], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(summed.advantages, expected_sum, atol=1e-9, rtol=0)


def test_hand_computed_advantages_are_clipped() -> None:
    result = group_advantages(REWARDS, RewardConfig(combine="sum", advantage_clip=0.5, std_floor=1e-3))
    expected = torch.tensor([[-0.5, -0.1, 0.5], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(result.advantages, expected, atol=1e-9, rtol=0)


def test_advantages_have_zero_group_mean_and_ignore_an_affine_rescale() -> None:
    rewards = torch.rand(4, 8, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    config = RewardConfig()
    base = group_advantages(rewards, config)
    assert not base.degenerate.any() and (base.advantages.abs() < config.advantage_clip).all()
    torch.testing.assert_close(base.advantages.mean(dim=1), torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)
    rescaled = rewards.clone()
    rescaled[..., 2] = 3.0 * rescaled[..., 2] + 7.0
    torch.testing.assert_close(group_advantages(rescaled, config).advantages, base.advantages, atol=1e-12, rtol=0)


def test_a_group_of_one_and_an_unknown_combine_raise() -> None:
    with pytest.raises(EgogrpoError, match="G ≥ 2"):
        group_advantages(torch.rand(2, 1, 3), RewardConfig())
    with pytest.raises(EgogrpoError, match="combine"):
        group_advantages(torch.rand(2, 3, 3), RewardConfig(combine="max"))
