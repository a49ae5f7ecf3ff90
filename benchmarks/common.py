"""Helpers shared by the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path


def cmu_subjects() -> Path | None:
    """The CMU ASF/AMC subject folders of the sample data (`$EGOGRPO_SAMPLE_DATA` or ../shared/data), if present."""
    root = Path(os.environ.get("EGOGRPO_SAMPLE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    subjects = root / "cmu" / "asfamc" / "subjects"
    if not subjects.is_dir():
        print(f"sample data not found at {root}: skipped")
        return None
    return subjects
