"""Reading a `recovered.npz` (written by `egogrpo recover`) for viewing, with every field checked.

World frame: the MPS world of the recording, z up, metres. Poses are wxyz_xyz.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from egogrpo.body.topology import NUM_BODY_JOINTS
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import read_npz
from egogrpo.recover.aria import POINTS_FILES
from egogrpo.recover.pipeline import OUTPUT_NPZ

#: Fields a recovered.npz must hold, with their expected shapes (S samples, T frames, B betas).
REQUIRED_FIELDS: dict[str, str] = {
    "Ts_world_cpf": "(T, 7)",
    "Ts_world_root": "(S, T, 7)",
    "body_quats": "(S, T, 21, 4)",
    "contacts": "(S, T, 21)",
    "betas": "(S, T, B)",
    "joints_world": "(S, T, 22, 3)",
    "timestamps_ns": "(T,)",
    "floor_z": "()",
    "metadata": "() JSON string",
}


@dataclass(frozen=True)
class RecoveredView:
    """What the viewers draw from a recovered.npz (world frame, z up, metres).

    joints:        (S, T, 22, 3) float64 world joint positions of each sample (BODY_JOINT_NAMES order)
    T_world_cpf:   (T, 7) float64 head (CPF) poses, wxyz_xyz; the input trajectory, shared by samples
    floor_z:       floor height, world z
    timestamps_ns: (T,) int64 device time of each frame
    metadata:      the JSON metadata `egogrpo recover` wrote (body_model_id, trajectory, fps, …)
    point_cloud:   the recording's MPS point cloud beside its trajectory, if that file exists
    """

    path: Path
    joints: np.ndarray
    T_world_cpf: np.ndarray
    floor_z: float
    timestamps_ns: np.ndarray
    metadata: dict
    point_cloud: Path | None

    @property
    def num_samples(self) -> int:
        return self.joints.shape[0]

    @property
    def num_frames(self) -> int:
        return self.joints.shape[1]

    @property
    def cpf_positions(self) -> np.ndarray:
        """(T, 3) head (CPF) positions."""
        return self.T_world_cpf[:, 4:]

    @property
    def times_s(self) -> np.ndarray:
        """(T,) seconds since the first frame."""
        return (self.timestamps_ns - self.timestamps_ns[0]) / 1e9

    @property
    def fps(self) -> float:
        """Frame rate: the metadata's `fps`, else from the timestamps, else 30."""
        fps = self.metadata.get("fps")
        if isinstance(fps, int | float) and np.isfinite(fps) and fps > 0:
            return float(fps)
        if self.num_frames > 1 and self.times_s[-1] > 0:
            return (self.num_frames - 1) / float(self.times_s[-1])
        return 30.0

    def sample_joints(self, sample: int) -> np.ndarray:
        """(T, 22, 3) joints of one sample; an EgogrpoError names the range for a bad index."""
        if not 0 <= sample < self.num_samples:
            raise EgogrpoError(
                f"{self.path}: no sample {sample}; the file holds {self.num_samples} (0 to {self.num_samples - 1})"
            )
        return self.joints[sample]


def load_recovered(path: str | Path) -> RecoveredView:
    """Read and check a recovered.npz (or the folder holding one).

    Raises EgogrpoError, one line naming the file, when it is missing, not a readable npz, lacks a
    field of REQUIRED_FIELDS, has a field of the wrong shape, non-finite values or bad metadata.
    """
    path = Path(path)
    if path.is_dir():
        path = path / OUTPUT_NPZ
    if not path.is_file():
        raise EgogrpoError(f"{path}: no such file (expected the {OUTPUT_NPZ} written by `egogrpo recover`)")
    arrays = read_npz(path, REQUIRED_FIELDS, required="an `egogrpo recover` output")

    joints = arrays["joints_world"]
    if joints.ndim != 4 or joints.shape[2:] != (NUM_BODY_JOINTS, 3) or joints.shape[0] < 1 or joints.shape[1] < 1:
        raise EgogrpoError(f"{path}: joints_world has shape {joints.shape}, expected (S, T, 22, 3) with S, T ≥ 1")
    S, T = joints.shape[:2]
    B = arrays["betas"].shape[-1] if arrays["betas"].ndim == 3 else -1
    expected = {
        "Ts_world_cpf": (T, 7),
        "Ts_world_root": (S, T, 7),
        "body_quats": (S, T, 21, 4),
        "contacts": (S, T, 21),
        "betas": (S, T, B),
        "timestamps_ns": (T,),
        "floor_z": (),
        "metadata": (),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise EgogrpoError(
                f"{path}: {name} has shape {arrays[name].shape}, expected {REQUIRED_FIELDS[name]} "
                f"with S={S}, T={T} (from joints_world)"
            )
    for name, array in arrays.items():
        if name == "metadata":
            continue
        if not np.issubdtype(array.dtype, np.number):
            raise EgogrpoError(f"{path}: {name} holds {array.dtype} values, expected numbers")
        if not np.isfinite(array).all():
            raise EgogrpoError(f"{path}: {name} holds non-finite values (NaN or infinity)")
    timestamps = arrays["timestamps_ns"].astype(np.int64)
    if T > 1 and (np.diff(timestamps) <= 0).any():
        raise EgogrpoError(f"{path}: timestamps_ns does not increase")

    metadata = _parse_metadata(path, arrays["metadata"])
    return RecoveredView(
        path=path,
        joints=joints.astype(np.float64),
        T_world_cpf=arrays["Ts_world_cpf"].astype(np.float64),
        floor_z=float(arrays["floor_z"]),
        timestamps_ns=timestamps,
        metadata=metadata,
        point_cloud=find_point_cloud(metadata),
    )


def _parse_metadata(path: Path, array: np.ndarray) -> dict:
    if array.dtype.kind not in "US":
        raise EgogrpoError(f"{path}: metadata holds {array.dtype} values, expected a JSON string")
    try:
        metadata = json.loads(str(array.item()))
    except (ValueError, UnicodeDecodeError) as e:
        raise EgogrpoError(f"{path}: metadata is not valid JSON ({e})") from None
    if not isinstance(metadata, dict):
        raise EgogrpoError(f"{path}: metadata is JSON {type(metadata).__name__}, expected an object")
    return metadata


def find_point_cloud(metadata: dict) -> Path | None:
    """The MPS point cloud beside the trajectory named in the metadata (`trajectory`), if it exists."""
    trajectory = metadata.get("trajectory")
    if not isinstance(trajectory, str) or not trajectory:
        return None
    folder = Path(trajectory).parent
    return next((folder / name for name in POINTS_FILES if (folder / name).is_file()), None)
