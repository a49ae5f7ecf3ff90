"""Reader for RICH (Huang et al., CVPR 2022) SMPL-X fits, the evaluation set for unseen motion.

Layout (github.com/paulchhuang/rich_toolkit, README and smplx2images.py):

    <data>/bodies/<split>/<Capture>_<SubID>[_<SubID>]_<action>/<frame:05d>/<SubID>.pkl
    <data>/multicam2world/<Capture>[_<scene>]_multicam2world.json     {"R": 3×3, "t": (3,), "c": scale}

Each frame pickle is a dict of numpy arrays that the toolkit passes to `smplx.SMPLX(gender=…,
num_pca_comps=12, flat_hand_mean=False)` by name, so its keys are that model's parameters:

    betas (1, 10)   global_orient (1, 3)   body_pose (1, 63)   transl (1, 3)
    left_hand_pose, right_hand_pose (1, 12)   PCA coefficients of the hand pose, mean hand added
    expression (1, 10)   jaw_pose, leye_pose, reye_pose (1, 3)

Gender comes from the subject id (the toolkit's resource/gender.json, copied into
`data_manifests/rich.json` with the official train/val/test split lists).

Frames. The fits are in the calibrated multi-camera frame: camera 0 of the capture (OpenCV axes,
y down), in which "the ground plane is often not axis-aligned" (toolkit README). The toolkit maps
them to the scene scan's world frame with `x_world = c · x_cam @ R + t` (row vectors, multicam2world.py),
i.e. R_world_cam = Rᵀ. That world frame is the laser scan's, gravity-aligned with z up (as in the
RICH processing code of other projects; the toolkit itself does not state the axis), so the
reader applies this transform and no further axis change. The scale c is kept in `joints_world`
and the root position and recorded in attrs; the rotations are those of the camera frame composed
with R_world_cam (the published R is rounded to 3 decimals and is replaced by the nearest rotation).
All transforms of one capture map the same camera-0 frame, so any of them gives a z-up world.

Frame rate: 30 frames per second (the rate RICH is used at by other projects; not stated in the toolkit).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from egogrpo.body.model import BodyModel
from egogrpo.body.smplformat import SmplxExtras, load_smpl_npz, load_smplx_extras
from egogrpo.data.gender_map import BetaMap, fit_beta_map
from egogrpo.data.manifests import load_manifest, manifest_path
from egogrpo.data.motion import MotionClip
from egogrpo.data.restricted_pickle import load_restricted_pickle
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_from_axis_angle, quat_from_matrix, quat_multiply

RICH_FPS = 30.0
SPLITS = ("train", "val", "test")
GENDERS = ("male", "female")
#: key → number of values (None: any number ≥ 1), for the keys every frame must have
REQUIRED_KEYS: dict[str, int | None] = {
    "betas": None,
    "global_orient": 3,
    "body_pose": 63,
    "transl": 3,
    "left_hand_pose": None,
    "right_hand_pose": None,
}
#: keys that are checked when present; jaw and eye poses move only the jaw and eyes, so they are not used
OPTIONAL_KEYS: dict[str, int | None] = {"expression": None, "jaw_pose": 3, "leye_pose": 3, "reye_pose": 3}
MAX_ROTATION_ROUNDING = 0.01  # largest entry change when snapping the published R to a rotation


# --- body models ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RichModels:
    """SMPL-X models for RICH: the gendered models the fits were made with, and optionally the neutral
    SMPL-X model the clips are meant for (betas are then mapped to it, `egogrpo.data.gender_map`).

    `male_extras`/`female_extras` hold each gendered file's hand PCA and expression directions.
    """

    male: BodyModel | None = None
    female: BodyModel | None = None
    neutral: BodyModel | None = None
    male_extras: SmplxExtras | None = None
    female_extras: SmplxExtras | None = None
    male_to_neutral: BetaMap | None = field(init=False, default=None)
    female_to_neutral: BetaMap | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        for model in (self.male, self.female, self.neutral):
            if model is not None and model.kind != "smplx":
                raise EgogrpoError(f"{model.source}: RICH fits are SMPL-X; got an {model.kind.upper()} model")
        for gender in GENDERS:
            model, extras = getattr(self, gender), getattr(self, f"{gender}_extras")
            if model is not None and extras is None:
                raise EgogrpoError(f"{model.source}: the {gender} model needs its hand PCA (load it with from_files)")
            if model is not None and self.neutral is not None:
                object.__setattr__(self, f"{gender}_to_neutral", fit_beta_map(model, self.neutral))

    @classmethod
    def from_files(
        cls, male: str | Path | None = None, female: str | Path | None = None, neutral: str | Path | None = None
    ) -> RichModels:
        """Load SMPL-X `.npz` files (each optional; a sequence needs its subject's gendered model)."""
        load = lambda path: None if path is None else load_smpl_npz(path)
        extras = lambda path: None if path is None else load_smplx_extras(path)
        return cls(
            male=load(male),
            female=load(female),
            neutral=load(neutral),
            male_extras=extras(male),
            female_extras=extras(female),
        )

    def for_gender(self, gender: str, where: str) -> tuple[BodyModel, SmplxExtras, BetaMap | None]:
        """The gendered model, its extras and its map to neutral (None without a neutral model)."""
        model, extras = getattr(self, gender, None), getattr(self, f"{gender}_extras", None)
        if gender not in GENDERS or model is None or extras is None:
            raise EgogrpoError(f"{where}: the subject is {gender}; give the {gender} SMPL-X model file")
        return model, extras, getattr(self, f"{gender}_to_neutral")


# --- manifest -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RichSplitEntry:
    """One (sequence, subject) row of an official RICH split list."""

    split: str
    sequence: str
    capture: str
    scan: str
    subject: str
    gender: str


@dataclass(frozen=True)
class RichManifest:
    """`data_manifests/rich.json`, parsed: the official splits and the subject → gender table."""

    entries: tuple[RichSplitEntry, ...]
    subject_gender: dict[int, str]

    def split(self, name: str) -> list[RichSplitEntry]:
        if name not in SPLITS:
            raise EgogrpoError(f"unknown RICH split {name!r}; known: {', '.join(SPLITS)}")
        return [e for e in self.entries if e.split == name]

    def find(self, sequence: str, subject: str | None = None) -> RichSplitEntry | None:
        for e in self.entries:
            if e.sequence == sequence and (subject is None or e.subject == subject):
                return e
        return None


def parse_rich_manifest(data: dict, where: str = "rich manifest") -> RichManifest:
    """Check and parse the JSON object of the RICH manifest (`where` names it in errors)."""
    genders = data.get("subject_gender")
    if not isinstance(genders, dict) or not all(
        isinstance(k, str) and k.isdigit() and v in GENDERS for k, v in genders.items()
    ):
        raise EgogrpoError(f"{where}: 'subject_gender' must map subject ids to 'male' or 'female'")
    splits = data.get("splits")
    if not isinstance(splits, dict) or not set(splits) <= set(SPLITS):
        raise EgogrpoError(f"{where}: 'splits' must map {', '.join(SPLITS)} to lists of rows")
    entries = []
    for split, rows in splits.items():
        for i, row in enumerate(rows if isinstance(rows, list) else [None]):
            keys = ("sequence", "capture", "scan", "subject", "gender")
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in keys):
                raise EgogrpoError(f"{where}: splits.{split}[{i}] needs the strings {', '.join(keys)}")
            entries.append(RichSplitEntry(split=split, **{k: row[k] for k in keys}))
    return RichManifest(entries=tuple(entries), subject_gender={int(k): v for k, v in genders.items()})


