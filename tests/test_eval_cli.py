"""`egogrpo eval` end to end: tables, the protocol record, EgoAllo's slicing, reference rows, baselines,
chunking, and bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from egogrpo.config import DENOISER_PRESETS, EvalConfig, PreprocessConfig, TrainPriorConfig
from egogrpo.data.preprocess import run_preprocess
from egogrpo.eval.evaluate import evaluate, load_protocol
from egogrpo.eval.windows import evaluation_windows, mean_pose_state, mean_pose_to_json
from egogrpo.fileio import sha256_of_file
from egogrpo.model.checkpoint import load_checkpoint, save_checkpoint
from egogrpo.train.prior import train_prior

TEST_SEQUENCE = "CMU/02/02_10"  # 661 frames, the test split of the fixture


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
    # Without the mean training pose train-prior records, so that the baseline tests reach the file's train split
    # (test_baseline_from_checkpoint_or_file covers a checkpoint that carries one).
    meta_file = Path(summary.last_checkpoint) / "config.json"
    meta = json.loads(meta_file.read_text())
    assert "mean_training_pose" in meta["extra"]
    del meta["extra"]["mean_training_pose"]
    meta_file.write_text(json.dumps(meta, indent=2) + "\n")
    return data, summary.last_checkpoint


def _rows(record: dict) -> dict[str, dict]:
    return {row["kind"] if row["kind"] != "checkpoint" else row["name"]: row for row in record["rows"]}


def test_eval_writes_tables_and_the_protocol_record(data_and_checkpoint, tmp_path: Path, run_cli) -> None:
    data, checkpoint = data_and_checkpoint
    out = tmp_path / "report"
    args = ("eval", str(checkpoint), "--data", str(data), "--protocol", "cmu-test", "--seeds", "2", "--baseline")
    result = run_cli(*args, "--out", str(out))
    assert result.exit_code == 0, result.stderr
    record = json.loads(out.with_suffix(".json").read_text())
    again = run_cli(*args, "--out", str(out))  # an earlier report is not replaced silently
    assert again.exit_code == 1 and f"--out {out}.json: exists; pass --overwrite" in again.stderr
    assert record["data"]["sha256"] == sha256_of_file(data)
    assert record["protocol"]["name"] == "cmu-test" and record["protocol"]["seeds"] == [0, 1]
    assert record["protocol"]["sampler"]["rule"] == "egoallo"
    assert record["stitching"]["window_rule"] == "aligned" and record["stitching"]["window"] == 128
    assert record["protocol"]["labels"] == "stored" and "joints_wrt_cpf" in record["labels"]
    assert record["data"]["windows"] == [f"{TEST_SEQUENCE}@{s}" for s in range(0, 661 - 127, 128)]
    assert record["baseline_pose"].startswith("train split of")
    metrics = {"mpjpe", "pa_mpjpe", "mpjve", "mpjre", "jitter", "gp", "fs", "float"}
    assert set(record["metrics"]) == metrics and "geodesic" in record["metrics"]["mpjre"]["definition"]
    assert "fps 30" in record["metrics"]["jitter"]["definition"] and "0.08 m" in record["metrics"]["fs"]["definition"]
    rows = _rows(record)
    assert list(rows) == ["ground_truth", "oracle", str(checkpoint), "baseline"]
    assert rows[str(checkpoint)]["weights_sha256"] and rows["baseline"]["weights_sha256"] is None
    # The ground-truth row has only the plausibility metrics of the real motion; the others have all.
    assert set(rows["ground_truth"]["metrics"]) == {"jitter", "gp", "fs", "float"}
    for name in ("oracle", str(checkpoint), "baseline"):
        assert set(rows[name]["metrics"]) == metrics
    model, baseline, oracle = (rows[k]["metrics"]["mpjpe"]["mean"] for k in (str(checkpoint), "baseline", "oracle"))
    assert (
        oracle < 0.01 < baseline
        and 0 < model < 2000
        and rows[str(checkpoint)]["metrics"]["mpjpe"]["standard_error"] > 0
    )
    # Real walking has its feet on the floor: contacts (so some skating) and a float of a few centimetres.
    truth = rows["ground_truth"]["metrics"]
    assert truth["fs"]["mean"] > 0 and 0 < truth["float"]["mean"] < 100
    markdown = out.with_suffix(".md").read_text()
    assert "| method |" in markdown and "sha256" in markdown and "| ground truth: the label motion | — |" in markdown
    csv = out.with_suffix(".csv").read_text().splitlines()
    assert csv[0].startswith("method,mpjpe_mean,mpjpe_standard_error") and len(csv) == 5
    # stdout is not a terminal here: the table is printed whole, as Markdown, one line per row.
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert len(table) == 5 and all(line.endswith(" |") and line.count(" | ") == 8 for line in table), result.stdout
    assert table[3].startswith(f"| {checkpoint} | ")  # a long checkpoint path is not cut or wrapped


def test_egoallo_round_robin_slicing_by_hand() -> None:
    # EgoAllo: S = 129-frame slices; of the N sequences with T ≥ S there are floor(ΣT / S) items; item i is
    # sequence i mod N at slice k = i div N, starting at (k·S) mod (T − S) (0 when T = S); the window skips
    # the slice's first frame (+1).
    # Lengths [129, 400]: ΣT = 529 → 4 items, N = 2:
    #   item 0 → seq 0, k 0: T − S = 0 → 0 → window at 1;  item 1 → seq 1, k 0: 0 → 1;
    #   item 2 → seq 0, k 1: T − S = 0 → 0 → 1 (the same window again);  item 3 → seq 1, k 1: 129 mod 271 → 130.
    assert evaluation_windows([129, 400], 128, "egoallo") == [(0, 1), (1, 1), (0, 1), (1, 130)]
    # Lengths [300, 140, 100]: the 100-frame sequence is left out; ΣT = 440 → 3 items, N = 2:
    #   seq 0 k 0 → 1; seq 1 k 0 → 1; seq 0 k 1: 129 mod 171 = 129 → 130.
    assert evaluation_windows([300, 140, 100], 128, "egoallo") == [(0, 1), (1, 1), (0, 130)]
    # Lengths [200, 3000]: ΣT = 3200 → 24 items, 12 per sequence (egogrpo's old per-sequence rule: 1 + 23).
    # Sequence 0 wraps: (k·129) mod 71 = 0, 58, 45, 32, 19, 6, 64, 51, 38, 25, 12, 70.
    items = evaluation_windows([200, 3000], 128, "egoallo")
    assert len(items) == 24 and [g for g, _ in items] == [0, 1] * 12
    assert [s - 1 for g, s in items if g == 0] == [0, 58, 45, 32, 19, 6, 64, 51, 38, 25, 12, 70]
    assert [s - 1 for g, s in items if g == 1] == [129 * k for k in range(12)]
    assert evaluation_windows([128, 50], 128, "egoallo") == []
    assert evaluation_windows([400, 127], 128, "windows") == [(0, 0), (0, 128), (0, 256)]
    assert load_protocol("motiongrpo").seeds == (0, 1, 2, 3, 4)
    egoallo = load_protocol("egoallo", seeds=2, samples=3)
    assert egoallo.seeds == (0, 1) and egoallo.samples == 3 and egoallo.length == 128
    assert egoallo.sampler.window_rule == "egoallo" and egoallo.labels == "state_fk" and egoallo.slicing == "egoallo"


def test_egoallo_protocol_windows_in_the_record(data_and_checkpoint) -> None:
    data, _ = data_and_checkpoint
    result = evaluate(EvalConfig(data=str(data), checkpoints=(), protocol="egoallo", split="all"))
    # Sequences in sorted name order (02_05, 02_06, 02_10), cut by the rule tested by hand above.
    with h5py.File(data) as f:
        lengths = {name: f[name]["T_world_root"].shape[0] for name in ("CMU/02/02_05", "CMU/02/02_06", TEST_SEQUENCE)}
    names = sorted(lengths)
    expected = [f"{names[g]}@{s}" for g, s in evaluation_windows([lengths[n] for n in names], 128, "egoallo")]
    kept = sum(t for t in lengths.values() if t >= 129)
    assert result.record["data"]["windows"] == expected and len(expected) == kept // 129
    assert result.record["stitching"]["window_rule"] == "egoallo" and [r.kind for r in result.rows] == [
        "ground_truth",
        "oracle",
    ]


def test_oracle_row_is_exact_on_cmu_with_state_fk_labels(data_and_checkpoint) -> None:
    """The ground-truth state placed on the ground-truth CPF reproduces EgoAllo's labels (FK of that state)."""
    data, _ = data_and_checkpoint
    result = evaluate(EvalConfig(data=str(data), checkpoints=(), protocol="egoallo"))
    oracle = {r.kind: r for r in result.rows}["oracle"].values
    assert oracle["mpjpe"][0] <= 0.01 and oracle["pa_mpjpe"][0] <= 0.01  # mm
    assert oracle["t_head"][0] <= 1e-5  # m
    assert result.protocol.labels == "state_fk" and len(result.record["data"]["windows"]) == 661 // 129


