"""A linear joint model with forward kinematics, a central pupil frame (CPF) and optional skinning.

Stateless and functional, for any leading batch shape:

    model.with_shape(betas)                       -> ShapedBody   (rest joints, CPF offset)
    shaped.with_pose(T_world_root, body_quats)    -> PosedBody    (world joint frames, CPF)
    posed.skin()                                  -> mesh vertices (when the model has a mesh)

Rest frame (canonical, as SMPL): x = the body's left, y = up, z = forward, metres.
Rest joints are linear in the shape parameters, J(β) = J₀ + S β, and so is the CPF offset
c(β) = c₀ + C β, expressed in the head joint's frame (the CPF has the head's orientation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property

import torch
from jaxtyping import Float, Int
from torch import Tensor

from egogrpo.body.topology import HEAD, NUM_BODY_JOINTS
from egogrpo.geometry import quat_from_matrix, quat_to_matrix
from egogrpo.tensor_dataclass import map_fields


@dataclass(frozen=True)
class SkinnedMesh:
    """Linear blend skinning data (SMPL-style), in the rest frame."""

    v_template: Float[Tensor, "V 3"]
    shape_dirs: Float[Tensor, "V 3 B"]
    pose_dirs: Float[Tensor, "V 3 P"]  # P = 9 · (J − 1), driven by (R_local − I) row-major
    skin_weights: Float[Tensor, "V J"]
    faces: Int[Tensor, "F 3"]

    def shaped_vertices(self, betas: Float[Tensor, "*batch B"]) -> Float[Tensor, "*batch V 3"]:
        return self.v_template + torch.einsum("vcb,...b->...vc", self.shape_dirs, betas)


@dataclass(frozen=True)
class RestExtent:
    """Linear models of the rest body's floor (sole) height and standing height, for models without a mesh."""

    floor_y_mean: Float[Tensor, ""]
    floor_y_dirs: Float[Tensor, "B"]  # noqa: F821
    height_mean: Float[Tensor, ""]
    height_dirs: Float[Tensor, "B"]  # noqa: F821


@dataclass(frozen=True)
class BodyModel:
    """A body model: topology, linear rest joints and CPF, and optionally a skinned mesh.

    `kind` is "default", "smplh" or "smplx"; `source` says where it was read from and `sha256`
    is the hash of that file, so data made with one model can be checked against another.
    """

    kind: str
    source: str
    sha256: str
    description: str
    joint_names: tuple[str, ...]
    parents: tuple[int, ...]
    joints_mean: Float[Tensor, "J 3"]
    joints_shape_dirs: Float[Tensor, "J 3 B"]
    cpf_offset_mean: Float[Tensor, "3"]
    cpf_offset_shape_dirs: Float[Tensor, "3 B"]
    hand_joint_indices: tuple[int, ...] = ()
    mesh: SkinnedMesh | None = None
    rest_extent: RestExtent | None = None

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_betas(self) -> int:
        return self.joints_shape_dirs.shape[-1]

    @property
    def has_hands(self) -> bool:
        return len(self.hand_joint_indices) == 30

    @property
    def model_id(self) -> str:
        """A short identifier recorded with data and checkpoints, e.g. `smplh:1a2b3c4d5e6f`."""
        return f"{self.kind}:{self.sha256[:12]}"

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> BodyModel:
        """A copy with every floating tensor moved/cast (integer tensors only moved)."""

        def move(x: object) -> object:
            if isinstance(x, Tensor):
                return x.to(device=device, dtype=dtype if x.is_floating_point() else None)
            if dataclasses.is_dataclass(x) and not isinstance(x, type):
                return map_fields(x, move)
            return x

        return move(self)  # type: ignore[return-value]

    # --- shape --------------------------------------------------------------------------------

    def with_shape(self, betas: Float[Tensor, "*batch B"]) -> ShapedBody:
        """Rest joints and CPF offset for shape parameters β (fewer than `num_betas` are zero-padded)."""
        betas = self._pad_betas(betas)
        rest_joints = self.joints_mean + torch.einsum("jcb,...b->...jc", self.joints_shape_dirs, betas)
        cpf_offset = self.cpf_offset_mean + torch.einsum("cb,...b->...c", self.cpf_offset_shape_dirs, betas)
        return ShapedBody(model=self, betas=betas, rest_joints=rest_joints, cpf_offset=cpf_offset)

    def _pad_betas(self, betas: Tensor) -> Tensor:
        extra = self.num_betas - betas.shape[-1]
        if extra < 0:
            raise ValueError(f"{self.kind} body model has {self.num_betas} shape parameters, got {betas.shape[-1]}")
        return torch.nn.functional.pad(betas, (0, extra)) if extra else betas

    def rest_floor_y(self, betas: Float[Tensor, "*batch B"]) -> Float[Tensor, "*batch"]:
        """y of the soles in the rest pose (the lowest mesh vertex, or the linear extent model)."""
        betas = self._pad_betas(betas)
        if self.mesh is not None:
            return self.mesh.shaped_vertices(betas)[..., 1].amin(dim=-1)
        if self.rest_extent is None:
            raise ValueError(f"{self.kind} body model has neither a mesh nor a rest extent")
        return self.rest_extent.floor_y_mean + betas @ self.rest_extent.floor_y_dirs

    def rest_height(self, betas: Float[Tensor, "*batch B"]) -> Float[Tensor, "*batch"]:
        """Standing height in the rest pose (soles to the top of the head), metres."""
        betas = self._pad_betas(betas)
        if self.mesh is not None:
            y = self.mesh.shaped_vertices(betas)[..., 1]
            return y.amax(dim=-1) - y.amin(dim=-1)
        if self.rest_extent is None:
            raise ValueError(f"{self.kind} body model has neither a mesh nor a rest extent")
        return self.rest_extent.height_mean + betas @ self.rest_extent.height_dirs

    def rest_cpf_height(self, betas: Float[Tensor, "*batch B"]) -> Float[Tensor, "*batch"]:
        """Height of the CPF above the soles in the rest pose, metres."""
        shaped = self.with_shape(betas)
        cpf_y = shaped.rest_joints[..., HEAD, 1] + shaped.cpf_offset[..., 1]
        return cpf_y - self.rest_floor_y(betas)