@functools.cache
def rich_manifest() -> RichManifest:
    """The official RICH splits and subject genders from `data_manifests/rich.json` (read once)."""
    return parse_rich_manifest(load_manifest("rich"), where=str(manifest_path("rich")))


def rich_sequence_dir(root: str | Path, entry: RichSplitEntry) -> Path:
    """The folder of a manifest row under a RICH download: `<root>/bodies/<split>/<sequence>` (the toolkit's
    layout), or `<root>/<split>_body/<sequence>`, `<root>/<split>/<sequence>`, also below `<root>/data`."""
    root = Path(root)
    for base in (root, root / "data"):
        for folder in (base / "bodies" / entry.split, base / f"{entry.split}_body", base / entry.split):
            if (folder / entry.sequence).is_dir():
                return folder / entry.sequence
    raise EgogrpoError(
        f"{root}: RICH sequence {entry.split}/{entry.sequence} not found (expected bodies/{entry.split}/…)"
    )


# --- files ----------------------------------------------------------------------------------------


def _frame_arrays(path: Path) -> dict[str, np.ndarray]:
    """The parameters of one frame pickle as flat float64 arrays (checked: keys, sizes, finite)."""
    data = load_restricted_pickle(path)
    if not isinstance(data, dict):
        raise EgogrpoError(f"{path}: expected a dict of SMPL-X parameters, found {type(data).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise EgogrpoError(
            f"{path}: not a RICH SMPL-X fit: missing key(s) {', '.join(missing)} (expected {', '.join(REQUIRED_KEYS)})"
        )
    arrays = {}
    for key, size in (*REQUIRED_KEYS.items(), *OPTIONAL_KEYS.items()):
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
            raise EgogrpoError(f"{path}: {key} must be a numeric array, found {type(value).__name__}")
        if value.ndim > 2 or (value.ndim == 2 and value.shape[0] != 1) or value.size == 0:
            raise EgogrpoError(f"{path}: {key} has shape {value.shape}, expected (1, N) or (N,)")
        if size is not None and value.size != size:
            raise EgogrpoError(f"{path}: {key} has {value.size} values, expected {size}")
        value = value.reshape(-1).astype(np.float64)
        if not np.isfinite(value).all():
            raise EgogrpoError(f"{path}: {key} contains NaN or infinite values")
        arrays[key] = value
    return arrays


