"""Reader for AMASS motion files (the SMPL+H G release), as EgoAllo preprocesses them.

Layout: `<root>/<Dataset>/**/*_poses.npz`, each with

    poses                               (T, 156) axis-angle: root 0:3, 21 body joints 3:66, 30 hand joints 66:156
    trans                               (T, 3)   SMPL translation, metres, z-up world
    betas                               (≥16,)   shape of the gendered SMPL+H model (the first 16 are used)
    gender                              str/bytes "male", "female" or "neutral"
    mocap_framerate | mocap_frame_rate  scalar   frames per second

Splits, frame-rate fixes and skipped files come from `data_manifests/amass.json` (EgoAllo's).
Gendered betas are mapped to the neutral model with a least-squares fit between the user's model
files (`egogrpo.data.gender_map`); the ground-truth joints of a gendered clip stay those of the
gendered model and are returned as `MotionClip.joints_world`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from egogrpo.body.model import BodyModel
from egogrpo.body.smplformat import load_smpl_npz
from egogrpo.data.gender_map import BetaMap, fit_beta_map
from egogrpo.data.manifests import load_manifest, manifest_path
from egogrpo.data.motion import MotionClip
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import read_npz
from egogrpo.geometry import quat_from_axis_angle

AMASS_NUM_BETAS = 16
POSE_COLUMNS = 156  # 3 root + 63 body + 90 hands
SMPLX_POSE_COLUMNS = 165
GENDERS = ("male", "female", "neutral")
FRAME_RATE_KEYS = ("mocap_framerate", "mocap_frame_rate")
_READ_KEYS = ("poses", "trans", "betas", "gender", *FRAME_RATE_KEYS, "surface_model_type")
_REQUIRED_KEYS = ("poses", "trans", "betas", "gender")


# --- body models ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmassModels:
    """The SMPL-H models a clip is read with: neutral (required), male and female (optional).

    The maps male → neutral and female → neutral are fitted on construction.
    """

    neutral: BodyModel
    male: BodyModel | None = None
    female: BodyModel | None = None
    male_to_neutral: BetaMap | None = field(init=False, default=None)
    female_to_neutral: BetaMap | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        for model in (self.neutral, self.male, self.female):
            if model is not None and model.kind != "smplh":
                raise EgogrpoError(f"{model.source}: AMASS (SMPL+H G) needs an SMPL-H model, got {model.kind}")
        if self.male is not None:
            object.__setattr__(self, "male_to_neutral", fit_beta_map(self.male, self.neutral))
        if self.female is not None:
            object.__setattr__(self, "female_to_neutral", fit_beta_map(self.female, self.neutral))

    @classmethod
    def from_files(
        cls, neutral: str | Path, male: str | Path | None = None, female: str | Path | None = None
    ) -> AmassModels:
        """Load SMPL-H `.npz` model files (male/female optional) and fit the maps."""
        return cls(
            neutral=load_smpl_npz(neutral),
            male=None if male is None else load_smpl_npz(male),
            female=None if female is None else load_smpl_npz(female),
        )

    def for_gender(self, gender: str) -> tuple[BodyModel, BetaMap] | None:
        """The gendered model and its map to neutral, or None when that model was not given."""
        if gender == "male" and self.male is not None and self.male_to_neutral is not None:
            return self.male, self.male_to_neutral
        if gender == "female" and self.female is not None and self.female_to_neutral is not None:
            return self.female, self.female_to_neutral
        return None


# --- manifest -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathRule:
    """Matches a file when its top folder is `dataset` (if set) and its root-relative path contains any of
    `path_contains` (if set)."""

    dataset: str | None
    path_contains: tuple[str, ...]

    def matches(self, relative_path: str) -> bool:
        if self.dataset is not None and relative_path.split("/")[0] != self.dataset:
            return False
        return not self.path_contains or any(s in relative_path for s in self.path_contains)


@dataclass(frozen=True)
class AmassManifest:
    """`data_manifests/amass.json`, parsed. Paths are relative to the AMASS root, with '/'."""

    splits: dict[str, tuple[str, ...]]
    fps_fixes: tuple[tuple[PathRule, float], ...]
    skip: tuple[PathRule, ...]

    def split_of(self, dataset: str) -> str:
        """The split ("train", "val", "test") of an AMASS dataset folder, or "" if it is in none."""
        for split, datasets in self.splits.items():
            if dataset in datasets:
                return split
        return ""

    def datasets(self, splits: Iterable[str] | None = None) -> list[str]:
        """Dataset folders of the given splits (all splits by default), in manifest order."""
        chosen = list(self.splits) if splits is None else list(splits)
        unknown = [s for s in chosen if s not in self.splits]
        if unknown:
            raise EgogrpoError(f"unknown AMASS split(s) {', '.join(unknown)}; known: {', '.join(self.splits)}")
        return [d for s in chosen for d in self.splits[s]]

    def fixed_fps(self, relative_path: str) -> float | None:
        """The frame rate forced by the first matching fix, or None."""
        for rule, fps in self.fps_fixes:
            if rule.matches(relative_path):
                return fps
        return None

    def is_skipped(self, relative_path: str) -> bool:
        return any(rule.matches(relative_path) for rule in self.skip)


def _parse_rule(where: str, entry: object) -> PathRule:
    if not isinstance(entry, dict):
        raise EgogrpoError(f"{where}: expected an object")
    dataset = entry.get("dataset")
    contains = entry.get("path_contains", [])
    if dataset is not None and not isinstance(dataset, str):
        raise EgogrpoError(f"{where}: 'dataset' must be a string")
    if not isinstance(contains, list) or not all(isinstance(s, str) and s for s in contains):
        raise EgogrpoError(f"{where}: 'path_contains' must be a list of non-empty strings")
    if dataset is None and not contains:
        raise EgogrpoError(f"{where}: a rule needs 'dataset' and/or 'path_contains'")
    return PathRule(dataset=dataset, path_contains=tuple(contains))


def parse_amass_manifest(data: dict, where: str = "amass manifest") -> AmassManifest:
    """Check and parse the JSON object of an AMASS manifest (`where` names it in errors)."""
    splits = data.get("splits")
    if not isinstance(splits, dict) or not all(
        isinstance(v, list) and all(isinstance(d, str) for d in v) for v in splits.values()
    ):
        raise EgogrpoError(f"{where}: 'splits' must map split names to lists of dataset folders")
    fixes = []
    for i, entry in enumerate(data.get("fps_fixes", [])):
        rule = _parse_rule(f"{where}: fps_fixes[{i}]", entry)
        fps = entry.get("fps")
        if not isinstance(fps, int | float) or isinstance(fps, bool) or not fps > 0:
            raise EgogrpoError(f"{where}: fps_fixes[{i}]: 'fps' must be a positive number")
        fixes.append((rule, float(fps)))
    skip = tuple(_parse_rule(f"{where}: skip[{i}]", entry) for i, entry in enumerate(data.get("skip", [])))
    return AmassManifest(splits={k: tuple(v) for k, v in splits.items()}, fps_fixes=tuple(fixes), skip=skip)


@functools.cache
def amass_manifest() -> AmassManifest:
    """EgoAllo's AMASS splits, fixes and skip rules from `data_manifests/amass.json` (read once)."""
    return parse_amass_manifest(load_manifest("amass"), where=str(manifest_path("amass")))


