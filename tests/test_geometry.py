"""Geometry numerics against independent float64 references (scipy.spatial.transform, scipy.linalg)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.spatial.transform import Rotation, Slerp

from egogrpo import geometry as g

RNG_SEED = 1234


def _special_rotvecs() -> np.ndarray:
    """Axis-angle vectors at the hard places: identity, tiny angles, and angles at/near π."""
    axes = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [-0.3, 0.8, -0.5]], dtype=np.float64)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = [0.0, 1e-9, 1e-6, 1e-4, 1e-2, np.pi - 1e-3, np.pi - 1e-6, np.pi]
    return np.concatenate([axes * a for a in angles])


@pytest.fixture(scope="module")
def rotations() -> Rotation:
    random = Rotation.random(200, random_state=RNG_SEED)
    return Rotation.concatenate([random, Rotation.from_rotvec(_special_rotvecs())])


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float64)


def _same_rotation_quat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between quaternions up to sign."""
    return np.minimum(np.abs(a - b).max(-1), np.abs(a + b).max(-1))


def test_quat_to_matrix(rotations: Rotation) -> None:
    q = rotations.as_quat(scalar_first=True)
    np.testing.assert_allclose(g.quat_to_matrix(_t(q)).numpy(), rotations.as_matrix(), atol=1e-12)


def test_quat_from_matrix_including_near_pi(rotations: Rotation) -> None:
    q = g.quat_from_matrix(_t(rotations.as_matrix())).numpy()
    assert np.all(q[:, 0] >= 0)
    np.testing.assert_allclose(np.linalg.norm(q, axis=-1), 1.0, atol=1e-12)
    assert _same_rotation_quat(q, rotations.as_quat(scalar_first=True)).max() < 1e-9


def test_quat_from_matrix_float32_accuracy(rotations: Rotation) -> None:
    q = g.quat_from_matrix(torch.from_numpy(rotations.as_matrix()).float()).double().numpy()
    assert _same_rotation_quat(q, rotations.as_quat(scalar_first=True)).max() < 1e-6


def test_multiply_apply_inverse(rotations: Rotation) -> None:
    a = rotations
    b = Rotation.random(len(a), random_state=RNG_SEED + 1)
    qa, qb = _t(a.as_quat(scalar_first=True)), _t(b.as_quat(scalar_first=True))
    np.testing.assert_allclose(g.quat_to_matrix(g.quat_multiply(qa, qb)).numpy(), (a * b).as_matrix(), atol=1e-12)
    v = np.random.default_rng(RNG_SEED).normal(size=(len(a), 3))
    np.testing.assert_allclose(g.quat_apply(qa, _t(v)).numpy(), a.apply(v), atol=1e-12)
    np.testing.assert_allclose(g.quat_to_matrix(g.quat_conjugate(qa)).numpy(), a.inv().as_matrix(), atol=1e-12)
    # The inverse of a non-unit quaternion: q ⊗ q⁻¹ = identity.
    scaled = qa * 3.7
    ident = g.quat_multiply(scaled, g.quat_inverse(scaled)).numpy()
    np.testing.assert_allclose(ident, np.tile([1.0, 0, 0, 0], (len(a), 1)), atol=1e-12)


def test_quat_apply_broadcasts() -> None:
    q = _t(Rotation.random(5, random_state=3).as_quat(scalar_first=True))[:, None, :]  # (5, 1, 4)
    v = torch.randn(5, 7, 3, dtype=torch.float64)
    expected = torch.stack([g.quat_apply(q[i, 0].expand(7, 4), v[i]) for i in range(5)])
    torch.testing.assert_close(g.quat_apply(q, v), expected)


def test_axis_angle_round_trip(rotations: Rotation) -> None:
    rotvec = rotations.as_rotvec()
    q = g.quat_from_axis_angle(_t(rotvec)).numpy()
    assert _same_rotation_quat(q, rotations.as_quat(scalar_first=True)).max() < 1e-12
    back = g.quat_to_axis_angle(_t(rotations.as_quat(scalar_first=True))).numpy()
    # At exactly π the sign of the axis is arbitrary: compare rotations, and magnitudes elsewhere.
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), rotations.as_matrix(), atol=1e-10)
    near_pi = np.linalg.norm(rotvec, axis=-1) > np.pi - 1e-3
    np.testing.assert_allclose(back[~near_pi], rotvec[~near_pi], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(back, axis=-1), np.linalg.norm(rotvec, axis=-1), atol=1e-9)
    np.testing.assert_allclose(g.matrix_from_axis_angle(_t(rotvec)).numpy(), rotations.as_matrix(), atol=1e-12)
    np.testing.assert_allclose(
        Rotation.from_rotvec(g.axis_angle_from_matrix(_t(rotations.as_matrix())).numpy()).as_matrix(),
        rotations.as_matrix(),
        atol=1e-9,
    )


