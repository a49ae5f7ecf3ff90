"""Inputs of `egogrpo recover` from a Project Aria recording and its MPS (Machine Perception Services) outputs.

Layout. MPS writes `slam/` (older: `trajectory/`) holding `closed_loop_trajectory.csv` and the
semidense point cloud `semidense_points.csv.gz` (older name: `global_points.csv.gz`), and
`hand_tracking/` holding `wrist_and_palm_poses.csv`. The VRS recording holds the device's factory
calibration, from which the CPF (central pupil frame) is taken.

Frames and units. The MPS world is gravity-aligned with z up, in metres. Poses are wxyz_xyz (unit
quaternion w, x, y, z, then translation). T_world_cpf = T_world_device · T_device_cpf; the CPF axes
(x left, y up, z forward) are the SMPL head's, so these poses feed the model directly. Times are the
device's tracking clock in ns (MPS `tracking_timestamp_us` × 1000).

Sampling. The ~1 kHz closed-loop trajectory is resampled by timestamp to a fixed rate (30 fps by
default) over its whole span: rotations by slerp, positions linearly, between the two neighbouring
MPS poses. A trajectory with a gap above MAX_GAP_S is refused rather than bridged.

Console. projectaria-tools' readers print to the process's stdout and stderr ("Loaded #…", coloured
INFO lines, parse failures). Every call into them here runs inside `console_output_captured`, and
what they print is used only to explain errors.
"""

from __future__ import annotations

import gzip
import math
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from egogrpo.data.projectaria_console import console_output_captured, first_problem, problem_lines
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_slerp, quat_to_matrix, se3_compose, se3_from_matrix

TRAJECTORY_FILE = "closed_loop_trajectory.csv"
TRAJECTORY_FOLDERS = ("slam", "trajectory")  # MPS's folder for it (current, older name)
POINTS_FILES = ("semidense_points.csv.gz", "global_points.csv.gz")  # current, older name
WRIST_AND_PALM_FILE = "wrist_and_palm_poses.csv"

MAX_GAP_S = 0.1  # largest allowed time step between MPS poses (they come at ~1 ms)
MIN_FRAMES = 10  # fewest output frames a trajectory must span

#: T_device_cpf (wxyz_xyz; metres) used when there is no VRS: the factory calibration of the Aria
#: Gen 1 (DVT-S, serial 1WM093701M1276) that recorded projectaria_tools' sample
#: `data/gen1/aria_everyday_activities_test_data/recording.vrs`, read with projectaria-tools 2.3.0
#: (`get_device_calibration().get_transform_device_cpf()`). Its rotation is the design one (angles
#: of 37.5° and 3.0° in the matrix). Other devices differ slightly, hence the warning when it is used.
NOMINAL_T_DEVICE_CPF = np.array(
    [
        0.6634014621838322,
        0.2096865073040206,
        -0.2447417023035325,
        0.6753010941650869,
        0.0049529584653817404,
        -0.04914836817050788,
        -0.04918546136427321,
    ]
)

# Floor fit (EgoAllo's recipe, see estimate_floor_z)
POINT_CONFIDENCE = (1e-4, 0.005)  # confident points: inverse-depth std (1/m) and depth std (m) below these
POINT_CONFIDENCE_RELAXED = (1e-3, 0.05)  # EgoAllo's "less filtered" set, used only when too few points pass
FLOOR_BAND_M = 0.01  # RANSAC inlier band (|z − candidate| < band)
FLOOR_SUPPORT_M = 0.075  # a candidate needs more than FLOOR_MIN_SUPPORT − 1 points this close ...
FLOOR_MIN_SUPPORT = 4  # ... among all confident points, or it is taken for noise
FLOOR_TRIALS = 10_000
FLOOR_MAX_ROUNDS = 100  # candidates rejected as noise before giving up
FLOOR_MIN_POINTS = 10  # fewest confident points to fit a floor to

# Wrist and palm matching (as EgoAllo)
WRIST_PALM_MAX_DT_NS = 1e9 / 30.0  # nearest MPS observation must be closer in time than this
WRIST_PALM_MIN_CONFIDENCE = 0.7  # and more confident than this


