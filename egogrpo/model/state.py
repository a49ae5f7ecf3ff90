"""The motion state the diffusion model denoises (EgoAllo's `EgoDenoiseTraj`, reference/egoallo.md §2).

Per frame: shape parameters, the 21 local body rotations as raw 3×3 matrices, 21 contact values and
optionally the 30 local hand rotations. `pack` concatenates them in that order (matrices flattened
row-major) into one vector per frame; no normalisation is applied, the diffusion runs on these raw
numbers. The root (pelvis) pose is not part of the state: it is placed from the head trajectory
(`egogrpo.model.placement`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.data.crops import MotionCrop
from egogrpo.geometry import nearest_rotation, quat_to_matrix

NUM_BODY_ROTATIONS = 21  # non-root body joints
NUM_HAND_ROTATIONS = 30  # 15 left-hand then 15 right-hand joints
NUM_CONTACTS = 21


def state_layout(num_betas: int, include_hands: bool) -> tuple[tuple[str, int], ...]:
    """(field name, packed width) of each part of the packed state, in packing order."""
    layout = (("betas", num_betas), ("body_rotmats", NUM_BODY_ROTATIONS * 9), ("contacts", NUM_CONTACTS))
    if include_hands:
        layout += (("hand_rotmats", NUM_HAND_ROTATIONS * 9),)
    return layout


def packed_dim(num_betas: int, include_hands: bool) -> int:
    """Per-frame width of the packed state: 16 betas give 226 without hands and 496 with them."""
    return sum(width for _, width in state_layout(num_betas, include_hands))


@dataclass(frozen=True)
class MotionState:
    """One motion (or a batch: any leading dims `*batch`), T frames.

    betas         (*batch, T, B)         shape parameters, predicted per frame
    body_rotmats  (*batch, T, 21, 3, 3)  local rotations of the non-root body joints
    contacts      (*batch, T, 21)        contact labels (0/1 in data, real numbers when predicted)
    hand_rotmats  (*batch, T, 30, 3, 3)  local hand rotations (left 15, right 15), or None
    """

    betas: Float[Tensor, "*batch T B"]
    body_rotmats: Float[Tensor, "*batch T 21 3 3"]
    contacts: Float[Tensor, "*batch T 21"]
    hand_rotmats: Float[Tensor, "*batch T 30 3 3"] | None = None

    @property
    def num_betas(self) -> int:
        return self.betas.shape[-1]

    @property
    def include_hands(self) -> bool:
        return self.hand_rotmats is not None

    def pack(self) -> Float[Tensor, "*batch T D"]:
        """Concatenate betas, body rotations, contacts (and hand rotations) into one vector per frame."""
        batch = self.contacts.shape[:-1]
        parts = [
            self.betas.expand(*batch, self.num_betas),
            self.body_rotmats.reshape(*batch, NUM_BODY_ROTATIONS * 9),
            self.contacts,
        ]
        if self.hand_rotmats is not None:
            parts.append(self.hand_rotmats.reshape(*batch, NUM_HAND_ROTATIONS * 9))
        return torch.cat(parts, dim=-1)

    @classmethod
    def unpack(
        cls,
        x: Float[Tensor, "*batch T D"],
        num_betas: int,
        include_hands: bool,
        project_rotations: bool = True,
        fix_reflection: bool = False,
    ) -> MotionState:
        """Split a packed state; with `project_rotations`, body *and* hand matrices are SVD-projected.

        The projection is EgoAllo's R ← U Vᵀ (no determinant fix unless `fix_reflection`). EgoAllo
        projects only the body rotations here; egogrpo projects the hand rotations too, so that every
        unpacked state holds proper rotation matrices.
        """
        expected = packed_dim(num_betas, include_hands)
        if x.shape[-1] != expected:
            raise ValueError(
                f"packed state has width {x.shape[-1]}, expected {expected} "
                f"(num_betas={num_betas}, include_hands={include_hands})"
            )
        layout = state_layout(num_betas, include_hands)
        chunks = torch.split(x, [width for _, width in layout], dim=-1)
        parts = {name: chunk for (name, _), chunk in zip(layout, chunks, strict=True)}
        batch = x.shape[:-1]
        body = parts["body_rotmats"].reshape(*batch, NUM_BODY_ROTATIONS, 3, 3)
        hands = parts["hand_rotmats"].reshape(*batch, NUM_HAND_ROTATIONS, 3, 3) if include_hands else None
        if project_rotations:
            body = nearest_rotation(body, fix_reflection=fix_reflection)
            hands = None if hands is None else nearest_rotation(hands, fix_reflection=fix_reflection)
        return cls(betas=parts["betas"], body_rotmats=body, contacts=parts["contacts"], hand_rotmats=hands)

    @classmethod
    def from_crop(cls, crop: MotionCrop, include_hands: bool | None = None) -> MotionState:
        """The state of a training crop (or a batch of crops): quaternions → matrices, betas repeated over T.

        include_hands: None keeps the crop's hand rotations when it has them; True requires them;
        False leaves them out.
        """
        if include_hands is None:
            include_hands = crop.hand_quats is not None
        if include_hands and crop.hand_quats is None:
            raise ValueError("the crop has no hand_quats but include_hands=True")
        frames = crop.contacts.shape[:-1]  # (*batch, T)
        betas = crop.betas.expand(*frames, crop.betas.shape[-1])  # (*batch, 1, B) → (*batch, T, B)
        hands = quat_to_matrix(crop.hand_quats) if include_hands and crop.hand_quats is not None else None
        return cls(
            betas=betas, body_rotmats=quat_to_matrix(crop.body_quats), contacts=crop.contacts, hand_rotmats=hands
        )

    def map(self, fn: Callable[[Tensor], Tensor]) -> MotionState:
        """Apply `fn` to every tensor field (None stays None)."""
        return dataclasses.replace(
            self,
            **{
                f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                for f in dataclasses.fields(self)
            },
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MotionState:
        """Move and/or cast every field."""
        return self.map(lambda t: t.to(device=device, dtype=dtype))
