"""End-to-end: `egogrpo --version`, `egogrpo body info` on both model sources, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic_body import make_synthetic_model, write_synthetic_model

from egogrpo import __version__
from egogrpo.body.topology import BODY_JOINT_NAMES, BODY_PARENTS


def test_version_and_help(run_cli) -> None:
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"egogrpo {__version__}"
    result = run_cli("--help")
    assert result.exit_code == 0 and "body" in result.stdout


def test_python_dash_m_entry_point() -> None:
    out = subprocess.run([sys.executable, "-m", "egogrpo", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"egogrpo {__version__}"


def test_version_does_not_import_torch() -> None:
    """`egogrpo --version` answers from the entry point alone (torch takes seconds to import)."""
    code = (
        "import sys; sys.argv = ['egogrpo', '--version']; from egogrpo.cli.entry import main; main(); "
        "assert 'torch' not in sys.modules and 'egogrpo.cli.main' not in sys.modules"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"egogrpo {__version__}"


def test_body_info_default(run_cli) -> None:
    result = run_cli("body", "info", "default", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["kind"] == "default" and info["num_joints"] == 22 and 4 <= info["num_betas"] <= 10
    assert [name for _, name, _ in info["joints"]] == list(BODY_JOINT_NAMES)
    parents = [None if p is None else BODY_JOINT_NAMES.index(p) for _, _, p in info["joints"]]
    assert parents == [None if p < 0 else p for p in BODY_PARENTS]
    for shape in info["shapes"]:
        assert 1.45 < shape["rest_height"] < 2.0, shape
        assert 0.06 < shape["rest_height"] - shape["cpf_height"] < 0.16, shape  # eyes below the crown
    table = run_cli("body", "info", "default")
    assert table.exit_code == 0 and "left_wrist" in table.stdout and "CPF" in table.stdout


def test_body_info_smplh_matches_numpy(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "model.npz"
    arrays = write_synthetic_model(path, kind="smplh", num_betas=16, seed=4)
    result = run_cli("body", "info", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["kind"] == "smplh" and info["num_joints"] == 52 and info["num_betas"] == 16 and info["has_hands"]
    assert info["mesh_vertices"] == 6890
    v = arrays["v_template"].astype(np.float64)
    zero = info["shapes"][0]
    assert zero["label"] == "β=0"
    assert zero["rest_height"] == pytest.approx(np.ptp(v[:, 1]), abs=1e-5)
    betas = np.zeros(16)
    betas[0] = 2.0
    v2 = v + arrays["shapedirs"].astype(np.float64) @ betas
    row = next(s for s in info["shapes"] if s["label"] == "β1=+2")
    assert row["rest_height"] == pytest.approx(np.ptp(v2[:, 1]), abs=1e-5)


@pytest.mark.parametrize("problem", ["missing", "truncated", "wrong_keys", "nan", "not_npz"])
def test_body_info_bad_input(run_cli, tmp_path: Path, problem: str) -> None:
    path = tmp_path / "model.npz"
    if problem == "truncated":
        np.savez(path, **make_synthetic_model(seed=1))
        path.write_bytes(path.read_bytes()[:5000])
    elif problem == "wrong_keys":
        np.savez(path, poses=np.zeros((2, 156)))
    elif problem == "nan":
        arrays = make_synthetic_model(seed=1)
        arrays["v_template"][0, 0] = np.nan
        np.savez(path, **arrays)
    elif problem == "not_npz":
        path = tmp_path / "model.txt"
        path.write_text("hello")
    result = run_cli("body", "info", str(path))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(path) in lines[0] and lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_console_script_reports_errors_without_traceback(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("egogrpo")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "egogrpo"]
    out = subprocess.run([*command, "body", "info", str(tmp_path / "absent.npz")], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "absent.npz" in out.stderr and "Traceback" not in out.stderr
