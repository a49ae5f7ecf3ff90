"""`egogrpo demo`: the whole recovery on an embedded input, on a fresh machine, without any data download.

The synthetic Aria recording of `egogrpo.recover.demo` is written under `out/recording`, recovered
as a real recording is (nominal CPF calibration, floor from the points, the shipped default prior),
and drawn as a PNG strip. It lives here, above both `recover` and `viz`, so that neither imports
the other's way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from egogrpo.config import RecoverConfig
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import check_writable
from egogrpo.recover.demo import write_synthetic_recording
from egogrpo.recover.pipeline import OUTPUT_NPZ, RecoverResult, recover
from egogrpo.viz.motion_file import load_recovered
from egogrpo.viz.png import render_strip


@dataclass
class DemoResult:
    recording: Path
    recovered: RecoverResult
    png: Path


def run_demo(out: Path, overwrite: bool = False) -> DemoResult:
    """Write the synthetic recording under `out/recording`, recover it into `out`, and render `out/demo.png`.

    Outputs of an earlier demo in `out` are refused (EgogrpoError) unless `overwrite`."""
    out = Path(out)
    check_writable(out, "--out", folder=True)
    if not overwrite and (out / "demo.png").exists():
        raise EgogrpoError(f"--out {out}: holds an earlier demo (demo.png); pass --overwrite to replace it")
    recording = write_synthetic_recording(out / "recording")
    result = recover(
        RecoverConfig(recording=str(recording), out=str(out), write_csv=True, write_bvh=True, overwrite=overwrite)
    )
    png = out / "demo.png"
    render_strip(load_recovered(out / OUTPUT_NPZ), png)
    return DemoResult(recording, result, png)
