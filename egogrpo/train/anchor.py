"""The anchor loss of `train-grpo` (`TrainGRPOConfig.anchor_weight`): the prior's own denoising loss on real
training crops, added to every optimizer step of every update rule, as reward-feedback fine-tuning of diffusion
models does to keep the policy on real data while the reward pulls it.

Optimizer step s (counted over the whole run: iteration · inner_epochs · updates_per_epoch + …) draws
`anchor_batch` crops of the train split and their noise levels and noise from counter-based streams keyed by
(seed, s, global row) (`model.noise.PURPOSE_ANCHOR`), so the loss does not depend on the number of processes;
each process computes its rows' share, divided so that the gradients summed over processes are those of the
global batch mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

from egogrpo.config import DenoiserConfig, TrainGRPOConfig
from egogrpo.data.crops import MotionCrop, MotionCropDataset, collate_crops
from egogrpo.model import noise
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.train.batching import EpochIndexed
from egogrpo.train.prior import denoising_losses


class AnchorLoss:
    """w·L_prior(θ) on keyed real crops; `backward(model, step)` adds its gradient and returns the loss value."""

    def __init__(
        self,
        dataset: MotionCropDataset,
        config: TrainGRPOConfig,
        model_config: DenoiserConfig,
        rank: int,
        world: int,
        device: torch.device,
    ) -> None:
        self.indexed = EpochIndexed(dataset)  # item epoch·N + k: crop k as dataset epoch `epoch` cuts it
        self.config, self.model_config, self.device = config, model_config, device
        per_rank = config.anchor_batch // world
        self.rows = torch.arange(rank * per_rank, (rank + 1) * per_rank)
        self.world = world
        self.schedule = NoiseSchedule.cosine()

    def crops(self, step: int) -> MotionCrop:
        """This process's real crops of optimizer step `step`: dataset items drawn with replacement, each crop's
        start (and augmentation) that of dataset epoch `step`."""
        keys = noise.stream_key(self.config.seed, noise.PURPOSE_ANCHOR, step, self.rows, 2)
        count = len(self.indexed.dataset)
        items = (noise.uniform(keys, ()) * count).long().clamp_max(count - 1)
        return collate_crops([self.indexed[step * count + int(k)] for k in items]).to(self.device)

    def loss(self, model: torch.nn.Module, step: int) -> Tensor:
        """The unweighted anchor loss of this process's rows (the prior's training loss "total")."""
        c = self.config
        return denoising_losses(
            model, self.crops(step), self.model_config, self.schedule, c.seed, step, self.rows,
            purpose=noise.PURPOSE_ANCHOR,
        )["total"]  # fmt: skip

    def backward(self, model: torch.nn.Module, step: int) -> float:
        """Accumulate the gradient of w·loss / world (summed over processes: the global mean); the loss value."""
        value = self.loss(model, step)
        (self.config.anchor_weight * value / self.world).backward()
        return float(value.detach())