# --- files ----------------------------------------------------------------------------------------


def _relative_name(path: Path, root: Path) -> str:
    """`path` relative to `root`, with '/' separators."""
    for p, r in ((path.absolute(), root.absolute()), (path.resolve(), root.resolve())):
        try:
            return p.relative_to(r).as_posix()
        except ValueError:
            pass
    raise EgogrpoError(f"{path}: not inside the AMASS root {root}")


def find_amass_files(root: str | Path, datasets: Iterable[str]) -> list[Path]:
    """`root/<Dataset>/**/*_poses.npz` for each dataset, sorted by relative path, minus the manifest's skips.

    Datasets without a folder under `root` contribute nothing; it is an error if no file is found at all.
    """
    root = Path(root)
    datasets = list(datasets)
    if not root.is_dir():
        raise EgogrpoError(f"{root}: AMASS root folder not found")
    manifest = amass_manifest()
    found: dict[str, Path] = {}
    for dataset in datasets:
        folder = root / dataset
        if not folder.is_dir():
            continue
        for path in folder.rglob("*_poses.npz"):
            relative = _relative_name(path, root)
            if path.is_file() and not manifest.is_skipped(relative):
                found[relative] = path
    if not found:
        hint = ""
        if any(next((root / d).rglob("*_stageii.npz"), None) for d in datasets if (root / d).is_dir()):
            hint = "; found *_stageii.npz files of the SMPL-X (N) release, but egogrpo needs the SMPL+H G release"
        raise EgogrpoError(
            f"{root}: no AMASS files <Dataset>/**/*_poses.npz for {', '.join(datasets) or 'no datasets'}{hint}"
        )
    return [found[k] for k in sorted(found)]


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays egogrpo reads from an AMASS npz (only those present), without unpickling anything."""
    if not path.is_file():
        raise EgogrpoError(f"{path}: no such AMASS file")
    return read_npz(path, _READ_KEYS)


def _text(array: np.ndarray) -> str | None:
    """A 0-d or single-element string/bytes array as str, else None."""
    if array.dtype.kind not in "US" or array.size != 1:
        return None
    value = array.reshape(-1)[0].item()
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _numeric(path: Path, name: str, array: np.ndarray, shape: tuple[int | None, ...]) -> np.ndarray:
    """`array` as finite float64 of the expected shape (None = any size)."""
    if array.dtype.kind not in "fiu":
        raise EgogrpoError(f"{path}: {name} has dtype {array.dtype}, expected numbers")
    ok = array.ndim == len(shape) and all(e is None or e == s for e, s in zip(shape, array.shape, strict=True))
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        raise EgogrpoError(f"{path}: {name} has shape {tuple(array.shape)}, expected {want}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise EgogrpoError(f"{path}: {name} contains NaN or infinite values")
    return array


def _refuse_smplx_release(path: Path, arrays: dict[str, np.ndarray]) -> None:
    reason = None
    if "surface_model_type" in arrays:
        model_type = _text(arrays["surface_model_type"])
        if model_type is None or model_type.strip().lower() != "smplh":
            reason = f"surface_model_type {model_type!r}"
    if reason is None and "poses" in arrays and arrays["poses"].ndim == 2:
        if arrays["poses"].shape[1] == SMPLX_POSE_COLUMNS:
            reason = f"poses with {SMPLX_POSE_COLUMNS} columns"
    if reason is not None:
        raise EgogrpoError(
            f"{path}: an AMASS SMPL-X release file ({reason}); egogrpo needs the SMPL+H G release "
            f"(*_poses.npz with poses of {POSE_COLUMNS} columns)"
        )


def _frame_rate(path: Path, relative: str, arrays: dict[str, np.ndarray], manifest: AmassManifest) -> float:
    fixed = manifest.fixed_fps(relative)
    if fixed is not None:
        return fixed
    keys = [k for k in FRAME_RATE_KEYS if k in arrays]
    if not keys:
        raise EgogrpoError(
            f"{path}: unknown frame rate: neither {' nor '.join(FRAME_RATE_KEYS)} is stored "
            "and data_manifests/amass.json has no fix for it"
        )
    array = arrays[keys[0]]
    if array.dtype.kind not in "fiu" or array.size != 1:
        raise EgogrpoError(f"{path}: {keys[0]} must be a single number, got dtype {array.dtype} shape {array.shape}")
    fps = float(array.reshape(-1)[0])
    if not (math.isfinite(fps) and fps > 0):
        raise EgogrpoError(f"{path}: {keys[0]} is {fps}, expected a positive frame rate")
    return fps


def _fit_length(betas: np.ndarray, n: int) -> np.ndarray:
    """The first n betas, zero-padded if there are fewer."""
    out = np.zeros(n)
    k = min(n, betas.shape[0])
    out[:k] = betas[:k]
    return out


def _joint_model(model: BodyModel) -> BodyModel:
    """The model without its mesh, on the CPU in float64 (cheap; enough for FK)."""
    return dataclasses.replace(model, mesh=None, rest_extent=None).to(device="cpu", dtype=torch.float64)


def read_amass_npz(
    path: str | Path, root: str | Path, models: AmassModels, manifest: AmassManifest | None = None
) -> MotionClip:
    """One AMASS `*_poses.npz` as a MotionClip for the neutral SMPL-H model (float64 arrays, z-up world).

    - `betas`: neutral betas (B_n,), mapped from the gendered betas when the gendered model is given.
    - `T_world_root`: root rotation from `poses[:, :3]`; translation = trans + J₀(β) with the model the
      motion was captured with (the gendered model when given), i.e. the true pelvis.
    - `joints_world`: (T, 22, 3) FK of the gendered model, for gendered clips with that model; else None.
    - attrs: gender, source_fps (the frame rate used), fps_fixed (1 if the manifest overrode the file's),
      amass_dataset (top folder), split ("" if none), gender_mapped (0 when gendered betas were used
      unmapped as neutral because the gendered model was not given, else 1).
    `manifest` defaults to `data_manifests/amass.json`.
    """
    path, root = Path(path), Path(root)
    manifest = amass_manifest() if manifest is None else manifest
    relative = _relative_name(path, root)
    arrays = _read_npz(path)
    _refuse_smplx_release(path, arrays)
    missing = [k for k in _REQUIRED_KEYS if k not in arrays]
    if missing:
        raise EgogrpoError(
            f"{path}: not an AMASS SMPL+H G file: missing key(s) {', '.join(missing)} "
            f"(expected {', '.join(_REQUIRED_KEYS)} and {' or '.join(FRAME_RATE_KEYS)})"
        )
    poses = _numeric(path, "poses", arrays["poses"], (None, POSE_COLUMNS))
    num_frames = poses.shape[0]
    if num_frames == 0:
        raise EgogrpoError(f"{path}: poses has no frames")
    trans = _numeric(path, "trans", arrays["trans"], (num_frames, 3))
    file_betas = _numeric(path, "betas", arrays["betas"], (None,))
    gender = _text(arrays["gender"])
    if gender is None:
        raise EgogrpoError(f"{path}: gender must be a single string, got dtype {arrays['gender'].dtype}")
    gender = gender.strip().lower()
    if gender not in GENDERS:
        raise EgogrpoError(f"{path}: gender is {gender!r}, expected one of {', '.join(GENDERS)}")
    fps = _frame_rate(path, relative, arrays, manifest)
    betas16 = _fit_length(file_betas, AMASS_NUM_BETAS)

    neutral = models.neutral
    gendered = models.for_gender(gender) if gender != "neutral" else None
    if gendered is not None:
        capture_model, beta_map = gendered
        capture_betas = _fit_length(betas16, capture_model.num_betas)
        betas = beta_map.apply(_fit_length(betas16, beta_map.num_source_betas))
    else:  # neutral clip, or gendered betas used as neutral (no gendered model given)
        capture_model = neutral
        capture_betas = betas = _fit_length(betas16, neutral.num_betas)

    f64 = lambda x: torch.from_numpy(np.ascontiguousarray(x))
    q_root = quat_from_axis_angle(f64(poses[:, :3]))
    body_quats = quat_from_axis_angle(f64(poses[:, 3:66].reshape(num_frames, 21, 3)))
    hand_quats = quat_from_axis_angle(f64(poses[:, 66:].reshape(num_frames, 30, 3)))
    shaped = _joint_model(capture_model).with_shape(f64(capture_betas))
    T_world_root = torch.cat((q_root, f64(trans) + shaped.rest_joints[0]), dim=-1)
    joints_world = None
    if gendered is not None:
        joints_world = shaped.with_pose(T_world_root, body_quats).joints.numpy()

    dataset = relative.split("/")[0] if "/" in relative else ""
    return MotionClip(
        name=relative.removesuffix(".npz"),
        source=str(path),
        dataset="amass",
        fps=fps,
        T_world_root=T_world_root.numpy(),
        body_quats=body_quats.numpy(),
        betas=betas,
        hand_quats=hand_quats.numpy(),
        joints_world=joints_world,
        attrs={
            "gender": gender,
            "source_fps": fps,
            "fps_fixed": int(manifest.fixed_fps(relative) is not None),
            "amass_dataset": dataset,
            "split": manifest.split_of(dataset),
            "gender_mapped": int(gender == "neutral" or gendered is not None),
        },
    )
