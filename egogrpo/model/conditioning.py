"""EgoAllo's invariant conditioning g(·) on the central-pupil-frame trajectory (reference/egoallo.md §3).

Per frame t (`cond_param="ours"`), a raw vector c_t of 22 numbers:

    [ΔT_t top 3×4 row-major (12) | CPF height above the floor (1) | Rz(−ψ_t) R_world_cpf(t) row-major (9)]

with ΔT_t = T_world_cpf(t−1)⁻¹ T_world_cpf(t) (invariant to any rigid change of world frame) and ψ_t
the heading of the CPF's forward (+z) axis (so the last 9 keep pitch and roll but not the heading).
The 9 are present only with `include_canonicalized_cpf_rotation_in_cond`. Then Fourier features:
[c, sin(2^k c_i), cos(2^k c_i)] with index i·K + k inside each block, K = `fourier_enc_freqs`.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.config import DenoiserConfig
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_to_matrix, remove_yaw, se3_compose, se3_inverse


def _raw_dim(config: DenoiserConfig) -> int:
    """Width of the raw conditioning vector before the Fourier features."""
    check_conditioning_config(config)
    return 12 + 1 + (9 if config.include_canonicalized_cpf_rotation_in_cond else 0)


def d_cond(config: DenoiserConfig) -> int:
    """Width of the conditioning the denoiser takes per frame (154 for EgoAllo's settings)."""
    return _raw_dim(config) * (1 + 2 * config.fourier_enc_freqs)


def check_conditioning_config(config: DenoiserConfig) -> None:
    """EgogrpoError unless the config asks for the conditioning implemented here (EgoAllo's "ours")."""
    if config.cond_param != "ours":
        raise EgogrpoError(
            f"DenoiserConfig.cond_param={config.cond_param!r} is not supported; egogrpo implements only "
            "EgoAllo's default 'ours' (relative CPF motion, height, yaw-free CPF rotation)"
        )
    if config.include_hand_positions_cond:
        raise EgogrpoError(
            "DenoiserConfig.include_hand_positions_cond=True is not supported (EgoAllo never fed hand positions "
            "to the network either)"
        )
    if config.fourier_enc_freqs < 0:
        raise EgogrpoError(f"DenoiserConfig.fourier_enc_freqs must be ≥ 0, got {config.fourier_enc_freqs}")


def fourier_encode(x: Float[Tensor, "*batch C"], num_freqs: int) -> Float[Tensor, "*batch C+2*C*K"]:
    """[x, sin(2^k x_i), cos(2^k x_i)] for k = 0..K−1; inside each block the index is i·K + k.

    The cosine is evaluated as sin(· + π/2), as EgoAllo does (the same values up to rounding).
    """
    coefficients = 2.0 ** torch.arange(num_freqs, dtype=x.dtype, device=x.device)  # (K,)
    scaled = (x[..., :, None] * coefficients).flatten(-2)  # (..., C·K), index i·K + k
    return torch.cat((x, torch.sin(scaled), torch.sin(scaled + math.pi / 2)), dim=-1)


def raw_cpf_conditioning(
    T_cpf_tm1_cpf_t: Float[Tensor, "*batch T 7"],
    T_world_cpf: Float[Tensor, "*batch T 7"],
    floor_z: float | Float[Tensor, "*#batch #T"] = 0.0,
    *,
    config: DenoiserConfig,
) -> Float[Tensor, "*batch T C"]:
    """The 22 (or 13) raw numbers per frame, before the Fourier features."""
    check_conditioning_config(config)
    delta = quat_to_matrix(T_cpf_tm1_cpf_t[..., :4])  # (..., T, 3, 3)
    delta_3x4 = torch.cat((delta, T_cpf_tm1_cpf_t[..., 4:, None]), dim=-1)  # [R | p]
    height = T_world_cpf[..., 6] - floor_z  # (..., T)
    parts = [delta_3x4.flatten(-2), height[..., None]]
    if config.include_canonicalized_cpf_rotation_in_cond:
        R_world_cpf = quat_to_matrix(T_world_cpf[..., :4])
        parts.append(remove_yaw(R_world_cpf).flatten(-2))  # Rz(−ψ) R, ψ from the CPF's +z axis
    return torch.cat(parts, dim=-1)


def cpf_conditioning(
    T_cpf_tm1_cpf_t: Float[Tensor, "*batch T 7"],
    T_world_cpf: Float[Tensor, "*batch T 7"],
    floor_z: float | Float[Tensor, "*#batch #T"] = 0.0,
    *,
    config: DenoiserConfig,
) -> Float[Tensor, "*batch T d_cond"]:
    """EgoAllo's conditioning for each frame: raw CPF features then Fourier features.

    T_cpf_tm1_cpf_t: each frame's CPF motion from the previous frame (wxyz_xyz), as in a `MotionCrop`.
    T_world_cpf:     the CPF poses in a z-up world frame.
    floor_z:         the floor height in that frame (a float, or a tensor broadcastable to (*batch, T)).
    """
    raw = raw_cpf_conditioning(T_cpf_tm1_cpf_t, T_world_cpf, floor_z, config=config)
    return fourier_encode(raw, config.fourier_enc_freqs)


def relative_cpf_motion(T_world_cpf: Float[Tensor, "*batch T+1 7"]) -> Float[Tensor, "*batch T 7"]:
    """T_world_cpf(t−1)⁻¹ T_world_cpf(t) for t = 1..T (one frame fewer than the trajectory)."""
    return se3_compose(se3_inverse(T_world_cpf[..., :-1, :]), T_world_cpf[..., 1:, :])


def cpf_conditioning_from_trajectory(
    T_world_cpf: Float[Tensor, "*batch T+1 7"],
    floor_z: float | Float[Tensor, "*#batch #T"] = 0.0,
    *,
    config: DenoiserConfig,
) -> Float[Tensor, "*batch T d_cond"]:
    """Conditioning for frames 1..T of a CPF trajectory of T+1 poses (frame 0 only supplies the first motion)."""
    return cpf_conditioning(relative_cpf_motion(T_world_cpf), T_world_cpf[..., 1:, :], floor_z, config=config)
