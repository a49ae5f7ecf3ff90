"""`egogrpo demo` on a fresh checkout: the embedded synthetic recording through recover, with files and a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egogrpo.recover.demo import synthetic_head_path


def test_demo_end_to_end(tmp_path: Path, run_cli) -> None:
    out = tmp_path / "demo"
    result = run_cli("demo", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    for name in ("recovered.npz", "joints.csv", "motion.bvh", "demo.png"):
        assert (out / name).stat().st_size > 1000, name
    npz = np.load(out / "recovered.npz")
    assert npz["Ts_world_cpf"].shape[0] == 12 * 30  # 12 s at 30 fps, the first frame only conditions
    # The recovered CPF is the synthetic head path, and the floor was found at z = 0 from the points.
    times, path = synthetic_head_path()
    frame_times = np.arange(1, 361) / 30
    expected = np.stack([np.interp(frame_times, times, path[:, 4 + axis]) for axis in range(3)], -1)
    np.testing.assert_allclose(npz["Ts_world_cpf"][:, 4:], expected, atol=1e-4)
    assert abs(float(npz["floor_z"])) < 0.01
    lowest = npz["joints_world"][0][:, [7, 8, 10, 11], 2].min(axis=1)
    assert abs(np.median(lowest)) < 0.1  # feet near the floor
    assert "view" in result.stdout
    # Earlier results are not replaced silently: the demo, view --png and eval --out refuse without --overwrite.
    before = (out / "demo.png").stat().st_mtime_ns
    again = run_cli("demo", "--out", str(out))
    assert again.exit_code == 1 and "holds an earlier demo (demo.png); pass --overwrite" in again.stderr
    assert (out / "demo.png").stat().st_mtime_ns == before
    assert run_cli("demo", "--out", str(out), "--overwrite").exit_code == 0
    strip = out / "strip.png"
    assert run_cli("view", str(out), "--png", str(strip)).exit_code == 0
    again = run_cli("view", str(out), "--png", str(strip))
    assert again.exit_code == 1 and f"--png {strip}: exists; pass --overwrite" in again.stderr
    assert run_cli("view", str(out), "--png", str(strip), "--overwrite").exit_code == 0