def test_log_exp_have_finite_gradients_at_identity() -> None:
    omega = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    q = g.quat_from_axis_angle(omega)
    back = g.quat_to_axis_angle(q)
    back.sum().backward()
    assert torch.isfinite(omega.grad).all()
    torch.testing.assert_close(omega.grad, torch.ones_like(omega))


def test_slerp_matches_scipy() -> None:
    rng = np.random.default_rng(RNG_SEED)
    for i in range(20):
        pair = Rotation.random(2, random_state=RNG_SEED + i)
        if i == 0:  # a near-identical pair
            pair = Rotation.concatenate([pair[0], pair[0] * Rotation.from_rotvec([1e-7, 0, 0])])
        times = rng.uniform(0, 1, size=9)
        expected = Slerp([0.0, 1.0], pair)(times).as_matrix()
        q0 = _t(pair[0].as_quat(scalar_first=True)).expand(9, 4)
        q1 = -_t(pair[1].as_quat(scalar_first=True)).expand(9, 4)  # sign flip must not matter
        got = g.quat_to_matrix(g.quat_slerp(q0, q1, _t(times))).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-10)
    q0 = _t(Rotation.random(random_state=5).as_quat(scalar_first=True))
    torch.testing.assert_close(g.quat_slerp(q0, q0 * -1.0, 0.3), q0)


def test_6d_round_trip_and_gram_schmidt(rotations: Rotation) -> None:
    R = _t(rotations.as_matrix())
    torch.testing.assert_close(g.matrix_from_6d(g.matrix_to_6d(R)), R)
    noisy = g.matrix_to_6d(R) * 2.5 + 0.05 * torch.randn(len(R), 6, dtype=torch.float64)
    M = g.matrix_from_6d(noisy).numpy()
    np.testing.assert_allclose(M @ M.transpose(0, 2, 1), np.tile(np.eye(3), (len(R), 1, 1)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(M), 1.0, atol=1e-12)
    first = noisy[:, :3].numpy() / np.linalg.norm(noisy[:, :3].numpy(), axis=-1, keepdims=True)
    np.testing.assert_allclose(M[:, :, 0], first, atol=1e-12)


def test_yaw_hand_worked_and_invariant() -> None:
    # A CPF looking along world (cos ψ, sin ψ, 0) with its up axis on world z: local z → forward.
    psi = np.array([-3.0, -1.2, 0.0, 0.4, 2.9])
    forward = np.stack([np.cos(psi), np.sin(psi), np.zeros_like(psi)], -1)
    up = np.tile([0.0, 0.0, 1.0], (len(psi), 1))
    left = np.cross(up, forward)
    R = np.stack([left, up, forward], axis=-1)  # columns: local x (left), y (up), z (forward)
    np.testing.assert_allclose(g.yaw_of_forward_axis(_t(R)).numpy(), psi, atol=1e-12)
    canonical = g.remove_yaw(_t(R)).numpy()
    np.testing.assert_allclose(canonical, np.tile(canonical[:1], (len(psi), 1, 1)), atol=1e-12)
    # Heading removal ignores any extra world-z rotation but keeps pitch and roll.
    tilted = Rotation.random(50, random_state=7)
    spin = Rotation.from_euler("z", np.random.default_rng(0).uniform(-np.pi, np.pi, (50, 1)))
    a = g.remove_yaw(_t(tilted.as_matrix())).numpy()
    b = g.remove_yaw(_t((spin * tilted).as_matrix())).numpy()
    np.testing.assert_allclose(a, b, atol=1e-10)
    np.testing.assert_allclose(a[:, 2, :], tilted.as_matrix()[:, 2, :], atol=1e-10)  # world-z row kept


def test_rotation_about_z_matches_scipy() -> None:
    angles = np.linspace(-4, 4, 17)
    np.testing.assert_allclose(
        g.rotation_about_z(_t(angles)).numpy(), Rotation.from_euler("z", angles[:, None]).as_matrix(), atol=1e-12
    )


def test_geodesic_angle(rotations: Rotation) -> None:
    other = Rotation.random(len(rotations), random_state=99)
    expected = (rotations.inv() * other).magnitude()
    got = g.geodesic_angle(_t(rotations.as_matrix()), _t(other.as_matrix())).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-9)
    np.testing.assert_allclose(
        g.geodesic_angle(_t(rotations.as_matrix()), _t(rotations.as_matrix())).numpy(), 0, atol=1e-7
    )


