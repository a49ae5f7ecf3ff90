"""Unit quaternions in `wxyz` order, batched over any leading dimensions.

A quaternion q = (w, x, y, z) represents the rotation R(q) with R(q) v = q ⊗ (0, v) ⊗ q*.
q and −q are the same rotation; functions that return quaternions pick w ≥ 0 where they
construct one from another representation (`quat_from_matrix`, `quat_from_axis_angle` for
angles below π).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

_SMALL_ANGLE = 1e-4  # below this rotation angle (rad), Taylor series replace sin/θ terms


def quat_identity(
    *batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Float[Tensor, "*batch 4"]:
    """The identity rotation (1, 0, 0, 0) with the given batch shape."""
    q = torch.zeros(*batch, 4, dtype=dtype, device=device)
    q[..., 0] = 1.0
    return q


def quat_normalize(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 4"]:
    """Scale to unit norm."""
    return q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)


def quat_multiply(a: Float[Tensor, "*batch 4"], b: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 4"]:
    """Hamilton product a ⊗ b: the rotation b followed by a (R(a⊗b) = R(a) R(b))."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def quat_conjugate(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 4"]:
    """(w, −x, −y, −z); the inverse rotation for a unit quaternion."""
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def quat_inverse(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 4"]:
    """Multiplicative inverse q* / |q|² (equals the conjugate for unit quaternions)."""
    return quat_conjugate(q) / (q * q).sum(dim=-1, keepdim=True)


def quat_apply(q: Float[Tensor, "*batch 4"], v: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """Rotate vectors v by unit quaternions q: v + 2w (u×v) + 2 u×(u×v), u = (x, y, z)."""
    batch = torch.broadcast_shapes(q.shape[:-1], v.shape[:-1])
    q = q.expand(*batch, 4)
    v = v.expand(*batch, 3)
    w, u = q[..., :1], q[..., 1:]
    uv = torch.linalg.cross(u, v, dim=-1)
    return v + 2.0 * (w * uv + torch.linalg.cross(u, uv, dim=-1))


def quat_to_matrix(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 3 3"]:
    """Rotation matrix of a unit quaternion."""
    w, x, y, z = q.unbind(-1)
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz = x * y, x * z, y * z
    wx, wy, wz = w * x, w * y, w * z
    rows = (
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def quat_from_matrix(R: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch 4"]:
    """Unit quaternion (w ≥ 0) of a rotation matrix.

    Builds the four candidate solutions (each exact when its component is large) and keeps the
    one whose pivot 1 ± R00 ± R11 ± R22 is largest, which stays accurate near angles of π.
    """
    r = R.reshape(*R.shape[:-2], 9)
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = r.unbind(-1)
    candidates = torch.stack(
        (
            torch.stack((1 + r00 + r11 + r22, r21 - r12, r02 - r20, r10 - r01), dim=-1),
            torch.stack((r21 - r12, 1 + r00 - r11 - r22, r01 + r10, r02 + r20), dim=-1),
            torch.stack((r02 - r20, r01 + r10, 1 - r00 + r11 - r22, r12 + r21), dim=-1),
            torch.stack((r10 - r01, r02 + r20, r12 + r21, 1 - r00 - r11 + r22), dim=-1),
        ),
        dim=-2,
    )  # (..., 4 candidates, 4); candidate i equals 4 q_i q
    pivots = torch.diagonal(candidates, dim1=-2, dim2=-1)  # (..., 4) = 4 q_i²
    best = pivots.argmax(dim=-1, keepdim=True)
    chosen = torch.gather(candidates, -2, best[..., None].expand(*best.shape, 4)).squeeze(-2)
    pivot = torch.gather(pivots, -1, best).clamp_min(1e-12)
    q = chosen / (2.0 * torch.sqrt(pivot))
    q = torch.where(q[..., :1] < 0, -q, q)
    return quat_normalize(q)


def quat_from_axis_angle(omega: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 4"]:
    """SO(3) exponential map: rotation by |ω| radians about ω/|ω|, as a quaternion."""
    theta_sq = (omega * omega).sum(dim=-1, keepdim=True)
    theta = torch.sqrt(theta_sq.clamp_min(_SMALL_ANGLE**2))
    small = theta_sq < _SMALL_ANGLE**2
    half_sinc = torch.where(small, 0.5 - theta_sq / 48.0, torch.sin(0.5 * theta) / theta)
    w = torch.where(small, 1.0 - theta_sq / 8.0, torch.cos(0.5 * theta))
    return torch.cat((w, half_sinc * omega), dim=-1)


def quat_to_axis_angle(q: Float[Tensor, "*batch 4"]) -> Float[Tensor, "*batch 3"]:
    """SO(3) logarithm: the axis-angle vector ω with |ω| ≤ π of a unit quaternion."""
    q = torch.where(q[..., :1] < 0, -q, q)
    w = q[..., :1]
    v = q[..., 1:]
    n_sq = (v * v).sum(dim=-1, keepdim=True)
    n = torch.sqrt(n_sq.clamp_min(1e-24))
    small = n_sq < (0.5 * _SMALL_ANGLE) ** 2
    # θ = 2 atan2(|v|, w); for tiny |v| use θ/|v| ≈ 2/w − (2/3)|v|²/w³.
    safe_w = torch.where(small, w, torch.ones_like(w))
    scale = torch.where(
        small,
        2.0 / safe_w - (2.0 / 3.0) * n_sq / safe_w**3,
        2.0 * torch.atan2(n, w) / n,
    )
    return scale * v


def quat_slerp(
    q0: Float[Tensor, "*batch 4"], q1: Float[Tensor, "*batch 4"], t: Float[Tensor, "*batch"] | float
) -> Float[Tensor, "*batch 4"]:
    """Spherical linear interpolation along the shorter arc; t = 0 gives q0, t = 1 gives ±q1."""
    if not isinstance(t, Tensor):
        t = torch.as_tensor(t, dtype=q0.dtype, device=q0.device)
    delta = quat_to_axis_angle(quat_multiply(quat_conjugate(q0), q1))
    return quat_multiply(q0, quat_from_axis_angle(delta * t[..., None]))
