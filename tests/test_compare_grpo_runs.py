"""`egogrpo compare`: the compute-and-val table of post-training runs, against hand-worked rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egogrpo.train.compare import summary_row

# A run as train-grpo logs it: the iteration-0 validation without timing, then timed iterations, some validated.
RECORDS = [
    {"iteration": 0, "val/mpjpe_mm": 190.0},
    {"iteration": 1, "time/elapsed_s": 60.0, "time/cpu_s": 30.0},
    {"iteration": 2, "time/elapsed_s": 120.0, "time/cpu_s": 90.0, "val/mpjpe_mm": 185.5},
    {"iteration": 3, "time/elapsed_s": 240.0, "time/cpu_s": 150.0, "val/mpjpe_mm": 188.25},
]


def _write_run(folder: Path, records: list[dict]) -> Path:
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_summary_row_reads_start_best_end_and_last_minutes():
    # Worked by hand: last timed record is iteration 3 at 240 s wall (4.0 min), 150 s CPU (2.5 min); val starts at
    # 190.0, is lowest at iteration 2 (185.5) and ends at 188.25.
    row = summary_row("grpo", RECORDS)
    assert row == "| grpo | 3 | 4.0 | 2.5 | 190.00 | 185.50 (it. 2) | 188.25 |"


def test_summary_row_of_a_run_without_validation_says_nan():
    row = summary_row("bare", RECORDS[1:2])
    assert row == "| bare | 1 | 1.0 | 0.5 | nan | nan (it. —) | nan |"


def test_compare_prints_one_row_per_run_and_writes_a_png(tmp_path, run_cli):
    first = _write_run(tmp_path / "a", RECORDS)
    second = _write_run(tmp_path / "b", [{"iteration": 0, "val/mpjpe_mm": 170.0}, *RECORDS[1:2]])
    out = tmp_path / "curves.png"
    result = run_cli("compare", f"a={first}", f"b={second}", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert rows == [
        "| a | 3 | 4.0 | 2.5 | 190.00 | 185.50 (it. 2) | 188.25 |",
        "| b | 1 | 1.0 | 0.5 | 170.00 | 170.00 (it. 0) | 170.00 |",
    ]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = run_cli("compare", f"a={first}", "--out", str(out))
    assert again.exit_code == 1 and "pass --overwrite" in again.stderr


@pytest.mark.parametrize("problem", ["missing_metrics", "missing_out_folder"])
def test_compare_bad_input_is_one_line_and_writes_nothing(tmp_path, problem, run_cli):
    run = _write_run(tmp_path / "a", RECORDS) if problem != "missing_metrics" else tmp_path / "absent"
    out = tmp_path / ("no_such_file" if problem == "missing_out_folder" else "") / "curves.png"
    if problem == "missing_out_folder":
        (tmp_path / "no_such_file").write_text("a file, not a folder")
    result = run_cli("compare", f"a={run}", "--out", str(out))
    assert result.exit_code == 1
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message
    assert ("metrics.jsonl" in message) if problem == "missing_metrics" else ("--out" in message)
    assert not out.exists()
