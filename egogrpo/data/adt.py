"""Reader for Aria Digital Twin (ADT) sequences: the device trajectory, its CPF and the wearer's mocap skeleton.

An ADT sequence folder (projectaria_tools docs, "ADT Data Format") holds `video.vrs` (the Aria
recording, with the factory calibration), `aria_trajectory.csv` (ground-truth device poses in the
scene frame), `Skeleton_<name>.json` (the OptiTrack body: 51 joint positions and 57 markers per
frame), `skeleton_aria_association.json`, `instances.json` and `metadata.json`. It is read with
`projectaria_tools.projects.adt`.

Time. All ground truth of a (v2.0) sequence is stored in the device capture time of its Aria
device (`metadata.json`: gt_time_domain DEVICE_CAPTURE), so skeleton frames and device poses share
one clock. The skeleton JSON's `dt_optitrack_minus_device_ns` only records the offset to the
OptiTrack clock (t_optitrack = t_device + dt) and is not needed.

Sampling. The sequence is sampled at the skeleton's own frames (≈ 120 Hz), so the ground-truth body
is never interpolated; the device pose at each of them is interpolated between its two neighbouring
poses by projectaria-tools (`get_interpolated_aria_3d_pose_at_timestamp_ns`; ADT's trajectory is
sparser, e.g. 30 Hz in the test sequence).
Skeleton frames outside the trajectory's time span are dropped (the count is in attrs).

Frames. The ADT scene frame is y-up (gravity (0, −9.81, 0)); everything is returned z-up by
(x, y, z) ↦ (x, −z, y) (`Y_UP_TO_Z_UP`): points p ↦ M p and poses T_world = M ⊕ T_scene.
The CPF is the device calibration's (`get_transform_device_cpf`, as EgoAllo uses it) and
T_world_cpf = T_world_device · T_device_cpf.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egogrpo.data.projectaria_console import console_output_captured, problem_lines
from egogrpo.data.skeleton_motion import Y_UP_TO_Z_UP, SkeletonMotion
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import se3_from_matrix

TRAJECTORY_FILE = "aria_trajectory.csv"
VRS_FILE = "video.vrs"
HEAD_JOINT = "Head"
NOMINAL_SKELETON_FPS = 120.0  # ADT's OptiTrack rate; used only when a single frame leaves no interval to measure
#: paths the reader does not need; clearing them keeps the provider from opening those files
_UNUSED_PATHS = (
    "boundingboxes_2d_filepath",
    "depth_images_filepath",
    "eyegazes_filepath",
    "object_boundingbox_3d_filepath",
    "object_trajectories_filepath",
    "segmentations_filepath",
    "synthetic_vrs_filepath",
)


@dataclass(frozen=True)
class AdtSequence:
    """An ADT sequence sampled at the wearer skeleton's frames; z-up world, metres, wxyz_xyz poses.

    name:                    "ADT/<sequence folder name>"
    timestamps_ns:           (T,) int64 device capture time of each frame
    T_world_device:          (T, 7) device poses, interpolated at the skeleton's timestamps
    T_world_cpf:             (T, 7) central pupil frame, T_world_device · T_device_cpf (x left, y up, z forward)
    T_device_cpf:            (7,) the factory calibration's CPF in the device frame
    skeleton:                the wearer's skeleton, joint names as ADT labels them ("Skeleton" is the root).
                             ADT gives joint positions only: `rotations` are identity and `rest_positions`
                             are the first frame's positions relative to the root (see skeleton_has_rotations)
    skeleton_has_rotations:  False for ADT: the skeleton's rotations carry no information
    attrs:                   scene, serial, skeleton name and id, dropped skeleton frames, head-to-CPF distance
    """

    name: str
    source: str
    timestamps_ns: np.ndarray
    T_world_device: np.ndarray
    T_world_cpf: np.ndarray
    T_device_cpf: np.ndarray
    skeleton: SkeletonMotion
    skeleton_has_rotations: bool = False
    attrs: dict[str, str | float | int] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.timestamps_ns.shape[0]


def _last_error(log: io.StringIO) -> str:
    """The last error line projectaria-tools logged, as a suffix for a message ("" if none)."""
    lines = problem_lines(log)
    return f" (projectaria-tools: {lines[-1][:200]})" if lines else ""


def _se3_to_wxyz_xyz(matrices: np.ndarray) -> np.ndarray:
    """(..., 4, 4) rigid transforms → (..., 7) wxyz_xyz, float64."""
    return se3_from_matrix(torch.from_numpy(np.ascontiguousarray(matrices, dtype=np.float64))).numpy()


def _skeleton_parents(labels: list[str], connections: list[tuple[int, int]]) -> tuple[int, ...]:
    """Parent index of every joint: a tree grown from the root ("Skeleton", index 0) along ADT's joint
    connections, and the finger joints (not in the connections) chained from their hand: L<Finger>1's
    parent is LHand, L<Finger>k's is L<Finger>k−1 (likewise R)."""
    neighbours: dict[int, list[int]] = {i: [] for i in range(len(labels))}
    for a, b in connections:
        neighbours[a].append(b)
        neighbours[b].append(a)
    parents = [-2] * len(labels)
    parents[0] = -1
    queue = [0]
    while queue:
        joint = queue.pop(0)
        for other in neighbours[joint]:
            if parents[other] == -2:
                parents[other] = joint
                queue.append(other)
    index = {name: i for i, name in enumerate(labels)}
    for i, name in enumerate(labels):
        if parents[i] != -2:
            continue
        match = re.fullmatch(r"([LR])([A-Za-z]+)(\d)", name)
        parent = None
        if match:
            side, finger, k = match.group(1), match.group(2), int(match.group(3))
            parent = index.get(f"{side}Hand" if k == 1 else f"{side}{finger}{k - 1}")
        if parent is None:
            raise RuntimeError(f"ADT skeleton joint {name} has no parent in projectaria-tools' connections")
        parents[i] = parent
    return tuple(parents)


