"""Aria inputs of `egogrpo recover` on the real MPS sample (../shared/data/aria/mps_sample).

The sample's own VRS is not available, so the device calibration comes from the AEA test recording.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from egogrpo.errors import EgogrpoError
from egogrpo.recover.aria import (
    NOMINAL_T_DEVICE_CPF,
    POINT_CONFIDENCE,
    CpfTrajectory,
    RecordingPaths,
    _ransac_floor,
    estimate_floor_z,
    find_recording,
    read_cpf_trajectory,
    read_T_device_cpf,
    read_wrist_and_palm,
)

pytest.importorskip("projectaria_tools", reason="projectaria-tools is not installed")
Rotation = pytest.importorskip("scipy.spatial.transform").Rotation
Slerp = pytest.importorskip("scipy.spatial.transform").Slerp

#: Measured on the sample: 11.395 s of poses → 342 frames at 30 fps; EgoAllo's floor recipe keeps 80
#: confident points of 99,472 and puts the floor at −1.4818 m (3 inliers; looser confidence thresholds
#: give −1.489 to −1.491 m); the CPF's median height above it is 1.474 m (the walk dips to 1.02 m).
SAMPLE_FRAMES = 342
SAMPLE_FLOOR_Z = -1.4818
SAMPLE_CPF_HEIGHT = 1.474


@pytest.fixture(scope="module")
def aria_dirs(sample_data: Path) -> tuple[Path, Path]:
    mps_dir = sample_data / "aria" / "mps_sample"
    vrs = sample_data / "aria" / "aria_everyday_activities_test_data" / "recording.vrs"
    if not (mps_dir / "trajectory" / "closed_loop_trajectory.csv").is_file() or not vrs.is_file():
        pytest.skip(f"Aria MPS sample or AEA recording not found under {sample_data / 'aria'}")
    return mps_dir, vrs


@pytest.fixture(scope="module")
def paths(aria_dirs: tuple[Path, Path]) -> RecordingPaths:
    mps_dir, vrs = aria_dirs
    return find_recording(mps_dir, vrs=vrs)


@pytest.fixture(scope="module")
def trajectory(paths: RecordingPaths) -> CpfTrajectory:
    return read_cpf_trajectory(paths)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _matrix(wxyz_xyz: np.ndarray) -> np.ndarray:
    """(…, 7) → (…, 4, 4) with scipy, independently of egogrpo.geometry."""
    M = np.zeros((*wxyz_xyz.shape[:-1], 4, 4))
    M[..., :3, :3] = Rotation.from_quat(wxyz_xyz[..., [1, 2, 3, 0]]).as_matrix()
    M[..., :3, 3] = wxyz_xyz[..., 4:]
    M[..., 3, 3] = 1.0
    return M


def test_finds_the_mps_sample_files(paths: RecordingPaths, aria_dirs: tuple[Path, Path]) -> None:
    mps_dir, vrs = aria_dirs
    assert paths.trajectory == mps_dir / "trajectory" / "closed_loop_trajectory.csv"
    assert paths.points == mps_dir / "trajectory" / "global_points.csv.gz"
    assert paths.wrist_and_palm == mps_dir / "hand_tracking" / "wrist_and_palm_poses.csv"
    assert paths.vrs == vrs
    assert find_recording(mps_dir).vrs is None  # no *.vrs in the folder itself
    assert find_recording(mps_dir.parent, mps=mps_dir / "trajectory").wrist_and_palm == paths.wrist_and_palm


def test_trajectory_is_resampled_uniformly_over_its_span(trajectory: CpfTrajectory, paths: RecordingPaths) -> None:
    rows = _csv_rows(paths.trajectory)
    first_ns, last_ns = int(rows[0]["tracking_timestamp_us"]) * 1000, int(rows[-1]["tracking_timestamp_us"]) * 1000
    assert trajectory.num_frames == SAMPLE_FRAMES == int((last_ns - first_ns) * 30 // 1e9) + 1
    assert trajectory.timestamps_ns.dtype == np.int64 and trajectory.timestamps_ns[0] == first_ns
    assert trajectory.timestamps_ns[-1] <= last_ns < trajectory.timestamps_ns[-1] + 1e9 / 30
    assert set(np.diff(trajectory.timestamps_ns).tolist()) <= {33_333_333, 33_333_334}
    assert trajectory.T_world_device.shape == trajectory.T_world_cpf.shape == (SAMPLE_FRAMES, 7)
    assert trajectory.calibration == str(paths.vrs) and trajectory.fps == 30.0
    # the sample's own VRS is not public: the AEA test VRS is another recording, and the reader says so
    assert len(trajectory.warnings) == 1 and "does not overlap" in trajectory.warnings[0]


def test_cpf_poses_match_an_independent_interpolation(trajectory: CpfTrajectory, paths: RecordingPaths) -> None:
    rows = _csv_rows(paths.trajectory)
    times_ns = np.array([int(r["tracking_timestamp_us"]) * 1000 for r in rows])
    positions = np.array([[float(r[f"t{a}_world_device"]) for a in "xyz"] for r in rows])
    xyzw = np.array([[float(r[f"q{a}_world_device"]) for a in "xyzw"] for r in rows])
    frames = np.array([0, 1, 57, 171, 300, SAMPLE_FRAMES - 1])
    t = trajectory.timestamps_ns[frames]

    rotations = Slerp(times_ns.astype(np.float64), Rotation.from_quat(xyzw))(t.astype(np.float64))
    expected_device = np.zeros((len(frames), 4, 4))
    expected_device[:, :3, :3] = rotations.as_matrix()
    expected_device[:, :3, 3] = np.stack([np.interp(t, times_ns, positions[:, k]) for k in range(3)], axis=-1)
    expected_device[:, 3, 3] = 1.0
    expected_cpf = expected_device @ _matrix(trajectory.T_device_cpf)

    for got, expected in (
        (trajectory.T_world_device[frames], expected_device),
        (trajectory.T_world_cpf[frames], expected_cpf),
    ):
        got_M = _matrix(got)
        np.testing.assert_allclose(got_M[:, :3, 3], expected[:, :3, 3], atol=1e-6)  # metres
        np.testing.assert_allclose(got_M[:, :3, :3], expected[:, :3, :3], atol=1e-6)
    # the calibration is the VRS's own; a CPF sits ~7 cm from the device origin
    np.testing.assert_allclose(trajectory.T_device_cpf, read_T_device_cpf(paths.vrs), atol=1e-12)
    assert 0.06 < np.linalg.norm(trajectory.T_device_cpf[4:]) < 0.08


def test_floor_from_the_point_cloud_gives_a_standing_eye_height(
    trajectory: CpfTrajectory, paths: RecordingPaths
) -> None:
    assert paths.points is not None
    floor = estimate_floor_z(paths.points)
    assert floor.z == pytest.approx(SAMPLE_FLOOR_Z, abs=2e-3)
    assert floor.num_read == 99_472 and floor.num_points == 80 and floor.num_inliers >= 3
    assert floor.thresholds == POINT_CONFIDENCE
    assert estimate_floor_z(paths.points, seed=1).z == floor.z
    height = np.median(trajectory.T_world_cpf[:, 6] - floor.z)
    assert height == pytest.approx(SAMPLE_CPF_HEIGHT, abs=0.01) and 1.4 < height < 1.8


def test_floor_ransac_is_fast_and_finds_a_planted_floor() -> None:
    rng = np.random.default_rng(0)
    floor = 0.3 + rng.normal(0.0, 0.002, 30_000)
    zs = np.sort(np.concatenate([floor, rng.uniform(0.3, 3.0, 70_000)]))
    start = time.perf_counter()
    result = _ransac_floor(zs, np.random.default_rng(0))
    assert time.perf_counter() - start < 0.5
    assert result is not None
    assert result[0] == pytest.approx(0.3, abs=0.002) and result[1] > 25_000

    # a few isolated points below the floor (≤ 3 within 7.5 cm) are taken for noise and skipped
    small = np.sort(np.concatenate([floor[:300], rng.uniform(0.3, 3.0, 700), [-0.9, -0.5, -0.45]]))
    result = _ransac_floor(small, np.random.default_rng(0))
    assert result is not None and result[0] == pytest.approx(0.3, abs=0.002)


def test_wrist_and_palm_at_the_output_frames(trajectory: CpfTrajectory, paths: RecordingPaths) -> None:
    assert paths.wrist_and_palm is not None
    hands = read_wrist_and_palm(paths, trajectory.timestamps_ns, trajectory.T_world_device)
    assert hands is not None and hands.source == paths.wrist_and_palm
    assert not hands.left.valid.any() and np.isnan(hands.left.wrist).all()
    assert not hands.right.normal_valid.any()  # v1 file: no normals

    rows = _csv_rows(paths.wrist_and_palm)
    times_ns = np.array([int(r["tracking_timestamp_us"]) * 1000 for r in rows])
    confidence = np.array([float(r["right_tracking_confidence"]) for r in rows])
    wrist_device = np.array([[float(r[f"t{a}_right_wrist_device"]) for a in "xyz"] for r in rows])
    nearest = np.argmin(np.abs(trajectory.timestamps_ns[:, None] - times_ns[None, :]), axis=1)
    close = np.abs(times_ns[nearest] - trajectory.timestamps_ns) < 1e9 / 30
    expected_valid = close & (confidence[nearest] > 0.7)
    assert expected_valid.sum() == 8  # 4 records above 0.7 at 10 Hz, two 30 fps frames each
    np.testing.assert_array_equal(hands.right.valid, expected_valid)

    M = _matrix(trajectory.T_world_device[expected_valid])
    expected = np.einsum("tij,tj->ti", M[:, :3, :3], wrist_device[nearest[expected_valid]]) + M[:, :3, 3]
    np.testing.assert_allclose(hands.right.wrist[expected_valid], expected, atol=1e-9)
    np.testing.assert_allclose(hands.right.confidence[expected_valid], confidence[nearest[expected_valid]])
    assert np.isnan(hands.right.wrist[~expected_valid]).all()

    v2 = paths.wrist_and_palm.with_name("wrist_and_palm_poses_v2.csv")
    hands_v2 = read_wrist_and_palm(
        dataclasses.replace(paths, wrist_and_palm=v2), trajectory.timestamps_ns, trajectory.T_world_device
    )
    assert hands_v2 is not None
    np.testing.assert_array_equal(hands_v2.right.normal_valid, expected_valid)
    np.testing.assert_allclose(np.linalg.norm(hands_v2.right.palm_normal[expected_valid], axis=-1), 1.0, atol=1e-5)
    assert (
        read_wrist_and_palm(
            dataclasses.replace(paths, wrist_and_palm=None), trajectory.timestamps_ns, trajectory.T_world_device
        )
        is None
    )


def test_without_a_vrs_the_nominal_calibration_is_used_with_a_warning(
    trajectory: CpfTrajectory, paths: RecordingPaths
) -> None:
    nominal = read_cpf_trajectory(dataclasses.replace(paths, vrs=None))
    assert nominal.calibration == "nominal" and len(nominal.warnings) == 1
    assert "nominal" in nominal.warnings[0] and "--vrs" in nominal.warnings[0] and "\n" not in nominal.warnings[0]
    np.testing.assert_array_equal(nominal.T_device_cpf, NOMINAL_T_DEVICE_CPF)
    # provenance: the constant is the AEA test recording's factory calibration
    np.testing.assert_allclose(NOMINAL_T_DEVICE_CPF, read_T_device_cpf(paths.vrs), atol=1e-12)
    np.testing.assert_allclose(nominal.T_world_cpf, trajectory.T_world_cpf, atol=1e-12)


def test_a_vrs_from_another_recording_is_named_in_a_warning(
    paths: RecordingPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample's MPS trajectory (device time 149.2–160.6 s) with the AEA test VRS (86.3–86.8 s): not one
    recording, and said so; a VRS whose span overlaps the trajectory's gives no warning."""
    import egogrpo.recover.aria as aria

    span = aria.read_vrs(paths.vrs).device_time_span
    assert span is not None and span[1] < 100e9
    warned = read_cpf_trajectory(paths)
    assert len(warned.warnings) == 1 and "does not overlap" in warned.warnings[0] and "--vrs" in warned.warnings[0]
    facts = aria.read_vrs(paths.vrs)
    monkeypatch.setattr(aria, "read_vrs", lambda vrs: aria.VrsFacts(facts.T_device_cpf, (int(140e9), int(170e9))))
    assert read_cpf_trajectory(paths).warnings == []


