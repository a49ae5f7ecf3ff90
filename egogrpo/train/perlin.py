"""Temporally smooth Perlin noise on the head (CPF) translation: the perturbed condition of paper Eq. 16.

H̃ = {R, τ + λ·P(t)}: only the world-frame TRANSLATION τ of the central pupil frame is perturbed; its
rotations R are kept. P is 1-D improved Perlin noise (quintic fade, C² in time), one independent noise
per world axis, summed over octaves and PEAK-normalised: |P| ≤ 1 on each axis. So the amplitude λ
(`PerlinConfig.amplitude`) is in metres per axis: λ = 0.1 moves the head by at most ±10 cm along x, y
and z (at most √3·λ in 3-D). Everything derived from the poses — the relative motions T_cpf_tm1_cpf_t
and the height above the floor — is recomputed from the perturbed poses before the conditioning g(·).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from egogrpo.config import DenoiserConfig, PerlinConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import se3_compose, se3_inverse
from egogrpo.model.conditioning import cpf_conditioning, relative_cpf_motion
from egogrpo.model.noise import PURPOSE_PERLIN, stream_key, uniform

SCOPES = ("group", "member")


def _check_shape_config(config: PerlinConfig) -> None:
    """EgogrpoError naming the first PerlinConfig field (other than amplitude) that is out of range."""
    if not (math.isfinite(config.lattice_frames) and config.lattice_frames > 0):
        raise EgogrpoError(f"PerlinConfig.lattice_frames must be a finite number > 0, got {config.lattice_frames}")
    if int(config.octaves) != config.octaves or config.octaves < 1:
        raise EgogrpoError(f"PerlinConfig.octaves must be an integer ≥ 1, got {config.octaves}")
    if not (math.isfinite(config.persistence) and config.persistence > 0):
        raise EgogrpoError(f"PerlinConfig.persistence must be a finite number > 0, got {config.persistence}")
    if not (math.isfinite(config.lacunarity) and config.lacunarity >= 1):
        raise EgogrpoError(f"PerlinConfig.lacunarity must be a finite number ≥ 1, got {config.lacunarity}")


def _fade(t: Tensor) -> Tensor:
    """6t⁵ − 15t⁴ + 10t³: zero first and second derivatives at t = 0 and 1."""
    return t * t * t * (t * (t * 6 - 15) + 10)


def _perlin_octave(gradients: Float[Tensor, "*batch N"], x: Float[Tensor, "*batch T"]) -> Float[Tensor, "*batch T"]:
    """One octave of 1-D improved Perlin noise at positions 0 ≤ x < N − 1; gradient g_i sits at lattice point i.

    n(x) = (1 − f(t))·g_i·t + f(t)·g_{i+1}·(t − 1), i = ⌊x⌋, t = x − i: 0 at integers, |n| ≤ 0.5·max|g|.
    """
    i0 = x.floor().clamp(0, gradients.shape[-1] - 2)
    t = x - i0
    i0 = i0.long()
    g0, g1 = torch.gather(gradients, -1, i0), torch.gather(gradients, -1, i0 + 1)
    f = _fade(t)
    return (1 - f) * g0 * t + f * g1 * (t - 1)


def _perlin_draws(
    keys: Int[Tensor, "*batch 2"], num_frames: int, channels: int, config: PerlinConfig
) -> tuple[Float[Tensor, "*batch C O N"], Float[Tensor, "*batch C O"]]:
    """Each key's gradients (uniform in [−1, 1)) and phases φ (uniform in [0, 1)), one set per (channel, octave)."""
    _check_shape_config(config)
    top = config.lacunarity ** (config.octaves - 1) * max(num_frames - 1, 0) / config.lattice_frames
    num_points = math.floor(top) + 3  # x < top + 1, so ⌊x⌋ + 1 ≤ ⌊top⌋ + 2
    draws = uniform(keys, (channels, config.octaves, 1 + num_points))
    return draws[..., 1:] * 2 - 1, draws[..., 0]