@dataclass(frozen=True)
class ShapedBody:
    """A body model with shape applied: rest joints (*batch, J, 3) and CPF offset (*batch, 3)."""

    model: BodyModel
    betas: Float[Tensor, "*batch B"]
    rest_joints: Float[Tensor, "*batch J 3"]
    cpf_offset: Float[Tensor, "*batch 3"]

    def with_pose(
        self,
        T_world_root: Float[Tensor, "*batch 7"],
        body_quats: Float[Tensor, "*batch 21 4"],
        hand_quats: Float[Tensor, "*batch 30 4"] | None = None,
    ) -> PosedBody:
        """Forward kinematics from a root pose (wxyz_xyz; translation = pelvis position) and local `wxyz` rotations."""
        local_body = quat_to_matrix(body_quats)
        local_hands = None if hand_quats is None else quat_to_matrix(hand_quats)
        return self.with_pose_matrices(
            quat_to_matrix(T_world_root[..., :4]), T_world_root[..., 4:], local_body, local_hands
        )

    def with_pose_matrices(
        self,
        R_world_root: Float[Tensor, "*batch 3 3"],
        p_world_root: Float[Tensor, "*batch 3"],
        body_rotmats: Float[Tensor, "*batch 21 3 3"],
        hand_rotmats: Float[Tensor, "*batch 30 3 3"] | None = None,
    ) -> PosedBody:
        """Forward kinematics with rotation matrices. Without hands only the 22 body joints are posed."""
        num_joints = NUM_BODY_JOINTS if hand_rotmats is None else self.model.num_joints
        batch = torch.broadcast_shapes(
            R_world_root.shape[:-2], p_world_root.shape[:-1], body_rotmats.shape[:-3], self.rest_joints.shape[:-2]
        )
        if hand_rotmats is None:
            local = body_rotmats.expand(*batch, NUM_BODY_JOINTS - 1, 3, 3)
        else:
            if not self.model.has_hands:
                raise ValueError(f"{self.model.kind} body model has no hand joints")
            eye = torch.eye(3, dtype=body_rotmats.dtype, device=body_rotmats.device)
            local = eye.expand(*batch, num_joints - 1, 3, 3).clone()  # jaw and eyes (SMPL-X) stay identity
            local[..., : NUM_BODY_JOINTS - 1, :, :] = body_rotmats
            hands = torch.tensor(self.model.hand_joint_indices, device=local.device) - 1
            local[..., hands, :, :] = hand_rotmats
        R_world, p_world = forward_kinematics(
            self.model.parents[:num_joints], self.rest_joints[..., :num_joints, :], R_world_root, p_world_root, local
        )
        return PosedBody(shaped=self, R_world_joint=R_world, p_world_joint=p_world, local_rotmats=local)


