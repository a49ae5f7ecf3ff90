"""EgoAllo's head-anchored placement: the root is never predicted, it follows from the CPF trajectory.

    T_world_root = T_world_cpf · T_cpf_head(β) · T_head_root(local rotations)

T_root_cpf comes from forward kinematics with an identity root at the origin: the CPF has the head
joint's orientation and sits at `cpf_offset(β)` in the head frame. Inverting it and composing with the
given CPF poses puts the posed CPF exactly on the trajectory (reference/egoallo.md §5, "Global placement").
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.body import BodyModel, PosedBody
from egogrpo.body.topology import HEAD
from egogrpo.data.crops import MotionCrop
from egogrpo.geometry import quat_from_matrix, quat_to_matrix, se3_apply
from egogrpo.model.state import MotionState


def place_on_cpf(body: BodyModel, state: MotionState, T_world_cpf: Float[Tensor, "*batch T 7"]) -> PosedBody:
    """Pose `state` so that its CPF follows `T_world_cpf` (world joints; joint 0 is the placed root).

    The shape is the time average of `state.betas` (as EgoAllo). Hand rotations are posed when the state
    has them and the body model has hand joints. The state's rotations must be proper rotation matrices
    (unpack with projection). `body` must be on the state's device and dtype (`BodyModel.to`).
    The root used is `posed.R_world_joint[..., 0, :, :]`, `posed.p_world_joint[..., 0, :]`
    (or `root_from_cpf` as a wxyz_xyz 7-vector).
    """
    betas = state.betas.mean(dim=-2, keepdim=True)  # (*batch, 1, B), broadcast over frames
    shaped = body.with_shape(betas)
    hands = state.hand_rotmats if body.has_hands else None
    frames = state.body_rotmats.shape[:-3]
    eye = torch.eye(3, dtype=state.body_rotmats.dtype, device=state.body_rotmats.device).expand(*frames, 3, 3)
    at_origin = shaped.with_pose_matrices(eye, eye.new_zeros(*frames, 3), state.body_rotmats, hands)

    # The CPF in the root frame, then the root in the world frame: T_world_root = T_world_cpf · T_root_cpf⁻¹.
    R_root_cpf = at_origin.R_world_joint[..., HEAD, :, :]
    p_root_cpf = at_origin.p_world_joint[..., HEAD, :] + (R_root_cpf @ shaped.cpf_offset[..., None])[..., 0]
    R_world_cpf = quat_to_matrix(T_world_cpf[..., :4])
    R_world_root = R_world_cpf @ R_root_cpf.transpose(-1, -2)
    p_world_root = T_world_cpf[..., 4:] - (R_world_root @ p_root_cpf[..., None])[..., 0]

    # Move every joint of the origin-rooted body by the root transform.
    R = R_world_root[..., None, :, :]
    return PosedBody(
        shaped=shaped,
        R_world_joint=R @ at_origin.R_world_joint,
        p_world_joint=(R @ at_origin.p_world_joint[..., None])[..., 0] + p_world_root[..., None, :],
        local_rotmats=at_origin.local_rotmats,
    )


def root_from_cpf(
    body: BodyModel, state: MotionState, T_world_cpf: Float[Tensor, "*batch T 7"]
) -> Float[Tensor, "*batch T 7"]:
    """T_world_root (wxyz_xyz, pelvis position) that `place_on_cpf` uses."""
    posed = place_on_cpf(body, state, T_world_cpf)
    return torch.cat((quat_from_matrix(posed.R_world_joint[..., 0, :, :]), posed.p_world_joint[..., 0, :]), dim=-1)


# --- placing predictions and labels of training crops (evaluation, rewards, validation) -------------------


def truth_joints(crops: MotionCrop) -> Float[Tensor, "*batch T 22 3"]:
    """Ground-truth world joints: the pelvis from T_world_root, the other 21 from the CPF frame."""
    rest = se3_apply(crops.T_world_cpf[..., None, :], crops.joints_wrt_cpf)
    return torch.cat((crops.T_world_root[..., None, 4:], rest), dim=-2)


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
