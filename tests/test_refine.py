"""Test-time refinement (EgoAllo's guidance optimiser): hand-worked costs, exact Jacobians, and its effect on a walk."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from egogrpo.body import BodyModel, load_body_model
from egogrpo.geometry import matrix_from_axis_angle
from egogrpo.model import refine as rf
from egogrpo.model.placement import place_on_cpf
from egogrpo.model.refine import RefineConfig, make_inner_guidance, refine, refine_costs, refine_with_history
from egogrpo.model.state import MotionState

FPS = 30.0
FEET = [7, 8, 10, 11]  # ankles, toes (22-joint order)


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are small: on a shared 2-core CPU a second thread only adds contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return load_body_model("default")


def _static(body: BodyModel, T: int, dtype: torch.dtype = torch.float32) -> tuple[MotionState, torch.Tensor]:
    """The rest pose for T frames with its root at the origin, and its CPF trajectory."""
    rotmats = torch.eye(3, dtype=dtype).expand(T, 21, 3, 3).clone()
    state = MotionState(
        betas=torch.zeros(T, body.num_betas, dtype=dtype), body_rotmats=rotmats, contacts=torch.ones(T, 21, dtype=dtype)
    )
    shaped = body.to(dtype=dtype).with_shape(state.betas[:1])
    posed = shaped.with_pose_matrices(torch.eye(3, dtype=dtype), torch.zeros(3, dtype=dtype), rotmats)
    return state, posed.T_world_cpf


def _walk(body: BodyModel, T: int) -> tuple[MotionState, torch.Tensor, torch.Tensor]:
    """A synthetic walk with pinned stance feet: (state, T_world_cpf (T, 7), world joints (T, 22, 3)).

    Hips swing ±0.35 rad, the swing knee bends, the ankles keep the feet flat, and the root advances so
    that the stance ankle (hence toe) stays exactly still. Contacts are 1 inside each stance phase.
    """
    f64 = torch.float64
    phase = 2 * math.pi * torch.arange(T, dtype=f64) / FPS / 1.1  # 1.1 s gait cycle
    hip_l, knee_l, knee_r = (
        -0.35 * torch.sin(phase),
        0.7 * torch.relu(torch.cos(phase)),
        0.7 * torch.relu(-torch.cos(phase)),
    )
    aa = torch.zeros(T, 21, 3, dtype=f64)  # local axis-angle; index = joint − 1
    aa[:, 0, 0], aa[:, 1, 0], aa[:, 3, 0], aa[:, 4, 0] = hip_l, -hip_l, knee_l, knee_r
    aa[:, 6, 0], aa[:, 7, 0] = -(hip_l + knee_l), hip_l - knee_r
    aa[:, 2, 1] = 0.08 * torch.sin(phase)  # spine twist
    aa[:, 15, 1] = aa[:, 16, 1] = 0.3 * torch.sin(phase)  # shoulders
    aa[:, 14, 0] = 0.1 * torch.sin(2 * phase)  # head nod
    rotmats = matrix_from_axis_angle(aa)
    shaped = body.to(dtype=f64).with_shape(torch.zeros(1, body.num_betas, dtype=f64))
    eye = torch.eye(3, dtype=f64)
    at_origin = shaped.with_pose_matrices(eye, torch.zeros(3, dtype=f64), rotmats).p_world_joint
    mid_phase = 2 * math.pi * (torch.arange(T - 1, dtype=f64) + 0.5) / FPS / 1.1
    left_stance = torch.cos(mid_phase) < 0  # stance leg of each transition t → t + 1
    root = torch.zeros(T, 3, dtype=f64)
    for t in range(T - 1):
        ankle = 7 if left_stance[t] else 8
        root[t + 1] = root[t] - (at_origin[t + 1, ankle] - at_origin[t, ankle])
    posed = shaped.with_pose_matrices(eye, root, rotmats)
    contacts = torch.zeros(T, 21)
    for stance, (ankle, toe) in ((left_stance, (6, 9)), (~left_stance, (7, 10))):
        inside = torch.cat([stance[:1], stance]) & torch.cat([stance, stance[-1:]])
        contacts[:, ankle] = contacts[:, toe] = inside.float()
    state = MotionState(betas=torch.zeros(T, body.num_betas), body_rotmats=rotmats.float(), contacts=contacts)
    return state, posed.T_world_cpf.float(), posed.p_world_joint.float()


def _with_noise(state: MotionState, sigma: float, seed: int) -> MotionState:
    """Every local rotation of every frame turned by an independent N(0, σ²) axis-angle (radians)."""
    noise = sigma * torch.randn((*state.body_rotmats.shape[:-2], 3), generator=torch.Generator().manual_seed(seed))
    return dataclasses.replace(state, body_rotmats=state.body_rotmats @ matrix_from_axis_angle(noise))


def _jerk(joints: torch.Tensor) -> float:
    """Mean norm of the third time difference of world joints (m/s³)."""
    third = joints[3:] - 3 * joints[2:-1] + 3 * joints[1:-2] - joints[:-3]
    return float(third.norm(dim=-1).mean()) * FPS**3


def _skate(joints: torch.Tensor, contacts: torch.Tensor) -> float:
    """Contact-weighted mean displacement of ankles and toes between frames (m/frame)."""
    c = contacts[:, [j - 1 for j in FEET]]
    weight = 0.5 * (c[1:] + c[:-1])
    step = (joints[1:, FEET] - joints[:-1, FEET]).norm(dim=-1)
    return float((weight * step).sum() / weight.sum())


def _head_error(body: BodyModel, state: MotionState, T_world_cpf: torch.Tensor) -> float:
    return float((place_on_cpf(body, state, T_world_cpf).T_world_cpf[..., 4:] - T_world_cpf[..., 4:]).abs().max())


# --- hand-worked costs -------------------------------------------------------------------------------


def test_costs_of_one_elbow_bump(body: BodyModel) -> None:
    """Turning one elbow by θ at one frame of a still pose: every term worked out by hand."""
    T, k, theta = 7, 3, 0.3
    init, T_world_cpf = _static(body, T)
    rotmats = init.body_rotmats.clone()
    rotmats[k, 17] = matrix_from_axis_angle(torch.tensor([0.0, 0.0, theta]))  # left elbow (joint 18)
    costs = refine_costs(body, dataclasses.replace(init, body_rotmats=rotmats), T_world_cpf, init)
    expected = {
        "prior_rotation": theta**2,
        "delta_init_smoothness": 10.0**2 * 2 * theta**2,  # the deviation changes by ±θ twice
        "delta_smoothness": 2 * theta**2,
        "velocity_smoothness": 5.0**2 * (1 + 4 + 1) * theta**2,  # second differences θ, −2θ, θ
        "prior_position": 0.0,  # the arm is not an ancestor of the torso or the head
        "foot_skate": 0.0,  # the feet stay still although in contact
    }
    assert set(costs) == set(expected)
    for name, value in expected.items():
        assert float(costs[name]) == pytest.approx(value, abs=1e-5), name


def test_skate_cost_of_sliding_feet(body: BodyModel) -> None:
    """The whole body slides d per frame: skating = Σ (30 c̄ d)² over frame pairs and feet in contact."""
    T, d = 6, 0.01
    state, T_world_cpf = _static(body, T)
    T_world_cpf = T_world_cpf.clone()
    T_world_cpf[:, 4] += d * torch.arange(T)
    contacts = torch.zeros(T, 21)
    contacts[:, 6], contacts[:, 9] = 1.0, 0.5  # left ankle, left toe
    state = dataclasses.replace(state, contacts=contacts)
    costs = refine_costs(body, state, T_world_cpf, state)
    assert float(costs["foot_skate"]) == pytest.approx((T - 1) * 30.0**2 * d**2 * (1.0 + 0.25), rel=1e-4)
    assert all(float(costs[name]) < 1e-10 for name in costs if name != "foot_skate")


def test_static_feet_in_contact_have_no_skate_cost(body: BodyModel) -> None:
    gt, T_world_cpf, _ = _walk(body, 40)
    assert float(refine_costs(body, gt, T_world_cpf, gt)["foot_skate"]) < 1e-8


def test_torso_prior_of_a_spine_rotation(body: BodyModel) -> None:
    """With the head anchored, turning spine1 by θ turns the pelvis side (hips) by −θ about spine1."""
    theta = 0.2
    init, T_world_cpf = _static(body, 1)
    rotmats = init.body_rotmats.clone()
    rotmats[0, 2] = matrix_from_axis_angle(torch.tensor([theta, 0.0, 0.0]))  # spine1 (joint 3)
    costs = refine_costs(body, dataclasses.replace(init, body_rotmats=rotmats), T_world_cpf, init)
    posed = place_on_cpf(body, init, T_world_cpf)
    p, axis = posed.joints[0], posed.R_world_joint[0, 3, :, 0]  # spine1's x axis in the world
    turn = matrix_from_axis_angle(-theta * axis)
    moved = sum(((turn - torch.eye(3)) @ (p[j] - p[3])).square().sum() for j in (1, 2))  # hips; spines stay
    assert float(costs["prior_position"]) == pytest.approx(25.0 * float(moved), rel=1e-4)
    assert float(costs["prior_rotation"]) == pytest.approx(theta**2, rel=1e-5)


def test_wrist_costs(body: BodyModel) -> None:
    T = 3
    state, T_world_cpf = _static(body, T)
    posed = place_on_cpf(body, state, T_world_cpf)
    offset = torch.tensor([0.01, 0.02, -0.02])
    normals = posed.R_world_joint[:, [20, 21]] @ torch.tensor([0.0, -1.0, 0.0])  # (T, 2, 3)
    normals[:, 1] = torch.linalg.cross(normals[:, 1], torch.tensor([1.0, 0.0, 0.0]).expand(T, 3))  # ⟂, |n − n'|² = 2
    wrists = {
        "wrist_positions": posed.joints[:, [20, 21]] + offset,
        "confidence": torch.tensor([0.9, 0.5]).expand(T, 2),
        "palm_normals": 3.0 * normals,  # not unit: normalised by refine
    }
    costs = refine_costs(body, state, T_world_cpf, state, wrists=wrists)
    assert float(costs["wrist_position"]) == pytest.approx(T * 50.0**2 * (0.9**2 + 0.5**2) * 0.0009, rel=1e-4)
    assert float(costs["palm_orientation"]) == pytest.approx(T * (10.0 * 0.5) ** 2 * 2.0, rel=1e-4)
    assert "wrist_position" not in refine_costs(body, state, T_world_cpf, state, RefineConfig(use_wrists=False), wrists)


# --- the solver ---------------------------------------------------------------------------------------


def test_jacobians_match_autograd(body: BodyModel) -> None:
    """The analytic JᵀJ and Jᵀr (head anchoring, Log Jacobians, wrists) agree with autograd through FK."""
    f64, N, T = torch.float64, 2, 5
    gen = torch.Generator().manual_seed(0)
    init_rot = matrix_from_axis_angle(0.3 * torch.randn(N, T, 21, 3, generator=gen, dtype=f64))
    rotmats = init_rot @ matrix_from_axis_angle(0.2 * torch.randn(N, T, 21, 3, generator=gen, dtype=f64))
    init = MotionState(
        betas=0.5 * torch.randn(N, T, body.num_betas, generator=gen, dtype=f64),
        body_rotmats=init_rot,
        contacts=torch.rand(N, T, 21, generator=gen, dtype=f64),
    )
    quats = torch.nn.functional.normalize(torch.randn(N, T, 4, generator=gen, dtype=f64), dim=-1)
    T_world_cpf = torch.cat([quats, torch.randn(N, T, 3, generator=gen, dtype=f64)], dim=-1)
    wrists = {
        "wrist_positions": torch.randn(N, T, 2, 3, generator=gen, dtype=f64),
        "confidence": torch.rand(N, T, 2, generator=gen, dtype=f64),
        "palm_normals": torch.randn(N, T, 2, 3, generator=gen, dtype=f64),
    }
    problem = rf._Problem.build(body, init, T_world_cpf, init, RefineConfig(), wrists, f64)
    terms = rf._linearize(problem, rotmats, problem.place(rotmats), jacobians=True)
    diag, sub1, sub2, g = rf._normal_equations(terms, N, T, rotmats)

    def residuals(omega: torch.Tensor) -> torch.Tensor:
        R = rotmats @ matrix_from_axis_angle(omega)
        return torch.cat([t.residual.flatten(1) for t in rf._linearize(problem, R, problem.place(R), False)], 1)

    zero = torch.zeros(N, T, 21, 3, dtype=f64)
    v = torch.randn(N, T, 21, 3, generator=gen, dtype=f64)
    r, Jv = torch.autograd.functional.jvp(residuals, zero, v)
    _, JtJv = torch.autograd.functional.vjp(residuals, zero, Jv)
    _, Jtr = torch.autograd.functional.vjp(residuals, zero, r)
    x = v.reshape(N, T, 63, 1)
    Hv = diag @ x
    Hv[:, 1:] += sub1 @ x[:, :-1]
    Hv[:, :-1] += sub1.mT @ x[:, 1:]
    Hv[:, 2:] += sub2 @ x[:, :-2]
    Hv[:, :-2] += sub2.mT @ x[:, 2:]
    torch.testing.assert_close(Hv.reshape(N, T, 21, 3), JtJv, rtol=1e-9, atol=1e-8)
    torch.testing.assert_close(g.reshape(N, T, 21, 3), Jtr, rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 6, 7, 8, 13, 33])
def test_block_banded_solve_matches_dense(T: int) -> None:
    """The block Cholesky solve equals a dense float64 solve for even, odd and power-of-two lengths."""
    gen = torch.Generator().manual_seed(T)
    N, n = 2, 4
    J = torch.zeros(N, 3 * T, T * n, dtype=torch.float64)  # rows couple three consecutive frames
    for t in range(T):
        J[:, 3 * t : 3 * t + 3, t * n : min(t + 3, T) * n] = torch.randn(N, 3, (min(t + 3, T) - t) * n, generator=gen)
    H = J.mT @ J + torch.eye(T * n)
    blocks = H.reshape(N, T, n, T, n).permute(0, 1, 3, 2, 4)  # [t, s] = H_{t,s}
    idx = torch.arange(T)
    rhs = torch.randn(N, T, n, generator=gen, dtype=torch.float64)
    x = rf._solve_block_banded(blocks[:, idx, idx], blocks[:, idx[1:], idx[:-1]], blocks[:, idx[2:], idx[:-2]], rhs)
    torch.testing.assert_close(x.reshape(N, -1), torch.linalg.solve(H, rhs.reshape(N, -1)), rtol=1e-9, atol=1e-10)


def test_block_banded_solve_marks_an_indefinite_row_nan() -> None:
    """A row whose matrix is not positive definite gives NaN (LM rejects that step); the other row is solved."""
    N, T, n = 2, 5, 3
    diag = torch.eye(n, dtype=torch.float64).repeat(N, T, 1, 1) * 2.0
    diag[1, 3] = -torch.eye(n, dtype=torch.float64)
    sub1 = torch.full((N, T - 1, n, n), 0.1, dtype=torch.float64)
    sub2 = torch.zeros(N, T - 2, n, n, dtype=torch.float64)
    rhs = torch.ones(N, T, n, dtype=torch.float64)
    x = rf._solve_block_banded(diag, sub1, sub2, rhs)
    assert bool(x[1].isnan().any())
    torch.testing.assert_close(
        x[0].reshape(-1), torch.linalg.solve(_dense(diag[0], sub1[0], sub2[0]), rhs[0].reshape(-1))
    )


def _dense(diag: torch.Tensor, sub1: torch.Tensor, sub2: torch.Tensor) -> torch.Tensor:
    """The symmetric (T·n, T·n) matrix with blocks H_{t,t} = diag[t], H_{t+1,t} = sub1[t], H_{t+2,t} = sub2[t]."""
    T, n = diag.shape[0], diag.shape[-1]
    H = diag.new_zeros(T, T, n, n)
    idx = torch.arange(T)
    H[idx, idx] = diag
    for d, sub in ((1, sub1), (2, sub2)):
        H[idx[d:], idx[:-d]] = sub
        H[idx[:-d], idx[d:]] = sub.mT
    return H.permute(0, 2, 1, 3).reshape(T * n, T * n)


def test_refine_a_jittery_walk(body: BodyModel) -> None:
    """Ground truth + 0.02 rad per-frame noise: jitter and skating drop, MPJPE does not grow, the head stays put."""
    gt, T_world_cpf, gt_joints = _walk(body, 64)
    noisy = _with_noise(gt, 0.02, seed=0)
    refined, history = refine_with_history(body, noisy, T_world_cpf)

    assert history.shape == (21,)
    assert bool((history[1:] <= history[:-1]).all())  # LM keeps only steps that lower the cost
    assert float(history[3]) < 0.15 * float(history[0])
    assert float(history[-1]) == pytest.approx(float(history[5]), rel=1e-3)  # converged within 5 steps

    before = place_on_cpf(body, noisy, T_world_cpf).joints
    after = place_on_cpf(body, refined, T_world_cpf).joints
    assert _jerk(after) < 0.4 * _jerk(before)
    assert _skate(after, gt.contacts) < 0.1 * _skate(before, gt.contacts)
    mpjpe_before = float((before - gt_joints).norm(dim=-1).mean())
    mpjpe_after = float((after - gt_joints).norm(dim=-1).mean())
    assert mpjpe_after < mpjpe_before
    for state in (noisy, refined):
        assert _head_error(body, state, T_world_cpf) < 1e-5
    assert refined.betas is noisy.betas and refined.contacts is noisy.contacts
    torch.testing.assert_close(refined.body_rotmats.mT @ refined.body_rotmats, torch.eye(3).expand(64, 21, 3, 3))


def test_wrists_pull_the_wrist_joints_to_their_targets(body: BodyModel) -> None:
    """Wrist positions 5 cm off and palm normals twisted by 0.3 rad about the arms: both are reached."""
    T = 12
    gt, T_world_cpf, gt_joints = _walk(body, T)
    offset = torch.tensor([[0.0, -0.04, 0.03], [0.0, 0.03, 0.04]])  # left, right (m), across the straight arms
    targets = gt_joints[:, [20, 21]] + offset
    R_wrists = place_on_cpf(body, gt, T_world_cpf).R_world_joint[:, [20, 21]]
    normals = matrix_from_axis_angle(torch.tensor([0.3, 0.0, 0.0])) @ R_wrists @ torch.tensor([0.0, -1.0, 0.0])
    confidence = torch.ones(T, 2)
    confidence[4, 0], targets[4, 0] = torch.nan, torch.nan  # an unobserved wrist: ignored
    normals[6, 1] = torch.nan  # a wrist without a palm normal
    wrists = {"wrist_positions": targets, "confidence": confidence, "palm_normals": normals}
    refined = refine(body, gt, T_world_cpf, wrists=wrists)
    posed = place_on_cpf(body, refined, T_world_cpf)
    error = (posed.joints[:, [20, 21]] - targets).norm(dim=-1)
    normal_error = (posed.R_world_joint[:, [20, 21]] @ torch.tensor([0.0, -1.0, 0.0]) - normals).norm(dim=-1)
    assert float(error[confidence > 0].max()) < 0.005  # from 5 cm
    assert float(normal_error[normals.isfinite().all(-1)].max()) < 0.1  # from 0.3
    assert bool(refined.body_rotmats.isfinite().all())
    untouched = refine(body, gt, T_world_cpf, RefineConfig(use_wrists=False), wrists)
    torch.testing.assert_close(untouched.body_rotmats, refine(body, gt, T_world_cpf).body_rotmats)


def test_inner_guidance_is_batched_like_single_refinements(body: BodyModel) -> None:
    """Samples (S, T, …) on one shared CPF trajectory (T, 7): each is its own problem with its own damping."""
    gt, T_world_cpf, _ = _walk(body, 16)
    samples = [_with_noise(gt, 0.03, seed) for seed in (1, 2)]
    stacked = MotionState(
        betas=torch.stack([s.betas for s in samples]),
        body_rotmats=torch.stack([s.body_rotmats for s in samples]),
        contacts=torch.stack([s.contacts for s in samples]),
    )
    guidance = make_inner_guidance(body, RefineConfig(), iterations=5)
    out = guidance(stacked, T_world_cpf)
    assert out.body_rotmats.shape == (2, 16, 21, 3, 3)
    for i, sample in enumerate(samples):
        single = refine(body, sample, T_world_cpf, RefineConfig(iterations=5))
        torch.testing.assert_close(out.body_rotmats[i], single.body_rotmats, atol=1e-5, rtol=0)
    before = sum(refine_costs(body, stacked, T_world_cpf, stacked).values())
    after = sum(refine_costs(body, out, T_world_cpf, stacked).values())
    assert bool((after < 0.3 * before).all())


def test_float64_solve_returns_the_state_dtype(body: BodyModel) -> None:
    gt, T_world_cpf, _ = _walk(body, 10)
    noisy = _with_noise(gt, 0.03, seed=3)
    out64 = refine(body, noisy, T_world_cpf, RefineConfig(iterations=5, float64=True))
    out32 = refine(body, noisy, T_world_cpf, RefineConfig(iterations=5))
    assert out64.body_rotmats.dtype == torch.float32
    torch.testing.assert_close(out64.body_rotmats, out32.body_rotmats, atol=1e-4, rtol=0)
