"""Evaluation windows of a motion file, sampling a prior on them, a mean-pose baseline, and joint errors.

Shared by train-prior's validation and the scripts that report a model's accuracy; the `eval`
command builds its protocols on these pieces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.data.crops import MotionCrop, collate_crops
from egogrpo.data.hdf5_schema import MotionFile
from egogrpo.errors import EgogrpoError
from egogrpo.eval.metrics import mpjpe, pa_mpjpe
from egogrpo.geometry import nearest_rotation, quat_from_matrix, quat_to_matrix
from egogrpo.model.placement import placed_joints, truth_joints
from egogrpo.model.state import MotionState
from egogrpo.tensor_dataclass import map_fields

SLICINGS = ("windows", "egoallo")


@dataclass(frozen=True)
class Windows:
    """Fixed-length windows: a batch of crops (N leading) and where each came from."""

    crops: MotionCrop
    names: tuple[str, ...]
    starts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.names)

    def chunk(self, first: int, stop: int, device: torch.device | str | None = None) -> Windows:
        """Windows first … stop − 1 (views of the same tensors, or copies on `device`)."""
        crops = map_fields(self.crops, lambda v: v[first:stop].to(device))
        return Windows(crops, self.names[first:stop], self.starts[first:stop])


def evaluation_windows(lengths: Sequence[int], length: int = 128, slicing: str = "windows") -> list[tuple[int, int]]:
    """(sequence index, first frame) of the `length`-frame evaluation windows of sequences of `lengths` frames.

    "windows": non-overlapping windows from frame 0 of every sequence, in sequence order.
    "egoallo": EgoAllo's deterministic evaluation dataset (reference/egoallo.md §9), slices of S = length + 1
    frames (the extra first frame gives the first relative CPF pose). Of the N sequences with T_g ≥ S, taken
    in the given order, there are ⌊Σ_g T_g / S⌋ items; item i reads sequence i mod N at slice k = i div N,
    starting at (k·S) mod (T_g − S) (0 when T_g = S). Every sequence gets the same number of slices (±1),
    dealt round-robin: short ones wrap around and overlap, long ones are not covered. The window is the
    slice without its first frame, so it starts one frame later. Items are returned in EgoAllo's order.
    """
    if slicing == "windows":
        return [(g, s) for g, frames in enumerate(lengths) for s in range(0, frames - length + 1, length)]
    if slicing != "egoallo":
        raise EgogrpoError(f"unknown slicing {slicing!r}; known: {', '.join(SLICINGS)}")
    span = length + 1
    kept = [g for g, frames in enumerate(lengths) if frames >= span]
    if not kept:
        return []
    items = []
    for i in range(sum(lengths[g] for g in kept) // span):
        g, k = kept[i % len(kept)], i // len(kept)
        valid = lengths[g] - span
        items.append((g, (k * span) % valid + 1 if valid > 0 else 1))
    return items


def read_windows(
    motion: MotionFile,
    names: Sequence[str],
    length: int = 128,
    slicing: str = "windows",
    max_windows: int | None = None,
    first_only: bool = False,
) -> Windows | None:
    """The windows of `names` (see `evaluation_windows`; or the first of each), each sequence read once; at most
    `max_windows` of them, evenly spread over the list (`spread_indices`).

    A sequence whose arrays are not finite, or whose quaternions are not unit, is refused (EgogrpoError
    naming the file, the sequence and the field). None when no sequence has a window.
    """
    picks = evaluation_windows([motion.num_frames(name) for name in names], length, slicing)
    if first_only:
        picks = [p for n, p in enumerate(picks) if all(q[0] != p[0] for q in picks[:n])]
    if max_windows is not None and len(picks) > max_windows:  # spread over the split, not its first sequences
        picks = [picks[i] for i in spread_indices(len(picks), max_windows)]
    if not picks:
        return None
    crops: dict[int, MotionCrop] = {}
    for g in sorted({g for g, _ in picks}):
        arrays = motion.read(names[g])
        problems = arrays.problems()
        if problems:
            raise EgogrpoError(f"{motion.path}: sequence {names[g]!r}: {'; '.join(problems)}")
        whole = MotionCrop.from_arrays(arrays, with_hand_quats=False)
        for n, (h, start) in enumerate(picks):
            if h == g:
                crops[n] = _crop(whole, start, length)
    return Windows(
        collate_crops([crops[n] for n in range(len(picks))]),
        tuple(names[g] for g, _ in picks),
        tuple(start for _, start in picks),
    )


def spread_indices(count: int, keep: int) -> list[int]:
    """`keep` of the indices 0 … count−1, evenly spaced, first and last included (all of them when keep ≥ count)."""
    if keep >= count:
        return list(range(count))
    if keep == 1:
        return [0]
    return sorted({round(i * (count - 1) / (keep - 1)) for i in range(keep)})


def _crop(whole: MotionCrop, start: int, length: int) -> MotionCrop:
    """Frames [start, start + length) of a one-sequence crop, copied (betas are per sequence)."""
    return dataclasses.replace(map_fields(whole, lambda v: v[start : start + length].clone()), betas=whole.betas)


def split_windows(
    data: str,
    split: str | Sequence[str],
    length: int = 128,
    max_windows: int | None = None,
    first_only: bool = False,
    slicing: str = "windows",
) -> Windows | None:
    """Windows of `length` frames of every sequence of `split` (one or several; see `read_windows`)."""
    with MotionFile(data) as motion:
        return read_windows(motion, motion.names(split), length, slicing, max_windows, first_only)


LABEL_SOURCES = ("stored", "state_fk")


def label_joints(body: BodyModel, crops: MotionCrop, source: str = "stored") -> Float[Tensor, "*batch T 22 3"]:
    """Ground-truth world joints (pelvis first) from the labels `source`.

    "stored": the file's `joints_wrt_cpf` placed on its CPF, the pelvis from `T_world_root` (`truth_joints`);
    for gendered AMASS clips these come from the gendered model. "state_fk" (EgoAllo's labels): forward
    kinematics of the ground-truth state (betas, body rotations, T_world_root) with `body`, the model the
    prediction is posed with.
    """
    if source == "stored":
        return truth_joints(crops)
    if source != "state_fk":
        raise EgogrpoError(f"unknown label source {source!r}; known: {', '.join(LABEL_SOURCES)}")
    shaped = body.to(dtype=crops.T_world_root.dtype).with_shape(crops.betas)  # betas (*batch, 1, B): over frames
    return shaped.with_pose(crops.T_world_root, crops.body_quats).joints[..., :22, :]


def mean_pose(motion: MotionFile, names: Sequence[str], num_betas: int) -> MotionState:
    """The baseline: the mean pose and shape of sequences `names` (rotations averaged, then projected), one frame."""
    if motion.info.num_betas != num_betas:
        raise EgogrpoError(f"{motion.path}: {motion.info.num_betas} betas, but the body model has {num_betas}")
    rotations, betas, count = torch.zeros(21, 3, 3, dtype=torch.float64), torch.zeros(num_betas, dtype=torch.float64), 0
    for name in names:
        arrays = motion.read(name)
        problems = arrays.problems()
        if problems:
            raise EgogrpoError(f"{motion.path}: sequence {name!r}: {'; '.join(problems)}")
        rotations += quat_to_matrix(torch.from_numpy(arrays.body_quats).double()).sum(dim=0)
        betas += torch.from_numpy(arrays.betas[0]).double() * arrays.num_frames
        count += arrays.num_frames
    if count == 0:
        raise EgogrpoError(f"{motion.path}: no sequence to average a mean pose over")
    return MotionState(
        betas=(betas / count).float()[None],
        body_rotmats=nearest_rotation(rotations / count).float()[None],
        contacts=torch.zeros(1, 21),
    )


def mean_pose_state(data: str, splits: tuple[str, ...], num_betas: int) -> MotionState:
    """`mean_pose` of the sequences of `splits` of a motion file."""
    with MotionFile(data) as motion:
        return mean_pose(motion, motion.names(splits), num_betas)


def mean_pose_to_json(state: MotionState, source: str) -> dict:
    """A mean pose as JSON (a checkpoint's `extra["mean_training_pose"]`): betas, 21 wxyz quaternions, source."""
    return {
        "betas": state.betas[0].tolist(),
        "body_quats": quat_from_matrix(state.body_rotmats[0].double()).tolist(),
        "source": source,
    }


def mean_pose_from_json(value: object, where: str, num_betas: int) -> MotionState:
    """The inverse of `mean_pose_to_json`; a malformed value is an EgogrpoError naming `where`."""
    try:
        betas = torch.tensor(value["betas"], dtype=torch.float64)  # type: ignore[index]
        quats = torch.tensor(value["body_quats"], dtype=torch.float64)  # type: ignore[index]
    except (TypeError, KeyError, ValueError) as e:
        raise EgogrpoError(f"{where}: mean_training_pose is malformed ({e})") from None
    if betas.shape != (num_betas,) or quats.shape != (21, 4) or not bool(torch.isfinite(quats).all()):
        raise EgogrpoError(
            f"{where}: mean_training_pose has betas {tuple(betas.shape)} and body_quats {tuple(quats.shape)}, "
            f"expected ({num_betas},) and (21, 4), finite"
        )
    return MotionState(
        betas=betas.float()[None],
        body_rotmats=quat_to_matrix(quats / quats.norm(dim=-1, keepdim=True)).float()[None],
        contacts=torch.zeros(1, 21),
    )


def joint_errors(body: BodyModel, state: MotionState, crops: MotionCrop) -> dict[str, Tensor]:
    """Per-window, per-sample MPJPE and PA-MPJPE (mm), shape (N, S)."""
    predicted, truth = placed_joints(body, state, crops)
    return {"mpjpe": mpjpe(predicted, truth).mean(dim=-1), "pa_mpjpe": pa_mpjpe(predicted, truth).mean(dim=-1)}
