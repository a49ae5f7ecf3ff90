"""train-prior end to end on real CMU clips with the tiny preset: exact resume, two processes, validation, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from egogrpo.config import DENOISER_PRESETS, TrainPriorConfig
from egogrpo.errors import EgogrpoError
from egogrpo.eval.windows import mean_pose_from_json, mean_pose_state
from egogrpo.train.batching import StepBatches
from egogrpo.train.prior import train_prior
from egogrpo.train.prior_loss import prior_loss

TINY = DENOISER_PRESETS["tiny"]


def _config(data: Path, run_dir: Path, **changes: object) -> TrainPriorConfig:
    base = dict(
        data=str(data), run_dir=str(run_dir), model=TINY, batch_size=4, max_steps=8, warmup_steps=4,
        log_every=1, val_every=0, checkpoint_every=4, learning_rate=1e-3,
    )  # fmt: skip
    base.update(changes)
    return TrainPriorConfig(**base)  # type: ignore[arg-type]


def _losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss/total"] for r in records}


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_interrupted_run_resumes_exactly(cmu_small: Path, tmp_path: Path, ema_decay: float) -> None:
    straight = train_prior(_config(cmu_small, tmp_path / "a", ema_decay=ema_decay))
    assert straight.final_step == 8 and (tmp_path / "a/checkpoints/step_0000008/model.safetensors").is_file()
    train_prior(_config(cmu_small, tmp_path / "b", max_steps=6, ema_decay=ema_decay))  # "killed" after step 6
    (tmp_path / "b/checkpoints/latest").write_text("step_0000004\n")  # pretend the crash came before step 6's save
    resumed = train_prior(_config(cmu_small, tmp_path / "b", resume=True, ema_decay=ema_decay))
    assert resumed.final_step == 8
    a, b = _losses(tmp_path / "a"), _losses(tmp_path / "b")
    assert sorted(b) == list(range(1, 9))  # steps 5–6 were dropped from the log and recomputed
    for step in range(1, 9):
        assert a[step] == b[step], (step, a[step], b[step])
    # The resumed run ends with the uninterrupted run's weights and optimizer state, bit for bit.
    final_a, final_b = (tmp_path / run / "checkpoints/step_0000008" for run in ("a", "b"))
    weights_a, weights_b = (load_file(folder / "model.safetensors") for folder in (final_a, final_b))
    assert sorted(weights_a) == sorted(weights_b)
    for name, tensor in weights_a.items():
        assert torch.equal(tensor, weights_b[name]), name
    state_a, state_b = (torch.load(folder / "training_state.pt", weights_only=True) for folder in (final_a, final_b))
    assert state_a["step"] == state_b["step"] == 8
    assert ("raw_model" in state_a) == (ema_decay > 0)
    for name, tensor in state_a.get("raw_model", {}).items():  # the raw weights behind the average, too
        assert torch.equal(tensor, state_b["raw_model"][name]), name
    assert state_a["optimizer"]["param_groups"] == state_b["optimizer"]["param_groups"]
    moments_a, moments_b = state_a["optimizer"]["state"], state_b["optimizer"]["state"]
    assert sorted(moments_a) == sorted(moments_b) and len(moments_a) > 0  # (frozen rotary tables have none)
    for index, moments in moments_a.items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(moments[key], moments_b[index][key]), (index, key)
    # …and differs from the weights at the checkpoint it resumed from (so the comparison can fail).
    resumed_from = load_file(tmp_path / "b/checkpoints/step_0000004/model.safetensors")
    assert any(not torch.equal(resumed_from[name], weights_b[name]) for name in weights_b)


def test_saved_weights_are_the_float64_moving_average_of_the_raw_weights(cmu_small: Path, tmp_path: Path) -> None:
    """ē_k = d_k·ē_(k−1) + (1 − d_k)·θ_k, d_k = min(d, (1+k)/(10+k)), ē from the initial weights, recomputed in
    float64 from the raw weights each step's training state keeps; the raw weights themselves differ from it."""
    decay = 0.5  # below the warm-up ramp's 0.1, 0.18, 0.25, 0.31: both branches of the min are taken
    train_prior(_config(cmu_small, tmp_path / "run", max_steps=4, checkpoint_every=1, ema_decay=decay))
    torch.manual_seed(0)
    from egogrpo.model.denoiser import EgoDenoiser

    average = {k: v.double() for k, v in EgoDenoiser(TINY).state_dict().items()}
    for step in range(4):
        folder = tmp_path / f"run/checkpoints/step_{step + 1:07d}"
        raw = torch.load(folder / "training_state.pt", weights_only=True)["raw_model"]
        d = min(decay, (1 + step) / (10 + step))
        saved = load_file(folder / "model.safetensors")
        for name, tensor in saved.items():
            average[name] = d * average[name] + (1 - d) * raw[name].double()
            torch.testing.assert_close(tensor.double(), average[name], rtol=0, atol=1e-6)
        assert any(not torch.equal(saved[name], raw[name]) for name in saved)


