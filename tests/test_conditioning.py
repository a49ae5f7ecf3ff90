"""EgoAllo's CPF conditioning against an independent float64 numpy computation, its invariances and layout."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egogrpo.config import DENOISER_PRESETS
from egogrpo.errors import EgogrpoError
from egogrpo.model.conditioning import (
    cpf_conditioning,
    cpf_conditioning_from_trajectory,
    d_cond,
    fourier_encode,
    raw_cpf_conditioning,
    relative_cpf_motion,
)

CONFIG = DENOISER_PRESETS["egoallo"]


# --- an independent numpy reference --------------------------------------------------------------


def np_quat_to_matrix(q: np.ndarray) -> np.ndarray:
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack(
        [
            np.stack([w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z], -1),
        ],
        -2,
    )


def np_homogeneous(T: np.ndarray) -> np.ndarray:
    M = np.zeros((*T.shape[:-1], 4, 4))
    M[..., :3, :3] = np_quat_to_matrix(T[..., :4])
    M[..., :3, 3] = T[..., 4:]
    M[..., 3, 3] = 1.0
    return M


def np_conditioning(trajectory: np.ndarray, floor_z: float, num_freqs: int) -> np.ndarray:
    """Conditioning for frames 1..T of a (T+1, 7) CPF trajectory, written from the definition."""
    M = np_homogeneous(trajectory)
    rows = []
    for t in range(1, len(M)):
        delta = np.linalg.inv(M[t - 1]) @ M[t]
        R = M[t, :3, :3]
        forward = R @ np.array([0.0, 0.0, 1.0])
        psi = math.atan2(forward[1], forward[0])
        Rz = np.array([[math.cos(-psi), -math.sin(-psi), 0], [math.sin(-psi), math.cos(-psi), 0], [0, 0, 1]])
        c = np.concatenate([delta[:3, :].reshape(-1), [M[t, 2, 3] - floor_z], (Rz @ R).reshape(-1)])
        sines = [math.sin(2.0**k * c[i]) for i in range(len(c)) for k in range(num_freqs)]
        cosines = [math.cos(2.0**k * c[i]) for i in range(len(c)) for k in range(num_freqs)]
        rows.append(np.concatenate([c, sines, cosines]))
    return np.stack(rows)


def random_trajectory(rng: np.random.Generator, frames: int) -> np.ndarray:
    """A wandering head: random-walk orientation (wxyz) and position, z around 1.6 m."""
    q = rng.normal(size=4)
    quats, positions = [], []
    p = np.array([0.0, 0.0, 1.6])
    for _ in range(frames):
        q = q + 0.3 * rng.normal(size=4)
        q /= np.linalg.norm(q)
        p = p + 0.05 * rng.normal(size=3)
        quats.append(q.copy())
        positions.append(p.copy())
    return np.concatenate([np.array(quats), np.array(positions)], axis=-1)


# --- tests ----------------------------------------------------------------------------------------


def test_dims() -> None:
    assert d_cond(CONFIG) == 154
    assert d_cond(dataclasses.replace(CONFIG, include_canonicalized_cpf_rotation_in_cond=False)) == 13 * 7
    assert d_cond(dataclasses.replace(CONFIG, fourier_enc_freqs=0)) == 22


def test_matches_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    trajectories = np.stack([random_trajectory(rng, 12) for _ in range(3)])  # (3, 12, 7)
    floor_z = 0.25
    expected = np.stack([np_conditioning(tr, floor_z, 3) for tr in trajectories])
    T = torch.from_numpy(trajectories)
    got = cpf_conditioning_from_trajectory(T, floor_z, config=CONFIG)
    assert got.shape == (3, 11, 154) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    # The same through the crop-style API, with the relative motion computed independently.
    M = np_homogeneous(trajectories)
    rel = np.linalg.inv(M[:, :-1]) @ M[:, 1:]
    rel_quat = relative_cpf_motion(T)[..., :4]
    np.testing.assert_allclose(np_quat_to_matrix(rel_quat.numpy()), rel[..., :3, :3], atol=1e-12)
    T_cpf_tm1_cpf_t = torch.cat((rel_quat, torch.from_numpy(rel[..., :3, 3])), dim=-1)
    got2 = cpf_conditioning(T_cpf_tm1_cpf_t, T[:, 1:], floor_z, config=CONFIG)
    np.testing.assert_allclose(got2.numpy(), expected, atol=1e-10)


def test_fourier_layout_by_hand() -> None:
    a, b = 0.3, -1.1
    got = fourier_encode(torch.tensor([[a, b]], dtype=torch.float64), 3)[0].tolist()
    expected = [a, b]
    expected += [math.sin(a), math.sin(2 * a), math.sin(4 * a), math.sin(b), math.sin(2 * b), math.sin(4 * b)]
    expected += [math.cos(a), math.cos(2 * a), math.cos(4 * a), math.cos(b), math.cos(2 * b), math.cos(4 * b)]
    np.testing.assert_allclose(got, expected, atol=1e-12)


def _transform(trajectory: torch.Tensor, yaw: float, axis_tilt: float, translation: list[float]) -> torch.Tensor:
    """Left-multiply every pose by a world transform G (rotation about z by `yaw`, then about x by `axis_tilt`)."""
    c, s = math.cos(yaw), math.sin(yaw)
    Rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    c, s = math.cos(axis_tilt), math.sin(axis_tilt)
    Rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    G = np.eye(4)
    G[:3, :3] = Rx @ Rz
    G[:3, 3] = translation
    M = G @ np_homogeneous(trajectory.numpy())
    xyzw = Rotation.from_matrix(M[..., :3, :3].reshape(-1, 3, 3)).as_quat().reshape(*M.shape[:-2], 4)
    wxyz = np.concatenate([xyzw[..., 3:], xyzw[..., :3]], axis=-1)
    return torch.from_numpy(np.concatenate([wxyz, M[..., :3, 3]], axis=-1))


def test_invariances() -> None:
    rng = np.random.default_rng(1)
    T = torch.from_numpy(random_trajectory(rng, 20))
    base = raw_cpf_conditioning(relative_cpf_motion(T), T[1:], config=CONFIG)

    # Any rigid change of world frame: the relative motion (first 12) is unchanged, the rest is not.
    moved = _transform(T, yaw=0.7, axis_tilt=0.4, translation=[1.0, -2.0, 0.5])
    cond = raw_cpf_conditioning(relative_cpf_motion(moved), moved[1:], config=CONFIG)
    torch.testing.assert_close(cond[..., :12], base[..., :12], atol=1e-10, rtol=0)
    assert not torch.allclose(cond[..., 12:], base[..., 12:], atol=1e-3)

    # A yaw rotation plus a horizontal translation: everything is unchanged.
    turned = _transform(T, yaw=-2.3, axis_tilt=0.0, translation=[3.0, 4.0, 0.0])
    full = cpf_conditioning_from_trajectory(turned, config=CONFIG)
    torch.testing.assert_close(full, cpf_conditioning_from_trajectory(T, config=CONFIG), atol=1e-9, rtol=0)

    # Raising the world by h with the floor at h changes nothing either.
    raised = T.clone()
    raised[..., 6] += 0.8
    torch.testing.assert_close(
        cpf_conditioning_from_trajectory(raised, 0.8, config=CONFIG),
        cpf_conditioning_from_trajectory(T, config=CONFIG),
        atol=1e-12,
        rtol=0,
    )


def test_float32_and_tensor_floor() -> None:
    T = torch.from_numpy(np.stack([random_trajectory(np.random.default_rng(s), 5) for s in (2, 3)])).float()
    floors = torch.tensor([[0.0], [0.5]])  # (batch, 1): one floor per sequence
    cond = cpf_conditioning_from_trajectory(T, floors, config=CONFIG)
    assert cond.dtype == torch.float32
    torch.testing.assert_close(cond[..., 12], T[:, 1:, 6] - floors)


@pytest.mark.parametrize(
    ("field", "value"), [("cond_param", "absolute"), ("include_hand_positions_cond", True)]
)  # fmt: skip
def test_refuses_other_conditionings(field: str, value: object) -> None:
    config = dataclasses.replace(CONFIG, **{field: value})
    T = torch.zeros(1, 3, 7)
    T[..., 0] = 1.0
    with pytest.raises(EgogrpoError, match=field):
        cpf_conditioning_from_trajectory(T, config=config)
    with pytest.raises(EgogrpoError, match=field):
        d_cond(config)
