"""`egogrpo recover`: an Aria recording's head trajectory → full-body motion.

1. Inputs (egogrpo.recover.aria): the MPS closed-loop trajectory resampled to 30 fps, T_device_cpf
   from the VRS calibration (or the nominal Aria CPF, with a warning), the floor from the semidense
   point cloud (or `floor_z`).
2. The conditioning of every frame after the first (which only supplies the first motion), with
   the CPF height measured from the floor.
3. Sampling the prior over the whole sequence (128-frame windows, 32-frame overlap, blended at
   every step), `samples` samples from explicit seeds.
4. Optional test-time refinement; head-anchored placement of the body on the CPF trajectory.
5. Outputs written atomically: `recovered.npz` (EgoAllo's field names plus egogrpo's metadata),
   optionally `joints.csv` and `motion.bvh`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from egogrpo import __version__
from egogrpo.body import BodyModel, PosedBody, load_body_model
from egogrpo.config import RecoverConfig, config_to_dict
from egogrpo.device import resolve_device
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import atomic_output, check_writable
from egogrpo.geometry import quat_from_matrix
from egogrpo.model.checkpoint import load_checkpoint_for_body
from egogrpo.model.combine import COMBINE_RULES, best_of_samples, mean_of_samples
from egogrpo.model.conditioning import cpf_conditioning_from_trajectory
from egogrpo.model.denoiser import sampling_denoiser
from egogrpo.model.perceptual import load_perceptual_for_body, sample_logits
from egogrpo.model.placement import place_on_cpf
from egogrpo.model.policy import DiffusionPolicy
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim
from egogrpo.tensor_dataclass import map_fields

OUTPUT_NPZ = "recovered.npz"


@dataclass
class RecoverResult:
    out_dir: Path
    files: list[Path]
    num_frames: int
    floor_z: float
    warnings: list[str]
    seconds: float


def output_files(config: RecoverConfig) -> list[Path]:
    """The files a run writes: recovered.npz, then joints.csv and motion.bvh when asked for."""
    out_dir = Path(config.out)
    names = [OUTPUT_NPZ, *(["joints.csv"] if config.write_csv else []), *(["motion.bvh"] if config.write_bvh else [])]
    return [out_dir / name for name in names]


def validate_config(config: RecoverConfig) -> None:
    """EgogrpoError naming the option for a value recovery cannot use, or outputs it cannot write (before any work)."""
    if type(config.samples) is not int or config.samples < 1:
        raise EgogrpoError(f"--samples must be a whole number ≥ 1, got {config.samples}")
    if type(config.seed) is not int or config.seed < 0:
        raise EgogrpoError(f"--seed must be a whole number ≥ 0, got {config.seed}")
    resolve_device(config.device)
    if config.combine not in COMBINE_RULES:
        raise EgogrpoError(f"--combine must be one of {', '.join(COMBINE_RULES)}, got {config.combine!r}")
    if config.combine != "none" and config.samples < 2:
        raise EgogrpoError(
            f"--combine {config.combine} turns --samples N ≥ 2 into one motion; got --samples {config.samples}"
        )
    if (config.combine == "best") != (config.verifier is not None):
        raise EgogrpoError("--combine best needs --verifier CKPT, and --verifier applies to --combine best only")
    if config.verifier is not None and not (Path(config.verifier) / "config.json").is_file():
        raise EgogrpoError(f"--verifier {config.verifier}: not a perceptual model checkpoint folder (no config.json)")
    if config.floor_z is not None and not math.isfinite(config.floor_z):
        raise EgogrpoError(f"--floor-z must be a finite height in metres, got {config.floor_z}")
    if config.sampler.projection not in ("svd", "polar"):
        raise EgogrpoError(f"--projection must be svd or polar, got {config.sampler.projection!r}")
    check_writable(config.out, "--out", folder=True)
    for path in output_files(config):
        if path.is_dir():
            raise EgogrpoError(f"{path} is a folder; choose another --out")
        if path.exists() and not config.overwrite:
            raise EgogrpoError(f"{path} exists; pass --overwrite to replace it")


def recover(config: RecoverConfig, progress: Callable[[str], None] | None = None) -> RecoverResult:
    """Run the recovery described in the module docstring; returns what was written."""
    from egogrpo.recover.aria import estimate_floor_z, find_recording, read_cpf_trajectory

    start = time.perf_counter()
    say = progress or (lambda text: None)
    out_dir = Path(config.out)
    validate_config(config)
    say("reading the recording")
    paths = find_recording(config.recording, vrs=config.vrs, mps=config.mps)
    trajectory = read_cpf_trajectory(paths)
    warnings = list(trajectory.warnings)
    if config.floor_z is not None:
        floor_z, floor_source = float(config.floor_z), "--floor-z"
    elif paths.points is not None:
        floor = estimate_floor_z(paths.points)
        floor_z, floor_source = float(floor.z), f"{paths.points} ({floor.num_inliers} inliers)"
    else:
        raise EgogrpoError(f"{config.recording}: no semidense point cloud to estimate the floor from; pass --floor-z")

    body = load_body_model(config.body)
    device = resolve_device(config.device)
    folder, model, model_config, meta = load_checkpoint_for_body(config.checkpoint, body.model_id, device=device)

    say(f"sampling on {device}")
    T_world_cpf_all = torch.from_numpy(trajectory.T_world_cpf).float()  # (T + 1, 7)
    cond = cpf_conditioning_from_trajectory(T_world_cpf_all[None], floor_z, config=model_config)  # (1, T, d)
    policy = DiffusionPolicy(
        NoiseSchedule.cosine(), config.sampler, project=body_rotation_projection(model_config.num_betas), device=device
    )
    x0 = policy.sample(
        sampling_denoiser(model, config.sampler),
        cond.to(device),
        packed_dim(model_config.num_betas, model_config.include_hands),
        seed=config.seed,
        num_samples=config.samples,
        on_step=lambda k, n: say(f"sampling on {device}: step {k}/{n}"),
    ).cpu()  # the rest (verifier, refinement, export) on the CPU
    state = MotionState.unpack(x0[0], model_config.num_betas, model_config.include_hands)  # (S, T, …)
    kept = config.samples
    if config.combine == "mean":
        state, kept = mean_of_samples(state), 1
    elif config.combine == "best":
        verifier = load_perceptual_for_body(config.verifier, body.model_id, "--verifier")[0]
        scores = sample_logits(verifier, body, map_fields(state, lambda t: t[None]), T_world_cpf_all[None, 1:])[0]
        say(f"verifier logits of the samples: {', '.join(f'{v:.3f}' for v in scores.tolist())}")
        state, kept = best_of_samples(state, scores), 1
    wrists = None
    T_world_cpf = T_world_cpf_all[1:].expand(kept, -1, 7)
    if config.refine:
        from egogrpo.model.refine import refine

        say("refining")
        wrists = _wrist_targets(paths, trajectory) if config.refinement.use_wrists else None
        state = refine(
            body, state, T_world_cpf, config.refinement, wrists=wrists,
            on_step=lambda i, n: say(f"refining: iteration {i}/{n}"),
        )  # fmt: skip
    posed = place_on_cpf(body, state, T_world_cpf)
    wrist_source = str(paths.wrist_and_palm) if config.refine and wrists is not None else None
    metadata = {
        "egogrpo_version": __version__,
        "checkpoint": str(folder),
        "checkpoint_weights_sha256": meta.get("weights_sha256"),
        "body_model_id": body.model_id,
        "sampler": config_to_dict(config.sampler),
        "samples": config.samples,
        "device": str(device),
        "combine": config.combine,
        "verifier": None if config.verifier is None else str(Path(config.verifier).resolve()),
        "seed": config.seed,
        "refined": config.refine,
        "refinement_wrists": wrist_source,
        "floor_z": floor_z,
        "floor_source": floor_source,
        "trajectory": str(paths.trajectory),
        "calibration": str(trajectory.calibration),
        "T_device_cpf": [float(v) for v in trajectory.T_device_cpf],
        "fps": 30.0,
        "warnings": warnings,
    }
    files = write_outputs(
        config, out_dir, trajectory.T_world_cpf[1:], trajectory.timestamps_ns[1:], state, posed, body, metadata
    )
    return RecoverResult(out_dir, files, int(T_world_cpf.shape[1]), floor_z, warnings, time.perf_counter() - start)


def _wrist_targets(paths: object, trajectory: object) -> dict | None:
    """MPS wrist/palm observations at the output frames (after the first) as refinement targets, or None."""
    from egogrpo.recover.aria import read_wrist_and_palm

    observed = read_wrist_and_palm(paths, trajectory.timestamps_ns, trajectory.T_world_device)  # type: ignore[attr-defined]
    if observed is None or not (observed.left.valid.any() or observed.right.valid.any()):
        return None
    hands = (observed.left, observed.right)
    as_tensor = lambda x: torch.from_numpy(np.stack(x, axis=1)[1:]).float()
    return {
        "wrist_positions": torch.nan_to_num(as_tensor([h.wrist for h in hands])),
        "confidence": torch.nan_to_num(as_tensor([np.where(h.valid, h.confidence, 0.0) for h in hands])),
        "palm_normals": as_tensor([h.palm_normal for h in hands]),
    }


def write_outputs(
    config: RecoverConfig,
    out_dir: Path,
    T_world_cpf: np.ndarray,
    timestamps_ns: np.ndarray,
    state: MotionState,
    posed: PosedBody,
    body: BodyModel,
    metadata: dict,
) -> list[Path]:
    """recovered.npz (EgoAllo's field names: Ts_world_cpf (T,7), Ts_world_root (S,T,7), body_quats (S,T,21,4),
    contacts (S,T,21), betas (S,T,B), frame_nums, timestamps_ns; plus joints_world (S,T,22,3), floor_z and a
    JSON `metadata`), and optionally joints.csv and motion.bvh (sample 0). Each file is written atomically."""
    from egogrpo.recover.export import write_bvh, write_joints_csv

    out_dir.mkdir(parents=True, exist_ok=True)
    T = state.body_rotmats.shape[1]
    joints = _numpy(posed.joints[..., :22, :])
    root = np.concatenate(
        [_numpy(quat_from_matrix(posed.R_world_joint[..., 0, :, :])), _numpy(posed.p_world_joint[..., 0, :])], -1
    )
    arrays = {
        "Ts_world_cpf": T_world_cpf.astype(np.float32),
        "Ts_world_root": root.astype(np.float32),
        "body_quats": _numpy(quat_from_matrix(state.body_rotmats)).astype(np.float32),
        "contacts": _numpy(state.contacts).astype(np.float32),
        "betas": _numpy(state.betas).astype(np.float32),
        "joints_world": joints.astype(np.float32),
        "frame_nums": np.arange(1, T + 1),
        "timestamps_ns": timestamps_ns.astype(np.int64),
        "floor_z": np.float32(metadata["floor_z"]),
        "metadata": np.array(json.dumps(metadata)),
    }
    if state.hand_rotmats is not None:
        hands = _numpy(quat_from_matrix(state.hand_rotmats)).astype(np.float32)
        arrays["left_hand_quats"], arrays["right_hand_quats"] = hands[..., :15, :], hands[..., 15:, :]
    files = output_files(config)
    with atomic_output(files[0]) as tmp:
        np.savez(tmp, **arrays)
    if config.write_csv:
        write_joints_csv(out_dir / "joints.csv", joints, timestamps_ns)
    if config.write_bvh:
        rest = _numpy(body.with_shape(state.betas[0].mean(dim=0)).rest_joints)
        write_bvh(
            out_dir / "motion.bvh",
            rest,
            _numpy(posed.R_world_joint[0, :, 0]),
            _numpy(posed.p_world_joint[0, :, 0]),
            _numpy(state.body_rotmats[0]),
            30.0,
        )
    return files


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