def test_chunked_results_equal_unchunked(data_and_checkpoint) -> None:
    """Each window keeps its noise streams whatever the chunking, so only float32 rounding of the batched
    denoiser differs (~1e-7 relative; windows drawing another window's noise move MPJPE by ~1 %)."""
    data, checkpoint = data_and_checkpoint
    base = dict(data=str(data), checkpoints=(str(checkpoint),), protocol="cmu-test", seeds=1)
    whole = evaluate(EvalConfig(**base, chunk_size=64))
    chunked = evaluate(EvalConfig(**base, chunk_size=2))  # 5 windows: chunks of 2, 2, 1
    assert len(whole.record["data"]["windows"]) == 5 and chunked.record["chunk_size"] == 2
    for a, b in zip(whole.rows, chunked.rows, strict=True):
        for k, (mean, error) in a.values.items():
            assert b.values[k][0] == pytest.approx(mean, rel=1e-5, abs=1e-4), k  # oracle: float32 noise
            assert b.values[k][1] == pytest.approx(error, rel=1e-4, abs=1e-4), k


@pytest.mark.slow
def test_paired_differences_line_up_windows_across_checkpoint_rows(data_and_checkpoint, tmp_path: Path) -> None:
    """The same checkpoint twice differs by exactly 0 per window (misaligned windows would not), and another model's
    paired mean equals the difference of the two rows' means (equal samples per window); the paired table is written."""
    data, checkpoint = data_and_checkpoint
    out = tmp_path / "paired"
    config = EvalConfig(
        data=str(data), checkpoints=(str(checkpoint), str(checkpoint), "default-prior"), protocol="cmu-test",
        seeds=2, chunk_size=2, out=str(out),
    )  # fmt: skip
    result = evaluate(config)
    paired = result.record["paired"]
    first, twin, other = (r for r in result.rows if r.kind == "checkpoint")
    assert paired["reference"] == first.name and first.values["mpjpe"][1] > 0
    same, different = paired["rows"][twin.name], paired["rows"][other.name]
    assert all(same[k]["mean"] == 0 and same[k]["standard_error"] == 0 for k in same)
    for k in ("mpjpe", "pa_mpjpe", "jitter"):
        expected = other.values[k][0] - first.values[k][0]
        assert different[k]["mean"] == pytest.approx(expected, rel=1e-6, abs=1e-9), k
        assert different[k]["standard_error"] > 0
    assert "Paired difference to" in out.with_suffix(".md").read_text()
    single = evaluate(dataclasses.replace(config, checkpoints=(str(checkpoint),), out=None))
    assert single.record["paired"] is None


