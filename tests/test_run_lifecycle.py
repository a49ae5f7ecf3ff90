"""What a training command does around its loop: Ctrl-C keeps a checkpoint and says how to continue, `--resume`
continues with the run's own settings (only what may change is taken from the command line), and the progress
callback advances every step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from egogrpo.config import DENOISER_PRESETS, TrainPriorConfig
from egogrpo.errors import EgogrpoError
from egogrpo.model.checkpoint import load_checkpoint
from egogrpo.train.prior import train_prior
from egogrpo.train.run_dir import resumed_config

COMMON = ["--preset", "tiny", "--batch-size", "4", "--log-every", "1", "--val-every", "0", "--checkpoint-every", "1000"]


def _egogrpo(*args: str) -> list[str]:
    return [sys.executable, "-m", "egogrpo", *args]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(folder)[0].state_dict()


@pytest.mark.slow
def test_ctrl_c_keeps_a_checkpoint_and_resume_continues_exactly_with_the_original_length(
    cmu_small: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = tmp_path / "run"
    process = subprocess.Popen(
        _egogrpo("train-prior", str(cmu_small), "--run-dir", str(run), "--max-steps", "40", *COMMON),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not metrics.is_file() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    stopped = len(metrics.read_text().splitlines())
    assert 3 <= stopped < 40
    kept = run / "checkpoints" / f"step_{stopped:07d}"
    assert kept.is_dir(), sorted(p.name for p in (run / "checkpoints").iterdir())
    assert f"interrupted at step {stopped}" in stderr and f"--run-dir {run} --resume" in stderr

    # --resume alone: the run's own 40 steps and batch size, not the command's defaults (10 000, 32)
    resumed = subprocess.run(
        _egogrpo("train-prior", str(cmu_small), "--run-dir", str(run), "--resume"),
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resumed from step {stopped} of 40" in resumed.stderr
    assert "trained to step 40" in resumed.stdout

    straight = train_prior(
        TrainPriorConfig(
            data=str(cmu_small), run_dir=str(tmp_path / "straight"), model=DENOISER_PRESETS["tiny"], batch_size=4,
            max_steps=40, log_every=1, val_every=0, checkpoint_every=1000,
        )
    )  # fmt: skip
    a, b = _weights(straight.last_checkpoint), _weights(run / "checkpoints" / "step_0000040")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_takes_resumable_options_and_refuses_to_change_the_others(cmu_small: Path, tmp_path: Path) -> None:
    config = TrainPriorConfig(
        data=str(cmu_small), run_dir=str(tmp_path / "run"), model=DENOISER_PRESETS["tiny"], batch_size=4, max_steps=2,
        log_every=1, val_every=0, checkpoint_every=1,
    )  # fmt: skip
    train_prior(config)
    from egogrpo.train.prior import RESUMABLE

    fresh = TrainPriorConfig(data=str(cmu_small), run_dir=str(tmp_path / "run"), resume=True)  # the CLI's defaults
    resumed = resumed_config(fresh, {"max_steps": 5}, RESUMABLE)
    assert resumed.max_steps == 5 and resumed.batch_size == 4 and resumed.model == DENOISER_PRESETS["tiny"]
    assert resumed.resume
    assert resumed_config(fresh, {"batch_size": 4}, RESUMABLE).batch_size == 4  # the same value may be retyped
    with pytest.raises(EgogrpoError, match=r"cannot change learning_rate \(the run has 0.0001\)"):
        resumed_config(fresh, {"learning_rate": 0.1}, RESUMABLE)
    import shutil

    shutil.copytree(tmp_path / "run", tmp_path / "moved")  # a moved run folder resumes where it is now
    moved = TrainPriorConfig(data=str(cmu_small), run_dir=str(tmp_path / "moved"), resume=True)
    assert resumed_config(moved, {}, RESUMABLE).run_dir == str(tmp_path / "moved")
    with pytest.raises(EgogrpoError, match="no run to resume here"):
        resumed_config(TrainPriorConfig(data="x", run_dir=str(tmp_path / "absent"), resume=True), {}, RESUMABLE)


def test_resume_on_the_command_line_refuses_a_changed_setting_in_one_line(
    cmu_small: Path, tmp_path: Path, run_cli
) -> None:
    run = tmp_path / "run"
    first = run_cli("train-prior", str(cmu_small), "--run-dir", str(run), "--max-steps", "1", *COMMON)
    assert first.exit_code == 0, first.stderr
    result = run_cli("train-prior", str(cmu_small), "--run-dir", str(run), "--resume", "--lr", "0.5")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and "cannot change learning_rate" in lines[0], result.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["learning_rate"] == 1e-4  # untouched


def test_the_progress_callback_advances_every_step(cmu_small: Path, tmp_path: Path) -> None:
    calls: list[int] = []
    config = TrainPriorConfig(
        data=str(cmu_small), run_dir=str(tmp_path / "run"), model=DENOISER_PRESETS["tiny"], batch_size=4, max_steps=6,
        log_every=3, val_every=0, checkpoint_every=6,
    )  # fmt: skip
    train_prior(config, progress=lambda done, total, record: calls.append(done))
    assert calls == [1, 2, 3, 4, 5, 6]


def test_eval_progress_counts_windows_from_zero(cmu_small: Path, tmp_path: Path) -> None:
    import test_grpo

    from egogrpo.body import load_body_model
    from egogrpo.config import EvalConfig
    from egogrpo.eval.evaluate import evaluate
    from egogrpo.model.checkpoint import save_checkpoint
    from egogrpo.model.denoiser import EgoDenoiser

    torch.manual_seed(0)
    prior = save_checkpoint(
        tmp_path / "tiny",
        EgoDenoiser(test_grpo.TINY),
        test_grpo.TINY,
        body_model_id=load_body_model("default").model_id,
    )
    calls: list[tuple[int, int]] = []
    config = EvalConfig(
        data=str(cmu_small), checkpoints=(str(prior),), protocol="cmu-test", split="val", seeds=2, chunk_size=1
    )
    result = evaluate(config, progress=lambda done, total, text: calls.append((done, total)))
    windows = len(result.record["data"]["windows"])
    assert calls == [(k, 2 * windows) for k in range(2 * windows + 1)]


def test_sampling_and_refinement_report_every_step() -> None:
    from egogrpo.config import RefineConfig, SamplerConfig
    from egogrpo.model.policy import DiffusionPolicy
    from egogrpo.model.schedule import NoiseSchedule

    steps: list[tuple[int, int]] = []
    policy = DiffusionPolicy(NoiseSchedule.cosine(), SamplerConfig(rule="ddim", num_steps=4, window=8, overlap=0))
    policy.sample(lambda x, t, c: 0.5 * x, torch.zeros(1, 8, 3), 5, seed=0, on_step=lambda k, n: steps.append((k, n)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    from egogrpo.body import load_body_model
    from egogrpo.model.refine import refine
    from egogrpo.model.state import MotionState

    body = load_body_model("default")
    state = MotionState(torch.zeros(1, 6, 10), torch.eye(3).expand(1, 6, 21, 3, 3).clone(), torch.zeros(1, 6, 21))
    cpf = torch.tensor([1.0, 0, 0, 0, 0, 0, 1.6]).expand(1, 6, 7)
    iterations: list[tuple[int, int]] = []
    refine(body, state, cpf, RefineConfig(iterations=3), on_step=lambda i, n: iterations.append((i, n)))
    assert iterations == [(1, 3), (2, 3), (3, 3)]
