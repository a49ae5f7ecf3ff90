"""ADT reader on the real Aria Digital Twin test sequence (../shared/data/aria/aria_digital_twin_test_data)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from egogrpo.data.adt import AdtSequence, read_adt_sequence
from egogrpo.data.skeleton_motion import Y_UP_TO_Z_UP
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_to_matrix, se3_compose

pytest.importorskip("projectaria_tools", reason="projectaria-tools is not installed")

#: Measured on the test sequence: the ADT "Head" joint is 0.1617 m from the CPF (20 frames, 0.1615–0.1623 m)
#: and 0.1806 m from the device origin (0.1803–0.1809 m); in the CPF frame (x left, y up, z forward) it
#: sits at about (0.011, −0.038, −0.157) m, i.e. behind and slightly below the eyes.
HEAD_TO_CPF_M = 0.1617
HEAD_TO_DEVICE_M = 0.1806
OFFSET_TOLERANCE_M = 0.005


@pytest.fixture(scope="module")
def adt_dir(sample_data: Path) -> Path:
    folder = sample_data / "aria" / "aria_digital_twin_test_data"
    if not folder.is_dir():
        pytest.skip(f"ADT test sequence not found at {folder}")
    return folder


@pytest.fixture(scope="module")
def sequence(adt_dir: Path) -> AdtSequence:
    return read_adt_sequence(adt_dir)


def _trajectory_csv(adt_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(timestamps ns, scene-frame device positions, wxyz) straight from aria_trajectory.csv."""
    with open(adt_dir / "aria_trajectory.csv") as f:
        rows = list(csv.DictReader(f))
    times = np.array([int(r["tracking_timestamp_us"]) * 1000 for r in rows])
    positions = np.array([[float(r[f"t{a}_world_device"]) for a in "xyz"] for r in rows])
    wxyz = np.array([[float(r[f"q{a}_world_device"]) for a in "wxyz"] for r in rows])
    return times, positions, wxyz


def test_sampled_at_the_skeleton_frames_within_the_trajectory(sequence: AdtSequence, adt_dir: Path) -> None:
    skeleton_json = json.loads((adt_dir / "Skeleton_T.json").read_text())
    skeleton_times = np.array([f["timestamp_ns"] for f in skeleton_json["frames"]])
    device_times, _, _ = _trajectory_csv(adt_dir)
    inside = (skeleton_times >= device_times[0]) & (skeleton_times <= device_times[-1])
    assert sequence.name == "ADT/aria_digital_twin_test_data" and sequence.timestamps_ns.dtype == np.int64
    np.testing.assert_array_equal(sequence.timestamps_ns, skeleton_times[inside])
    assert sequence.num_frames == 20 and sequence.attrs["dropped_skeleton_frames"] == int((~inside).sum())
    assert sequence.skeleton.fps == pytest.approx(120.0, rel=1e-3)
    assert sequence.T_world_device.shape == (20, 7) and sequence.T_world_cpf.shape == (20, 7)
    assert sequence.T_device_cpf.shape == (7,)
    for T in (sequence.T_world_device, sequence.T_world_cpf, sequence.T_device_cpf[None]):
        np.testing.assert_allclose(np.linalg.norm(T[:, :4], axis=-1), 1.0, atol=1e-9)


