"""Exponential moving averages of a model's weights (train-prior's `ema_decay`, train-grpo's online scorer)."""

from __future__ import annotations

import copy

import torch


def warmup_decay(decay: float, step: int) -> float:
    """min(decay, (1 + step)/(10 + step)) after 0-based optimizer step `step`: early averages are not dominated
    by the random initial weights."""
    return min(decay, (1 + step) / (10 + step))


class WeightAverage:
    """A frozen copy ē of a model kept as ē ← d·ē + (1 − d)·θ over its parameters (buffers are copied)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, decay: float) -> None:
        for average, current in zip(self.model.parameters(), model.parameters(), strict=True):
            average.lerp_(current, 1 - decay)
        for average, current in zip(self.model.buffers(), model.buffers(), strict=True):
            average.copy_(current)
