"""The one validation of the training loops: sampled MPJPE / PA-MPJPE on val windows.

Every run samples its val windows with the same seeds 0 … n−1, whatever its training seed, so checkpoints of
different runs are compared on the same sampler noise (the choice of a recipe or an iteration compares like with
like). The body is placed on the ground-truth CPF (EgoAllo's protocol).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.config import DenoiserConfig, SamplerConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.eval.windows import joint_errors
from egogrpo.model.sampling import sample_states
from egogrpo.model.state import MotionState


def validation_errors(
    model: torch.nn.Module,
    model_config: DenoiserConfig,
    sampler: SamplerConfig,
    body: BodyModel,
    crops: MotionCrop,
    num_seeds: int,
    visual: Callable[[MotionState], Tensor] | None = None,
) -> dict[str, float | None]:
    """`val/mpjpe_mm` and `val/pa_mpjpe_mm` (mm) over the windows `crops` (N,) and sample seeds 0 … num_seeds−1.

    `visual(states)` (leading (N, 1)) → visual rewards (N, 1): also their mean (`val/vis`) and their Pearson
    correlation with the samples' MPJPE (`val/vis_mpjpe_corr`, held out: negative while the reward tracks accuracy;
    a rise towards 0 or above while the training reward climbs is reward hacking).
    """
    errors: dict[str, list[Tensor]] = {"mpjpe": [], "pa_mpjpe": []}
    rewards: list[Tensor] = []
    for seed in range(num_seeds):
        states = sample_states(model, model_config, sampler, crops, seed=seed)  # leading (N, 1)
        for name, value in joint_errors(body, states, crops).items():
            errors[name].append(value)
        if visual is not None:
            rewards.append(visual(states))
    record: dict[str, float | None] = {f"val/{k}_mm": float(torch.cat(v).mean()) for k, v in errors.items()}
    if rewards:
        joined = torch.cat(rewards)
        record["val/vis"] = float(joined.mean())
        record["val/vis_mpjpe_corr"] = correlation(joined.flatten(), torch.cat(errors["mpjpe"]).flatten())
    return record


def correlation(a: Tensor, b: Tensor) -> float | None:
    """Pearson correlation of two equally long series (None when undefined: fewer than 2 values or no spread)."""
    value = float(torch.corrcoef(torch.stack((a, b.to(a.dtype))))[0, 1]) if a.numel() > 1 else math.nan
    return value if math.isfinite(value) else None