def perlin_noise(
    keys: Int[Tensor, "*batch 2"], num_frames: int, channels: int, config: PerlinConfig
) -> Float[Tensor, "*batch T channels"]:
    """Peak-normalised fractal Perlin noise, float32: |P| ≤ 1, zero mean over keys, C² in time.

    P = 2·Σ_o p^o·n_o / Σ_o p^o with frame k of octave o at x = l^o·k/L + φ_{c,o} (L = lattice_frames,
    p = persistence, l = lacunarity). A pure function of each key: a row never depends on other rows.
    """
    gradients, phases = _perlin_draws(keys, num_frames, channels, config)
    frames = torch.arange(num_frames, dtype=gradients.dtype, device=gradients.device)
    total = torch.zeros((*gradients.shape[:-2], num_frames), dtype=gradients.dtype, device=gradients.device)
    weight_sum = 0.0
    for o in range(config.octaves):  # a loop of elementwise ops: bit-identical whatever the batch layout
        x = phases[..., o, None] + frames * (config.lacunarity**o / config.lattice_frames)
        weight = config.persistence**o
        total = total + weight * _perlin_octave(gradients[..., o, :], x)
        weight_sum += weight
    return (total * (2.0 / weight_sum)).transpose(-1, -2)


def perturb_cpf_trajectory(
    T_world_cpf: Float[Tensor, "*batch L 7"],
    T_cpf_tm1_cpf_t: Float[Tensor, "*batch L 7"],
    offsets: Float[Tensor, "*batch L+1 3"],
) -> tuple[Float[Tensor, "*batch L 7"], Float[Tensor, "*batch L 7"]]:
    """Add world-frame translation offsets (metres) to the CPF poses and recompute the relative motions.

    Frame −1 (the pose before the crop), T_world_cpf[0]·T_cpf_tm1_cpf_t[0]⁻¹, gets offsets[..., 0, :];
    frames 0..L−1 get offsets[..., 1:, :]. Rotations are unchanged. Batch shapes broadcast.
    Returns (T_world_cpf', T_cpf_tm1_cpf_t'), the latter from the perturbed absolute poses.
    """
    previous = se3_compose(T_world_cpf[..., :1, :], se3_inverse(T_cpf_tm1_cpf_t[..., :1, :]))
    trajectory = torch.cat((previous, T_world_cpf), dim=-2)  # (..., L+1, 7)
    batch = torch.broadcast_shapes(trajectory.shape[:-1], offsets.shape[:-1])
    trajectory = trajectory.expand(*batch, 7)
    trajectory = torch.cat((trajectory[..., :4], trajectory[..., 4:] + offsets.to(trajectory.dtype)), dim=-1)
    return trajectory[..., 1:, :], relative_cpf_motion(trajectory)


def perturbed_condition(
    crops: MotionCrop, keys: Int[Tensor, "B G 2"], config: PerlinConfig, model_config: DenoiserConfig
) -> Float[Tensor, "B G L C"]:
    """The denoiser condition of every member of B groups of G: g(·) of the crop with λ·P added to the CPF translation.

    keys: one Perlin stream per member (identical within a group for scope "group"). The noise covers the L
    poses and the one before the crop. The height above the floor is the perturbed z (floor_z = 0).
    With amplitude 0 the result is exactly the unperturbed condition, expanded over G.
    """
    if not (math.isfinite(config.amplitude) and config.amplitude >= 0):
        raise EgogrpoError(f"PerlinConfig.amplitude must be a finite number ≥ 0 (metres), got {config.amplitude}")
    B, G = keys.shape[:2]
    T_world_cpf, T_cpf_tm1_cpf_t = crops.T_world_cpf, crops.T_cpf_tm1_cpf_t  # (B, L, 7)
    if config.amplitude == 0:
        _check_shape_config(config)
        cond = cpf_conditioning(T_cpf_tm1_cpf_t, T_world_cpf, config=model_config)
        return cond[:, None].expand(B, G, *cond.shape[1:])
    L = T_world_cpf.shape[-2]
    offsets = config.amplitude * perlin_noise(keys.to(T_world_cpf.device), L + 1, 3, config)  # (B, G, L+1, 3)
    perturbed, relative = perturb_cpf_trajectory(T_world_cpf[:, None], T_cpf_tm1_cpf_t[:, None], offsets)
    return cpf_conditioning(relative, perturbed, 0.0, config=model_config)


def perlin_keys(
    seed: int,
    iteration: int,
    group_ids: Int[Tensor, "B"],  # noqa: F821
    member_ids: Int[Tensor, "G"],  # noqa: F821
    scope: str,
) -> Int[Tensor, "B G 2"]:
    """stream_key(seed, PURPOSE_PERLIN, iteration, group, member), member replaced by 0 for scope "group"."""
    if scope not in SCOPES:
        raise EgogrpoError(f"PerlinConfig.scope must be one of {', '.join(map(repr, SCOPES))}, got {scope!r}")
    members = member_ids[None, :] if scope == "member" else torch.zeros_like(member_ids)[None, :]
    return stream_key(seed, PURPOSE_PERLIN, iteration, group_ids[:, None], members)