@dataclass(frozen=True)
class RecordingPaths:
    """The files of one Aria recording that `egogrpo recover` reads; None where absent (all optional but the trajectory)."""

    recording_dir: Path
    trajectory: Path  # MPS closed_loop_trajectory.csv
    points: Path | None  # MPS semidense_points.csv.gz or global_points.csv.gz, beside the trajectory
    vrs: Path | None  # the recording, for the device calibration (CPF)
    wrist_and_palm: Path | None  # MPS hand_tracking/wrist_and_palm_poses.csv


@dataclass(frozen=True)
class CpfTrajectory:
    """Device and CPF poses resampled at a fixed rate; MPS world (z up), metres, wxyz_xyz, float64.

    timestamps_ns:   (T,) int64 device tracking time, t0 + round(k · 1e9 / fps)
    T_world_device:  (T, 7) device poses interpolated at timestamps_ns
    T_world_cpf:     (T, 7) T_world_device · T_device_cpf
    T_device_cpf:    (7,) the CPF in the device frame
    calibration:     where T_device_cpf came from: the VRS path, "nominal" or "given"
    warnings:        one-line notes for the user (e.g. the nominal calibration was used)
    """

    timestamps_ns: np.ndarray
    T_world_device: np.ndarray
    T_world_cpf: np.ndarray
    T_device_cpf: np.ndarray
    fps: float
    paths: RecordingPaths
    calibration: str
    warnings: list[str] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return self.timestamps_ns.shape[0]


@dataclass(frozen=True)
class FloorEstimate:
    """Floor height fitted to the semidense point cloud.

    z:            floor height in the MPS world (z up), metres
    num_inliers:  points within FLOOR_BAND_M of the chosen candidate (their median is z)
    num_points:   confident points the fit used
    num_read:     points in the file
    thresholds:   (inverse-depth std 1/m, depth std m) that made a point confident: POINT_CONFIDENCE,
                  or POINT_CONFIDENCE_RELAXED when fewer than FLOOR_MIN_POINTS passed it
    """

    z: float
    num_inliers: int
    num_points: int
    num_read: int
    thresholds: tuple[float, float]
    source: Path


@dataclass(frozen=True)
class HandObservations:
    """One hand's MPS wrist and palm observations at the output frames; world frame (z up), metres.

    valid:         (T,) bool: the nearest MPS record is within 1/30 s and this hand's confidence > 0.7
    confidence:    (T,) that confidence (NaN where not valid)
    wrist:         (T, 3) wrist position (NaN where not valid)
    palm:          (T, 3) palm position (NaN where not valid)
    normal_valid:  (T,) bool: valid, and the file has normals (wrist_and_palm_poses v2 columns nx_…)
    wrist_normal:  (T, 3) unit wrist normal, rotated into the world (NaN where not normal_valid)
    palm_normal:   (T, 3) unit palm normal, rotated into the world (NaN where not normal_valid)
    """

    valid: np.ndarray
    confidence: np.ndarray
    wrist: np.ndarray
    palm: np.ndarray
    normal_valid: np.ndarray
    wrist_normal: np.ndarray
    palm_normal: np.ndarray


@dataclass(frozen=True)
class WristPalm:
    """MPS wrist and palm observations of both hands at the output frames."""

    left: HandObservations
    right: HandObservations
    source: Path


def _projectaria() -> tuple[ModuleType, ModuleType]:
    """projectaria_tools' `mps` and `data_provider` modules (an EgogrpoError if not installed)."""
    try:
        from projectaria_tools.core import data_provider, mps
    except ImportError as e:
        raise EgogrpoError(
            f"reading Aria recordings needs projectaria-tools (pip install projectaria-tools): {e}"
        ) from None
    return mps, data_provider


