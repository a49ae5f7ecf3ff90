"""Similarity alignment of point sets (Umeyama 1991), as used by PA-MPJPE."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


@dataclass(frozen=True)
class Similarity:
    """x ↦ scale · R x + t, batched: scale (*batch,), R (*batch, 3, 3), t (*batch, 3)."""

    scale: Float[Tensor, "*batch"]
    rotation: Float[Tensor, "*batch 3 3"]
    translation: Float[Tensor, "*batch 3"]

    def apply(self, points: Float[Tensor, "*batch N 3"]) -> Float[Tensor, "*batch N 3"]:
        return self.scale[..., None, None] * points @ self.rotation.transpose(-1, -2) + self.translation[..., None, :]


def umeyama_alignment(
    source: Float[Tensor, "*batch N 3"], target: Float[Tensor, "*batch N 3"], with_scale: bool = True
) -> Similarity:
    """Least-squares similarity (or rigid, `with_scale=False`) transform taking source onto target.

    Minimises Σ_n |target_n − (s R source_n + t)|² with R a proper rotation (no reflections).
    """
    mu_src = source.mean(dim=-2)
    mu_tgt = target.mean(dim=-2)
    src = source - mu_src[..., None, :]
    tgt = target - mu_tgt[..., None, :]
    n = source.shape[-2]
    cov = tgt.transpose(-1, -2) @ src / n  # Σ_yx (3, 3)
    U, D, Vh = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    S = torch.ones_like(D)
    S[..., 2] = sign
    rotation = (U * S[..., None, :]) @ Vh
    if with_scale:
        var_src = (src * src).sum(dim=(-1, -2)) / n
        scale = (D * S).sum(dim=-1) / var_src.clamp_min(torch.finfo(source.dtype).tiny)
    else:
        scale = torch.ones_like(D[..., 0])
    translation = mu_tgt - scale[..., None] * (rotation @ mu_src[..., None])[..., 0]
    return Similarity(scale=scale, rotation=rotation, translation=translation)
