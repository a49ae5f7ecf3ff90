"""Perlin noise on the CPF translation: the noise against a float64 numpy formula, its bound, mean,
smoothness and seeding, and the perturbed condition against independent pose arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egogrpo.config import DENOISER_PRESETS, PerlinConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.errors import EgogrpoError
from egogrpo.model.conditioning import cpf_conditioning, raw_cpf_conditioning
from egogrpo.model.noise import PURPOSE_PERLIN, stream_key
from egogrpo.train.perlin import (
    _perlin_draws,
    _perlin_octave,
    perlin_keys,
    perlin_noise,
    perturb_cpf_trajectory,
    perturbed_condition,
)

MODEL = DENOISER_PRESETS["tiny"]
CONFIG = PerlinConfig(amplitude=0.1, lattice_frames=8.0, octaves=2, persistence=0.5, lacunarity=2.0)


def keys_for(n: int, seed: int = 0) -> torch.Tensor:
    return stream_key(seed, PURPOSE_PERLIN, 0, torch.arange(n))


# --- an independent float64 numpy reference -----------------------------------------------------------


def np_octave(g: np.ndarray, x: np.ndarray, fade=lambda t: 6 * t**5 - 15 * t**4 + 10 * t**3) -> np.ndarray:
    """n(x) = (1 − f(t))·g_i·t + f(t)·g_{i+1}·(t − 1), written from the definition."""
    i = np.floor(x).astype(int)
    t = x - i
    f = fade(t)
    return (1 - f) * np.take_along_axis(g, i, -1) * t + f * np.take_along_axis(g, i + 1, -1) * (t - 1)


def np_fbm(gradients: np.ndarray, phases: np.ndarray, num_frames: int, config: PerlinConfig) -> np.ndarray:
    """2·Σ_o p^o n(l^o·k/L + φ_o) / Σ_o p^o for (..., C, O, N) gradients and (..., C, O) phases → (..., T, C)."""
    k = np.arange(num_frames)
    total, weights = 0.0, 0.0
    for o in range(config.octaves):
        x = config.lacunarity**o * k / config.lattice_frames + phases[..., o, None]
        total = total + config.persistence**o * np_octave(gradients[..., o, :], x)
        weights += config.persistence**o
    return np.swapaxes(2 * total / weights, -1, -2)


def np_homogeneous(T: np.ndarray) -> np.ndarray:
    M = np.zeros((*T.shape[:-1], 4, 4))
    M[..., :3, :3] = Rotation.from_quat(T.reshape(-1, 7)[:, [1, 2, 3, 0]]).as_matrix().reshape(*T.shape[:-1], 3, 3)
    M[..., :3, 3] = T[..., 4:]
    M[..., 3, 3] = 1.0
    return M


def np_pose(M: np.ndarray) -> np.ndarray:
    xyzw = Rotation.from_matrix(M[..., :3, :3].reshape(-1, 3, 3)).as_quat().reshape(*M.shape[:-2], 4)
    return np.concatenate((xyzw[..., [3, 0, 1, 2]], M[..., :3, 3]), axis=-1)


def synthetic_crops(B: int = 3, L: int = 20, seed: int = 0) -> tuple[MotionCrop, np.ndarray]:
    """B crops of L frames from random (L+1)-pose CPF trajectories; also returns those trajectories (B, L+1, 7)."""
    rng = np.random.default_rng(seed)
    q = Rotation.random(B * (L + 1), random_state=seed).as_quat()[:, [3, 0, 1, 2]].reshape(B, L + 1, 4)
    p = rng.normal(size=(B, L + 1, 3)) * 0.3 + np.array([0.0, 0.0, 1.6])
    trajectory = np.concatenate((q, p), axis=-1)
    M = np_homogeneous(trajectory)
    relative = np_pose(np.linalg.inv(M[:, :-1]) @ M[:, 1:])
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)
    crops = MotionCrop(
        T_world_root=torch.zeros(B, L, 7),
        body_quats=torch.zeros(B, L, 21, 4),
        contacts=torch.zeros(B, L, 21),
        betas=torch.zeros(B, 1, 10),
        T_world_cpf=f32(trajectory[:, 1:]),
        T_cpf_tm1_cpf_t=f32(relative),
        height_from_floor=torch.zeros(B, L, 1),
        joints_wrt_cpf=torch.zeros(B, L, 21, 3),
    )
    return crops, trajectory


# --- the noise ------------------------------------------------------------------------------------------


def test_single_octave_with_zero_phase_is_exactly_zero_at_lattice_points() -> None:
    gradients = torch.rand(5, 12) * 2 - 1
    x = (torch.arange(80) / 8.0).expand(5, 80)  # lattice spacing 8 frames, phase 0
    n = _perlin_octave(gradients, x)
    assert torch.equal(n[:, ::8], torch.zeros(5, 10))
    assert (n.reshape(5, 10, 8)[:, :, 1:].abs() > 0).float().mean() > 0.99  # and not zero elsewhere


def test_single_octave_matches_float64_numpy_formula() -> None:
    rng = np.random.default_rng(1)
    g, x = rng.uniform(-1, 1, size=(4, 9)), rng.uniform(0, 8, size=(4, 200))
    expected = np_octave(g, x)
    got64 = _perlin_octave(torch.tensor(g), torch.tensor(x)).numpy()
    got32 = _perlin_octave(torch.tensor(g, dtype=torch.float32), torch.tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got64, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got32, expected, rtol=0, atol=2e-6)
    assert np.abs(expected).max() <= 0.5


def test_fractal_noise_matches_numpy_sum_of_octaves() -> None:
    config = dataclasses.replace(CONFIG, octaves=3, persistence=0.6, lacunarity=2.5)
    keys = keys_for(6)
    gradients, phases = _perlin_draws(keys, 41, 3, config)
    expected = np_fbm(gradients.double().numpy(), phases.double().numpy(), 41, config)
    got = perlin_noise(keys, 41, 3, config)
    assert got.shape == (6, 41, 3) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5)


def test_peak_normalised_bound_holds_and_is_nearly_reached() -> None:
    P = perlin_noise(keys_for(2000), 64, 3, CONFIG)
    assert P.abs().max() <= 1.0
    assert P.abs().max() > 0.6
    single = perlin_noise(keys_for(2000), 64, 3, dataclasses.replace(CONFIG, octaves=1))
    assert 0.9 < single.abs().max() <= 1.0


def test_zero_mean_over_keys_at_every_frame() -> None:
    keys = keys_for(4000, seed=7)
    gradients, _ = _perlin_draws(keys, 40, 2, CONFIG)
    assert gradients.min() >= -1 and gradients.max() < 1 and abs(gradients.double().mean()) < 0.01  # symmetric
    P = perlin_noise(keys, 40, 2, CONFIG).double()
    mean, standard_error = P.mean(0), P.std(0) / 4000**0.5
    assert (mean.abs() < 4.5 * standard_error).all()
    assert (P.std(0) > 0.05).all()  # a real spread, so the check above means something


def _derivative_bounds() -> tuple[float, float]:
    """max over t of |∂n/∂g_i| + |∂n/∂g_i+1| for n′ and n″ (so |n′| ≤ D1, |n″| ≤ D2 when |g| ≤ 1)."""
    t = np.linspace(0, 1, 100_001)
    f, f1, f2 = 6 * t**5 - 15 * t**4 + 10 * t**3, 30 * t**4 - 60 * t**3 + 30 * t**2, 120 * t**3 - 180 * t**2 + 60 * t
    d1 = np.abs(1 - f - f1 * t) + np.abs(f + f1 * (t - 1))
    d2 = np.abs(-f2 * t - 2 * f1) + np.abs(f2 * (t - 1) + 2 * f1)
    return float(d1.max()), float(d2.max())


def test_first_and_second_differences_are_order_1_over_L_and_1_over_L_squared() -> None:
    config = dataclasses.replace(CONFIG, lattice_frames=30.0)
    P = perlin_noise(keys_for(500), 128, 3, config).double()
    D1, D2 = _derivative_bounds()
    weights = [config.persistence**o for o in range(config.octaves)]
    scale = [config.lacunarity**o / config.lattice_frames for o in range(config.octaves)]
    bound1 = 2 * D1 * sum(w * s for w, s in zip(weights, scale, strict=True)) / sum(weights)
    bound2 = 2 * D2 * sum(w * s * s for w, s in zip(weights, scale, strict=True)) / sum(weights)
    first, second = P.diff(dim=-2).abs().max(), P.diff(n=2, dim=-2).abs().max()
    assert first <= bound1 * 1.001 and second <= bound2 * 1.001
    assert first > 0.2 * bound1  # the bounds are not vacuous
    white = (torch.rand(500, 128, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1).double()
    assert white.diff(n=2, dim=-2).abs().max() > 50 * second


def _second_derivative_jump(octave, g: np.ndarray, h: float = 1e-4) -> float:
    """max over interior lattice points i of |one-sided n″ from the right − from the left| (finite differences)."""
    i = np.arange(1, g.shape[-1] - 1, dtype=float)
    right = (octave(g, i + 2 * h) - 2 * octave(g, i + h) + octave(g, i)) / h**2
    left = (octave(g, i) - 2 * octave(g, i - h) + octave(g, i - 2 * h)) / h**2
    return float(np.abs(right - left).max())


def test_c2_at_lattice_points() -> None:
    g = np.random.default_rng(2).uniform(-1, 1, size=(1, 16))
    ours = lambda g, x: _perlin_octave(torch.tensor(g), torch.tensor(x)[None]).numpy()
    assert _second_derivative_jump(ours, g) < 0.05
    cubic = lambda g, x: np_octave(g, x[None], fade=lambda t: 3 * t**2 - 2 * t**3)  # only C¹
    assert _second_derivative_jump(cubic, g) > 1.0  # the check can tell


def test_same_key_same_noise_and_different_keys_differ() -> None:
    keys = keys_for(2)
    a, b = perlin_noise(keys, 30, 3, CONFIG), perlin_noise(keys.clone(), 30, 3, CONFIG)
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])
    assert not torch.allclose(a, perlin_noise(keys_for(2, seed=1), 30, 3, CONFIG))


def test_batch_equals_each_row_alone() -> None:
    keys = perlin_keys(3, 5, torch.arange(4), torch.arange(5), "member")  # (4, 5, 2)
    batched = perlin_noise(keys, 33, 3, CONFIG)
    assert batched.shape == (4, 5, 33, 3)
    for b in range(4):
        for g in range(5):
            assert torch.equal(batched[b, g], perlin_noise(keys[b, g], 33, 3, CONFIG))
    assert torch.equal(batched.reshape(20, 33, 3), perlin_noise(keys.reshape(20, 2), 33, 3, CONFIG))


# --- the perturbed trajectory ---------------------------------------------------------------------------


def test_zero_offsets_reproduce_the_inputs() -> None:
    crops, _ = synthetic_crops()
    T, rel = perturb_cpf_trajectory(crops.T_world_cpf, crops.T_cpf_tm1_cpf_t, torch.zeros(3, 21, 3))
    torch.testing.assert_close(T, crops.T_world_cpf, rtol=0, atol=1e-6)
    sign = torch.sign((rel[..., :4] * crops.T_cpf_tm1_cpf_t[..., :4]).sum(-1, keepdim=True))  # q and −q agree
    torch.testing.assert_close(rel[..., :4] * sign, crops.T_cpf_tm1_cpf_t[..., :4], rtol=0, atol=1e-6)
    torch.testing.assert_close(rel[..., 4:], crops.T_cpf_tm1_cpf_t[..., 4:], rtol=0, atol=1e-6)


def test_random_offsets_move_translations_only_and_stay_consistent() -> None:
    crops, trajectory = synthetic_crops()
    offsets = torch.randn(3, 21, 3, generator=torch.Generator().manual_seed(3)) * 0.1
    T, rel = perturb_cpf_trajectory(crops.T_world_cpf, crops.T_cpf_tm1_cpf_t, offsets)
    assert torch.equal(T[..., :4], crops.T_world_cpf[..., :4])
    torch.testing.assert_close(T[..., 4:] - crops.T_world_cpf[..., 4:], offsets[:, 1:], rtol=0, atol=1e-6)
    # T'[t−1]·rel'[t] = T'[t], with frame −1 the original previous pose moved by offsets[0]
    moved = trajectory.copy()
    moved[..., 4:] += offsets.double().numpy()
    M_prev = np_homogeneous(np.concatenate((moved[:, :1], T[:, :-1].double().numpy()), axis=1))
    composed = M_prev @ np_homogeneous(rel.double().numpy())
    np.testing.assert_allclose(composed, np_homogeneous(T.double().numpy()), rtol=0, atol=1e-5)


# --- the perturbed condition ----------------------------------------------------------------------------


def test_amplitude_zero_is_exactly_the_unperturbed_condition() -> None:
    crops, _ = synthetic_crops()
    keys = perlin_keys(0, 0, torch.arange(3), torch.arange(4), "member")
    cond = perturbed_condition(crops, keys, dataclasses.replace(CONFIG, amplitude=0.0), MODEL)
    expected = cpf_conditioning(crops.T_cpf_tm1_cpf_t, crops.T_world_cpf, config=MODEL)
    assert cond.shape == (3, 4, *expected.shape[1:])
    for g in range(4):
        assert torch.equal(cond[:, g], expected)


def test_group_scope_shares_within_group_and_member_scope_does_not() -> None:
    crops, _ = synthetic_crops()
    same = lambda x: x[:1].expand(3, *x.shape[1:])  # 3 copies of one crop: only the keys differ across groups
    crops = dataclasses.replace(crops, T_world_cpf=same(crops.T_world_cpf), T_cpf_tm1_cpf_t=same(crops.T_cpf_tm1_cpf_t))
    group = perturbed_condition(crops, perlin_keys(0, 1, torch.arange(3), torch.arange(4), "group"), CONFIG, MODEL)
    for g in range(1, 4):
        assert torch.equal(group[:, g], group[:, 0])
    assert not torch.allclose(group[0, 0], group[1, 0]) and not torch.allclose(group[1, 0], group[2, 0])
    member = perturbed_condition(crops, perlin_keys(0, 1, torch.arange(3), torch.arange(4), "member"), CONFIG, MODEL)
    assert not torch.allclose(member[0, 0], member[0, 1]) and not torch.allclose(member[0, 1], member[0, 2])


def test_condition_is_g_of_the_perturbed_trajectory() -> None:
    crops, trajectory = synthetic_crops(L=24)
    keys = perlin_keys(0, 2, torch.arange(3), torch.arange(2), "member")
    cond = perturbed_condition(crops, keys, CONFIG, MODEL)
    offsets = CONFIG.amplitude * perlin_noise(keys, 25, 3, CONFIG)  # (3, 2, 25, 3)
    assert offsets.abs().max() <= CONFIG.amplitude  # ≤ λ per axis
    # raw features from independent float64 arithmetic on the moved trajectory
    moved = np.repeat(trajectory[:, None], 2, axis=1)
    moved[..., 4:] += offsets.double().numpy()
    M = np_homogeneous(moved)
    delta = np.linalg.inv(M[..., :-1, :, :]) @ M[..., 1:, :, :]
    raw = cond[..., :22].double().numpy()  # the Fourier encoding starts with the raw features
    np.testing.assert_allclose(raw[..., :12], delta[..., :3, :].reshape(3, 2, 24, 12), rtol=0, atol=2e-5)
    unperturbed = raw_cpf_conditioning(crops.T_cpf_tm1_cpf_t, crops.T_world_cpf, config=MODEL)
    height_change = raw[..., 12] - unperturbed[:, None, :, 12].double().numpy()
    np.testing.assert_allclose(height_change, offsets[..., 1:, 2].double().numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(raw[..., 13:], np.repeat(unperturbed[:, None, :, 13:].numpy(), 2, 1), atol=1e-6)
    T, _rel = perturb_cpf_trajectory(crops.T_world_cpf[:, None], crops.T_cpf_tm1_cpf_t[:, None], offsets)
    assert (T[..., 4:] - crops.T_world_cpf[:, None, :, 4:]).abs().max() <= CONFIG.amplitude * (1 + 1e-5)
    assert torch.equal(cond[..., 12], T[..., 6])  # height above floor_z = 0 is the perturbed z


# --- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("amplitude", -0.1), ("amplitude", float("nan")), ("lattice_frames", 0.0), ("octaves", 0),
     ("persistence", 0.0), ("lacunarity", 0.5)],
)  # fmt: skip
def test_bad_config_values_name_the_field(field: str, value: float) -> None:
    crops, _ = synthetic_crops(B=1, L=4)
    keys = perlin_keys(0, 0, torch.arange(1), torch.arange(2), "group")
    with pytest.raises(EgogrpoError, match=rf"PerlinConfig\.{field}\b"):
        perturbed_condition(crops, keys, dataclasses.replace(CONFIG, **{field: value}), MODEL)


def test_unknown_scope_names_the_option() -> None:
    with pytest.raises(EgogrpoError, match=r"PerlinConfig\.scope"):
        perlin_keys(0, 0, torch.arange(2), torch.arange(2), "batch")