def test_validation_averages_sample_seeds_from_zero_for_every_run(cmu_small: Path) -> None:
    """Two val seeds are the mean of the per-window errors of sample seeds 0 and 1 (computed here from the
    samples), which differ from each other; PA-MPJPE is reported beside MPJPE; no training seed enters."""
    from egogrpo.body import load_body_model
    from egogrpo.config import SamplerConfig
    from egogrpo.eval.windows import joint_errors, split_windows
    from egogrpo.model.denoiser import EgoDenoiser
    from egogrpo.model.sampling import sample_states
    from egogrpo.train.validation import validation_errors

    torch.manual_seed(3)
    model, body = EgoDenoiser(TINY).eval(), load_body_model("default")
    crops = split_windows(str(cmu_small), "val", 128, 2).crops
    sampler = SamplerConfig(rule="ddim", num_steps=4)
    both = validation_errors(model, TINY, sampler, body, crops, 2)
    per_seed = [joint_errors(body, sample_states(model, TINY, sampler, crops, seed=s), crops) for s in (0, 1)]
    assert float(per_seed[0]["mpjpe"].mean()) != float(per_seed[1]["mpjpe"].mean())
    for key in ("mpjpe", "pa_mpjpe"):
        expected = float(torch.cat([e[key] for e in per_seed]).mean())
        assert both[f"val/{key}_mm"] == pytest.approx(expected, rel=1e-6), key


def test_validation_mpjpe_and_run_directory(cmu_small: Path, tmp_path: Path) -> None:
    train_prior(_config(cmu_small, tmp_path / "run", max_steps=4, val_every=2, checkpoint_every=2, val_windows=2))
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert 50 < records[-1]["val/mpjpe_mm"] < 2000 and 0 < records[-1]["val/pa_mpjpe_mm"] < records[-1]["val/mpjpe_mm"]
    # checkpoints/best names the saved step with the lowest val MPJPE
    val = {r["step"]: r["val/mpjpe_mm"] for r in records if "val/mpjpe_mm" in r}
    assert sorted(val) == [2, 4] and val[2] != val[4]
    best_step = min(val, key=val.__getitem__)
    assert (tmp_path / "run/checkpoints/best").read_text().strip() == f"step_{best_step:07d}"
    meta = json.loads((tmp_path / "run/meta.json").read_text())
    assert meta["world_size"] == 1 and "egogrpo_version" in meta
    config = json.loads((tmp_path / "run/config.json").read_text())
    assert config["model"]["d_latent"] == TINY.d_latent
    # The checkpoint carries the training split's mean pose (eval --baseline without the training file).
    extra = json.loads((tmp_path / "run/checkpoints/step_0000004/config.json").read_text())["extra"]
    carried = mean_pose_from_json(extra["mean_training_pose"], "checkpoint", TINY.num_betas)
    expected = mean_pose_state(str(cmu_small), ("train",), TINY.num_betas)
    torch.testing.assert_close(carried.betas, expected.betas)
    torch.testing.assert_close(carried.body_rotmats, expected.body_rotmats, atol=1e-6, rtol=0)
    with pytest.raises(EgogrpoError, match="exists and is not empty"):
        train_prior(_config(cmu_small, tmp_path / "run"))
    with pytest.raises(EgogrpoError, match="different settings"):
        train_prior(_config(cmu_small, tmp_path / "run", resume=True, learning_rate=5e-4))