def _wearer_skeleton_id(seq_dir: Path, provider: Any, association_file: str) -> tuple[int, str]:
    """The skeleton worn by this sequence's device (skeleton_aria_association.json), with its name."""
    ids = list(provider.get_skeleton_ids())
    serial = ""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        serial = json.loads((seq_dir / "metadata.json").read_text()).get("serial", "")
    try:
        rows = json.loads(Path(association_file).read_text())["SkeletonMetadata"]
    except (OSError, ValueError, KeyError, TypeError):
        rows = []
    for row in rows:
        if isinstance(row, dict) and row.get("AssociatedDeviceSerial") == serial and row.get("SkeletonId") in ids:
            return int(row["SkeletonId"]), str(row.get("SkeletonName", ""))
    if len(ids) == 1:
        return int(ids[0]), ""
    raise EgogrpoError(f"{seq_dir}: no skeleton is associated with the device {serial or '(unknown serial)'}")


def read_adt_sequence(seq_dir: str | Path) -> AdtSequence:
    """Read one ADT sequence folder (see the module docstring for time, sampling and frames).

    Console output of projectaria-tools is captured and dropped. Raises EgogrpoError, one line naming
    the folder or file, for a missing folder, trajectory, VRS or wearer skeleton, or no overlap in time.
    """
    seq_dir = Path(seq_dir)
    if not seq_dir.is_dir():
        raise EgogrpoError(f"{seq_dir}: no such ADT sequence folder")
    if not (seq_dir / TRAJECTORY_FILE).is_file():
        raise EgogrpoError(f"{seq_dir / TRAJECTORY_FILE}: no device trajectory (an ADT sequence needs it)")
    if not (seq_dir / VRS_FILE).is_file():
        raise EgogrpoError(f"{seq_dir / VRS_FILE}: no Aria recording, which holds the device calibration (CPF)")
    if not any(seq_dir.glob("Skeleton_*.json")):
        raise EgogrpoError(f"{seq_dir}: no wearer skeleton (Skeleton_*.json); the sequence has no body ground truth")
    metadata: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((seq_dir / "metadata.json").read_text())
        metadata = loaded if isinstance(loaded, dict) else {}
    time_domain = metadata.get("gt_time_domain", "DEVICE_CAPTURE")
    if time_domain != "DEVICE_CAPTURE":
        raise EgogrpoError(
            f"{seq_dir / 'metadata.json'}: ground truth in time domain {time_domain!r}, expected DEVICE_CAPTURE"
        )

    try:
        from projectaria_tools.core.sensor_data import TimeQueryOptions
        from projectaria_tools.projects import adt
    except ImportError as e:
        raise EgogrpoError(f"reading ADT needs projectaria-tools ({e})") from None

    with console_output_captured() as log:
        try:
            paths = adt.AriaDigitalTwinDataPathsProvider(str(seq_dir)).get_datapaths_by_device_num(0)
            if paths is None:
                raise RuntimeError("no data paths for device 0")
            for name in _UNUSED_PATHS:
                setattr(paths, name, "")
            provider = adt.AriaDigitalTwinDataProvider(paths)
        except Exception as e:  # the bindings raise RuntimeError, ValueError, … for unreadable files
            failure: Exception | None = e
        else:
            failure = None
    if failure is not None:
        detail = "" if str(failure) in log.getvalue() else _last_error(log)
        raise EgogrpoError(f"{seq_dir}: projectaria-tools cannot open the sequence: {failure}{detail}")
    if not provider.has_aria_3d_poses():
        raise EgogrpoError(f"{seq_dir / TRAJECTORY_FILE}: no device poses could be read{_last_error(log)}")
    if not provider.has_skeleton():
        raise EgogrpoError(f"{seq_dir}: no wearer skeleton could be read{_last_error(log)}")
    skeleton_id, skeleton_name = _wearer_skeleton_id(seq_dir, provider, paths.skeleton_metadata_filepath)

    labels = list(adt.AriaDigitalTwinSkeletonProvider.get_joint_labels())
    parents = _skeleton_parents(labels, [tuple(c) for c in adt.AriaDigitalTwinSkeletonProvider.get_joint_connections()])
    with console_output_captured():
        calibration = provider.raw_data_provider_ptr().get_device_calibration()
        T_device_cpf = calibration.get_transform_device_cpf().to_matrix() if calibration is not None else None
        times, joints, device = [], [], []
        query, dropped = 0, 0
        while True:  # every skeleton frame, in time order
            frame = provider.get_skeleton_by_timestamp_ns(query, skeleton_id, TimeQueryOptions.AFTER)
            if not frame.is_valid():
                break
            t = query + frame.dt_ns()
            if t < query:  # AFTER never goes back; guard against looping forever
                break
            query = t + 1
            pose = adt.get_interpolated_aria_3d_pose_at_timestamp_ns(provider, t)
            if not pose.is_valid() or pose.dt_ns() != 0:  # outside the trajectory's time span
                dropped += 1
                continue
            times.append(t)
            joints.append(np.asarray(frame.data().joints, dtype=np.float64))
            device.append(pose.data().transform_scene_device.to_matrix())
    if T_device_cpf is None:
        raise EgogrpoError(f"{seq_dir / VRS_FILE}: no device calibration, so no CPF")
    if not times:
        raise EgogrpoError(f"{seq_dir}: no skeleton frame lies within the device trajectory's time span")
    positions_scene = np.stack(joints)
    if positions_scene.shape[1:] != (len(labels), 3) or not np.isfinite(positions_scene).all():
        raise EgogrpoError(
            f"{seq_dir}: skeleton frames must hold {len(labels)} finite joint positions, got shape {positions_scene.shape}"
        )

    M = np.eye(4)
    M[:3, :3] = Y_UP_TO_Z_UP
    world_device = M @ np.stack(device)
    world_cpf = world_device @ T_device_cpf
    positions = positions_scene @ Y_UP_TO_Z_UP.T
    timestamps = np.asarray(times, dtype=np.int64)
    num_frames, num_joints = positions.shape[:2]
    fps = 1e9 / float(np.median(np.diff(timestamps))) if num_frames > 1 else NOMINAL_SKELETON_FPS
    skeleton = SkeletonMotion(
        names=tuple(labels),
        parents=parents,
        rest_positions=positions[0] - positions[0, 0],
        positions=positions,
        rotations=np.broadcast_to(np.eye(3), (num_frames, num_joints, 3, 3)).copy(),
        fps=fps,
        source=str(seq_dir),
    )
    head = positions[:, labels.index(HEAD_JOINT)]
    return AdtSequence(
        name=f"ADT/{seq_dir.name}",
        source=str(seq_dir),
        timestamps_ns=timestamps,
        T_world_device=_se3_to_wxyz_xyz(world_device),
        T_world_cpf=_se3_to_wxyz_xyz(world_cpf),
        T_device_cpf=_se3_to_wxyz_xyz(T_device_cpf),
        skeleton=skeleton,
        skeleton_has_rotations=False,
        attrs={
            "scene": str(metadata.get("scene", "")),
            "serial": str(metadata.get("serial", "")),
            "skeleton_name": skeleton_name,
            "skeleton_id": skeleton_id,
            "skeleton_fps": fps,
            "dropped_skeleton_frames": dropped,
            "head_to_cpf_m": float(np.median(np.linalg.norm(head - world_cpf[:, :3, 3], axis=-1))),
        },
    )
