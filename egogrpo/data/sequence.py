"""`SequenceArrays`: one preprocessed sequence at 30 fps, exactly the datasets of an HDF5 group.

Layout (EgoAllo-compatible; float32 on disk; T frames; the world is z-up with the floor at z = 0):

    T_world_root       (T, 7)      wxyz_xyz; translation = pelvis position
    body_quats         (T, 21, 4)  local rotations of the 21 non-root body joints, wxyz
    hand_quats         (T, 30, 4)  optional: 15 left then 15 right hand joints
    contacts           (T, 21)     contact labels in {0, 1} of the 21 non-root joints
    betas              (1, B)      shape parameters (constant over the sequence)
    T_world_cpf        (T, 7)      central pupil frame
    T_cpf_tm1_cpf_t    (T, 7)      CPF motion from the previous frame: T_world_cpf[t−1]⁻¹ T_world_cpf[t]
    height_from_floor  (T, 1)      CPF height above the floor (its z)
    joints_wrt_cpf     (T, 21, 3)  the 21 non-root joints in the CPF frame

Frame 0 of the processed source is dropped so that every stored frame has a previous CPF pose.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

#: Dataset name → trailing shape (None = any size; "B" is the number of shape parameters).
SEQUENCE_FIELDS: dict[str, tuple[int | None, ...]] = {
    "T_world_root": (7,),
    "body_quats": (21, 4),
    "hand_quats": (30, 4),
    "contacts": (21,),
    "betas": (None,),
    "T_world_cpf": (7,),
    "T_cpf_tm1_cpf_t": (7,),
    "height_from_floor": (1,),
    "joints_wrt_cpf": (21, 3),
}
OPTIONAL_FIELDS = ("hand_quats",)


@dataclass(frozen=True)
class SequenceArrays:
    """The arrays of one processed sequence (see the module docstring for shapes and frames)."""

    T_world_root: np.ndarray
    body_quats: np.ndarray
    contacts: np.ndarray
    betas: np.ndarray
    T_world_cpf: np.ndarray
    T_cpf_tm1_cpf_t: np.ndarray
    height_from_floor: np.ndarray
    joints_wrt_cpf: np.ndarray
    hand_quats: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return self.T_world_root.shape[0]

    def problems(self) -> list[str]:
        """Shape, dtype and value problems (empty when the arrays are a valid sequence)."""
        found = []
        T = self.num_frames
        for name, trailing in SEQUENCE_FIELDS.items():
            value = getattr(self, name)
            if value is None:
                if name not in OPTIONAL_FIELDS:
                    found.append(f"{name} is missing")
                continue
            lead = (1,) if name == "betas" else (T,)
            expected = lead + trailing
            if value.ndim != len(expected) or any(
                e is not None and e != s for e, s in zip(expected, value.shape, strict=False)
            ):
                found.append(f"{name} has shape {tuple(value.shape)}, expected {expected}")
            elif not np.isfinite(value).all():
                found.append(f"{name} contains NaN or infinite values")
        for name in ("T_world_root", "T_world_cpf", "T_cpf_tm1_cpf_t"):
            q = getattr(self, name)[..., :4]
            if q.size and np.abs(np.linalg.norm(q, axis=-1) - 1.0).max() > 1e-3:
                found.append(f"{name} holds non-unit quaternions")
        return found

    def slice(self, start: int, stop: int) -> SequenceArrays:
        """Frames [start, stop) of every per-frame field (betas are per sequence and kept)."""
        return dataclasses.replace(
            self,
            **{
                f.name: getattr(self, f.name)[start:stop]
                for f in dataclasses.fields(self)
                if f.name != "betas" and getattr(self, f.name) is not None
            },
        )

    def astype(self, dtype: type) -> SequenceArrays:
        return dataclasses.replace(
            self,
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name).astype(dtype)
                for f in dataclasses.fields(self)
            },
        )
