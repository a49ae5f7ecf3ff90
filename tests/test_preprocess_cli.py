"""End-to-end `egogrpo preprocess` on the real CMU clips: content checks, resume, and bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from egogrpo.body.topology import BODY_JOINT_NAMES
from egogrpo.data.hdf5_schema import MotionFile
from egogrpo.data.manifests import load_manifest
from egogrpo.geometry import se3_apply

J = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}


def world_joints(seq) -> np.ndarray:
    """(T, 22, 3): the pelvis from T_world_root, the rest from the CPF frame."""
    rest = se3_apply(torch.from_numpy(seq.T_world_cpf)[:, None].double(), torch.from_numpy(seq.joints_wrt_cpf).double())
    return np.concatenate([seq.T_world_root[:, None, 4:], rest.numpy()], axis=1)


@pytest.fixture(scope="module")
def cmu_file(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All CMU clips of the sample data, preprocessed once with two worker processes."""
    from typer.testing import CliRunner

    from egogrpo.cli.main import app

    out = tmp_path_factory.mktemp("cmu") / "cmu.h5"
    result = CliRunner().invoke(
        app, ["preprocess", "cmu", str(sample_data / "cmu/asfamc/subjects"), "--out", str(out), "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    return out


def test_cmu_file_layout_and_splits(cmu_file: Path) -> None:
    manifest = load_manifest("cmu")
    with MotionFile(cmu_file) as f:
        assert f.info.body_model_kind == "default" and f.info.source_dataset == "cmu" and f.info.fps == 30.0
        for split, clips in manifest["splits"].items():
            assert f.names(split) == sorted(f"CMU/{c[:2]}/{c}" for c in clips)
        attrs = f.sequence_attrs("CMU/01/01_01")
        assert attrs["split"] == "train" and attrs["skeleton_convention"] == "cmu-asf"
        assert f.num_frames("CMU/01/01_01") == 687  # 2751 frames at 120 fps → 688 at 30 fps, first dropped


def test_cmu_standing_frames_and_contacts(cmu_file: Path) -> None:
    heights, still_and_low, labelled = [], 0, 0
    with MotionFile(cmu_file) as f:
        for name in f.names():
            seq = f.read(name)
            joints = world_joints(seq)
            toes = joints[:, [J["left_foot"], J["right_foot"]]]
            both_down = seq.contacts[:, [J["left_foot"] - 1, J["right_foot"] - 1]].all(axis=1)
            trunk = joints[:, J["neck"]] - joints[:, J["pelvis"]]
            upright = trunk[:, 2] / np.linalg.norm(trunk, axis=-1) > np.cos(np.radians(15))
            straight = np.ones(len(joints), dtype=bool)
            for side in ("left", "right"):
                thigh = joints[:, J[f"{side}_hip"]] - joints[:, J[f"{side}_knee"]]
                shin = joints[:, J[f"{side}_ankle"]] - joints[:, J[f"{side}_knee"]]
                cos = (thigh * shin).sum(-1) / np.linalg.norm(thigh, axis=-1) / np.linalg.norm(shin, axis=-1)
                straight &= cos < np.cos(np.radians(160))  # knee angle above 160°
            heights.append(seq.height_from_floor[both_down & upright & straight, 0])
            speed = np.linalg.norm(np.gradient(toes, 1 / 30, axis=0), axis=-1)
            still = (speed < 0.1) & (toes[:, :, 2] < 0.03)
            still_and_low += still.sum()
            labelled += seq.contacts[:, [J["left_foot"] - 1, J["right_foot"] - 1]][still].sum()
    heights = np.concatenate(heights)
    assert len(heights) > 200
    low, high = np.percentile(heights, [2, 98])
    assert 1.4 < low and high < 1.9, (low, high)  # standing CPF 1.4–1.9 m above the floor
    assert labelled / still_and_low > 0.99  # feet still on the ground are labelled in contact


def test_asf_amc_and_bvh_of_the_same_clip_agree(sample_data: Path, tmp_path: Path, run_cli) -> None:
    subject = tmp_path / "subjects" / "01"
    subject.mkdir(parents=True)
    for name in ("01.asf", "01_01.amc"):
        shutil.copy(sample_data / "cmu/asfamc/subjects/01" / name, subject / name)
    asf_out, bvh_out = tmp_path / "asf.h5", tmp_path / "bvh.h5"
    assert (
        run_cli("preprocess", "cmu", str(tmp_path / "subjects"), "--out", str(asf_out), "--workers", "1").exit_code == 0
    )
    result = run_cli(
        "preprocess", "bvh", str(sample_data / "cmu/bvh/01_01.bvh"), "--out", str(bvh_out), "--workers", "1"
    )
    assert result.exit_code == 0, result.stderr
    with MotionFile(asf_out) as a, MotionFile(bvh_out) as b:
        assert b.sequence_attrs("BVH/01_01")["dropped_bind_frame"] == 1
        assert b.sequence_attrs("BVH/01_01")["skeleton_convention"] == "cmu-bvh"
        ja, jb = world_joints(a.read("CMU/01/01_01")), world_joints(b.read("BVH/01_01"))
    assert ja.shape == jb.shape
    error = np.linalg.norm(ja - jb, axis=-1)
    assert error.max() < 0.01, f"max {error.max():.4f} m"


def _subject_02(sample_data: Path, root: Path, clips: tuple[str, ...]) -> Path:
    subject = root / "subjects" / "02"
    subject.mkdir(parents=True, exist_ok=True)
    shutil.copy(sample_data / "cmu/asfamc/subjects/02/02.asf", subject / "02.asf")
    for clip in clips:
        shutil.copy(sample_data / f"cmu/asfamc/subjects/02/{clip}.amc", subject / f"{clip}.amc")
    return subject


def test_interrupted_run_resumes(sample_data: Path, tmp_path: Path, run_cli) -> None:
    subject = _subject_02(sample_data, tmp_path, ("02_05", "02_06", "02_07"))
    lines = (subject / "02_07.amc").read_text().splitlines(keepends=True)
    (subject / "02_07.amc").write_text("".join(lines[: len(lines) // 2 - 3]))  # cut mid-frame
    out = tmp_path / "out.h5"
    args = ("preprocess", "cmu", str(tmp_path / "subjects"), "--out", str(out), "--workers", "1")
    first = run_cli(*args)
    assert first.exit_code == 1 and "02_07.amc" in first.stderr and "resume" in first.stderr
    assert len([line for line in first.stderr.splitlines() if line.strip()]) == 1
    assert not out.exists() and out.with_name("out.h5.partial").exists()
    shutil.copy(sample_data / "cmu/asfamc/subjects/02/02_07.amc", subject / "02_07.amc")  # the user fixes the file
    second = run_cli(*args)
    assert second.exit_code == 0, second.stderr
    assert "resumed: 2 clip(s)" in second.stdout
    with MotionFile(out) as f:
        assert f.names() == ["CMU/02/02_05", "CMU/02/02_06", "CMU/02/02_07"]
    assert not out.with_name("out.h5.partial").exists()
    again = run_cli(*args)
    assert again.exit_code == 1 and "exists; pass --overwrite" in again.stderr
    assert run_cli(*args, "--overwrite", "--mirror").exit_code == 0
    with MotionFile(out) as f:
        assert "CMU/02/02_05_mirror" in f.names() and len(f.names()) == 6


def _bvh_copy(sample_data: Path, path: Path, frames: int | None = None, edit=None) -> Path:
    text = (sample_data / "cmu/bvh/01_01.bvh").read_text().replace("\r\n", "\n")
    head, motion = text.split("MOTION\n")
    lines = motion.splitlines()
    data = lines[2:] if frames is None else lines[2 : 2 + frames]
    if edit is not None:
        data = edit(data)
    path.write_text(f"{head}MOTION\nFrames: {len(data)}\n{lines[1]}\n" + "\n".join(data) + "\n")
    return path


@pytest.mark.parametrize("problem", ["short", "nan", "unknown_skeleton", "truncated_asf"])
def test_bad_input_leaves_nothing_behind(problem: str, sample_data: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "out.h5"
    if problem == "truncated_asf":
        subject = _subject_02(sample_data, tmp_path, ("02_05",))
        asf = (subject / "02.asf").read_text()
        (subject / "02.asf").write_text(asf[: len(asf) // 2])
        result = run_cli("preprocess", "cmu", str(tmp_path / "subjects"), "--out", str(out), "--workers", "1")
        culprit = "02.asf"
    else:
        if problem == "short":
            bvh = _bvh_copy(sample_data, tmp_path / "short.bvh", frames=300)
        elif problem == "nan":
            bvh = _bvh_copy(
                sample_data,
                tmp_path / "nan.bvh",
                frames=800,
                edit=lambda d: [*d[:100], d[100].replace(d[100].split()[7], "nan", 1), *d[101:]],
            )
        else:
            bvh = _bvh_copy(sample_data, tmp_path / "weird.bvh", frames=800)
            bvh.write_text(
                bvh.read_text()
                .replace("LeftUpLeg", "Blob1")
                .replace("LeftLeg", "Blob2")
                .replace("LeftFoot", "Blob3")
                .replace("LeftToeBase", "Blob4")
            )
        result = run_cli("preprocess", "bvh", str(bvh), "--out", str(out), "--workers", "1")
        culprit = bvh.name
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and culprit in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.glob("out.h5*")) == []  # no output, no partial


def test_skip_short(sample_data: Path, tmp_path: Path, run_cli) -> None:
    short = _bvh_copy(sample_data, tmp_path / "short.bvh", frames=300)
    long = _bvh_copy(sample_data, tmp_path / "long.bvh", frames=800)
    out = tmp_path / "out.h5"
    result = run_cli("preprocess", "bvh", str(short), str(long), "--out", str(out), "--skip-short", "--workers", "1")
    assert result.exit_code == 0, result.stderr
    assert "skipped (shorter than one crop): BVH/short" in result.stdout
    with MotionFile(out) as f:
        assert f.names() == ["BVH/long"]


def test_preprocess_adt_uses_the_device_cpf_and_the_skeleton(sample_data: Path, tmp_path: Path, run_cli) -> None:
    from egogrpo.data.adt import read_adt_sequence

    folder = sample_data / "aria/aria_digital_twin_test_data"
    out = tmp_path / "adt.h5"
    result = run_cli("preprocess", "adt", str(folder), "--out", str(out), "--workers", "1")
    assert result.exit_code == 0, result.stderr
    device = read_adt_sequence(folder)
    with MotionFile(out) as f:
        seq = f.read("ADT/aria_digital_twin_test_data")
    # 20 skeleton frames at 120 Hz → 5 frames at 30 fps (every 4th), the first dropped.
    assert seq.num_frames == 4
    expected = device.T_world_cpf[4:20:4]
    lift = seq.T_world_cpf[0, 6] - expected[0, 6]
    np.testing.assert_allclose(seq.T_world_cpf[:, 4:6], expected[:, 4:6], atol=2e-4)
    np.testing.assert_allclose(seq.T_world_cpf[:, 6] - expected[:, 6], lift, atol=2e-4)
    assert 1.3 < seq.height_from_floor.mean() < 1.9
    joints = world_joints(seq)
    assert np.abs(joints[:, [J["left_foot"], J["right_foot"]], 2]).max() < 0.05  # standing on the floor
