"""Sampling the prior for a batch of training or evaluation crops (evaluation, validation, rewards)."""

from __future__ import annotations

import torch

from egogrpo.config import DenoiserConfig, SamplerConfig
from egogrpo.data.crops import MotionCrop
from egogrpo.model.conditioning import cpf_conditioning
from egogrpo.model.denoiser import sampling_denoiser
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim


@torch.no_grad()
def sample_states(
    model: torch.nn.Module,
    model_config: DenoiserConfig,
    sampler: SamplerConfig,
    crops: MotionCrop,
    seed: int,
    num_samples: int = 1,
    first_group: int = 0,
) -> MotionState:
    """Sample the prior conditioned on each crop's CPF trajectory; a state with leading (N, S).

    Window n is group `first_group` + n of the seed's streams (pass a chunk's offset, so a window's samples
    do not depend on the chunking); samples do not share x_T.
    """
    cond = cpf_conditioning(crops.T_cpf_tm1_cpf_t, crops.T_world_cpf, config=model_config)
    policy = DiffusionPolicy(
        NoiseSchedule.cosine(), sampler, project=body_rotation_projection(model_config.num_betas), device=cond.device
    )
    state_dim = packed_dim(model_config.num_betas, model_config.include_hands)
    N = cond.shape[0]
    ids = RolloutIds(
        seed,
        0,
        torch.arange(first_group, first_group + N),
        torch.arange(num_samples).expand(N, num_samples),
        share_initial=False,
    )
    cond = cond[:, None].expand(N, num_samples, *cond.shape[1:])
    x0 = policy.rollout(sampling_denoiser(model, sampler), cond, ids, state_dim, record=False).final
    return MotionState.unpack(x0, model_config.num_betas, model_config.include_hands)
