"""Rotation matrices: conversions (axis-angle, 6D), yaw, geodesic distance, projection onto SO(3).

Matrices act on column vectors (p_world = R_world_local p_local). The 6D representation is the
first two *columns* of R (Zhou et al. 2019), concatenated as (c0, c1).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.geometry.quaternion import quat_from_axis_angle, quat_from_matrix, quat_to_axis_angle, quat_to_matrix


def matrix_from_axis_angle(omega: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3 3"]:
    """SO(3) exponential map as a matrix (via the quaternion, exact and smooth at 0)."""
    return quat_to_matrix(quat_from_axis_angle(omega))


def axis_angle_from_matrix(R: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch 3"]:
    """SO(3) logarithm of a matrix: ω with |ω| ≤ π (robust near 0 and near π)."""
    return quat_to_axis_angle(quat_from_matrix(R))


def matrix_to_6d(R: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch 6"]:
    """The first two columns of R, concatenated."""
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def matrix_from_6d(d6: Float[Tensor, "*batch 6"]) -> Float[Tensor, "*batch 3 3"]:
    """Gram–Schmidt on the two columns of a 6D vector; the third column is their cross product."""
    a, b = d6[..., :3], d6[..., 3:]
    c0 = a / torch.linalg.vector_norm(a, dim=-1, keepdim=True)
    b = b - (c0 * b).sum(dim=-1, keepdim=True) * c0
    c1 = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    c2 = torch.linalg.cross(c0, c1, dim=-1)
    return torch.stack((c0, c1, c2), dim=-1)


def rotation_about_z(angle: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch 3 3"]:
    """Rz(angle): a right-handed rotation about the world z (up) axis."""
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack((c, -s, zero, s, c, zero, zero, zero, one), dim=-1).reshape(*angle.shape, 3, 3)


def yaw_of_forward_axis(R: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch"]:
    """Heading ψ of a z-up world rotation, from its local +z (forward) axis: atan2(f_y, f_x).

    This is EgoAllo's convention for the CPF, whose +z axis looks forward.
    """
    forward = R[..., :, 2]
    return torch.atan2(forward[..., 1], forward[..., 0])


def remove_yaw(R: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch 3 3"]:
    """Rz(−ψ) R with ψ = `yaw_of_forward_axis(R)`: keeps pitch and roll relative to gravity."""
    return rotation_about_z(-yaw_of_forward_axis(R)) @ R


def geodesic_angle(R_a: Float[Tensor, "*batch 3 3"], R_b: Float[Tensor, "*batch 3 3"]) -> Float[Tensor, "*batch"]:
    """Angle (radians, in [0, π]) of the relative rotation R_aᵀ R_b."""
    return torch.linalg.vector_norm(axis_angle_from_matrix(R_a.transpose(-1, -2) @ R_b), dim=-1)


class _NearestRotation(torch.autograd.Function):
    """U·Vᵀ (the polar factor of M) with a backward that stays finite near rotations.

    torch's SVD backward divides by σ_i² − σ_j², which is 0/0 when M is (nearly) a rotation, so
    gradients through a plain SVD are NaN exactly where a good x̂₀ lives. The polar factor
    R = U·Vᵀ has the closed-form derivative dR = U·Ω·Vᵀ with Ω_ij = (X_ij − X_ji)/(σ_i + σ_j),
    X = Uᵀ·dM·V (σ signed, U flipped, when the reflection is fixed); its adjoint is used here.
    """

    @staticmethod
    def forward(ctx, M: Tensor, fix_reflection: bool) -> Tensor:
        U, s, Vh = torch.linalg.svd(M)
        if fix_reflection:
            det = torch.linalg.det(U @ Vh)
            flip = torch.ones_like(M[..., 0])
            flip[..., 2] = torch.sign(det) + (det == 0).to(det.dtype)
            U, s = U * flip[..., None, :], s * flip
        ctx.save_for_backward(U, s, Vh)
        return U @ Vh

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        U, s, Vh = ctx.saved_tensors
        g = U.mT @ grad @ Vh.mT
        inner = (g - g.mT) / (s[..., :, None] + s[..., None, :])
        inner = inner * (1.0 - torch.eye(3, dtype=inner.dtype, device=inner.device))  # Ω has a zero diagonal
        return U @ inner @ Vh, None


def nearest_rotation(M: Float[Tensor, "*batch 3 3"], fix_reflection: bool = True) -> Float[Tensor, "*batch 3 3"]:
    """Nearest rotation in Frobenius norm, U Vᵀ from the SVD M = U Σ Vᵀ, with finite gradients near rotations.

    With `fix_reflection` the result is forced to det = +1 by flipping the smallest singular direction;
    without it (EgoAllo's projection) a reflection is returned when det(M) < 0. The one SO(3) projection
    of egogrpo: the sampler, state unpacking and evaluation all use it.
    """
    return _NearestRotation.apply(M, fix_reflection)
