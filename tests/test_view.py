"""`egogrpo view`: reading recovered.npz, the PNG strip, the viser scene, and bad input through the CLI."""

from __future__ import annotations

import json
import math
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from egogrpo.body import load_body_model
from egogrpo.body.topology import BODY_JOINT_NAMES
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_from_axis_angle, quat_from_matrix
from egogrpo.viz.motion_file import load_recovered

FLOOR_Z = -1.2  # an MPS-like world: the floor is not at 0
FPS = 30.0


def _walk(num_frames: int, phase: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A default body walking along a gentle curve on the floor FLOOR_Z (z up).

    Returns T_world_root (T, 7), body_quats (T, 21, 4), joints (T, 22, 3) and T_world_cpf (T, 7).
    """
    body = load_body_model("default")
    t = torch.arange(num_frames, dtype=torch.float32) / FPS
    step = 2 * math.pi * 0.9 * t + phase  # ~0.9 strides per second

    def about(axis: int, angle: torch.Tensor) -> torch.Tensor:
        omega = torch.zeros(num_frames, 3, dtype=torch.float32)
        omega[:, axis] = angle
        return quat_from_axis_angle(omega)

    quats = torch.zeros(num_frames, 21, 4, dtype=torch.float32)
    quats[..., 0] = 1.0
    joint = {name: BODY_JOINT_NAMES.index(name) - 1 for name in BODY_JOINT_NAMES[1:]}  # index among the 21
    quats[:, joint["left_hip"]] = about(0, -0.45 * torch.sin(step))  # body x = left: swing legs
    quats[:, joint["right_hip"]] = about(0, 0.45 * torch.sin(step))
    quats[:, joint["left_knee"]] = about(0, 0.35 * (1 + torch.cos(step)))
    quats[:, joint["right_knee"]] = about(0, 0.35 * (1 - torch.cos(step)))
    quats[:, joint["left_shoulder"]] = about(2, torch.full_like(t, -1.25))  # body z = forward: arms down
    quats[:, joint["right_shoulder"]] = about(2, torch.full_like(t, 1.25))

    # body (x left, y up, z forward) → world (z up), heading turning slowly while walking 1.1 m/s
    heading = 0.35 * t
    c, s = torch.cos(heading), torch.sin(heading)
    zero, one = torch.zeros_like(t), torch.ones_like(t)
    left, up, forward = (
        torch.stack([-s, c, zero], -1),
        torch.stack([zero, zero, one], -1),
        torch.stack([c, s, zero], -1),
    )
    R_world_root = torch.stack([left, up, forward], -1)  # columns: the body's axes in the world
    speed = 1.1 / FPS
    position = torch.stack([torch.cumsum(c * speed, 0), torch.cumsum(s * speed, 0), torch.zeros_like(t)], -1)
    T_world_root = torch.cat([quat_from_matrix(R_world_root), position], -1)

    posed = body.with_shape(torch.zeros(body.num_betas, dtype=torch.float32)).with_pose(T_world_root, quats)
    lift = FLOOR_Z - float(posed.joints[..., 2].min()) + 0.05  # ankles ~5 cm above the floor
    up = np.array([0, 0, 0, 0, 0, 0, lift])
    joints = posed.joints.numpy() + up[4:]
    return T_world_root.numpy() + up, quats.numpy(), joints, posed.T_world_cpf.numpy() + up


def write_recovered(path: Path, num_frames: int = 48, samples: int = 2, **metadata_items) -> Path:
    """A recovered.npz with egogrpo recover's fields, shapes and metadata (samples differ in phase)."""
    walks = [_walk(num_frames, phase=0.6 * k) for k in range(samples)]
    metadata = {"body_model_id": "default:synthetic", "fps": FPS, "floor_z": FLOOR_Z, "trajectory": ""}
    metadata.update(metadata_items)
    np.savez(
        path,
        Ts_world_cpf=walks[0][3].astype(np.float32),
        Ts_world_root=np.stack([w[0] for w in walks]).astype(np.float32),
        body_quats=np.stack([w[1] for w in walks]).astype(np.float32),
        contacts=np.zeros((samples, num_frames, 21), np.float32),
        betas=np.zeros((samples, num_frames, 10), np.float32),
        joints_world=np.stack([w[2] for w in walks]).astype(np.float32),
        frame_nums=np.arange(1, num_frames + 1),
        timestamps_ns=(10**9 + np.round(np.arange(num_frames) * 1e9 / FPS)).astype(np.int64),
        floor_z=np.float32(FLOOR_Z),
        metadata=np.array(json.dumps(metadata)),
    )
    return path


@pytest.fixture(scope="module")
def recovered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_recovered(tmp_path_factory.mktemp("view") / "recovered.npz")


def test_load_recovered(recovered: Path) -> None:
    view = load_recovered(recovered.parent)  # the folder works too
    assert view.path == recovered
    assert view.joints.shape == (2, 48, 22, 3) and view.T_world_cpf.shape == (48, 7)
    assert view.floor_z == pytest.approx(FLOOR_Z) and view.fps == FPS
    assert view.times_s[0] == 0.0 and view.times_s[-1] == pytest.approx(47 / FPS)
    assert view.metadata["body_model_id"] == "default:synthetic" and view.point_cloud is None
    np.testing.assert_allclose(view.cpf_positions[:, 2] - FLOOR_Z, 1.6, atol=0.15)  # eye height of a standing adult
    with pytest.raises(EgogrpoError, match="no sample 2; the file holds 2"):
        view.sample_joints(2)


def test_point_cloud_is_found_beside_the_trajectory(tmp_path: Path) -> None:
    (tmp_path / "slam").mkdir()
    (tmp_path / "slam" / "closed_loop_trajectory.csv").write_text("")
    (tmp_path / "slam" / "semidense_points.csv.gz").write_bytes(b"")
    path = write_recovered(tmp_path / "r.npz", num_frames=12, samples=1, trajectory=str(tmp_path / "slam" / "x.csv"))
    assert load_recovered(path).point_cloud == tmp_path / "slam" / "semidense_points.csv.gz"


def test_png_strip(recovered: Path, tmp_path: Path, run_cli) -> None:
    from matplotlib.image import imread

    out = tmp_path / "strip.png"
    result = run_cli("view", str(recovered), "--png", str(out), "--frames", "4", "--sample", "1")
    assert result.exit_code == 0, result.stderr
    assert str(out) in result.stdout
    assert out.stat().st_size > 0 and not list(tmp_path.glob(".*tmp*"))  # no temporary file left
    image = imread(out)
    assert image.shape[:2] == (400, 4 * 320)
    assert image[..., :3].std() > 0.05  # not blank
    # the skeleton's colours are there: the left side blue, the right side red
    rgb = (image[..., :3] * 255).astype(int)
    assert ((rgb[..., 2] > 150) & (rgb[..., 0] < 80)).sum() > 50
    assert ((rgb[..., 0] > 160) & (rgb[..., 1] < 80)).sum() > 50


def test_render_strip_from_joints(tmp_path: Path) -> None:
    from matplotlib.image import imread

    from egogrpo.viz.png import render_strip_from_joints

    _, _, joints, T_world_cpf = _walk(20, phase=0.0)
    out = render_strip_from_joints(joints, tmp_path / "j.png", cpf=T_world_cpf[:, 4:], frames=3, size=(600, 300))
    assert imread(out).shape[:2] == (300, 600)
    with pytest.raises(EgogrpoError, match="at least 1"):
        render_strip_from_joints(joints, tmp_path / "k.png", frames=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_viewer_scene(recovered: Path) -> None:
    viser = pytest.importorskip("viser")
    from egogrpo.viz.viewer import bone_segments, build_scene

    view = load_recovered(recovered)
    server = viser.ViserServer(host="127.0.0.1", port=_free_port(), verbose=False)
    try:
        scene = build_scene(server, view, point_cloud=True)
        assert scene.point_cloud is None and any("no point cloud" in note for note in scene.notes)
        assert scene.sample_dropdown is not None  # two samples
        assert scene.skeleton.points.shape == (21, 2, 3)
        np.testing.assert_allclose(scene.skeleton.points, bone_segments(view.joints[0, 0]), atol=1e-5)
        assert scene.head_path.points.shape == (47, 2, 3)
        assert scene.floor.position[2] == pytest.approx(FLOOR_Z)

        scene.frame_slider.value = 30  # as a browser would: the callback redraws the frame
        np.testing.assert_allclose(scene.skeleton.points, bone_segments(view.joints[0, 30]), atol=1e-5)
        np.testing.assert_allclose(scene.head.position, view.cpf_positions[30], atol=1e-5)
        scene.sample_dropdown.value = "1"
        np.testing.assert_allclose(scene.skeleton.points, bone_segments(view.joints[1, 30]), atol=1e-5)
        assert not np.allclose(view.joints[0, 30], view.joints[1, 30])

        # playback: 0.5 s at 2× speed moves 30 frames on, wrapping around the end
        scene.speed_slider.value = 2.0
        scene.advance(0.5)
        assert scene.frame_slider.value == (30 + 30) % view.num_frames
        np.testing.assert_allclose(scene.skeleton.points, bone_segments(view.joints[1, 12]), atol=1e-5)
    finally:
        server.stop()


def test_point_cloud_of_the_mps_sample(sample_data: Path) -> None:
    pytest.importorskip("projectaria_tools")
    from egogrpo.viz.viewer import load_point_cloud

    path = sample_data / "aria" / "mps_sample" / "trajectory" / "global_points.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    points = load_point_cloud(path)  # 99,472 points, 22,081 of them confident
    assert points.shape == (22_081, 3) and points.dtype == np.float32 and np.isfinite(points).all()
    subset = load_point_cloud(path, max_points=1000)
    assert subset.shape == (1000, 3) and np.isin(subset[:, 0], points[:, 0]).all()


def test_serve_without_blocking(recovered: Path) -> None:
    pytest.importorskip("viser")
    from egogrpo.viz.viewer import serve

    messages: list[str] = []
    server = serve(load_recovered(recovered), port=_free_port(), block=False, log=messages.append)
    try:
        assert any(f"http://127.0.0.1:{server.get_port()}" in m for m in messages)
    finally:
        server.stop()


def test_view_command_serves_until_interrupted(recovered: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("viser")
    import time
    import types

    from egogrpo.viz import viewer

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(viewer, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=interrupt))
    port = _free_port()
    result = run_cli("view", str(recovered), "--port", str(port), "--sample", "1")
    assert result.exit_code == 0, result.stderr
    assert f"viewer at http://127.0.0.1:{port}" in result.stderr and "no point cloud shown" in result.stderr


def test_viewer_without_viser(recovered: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "viser", None)  # import viser → ImportError
    result = run_cli("view", str(recovered))
    assert result.exit_code == 1 and "pip install 'egogrpo[viewer]'" in result.stderr


def _text_file(tmp_path: Path, recovered: Path) -> Path:
    (tmp_path / "notes.txt").write_text("hello")
    return tmp_path / "notes.txt"


def _truncated(tmp_path: Path, recovered: Path) -> Path:
    path = tmp_path / "truncated.npz"
    path.write_bytes(recovered.read_bytes()[:4000])
    return path


def _without_joints(tmp_path: Path, recovered: Path) -> Path:
    with np.load(recovered) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "joints_world"}
    np.savez(tmp_path / "no_joints.npz", **arrays)
    return tmp_path / "no_joints.npz"


def _with_nan(tmp_path: Path, recovered: Path) -> Path:
    with np.load(recovered) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["joints_world"][1, 5, 3, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    return tmp_path / "nan.npz"


def _wrong_shape(tmp_path: Path, recovered: Path) -> Path:
    with np.load(recovered) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["Ts_world_cpf"] = arrays["Ts_world_cpf"][:-1]
    np.savez(tmp_path / "short.npz", **arrays)
    return tmp_path / "short.npz"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, rec: tmp / "missing.npz", "no such file"),
        (_text_file, "not a readable .npz"),
        (_truncated, "not a readable .npz"),
        (_without_joints, "missing key(s) joints_world"),
        (_with_nan, "joints_world holds non-finite values"),
        (_wrong_shape, "Ts_world_cpf has shape (47, 7), expected (T, 7)"),
    ],
    ids=["missing", "text", "truncated", "no-joints", "nan", "shape"],
)
def test_bad_input(make, message: str, recovered: Path, tmp_path: Path, run_cli) -> None:
    bad = make(tmp_path, recovered)
    result = run_cli("view", str(bad), "--png", str(tmp_path / "out.png"))
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert str(bad.name) in result.stderr and message in result.stderr
    assert not (tmp_path / "out.png").exists()


def test_bad_options(recovered: Path, tmp_path: Path, run_cli) -> None:
    result = run_cli("view", str(recovered), "--png", str(tmp_path / "o.png"), "--sample", "5")
    assert result.exit_code == 1 and "no sample 5" in result.stderr
    result = run_cli("view", str(recovered), "--png", str(tmp_path / "o.png"), "--frames", "0")
    assert result.exit_code == 1 and "at least 1" in result.stderr
