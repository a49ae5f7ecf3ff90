"""The sampler of the x₀-predicting diffusion prior, written as a stochastic policy (reference/grpo-for-diffusion.md §3).

The scheduler is separate from the model: `denoise_fn(x, t, cond) -> x̂₀` is any callable, and
this module turns its predictions into transitions. For a transition s → p (s > p) the policy is

    π(x_p | x_s, c) = N(μ, σ²·I),   μ = A·x̂₀ + B·x_s,   x̂₀ = project(stitched denoiser output)

with A, B and σ computed from the float64 schedule and applied in float32:

* "egoallo" (EgoAllo's sampler, quadratic plan 1000, 841, …, 4, 1, 0):
      σ = 0.8·√((1−ᾱ_{s−1})/(1−ᾱ_s)·β_s)           (the ONE-step posterior std at s, scaled)
      μ = √ᾱ_p·x̂₀ + √(1−ᾱ_p−σ²)·(x_s − √ᾱ_s·x̂₀)/√(1−ᾱ_s + 0.1)
  i.e. B = √(1−ᾱ_p−σ²)/√(1−ᾱ_s+0.1), A = √ᾱ_p − B·√ᾱ_s (0.8 and 0.1 from `SamplerConfig`).
* "ddim" (DDIM-η over an evenly strided plan):
      σ² = η²·(1−ᾱ_p)/(1−ᾱ_s)·(1−ᾱ_s/ᾱ_p),  μ = √ᾱ_p·x̂₀ + √max(0, 1−ᾱ_p−σ²)·ε̂,  ε̂ = (x_s − √ᾱ_s·x̂₀)/√(1−ᾱ_s)
  η = 1 is the strided DDPM posterior q(x_p | x_s, x₀ = x̂₀); η = 0 is deterministic DDIM.

The final transition to p = 0 has σ = 0 and returns x̂₀; it (and any σ = 0 step) is NOT part of the
MDP and has no log-probability. Log-probabilities are Gaussian log densities **averaged over the
state dimensions (frames × features), not summed**, as DDPO and Flow-GRPO do, in float32.
`DiffusionPolicy.log_prob_and_mean` recomputes them for stored transitions under new parameters with exactly
the same mean formula (`transition_mean`), so at θ_old the importance ratio is exactly 1.

Sequences of any length are denoised in windows (EgoAllo's stitching, reference/egoallo.md §4; the
window rule is `SamplerConfig.window_rule`);
`egogrpo.model.policy` runs whole rollouts on top of these pieces.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from egogrpo.config import SamplerConfig
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import nearest_rotation
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import NUM_BODY_ROTATIONS, state_slices

#: denoise_fn(x_t (N, W, D), t (N,) int64, cond (N, W, C)) -> x̂₀ (N, W, D)
DenoiseFn = Callable[[Tensor, Tensor, Tensor], Tensor]
#: project(x̂₀ (..., L, D)) -> x̂₀ (..., L, D), e.g. `body_rotation_projection(num_betas)`
ProjectFn = Callable[[Tensor], Tensor]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# --- timestep plans ---------------------------------------------------------------------------------


def quadratic_timesteps(max_t: int = 1000) -> list[int]:
    """EgoAllo's plan: k² for k = ⌊√T⌋−1 … 0 with the first replaced by T; T = 1000 gives
    [1000, 841, 784, …, 9, 4, 1, 0] (31 timesteps, 30 transitions)."""
    squares = [k * k for k in range(math.isqrt(max_t))]
    squares[-1] = max_t
    return squares[::-1]


def strided_timesteps(num_steps: int, max_t: int = 1000) -> list[int]:
    """`num_steps` evenly strided transitions from T down to 0 (rounded to integers)."""
    if not 1 <= num_steps <= max_t:
        raise EgogrpoError(f"sampler num_steps must be in 1..{max_t}, got {num_steps}")
    return [round(max_t * (num_steps - k) / num_steps) for k in range(num_steps + 1)]


def quadratic_steps(num_steps: int, max_t: int = 1000) -> list[int]:
    """`num_steps` transitions at T·((N − k)/N)², k = 0 … N (rounded): denser near t = 0, like EgoAllo's plan.
    Distinct for N ≤ √T."""
    if not 1 <= num_steps <= math.isqrt(max_t):
        raise EgogrpoError(
            f"sampler num_steps with quadratic spacing must be in 1..{math.isqrt(max_t)}, got {num_steps}"
        )
    return [round(max_t * ((num_steps - k) / num_steps) ** 2) for k in range(num_steps + 1)]


#: Sampler rules (`SamplerConfig.rule`) and the timestep spacings of the N-step ones.
SAMPLER_RULES = ("egoallo", "ddim", "dpmpp2m")
SPACINGS = ("linear", "quadratic")


def timestep_plan(config: SamplerConfig, max_t: int = 1000) -> list[int]:
    """The decreasing timesteps of a sampling run, ending at 0 ("egoallo": quadratic, 30 steps; "ddim" and
    "dpmpp2m": `num_steps` with `spacing`)."""
    if config.rule == "egoallo":
        return quadratic_timesteps(max_t)
    if config.rule not in SAMPLER_RULES:
        raise EgogrpoError(f"unknown sampler rule {config.rule!r} (expected one of {', '.join(SAMPLER_RULES)})")
    if config.spacing == "linear":
        return strided_timesteps(config.num_steps, max_t)
    if config.spacing == "quadratic":
        return quadratic_steps(config.num_steps, max_t)
    raise EgogrpoError(f"unknown sampler spacing {config.spacing!r} (expected one of {', '.join(SPACINGS)})")


def solver_options(sampler: SamplerConfig, solver: str | None, steps: int | None, spacing: str | None) -> SamplerConfig:
    """`sampler` with the inference options `--solver` (ddim runs with η = 0: deterministic), `--steps` and
    `--spacing` applied; EgogrpoError naming the option for a value that cannot be used."""
    if solver is not None and solver not in SAMPLER_RULES:
        raise EgogrpoError(f"--solver must be one of {', '.join(SAMPLER_RULES)}, got {solver!r}")
    if spacing is not None and spacing not in SPACINGS:
        raise EgogrpoError(f"--spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
    rule = solver or sampler.rule
    if rule == "egoallo" and (steps is not None or spacing is not None):
        raise EgogrpoError("--steps and --spacing need --solver ddim or dpmpp2m (EgoAllo's sampler takes its 30 steps)")
    if steps is not None and (type(steps) is not int or steps < 1):
        raise EgogrpoError(f"--steps must be a whole number ≥ 1, got {steps}")
    changes: dict = {"rule": rule}
    if solver == "ddim":
        changes["eta"] = 0.0
    if steps is not None:
        changes["num_steps"] = steps
    if spacing is not None:
        changes["spacing"] = spacing
    result = dataclasses.replace(sampler, **changes)
    try:
        timestep_plan(result)
    except EgogrpoError as e:
        raise EgogrpoError(f"--steps/--spacing: {e}") from None
    return result


def multistep_weights(schedule: NoiseSchedule, plan: Sequence[int]) -> Float[Tensor, "K 2"]:
    """DPM-Solver++(2M)'s weights (w, w′) of each transition k: the x̂₀ it moves towards is w·x̂₀_k + w′·x̂₀_{k−1}
    (the data-prediction multistep correction), with r = h_{k−1}/h_k, h = λ_{t_prev} − λ_t, λ = log(α/σ) = ½·log(ᾱ/(1−ᾱ)):
    w = 1 + 1/(2r), w′ = −1/(2r); (1, 0) — first order, DDIM η = 0 — at the first step and the last (to t = 0).
    Float64, CPU."""
    t = torch.tensor(list(plan), dtype=torch.long)
    ab = schedule.alpha_bar[t]
    lam = 0.5 * torch.log(ab / (1.0 - ab))  # +inf at t = 0
    weights = torch.zeros(len(plan) - 1, 2, dtype=torch.float64)
    weights[:, 0] = 1.0
    for k in range(1, len(plan) - 1):
        if int(t[k + 1]) == 0:
            continue  # lower order at the final step
        r = (lam[k] - lam[k - 1]) / (lam[k + 1] - lam[k])
        weights[k] = torch.stack((1.0 + 0.5 / r, -0.5 / r))
    return weights


# --- one transition ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class StepCoefficients:
    """μ = a·x̂₀ + b·x_s and the std of transitions t → t_prev (float64, CPU, the shape of t)."""

    a: Float[Tensor, "*batch"]
    b: Float[Tensor, "*batch"]
    std: Float[Tensor, "*batch"]


def step_coefficients(
    schedule: NoiseSchedule,
    config: SamplerConfig,
    t: int | Tensor,
    t_prev: int | Tensor,
    noise_scale: float | Tensor = 1.0,
) -> StepCoefficients:
    """A, B and σ of the rule in `config` for transitions t → t_prev (ints, or integer tensors of one shape).

    `noise_scale` multiplies σ (and so changes B, which keeps the marginal variance); 0 makes a transition
    deterministic, which is how an SDE window (`SamplerConfig.stochastic_steps`) is realised.
    """
    t = torch.as_tensor(t, dtype=torch.long).cpu()
    t_prev = torch.as_tensor(t_prev, dtype=torch.long).cpu()
    if not (bool((t_prev >= 0).all()) and bool((t > t_prev).all()) and bool((t <= schedule.num_timesteps).all())):
        raise ValueError(f"transitions need T ≥ t > t_prev ≥ 0, got t={t.tolist()}, t_prev={t_prev.tolist()}")
    ab_s, ab_p = schedule.alpha_bar[t], schedule.alpha_bar[t_prev]
    if config.rule == "egoallo":
        one_step_var = (1.0 - schedule.alpha_bar[t - 1]) / (1.0 - ab_s) * schedule.betas[t]
        var = config.egoallo_noise_scale**2 * one_step_var
        eps_denominator = (1.0 - ab_s + config.egoallo_eps_damping).sqrt()
    elif config.rule == "ddim":
        var = config.eta**2 * (1.0 - ab_p) / (1.0 - ab_s) * (1.0 - ab_s / ab_p)
        eps_denominator = (1.0 - ab_s).sqrt()
    elif config.rule == "dpmpp2m":  # DDIM η = 0; the multistep correction acts on x̂₀ (`multistep_weights`)
        var = torch.zeros_like(ab_s)
        eps_denominator = (1.0 - ab_s).sqrt()
    else:
        raise EgogrpoError(f"unknown sampler rule {config.rule!r} (expected one of {', '.join(SAMPLER_RULES)})")
    var = var * torch.as_tensor(noise_scale, dtype=torch.float64) ** 2
    var = torch.where(t_prev == 0, torch.zeros_like(var), var)  # the last transition is deterministic
    b = (1.0 - ab_p - var).clamp_min(0.0).sqrt() / eps_denominator
    a = ab_p.sqrt() - b * ab_s.sqrt()
    return StepCoefficients(a=a, b=b, std=var.sqrt())


def transition_mean(
    a: Float[Tensor, "*batch"],
    b: Float[Tensor, "*batch"],
    x_t: Float[Tensor, "*batch L D"],
    x0_hat: Float[Tensor, "*batch L D"],
) -> Float[Tensor, "*batch L D"]:
    """μ = A·x̂₀ + B·x_s in float32: the one mean formula of rollouts, single steps and log-prob recomputation."""
    return a.float()[..., None, None] * x0_hat.float() + b.float()[..., None, None] * x_t.float()


# --- log-probabilities ------------------------------------------------------------------------------


def transition_log_prob(
    x_prev: Float[Tensor, "*batch L D"],
    mean: Float[Tensor, "*batch L D"],
    std: float | Float[Tensor, "*batch"],
    dim_weights: Float[Tensor, "D"] | None = None,  # noqa: F821
) -> Float[Tensor, "*batch"]:
    """log N(x_prev; mean, std²·I) per state dimension: the MEAN over the trailing (L, D) dims, not the sum.

    This is the DDPO/Flow-GRPO convention (the summed density is this times L·D). Float32; std > 0,
    a scalar or one value per batch element. `dim_weights` (non-negative, per state feature) turns the
    mean into a weighted mean of the squared-error term — no longer the exact log-density, a biased,
    lower-variance surrogate that ignores features the reward does not see (None: exact).
    """
    std = torch.as_tensor(std, dtype=torch.float32, device=x_prev.device)
    z = (x_prev.float() - mean.float()) / std[..., None, None]
    if dim_weights is None:
        squared = (z * z).flatten(-2).mean(dim=-1)
    else:
        w = dim_weights.to(device=z.device, dtype=torch.float32)
        squared = (z * z * w).flatten(-2).sum(dim=-1) / (w.sum() * z.shape[-2])
    return -0.5 * squared - torch.log(std) - _HALF_LOG_2PI


def gaussian_mean_kl(
    mean: Float[Tensor, "N L D"],
    reference_mean: Float[Tensor, "N L D"],
    std: Float[Tensor, "N"],  # noqa: F821
) -> Float[Tensor, "N"]:  # noqa: F821
    """KL(N(μ, σ²I) ‖ N(μ_ref, σ²I)) per state dimension: mean_d (μ − μ_ref)² / (2σ²)."""
    return (mean - reference_mean).square().flatten(1).mean(dim=1) / (2.0 * std.square())


# --- windows ----------------------------------------------------------------------------------------


WINDOW_RULES = ("aligned", "egoallo")


def window_starts(length: int, window: int, overlap: int, rule: str = "aligned") -> list[int]:
    """First frames of the windows covering `length` frames; window k spans [s_k, min(s_k + window, length)).

    "egoallo" (EgoAllo's `run_sampling_with_stitching`, reference/egoallo.md §4): starts
    range(0, length, window − overlap), each window cut at the sequence end, so the tail windows are
    short and may lie wholly inside the previous one (length 128 gives [0, 128) and [96, 128)).
    "aligned" (egogrpo): the same starts for windows that end before the sequence does, then one last
    window aligned to the sequence end, so every window has min(window, length) frames and all of them
    go through the denoiser in one batch; a sequence of at most `window` frames is one window.
    """
    if not 0 <= overlap < window:
        raise EgogrpoError(f"sampler overlap must be in 0..window−1, got window={window}, overlap={overlap}")
    if rule == "egoallo":
        return list(range(0, length, window - overlap))
    if rule != "aligned":
        raise EgogrpoError(f"unknown sampler window_rule {rule!r} (expected one of {', '.join(WINDOW_RULES)})")
    if length <= window:
        return [0]
    return [*range(0, length - window, window - overlap), length - window]


def stitch_weights(length: int, window: int, overlap: int, rule: str = "aligned") -> Float[Tensor, "K W"]:
    """Normalised blending weights of each window's frames (float32; per frame they sum to 1).

    Row k holds the weights of frames s_k … s_k + W − 1 (W = min(window, length)); frames past the
    sequence end (the cut tail windows of "egoallo") have weight 0. EgoAllo's weighting: every window
    takes the PREFIX (its first frames) of the trapezoid g(i) = min(overlap, i+1, length−i)/overlap over
    the whole sequence, so a window ramps up over its first `overlap` frames and ramps down only where
    the sequence itself ends. Each frame's weights are then divided by their sum over the windows covering it.
    """
    starts = window_starts(length, window, overlap, rule)
    w = min(window, length)
    if overlap == 0:
        prefix = torch.ones(w, dtype=torch.float64)
    else:
        i = torch.arange(w, dtype=torch.float64)
        prefix = torch.minimum(torch.minimum(i + 1.0, length - i), torch.tensor(float(overlap))) / overlap
    raw = torch.stack([torch.where(s + torch.arange(w) < length, prefix, 0.0) for s in starts])  # (K, W)
    total = torch.zeros(length + w, dtype=torch.float64)
    for k, s in enumerate(starts):
        total[s : s + w] += raw[k]
    weights = torch.stack([raw[k] / total[s : s + w].clamp_min(1e-300) for k, s in enumerate(starts)])
    return weights.to(torch.float32)


def predict_x0_stitched(
    denoise_fn: DenoiseFn,
    x_t: Float[Tensor, "N L D"],
    t: int | Int[Tensor, "N"],  # noqa: F821
    cond: Float[Tensor, "N L C"],
    window: int,
    overlap: int,
    project: ProjectFn | None = None,
    rule: str = "aligned",
) -> Float[Tensor, "N L D"]:
    """x̂₀ of whole sequences from windowed denoiser calls, blended, then projected (float32).

    Windows of one length go through one `denoise_fn` call (sequence-major), so "aligned" makes one
    call and "egoallo" one per distinct window length (at most three). With a single window the
    denoiser output is returned unblended, bit for bit.
    """
    N, L, D = x_t.shape
    starts = window_starts(L, window, overlap, rule)
    W = min(window, L)
    t_rows = torch.as_tensor(t, dtype=torch.long, device=x_t.device).expand(N)
    if len(starts) == 1:
        x0_hat = denoise_fn(x_t, t_rows, cond).float()
        if x0_hat.shape != (N, L, D):
            raise ValueError(f"denoise_fn returned shape {tuple(x0_hat.shape)}, expected {(N, L, D)}")
        return x0_hat if project is None else project(x0_hat)
    weights = stitch_weights(L, window, overlap, rule).to(x_t.device)
    x0_hat = torch.zeros(N, L, D, dtype=torch.float32, device=x_t.device)
    sizes = [min(W, L - s) for s in starts]
    for size in sorted(set(sizes), reverse=True):
        group = [(k, s) for k, s in enumerate(starts) if sizes[k] == size]
        K = len(group)
        x_windows = torch.stack([x_t[:, s : s + size] for _, s in group], dim=1).reshape(N * K, size, D)
        c_windows = torch.stack([cond[:, s : s + size] for _, s in group], dim=1).reshape(N * K, size, -1)
        pred = denoise_fn(x_windows, t_rows.repeat_interleave(K), c_windows).float()
        if pred.shape != (N * K, size, D):
            raise ValueError(f"denoise_fn returned shape {tuple(pred.shape)}, expected {(N * K, size, D)}")
        pred = pred.reshape(N, K, size, D)
        for j, (k, s) in enumerate(group):
            x0_hat[:, s : s + size] += weights[k, :size, None] * pred[:, j]
    return x0_hat if project is None else project(x0_hat)


@dataclass(frozen=True)
class BodyRotationProjection:
    """Project the 21 body rotation matrices of a packed state onto SO(3) (`state.state_slices`' body_rotmats).

    Hands are not projected (as in EgoAllo). `fix_reflection=False` is EgoAllo's projection (U Vᵀ without a
    determinant fix). `method`: "svd" or "polar" (`nearest_rotation`); None takes the sampler config's
    `projection` when given to a `DiffusionPolicy` ("svd" otherwise). Differentiable, so GRPO can
    back-propagate through it.
    """

    num_betas: int
    fix_reflection: bool = False
    method: str | None = None

    def __call__(self, x: Float[Tensor, "*batch L D"]) -> Float[Tensor, "*batch L D"]:
        where = state_slices(self.num_betas, include_hands=False)["body_rotmats"]
        body = x[..., where].unflatten(-1, (NUM_BODY_ROTATIONS, 3, 3))
        body = nearest_rotation(body, self.fix_reflection, self.method or "svd").flatten(-3)
        return torch.cat([x[..., : where.start], body, x[..., where.stop :]], dim=-1)


def body_rotation_projection(num_betas: int, fix_reflection: bool = False, method: str | None = None) -> ProjectFn:
    """`BodyRotationProjection`: the x̂₀ projection of EgoAllo's sampler (state slice [num_betas, num_betas + 189))."""
    return BodyRotationProjection(num_betas, fix_reflection, method)
