"""Training crops: random fixed-length windows of the sequences of a motion file, as a torch Dataset.

Sampling is group-uniform, as EgoAllo's: every sequence long enough is drawn equally often,
whatever its length. The dataset has Σ_i T_i // L items (T_i ≥ L); item k is a crop of sequence
k mod N starting at a frame drawn uniformly from [0, T − L], from a generator seeded by
(seed, epoch, k) — so a crop depends only on those three numbers, not on worker count or order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egogrpo.body.model import BodyModel
from egogrpo.config import AugmentConfig
from egogrpo.data.augment import AugmentDraw, augment_window, draw_augmentation, source_frames
from egogrpo.data.hdf5_schema import SPLITS, MotionFile, MotionFileInfo
from egogrpo.data.sequence import SequenceArrays
from egogrpo.errors import EgogrpoError
from egogrpo.tensor_dataclass import map_fields


@dataclass(frozen=True)
class MotionCrop:
    """One crop of L frames (or a batch of N crops: a leading N on every field), float32 tensors.

    T_world_root       (L, 7)      wxyz_xyz, pelvis position
    body_quats         (L, 21, 4)  local rotations of the non-root body joints, wxyz
    contacts           (L, 21)     contact labels in {0, 1}
    betas              (1, B)      shape parameters
    T_world_cpf        (L, 7)      central pupil frame
    T_cpf_tm1_cpf_t    (L, 7)      CPF motion from the previous frame
    height_from_floor  (L, 1)      CPF height above the floor
    joints_wrt_cpf     (L, 21, 3)  non-root joints in the CPF frame
    hand_quats         (L, 30, 4)  or None when the dataset has no hand rotations
    """

    T_world_root: torch.Tensor
    body_quats: torch.Tensor
    contacts: torch.Tensor
    betas: torch.Tensor
    T_world_cpf: torch.Tensor
    T_cpf_tm1_cpf_t: torch.Tensor
    height_from_floor: torch.Tensor
    joints_wrt_cpf: torch.Tensor
    hand_quats: torch.Tensor | None = None

    @classmethod
    def from_arrays(cls, arrays: SequenceArrays, with_hand_quats: bool = True) -> MotionCrop:
        """Copy numpy arrays into float32 tensors (hand_quats dropped unless `with_hand_quats`)."""
        values = {}
        for f in dataclasses.fields(cls):
            value = getattr(arrays, f.name)
            if f.name == "hand_quats" and not with_hand_quats:
                value = None
            values[f.name] = None if value is None else torch.tensor(value, dtype=torch.float32)
        return cls(**values)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MotionCrop:
        return map_fields(self, lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> MotionCrop:
        """Called by DataLoader(pin_memory=True)."""
        return map_fields(self, lambda t: t.pin_memory())


def collate_crops(crops: Sequence[MotionCrop]) -> MotionCrop:
    """Stack crops along a new leading batch dimension (a DataLoader `collate_fn`)."""
    if not crops:
        raise ValueError("collate_crops needs at least one crop")
    with_hands = {crop.hand_quats is not None for crop in crops}
    if len(with_hands) > 1:
        raise ValueError("some crops have hand_quats and some do not")
    return MotionCrop(
        **{
            f.name: None if getattr(crops[0], f.name) is None else torch.stack([getattr(c, f.name) for c in crops])
            for f in dataclasses.fields(MotionCrop)
        }
    )


class MotionCropDataset(torch.utils.data.Dataset[MotionCrop]):
    """Random `crop_length`-frame crops of the sequences of `splits` in a motion file.

    len(dataset) = Σ_i T_i // crop_length over the sequences with T_i ≥ crop_length; shorter
    ones are skipped and counted in `skipped_short`. Call `set_epoch(e)` before each epoch's
    DataLoader iteration to draw new crops (with persistent_workers=True the workers keep the
    epoch they were started with). The HDF5 file is opened lazily in each process that reads,
    so DataLoader workers each get their own handle. `preload=True` reads every selected
    sequence into memory once (for small files such as CMU). `hand_quats` is returned only when
    every selected sequence has it. With an active `augment` (and the file's `body`), each crop is
    augmented (`data.augment`) by draws from a generator keyed by (seed, epoch, index, 1).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        splits: str | Iterable[str] = ("train",),
        crop_length: int = 128,
        seed: int = 0,
        preload: bool = False,
        augment: AugmentConfig | None = None,
        body: BodyModel | None = None,
    ) -> None:
        if crop_length < 1:
            raise ValueError(f"crop_length must be ≥ 1, got {crop_length}")
        self.augment = augment if augment is not None and augment.active else None
        if self.augment is not None and body is None:
            raise ValueError("augmentation needs the motion file's body model")
        self.body = None if body is None else body.to(dtype=torch.float64)
        self.path = Path(path)
        self.splits = (splits,) if isinstance(splits, str) else tuple(splits)
        self.crop_length = crop_length
        self.seed = seed
        self.epoch = 0
        with MotionFile(self.path) as motion:
            self.info: MotionFileInfo = motion.info
            candidates = motion.names(split=self.splits)
            lengths = [motion.num_frames(name) for name in candidates]
            self._check_selection(motion, lengths)
            long_enough = [(n, t) for n, t in zip(candidates, lengths, strict=True) if t >= crop_length]
            self.names: tuple[str, ...] = tuple(n for n, _ in long_enough)
            self.num_frames: tuple[int, ...] = tuple(t for _, t in long_enough)
            self.skipped_short = len(candidates) - len(self.names)
            self.has_hand_quats = all(motion.has_hand_quats(name) for name in self.names)
            self._preloaded = [motion.read(name) for name in self.names] if preload else None
        self._length = sum(t // crop_length for t in self.num_frames)
        self._file: MotionFile | None = None
        self._file_pid: int | None = None

    def _check_selection(self, motion: MotionFile, lengths: list[int]) -> None:
        """EgogrpoError when no sequence of the splits is at least crop_length frames long."""
        wanted = ", ".join(repr(s) for s in self.splits)
        if not lengths:
            present = {s: len(motion.names(split=s)) for s in SPLITS}
            have = ", ".join(f"{s!r}: {n}" for s, n in present.items() if n) or "none"
            raise EgogrpoError(f"{self.path}: no sequences in split {wanted} (sequences per split: {have})")
        if max(lengths) < self.crop_length:
            raise EgogrpoError(
                f"{self.path}: all {len(lengths)} sequences in split {wanted} are shorter than "
                f"crop_length={self.crop_length} frames (the longest has {max(lengths)})"
            )

    @property
    def body_model_id(self) -> str:
        return self.info.body_model_id

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self._length

    def crop_window(self, index: int) -> tuple[str, int]:
        """(sequence name, start frame) of item `index` in the current epoch."""
        sequence, start = self._window(index)
        return self.names[sequence], start

    def _window(self, index: int) -> tuple[int, int]:
        if not 0 <= index < self._length:
            raise IndexError(f"crop index {index} out of range for {self._length} crops")
        sequence = index % len(self.names)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, index)))
        start = int(rng.integers(0, self.num_frames[sequence] - self.crop_length + 1))
        return sequence, start

    def augmentation(self, index: int) -> tuple[AugmentDraw, int, int] | None:
        """(draws, first stored frame, frame count) of item `index`'s augmented window, or None.

        The window holds the crop's span at the drawn speed plus the frame before it; a speed whose
        span does not fit the sequence is lowered to the longest that does.
        """
        if self.augment is None or self.body is None:
            return None
        sequence = index % len(self.names)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, index, 1)))
        draw = draw_augmentation(self.augment, self.body.num_betas, rng)
        frames = self.num_frames[sequence]
        if frames <= self.crop_length:  # no frame before the crop: nothing to rebuild it from
            return None
        speed = min(draw.speed, (frames - 1) / self.crop_length)
        draw = dataclasses.replace(draw, speed=speed)
        count = source_frames(self.crop_length, speed)
        start = int(rng.integers(0, frames - count + 1))
        return draw, start, count

    def __getitem__(self, index: int) -> MotionCrop:
        augmentation = self.augmentation(index)
        if augmentation is None:
            sequence, start = self._window(index)
            return MotionCrop.from_arrays(self._read(sequence, start, start + self.crop_length), self.has_hand_quats)
        draw, start, count = augmentation
        window = self._read(index % len(self.names), start, start + count)
        if draw.identity and count == self.crop_length + 1:
            window = window.slice(1, count)
        else:
            assert self.body is not None
            window = augment_window(window, draw, self.body, self.crop_length)
        return MotionCrop.from_arrays(window, with_hand_quats=self.has_hand_quats)

    def _read(self, sequence: int, start: int, stop: int) -> SequenceArrays:
        """Frames [start, stop) of a selected sequence (from memory when preloaded)."""
        if self._preloaded is None:
            return self._motion_file().read_frames(self.names[sequence], start, stop)
        return self._preloaded[sequence].slice(start, stop)

    def _motion_file(self) -> MotionFile:
        """This process's read handle (h5py handles must not cross a fork)."""
        if self._file is None or self._file_pid != os.getpid():
            self._file = MotionFile(self.path)
            self._file_pid = os.getpid()
        return self._file

    def close(self) -> None:
        if self._file is not None and self._file_pid == os.getpid():
            self._file.close()
        self._file = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (spawned workers) without the open file; the worker opens its own."""
        state = dict(self.__dict__)
        state["_file"] = None
        state["_file_pid"] = None
        return state