def forward_kinematics(
    parents: tuple[int, ...],
    rest_joints: Float[Tensor, "*batch J 3"],
    R_world_root: Float[Tensor, "*batch 3 3"],
    p_world_root: Float[Tensor, "*batch 3"],
    local_rotmats: Float[Tensor, "*batch J-1 3 3"],
) -> tuple[Float[Tensor, "*batch J 3 3"], Float[Tensor, "*batch J 3"]]:
    """World rotations and positions of every joint.

    Joint j (≥ 1) sits at its parent's frame applied to the rest offset J_j − J_parent and turns by
    its local rotation: R_j = R_parent R_local_j, p_j = p_parent + R_parent (J_j − J_parent).
    Joints at the same tree depth are processed together (9 steps for the body, 12 with hands).
    """
    batch = torch.broadcast_shapes(
        rest_joints.shape[:-2], R_world_root.shape[:-2], p_world_root.shape[:-1], local_rotmats.shape[:-3]
    )
    num_joints = len(parents)
    parent_index = torch.tensor([max(p, 0) for p in parents], device=rest_joints.device)
    offsets = rest_joints - rest_joints[..., parent_index, :]
    dtype = torch.promote_types(R_world_root.dtype, local_rotmats.dtype)
    R_world = torch.empty(*batch, num_joints, 3, 3, dtype=dtype, device=rest_joints.device)
    p_world = torch.empty(*batch, num_joints, 3, dtype=dtype, device=rest_joints.device)
    R_world[..., 0, :, :] = R_world_root
    p_world[..., 0, :] = p_world_root
    for joints, joint_parents in _depth_levels(parents, rest_joints.device):
        R_parent = R_world[..., joint_parents, :, :]
        R_world[..., joints, :, :] = R_parent @ local_rotmats[..., joints - 1, :, :]
        p_world[..., joints, :] = p_world[..., joint_parents, :] + (R_parent @ offsets[..., joints, :, None])[..., 0]
    return R_world, p_world


_LEVEL_CACHE: dict[tuple[tuple[int, ...], str], list[tuple[Tensor, Tensor]]] = {}


def _depth_levels(parents: tuple[int, ...], device: torch.device) -> list[tuple[Tensor, Tensor]]:
    """Non-root joints grouped by tree depth, each group with its parents' indices."""
    key = (parents, str(device))
    if key not in _LEVEL_CACHE:
        depth = [0] * len(parents)
        for j, p in enumerate(parents):
            if p >= j:
                raise ValueError("parents must precede their children")
            depth[j] = 0 if p < 0 else depth[p] + 1
        levels = []
        for d in range(1, max(depth) + 1):
            joints = [j for j in range(len(parents)) if depth[j] == d]
            levels.append(
                (torch.tensor(joints, device=device), torch.tensor([parents[j] for j in joints], device=device))
            )
        _LEVEL_CACHE[key] = levels
    return _LEVEL_CACHE[key]


@dataclass(frozen=True)
class PosedBody:
    """World joint frames after forward kinematics. Index 0 is the pelvis (root)."""

    shaped: ShapedBody
    R_world_joint: Float[Tensor, "*batch J 3 3"]
    p_world_joint: Float[Tensor, "*batch J 3"]
    local_rotmats: Float[Tensor, "*batch J-1 3 3"]

    @property
    def joints(self) -> Float[Tensor, "*batch J 3"]:
        """World joint positions, metres."""
        return self.p_world_joint

    @cached_property
    def T_world_joint(self) -> Float[Tensor, "*batch J 7"]:
        """World joint frames as wxyz_xyz."""
        return torch.cat((quat_from_matrix(self.R_world_joint), self.p_world_joint), dim=-1)

    @cached_property
    def T_world_cpf(self) -> Float[Tensor, "*batch 7"]:
        """The central pupil frame: the head's orientation at head + R_head · c(β)."""
        R_head = self.R_world_joint[..., HEAD, :, :]
        p_cpf = self.p_world_joint[..., HEAD, :] + (R_head @ self.shaped.cpf_offset[..., None])[..., 0]
        return torch.cat((quat_from_matrix(R_head), p_cpf), dim=-1)

    def skin(self) -> Float[Tensor, "*batch V 3"]:
        """Linear blend skinning of the model's mesh (needs a mesh and all joints posed)."""
        model = self.shaped.model
        mesh = model.mesh
        if mesh is None:
            raise ValueError(f"{model.kind} body model has no mesh")
        num_joints = self.p_world_joint.shape[-2]
        if num_joints != model.num_joints:
            raise ValueError("skinning needs every joint posed: pass hand rotations (identity for a flat hand)")
        eye = torch.eye(3, dtype=self.local_rotmats.dtype, device=self.local_rotmats.device)
        pose_feature = (self.local_rotmats - eye).flatten(-3)  # (..., 9 (J − 1)), row-major
        v_rest = mesh.shaped_vertices(self.shaped.betas)
        v_posed = v_rest + torch.einsum("vcp,...p->...vc", mesh.pose_dirs, pose_feature)
        # Each joint moves rest points by x ↦ R_j (x − J_j) + p_j.
        translation = self.p_world_joint - (self.R_world_joint @ self.shaped.rest_joints[..., None])[..., 0]
        R_blend = torch.einsum("vj,...jab->...vab", mesh.skin_weights, self.R_world_joint)
        t_blend = torch.einsum("vj,...ja->...va", mesh.skin_weights, translation)
        return (R_blend @ v_posed[..., None])[..., 0] + t_blend