def _count_data_rows(path: Path) -> int:
    """Non-blank lines of a CSV file (gzip-compressed if named *.gz) after its header."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
            return max(sum(1 for line in f if line.strip()) - 1, 0)
    except (OSError, EOFError) as e:
        raise EgogrpoError(f"{path}: cannot read the file ({e})") from None


def _ns(timestamp: timedelta) -> int:
    """A projectaria timedelta (microsecond resolution) in integer nanoseconds."""
    return (timestamp // timedelta(microseconds=1)) * 1000


# ---------------------------------------------------------------------------------------------------
# Finding the files


def find_recording(
    recording_dir: str | Path, vrs: str | Path | None = None, mps: str | Path | None = None
) -> RecordingPaths:
    """Locate an Aria recording's MPS trajectory, point cloud, VRS and wrist/palm poses.

    The trajectory (`closed_loop_trajectory.csv`, normally in `slam/` or `trajectory/`) is searched
    at any depth below `mps` if given, else below `recording_dir`; the point cloud is taken from the
    trajectory's folder. The VRS is `vrs` if given, else the single `*.vrs` directly in
    `recording_dir` (none is fine; several is an error). `wrist_and_palm_poses.csv` is searched
    below the MPS folder, or in `hand_tracking/` beside the trajectory's folder.
    Raises EgogrpoError, one line naming the folder or file, for a missing folder or trajectory and
    for ambiguous choices.
    """
    recording_dir = Path(recording_dir)
    if not recording_dir.is_dir():
        raise EgogrpoError(f"{recording_dir}: no such recording folder")
    mps_root = recording_dir if mps is None else Path(mps)
    if not mps_root.is_dir():
        raise EgogrpoError(f"{mps_root}: no such MPS folder")

    trajectory = _find_trajectory(mps_root)
    points = next((trajectory.parent / name for name in POINTS_FILES if (trajectory.parent / name).is_file()), None)
    return RecordingPaths(
        recording_dir=recording_dir,
        trajectory=trajectory,
        points=points,
        vrs=_find_vrs(recording_dir, vrs),
        wrist_and_palm=_find_wrist_and_palm(mps_root, trajectory),
    )


def _find_trajectory(root: Path) -> Path:
    found = sorted(p for p in root.rglob(TRAJECTORY_FILE) if p.is_file())
    if len(found) > 1:  # prefer MPS's own folders over stray copies
        found = [p for p in found if p.parent.name in TRAJECTORY_FOLDERS] or found
    if not found:
        raise EgogrpoError(
            f"{root}: no MPS trajectory found (looked for {TRAJECTORY_FILE}, normally in slam/ or trajectory/, "
            "at any depth below it); pass the MPS output folder with --mps"
        )
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(root)) for p in found)
        raise EgogrpoError(f"{root}: several MPS trajectories ({names}); pass the one to use with --mps")
    return found[0]


def _find_vrs(recording_dir: Path, vrs: str | Path | None) -> Path | None:
    if vrs is not None:
        vrs = Path(vrs)
        if not vrs.is_file():
            raise EgogrpoError(f"{vrs}: no such VRS file")
        return vrs
    found = sorted(p for p in recording_dir.glob("*.vrs") if p.is_file())
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise EgogrpoError(f"{recording_dir}: several VRS files ({names}); pass the recording with --vrs")
    return found[0] if found else None


def _find_wrist_and_palm(mps_root: Path, trajectory: Path) -> Path | None:
    found = sorted(p for p in mps_root.rglob(WRIST_AND_PALM_FILE) if p.is_file())
    beside = trajectory.parent.parent / "hand_tracking" / WRIST_AND_PALM_FILE  # --mps may name slam/ itself
    if not found and beside.is_file():
        found = [beside]
    if len(found) > 1:
        names = ", ".join(str(p.relative_to(mps_root)) for p in found)
        raise EgogrpoError(f"{mps_root}: several MPS wrist and palm files ({names}); pass the MPS folder with --mps")
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------------
# Trajectory and CPF


def read_cpf_trajectory(
    paths: RecordingPaths, fps: float = 30.0, T_device_cpf: np.ndarray | None = None
) -> CpfTrajectory:
    """The recording's device and CPF poses at `fps` over the span of its MPS closed-loop trajectory.

    T_device_cpf (7,) wxyz_xyz, if given, overrides the calibration; otherwise it is read from the
    VRS, or without a VRS NOMINAL_T_DEVICE_CPF is used and a warning is returned in the result.
    Raises EgogrpoError, one line naming the file, for an unreadable trajectory (including non-finite
    values), several graph_uids (separate world frames), non-increasing times, a gap above MAX_GAP_S,
    fewer than MIN_FRAMES output frames, or a VRS that cannot be opened or has no calibration.
    """
    if not (math.isfinite(fps) and fps > 0):
        raise EgogrpoError(f"the frame rate must be a positive number of frames per second, got {fps}")
    notes: list[str] = []
    times_ns, T_world_device_mps = _read_device_poses(paths.trajectory)
    out_ns = _output_times(times_ns, fps, paths.trajectory)

    if T_device_cpf is not None:
        T_device_cpf = np.asarray(T_device_cpf, dtype=np.float64)
        if T_device_cpf.shape != (7,) or not np.isfinite(T_device_cpf).all():
            raise ValueError(f"T_device_cpf must be a finite (7,) wxyz_xyz transform, got shape {T_device_cpf.shape}")
        if abs(np.linalg.norm(T_device_cpf[:4]) - 1.0) > 1e-6:
            raise ValueError("T_device_cpf's quaternion must have unit norm")
        calibration = "given"
    elif paths.vrs is not None:
        facts = read_vrs(paths.vrs)
        T_device_cpf, span = facts.T_device_cpf, facts.device_time_span
        calibration = str(paths.vrs)
        if span is not None and (span[1] < times_ns[0] or span[0] > times_ns[-1]):
            notes.append(
                f"{paths.vrs}: its device time {span[0] / 1e9:.1f}–{span[1] / 1e9:.1f} s does not overlap the "
                f"trajectory's {times_ns[0] / 1e9:.1f}–{times_ns[-1] / 1e9:.1f} s: it is probably another recording, "
                "whose calibration may not be this device's (check --vrs)"
            )
    else:
        T_device_cpf = NOMINAL_T_DEVICE_CPF.copy()
        calibration = "nominal"
        notes.append(
            f"{paths.recording_dir}: no VRS recording, so the CPF uses a nominal Aria Gen 1 calibration "
            "instead of this device's (pass the recording with --vrs)"
        )

    T_world_device = _interpolate_poses(times_ns, T_world_device_mps, out_ns)
    T_world_cpf = se3_compose(torch.from_numpy(T_world_device), torch.from_numpy(T_device_cpf)[None]).numpy()
    return CpfTrajectory(
        timestamps_ns=out_ns,
        T_world_device=T_world_device,
        T_world_cpf=T_world_cpf,
        T_device_cpf=T_device_cpf,
        fps=float(fps),
        paths=paths,
        calibration=calibration,
        warnings=notes,
    )


@dataclass(frozen=True)
class VrsFacts:
    """What recovery reads from a VRS recording, opened once.

    T_device_cpf:      (7,) wxyz_xyz factory transform of the central pupil frame
    device_time_span:  (first, last) device-clock time in ns over every stream (None if it has none); the MPS
                       trajectory's `tracking_timestamp_us` runs on the same clock, so the two overlap for one recording
    """

    T_device_cpf: np.ndarray
    device_time_span: tuple[int, int] | None


def read_vrs(vrs: Path) -> VrsFacts:
    """The device calibration and device-time span of a VRS recording (EgogrpoError if unreadable or uncalibrated)."""
    _, data_provider = _projectaria()
    from projectaria_tools.core.sensor_data import TimeDomain

    with console_output_captured() as log:
        provider = data_provider.create_vrs_data_provider(str(vrs))
        calibration = provider.get_device_calibration() if provider is not None else None
        T = calibration.get_transform_device_cpf().to_matrix() if calibration is not None else None
        streams = list(provider.get_all_streams()) if provider is not None else []
        spans = [
            (
                provider.get_first_time_ns(s, TimeDomain.DEVICE_TIME),
                provider.get_last_time_ns(s, TimeDomain.DEVICE_TIME),
            )
            for s in streams
        ]
    if provider is None:
        problem = first_problem(log)
        raise EgogrpoError(f"{vrs}: not a readable Aria VRS recording" + (f" ({problem})" if problem else ""))
    if T is None:
        raise EgogrpoError(f"{vrs}: the recording holds no device calibration, so no CPF")
    valid = [(a, b) for a, b in spans if a >= 0 and b >= a]
    span = (min(a for a, _ in valid), max(b for _, b in valid)) if valid else None
    return VrsFacts(se3_from_matrix(torch.from_numpy(np.asarray(T, dtype=np.float64))).numpy(), span)


def read_T_device_cpf(vrs: Path) -> np.ndarray:
    """(7,) wxyz_xyz factory T_device_cpf of a VRS recording (EgogrpoError if unreadable or uncalibrated)."""
    return read_vrs(vrs).T_device_cpf


def _read_device_poses(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N,) int64 ns and (N, 7) T_world_device of an MPS closed-loop trajectory, checked."""
    mps, _ = _projectaria()
    if not path.is_file():
        raise EgogrpoError(f"{path}: no such trajectory file")
    with console_output_captured() as log:
        poses = mps.read_closed_loop_trajectory(str(path))
    # On a bad value the reader logs the failure and returns the rows before it, so compare counts.
    rows = _count_data_rows(path)
    if not poses or len(poses) != rows:
        problem = first_problem(log)
        raise EgogrpoError(
            f"{path}: not a readable MPS closed-loop trajectory, projectaria-tools read {len(poses)} of {rows} rows"
            + (f" ({problem})" if problem else "")
        )
    graph_uids = sorted({pose.graph_uid for pose in poses})
    if len(graph_uids) > 1:
        raise EgogrpoError(
            f"{path}: {len(graph_uids)} graph_uids ({', '.join(graph_uids[:3])}): the poses lie in separate "
            "world frames; egogrpo needs a trajectory in one"
        )
    times_ns = np.array([_ns(pose.tracking_timestamp) for pose in poses], dtype=np.int64)
    matrices = np.stack([pose.transform_world_device.to_matrix() for pose in poses]).astype(np.float64)
    if not np.isfinite(matrices).all():
        row = int(np.argmin(np.isfinite(matrices).all(axis=(1, 2))))
        raise EgogrpoError(f"{path}: non-finite pose in data row {row + 1}")
    steps = np.diff(times_ns)
    if (steps <= 0).any():
        row = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise EgogrpoError(f"{path}: tracking_timestamp_us does not increase at data row {row + 1}")
    if steps.size and steps.max() > MAX_GAP_S * 1e9:
        row = int(np.argmax(steps))
        raise EgogrpoError(
            f"{path}: a gap of {steps[row] / 1e9:.3f} s without poses after {times_ns[row] / 1e9:.3f} s "
            f"(device time); egogrpo needs poses at least every {MAX_GAP_S} s"
        )
    return times_ns, se3_from_matrix(torch.from_numpy(matrices)).numpy()


