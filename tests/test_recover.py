"""`egogrpo recover` on the real MPS sample: head on the SLAM trajectory, feet near the floor, exports, bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from egogrpo.body import load_body_model
from egogrpo.body.topology import BODY_JOINT_NAMES
from egogrpo.data.bvh import read_bvh

AEA_VRS = "aria/aria_everyday_activities_test_data/recording.vrs"


@pytest.fixture(scope="module")
def recovered(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from egogrpo.config import RecoverConfig
    from egogrpo.recover.pipeline import recover

    out = tmp_path_factory.mktemp("recover")
    config = RecoverConfig(
        recording=str(sample_data / "aria/mps_sample"), vrs=str(sample_data / AEA_VRS), out=str(out),
        write_csv=True, write_bvh=True,
    )  # fmt: skip
    recover(config)
    return out


def test_head_on_the_slam_trajectory_and_feet_near_the_floor(recovered: Path, sample_data: Path) -> None:
    from egogrpo.recover.aria import find_recording, read_cpf_trajectory

    npz = np.load(recovered / "recovered.npz")
    metadata = json.loads(str(npz["metadata"]))
    trajectory = read_cpf_trajectory(find_recording(sample_data / "aria/mps_sample", vrs=sample_data / AEA_VRS))
    assert npz["Ts_world_cpf"].shape == (trajectory.num_frames - 1, 7) and npz["Ts_world_cpf"].shape[0] > 330  # 11.4 s
    np.testing.assert_allclose(npz["Ts_world_cpf"], trajectory.T_world_cpf[1:], atol=1e-6)
    # Forward kinematics of the stored body puts its CPF on the SLAM CPF to a millimetre.
    body = load_body_model("default")
    betas = torch.from_numpy(npz["betas"][0].mean(axis=0))
    posed = body.with_shape(betas).with_pose(
        torch.from_numpy(npz["Ts_world_root"][0]), torch.from_numpy(npz["body_quats"][0])
    )
    error = np.linalg.norm(posed.T_world_cpf[:, 4:].numpy() - npz["Ts_world_cpf"][:, 4:], axis=-1)
    assert error.max() < 1e-3
    np.testing.assert_allclose(posed.joints.numpy(), npz["joints_world"][0], atol=1e-4)
    # Feet near the estimated floor: the lowest foot joint of each frame, median over the walk.
    floor = float(npz["floor_z"])
    lowest = npz["joints_world"][0][:, [7, 8, 10, 11], 2].min(axis=1) - floor
    assert abs(np.median(lowest)) < 0.1, np.median(lowest)
    assert metadata["floor_source"].endswith("inliers)") and metadata["body_model_id"] == body.model_id


def test_csv_and_bvh_exports(recovered: Path) -> None:
    npz = np.load(recovered / "recovered.npz")
    header = (recovered / "joints.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["frame", "timestamp_ns", "sample", "pelvis_x"] and len(header) == 3 + 66
    table = np.loadtxt(recovered / "joints.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(table[:, 3:].reshape(-1, 22, 3), npz["joints_world"][0], atol=1e-4)
    motion = read_bvh(recovered / "motion.bvh", units="cm")  # our own BVH reader: y-up → z-up, cm → m
    assert motion.fps == pytest.approx(30.0)
    nodes = [motion.index(name) for name in BODY_JOINT_NAMES]  # the file lists joints depth-first
    np.testing.assert_allclose(motion.positions[:, nodes], npz["joints_world"][0], atol=1e-3)


@pytest.mark.parametrize("case", ["no_trajectory", "nan", "short", "exists"])
def test_bad_input(case: str, sample_data: Path, tmp_path: Path, run_cli) -> None:
    recording = tmp_path / "recording"
    (recording / "trajectory").mkdir(parents=True)
    source = (sample_data / "aria/mps_sample/trajectory/closed_loop_trajectory.csv").read_text().splitlines()
    out = tmp_path / "out"
    if case == "no_trajectory":
        culprit = str(recording)
    else:
        rows = source[:2000]
        if case == "nan":
            fields = rows[500].split(",")
            fields[3] = "nan"
            rows[500] = ",".join(fields)
        elif case == "short":
            rows = source[:4]
        (recording / "trajectory/closed_loop_trajectory.csv").write_text("\n".join(rows) + "\n")
        culprit = "closed_loop_trajectory.csv"
        if case == "exists":
            out.mkdir()
            (out / "recovered.npz").write_bytes(b"old")
            culprit = "recovered.npz exists"
    result = run_cli("recover", str(recording), "--out", str(out), "--floor-z", "0")
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning")]
    assert result.exit_code == 1 and len(lines) == 1 and culprit in lines[0], result.stderr
    if case != "exists":
        assert not (out / "recovered.npz").exists()
    else:
        assert (out / "recovered.npz").read_bytes() == b"old"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_adt_sequence_with_the_default_prior(sample_data: Path, cmu_small: Path, tmp_path: Path) -> None:
    """ADT: the wearer's skeleton is ground truth for the real Aria CPF trajectory (only 4 frames at 30 fps);
    the prior beats the mean training pose (of the CMU fixture's train clips) placed on the same head."""
    from egogrpo.config import PreprocessConfig, SamplerConfig
    from egogrpo.data.preprocess import run_preprocess
    from egogrpo.eval.windows import joint_errors, mean_pose_state, split_windows
    from egogrpo.model.checkpoint import default_prior_dir, load_checkpoint
    from egogrpo.model.sampling import sample_states

    data = tmp_path / "adt.h5"
    folder = sample_data / "aria/aria_digital_twin_test_data"
    process = PreprocessConfig(source="adt", inputs=(str(folder),), out=str(data), workers=1)
    run_preprocess(dataclasses.replace(process, process=dataclasses.replace(process.process, min_frames=1)))
    windows = split_windows(str(data), "test", length=4)
    model, config, _ = load_checkpoint(default_prior_dir())
    states = sample_states(model, config, SamplerConfig(), windows.crops, seed=0, num_samples=4)
    body = load_body_model("default")
    errors = joint_errors(body, states, windows.crops)
    mpjpe = float(errors["mpjpe"].mean())
    baseline = float(
        joint_errors(body, mean_pose_state(str(cmu_small), ("train",), body.num_betas), windows.crops)["mpjpe"].mean()
    )
    print(f"ADT test sequence: MPJPE {mpjpe:.1f} mm (mean pose: {baseline:.1f} mm), "
          f"PA-MPJPE {float(errors['pa_mpjpe'].mean()):.1f} mm (4 samples)")  # fmt: skip
    assert mpjpe < baseline


@pytest.mark.slow
def test_refinement_uses_mps_wrists_and_keeps_the_head(sample_data: Path, tmp_path: Path) -> None:
    from egogrpo.config import RecoverConfig
    from egogrpo.recover.pipeline import recover

    config = RecoverConfig(
        recording=str(sample_data / "aria/mps_sample"), vrs=str(sample_data / AEA_VRS), out=str(tmp_path), refine=True
    )
    recover(config)
    npz = np.load(tmp_path / "recovered.npz")
    metadata = json.loads(str(npz["metadata"]))
    assert metadata["refined"] and metadata["refinement_wrists"].endswith("wrist_and_palm_poses.csv")
    body = load_body_model("default")
    posed = body.with_shape(torch.from_numpy(npz["betas"][0].mean(axis=0))).with_pose(
        torch.from_numpy(npz["Ts_world_root"][0]), torch.from_numpy(npz["body_quats"][0])
    )
    assert np.abs(posed.T_world_cpf[:, 4:].numpy() - npz["Ts_world_cpf"][:, 4:]).max() < 1e-3