@pytest.mark.slow
def test_polar_projection_and_bf16_are_recorded_and_close(data_and_checkpoint) -> None:
    """The faster sampler options change the numbers only by rounding (polar) or bf16's precision."""
    data, checkpoint = data_and_checkpoint
    base = dict(data=str(data), checkpoints=(str(checkpoint),), protocol="cmu-test", seeds=1)
    svd = evaluate(EvalConfig(**base))
    polar = evaluate(EvalConfig(**base, projection="polar"))
    fast = evaluate(EvalConfig(**base, projection="polar", bf16=True))
    assert svd.record["protocol"]["sampler"]["projection"] == "svd"
    assert polar.record["protocol"]["sampler"]["projection"] == "polar"
    assert fast.record["protocol"]["sampler"]["autocast"] is True
    mpjpe = [next(r for r in result.rows if r.kind == "checkpoint").values["mpjpe"][0] for result in (svd, polar, fast)]
    assert mpjpe[1] == pytest.approx(mpjpe[0], abs=0.01)  # mm: float32 rounding of the projection
    assert mpjpe[2] == pytest.approx(mpjpe[0], rel=0.05)  # bf16 forward passes
    assert mpjpe[2] != mpjpe[0]  # bf16 really ran


def test_split_lists_and_all(data_and_checkpoint) -> None:
    data, _ = data_and_checkpoint
    several = evaluate(EvalConfig(data=str(data), checkpoints=(), protocol="cmu-test", split="test,train"))
    everything = evaluate(EvalConfig(data=str(data), checkpoints=(), protocol="cmu-test", split="all"))
    names = {w.split("@")[0] for w in several.record["data"]["windows"]}
    assert names == {"CMU/02/02_05", "CMU/02/02_06", TEST_SEQUENCE}
    assert everything.record["data"]["windows"] == several.record["data"]["windows"]
    assert several.record["data"]["splits"] == ["test", "train"]


