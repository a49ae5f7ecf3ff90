"""Deterministic batches of training crops, shared by train-prior, train-reward and train-grpo: which dataset items
each step's global batch holds (a seeded permutation per epoch, the same for any number of processes), and the
dataset view whose item i = epoch · N + k is crop k of epoch `epoch` (crops depend on seed, epoch and k)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from egogrpo.data.crops import MotionCrop, MotionCropDataset


class EpochIndexed(torch.utils.data.Dataset):
    """Global item i = epoch · N + k of a MotionCropDataset (whose crops depend on seed, epoch and k)."""

    def __init__(self, dataset: MotionCropDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return 2**62

    def __getitem__(self, index: int) -> MotionCrop:
        epoch, k = divmod(index, len(self.dataset))
        self.dataset.set_epoch(epoch)
        return self.dataset[k]


class StepBatches(torch.utils.data.Sampler[list[int]]):
    """The items of each step's global batch, this rank's share: a seeded permutation per epoch."""

    def __init__(
        self, num_items: int, global_batch: int, rank: int, world: int, seed: int, start: int, stop: int
    ) -> None:
        self.num_items, self.global_batch, self.rank, self.world = num_items, global_batch, rank, world
        self.seed, self.start, self.stop = seed, start, stop
        self.local = global_batch // world

    def batch_items(self, step: int) -> list[int]:
        """This rank's global item indices at `step` (batches never straddle epochs: the tail of an epoch is dropped)."""
        per_epoch = max(self.num_items // self.global_batch, 1)
        epoch, position = divmod(step, per_epoch)
        permutation = torch.randperm(
            self.num_items, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        )
        start = position * self.global_batch + self.rank * self.local
        items = (
            permutation[start : start + self.local]
            if self.num_items >= self.global_batch
            else permutation[torch.arange(start, start + self.local) % self.num_items]
        )
        return [epoch * self.num_items + int(k) for k in items]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.stop):
            yield self.batch_items(step)

    def __len__(self) -> int:
        return max(self.stop - self.start, 0)
