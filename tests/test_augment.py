"""On-the-fly training augmentation (egogrpo.data.augment) and its use by MotionCropDataset / train-prior."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from egogrpo.body import load_body_model
from egogrpo.config import AUGMENT_PRESETS, AugmentConfig, ProcessConfig
from egogrpo.data.augment import AugmentDraw, augment_window, draw_augmentation, source_frames
from egogrpo.data.crops import MotionCropDataset
from egogrpo.data.hdf5_schema import MotionFile
from egogrpo.data.motion import MotionClip, mirror_clip
from egogrpo.data.process import process_clip
from egogrpo.geometry import quat_from_axis_angle, se3_compose, se3_inverse

L = 32


@pytest.fixture(scope="module")
def body():
    return load_body_model("default").to(dtype=torch.float64)


def _walk_clip(body, frames: int = 60, speed_m_s: float = 1.2, fps: float = 30.0, sway: float = 0.3) -> MotionClip:
    """A synthetic clip: a swaying, bending pose translating along +y at a constant speed, soles near z = 0."""
    t = np.arange(frames) / fps
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(21, 3))
    angles = (
        sway * np.sin(2 * np.pi * 0.8 * t)[:, None, None] * axes[None] / np.linalg.norm(axes, axis=-1)[None, :, None]
    )
    body_quats = quat_from_axis_angle(torch.from_numpy(angles)).numpy()
    betas = np.zeros(body.num_betas)
    pelvis = float(
        body.with_shape(torch.from_numpy(betas)).rest_joints[0, 1] - body.rest_floor_y(torch.from_numpy(betas))
    )
    root = np.zeros((frames, 7))
    root[:, 0] = 1.0
    root[:, 5] = speed_m_s * t
    root[:, 6] = pelvis
    # The body's rest frame is y-up; the world is z-up: turn the root by +90° about x.
    root[:, :4] = [np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0]
    return MotionClip(
        name="walk",
        source="synthetic",
        dataset="synthetic",
        fps=fps,
        T_world_root=root,
        body_quats=body_quats,
        betas=betas,
    )


def _stored(body, clip: MotionClip):
    """The arrays preprocessing would store for `clip` (floor at z = 0)."""
    return process_clip(clip, body, ProcessConfig(min_frames=L), floor=0.0)


def test_identity_augmentation_rebuilds_the_stored_crop(body) -> None:
    stored = _stored(body, _walk_clip(body))
    window = stored.slice(5, 5 + L + 1)
    rebuilt = augment_window(window, AugmentDraw(mirror=False, speed=1.0, betas=None), body, L)
    expected = stored.slice(6, 6 + L)
    for f in dataclasses.fields(expected):
        if getattr(expected, f.name) is not None:
            np.testing.assert_allclose(getattr(rebuilt, f.name), getattr(expected, f.name), atol=2e-6, err_msg=f.name)


def test_on_the_fly_mirror_equals_preprocessing_the_mirrored_clip(body) -> None:
    clip = _walk_clip(body)
    stored = _stored(body, clip)
    mirrored_stored = _stored(body, mirror_clip(clip))  # what `preprocess --mirror` writes
    augmented = augment_window(stored.slice(10, 10 + L + 1), AugmentDraw(True, 1.0, None), body, L)
    expected = mirrored_stored.slice(11, 11 + L)
    for f in dataclasses.fields(expected):
        if getattr(expected, f.name) is not None:
            # The augmented labels are the stored joints mirrored; preprocessing runs FK of the mirrored
            # pose. They differ by the default body's left/right asymmetry (tens of micrometres).
            atol = 1e-4 if f.name == "joints_wrt_cpf" else 2e-6
            np.testing.assert_allclose(getattr(augmented, f.name), getattr(expected, f.name), atol=atol, err_msg=f.name)
    # and it is a different motion: the walk's left/right sway is reversed
    assert np.abs(augmented.joints_wrt_cpf - stored.slice(11, 11 + L).joints_wrt_cpf).max() > 0.01


@pytest.mark.parametrize("speed", [0.8, 1.25])
def test_speed_scales_the_head_velocity(body, speed: float) -> None:
    stored = _stored(body, _walk_clip(body, speed_m_s=1.2, sway=0.0))
    count = source_frames(L, speed)
    assert count == int(np.ceil(L * speed)) + 1
    augmented = augment_window(stored.slice(0, count), AugmentDraw(False, speed, None), body, L)
    assert augmented.num_frames == L
    # A rigid pose gliding at 1.2 m/s: the stored head moves 1.2 / 30 m per frame, the augmented one
    # `speed` times as far.
    np.testing.assert_allclose(np.diff(stored.T_world_cpf[:, 5]), 1.2 / 30, rtol=1e-4)
    np.testing.assert_allclose(np.diff(augmented.T_world_cpf[:, 5]), speed * 1.2 / 30, rtol=1e-4)
    # the relative CPF motion was recomputed from the resampled trajectory
    cpf = torch.from_numpy(augmented.T_world_cpf.astype(np.float64))
    relative = se3_compose(se3_inverse(cpf[:-1]), cpf[1:]).numpy()
    np.testing.assert_allclose(augmented.T_cpf_tm1_cpf_t[1:], relative, atol=1e-5)


def test_new_shape_keeps_a_standing_body_on_the_floor(body) -> None:
    clip = _walk_clip(body, speed_m_s=0.0)
    clip = dataclasses.replace(clip, body_quats=np.tile([1.0, 0.0, 0.0, 0.0], (clip.num_frames, 21, 1)))
    stored = _stored(body, clip)
    betas = np.zeros(body.num_betas)
    betas[:2] = [2.0, -1.5]
    augmented = augment_window(stored.slice(0, L + 1), AugmentDraw(False, 1.0, betas), body, L)
    b = torch.from_numpy(betas)
    assert augmented.betas[0] == pytest.approx(betas.astype(np.float32))
    # the rest pose standing on the floor: the CPF is the new body's rest CPF height above the soles
    np.testing.assert_allclose(augmented.height_from_floor[:, 0], float(body.rest_cpf_height(b)), atol=1e-5)
    assert abs(float(body.rest_cpf_height(b)) - stored.height_from_floor[0, 0]) > 0.02  # a different body


def test_draws_follow_the_config() -> None:
    rng = np.random.default_rng(0)
    draws = [draw_augmentation(AUGMENT_PRESETS["standard"], 10, rng) for _ in range(400)]
    assert 0.4 < np.mean([d.mirror for d in draws]) < 0.6
    assert 0.4 < np.mean([d.betas is not None for d in draws]) < 0.6
    speeds = np.array([d.speed for d in draws])
    assert speeds.min() >= 0.8 and speeds.max() <= 1.2 and speeds.std() > 0.1
    none = draw_augmentation(AugmentConfig(), 10, rng)
    assert none.identity


def test_dataset_crops_depend_only_on_seed_epoch_and_index(cmu_small: Path) -> None:
    body = load_body_model("default")
    standard = AUGMENT_PRESETS["standard"]
    a = MotionCropDataset(cmu_small, crop_length=64, seed=1, preload=True, augment=standard, body=body)
    b = MotionCropDataset(cmu_small, crop_length=64, seed=1, preload=False, augment=standard, body=body)
    for index in (3, 0, 5):
        x, y = a[index], b[index]
        torch.testing.assert_close(x.T_world_cpf, y.T_world_cpf, rtol=0, atol=0)
        torch.testing.assert_close(x.betas, y.betas, rtol=0, atol=0)
    other = MotionCropDataset(cmu_small, crop_length=64, seed=2, preload=True, augment=standard, body=body)
    assert any(not torch.equal(a[i].body_quats, other[i].body_quats) for i in range(4))
    # with augmentation off the dataset gives exactly the crops it gave before augmentation existed
    plain = MotionCropDataset(cmu_small, crop_length=64, seed=1, preload=True)
    off = MotionCropDataset(cmu_small, crop_length=64, seed=1, preload=True, augment=AugmentConfig(), body=body)
    with MotionFile(cmu_small) as motion:
        name, start = plain.crop_window(2)
        expected = motion.read_frames(name, start, start + 64)
    torch.testing.assert_close(off[2].body_quats, torch.from_numpy(expected.body_quats), rtol=0, atol=0)
    torch.testing.assert_close(plain[2].T_world_cpf, off[2].T_world_cpf, rtol=0, atol=0)


def test_augmented_crops_are_valid_sequences(cmu_small: Path) -> None:
    body = load_body_model("default")
    config = AugmentConfig(mirror=1.0, shape_prob=1.0, speed_min=0.8, speed_max=1.2)
    dataset = MotionCropDataset(cmu_small, crop_length=64, seed=0, preload=True, augment=config, body=body)
    for index in range(3):
        crop = dataset[index]
        assert crop.T_world_cpf.shape == (64, 7) and torch.isfinite(crop.joints_wrt_cpf).all()
        draw, _, _ = dataset.augmentation(index)
        assert draw.mirror and draw.betas is not None
        torch.testing.assert_close(crop.betas[0], torch.from_numpy(draw.betas).float())
        torch.testing.assert_close(crop.height_from_floor[:, 0], crop.T_world_cpf[:, 6])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--augment", "heavy"], "--augment"),
        (["--mirror-prob", "1.5"], "--mirror-prob"),
        (["--shape-prob", "-0.1"], "--shape-prob"),
        (["--shape-std", "nan"], "--shape-std"),
        (["--speed-range", "1.2:0.8"], "--speed-range"),
        (["--speed-range", "fast"], "--speed-range"),
        (["--speed-range", "0.8:1.0:1.2"], "--speed-range"),
    ],
)
def test_train_prior_refuses_bad_augmentation_options(run_cli, tmp_path: Path, options, message) -> None:
    run_dir = tmp_path / "run"
    data = tmp_path / "missing.h5"  # the options are checked before the data is opened
    result = run_cli("train-prior", str(data), "--run-dir", str(run_dir), *options)
    assert result.exit_code != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in lines[0]
    assert not run_dir.exists()