def test_device_pose_is_the_z_up_interpolated_trajectory(sequence: AdtSequence, adt_dir: Path) -> None:
    times, scene_positions, scene_wxyz = _trajectory_csv(adt_dir)
    interpolated = np.stack([np.interp(sequence.timestamps_ns, times, scene_positions[:, k]) for k in range(3)], -1)
    nearest = np.abs(sequence.timestamps_ns[:, None] - times[None]).argmin(axis=1)
    R_expected = Y_UP_TO_Z_UP @ quat_to_matrix(torch.from_numpy(scene_wxyz[nearest])).numpy()
    R_world_device = quat_to_matrix(torch.from_numpy(sequence.T_world_device[:, :4])).numpy()
    cos = (np.einsum("tij,tij->t", R_expected, R_world_device) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 1.0  # ≤ 17 ms from the nearest pose
    # projectaria-tools interpolates the pose as a whole; its translation is within microns of linear
    np.testing.assert_allclose(sequence.T_world_device[:, 4:], interpolated @ Y_UP_TO_Z_UP.T, atol=1e-5)
    # T_world_cpf = T_world_device · T_device_cpf
    composed = se3_compose(torch.from_numpy(sequence.T_world_device), torch.from_numpy(sequence.T_device_cpf))
    np.testing.assert_allclose(np.abs((composed[:, :4].numpy() * sequence.T_world_cpf[:, :4]).sum(-1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(composed[:, 4:].numpy(), sequence.T_world_cpf[:, 4:], atol=1e-9)


def test_cpf_extrinsic_is_the_factory_calibration(sequence: AdtSequence, adt_dir: Path) -> None:
    from projectaria_tools.core import data_provider

    calibration = data_provider.create_vrs_data_provider(str(adt_dir / "video.vrs")).get_device_calibration()
    expected = calibration.get_transform_device_cpf().to_matrix()
    np.testing.assert_allclose(sequence.T_device_cpf[4:], expected[:3, 3], atol=1e-9)
    R = quat_to_matrix(torch.from_numpy(sequence.T_device_cpf[:4])).numpy()
    np.testing.assert_allclose(R, expected[:3, :3], atol=1e-9)


def test_world_is_z_up(sequence: AdtSequence) -> None:
    skeleton = sequence.skeleton
    z = lambda name: skeleton.positions[:, skeleton.index(name), 2]
    assert (z("Head") > z("Neck")).all() and (z("Neck") > z("Skeleton")).all() and (z("Skeleton") > z("LShin")).all()
    assert (z("LToe") < 0.15).all() and (z("RToe") < 0.15).all()  # the scene floor is at about 0
    assert (1.3 < sequence.T_world_cpf[:, 6]).all() and (sequence.T_world_cpf[:, 6] < 1.9).all()
    R_world_cpf = quat_to_matrix(torch.from_numpy(sequence.T_world_cpf[:, :4])).numpy()
    assert (R_world_cpf[:, 2, 1] > 0.5).all()  # the CPF's y axis (up) points mostly up


def test_head_joint_is_rigidly_placed_at_the_cpf(sequence: AdtSequence) -> None:
    """The skeleton is placed consistently with the device trajectory: the head joint keeps a fixed,
    head-sized offset from the CPF and from the device."""
    head = sequence.skeleton.positions[:, sequence.skeleton.index("Head")]
    to_cpf = np.linalg.norm(head - sequence.T_world_cpf[:, 4:], axis=-1)
    to_device = np.linalg.norm(head - sequence.T_world_device[:, 4:], axis=-1)
    assert abs(to_cpf.mean() - HEAD_TO_CPF_M) < OFFSET_TOLERANCE_M and to_cpf.std() < 0.002
    assert abs(to_device.mean() - HEAD_TO_DEVICE_M) < OFFSET_TOLERANCE_M and to_device.std() < 0.002
    assert sequence.attrs["head_to_cpf_m"] == pytest.approx(np.median(to_cpf))
    R_world_cpf = quat_to_matrix(torch.from_numpy(sequence.T_world_cpf[:, :4])).numpy()
    in_cpf = np.einsum("tji,tj->ti", R_world_cpf, head - sequence.T_world_cpf[:, 4:])
    assert in_cpf.std(axis=0).max() < 0.003  # the same point of the head in every frame
    np.testing.assert_allclose(in_cpf.mean(axis=0), [0.011, -0.038, -0.157], atol=OFFSET_TOLERANCE_M)


def test_skeleton_tree_and_flags(sequence: AdtSequence) -> None:
    skeleton = sequence.skeleton
    names, parents = skeleton.names, skeleton.parents
    assert len(names) == 51 and names[0] == "Skeleton" and parents[0] == -1
    assert all(0 <= p < len(names) for p in parents[1:])
    for i in range(len(names)):  # every joint reaches the root
        seen = set()
        while i != 0:
            assert i not in seen
            seen.add(i)
            i = parents[i]
    parent = lambda name: names[parents[skeleton.index(name)]]
    assert parent("Head") == "Neck" and parent("LThigh") == "Skeleton" and parent("RToe") == "RFoot"
    assert parent("LThumb1") == "LHand" and parent("RPinky3") == "RPinky2" and parent("LShoulder") == "Chest"
    assert not sequence.skeleton_has_rotations
    np.testing.assert_array_equal(skeleton.rotations, np.broadcast_to(np.eye(3), skeleton.rotations.shape))
    np.testing.assert_allclose(skeleton.rest_positions, skeleton.positions[0] - skeleton.positions[0, 0])


def test_projectaria_console_output_is_suppressed(adt_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    read_adt_sequence(adt_dir)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


# --- bad input ----------------------------------------------------------------------------------------


def _copy_without(adt_dir: Path, tmp_path: Path, *missing: str) -> Path:
    """The test sequence as symbolic links, without the named files."""
    folder = tmp_path / "seq"
    folder.mkdir()
    for path in adt_dir.iterdir():
        if path.name not in missing:
            (folder / path.name).symlink_to(path)
    return folder


@pytest.mark.parametrize(
    ("missing", "fragment"),
    [
        ("aria_trajectory.csv", "no device trajectory"),
        ("Skeleton_T.json", "no wearer skeleton"),
        ("video.vrs", "device calibration"),
        ("skeleton_aria_association.json", "no wearer skeleton"),
        ("instances.json", "cannot open the sequence"),
    ],
)
def test_missing_parts(adt_dir: Path, tmp_path: Path, missing: str, fragment: str) -> None:
    folder = _copy_without(adt_dir, tmp_path, missing)
    with pytest.raises(EgogrpoError, match=fragment) as info:
        read_adt_sequence(folder)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


def test_missing_folder_empty_trajectory_and_no_overlap(adt_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(EgogrpoError, match="no such ADT sequence folder"):
        read_adt_sequence(tmp_path / "nope")
    folder = _copy_without(adt_dir, tmp_path, "aria_trajectory.csv")
    lines = (adt_dir / "aria_trajectory.csv").read_text().splitlines()
    (folder / "aria_trajectory.csv").write_text(lines[0] + "\n")
    with pytest.raises(EgogrpoError, match="no device poses"):
        read_adt_sequence(folder)
    rows = [line.split(",") for line in lines[1:]]
    shifted = [",".join([r[0], str(int(r[1]) + 10_000_000), *r[2:]]) for r in rows]  # 10 s later
    (folder / "aria_trajectory.csv").write_text("\n".join([lines[0], *shifted]) + "\n")
    with pytest.raises(EgogrpoError, match="no skeleton frame lies within"):
        read_adt_sequence(folder)


def test_other_time_domain_is_refused(adt_dir: Path, tmp_path: Path) -> None:
    folder = _copy_without(adt_dir, tmp_path, "metadata.json")
    metadata = json.loads((adt_dir / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "gt_time_domain": "TIME_CODE"}))
    with pytest.raises(EgogrpoError, match="DEVICE_CAPTURE"):
        read_adt_sequence(folder)
