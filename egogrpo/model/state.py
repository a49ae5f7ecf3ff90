"""The motion state the diffusion model denoises (EgoAllo's `EgoDenoiseTraj`, reference/egoallo.md §2).

Per frame: shape parameters, the 21 local body rotations as raw 3×3 matrices, 21 contact values and
optionally the 30 local hand rotations. `pack` concatenates them in that order (matrices flattened
row-major) into one vector per frame; no normalisation is applied, the diffusion runs on these raw
numbers. The root (pelvis) pose is not part of the state: it is placed from the head trajectory
(`egogrpo.model.placement`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.data.crops import MotionCrop
from egogrpo.geometry import nearest_rotation, quat_to_matrix
from egogrpo.tensor_dataclass import map_fields

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


def state_slices(num_betas: int, include_hands: bool) -> dict[str, slice]:
    """Where each field lies in the packed vector, e.g. body_rotmats = slice(num_betas, num_betas + 189)."""
    slices, start = {}, 0
    for name, width in state_layout(num_betas, include_hands):
        slices[name] = slice(start, start + width)
        start += width
    return slices


def orthonormal_to_rounding(R: Float[Tensor, "*batch 3 3"], proper: bool) -> bool:
    """True when every matrix already is a rotation (or, unless `proper`, a reflection) to `R.dtype`'s rounding.

    Test: max |RᵀR − I| ≤ τ = 32·ε (3.8e-6 in float32). Then each singular value has |σ − 1| ≤ ‖RᵀR − I‖₂ ≤ 3τ,
    so the SVD projection would move R by at most 3τ (float32: 1.1e-5, in practice the float32 SVD's own
    rounding, ~1e-6): skipping it is safe. One reduction and, on a GPU, one synchronisation.
    """
    if R.numel() == 0:
        return True
    tolerance = 32 * torch.finfo(R.dtype).eps
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    ok = (R.mT @ R - eye).abs().amax() <= tolerance  # NaN fails
    if proper:
        ok = ok & (torch.linalg.det(R) > 0).all()
    return bool(ok)


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
        unpacked state holds proper rotation matrices. Outside autograd, a block whose matrices are all
        orthonormal to rounding already (the sampler's projected body rotations) is kept as it is
        (`orthonormal_to_rounding`: it differs from its re-projection by float rounding only).
        """
        expected = packed_dim(num_betas, include_hands)
        if x.shape[-1] != expected:
            raise ValueError(
                f"packed state has width {x.shape[-1]}, expected {expected} "
                f"(num_betas={num_betas}, include_hands={include_hands})"
            )
        parts = {name: x[..., where] for name, where in state_slices(num_betas, include_hands).items()}
        batch = x.shape[:-1]
        body = parts["body_rotmats"].reshape(*batch, NUM_BODY_ROTATIONS, 3, 3)
        hands = parts["hand_rotmats"].reshape(*batch, NUM_HAND_ROTATIONS, 3, 3) if include_hands else None

        def project(R: Tensor) -> Tensor:
            if not R.requires_grad and orthonormal_to_rounding(R, proper=fix_reflection):
                return R  # (with autograd the projection's Jacobian differs from the identity: never skipped)
            return nearest_rotation(R, fix_reflection=fix_reflection)

        if project_rotations:
            body = project(body)
            hands = None if hands is None else project(hands)
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
        return map_fields(self, fn)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> MotionState:
        """Move and/or cast every field."""
        return self.map(lambda t: t.to(device=device, dtype=dtype))