def _output_times(times_ns: np.ndarray, fps: float, path: Path) -> np.ndarray:
    """(T,) int64 t0 + round(k · 1e9 / fps) for every k that stays within the trajectory's span."""
    span_ns = int(times_ns[-1] - times_ns[0])
    num_frames = math.floor(span_ns * fps / 1e9) + 1
    if num_frames < MIN_FRAMES:
        raise EgogrpoError(
            f"{path}: the trajectory spans {span_ns / 1e9:.3f} s, {num_frames} frame(s) at {fps:g} fps; "
            f"at least {MIN_FRAMES} are needed"
        )
    return times_ns[0] + np.round(np.arange(num_frames) * (1e9 / fps)).astype(np.int64)


def _interpolate_poses(times_ns: np.ndarray, poses: np.ndarray, query_ns: np.ndarray) -> np.ndarray:
    """(Q, 7) poses at query_ns (within the span of times_ns): slerp rotations, lerp positions."""
    i = np.clip(np.searchsorted(times_ns, query_ns, side="right") - 1, 0, len(times_ns) - 2)
    alpha = np.clip((query_ns - times_ns[i]) / (times_ns[i + 1] - times_ns[i]), 0.0, 1.0)
    p0, p1 = torch.from_numpy(poses[i]), torch.from_numpy(poses[i + 1])
    a = torch.from_numpy(alpha)
    quats = quat_slerp(p0[:, :4], p1[:, :4], a)
    positions = p0[:, 4:] + a[:, None] * (p1[:, 4:] - p0[:, 4:])
    return torch.cat((quats, positions), dim=-1).numpy()


