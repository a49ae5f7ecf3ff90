"""Rigid transforms as `wxyz_xyz` 7-vectors (EgoAllo's on-disk layout), batched.

T_a_b maps points from frame b to frame a: p_a = T_a_b · p_b = R(q) p_b + t.
Tangent vectors are ordered (v, ω): translation part first, then rotation (as jaxlie).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.geometry.quaternion import (
    quat_apply,
    quat_conjugate,
    quat_from_axis_angle,
    quat_from_matrix,
    quat_identity,
    quat_multiply,
    quat_to_axis_angle,
    quat_to_matrix,
)

_SMALL_ANGLE_SQ = 1e-8


def se3_identity(
    *batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Float[Tensor, "*batch 7"]:
    """Identity transforms with the given batch shape."""
    return torch.cat(
        (quat_identity(*batch, dtype=dtype, device=device), torch.zeros(*batch, 3, dtype=dtype, device=device)), dim=-1
    )


def se3_from_rotation_translation(
    wxyz: Float[Tensor, "*batch 4"], xyz: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 7"]:
    """Concatenate a quaternion and a translation (broadcasting their batch shapes)."""
    batch = torch.broadcast_shapes(wxyz.shape[:-1], xyz.shape[:-1])
    return torch.cat((wxyz.expand(*batch, 4), xyz.expand(*batch, 3)), dim=-1)


def se3_compose(T_a_b: Float[Tensor, "*batch 7"], T_b_c: Float[Tensor, "*batch 7"]) -> Float[Tensor, "*batch 7"]:
    """T_a_c = T_a_b · T_b_c."""
    q_ab, t_ab = T_a_b[..., :4], T_a_b[..., 4:]
    q_bc, t_bc = T_b_c[..., :4], T_b_c[..., 4:]
    return se3_from_rotation_translation(quat_multiply(q_ab, q_bc), quat_apply(q_ab, t_bc) + t_ab)


def se3_inverse(T_a_b: Float[Tensor, "*batch 7"]) -> Float[Tensor, "*batch 7"]:
    """T_b_a = T_a_b⁻¹."""
    q_inv = quat_conjugate(T_a_b[..., :4])
    return torch.cat((q_inv, -quat_apply(q_inv, T_a_b[..., 4:])), dim=-1)


def se3_apply(T_a_b: Float[Tensor, "*batch 7"], p_b: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """p_a = R p_b + t."""
    return quat_apply(T_a_b[..., :4], p_b) + T_a_b[..., 4:]


def se3_to_matrix(T: Float[Tensor, "*batch 7"]) -> Float[Tensor, "*batch 4 4"]:
    """Homogeneous 4×4 matrix."""
    top = torch.cat((quat_to_matrix(T[..., :4]), T[..., 4:, None]), dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat((top, bottom), dim=-2)


def se3_from_matrix(M: Float[Tensor, "*batch 4 4"]) -> Float[Tensor, "*batch 7"]:
    """From a homogeneous 4×4 (or 3×4) matrix whose rotation block is orthonormal."""
    return torch.cat((quat_from_matrix(M[..., :3, :3]), M[..., :3, 3]), dim=-1)


def _skew(w: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3 3"]:
    x, y, z = w.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*w.shape, 3)


def se3_exp(tangent: Float[Tensor, "*batch 6"]) -> Float[Tensor, "*batch 7"]:
    """Exponential map from (v, ω) to a transform; t = V(ω) v with SO(3)'s left Jacobian V."""
    v, omega = tangent[..., :3], tangent[..., 3:]
    theta_sq = (omega * omega).sum(dim=-1)[..., None, None]
    small = theta_sq < _SMALL_ANGLE_SQ
    theta_sq_safe = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(theta_sq_safe)
    a = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - torch.cos(theta)) / theta_sq_safe)
    b = torch.where(small, 1.0 / 6.0 - theta_sq / 120.0, (theta - torch.sin(theta)) / (theta_sq_safe * theta))
    K = _skew(omega)
    eye = torch.eye(3, dtype=tangent.dtype, device=tangent.device)
    V = eye + a * K + b * (K @ K)
    t = (V @ v[..., None])[..., 0]
    return torch.cat((quat_from_axis_angle(omega), t), dim=-1)


def se3_log(T: Float[Tensor, "*batch 7"]) -> Float[Tensor, "*batch 6"]:
    """Logarithm map to (v, ω), the inverse of `se3_exp` (rotation angle ≤ π)."""
    omega = quat_to_axis_angle(T[..., :4])
    theta_sq = (omega * omega).sum(dim=-1)[..., None, None]
    small = theta_sq < _SMALL_ANGLE_SQ
    theta_sq_safe = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(theta_sq_safe)
    half = 0.5 * theta
    # V⁻¹ = I − ½K + c K², c = (1 − (θ/2) cot(θ/2)) / θ².
    c = torch.where(
        small, 1.0 / 12.0 + theta_sq / 720.0, (1.0 - half * torch.cos(half) / torch.sin(half)) / theta_sq_safe
    )
    K = _skew(omega)
    eye = torch.eye(3, dtype=T.dtype, device=T.device)
    V_inv = eye - 0.5 * K + c * (K @ K)
    v = (V_inv @ T[..., 4:, None])[..., 0]
    return torch.cat((v, omega), dim=-1)
