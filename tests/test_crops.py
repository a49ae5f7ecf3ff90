"""Training crops: group-uniform, deterministic per (seed, epoch, index), equal to the file's slices."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from test_hdf5_schema import NUM_BETAS, make_sequence, write_motion_file

from egogrpo.data.crops import MotionCrop, MotionCropDataset, collate_crops
from egogrpo.data.hdf5_schema import MotionFile
from egogrpo.data.sequence import SEQUENCE_FIELDS
from egogrpo.errors import EgogrpoError

L = 16
#: name → (frames, split); "short" is shorter than L; "v" is the only validation sequence.
LAYOUT = {"a": (40, "train"), "B/b": (17, "train"), "B/c": (100, "train"), "short": (9, "train"), "v": (33, "val")}


@pytest.fixture(scope="module")
def motion_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    sequences = {name: (make_sequence(rng, frames), split) for name, (frames, split) in LAYOUT.items()}
    return write_motion_file(tmp_path_factory.mktemp("crops") / "m.hdf5", sequences)


def windows(dataset: MotionCropDataset) -> list[tuple[str, int]]:
    return [dataset.crop_window(k) for k in range(len(dataset))]


def test_length_is_group_uniform(motion_path: Path) -> None:
    dataset = MotionCropDataset(motion_path, crop_length=L)
    assert dataset.names == ("B/b", "B/c", "a") and dataset.skipped_short == 1
    assert len(dataset) == 17 // L + 100 // L + 40 // L
    assert [name for name, _ in windows(dataset)] == [dataset.names[k % 3] for k in range(len(dataset))]
    assert dataset.body_model_id == dataset.info.body_model_id == "default:51f398527f92"
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_crops_are_slices_of_their_sequence(motion_path: Path) -> None:
    dataset = MotionCropDataset(motion_path, crop_length=L, seed=3)
    with MotionFile(motion_path) as motion:
        whole = {name: motion.read(name) for name in dataset.names}
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for k in range(len(dataset)):
            name, start = dataset.crop_window(k)
            assert 0 <= start <= whole[name].num_frames - L
            crop = dataset[k]
            for field in SEQUENCE_FIELDS:
                expected = getattr(whole[name], field)
                expected = expected if field == "betas" else expected[start : start + L]
                value = getattr(crop, field)
                assert value.dtype == torch.float32 and torch.equal(value, torch.from_numpy(expected)), field
    assert crop.body_quats.shape == (L, 21, 4) and crop.betas.shape == (1, NUM_BETAS)


def test_crops_are_deterministic_per_seed_and_epoch(motion_path: Path) -> None:
    first, second = MotionCropDataset(motion_path, crop_length=L), MotionCropDataset(motion_path, crop_length=L)
    assert windows(first) == windows(second)
    assert torch.equal(first[4].joints_wrt_cpf, second[4].joints_wrt_cpf)
    second.set_epoch(1)
    assert windows(first) != windows(second)
    first.set_epoch(1)
    assert windows(first) == windows(second)
    assert windows(MotionCropDataset(motion_path, crop_length=L, seed=1)) != windows(
        MotionCropDataset(motion_path, crop_length=L)
    )


def test_preload_gives_the_same_crops(motion_path: Path) -> None:
    lazy = MotionCropDataset(motion_path, crop_length=L, seed=5)
    preloaded = MotionCropDataset(motion_path, crop_length=L, seed=5, preload=True)
    for k in range(len(lazy)):
        a, b = lazy[k], preloaded[k]
        for field in dataclasses.fields(MotionCrop):
            assert torch.equal(getattr(a, field.name), getattr(b, field.name))
    b.body_quats.zero_()  # crops are copies: changing one leaves the preloaded data alone
    assert not torch.equal(preloaded[len(lazy) - 1].body_quats, b.body_quats)


def test_splits_and_empty_selections(motion_path: Path) -> None:
    assert MotionCropDataset(motion_path, splits="val", crop_length=L).names == ("v",)
    assert MotionCropDataset(motion_path, splits=["train", "val"], crop_length=L).names == ("B/b", "B/c", "a", "v")
    with pytest.raises(
        EgogrpoError, match=r"no sequences in split 'test' \(sequences per split: 'train': 4, 'val': 1\)"
    ) as error:
        MotionCropDataset(motion_path, splits="test", crop_length=L)
    assert str(error.value).startswith(str(motion_path))
    with pytest.raises(EgogrpoError, match="all 1 sequences in split 'val' are shorter than crop_length=128") as error:
        MotionCropDataset(motion_path, splits="val")
    assert str(error.value).startswith(str(motion_path))


def test_hand_quats_only_when_every_sequence_has_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = write_motion_file(
        tmp_path / "m.hdf5",
        {"hands": (make_sequence(rng, 20), "train"), "no_hands": (make_sequence(rng, 20, hands=False), "val")},
    )
    assert MotionCropDataset(path, splits="train", crop_length=L)[0].hand_quats.shape == (L, 30, 4)
    assert MotionCropDataset(path, splits=("train", "val"), crop_length=L)[0].hand_quats is None


def test_collate_and_to(motion_path: Path) -> None:
    dataset = MotionCropDataset(motion_path, crop_length=L)
    batch = collate_crops([dataset[k] for k in range(3)]).to("cpu")
    assert batch.T_world_root.shape == (3, L, 7) and batch.betas.shape == (3, 1, NUM_BETAS)
    assert batch.hand_quats.shape == (3, L, 30, 4)
    with pytest.raises(ValueError, match="some crops have hand_quats"):
        collate_crops([dataset[0], dataclasses.replace(dataset[1], hand_quats=None)])


def test_dataloader_workers_give_the_same_crops(motion_path: Path) -> None:
    dataset = MotionCropDataset(motion_path, crop_length=L, seed=7)
    dataset.set_epoch(2)

    def batches(num_workers: int) -> list[MotionCrop]:
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=num_workers, collate_fn=collate_crops)
        return list(loader)

    serial = batches(0)  # opens the file in this process first: workers must open their own
    parallel = batches(2)
    assert len(serial) == len(parallel) == 5  # 9 crops
    for a, b in zip(serial, parallel, strict=True):
        for field in dataclasses.fields(MotionCrop):
            assert torch.equal(getattr(a, field.name), getattr(b, field.name))
    clone = pickle.loads(pickle.dumps(dataset))  # spawned workers get the dataset without its open file
    assert clone._file is None and torch.equal(clone[0].contacts, dataset[0].contacts)
