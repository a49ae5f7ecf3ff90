"""Joint metrics of recovered motion against ground truth (metres in, millimetres out).

Joints are the 22 body joints (pelvis first), in the world frame, with the prediction placed by
EgoAllo's head anchoring; no other alignment unless stated.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.geometry import umeyama_alignment


def mpjpe(predicted: Float[Tensor, "*batch J 3"], truth: Float[Tensor, "*batch J 3"]) -> Float[Tensor, "*batch"]:
    """Mean per-joint position error per frame, millimetres."""
    return torch.linalg.vector_norm(predicted - truth, dim=-1).mean(dim=-1) * 1000.0


def pa_mpjpe(predicted: Float[Tensor, "*batch J 3"], truth: Float[Tensor, "*batch J 3"]) -> Float[Tensor, "*batch"]:
    """MPJPE after a per-frame Umeyama similarity alignment (rotation, translation, scale) of the prediction, mm."""
    aligned = umeyama_alignment(predicted.double(), truth.double()).apply(predicted.double())
    return mpjpe(aligned, truth.double()).to(predicted.dtype)