def test_nearest_rotation_matches_polar_decomposition() -> None:
    rng = np.random.default_rng(3)
    R = Rotation.random(30, random_state=3).as_matrix()
    M = R + 0.1 * rng.normal(size=R.shape)
    expected = np.stack([scipy.linalg.polar(m)[0] for m in M])
    np.testing.assert_allclose(g.nearest_rotation(_t(M)).numpy(), expected, atol=1e-10)
    reflected = R * np.array([1.0, 1.0, -1.0])  # det −1
    fixed = g.nearest_rotation(_t(reflected)).numpy()
    np.testing.assert_allclose(np.linalg.det(fixed), 1.0, atol=1e-10)
    raw = g.nearest_rotation(_t(reflected), fix_reflection=False).numpy()
    np.testing.assert_allclose(raw, reflected, atol=1e-10)


def _random_transforms(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rot = Rotation.concatenate([Rotation.random(n, random_state=seed), Rotation.from_rotvec(_special_rotvecs())])
    trans = np.random.default_rng(seed).normal(size=(len(rot), 3))
    T = np.concatenate([rot.as_quat(scalar_first=True), trans], axis=-1)
    M = np.tile(np.eye(4), (len(rot), 1, 1))
    M[:, :3, :3] = rot.as_matrix()
    M[:, :3, 3] = trans
    return T, M


def test_se3_compose_inverse_apply_matrix() -> None:
    Ta, Ma = _random_transforms(100, 1)
    Tb, Mb = _random_transforms(100, 2)
    np.testing.assert_allclose(g.se3_to_matrix(g.se3_compose(_t(Ta), _t(Tb))).numpy(), Ma @ Mb, atol=1e-12)
    np.testing.assert_allclose(g.se3_to_matrix(g.se3_inverse(_t(Ta))).numpy(), np.linalg.inv(Ma), atol=1e-10)
    p = np.random.default_rng(4).normal(size=(len(Ta), 3))
    np.testing.assert_allclose(
        g.se3_apply(_t(Ta), _t(p)).numpy(), (Ma[:, :3, :3] @ p[..., None])[..., 0] + Ma[:, :3, 3], atol=1e-12
    )
    np.testing.assert_allclose(g.se3_to_matrix(g.se3_from_matrix(_t(Ma))).numpy(), Ma, atol=1e-12)
    ident = g.se3_compose(_t(Ta), g.se3_inverse(_t(Ta)))
    np.testing.assert_allclose(g.se3_to_matrix(ident).numpy(), np.tile(np.eye(4), (len(Ta), 1, 1)), atol=1e-10)
    np.testing.assert_allclose(
        g.se3_identity(2, 3, dtype=torch.float64).numpy(), np.tile([1.0, 0, 0, 0, 0, 0, 0], (2, 3, 1))
    )


def _twist_matrix(tangent: np.ndarray) -> np.ndarray:
    v, w = tangent[:3], tangent[3:]
    return np.array([[0, -w[2], w[1], v[0]], [w[2], 0, -w[0], v[1]], [-w[1], w[0], 0, v[2]], [0, 0, 0, 0]])


def test_se3_exp_log_match_matrix_exponential() -> None:
    rng = np.random.default_rng(5)
    rotvecs = np.concatenate([Rotation.random(50, random_state=5).as_rotvec(), _special_rotvecs()])
    rotvecs = rotvecs[np.linalg.norm(rotvecs, axis=-1) < np.pi - 1e-5]  # log is ambiguous at π
    tangents = np.concatenate([rng.normal(size=(len(rotvecs), 3)), rotvecs], axis=-1)
    expected = np.stack([scipy.linalg.expm(_twist_matrix(t)) for t in tangents])
    T = g.se3_exp(_t(tangents))
    np.testing.assert_allclose(g.se3_to_matrix(T).numpy(), expected, atol=1e-10)
    np.testing.assert_allclose(g.se3_log(T).numpy(), tangents, atol=1e-8)
    # And against scipy's matrix logarithm, independently of our exp.
    moderate = np.linalg.norm(rotvecs, axis=-1) < 3.0
    logs = g.se3_log(g.se3_from_matrix(_t(expected[moderate]))).numpy()
    np.testing.assert_allclose(
        np.stack([_twist_matrix(t) for t in logs]),
        np.stack([scipy.linalg.logm(m).real for m in expected[moderate]]),
        atol=1e-8,
    )


def test_umeyama_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(6)
    src = rng.normal(size=(40, 22, 3))
    rot = Rotation.random(40, random_state=6)
    scale = rng.uniform(0.5, 2.0, size=40)
    trans = rng.normal(size=(40, 3))
    tgt = scale[:, None, None] * np.einsum("bij,bnj->bni", rot.as_matrix(), src) + trans[:, None, :]
    sim = g.umeyama_alignment(_t(src), _t(tgt))
    np.testing.assert_allclose(sim.scale.numpy(), scale, atol=1e-10)
    np.testing.assert_allclose(sim.rotation.numpy(), rot.as_matrix(), atol=1e-10)
    np.testing.assert_allclose(sim.translation.numpy(), trans, atol=1e-10)
    np.testing.assert_allclose(sim.apply(_t(src)).numpy(), tgt, atol=1e-10)
    rigid = g.umeyama_alignment(_t(src), _t(tgt), with_scale=False)
    np.testing.assert_allclose(rigid.scale.numpy(), 1.0)
    np.testing.assert_allclose(rigid.rotation.numpy(), rot.as_matrix(), atol=1e-10)


def test_umeyama_is_least_squares_optimal_on_noisy_points() -> None:
    rng = np.random.default_rng(8)
    src = rng.normal(size=(22, 3))
    tgt = 1.3 * Rotation.random(random_state=8).apply(src) + 0.2 + 0.05 * rng.normal(size=(22, 3))
    sim = g.umeyama_alignment(_t(src), _t(tgt))
    R, s, t = sim.rotation.numpy(), float(sim.scale), sim.translation.numpy()
    # The rotation is Kabsch's (scipy.align_vectors) on centred points, independently of the scale.
    kabsch, _ = Rotation.align_vectors(tgt - tgt.mean(0), src - src.mean(0))
    np.testing.assert_allclose(R, kabsch.as_matrix(), atol=1e-10)

    def loss(R_: np.ndarray, s_: float, t_: np.ndarray) -> float:
        return float(((tgt - (s_ * src @ R_.T + t_)) ** 2).sum())

    best = loss(R, s, t)
    for _k in range(50):
        dR = Rotation.from_rotvec(rng.normal(size=3) * 1e-3).as_matrix()
        assert loss(dR @ R, s, t) >= best
        assert loss(R, s * (1 + rng.normal() * 1e-3), t) >= best
        assert loss(R, s, t + rng.normal(size=3) * 1e-3) >= best


def test_umeyama_never_returns_a_reflection() -> None:
    rng = np.random.default_rng(9)
    src = rng.normal(size=(22, 3))
    mirrored = src * np.array([-1.0, 1.0, 1.0])
    sim = g.umeyama_alignment(_t(src), _t(mirrored))
    np.testing.assert_allclose(np.linalg.det(sim.rotation.numpy()), 1.0, atol=1e-10)


# --- the polar iteration ------------------------------------------------------------------------


def _with_singular_values(n: int, sigma: list[float], seed: int) -> np.ndarray:
    """U·diag(σ)·Vᵀ with random rotations U, V (a negative σ makes det < 0)."""
    U = Rotation.random(n, random_state=seed).as_matrix()
    V = Rotation.random(n, random_state=seed + 1).as_matrix()
    return np.einsum("nij,j,nkj->nik", U, np.array(sigma), V)


def _reference_projection(M: np.ndarray, fix_reflection: bool) -> tuple[np.ndarray, np.ndarray]:
    """float64 numpy U·Vᵀ (smallest direction flipped when fixing a reflection) and the signed singular values."""
    U, s, Vt = np.linalg.svd(M)
    sign = np.sign(np.linalg.det(U @ Vt))
    if fix_reflection:
        flip = np.where(sign < 0, -1.0, 1.0)
        U = U.copy()
        U[..., :, 2] *= flip[..., None]
        s = s.copy()
        s[..., 2] *= flip
    return U @ Vt, s


def _polar_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    near = Rotation.random(400, random_state=5).as_matrix()
    return {
        "gaussian": rng.normal(size=(400, 3, 3)),
        "near rotations": near + 0.1 * rng.normal(size=near.shape),
        "near reflections": near * np.array([1.0, 1.0, -1.0]) + 0.05 * rng.normal(size=near.shape),
        "sigma 1, 1, 1e-3": _with_singular_values(200, [1.0, 1.0, 1e-3], 7),
        "sigma 1, 1e-2, 1e-4": _with_singular_values(200, [1.0, 1e-2, 1e-4], 9),
        "sigma 1, 1e-3, 1e-3": _with_singular_values(200, [1.0, 1e-3, 1e-3], 13),
        "sigma 1, 1, -1e-3": _with_singular_values(200, [1.0, 1.0, -1e-3], 15),
    }


@pytest.mark.parametrize("fix_reflection", [True, False])
def test_polar_projection_within_the_perturbation_bound_of_float64_svd(fix_reflection: bool) -> None:
    """float32 polar iteration vs a float64 numpy SVD: |ΔR| ≤ 8·ε₃₂·σ₁/min|σᵢ + σⱼ| (σ signed when a reflection
    is fixed), the first-order sensitivity of the polar factor to rounding M; float64 agrees to 1e-12."""
    eps32 = float(np.finfo(np.float32).eps)
    for name, M in _polar_cases().items():
        expected, s = _reference_projection(M, fix_reflection)
        pair_sums = np.abs(np.stack([s[:, 0] + s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 2]], -1)).min(-1)
        bound = 8 * eps32 * np.abs(s[:, 0]) / pair_sums
        got32 = g.nearest_rotation(torch.from_numpy(M).float(), fix_reflection, method="polar").double().numpy()
        error = np.abs(got32 - expected).max((-2, -1))
        assert (error <= bound).all(), f"{name}: worst error/bound {np.max(error / bound):.2f}"
        got64 = g.nearest_rotation(_t(M), fix_reflection, method="polar").numpy()
        np.testing.assert_allclose(got64, expected, atol=1e-12, err_msg=name)
        if fix_reflection:
            np.testing.assert_allclose(np.linalg.det(got64), 1.0, atol=1e-12, err_msg=name)


