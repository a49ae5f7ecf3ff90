"""`egogrpo eval` end to end: tables, the protocol record, baselines, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from egogrpo.config import DENOISER_PRESETS, PreprocessConfig, TrainPriorConfig
from egogrpo.data.preprocess import run_preprocess
from egogrpo.eval.evaluate import load_protocol
from egogrpo.eval.windows import window_starts
from egogrpo.fileio import sha256_of_file
from egogrpo.train.prior import train_prior


@pytest.fixture(scope="module")
def data_and_checkpoint(sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Subject 02's clips preprocessed (02_05/02_06 train, 02_10 test) and a tiny prior trained for 2 steps."""
    root = tmp_path_factory.mktemp("eval")
    subject = root / "subjects" / "02"
    subject.mkdir(parents=True)
    for name in ("02.asf", "02_05.amc", "02_06.amc", "02_10.amc"):
        shutil.copy(sample_data / "cmu/asfamc/subjects/02" / name, subject / name)
    data = root / "cmu.h5"
    run_preprocess(PreprocessConfig(source="cmu", inputs=(str(root / "subjects"),), out=str(data), workers=1))
    config = TrainPriorConfig(
        data=str(data),
        run_dir=str(root / "run"),
        model=DENOISER_PRESETS["tiny"],
        batch_size=2,
        max_steps=2,
        val_every=0,
    )
    summary = train_prior(config)
    return data, summary.last_checkpoint


def test_eval_writes_tables_and_the_protocol_record(data_and_checkpoint, tmp_path: Path, run_cli) -> None:
    data, checkpoint = data_and_checkpoint
    out = tmp_path / "report"
    result = run_cli(
        "eval",
        str(checkpoint),
        "--data",
        str(data),
        "--protocol",
        "cmu-test",
        "--seeds",
        "2",
        "--baseline",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    assert "MPJPE" in result.stdout and "baseline" in result.stdout
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["data"]["sha256"] == sha256_of_file(data)
    assert record["protocol"]["name"] == "cmu-test" and record["protocol"]["seeds"] == [0, 1]
    assert record["protocol"]["sampler"]["rule"] == "egoallo" and record["stitching"] == {"window": 128, "overlap": 32}
    assert record["data"]["windows"] == [f"CMU/02/02_10@{s}" for s in range(0, 661 - 127, 128)]
    model_row, baseline_row = record["rows"]
    assert model_row["weights_sha256"] and baseline_row["weights_sha256"] is None
    for row in record["rows"]:
        assert set(row["metrics"]) == {"mpjpe", "pa_mpjpe", "mpjve", "mpjre", "jitter", "gp", "fs"}
        assert 0 < row["metrics"]["mpjpe"]["mean"] < 2000 and row["metrics"]["mpjpe"]["standard_error"] > 0
    markdown = out.with_suffix(".md").read_text()
    assert "| method |" in markdown and "sha256" in markdown
    assert out.with_suffix(".csv").read_text().splitlines()[0].startswith("method,mpjpe_mean,mpjpe_standard_error")


def test_egoallo_slicing_and_protocols() -> None:
    assert window_starts(400, 128, "windows") == [0, 128, 256]
    # EgoAllo: floor(T / 129) slices, slice k at (k·129) mod (T − 129), then skip its first frame.
    assert window_starts(400, 128, "egoallo") == [1, 130, 259]  # 0, 129, 258 (mod 271), each + 1
    assert window_starts(129, 128, "egoallo") == []
    assert load_protocol("motiongrpo").seeds == (0, 1, 2, 3, 4)
    assert load_protocol("egoallo", seeds=2, samples=3).seeds == (0, 1) and load_protocol("egoallo").length == 128


@pytest.mark.parametrize("case", ["unknown_protocol", "empty_split", "other_body_model"])
def test_bad_input(case: str, data_and_checkpoint, tmp_path: Path, run_cli) -> None:
    data, checkpoint = data_and_checkpoint
    args = [str(checkpoint), "--data", str(data)]
    if case == "unknown_protocol":
        args += ["--protocol", "nope"]
        fragment = "unknown protocol 'nope'"
    elif case == "empty_split":
        args += ["--protocol", "cmu-test", "--split", "val"]
        fragment = "split is empty"
    else:
        meta = json.loads((checkpoint / "config.json").read_text())
        other = tmp_path / "other"
        shutil.copytree(checkpoint, other)
        meta["body_model_id"] = "smplh"
        (other / "config.json").write_text(json.dumps(meta))
        args[0] = str(other)
        fragment = "a checkpoint for body model smplh"
    result = run_cli("eval", *args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and fragment in lines[0], result.stderr


def test_post_guidance_is_recorded_and_smooths(data_and_checkpoint, tmp_path: Path, run_cli) -> None:
    data, checkpoint = data_and_checkpoint
    reports = {}
    for guidance in ("none", "post"):
        out = tmp_path / guidance
        args = (
            "eval",
            str(checkpoint),
            "--data",
            str(data),
            "--protocol",
            "cmu-test",
            "--seeds",
            "1",
            "--guidance",
            guidance,
        )
        result = run_cli(*args, "--out", str(out))
        assert result.exit_code == 0, result.stderr
        reports[guidance] = json.loads(out.with_suffix(".json").read_text())
    assert reports["post"]["protocol"]["guidance"] == "post"
    jitter = {g: r["rows"][0]["metrics"]["jitter"]["mean"] for g, r in reports.items()}
    assert jitter["post"] < jitter["none"]
    bad = run_cli("eval", str(checkpoint), "--data", str(data), "--guidance", "inner")
    assert bad.exit_code == 1 and "unknown guidance 'inner'" in bad.stderr