def test_reading_prints_nothing(paths: RecordingPaths, capfd: pytest.CaptureFixture[str]) -> None:
    trajectory = read_cpf_trajectory(paths)
    assert paths.points is not None
    estimate_floor_z(paths.points)
    read_wrist_and_palm(paths, trajectory.timestamps_ns, trajectory.T_world_device)
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""


# ---------------------------------------------------------------------------------------------------
# Bad input → one-line EgogrpoError naming the file


def _write_trajectory(folder: Path, header: str, rows: list[str]) -> Path:
    path = folder / "slam" / "closed_loop_trajectory.csv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _edit(row: str, column: int, value: str) -> str:
    fields = row.split(",")
    fields[column] = value
    return ",".join(fields)


def _nan_row(rows: list[str]) -> list[str]:
    return [*rows[:500], _edit(rows[500], 3, "nan"), *rows[501:]]


def _gap(rows: list[str]) -> list[str]:  # shift the second half 1 s later
    return [*rows[:1000], *(_edit(r, 1, str(int(r.split(",")[1]) + 1_000_000)) for r in rows[1000:])]


def _two_graph_uids(rows: list[str]) -> list[str]:
    return [*rows[:1000], *(_edit(r, 0, "another-graph-uid") for r in rows[1000:])]


@pytest.fixture(scope="module")
def sample_rows(paths: RecordingPaths) -> tuple[str, list[str]]:
    """Header and the first 2000 rows (2 s) of the sample trajectory."""
    lines = paths.trajectory.read_text().splitlines()
    return lines[0], lines[1:2001]


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (_nan_row, "read 500 of 2000 rows"),
        (_gap, "gap of 1.001 s"),
        (_two_graph_uids, "2 graph_uids"),
        (lambda rows: rows[:3], "1 frame(s)"),
    ],
    ids=["nan", "gap", "graph_uids", "three_rows"],
)
def test_bad_trajectories_are_refused(tmp_path: Path, sample_rows: tuple[str, list[str]], edit, says: str) -> None:
    header, rows = sample_rows
    read_cpf_trajectory(find_recording(_write_trajectory(tmp_path / "good", header, rows).parents[1]))
    path = _write_trajectory(tmp_path / "bad", header, edit(rows))
    with pytest.raises(EgogrpoError) as e:
        read_cpf_trajectory(find_recording(tmp_path / "bad"))
    message = str(e.value)
    assert message.startswith(str(path)) and says in message and "\n" not in message


def test_missing_trajectory_and_bad_vrs_are_refused(tmp_path: Path, sample_rows: tuple[str, list[str]]) -> None:
    (tmp_path / "empty" / "slam").mkdir(parents=True)
    with pytest.raises(EgogrpoError, match=r"closed_loop_trajectory\.csv") as e:
        find_recording(tmp_path / "empty")
    assert str(e.value).startswith(str(tmp_path / "empty")) and "\n" not in str(e.value)

    _write_trajectory(tmp_path / "rec", *sample_rows)
    (tmp_path / "rec" / "recording.vrs").write_text("not a vrs\n")
    paths = find_recording(tmp_path / "rec")
    assert paths.vrs == tmp_path / "rec" / "recording.vrs" and paths.points is None and paths.wrist_and_palm is None
    with pytest.raises(EgogrpoError) as e:
        read_cpf_trajectory(paths)
    assert str(e.value).startswith(str(paths.vrs)) and "not a readable Aria VRS" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(EgogrpoError, match="no such VRS file"):
        find_recording(tmp_path / "rec", vrs=tmp_path / "missing.vrs")