# ---------------------------------------------------------------------------------------------------
# Floor


def estimate_floor_z(points_path: str | Path, seed: int = 0) -> FloorEstimate:
    """Floor height (MPS world z, metres) from an MPS semidense point cloud, by EgoAllo's robust recipe.

    1. Keep confident points: inverse-depth std and depth std below POINT_CONFIDENCE (if fewer than
       FLOOR_MIN_POINTS pass, below POINT_CONFIDENCE_RELAXED; EgoAllo has no such fallback).
    2. Drop the lowest and highest 1/10 000 of their heights, then keep the lowest 10% of the height
       range (15% with ≥ 10 000 confident points).
    3. 1-D RANSAC: FLOOR_TRIALS candidate heights drawn from those (seeded), each scored by the points
       within FLOOR_BAND_M; the first best wins.
    4. If at most FLOOR_MIN_SUPPORT − 1 confident points lie within FLOOR_SUPPORT_M of it, it is noise:
       remove the points within FLOOR_BAND_M of it and start again from 2.
    5. The floor is the median of the inliers of the winner.
    Raises EgogrpoError naming the file if it cannot be read or no floor is found.
    """
    points_path = Path(points_path)
    mps, _ = _projectaria()
    if not points_path.is_file():
        raise EgogrpoError(f"{points_path}: no such point cloud file")
    with console_output_captured() as log:
        points = mps.read_global_point_cloud(str(points_path))
    rows = _count_data_rows(points_path)  # as for the trajectory, a bad value ends the reading early
    if not points or len(points) != rows:
        problem = first_problem(log)
        raise EgogrpoError(
            f"{points_path}: not a readable MPS point cloud, projectaria-tools read {len(points)} of {rows} rows"
            + (f" ({problem})" if problem else "")
        )
    heights = np.array([p.position_world[2] for p in points], dtype=np.float64)
    inv_dist_std = np.array([p.inverse_distance_std for p in points], dtype=np.float64)
    dist_std = np.array([p.distance_std for p in points], dtype=np.float64)
    for thresholds in (POINT_CONFIDENCE, POINT_CONFIDENCE_RELAXED):
        confident = (inv_dist_std < thresholds[0]) & (dist_std < thresholds[1]) & np.isfinite(heights)
        zs = np.sort(heights[confident])
        if zs.size >= FLOOR_MIN_POINTS:
            break
    else:
        raise EgogrpoError(
            f"{points_path}: only {zs.size} of {heights.size} points pass even the relaxed confidence thresholds "
            f"{POINT_CONFIDENCE_RELAXED}; {FLOOR_MIN_POINTS} are needed to find the floor"
        )
    floor = _ransac_floor(zs, np.random.default_rng(seed))
    if floor is None:
        raise EgogrpoError(f"{points_path}: no floor found among {zs.size} confident points")
    z, num_inliers = floor
    return FloorEstimate(
        z=z,
        num_inliers=num_inliers,
        num_points=int(zs.size),
        num_read=len(points),
        thresholds=thresholds,
        source=points_path,
    )


