"""The packed motion state (layout, round trip, crops) and head-anchored placement on a CPF trajectory."""

from __future__ import annotations

import pytest
import torch

from egogrpo.body import load_body_model
from egogrpo.data.crops import MotionCrop
from egogrpo.geometry import nearest_rotation, quat_from_axis_angle, quat_to_matrix, se3_identity
from egogrpo.model.placement import place_on_cpf, root_from_cpf
from egogrpo.model.state import MotionState, orthonormal_to_rounding, packed_dim, state_slices


def _random_rotmats(generator: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    omega = scale * torch.randn(*shape, 3, generator=generator, dtype=torch.float64)
    return quat_to_matrix(quat_from_axis_angle(omega))


def _random_state(generator: torch.Generator, batch: int, frames: int, num_betas: int, hands: bool) -> MotionState:
    return MotionState(
        betas=torch.randn(batch, frames, num_betas, generator=generator, dtype=torch.float64),
        body_rotmats=_random_rotmats(generator, batch, frames, 21),
        contacts=torch.rand(batch, frames, 21, generator=generator, dtype=torch.float64),
        hand_rotmats=_random_rotmats(generator, batch, frames, 30) if hands else None,
    )


def test_packed_dims() -> None:
    assert packed_dim(16, include_hands=False) == 226
    assert packed_dim(16, include_hands=True) == 496
    assert packed_dim(10, include_hands=False) == 220


@pytest.mark.parametrize("hands", [False, True])
def test_pack_layout_and_round_trip(hands: bool) -> None:
    g = torch.Generator().manual_seed(0)
    state = _random_state(g, batch=2, frames=5, num_betas=16, hands=hands)
    x = state.pack()
    assert x.shape == (2, 5, 496 if hands else 226)
    # Layout: betas, then body matrices row-major, then contacts, then hand matrices row-major.
    assert torch.equal(x[..., :16], state.betas)
    j, r, c = 7, 1, 2
    assert torch.equal(x[..., 16 + 9 * j + 3 * r + c], state.body_rotmats[..., j, r, c])
    assert torch.equal(x[..., 16 + 189 : 16 + 189 + 21], state.contacts)
    if hands:
        assert torch.equal(x[..., 226 + 9 * 29 + 3 * 2 + 0], state.hand_rotmats[..., 29, 2, 0])
    back = MotionState.unpack(x, num_betas=16, include_hands=hands)
    for name in ("betas", "body_rotmats", "contacts", "hand_rotmats"):
        a, b = getattr(state, name), getattr(back, name)
        assert (a is None and b is None) or torch.allclose(a, b, atol=1e-12), name
    with pytest.raises(ValueError, match="width"):
        MotionState.unpack(x, num_betas=10, include_hands=hands)


def test_unpack_projects_body_and_hand_rotations() -> None:
    g = torch.Generator().manual_seed(1)
    state = _random_state(g, batch=1, frames=4, num_betas=16, hands=True)
    noisy = state.pack() + 0.05 * torch.randn(1, 4, 496, generator=g, dtype=torch.float64)
    raw = MotionState.unpack(noisy, 16, include_hands=True, project_rotations=False)
    assert torch.equal(raw.body_rotmats.flatten(-2), noisy[..., 16:205].unflatten(-1, (21, 9)))
    projected = MotionState.unpack(noisy, 16, include_hands=True)
    eye = torch.eye(3, dtype=torch.float64)
    pairs = ((projected.body_rotmats, raw.body_rotmats), (projected.hand_rotmats, raw.hand_rotmats))
    for R, R_raw in pairs:
        assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-10)
        assert torch.allclose(torch.linalg.det(R), torch.ones(()).double(), atol=1e-10)
        assert not torch.allclose(R, R_raw)


