"""Run every benchmark in this folder (files named bench_*.py, or those named on the command line)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main(selected: list[str]) -> None:
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("bench_*.py")):
        if selected and path.stem not in selected:
            continue
        print(f"\n=== {path.stem} ===", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main()


if __name__ == "__main__":  # worker processes (spawn) re-import this file
    main(sys.argv[1:])