def test_polar_projection_of_singular_matrices_takes_the_svd_path() -> None:
    """Rank-deficient and zero matrices (|det| ≤ ε‖M‖³: the polar factor is not unique) give the SVD path's result."""
    rank2 = _with_singular_values(50, [1.0, 1.0, 0.0], 17)
    rank1 = _with_singular_values(50, [2.0, 0.0, 0.0], 19)
    M = np.concatenate([rank2, rank1, np.zeros((1, 3, 3))])
    for dtype in (torch.float32, torch.float64):
        for fix_reflection in (True, False):
            x = _t(M).to(dtype)
            polar = g.nearest_rotation(x, fix_reflection, method="polar")
            assert torch.equal(polar, g.nearest_rotation(x, fix_reflection, method="svd"))


def test_polar_projection_gradient_equals_the_svd_gradient() -> None:
    rng = np.random.default_rng(21)
    R = Rotation.random(40, random_state=21).as_matrix()
    reflections = R * np.array([1.0, -1.0, 1.0]) + 0.2 * rng.normal(size=R.shape)
    M = np.concatenate([R + 0.2 * rng.normal(size=R.shape), reflections])
    weights = _t(rng.normal(size=M.shape))
    for fix_reflection in (True, False):
        grads = []
        for method in ("svd", "polar"):
            x = _t(M).requires_grad_()
            (g.nearest_rotation(x, fix_reflection, method=method) * weights).sum().backward()
            grads.append(x.grad)
        torch.testing.assert_close(grads[1], grads[0], atol=1e-10, rtol=0)
    x = _t(M[:4]).requires_grad_()
    assert torch.autograd.gradcheck(lambda m: g.nearest_rotation(m, True, method="polar"), (x,))
    with pytest.raises(ValueError, match="projection method"):
        g.nearest_rotation(x, method="qr")