def test_state_slices_follow_the_packing_order() -> None:
    g = torch.Generator().manual_seed(4)
    state = _random_state(g, batch=2, frames=3, num_betas=10, hands=True)
    x = state.pack()
    where = state_slices(10, include_hands=True)
    assert where["body_rotmats"] == slice(10, 199) and where["hand_rotmats"].stop == x.shape[-1]
    assert torch.equal(x[..., where["betas"]], state.betas)
    assert torch.equal(x[..., where["body_rotmats"]], state.body_rotmats.flatten(-3))
    assert torch.equal(x[..., where["contacts"]], state.contacts)
    assert torch.equal(x[..., where["hand_rotmats"]], state.hand_rotmats.flatten(-3))


def test_orthonormal_to_rounding() -> None:
    R = _random_rotmats(torch.Generator().manual_seed(5), 200).float()
    assert orthonormal_to_rounding(R, proper=True)
    assert not orthonormal_to_rounding(R * 1.0001, proper=False)  # |RᵀR − I| = 2e-4
    reflection = R * torch.tensor([1.0, 1.0, -1.0])
    assert orthonormal_to_rounding(reflection, proper=False) and not orthonormal_to_rounding(reflection, proper=True)
    assert not orthonormal_to_rounding(torch.full((1, 3, 3), float("nan")), proper=False)


def test_unpack_keeps_already_projected_rotations_within_rounding_of_reprojection() -> None:
    """A float32 state whose body was SVD-projected (as the sampler does): unpack keeps those matrices and the
    result is within 3e-6 of today's re-projection; unprojected hands are still projected; under autograd the
    projection always runs (its Jacobian is not the identity)."""
    g = torch.Generator().manual_seed(6)
    state = _random_state(g, batch=4, frames=32, num_betas=16, hands=True)
    noisy = (state.pack() + 0.05 * torch.randn(4, 32, 496, generator=g, dtype=torch.float64)).float()
    body = slice(16, 205)
    projected_body = nearest_rotation(noisy[..., body].unflatten(-1, (21, 3, 3)), fix_reflection=False)
    x = torch.cat((noisy[..., :16], projected_body.flatten(-3), noisy[..., 205:]), dim=-1)
    unpacked = MotionState.unpack(x, 16, include_hands=True)
    assert torch.equal(unpacked.body_rotmats, projected_body)  # kept
    reprojected = nearest_rotation(projected_body, fix_reflection=False)
    assert (unpacked.body_rotmats - reprojected).abs().max() <= 3e-6
    hands = noisy[..., 226:].unflatten(-1, (30, 3, 3))
    torch.testing.assert_close(unpacked.hand_rotmats, nearest_rotation(hands, fix_reflection=False), atol=0, rtol=0)

    leaf = x.clone().requires_grad_()
    with_grad = MotionState.unpack(leaf, 16, include_hands=True)
    symmetric = torch.randn(4, 32, 21, 3, 3, generator=g)
    (with_grad.body_rotmats * (with_grad.body_rotmats.detach() @ (symmetric + symmetric.mT))).sum().backward()
    # d(U·Vᵀ) at a rotation R is R·(skew part of RᵀdM): a weight R·S with S symmetric has zero gradient.
    assert leaf.grad[..., body].abs().max() < 1e-4


def _crop(g: torch.Generator, batch: int, frames: int, hands: bool) -> MotionCrop:
    def quats(n: int) -> torch.Tensor:
        return quat_from_axis_angle(torch.randn(batch, frames, n, 3, generator=g))

    return MotionCrop(
        T_world_root=se3_identity(batch, frames),
        body_quats=quats(21),
        contacts=(torch.rand(batch, frames, 21, generator=g) > 0.5).float(),
        betas=torch.randn(batch, 1, 16, generator=g),
        T_world_cpf=se3_identity(batch, frames),
        T_cpf_tm1_cpf_t=se3_identity(batch, frames),
        height_from_floor=torch.ones(batch, frames, 1),
        joints_wrt_cpf=torch.zeros(batch, frames, 21, 3),
        hand_quats=quats(30) if hands else None,
    )