def _stack(paths: list[Path], frames: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
    """(T, N) of one key over all frames; the size must not change between frames."""
    size = frames[0][key].size
    for path, frame in zip(paths, frames, strict=True):
        if frame[key].size != size:
            raise EgogrpoError(f"{path}: {key} has {frame[key].size} values, the first frame has {size}")
    return np.stack([f[key] for f in frames])


def _multicam2world_path(seq_dir: Path, capture: str, scan: str | None) -> Path:
    """`multicam2world/<capture>[_<scene>]_multicam2world.json` in a folder above the sequence.

    Preference: the file of the sequence's scan (e.g. LectureHall_chair for scan_chair_scene_camcoord),
    then `<capture>_multicam2world.json`, then any `<capture>_*_multicam2world.json` (all map the
    same camera-0 frame to a z-up world).
    """
    names = []
    if scan and scan != "scan_camcoord":
        scene = scan.removeprefix("scan_").removesuffix("_camcoord").removesuffix("_scene")
        names.append(f"{capture}_{scene}_multicam2world.json")
    names.append(f"{capture}_multicam2world.json")
    for folder in (p / "multicam2world" for p in list(seq_dir.parents)[:4]):
        if not folder.is_dir():
            continue
        candidates = [folder / n for n in names] + sorted(folder.glob(f"{capture}_*_multicam2world.json"))
        for path in candidates:
            if path.is_file():
                return path
    raise EgogrpoError(
        f"{seq_dir}: no multicam2world/{capture}*_multicam2world.json found above the sequence folder "
        "(RICH's multicam2world.zip maps the camera frame of the fits to the z-up scan world)"
    )


def read_multicam2world(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(R_world_cam (3, 3), t (3,), scale c) of a RICH multicam2world JSON: x_world = c R_world_cam x_cam + t."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        R = np.asarray(data["R"], dtype=np.float64)
        t = np.asarray(data["t"], dtype=np.float64).reshape(-1)
        c = float(data["c"])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EgogrpoError(f"{path}: cannot read the RICH world transform ({type(e).__name__}: {e})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise EgogrpoError(f"{path}: expected an object with R (3×3), t (3) and c ({type(e).__name__}: {e})") from None
    if R.shape != (3, 3) or t.shape != (3,) or not (np.isfinite(R).all() and np.isfinite(t).all() and math.isfinite(c)):
        raise EgogrpoError(f"{path}: expected finite R (3×3), t (3) and c; got R {R.shape}, t {t.shape}")
    if not c > 0:
        raise EgogrpoError(f"{path}: the scale c is {c}, expected a positive number")
    u, _, vt = np.linalg.svd(R)
    rotation = u @ vt
    if np.linalg.det(rotation) < 0 or np.abs(rotation - R).max() > MAX_ROTATION_ROUNDING:
        raise EgogrpoError(f"{path}: R is not a rotation matrix")
    return rotation.T, t, c  # the toolkit multiplies row vectors on the right by R


def _frame_folders(seq_dir: Path) -> list[Path]:
    frames = sorted((int(p.name), p) for p in seq_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if not frames:
        raise EgogrpoError(f"{seq_dir}: no frame folders (expected <frame:05d>/<subject>.pkl)")
    for (a, _), (b, path) in itertools.pairwise(frames):
        if b != a + 1:
            raise EgogrpoError(f"{path}: frames are not consecutive: frame {a} is followed by {b}")
    return [p for _, p in frames]


def _choose_subject(seq_dir: Path, first_frame: Path, subject: str | None) -> tuple[str, bool]:
    """The subject to read and whether the sequence holds several people."""
    subjects = sorted(p.stem for p in first_frame.glob("*.pkl"))
    if not subjects:
        raise EgogrpoError(f"{first_frame}: no <subject>.pkl fit in the first frame folder")
    if subject is None:
        if len(subjects) > 1:
            raise EgogrpoError(f"{seq_dir}: {len(subjects)} people ({', '.join(subjects)}); choose one with subject=")
        return subjects[0], False
    if subject not in subjects:
        raise EgogrpoError(f"{seq_dir}: no subject {subject} (found {', '.join(subjects)})")
    return subject, len(subjects) > 1


# --- reader ---------------------------------------------------------------------------------------


def read_rich_sequence(
    seq_dir: str | Path,
    models: RichModels,
    fps: float = RICH_FPS,
    *,
    subject: str | None = None,
    gender: str | None = None,
    split: str | None = None,
    multicam2world: str | Path | None = None,
) -> MotionClip:
    """One person of a RICH sequence folder as a MotionClip in the z-up scan world (float64 arrays, metres).

    - name: "RICH/<split>/<sequence>", plus "/<subject>" in a two-person sequence (`subject` is then
      required); without a known split, "RICH/<sequence>".
    - T_world_root (T, 7): root rotation R_world_cam · exp(global_orient); translation = the true pelvis,
      c · R_world_cam (J₀(β, ψ) + transl) + t, with the gendered model (β betas, ψ expression).
    - body_quats (T, 21, 4) from body_pose; hand_quats (T, 30, 4) from the 12 PCA coefficients per hand
      and the model's mean hand (flat_hand_mean=False), left then right.
    - betas (B,): the per-frame betas averaged, mapped to the neutral model when one is given, else
      the gendered model's.
    - joints_world (T, 22, 3): forward kinematics of the gendered fit, per-frame betas and expression
      included, in the world frame (the exact ground truth); always set.
    - attrs: gender, subject, split, sequence, source_fps, world_scale (c), multicam2world (file name),
      gender_mapped (1 when betas are the neutral model's), spine_up (median z of the unit pelvis→neck
      vector: ≈ 1 for upright motion in a z-up world).

    `gender` defaults to the manifest's table for the subject, `split` to the folder above the
    sequence (`test` or `test_body`) or the manifest, `multicam2world` to the JSON found above it
    (preferring the manifest's scan of the sequence).
    """
    seq_dir = Path(seq_dir)
    if not seq_dir.is_dir():
        raise EgogrpoError(f"{seq_dir}: no such RICH sequence folder")
    if not (math.isfinite(fps) and fps > 0):
        raise EgogrpoError(f"{seq_dir}: frame rate {fps} must be a positive number")
    sequence = seq_dir.name
    capture = sequence.split("_")[0]
    frame_dirs = _frame_folders(seq_dir)
    subject, several = _choose_subject(seq_dir, frame_dirs[0], subject)
    try:
        manifest: RichManifest | None = rich_manifest()
    except EgogrpoError:
        if gender is None:
            raise
        manifest = None  # only the gender table is indispensable
    entry = manifest.find(sequence, subject) if manifest is not None else None

    if gender is None:
        assert manifest is not None
        if not subject.isdigit() or int(subject) not in manifest.subject_gender:
            raise EgogrpoError(f"{seq_dir}: unknown gender of subject {subject}; pass gender=")
        gender = manifest.subject_gender[int(subject)]
    model, extras, beta_map = models.for_gender(gender, where=str(seq_dir))
    if split is None:
        folder_split = seq_dir.parent.name.removesuffix("_body")
        split = folder_split if folder_split in SPLITS else (entry.split if entry else "")
    world_file = (
        Path(multicam2world)
        if multicam2world is not None
        else _multicam2world_path(seq_dir, capture, entry.scan if entry else None)
    )
    R_world_cam, t_world_cam, scale = read_multicam2world(world_file)

    paths = [d / f"{subject}.pkl" for d in frame_dirs]
    for path in paths:
        if not path.is_file():
            raise EgogrpoError(f"{path}: missing fit of subject {subject} in this frame")
    frames = [_frame_arrays(path) for path in paths]
    num_frames = len(frames)
    for key in ("expression", "jaw_pose", "leye_pose", "reye_pose"):
        present = [key in f for f in frames]
        if any(present) and not all(present):
            raise EgogrpoError(f"{paths[present.index(False)]}: missing key {key}, which other frames have")
    stack = lambda key: _stack(paths, frames, key)

    betas = stack("betas")
    if betas.shape[1] > model.num_betas:
        raise EgogrpoError(f"{paths[0]}: {betas.shape[1]} betas, the {gender} model has {model.num_betas}")
    expression = stack("expression") if "expression" in frames[0] else np.zeros((num_frames, 0))
    if expression.shape[1] > extras.num_expression:
        raise EgogrpoError(
            f"{paths[0]}: {expression.shape[1]} expression coefficients, the model has {extras.num_expression}"
        )
    hands = []
    for side, components, mean in (
        ("left", extras.hands_components_left, extras.hands_mean_left),
        ("right", extras.hands_components_right, extras.hands_mean_right),
    ):
        coeffs = stack(f"{side}_hand_pose")
        if coeffs.shape[1] > components.shape[0]:
            raise EgogrpoError(f"{paths[0]}: {side}_hand_pose has {coeffs.shape[1]} PCA coefficients, at most 45")
        hands.append((coeffs @ components[: coeffs.shape[1]] + mean).reshape(num_frames, 15, 3))

    f64 = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    joint_model = dataclasses.replace(model, mesh=None, rest_extent=None).to(device="cpu", dtype=torch.float64)
    shaped = joint_model.with_shape(f64(betas))
    expression_dirs = f64(extras.joints_expression_dirs[:, :, : expression.shape[1]])
    rest_joints = shaped.rest_joints + torch.einsum("jce,te->tjc", expression_dirs, f64(expression))
    shaped = dataclasses.replace(shaped, rest_joints=rest_joints)

    q_cam_root = quat_from_axis_angle(f64(stack("global_orient")))
    body_quats = quat_from_axis_angle(f64(stack("body_pose").reshape(num_frames, 21, 3)))
    T_cam_root = torch.cat((q_cam_root, rest_joints[:, 0] + f64(stack("transl"))), dim=-1)
    joints_cam = shaped.with_pose(T_cam_root, body_quats).joints.numpy()
    joints_world = scale * joints_cam @ R_world_cam.T + t_world_cam

    q_world_cam = quat_from_matrix(f64(R_world_cam))
    T_world_root = torch.cat(
        (quat_multiply(q_world_cam.expand_as(q_cam_root), q_cam_root), f64(joints_world[:, 0])), -1
    )
    hand_quats = quat_from_axis_angle(f64(np.concatenate(hands, axis=1)))

    mean_betas = np.zeros(model.num_betas)
    mean_betas[: betas.shape[1]] = betas.mean(axis=0)
    out_betas = mean_betas if beta_map is None else beta_map.apply(mean_betas[: beta_map.num_source_betas])
    spine = joints_world[:, 12] - joints_world[:, 0]  # pelvis → neck
    spine_up = float(np.median(spine[:, 2] / np.maximum(np.linalg.norm(spine, axis=1), 1e-9)))

    name = "/".join(["RICH", *([split] if split else []), sequence, *([subject] if several else [])])
    return MotionClip(
        name=name,
        source=str(seq_dir),
        dataset="rich",
        fps=float(fps),
        T_world_root=T_world_root.numpy(),
        body_quats=body_quats.numpy(),
        betas=out_betas,
        hand_quats=hand_quats.numpy(),
        joints_world=joints_world,
        attrs={
            "gender": gender,
            "subject": subject,
            "split": split,
            "sequence": sequence,
            "source_fps": float(fps),
            "world_scale": scale,
            "multicam2world": world_file.name,
            "gender_mapped": int(beta_map is not None),
            "spine_up": spine_up,
        },
    )
