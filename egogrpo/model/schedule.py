"""The cosine noise schedule, the forward process and EgoAllo's loss weight (reference/egoallo.md §5).

Nichol & Dhariwal's cosine schedule with s = 0.008 over T = 1000 steps, built in float64:

    f(t)  = cos²(((t/T) + s)/(1 + s) · π/2),   ᾱ'(t) = f(t)/f(0)
    β_t   = min(1 − ᾱ'(t)/ᾱ'(t−1), 0.999)       t = 1 … T
    ᾱ_t   = Π_{k≤t} (1 − β_k),                  ᾱ_0 = 1

ᾱ is recomputed from the clipped β, so ᾱ_T = ᾱ_{T−1}·0.001 ≈ 2.4e−9 (not the ≈1e−33 of the raw cosine).
Both arrays have length T + 1 and are indexed by the timestep t itself (β_0 = 0 is a placeholder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """ᾱ_t and β_t for t = 0 … T (float64, CPU). x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε."""

    alpha_bar: Float[Tensor, "T1"]  # T1 = T + 1; ᾱ_0 = 1  # noqa: F821
    betas: Float[Tensor, "T1"]  # β_0 = 0 (unused)  # noqa: F821

    @classmethod
    def cosine(cls, num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """The cosine schedule in float64 (EgoAllo's: s = 0.008, T = 1000, β clipped at 0.999)."""
        t = torch.arange(num_timesteps + 1, dtype=torch.float64)
        f = torch.cos((t / num_timesteps + s) / (1.0 + s) * (math.pi / 2.0)) ** 2
        raw = f / f[0]
        betas = (1.0 - raw[1:] / raw[:-1]).clamp(0.0, max_beta)
        alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, dim=0)])
        betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        return cls(alpha_bar=alpha_bar, betas=betas)

    @property
    def num_timesteps(self) -> int:
        """T (the largest timestep)."""
        return self.alpha_bar.shape[0] - 1

    def snr(self, t: Int[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
        """Signal-to-noise ratio ᾱ_t/(1−ᾱ_t) in float64, on t's device (t ≥ 1)."""
        ab = self.alpha_bar[t.cpu()]
        return (ab / (1.0 - ab)).to(t.device)

    def loss_weight(self, t: Int[Tensor, "*batch"]) -> Float[Tensor, "*batch"]:
        """EgoAllo's w(t) = 0.99·SNR(t)/SNR(1) + 0.01 (float64, on t's device): emulates ε-prediction."""
        snr_1 = self.snr(torch.ones((), dtype=torch.long))
        return 0.99 * self.snr(t) / snr_1.to(t.device) + 0.01

    def q_sample(
        self,
        x0: Float[Tensor, "B ..."],
        t: Int[Tensor, "B"],  # noqa: F821
        noise: Float[Tensor, "B ..."],
    ) -> Float[Tensor, "B ..."]:
        """The forward process x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε; coefficients in float64, cast to x0's dtype."""
        ab = self.alpha_bar[t.cpu()]
        shape = (-1,) + (1,) * (x0.dim() - 1)
        signal = ab.sqrt().to(device=x0.device, dtype=x0.dtype).reshape(shape)
        sigma = (1.0 - ab).sqrt().to(device=x0.device, dtype=x0.dtype).reshape(shape)
        return signal * x0 + sigma * noise
