"""Preprocessing speed: every CMU clip of the sample data (ASF/AMC, 120 fps) into one HDF5, on 2 workers, and
every free corpus of the sample data (`preprocess corpus data_manifests/free.json`) with its quality report.

Prints the wall times (targets: under 60 s and under 2 minutes on 2 CPU cores), the frames in and out, and the
file sizes.
Needs the sample data (`../shared/data` or `$EGOGRPO_SAMPLE_DATA`).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cmu_subjects

from egogrpo.config import PreprocessConfig
from egogrpo.data.asf_amc import read_asf_amc
from egogrpo.data.preprocess import run_preprocess


def main() -> None:
    subjects = cmu_subjects()
    if subjects is None:
        return
    amcs = sorted(subjects.rglob("*.amc"))
    start = time.perf_counter()
    frames_in = sum(read_asf_amc(next(a.parent.glob("*.asf")), a).num_frames for a in amcs)
    parse_only = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cmu.h5"
        config = PreprocessConfig(source="cmu", inputs=(str(subjects),), out=str(out), workers=2)
        start = time.perf_counter()
        summary = run_preprocess(config)
        wall = time.perf_counter() - start
        size = out.stat().st_size
    print(f"CMU sample data: {len(amcs)} clips, {frames_in} frames at 120 fps ({frames_in / 120 / 60:.1f} min)")
    print(f"parse only (1 process):             {parse_only:6.1f} s")
    print(f"preprocess, 2 workers, end to end:  {wall:6.1f} s   (target < 60 s)")
    print(
        f"written: {len(summary.written)} sequences, {summary.frames} frames at 30 fps; "
        f"{len(summary.excluded)} clips excluded by the manifest (shorter than one crop)"
    )
    print(f"HDF5 size: {size / 1e6:.1f} MB ({size / max(summary.frames, 1):.0f} bytes per stored frame)")
    free_corpora(subjects.parents[2])


def free_corpora(root: Path) -> None:
    """`preprocess corpus data_manifests/free.json` over the whole sample data, then the quality check."""
    from egogrpo.eval.data_check import check_motion_file

    manifest = Path(__file__).resolve().parents[1] / "data_manifests" / "free.json"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "free.h5"
        config = PreprocessConfig(
            source="corpus", inputs=(str(manifest),), out=str(out), workers=2, corpus_root=str(root),
            glitches="trim", skip_short=True,
        )  # fmt: skip
        start = time.perf_counter()
        summary = run_preprocess(config)
        wall = time.perf_counter() - start
        start = time.perf_counter()
        quality = check_motion_file(out)
        check = time.perf_counter() - start
        size = out.stat().st_size
    print(f"\nevery free corpus ({root}): data_manifests/free.json")
    print(f"preprocess corpus, 2 workers:       {wall:6.1f} s   (target < 120 s)")
    print(f"quality report:                     {check:6.1f} s")
    print(
        f"written: {len(summary.written)} sequences, {summary.frames / 30 / 60:.1f} min at 30 fps; "
        f"{len(summary.skipped_short)} clips shorter than one crop; {sum(bool(s.flags) for s in quality.sequences)} flagged; "
        f"{size / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
