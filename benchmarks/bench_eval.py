"""Evaluation speed: the CMU test split (cmu-test protocol, 3 seeds) with the shipped default prior on CPU.

Preprocesses the CMU sample clips first (not timed), then times `egogrpo eval` end to end.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cmu_subjects

from egogrpo.config import EvalConfig, PreprocessConfig
from egogrpo.data.preprocess import run_preprocess
from egogrpo.eval.evaluate import evaluate


def main() -> None:
    subjects = cmu_subjects()
    if subjects is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cmu.h5"
        run_preprocess(PreprocessConfig(source="cmu", inputs=(str(subjects),), out=str(data), workers=2))
        start = time.perf_counter()
        result = evaluate(EvalConfig(data=str(data), checkpoints=("default",), protocol="cmu-test", baseline=True))
        seconds = time.perf_counter() - start
    windows = len(result.record["data"]["windows"])
    seeds = len(result.protocol.seeds)
    print(f"cmu-test: {windows} windows × 128 frames × {seeds} seeds with the default prior: {seconds:.1f} s "
          f"({windows * 128 * seeds / seconds:.0f} frames/s, sampling and metrics)")  # fmt: skip
    for row in result.rows:
        print(f"  {row.name:<30} MPJPE {row.values['mpjpe'][0]:7.1f} ± {row.values['mpjpe'][1]:.1f} mm, "
              f"PA-MPJPE {row.values['pa_mpjpe'][0]:7.1f} ± {row.values['pa_mpjpe'][1]:.1f} mm")  # fmt: skip


if __name__ == "__main__":
    main()
