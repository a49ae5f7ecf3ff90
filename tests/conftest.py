"""Shared fixtures: where the real sample data lives, and an in-process CLI runner."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def sample_data_root() -> Path:
    """`$EGOGRPO_SAMPLE_DATA`, or `../shared/data` beside the repository."""
    return Path(os.environ.get("EGOGRPO_SAMPLE_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def sample_data() -> Path:
    root = sample_data_root()
    if not root.is_dir():
        pytest.skip(f"real sample data not found at {root} (set EGOGRPO_SAMPLE_DATA)")
    return root


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `egogrpo ARGS…` in-process through the real entry point; returns exit code and output."""
    from egogrpo.cli.main import main

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["egogrpo", *args])
        monkeypatch.setenv("COLUMNS", "200")
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    return run


@pytest.fixture(scope="session")
def cmu_small(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Subject 02's 02_05, 02_06 (train) and 02_09 (val) of the real CMU sample, preprocessed onto the default body."""
    import shutil

    from egogrpo.config import PreprocessConfig
    from egogrpo.data.preprocess import run_preprocess

    root = tmp_path_factory.mktemp("cmu")
    subject = root / "subjects" / "02"
    subject.mkdir(parents=True)
    for name in ("02.asf", "02_05.amc", "02_06.amc", "02_09.amc"):
        shutil.copy(sample_data / "cmu/asfamc/subjects/02" / name, subject / name)
    out = root / "cmu.h5"
    run_preprocess(PreprocessConfig(source="cmu", inputs=(str(root / "subjects"),), out=str(out), workers=1))
    return out