def test_data_from_another_body_model_is_refused(cmu_small: Path, tmp_path: Path) -> None:
    from synthetic_body import write_synthetic_model

    smplh = tmp_path / "model.npz"
    write_synthetic_model(smplh)
    with pytest.raises(EgogrpoError, match="made with body model default"):
        train_prior(_config(cmu_small, tmp_path / "run", body=str(smplh)))
    with pytest.raises(EgogrpoError, match="shape parameters"):
        train_prior(_config(cmu_small, tmp_path / "run2", model=DENOISER_PRESETS["egoallo"]))


@pytest.mark.slow
def test_two_process_cpu_run(cmu_small: Path, tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "egogrpo", "train-prior", str(cmu_small),
        "--run-dir", str(tmp_path / "ddp"), "--preset", "tiny", "--batch-size", "4", "--max-steps", "4",
        "--log-every", "1", "--val-every", "0", "--checkpoint-every", "4",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    meta = json.loads((tmp_path / "ddp/meta.json").read_text())
    assert meta["world_size"] == 2
    assert sorted(_losses(tmp_path / "ddp")) == [1, 2, 3, 4]
    assert (tmp_path / "ddp/checkpoints/step_0000004/model.safetensors").is_file()


def test_step_batches_split_the_global_batch_over_ranks() -> None:
    full = StepBatches(10, 4, rank=0, world=1, seed=3, start=0, stop=5)
    halves = [StepBatches(10, 4, rank=r, world=2, seed=3, start=0, stop=5) for r in range(2)]
    for step in range(5):
        assert halves[0].batch_items(step) + halves[1].batch_items(step) == full.batch_items(step)
    epoch0 = [k for s in range(2) for k in full.batch_items(s)]
    assert len(set(epoch0)) == 8 and max(epoch0) < 10  # one epoch: distinct items, tail dropped
    assert min(full.batch_items(2)) >= 10  # the next epoch's items are offset by the epoch


def test_loss_matches_hand_computation() -> None:
    rng = np.random.default_rng(0)
    B, T, nb = 2, 5, 10
    D = nb + 189 + 21
    x0 = torch.from_numpy(rng.normal(size=(B, T, D)))
    x0_hat = torch.from_numpy(rng.normal(size=(B, T, D)))
    w = torch.tensor([1.0, 0.25], dtype=torch.float64)
    terms = prior_loss(x0_hat, x0, w, nb, include_hands=False)
    sq = ((x0_hat - x0) ** 2).numpy()
    coeff = 1.0 / np.arange(1, nb + 1)
    expect_betas = sum(w[b].item() * (sq[b, :, :nb] * coeff).mean(-1).sum() for b in range(B)) / (B * T)
    expect_body = sum(w[b].item() * sq[b, :, nb : nb + 189].mean(-1).sum() for b in range(B)) / (B * T)
    expect_contacts = sum(w[b].item() * sq[b, :, nb + 189 :].mean(-1).sum() for b in range(B)) / (B * T)
    assert float(terms["betas"]) == pytest.approx(expect_betas)
    assert float(terms["body_rotmats"]) == pytest.approx(expect_body)
    assert float(terms["total"]) == pytest.approx(0.1 * expect_betas + expect_body + 0.1 * expect_contacts)


def test_cli_refuses_bad_input_in_one_line(cmu_small: Path, tmp_path: Path, run_cli) -> None:
    from synthetic_body import write_synthetic_model

    smplh = tmp_path / "model.npz"
    write_synthetic_model(smplh)
    cases = [
        (["--body", str(smplh)], "made with body model default"),
        (["--preset", "huge"], "unknown --preset"),
    ]
    for extra, fragment in cases:
        result = run_cli("train-prior", str(cmu_small), "--run-dir", str(tmp_path / "run"), *extra)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 1 and len(lines) == 1 and fragment in lines[0], result.stderr
    missing = run_cli("train-prior", str(tmp_path / "absent.h5"), "--run-dir", str(tmp_path / "run"))
    assert missing.exit_code == 1 and "absent.h5" in missing.stderr
