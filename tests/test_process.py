"""Clip processing: resampling by time, floor and contacts, CPF quantities, mirroring, bad clips."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egogrpo.body import load_body_model
from egogrpo.body.topology import BODY_JOINT_NAMES
from egogrpo.config import FloorContactConfig, ProcessConfig
from egogrpo.data.motion import MotionClip, mirror_clip
from egogrpo.data.process import (
    ShortClipError,
    contact_labels,
    estimate_floor,
    joint_speeds,
    process_clip,
    resample_clip,
)
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import se3_apply

ELBOW = BODY_JOINT_NAMES.index("left_elbow")


@pytest.fixture(scope="module")
def body():
    return load_body_model("default")


def _spinning_clip(fps: float, seconds: float, betas: np.ndarray) -> MotionClip:
    """A T-posed body turning about the vertical at 1 rad/s while sliding along x at 1 m/s, an elbow swinging."""
    t = np.arange(round(seconds * fps) + 1) / fps
    up = Rotation.from_euler("x", 90, degrees=True)  # body y-up → world z-up
    root_rot = Rotation.from_euler("z", t[:, None]) * up
    root = np.concatenate([root_rot.as_quat(scalar_first=True), np.stack([t, 0 * t, 0.95 + 0 * t], -1)], -1)
    bend = Rotation.from_euler("y", 0.3 * np.sin(2 * t)[:, None]).as_quat(scalar_first=True)  # an elbow swings
    body_quats = np.tile([1.0, 0, 0, 0], (len(t), 21, 1))
    body_quats[:, ELBOW - 1] = bend
    return MotionClip(
        name="test/spin",
        source="synthetic.clip",
        dataset="test",
        fps=fps,
        T_world_root=root,
        body_quats=body_quats,
        betas=betas,
    )


def test_resample_by_timestamp_matches_analytic_motion(body) -> None:
    clip = _spinning_clip(fps=50.0, seconds=6.0, betas=np.zeros(body.num_betas))  # 50 is not a multiple of 30
    out = resample_clip(clip, 30.0)
    t = np.arange(out.num_frames) / 30.0
    assert out.num_frames == 181 and out.fps == 30.0
    expected = (Rotation.from_euler("z", t[:, None]) * Rotation.from_euler("x", 90, degrees=True)).as_matrix()
    got = Rotation.from_quat(out.T_world_root[:, :4], scalar_first=True).as_matrix()
    np.testing.assert_allclose(got, expected, atol=1e-9)  # slerp of a constant-rate turn is exact
    np.testing.assert_allclose(out.T_world_root[:, 4], t, atol=1e-12)
    elbow = Rotation.from_quat(out.body_quats[:, ELBOW - 1], scalar_first=True).magnitude()
    assert np.abs(elbow - np.abs(0.3 * np.sin(2 * t))).max() < 2e-3  # sampled sine, slerped between samples


def test_floor_from_static_toes_and_contacts() -> None:
    T = 120
    joints = np.zeros((T, 22, 3))
    joints[:, :, 2] = 1.0
    toes = [BODY_JOINT_NAMES.index("left_foot"), BODY_JOINT_NAMES.index("right_foot")]
    joints[:, toes, 2] = 0.35  # both toes resting on a floor at 0.35 m…
    joints[60:80, toes[0], 0] = np.linspace(0, 1.0, 20)  # …except the left foot moving for a while
    joints[60:80, toes[0], 2] = 0.6
    joints[1::7, toes[1], 2] = 0.352  # sensor noise below the cluster gap
    joints[10, toes[1], 2] = 0.10  # one outlier below the floor: not a cluster
    config = FloorContactConfig()
    speeds = joint_speeds(joints, 30.0)
    floor = estimate_floor(joints, speeds, config)
    assert floor == pytest.approx(0.35 - config.toe_clearance, abs=1e-9)
    lifted = joints - np.array([0, 0, floor])
    contacts = contact_labels(lifted, speeds, config)
    assert contacts.shape == (T, 21)
    assert contacts[:50, toes[0] - 1].all() and not contacts[65:75, toes[0] - 1].any()
    knee = BODY_JOINT_NAMES.index("left_knee") - 1
    assert not contacts[:, knee].any()  # knees are 0.65 m up
    assert not contacts[:, BODY_JOINT_NAMES.index("head") - 1].any()  # unlabelled joint


def test_process_clip_outputs(body) -> None:
    betas = np.zeros(body.num_betas)
    betas[0] = 1.0
    clip = _spinning_clip(fps=120.0, seconds=6.0, betas=betas)
    seq = process_clip(clip, body, ProcessConfig())
    assert seq.problems() == [] and seq.num_frames == 180  # 181 frames at 30 fps, the first dropped
    assert seq.betas.shape == (1, body.num_betas) and seq.T_world_root.dtype == np.float32
    # The body slides at 1 m/s, so no toe is static: the floor falls back to the lowest toe height.
    joints = se3_apply(
        torch.from_numpy(seq.T_world_cpf)[:, None].double(), torch.from_numpy(seq.joints_wrt_cpf).double()
    ).numpy()
    toes = [BODY_JOINT_NAMES.index("left_foot") - 1, BODY_JOINT_NAMES.index("right_foot") - 1]
    assert joints[:, toes, 2].min() == pytest.approx(ProcessConfig().floor.toe_clearance, abs=1e-5)
    np.testing.assert_allclose(seq.height_from_floor[:, 0], seq.T_world_cpf[:, 6])
    # Standing on straight legs: CPF height = rest (CPF − right toe joint) height + the toe clearance.
    shaped = body.with_shape(torch.from_numpy(betas).float())
    rest = shaped.rest_joints.numpy()
    expected = (
        rest[BODY_JOINT_NAMES.index("head"), 1]
        + float(shaped.cpf_offset[1])
        - rest[BODY_JOINT_NAMES.index("right_foot"), 1]
    )
    np.testing.assert_allclose(seq.height_from_floor[:, 0], expected + ProcessConfig().floor.toe_clearance, atol=1e-4)
    # Relative CPF motion: the body turns 1 rad/s → 1/30 rad per frame about the world vertical.
    angle = Rotation.from_quat(seq.T_cpf_tm1_cpf_t[:, :4].astype(np.float64), scalar_first=True).magnitude()
    np.testing.assert_allclose(angle, 1 / 30, atol=1e-5)
    # Pelvis: T_world_root translation equals the world joint 0 (FK root) after the floor shift.
    posed = body.with_shape(torch.from_numpy(betas).float()).with_pose(
        torch.from_numpy(seq.T_world_root), torch.from_numpy(seq.body_quats)
    )
    np.testing.assert_allclose(posed.joints[:, 1:].numpy(), joints, atol=2e-5)
    np.testing.assert_allclose(posed.T_world_cpf.numpy()[:, 4:], seq.T_world_cpf[:, 4:], atol=2e-5)


def test_mirrored_clip_is_the_mirror_image(body) -> None:
    clip = _spinning_clip(fps=30.0, seconds=1.0, betas=np.zeros(body.num_betas))
    rng = np.random.default_rng(0)
    clip = dataclasses.replace(
        clip,
        body_quats=Rotation.random(clip.num_frames * 21, random_state=1).as_quat(scalar_first=True).reshape(-1, 21, 4),
    )
    clip = dataclasses.replace(
        clip, T_world_root=np.concatenate([clip.T_world_root[:, :4], rng.normal(size=(clip.num_frames, 3))], -1)
    )
    mirrored = mirror_clip(clip)
    assert mirrored.name == "test/spin_mirror" and mirrored.attrs["mirrored"] == 1

    def fk(c: MotionClip) -> np.ndarray:
        shaped = body.to(dtype=torch.float64).with_shape(torch.zeros(body.num_betas, dtype=torch.float64))
        return shaped.with_pose(torch.from_numpy(c.T_world_root), torch.from_numpy(c.body_quats)).joints.numpy()

    swap = [
        BODY_JOINT_NAMES.index(n.replace("left_", "TMP").replace("right_", "left_").replace("TMP", "right_"))
        for n in BODY_JOINT_NAMES
    ]
    expected = fk(clip)[:, swap] * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(fk(mirrored), expected, atol=3e-3)  # the default body is symmetric to ~1 mm
    back = mirror_clip(mirrored, suffix="")
    np.testing.assert_allclose(back.body_quats, clip.body_quats, atol=1e-12)


def test_bad_clips(body) -> None:
    clip = _spinning_clip(fps=120.0, seconds=3.0, betas=np.zeros(body.num_betas))
    with pytest.raises(ShortClipError, match=r"synthetic\.clip: 3\.00 s gives 90 frames"):
        process_clip(clip, body, ProcessConfig())
    nan = clip.body_quats.copy()
    nan[5, 3, 0] = np.nan
    with pytest.raises(EgogrpoError, match=r"synthetic\.clip: body_quats contains NaN"):
        process_clip(dataclasses.replace(clip, body_quats=nan), body, ProcessConfig())
    with pytest.raises(EgogrpoError, match="frame rate"):
        process_clip(dataclasses.replace(clip, fps=0.0), body, ProcessConfig())
    scaled = clip.T_world_root.copy()
    scaled[:, :4] *= 2
    with pytest.raises(EgogrpoError, match="not unit quaternions"):
        process_clip(dataclasses.replace(clip, T_world_root=scaled), body, ProcessConfig())