def test_from_crop() -> None:
    g = torch.Generator().manual_seed(2)
    crop = _crop(g, batch=3, frames=6, hands=True)
    state = MotionState.from_crop(crop)
    assert state.betas.shape == (3, 6, 16) and torch.equal(state.betas[:, 4], crop.betas[:, 0])
    assert torch.allclose(state.body_rotmats, quat_to_matrix(crop.body_quats))
    assert torch.equal(state.contacts, crop.contacts)
    assert state.hand_rotmats is not None and state.hand_rotmats.shape == (3, 6, 30, 3, 3)
    assert state.pack().shape == (3, 6, 496)
    assert MotionState.from_crop(crop, include_hands=False).hand_rotmats is None
    no_hands = _crop(g, batch=1, frames=2, hands=False)
    assert MotionState.from_crop(no_hands).pack().shape == (1, 2, 226)
    with pytest.raises(ValueError, match="hand_quats"):
        MotionState.from_crop(no_hands, include_hands=True)


def test_to_and_map() -> None:
    state = _random_state(torch.Generator().manual_seed(3), batch=1, frames=2, num_betas=4, hands=False)
    single = state.to(dtype=torch.float32)
    assert single.betas.dtype == torch.float32 and single.hand_rotmats is None
    doubled = state.map(lambda t: 2 * t)
    assert torch.equal(doubled.contacts, 2 * state.contacts)


# --- placement ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def body():
    return load_body_model("default").to(dtype=torch.float64)


def test_placement_puts_the_cpf_on_the_trajectory(body) -> None:
    g = torch.Generator().manual_seed(4)
    frames = 8
    state = _random_state(g, batch=2, frames=frames, num_betas=body.num_betas, hands=False)
    T_world_cpf = torch.cat(
        (quat_from_axis_angle(torch.randn(2, frames, 3, generator=g, dtype=torch.float64)),
         torch.randn(2, frames, 3, generator=g, dtype=torch.float64)),
        dim=-1,
    )  # fmt: skip
    posed = place_on_cpf(body, state, T_world_cpf)
    T_world_root = root_from_cpf(body, state, T_world_cpf)
    assert T_world_root.shape == (2, frames, 7) and posed.p_world_joint.shape == (2, frames, 22, 3)
    placed = posed.T_world_cpf
    assert torch.allclose(placed[..., 4:], T_world_cpf[..., 4:], atol=1e-5)
    assert torch.allclose(quat_to_matrix(placed[..., :4]), quat_to_matrix(T_world_cpf[..., :4]), atol=1e-5)
    # The same as posing the body from the returned root with the time-averaged shape.
    refit = body.with_shape(state.betas.mean(dim=-2, keepdim=True)).with_pose_matrices(
        quat_to_matrix(T_world_root[..., :4]), T_world_root[..., 4:], state.body_rotmats
    )
    assert torch.allclose(refit.p_world_joint, posed.p_world_joint, atol=1e-10)


def test_placing_the_ground_truth_recovers_the_root(body) -> None:
    g = torch.Generator().manual_seed(5)
    frames = 10
    betas = torch.randn(1, 1, body.num_betas, generator=g, dtype=torch.float64)
    body_rotmats = _random_rotmats(g, 1, frames, 21, scale=0.4)
    R_world_root = _random_rotmats(g, 1, frames)
    p_world_root = torch.randn(1, frames, 3, generator=g, dtype=torch.float64)
    truth = body.with_shape(betas).with_pose_matrices(R_world_root, p_world_root, body_rotmats)

    state = MotionState(
        betas=betas.expand(1, frames, -1),
        body_rotmats=body_rotmats,
        contacts=torch.zeros(1, frames, 21, dtype=torch.float64),
    )
    posed = place_on_cpf(body, state, truth.T_world_cpf)
    T_world_root = root_from_cpf(body, state, truth.T_world_cpf)
    assert torch.allclose(quat_to_matrix(T_world_root[..., :4]), R_world_root, atol=1e-6)
    assert torch.allclose(T_world_root[..., 4:], p_world_root, atol=1e-6)
    assert torch.allclose(posed.p_world_joint, truth.p_world_joint, atol=1e-6)