@pytest.mark.slow
def test_baseline_from_checkpoint_or_file(data_and_checkpoint, tmp_path: Path) -> None:
    """The mean training pose comes from a checkpoint's record or --baseline-from; both give the same row."""
    data, checkpoint = data_and_checkpoint
    model, config, meta = load_checkpoint(checkpoint)
    pose = mean_pose_to_json(mean_pose_state(str(data), ("train",), 10), "test")
    carrying = save_checkpoint(tmp_path / "ckpt", model, config, meta["body_model_id"], {"mean_training_pose": pose})
    base = dict(data=str(data), protocol="cmu-test", seeds=1, baseline=True, split="all")
    from_checkpoint = evaluate(EvalConfig(**base, checkpoints=(str(carrying),)))
    from_file = evaluate(EvalConfig(**base, checkpoints=(), baseline_from=str(_copy(data, tmp_path))))
    a, b = from_checkpoint.rows[-1], from_file.rows[-1]
    assert a.kind == b.kind == "baseline" and "extra.mean_training_pose" in from_checkpoint.record["baseline_pose"]
    assert a.values["mpjpe"][0] == pytest.approx(b.values["mpjpe"][0], abs=1e-3)  # mm, a float32 round trip
    assert a.values["mpjpe"][0] > 50  # a real baseline: far from the oracle


def _copy(data: Path, folder: Path) -> Path:
    copy = folder / "copy.h5"
    shutil.copy(data, copy)
    return copy


def _nan_cpf(data: Path, folder: Path) -> Path:
    bad = folder / "nan.h5"
    shutil.copy(data, bad)
    with h5py.File(bad, "r+") as f:
        cpf = f[TEST_SEQUENCE]["T_world_cpf"]
        values = cpf[()]
        values[10:20, 4] = np.nan
        cpf[...] = values
    return bad


def _without_train(data: Path, folder: Path) -> Path:
    only_test = folder / "only_test.h5"
    shutil.copy(data, only_test)
    with h5py.File(only_test, "r+") as f:
        for name in ("CMU/02/02_05", "CMU/02/02_06"):
            f[name].attrs["split"] = "val"
    return only_test


