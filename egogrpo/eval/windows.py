"""Evaluation windows of a motion file, sampling a prior on them, a mean-pose baseline, and joint errors.

Shared by train-prior's validation and the scripts that report a model's accuracy; the `eval`
command builds its protocols on these pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.config import DenoiserConfig, SamplerConfig
from egogrpo.data.crops import MotionCrop, collate_crops
from egogrpo.data.hdf5_schema import MotionFile
from egogrpo.eval.metrics import mpjpe, pa_mpjpe
from egogrpo.geometry import nearest_rotation, quat_to_matrix, se3_apply
from egogrpo.model.conditioning import cpf_conditioning
from egogrpo.model.placement import place_on_cpf
from egogrpo.model.policy import DiffusionPolicy
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim


@dataclass(frozen=True)
class Windows:
    """Fixed-length windows: a batch of crops (N leading) and where each came from."""

    crops: MotionCrop
    names: tuple[str, ...]
    starts: tuple[int, ...]


def window_starts(frames: int, length: int, slicing: str = "windows") -> list[int]:
    """Start frames of the evaluation windows of a `frames`-long sequence.

    "windows": non-overlapping windows from frame 0. "egoallo": EgoAllo's evaluation slices of
    length + 1 frames (one previous frame), floor(T / (length + 1)) of them, slice k starting at
    (k · (length + 1)) mod (T − length − 1); the window is the slice without its first frame.
    """
    if slicing == "windows":
        return list(range(0, frames - length + 1, length))
    if slicing == "egoallo":
        span = length + 1
        if frames <= span:
            return []
        return [(k * span) % (frames - span) + 1 for k in range(frames // span)]
    raise ValueError(f"unknown slicing {slicing!r}")


def split_windows(
    data: str,
    split: str,
    length: int = 128,
    max_windows: int | None = None,
    first_only: bool = False,
    slicing: str = "windows",
) -> Windows | None:
    """Windows of `length` frames of every sequence of `split` (see `window_starts`; or the first of each)."""
    crops, names, starts = [], [], []
    with MotionFile(data) as motion:
        for name in motion.names(split):
            frames = motion.num_frames(name)
            for start in window_starts(frames, length, slicing):
                crops.append(
                    MotionCrop.from_arrays(motion.read_frames(name, start, start + length), with_hand_quats=False)
                )
                names.append(name)
                starts.append(start)
                if first_only:
                    break
    if not crops:
        return None
    if max_windows is not None:
        crops, names, starts = crops[:max_windows], names[:max_windows], starts[:max_windows]
    return Windows(collate_crops(crops), tuple(names), tuple(starts))


def truth_joints(crops: MotionCrop) -> Float[Tensor, "*batch T 22 3"]:
    """Ground-truth world joints: the pelvis from T_world_root, the other 21 from the CPF frame."""
    rest = se3_apply(crops.T_world_cpf[..., None, :], crops.joints_wrt_cpf)
    return torch.cat((crops.T_world_root[..., None, 4:], rest), dim=-2)


@torch.no_grad()
def sample_states(
    model: torch.nn.Module,
    model_config: DenoiserConfig,
    sampler: SamplerConfig,
    crops: MotionCrop,
    seed: int,
    num_samples: int = 1,
) -> MotionState:
    """Sample the prior conditioned on each crop's CPF trajectory; a state with leading (N, S).

    Window n is group n of the seed's streams; samples do not share x_T (`DiffusionPolicy.sample`).
    """
    cond = cpf_conditioning(crops.T_cpf_tm1_cpf_t, crops.T_world_cpf, config=model_config)
    policy = DiffusionPolicy(
        NoiseSchedule.cosine(), sampler, project=body_rotation_projection(model_config.num_betas), device=cond.device
    )
    state_dim = packed_dim(model_config.num_betas, model_config.include_hands)
    x0 = policy.sample(lambda x, t, c: model(x, t, c), cond, state_dim, seed=seed, num_samples=num_samples)
    return MotionState.unpack(x0, model_config.num_betas, model_config.include_hands)


def mean_pose_state(data: str, splits: tuple[str, ...], num_betas: int) -> MotionState:
    """The baseline: the mean training pose and shape (rotations averaged, then projected), one frame."""
    rotations, betas, count = torch.zeros(21, 3, 3, dtype=torch.float64), torch.zeros(num_betas, dtype=torch.float64), 0
    with MotionFile(data) as motion:
        for name in motion.names(splits):
            arrays = motion.read(name)
            rotations += quat_to_matrix(torch.from_numpy(arrays.body_quats).double()).sum(dim=0)
            betas += torch.from_numpy(arrays.betas[0]).double() * arrays.num_frames
            count += arrays.num_frames
    return MotionState(
        betas=(betas / count).float()[None],
        body_rotmats=nearest_rotation(rotations / count).float()[None],
        contacts=torch.zeros(1, 21),
    )


def _expand(state: MotionState, lead: tuple[int, ...]) -> MotionState:
    """Broadcast a state's leading dimensions (e.g. one baseline frame) to `lead`."""
    return MotionState(
        betas=state.betas.expand(*lead, state.betas.shape[-1]),
        body_rotmats=state.body_rotmats.expand(*lead, 21, 3, 3),
        contacts=state.contacts.expand(*lead, 21),
    )


def broadcast_state(state: MotionState, crops: MotionCrop) -> MotionState:
    """`state` as (N, S, T, …): samples pass through; a baseline (broadcastable to (N, T, …)) gets S = 1."""
    if state.body_rotmats.dim() == 6:
        return state
    N, T = crops.T_world_cpf.shape[:2]
    return _expand(state, (N, 1, T))


def placed_joints(body: BodyModel, state: MotionState, crops: MotionCrop) -> tuple[Tensor, Tensor]:
    """Predicted and ground-truth world joints (N, S, T, 22, 3), the prediction placed on the crops' CPF."""
    state = broadcast_state(state, crops)
    lead = state.body_rotmats.shape[:-3]
    T_world_cpf, truth = crops.T_world_cpf[:, None].expand(*lead, 7), truth_joints(crops)[:, None].expand(*lead, 22, 3)
    posed = place_on_cpf(body.to(dtype=T_world_cpf.dtype), state, T_world_cpf)
    return posed.joints[..., :22, :], truth


def joint_errors(body: BodyModel, state: MotionState, crops: MotionCrop) -> dict[str, Tensor]:
    """Per-window, per-sample MPJPE and PA-MPJPE (mm), shape (N, S)."""
    predicted, truth = placed_joints(body, state, crops)
    return {"mpjpe": mpjpe(predicted, truth).mean(dim=-1), "pa_mpjpe": pa_mpjpe(predicted, truth).mean(dim=-1)}


def sampled_errors(
    model: torch.nn.Module,
    model_config: DenoiserConfig,
    sampler: SamplerConfig,
    body: BodyModel,
    crops: MotionCrop,
    seeds: tuple[int, ...],
) -> dict[str, float]:
    """Mean MPJPE and PA-MPJPE (mm) of one sample per crop and seed, placed on the ground-truth CPF (validation)."""
    errors: dict[str, list[Tensor]] = {"mpjpe": [], "pa_mpjpe": []}
    for seed in seeds:
        states = sample_states(model, model_config, sampler, crops, seed=seed)
        for name, value in joint_errors(body, states, crops).items():
            errors[name].append(value)
    return {name: float(torch.cat(values).mean()) for name, values in errors.items()}