def _ransac_floor(zs: np.ndarray, rng: np.random.Generator) -> tuple[float, int] | None:
    """(floor z, inlier count) from sorted confident heights zs, steps 2–5 of estimate_floor_z."""
    fraction = 0.15 if zs.size >= 10_000 else 0.1
    remaining = zs
    for _ in range(FLOOR_MAX_ROUNDS):
        trim = remaining.size // 10_000
        low_band = remaining[trim : remaining.size - trim]
        if low_band.size == 0:
            return None
        low_band = low_band[low_band <= low_band[0] + (low_band[-1] - low_band[0]) * fraction]
        candidates = rng.choice(low_band, size=FLOOR_TRIALS)
        # points strictly within the band of each candidate, counted on the sorted heights
        scores = np.searchsorted(low_band, candidates + FLOOR_BAND_M, side="left") - np.searchsorted(
            low_band, candidates - FLOOR_BAND_M, side="right"
        )
        best = candidates[int(np.argmax(scores))]
        support = np.count_nonzero(np.abs(remaining - best) <= FLOOR_SUPPORT_M)
        if support >= FLOOR_MIN_SUPPORT:
            inliers = low_band[np.abs(low_band - best) < FLOOR_BAND_M]
            return float(np.median(inliers)), int(inliers.size)
        remaining = remaining[np.abs(remaining - best) >= FLOOR_BAND_M]
    return None


# ---------------------------------------------------------------------------------------------------
# Wrist and palm