BAD_INPUT = {
    "unknown_protocol": (["--protocol", "nope"], "unknown protocol 'nope'"),
    "empty_split": (
        ["--protocol", "cmu-test", "--split", "val"],
        "split is empty; the file has: train (2), test (1) (choose one with --split)",
    ),
    "unknown_split": (["--split", "tset"], "unknown split 'tset'"),
    "zero_seeds": (["--seeds", "0"], "--seeds must be at least 1, got 0"),
    "zero_samples": (["--samples", "0"], "--samples must be at least 1, got 0"),
    "zero_chunk_size": (["--chunk-size", "0"], "--chunk-size must be at least 1, got 0"),
    "unknown_projection": (["--projection", "qr"], "--projection must be svd or polar, got 'qr'"),
    "bad_device": (["--device", "tpu"], "--device 'tpu'"),
    "missing_cuda": (["--device", "cuda:7"], "--device cuda:7: no such CUDA device"),
    "nan_cpf": ([], "NaN or infinite values"),
    "baseline_without_train": (["--baseline"], "has no 'train' split (it has: val, test)"),
    "baseline_of_evaluated_clips": (["--baseline", "--split", "all"], "would come from the clips being evaluated"),
    "baseline_from_without_train": (["--baseline"], "no 'train' split (the file has: val, test)"),
    "other_body_model": ([], "a checkpoint for body model smplh"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input(case: str, data_and_checkpoint, tmp_path: Path, run_cli) -> None:
    data, checkpoint = data_and_checkpoint
    extra, fragment = BAD_INPUT[case]
    if case == "nan_cpf":
        data = _nan_cpf(data, tmp_path)
    elif case == "baseline_without_train":
        data = _without_train(data, tmp_path)
    elif case == "baseline_from_without_train":
        extra = [*extra, "--baseline-from", str(_without_train(data, tmp_path))]
    elif case == "other_body_model":
        meta = json.loads((checkpoint / "config.json").read_text())
        checkpoint = tmp_path / "other"
        shutil.copytree(data_and_checkpoint[1], checkpoint)
        meta["body_model_id"] = "smplh"
        (checkpoint / "config.json").write_text(json.dumps(meta))
    out = tmp_path / "out" / "report"
    result = run_cli("eval", str(checkpoint), "--data", str(data), *extra, "--out", str(out))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_post_guidance_is_recorded_and_smooths(data_and_checkpoint, tmp_path: Path, run_cli) -> None:
    data, checkpoint = data_and_checkpoint
    reports = {}
    for guidance in ("none", "post"):
        out = tmp_path / guidance
        args = ("eval", str(checkpoint), "--data", str(data), "--protocol", "cmu-test", "--seeds", "1")
        result = run_cli(*args, "--guidance", guidance, "--out", str(out))
        assert result.exit_code == 0, result.stderr
        reports[guidance] = json.loads(out.with_suffix(".json").read_text())
    assert reports["post"]["protocol"]["guidance"] == "post"
    jitter = {g: _rows(r)[str(checkpoint)]["metrics"]["jitter"]["mean"] for g, r in reports.items()}
    assert jitter["post"] < jitter["none"]
    bad = run_cli("eval", str(checkpoint), "--data", str(data), "--guidance", "inner")
    assert bad.exit_code == 1 and "unknown guidance 'inner'" in bad.stderr


def test_report_paths_keep_a_dotted_name_and_replace_a_report_suffix(tmp_path: Path) -> None:
    from egogrpo.eval.evaluate import report_paths

    dotted = report_paths(tmp_path / "eval_alpha0.05")
    assert [p.name for p in dotted.values()] == ["eval_alpha0.05.json", "eval_alpha0.05.md", "eval_alpha0.05.csv"]
    named = report_paths(tmp_path / "table.md")
    assert [p.name for p in named.values()] == ["table.json", "table.md", "table.csv"]
    assert all(p.parent == tmp_path for p in (*dotted.values(), *named.values()))
