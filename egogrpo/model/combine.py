"""Test-time alternatives to post-training that need no training: one motion from several samples of a prior.

"mean": the mean of S samples — betas, contacts and the chordal L2 mean of each rotation (the element-wise
        mean of the S rotation matrices projected to SO(3), `geometry.nearest_rotation`), per frame and joint;
"best": best-of-S — the sample a verifier scores highest (e.g. the perceptual model of `train-reward`,
        `model.perceptual.verifier_scores`); ties go to the earliest sample.
Both map a state with leading (*batch, S) to (*batch, 1).
"""

from __future__ import annotations

import dataclasses

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.geometry import nearest_rotation
from egogrpo.model.state import MotionState

#: The ways `eval --combine` and `recover --combine` turn S candidate samples into one motion ("none": keep all).
COMBINE_RULES = ("none", "mean", "best")


def mean_of_samples(state: MotionState) -> MotionState:
    """(*batch, S, T, …) → (*batch, 1, T, …): the mean sample (rotations: the projected mean matrix)."""

    def mean(field: Tensor | None, rotation: bool) -> Tensor | None:
        if field is None:
            return None
        average = field.mean(dim=state.body_rotmats.dim() - 5, keepdim=True)  # the sample axis
        return nearest_rotation(average) if rotation else average

    return dataclasses.replace(
        state,
        betas=mean(state.betas, False),
        body_rotmats=mean(state.body_rotmats, True),
        contacts=mean(state.contacts, False),
        hand_rotmats=mean(state.hand_rotmats, True),
    )


def best_of_samples(state: MotionState, scores: Float[Tensor, "*batch S"]) -> MotionState:
    """(*batch, S, T, …) → (*batch, 1, T, …): per batch element the sample of the highest score."""
    lead = state.body_rotmats.shape[:-4]
    if scores.shape != lead:
        raise ValueError(f"scores must have the state's leading shape {tuple(lead)}, got {tuple(scores.shape)}")
    best = scores.argmax(dim=-1, keepdim=True)  # (*batch, 1); the first maximum

    def pick(field: Tensor | None) -> Tensor | None:
        if field is None:
            return None
        index = best.reshape(*best.shape, *([1] * (field.dim() - best.dim())))
        return torch.take_along_dim(field, index.to(field.device), dim=best.dim() - 1)

    return dataclasses.replace(
        state,
        betas=pick(state.betas),
        body_rotmats=pick(state.body_rotmats),
        contacts=pick(state.contacts),
        hand_rotmats=pick(state.hand_rotmats),
    )