def read_wrist_and_palm(
    paths: RecordingPaths, timestamps_ns: np.ndarray, T_world_device: np.ndarray
) -> WristPalm | None:
    """MPS wrist and palm observations at each output frame, in the world; None without the file.

    timestamps_ns (T,) int64 device time and T_world_device (T, 7) wxyz_xyz are the output frames
    (e.g. CpfTrajectory's). Each frame takes the MPS record nearest in time; a hand counts when that
    record is within 1/30 s and the hand's confidence is above 0.7. Positions map through
    T_world_device, normals through its rotation. Raises EgogrpoError naming the file if it cannot be read.
    """
    path = paths.wrist_and_palm
    if path is None:
        return None
    timestamps_ns = np.asarray(timestamps_ns, dtype=np.int64)
    T_world_device = np.asarray(T_world_device, dtype=np.float64)
    if timestamps_ns.ndim != 1 or T_world_device.shape != (timestamps_ns.shape[0], 7):
        raise ValueError(
            f"expected (T,) timestamps and (T, 7) poses, got {timestamps_ns.shape} and {T_world_device.shape}"
        )
    mps, _ = _projectaria()
    if not path.is_file():
        raise EgogrpoError(f"{path}: no such wrist and palm file")
    with console_output_captured() as log, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="WristAndPalmPoses and read_wrist_and_palm_poses")
        records = list(mps.hand_tracking.read_wrist_and_palm_poses(str(path)))
    # The reader tries the v2 columns first and logs a failure for every v1 file, so count rows instead.
    rows = _count_data_rows(path)
    if not records or len(records) != rows:
        lines = problem_lines(log)
        detail = f" ({lines[-1].strip()[:300]})" if lines else ""
        raise EgogrpoError(
            f"{path}: not a readable MPS wrist and palm file, read {len(records)} of {rows} rows{detail}"
        )
    records.sort(key=lambda r: r.tracking_timestamp)
    record_ns = np.array([_ns(r.tracking_timestamp) for r in records], dtype=np.int64)

    # nearest record to each frame (the earlier one on a tie)
    after = np.clip(np.searchsorted(record_ns, timestamps_ns), 0, len(records) - 1)
    before = np.clip(after - 1, 0, len(records) - 1)
    nearest = np.where(
        np.abs(record_ns[after] - timestamps_ns) < np.abs(timestamps_ns - record_ns[before]), after, before
    )
    close = np.abs(record_ns[nearest] - timestamps_ns) < WRIST_PALM_MAX_DT_NS

    rotations = quat_to_matrix(torch.from_numpy(T_world_device[:, :4])).numpy()
    translations = T_world_device[:, 4:]
    return WristPalm(
        left=_hand_observations([r.left_hand for r in records], nearest, close, rotations, translations),
        right=_hand_observations([r.right_hand for r in records], nearest, close, rotations, translations),
        source=path,
    )


def _hand_observations(
    sides: list, nearest: np.ndarray, close: np.ndarray, rotations: np.ndarray, translations: np.ndarray
) -> HandObservations:
    """One hand's records (None where not tracked) picked at `nearest` and mapped into the world."""
    n = len(sides)
    confidence = np.full(n, -np.inf)
    wrist, palm = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    wrist_normal, palm_normal = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    for k, side in enumerate(sides):
        if side is None:
            continue
        confidence[k] = side.confidence
        wrist[k] = np.asarray(side.wrist_position_device, dtype=np.float64).reshape(3)
        palm[k] = np.asarray(side.palm_position_device, dtype=np.float64).reshape(3)
        normals = side.wrist_and_palm_normal_device
        if normals is not None:
            wrist_normal[k] = np.asarray(normals.wrist_normal_device, dtype=np.float64).reshape(3)
            palm_normal[k] = np.asarray(normals.palm_normal_device, dtype=np.float64).reshape(3)

    valid = close & (confidence[nearest] > WRIST_PALM_MIN_CONFIDENCE) & np.isfinite(wrist[nearest]).all(axis=1)
    valid &= np.isfinite(palm[nearest]).all(axis=1)
    normal_valid = (
        valid & np.isfinite(wrist_normal[nearest]).all(axis=1) & np.isfinite(palm_normal[nearest]).all(axis=1)
    )

    def to_world(vectors: np.ndarray, mask: np.ndarray, is_point: bool) -> np.ndarray:
        out = np.einsum("tij,tj->ti", rotations, vectors[nearest]) + (translations if is_point else 0.0)
        out[~mask] = np.nan
        return out

    return HandObservations(
        valid=valid,
        confidence=np.where(valid, confidence[nearest], np.nan),
        wrist=to_world(wrist, valid, True),
        palm=to_world(palm, valid, True),
        normal_valid=normal_valid,
        wrist_normal=to_world(wrist_normal, normal_valid, False),
        palm_normal=to_world(palm_normal, normal_valid, False),
    )
