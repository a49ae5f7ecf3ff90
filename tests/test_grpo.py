"""train-grpo end to end on real CMU clips with a tiny prior: reward gain, exact resume, two processes, bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from egogrpo.body import load_body_model
from egogrpo.config import (
    AUGMENT_PRESETS,
    DENOISER_PRESETS,
    AugmentConfig,
    PerlinConfig,
    SamplerConfig,
    TrainGRPOConfig,
)
from egogrpo.data.crops import MotionCropDataset
from egogrpo.errors import EgogrpoError
from egogrpo.model.checkpoint import load_checkpoint, save_checkpoint
from egogrpo.model.denoiser import EgoDenoiser
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim
from egogrpo.train.grpo import iteration_crops, log_prob_weights, train_grpo
from egogrpo.train.perlin import perturbed_condition
from egogrpo.train.rewards import JOINT_REWARDS, reward_terms
from egogrpo.train.update import trained_positions

TINY = DENOISER_PRESETS["tiny"]
FAST = SamplerConfig(rule="ddim", num_steps=5, eta=1.0)


@pytest.fixture(scope="module")
def tiny_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny prior for the default body (GRPO must improve it from scratch)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("prior") / "tiny"
    save_checkpoint(folder, EgoDenoiser(TINY), TINY, body_model_id=load_body_model("default").model_id)
    return folder


def _config(data: Path, prior: Path, run_dir: Path, **changes: object) -> TrainGRPOConfig:
    base = dict(
        prior=str(prior), data=str(data), run_dir=str(run_dir), iterations=4, group_size=4, batch_groups=2,
        learning_rate=1e-3, train_steps_per_trajectory=2, micro_batch=8, sampler=FAST, val_every=0,
        checkpoint_every=2, perlin=PerlinConfig(amplitude=0.1, scope="member"),
    )  # fmt: skip
    base.update(changes)
    return TrainGRPOConfig(**base)  # type: ignore[arg-type]


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(folder)[0].state_dict()


def _mean_joint_reward(checkpoint: Path, data: Path, config: TrainGRPOConfig, iterations: range) -> float:
    """Mean joint reward of fresh rollouts (fixed keys) on the crops of the given training iterations."""
    model, model_config, _ = load_checkpoint(checkpoint)
    body = load_body_model("default")
    dataset = MotionCropDataset(str(data), splits=("train",), crop_length=128, seed=config.seed, preload=True)
    policy = DiffusionPolicy(NoiseSchedule.cosine(), config.sampler, body_rotation_projection(model_config.num_betas))
    total = []
    for it in iterations:
        crops = iteration_crops(dataset, config, it)
        B, G = crops.T_world_cpf.shape[0], 8
        cond = perturbed_condition(
            crops, torch.zeros(B, G, 2, dtype=torch.long), PerlinConfig(amplitude=0.0), model_config
        )
        rollout = policy.rollout(model, cond, RolloutIds.grid(123, it, B, G), packed_dim(10, False), record=False)
        state = MotionState.unpack(rollout.final, model_config.num_betas, model_config.include_hands)
        terms = reward_terms(body, state, crops, config.reward)
        total.append(torch.stack([terms[n] for n in JOINT_REWARDS]).mean())
    return float(torch.stack(total).mean())


@pytest.mark.slow
def test_a_tiny_run_raises_the_joint_rewards_on_its_training_conditions(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path
) -> None:
    config = _config(cmu_small, tiny_prior, tmp_path / "run", iterations=24, checkpoint_every=24, group_size=8)
    summary = train_grpo(config)
    before = _mean_joint_reward(tiny_prior, cmu_small, config, range(24))
    after = _mean_joint_reward(summary.last_checkpoint, cmu_small, config, range(24))
    records = _records(tmp_path / "run")
    assert len(records) == 24 and all(r["ratio/max"] == pytest.approx(1.0, abs=1e-5) for r in records)
    assert after > before + 0.01, (before, after)


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(cmu_small: Path, tiny_prior: Path, tmp_path: Path) -> None:
    straight = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "a"))
    train_grpo(_config(cmu_small, tiny_prior, tmp_path / "b", iterations=3))  # "killed" after iteration 3 …
    (tmp_path / "b/checkpoints/latest").write_text("iter_0000002\n")  # … before iteration 3's state was saved
    resumed = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "b", resume=True))
    assert straight.final_iteration == resumed.final_iteration == 4
    a, b = _weights(straight.last_checkpoint), _weights(resumed.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [_strip_times(r) for r in _records(tmp_path / "a")] == [_strip_times(r) for r in _records(tmp_path / "b")]
    prior = _weights(tiny_prior)
    assert any(not torch.equal(a[k], prior[k]) for k in a)  # it did train


def _strip_times(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith(("seconds/", "time/"))}


#: Two-process launchers as a user would type them (accelerate's `--cpu` means one process: its multi-process
#: launcher is `--multi_gpu`, which on a machine without GPUs starts gloo processes on the CPU).
LAUNCHERS = {
    "torchrun": ["torchrun", "--standalone", "--nproc_per_node", "2"],
    "accelerate": ["accelerate", "launch", "--multi_gpu", "--num_machines", "1", "--num_processes", "2",
                   "--mixed_precision", "no", "--dynamo_backend", "no"],
}  # fmt: skip


def _one_iteration_run(run_dir: Path, head: list[str], cmu_small: Path, tiny_prior: Path) -> Path:
    """One iteration of a small train-grpo run started by `head` (a launcher and `-m egogrpo`), in `run_dir`."""
    command = [
        *head,
        "train-grpo", str(cmu_small), "--run-dir", str(run_dir), "--prior", str(tiny_prior), "--iterations", "1",
        "--group-size", "3", "--batch-groups", "2", "--train-steps", "2", "--lr", "1e-3", "--val-every", "0",
        "--checkpoint-every", "1", "--micro-batch", "2", "--perlin-scope", "member",
    ]  # fmt: skip
    out = subprocess.run(
        command, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def one_process_run(cmu_small: Path, tiny_prior: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process reference both launchers are compared with (run once)."""
    head = [sys.executable, "-m", "egogrpo"]
    return _one_iteration_run(tmp_path_factory.mktemp("grpo") / "one", head, cmu_small, tiny_prior)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_gloo_processes_give_the_same_update_as_one(
    launcher: str, one_process_run: Path, cmu_small: Path, tiny_prior: Path, tmp_path: Path
) -> None:
    program, *arguments = LAUNCHERS[launcher]
    head = [str(Path(sys.executable).with_name(program)), *arguments, "-m", "egogrpo"]
    _one_iteration_run(tmp_path / "two", head, cmu_small, tiny_prior)
    assert json.loads((tmp_path / "two/meta.json").read_text())["world_size"] == 2
    one, two = _records(one_process_run)[-1], _records(tmp_path / "two")[-1]
    for key in ("reward/total", "reward/rot", "group_std/pos", "degenerate_fraction", "diversity_m"):
        assert one[key] == pytest.approx(two[key], rel=1e-5, abs=1e-7), key
    # The denoiser's float32 results depend on the batch size at ~1e-6 (6 rows in one process, 3 per rank in
    # two); group normalisation amplifies that a little, so the gradients agree to ~1e-4, not bit for bit.
    assert one["grad_norm"] == pytest.approx(two["grad_norm"], rel=1e-3)
    assert one["loss"] == pytest.approx(two["loss"], abs=1e-4)  # −mean Â ≈ 0 at ρ = 1: only rounding remains
    assert one["trained_transitions"] == two["trained_transitions"] == 12  # 6 rollouts × 2 steps; groups span ranks
    a = _weights(one_process_run / "checkpoints/iter_0000001")
    b = _weights(tmp_path / "two/checkpoints/iter_0000001")
    prior = _weights(tiny_prior)
    delta_a = torch.cat([(a[k] - prior[k]).flatten() for k in a])
    delta_b = torch.cat([(b[k] - prior[k]).flatten() for k in a])
    assert delta_a.abs().max() > 1e-4  # the update is not trivially zero
    # Adam's first step is ≈ lr·sign(g): components with |g| near 0 may flip sign between the two runs.
    assert float(torch.nn.functional.cosine_similarity(delta_a, delta_b, dim=0)) > 0.999
    assert float(((delta_a - delta_b).abs() > 1e-6).float().mean()) < 0.02


def test_trained_positions_are_a_keyed_subset_per_row() -> None:
    config = _config(Path("x"), Path("y"), Path("z"), train_steps_per_trajectory=6)
    positions = trained_positions(config, iteration=3, epoch=0, num_rows=5, num_mdp=29)
    assert positions.shape == (5, 6) and all(len(set(row.tolist())) == 6 for row in positions)
    again = trained_positions(config, iteration=3, epoch=0, num_rows=2, num_mdp=29)
    assert torch.equal(positions[:2], again)  # a row's subset does not depend on how many rows there are
    assert not torch.equal(positions, trained_positions(config, iteration=4, epoch=0, num_rows=5, num_mdp=29))


def test_log_prob_field_weights() -> None:
    weights = log_prob_weights(TINY, ("body_rotmats",))
    assert weights.shape == (10 + 189 + 21,) and weights.sum() == 189 and weights[10:199].eq(1).all()
    assert log_prob_weights(TINY, None) is None
    with pytest.raises(EgogrpoError, match="unknown field"):
        log_prob_weights(TINY, ("hands",))


def test_the_output_is_a_normal_prior_checkpoint(cmu_small: Path, tiny_prior: Path, tmp_path: Path) -> None:
    summary = train_grpo(
        _config(cmu_small, tiny_prior, tmp_path / "run", iterations=1, checkpoint_every=1, val_every=1)
    )
    _, model_config, meta = load_checkpoint(summary.last_checkpoint)
    assert model_config == TINY and meta["extra"]["algorithm"] == "grpo" and meta["extra"]["iteration"] == 1
    records = _records(tmp_path / "run")
    assert records[0]["iteration"] == 0 and "val/mpjpe_mm" in records[0]  # the prior's own val error first
    assert "val/mpjpe_mm" in records[1] and (tmp_path / "run/reward_curves.png").stat().st_size > 1000
    diagnostics = {
        "reward/rot", "reward/pos", "reward/pos_pa", "reward/vel", "reward/total", "group_std/pos",
        "degenerate_fraction", "diversity_m", "ratio/mean", "ratio/min", "ratio/max", "clip_fraction", "approx_kl",
        "grad_norm", "seconds/rollout", "seconds/reward", "seconds/update", "val/pa_mpjpe_mm",
    }  # fmt: skip
    assert diagnostics <= set(records[1])
    assert (tmp_path / "run/checkpoints/latest").read_text().strip() == "iter_0000001"


def test_a_ratio_far_from_one_before_the_first_update_is_an_error() -> None:
    from egogrpo.train.rules.grpo import _check_first_ratio

    _check_first_ratio({"count": 4, "min": -1e-6, "max": 2e-6})  # float32 rounding of another layout: fine
    _check_first_ratio({"count": 0, "min": 1.0, "max": 1.0})  # nothing trained: nothing to check
    with pytest.raises(EgogrpoError, match="not 1 before the first update"):
        _check_first_ratio({"count": 4, "min": -0.05, "max": 0.0})  # e.g. a bf16 rollout


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--preset", "huge"], "unknown --preset"),
        (["--lr", "-0.001"], "--lr must be a finite positive number"),
        (["--lr", "nan"], "--lr must be a finite positive number"),
        (["--perlin-lambda", "-0.1"], "--perlin-lambda"),
        (["--perlin-scope", "frame"], "--perlin-scope"),
        (["--clip-range", "2"], "--clip-range"),
        (["--sde-window", "3"], "--sde-window must look like"),
        (["--sde-window", "5:2"], "stochastic_steps"),
        (["--log-prob-fields", "hands"], "unknown field"),
        (["--group-size", "1"], "--group-size must be ≥ 2"),
        (["--seed", "-1"], "--seed"),
        (["--std-floor", "0"], "--std-floor"),
        (["--iterations", "0"], "--iterations"),
        (["--batch-groups", "3", "--group-size", "3", "--micro-batch", "0"], "--micro-batch"),
        (["--prior", "/nonexistent/prior"], "/nonexistent/prior"),
        (["--resume"], "no run to resume"),
        (["--augment", "heavy"], "unknown --augment"),
    ],
)
def test_cli_refuses_bad_input_in_one_line(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path, run_cli, extra: list[str], fragment: str
) -> None:
    run_dir = tmp_path / "run"
    args = ["--prior", str(tiny_prior), *extra] if "--prior" not in extra else extra
    result = run_cli("train-grpo", str(cmu_small), "--run-dir", str(run_dir), *args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and fragment in lines[0], result.stderr
    assert not run_dir.exists() or not any(run_dir.iterdir())  # nothing left behind


def test_cli_refuses_a_missing_data_file_and_a_used_run_dir(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path, run_cli
) -> None:
    missing = run_cli("train-grpo", str(tmp_path / "absent.h5"), "--run-dir", str(tmp_path / "run"))
    assert missing.exit_code == 1 and "absent.h5" in missing.stderr
    used = tmp_path / "used"
    used.mkdir()
    (used / "something").write_text("x")
    result = run_cli("train-grpo", str(cmu_small), "--run-dir", str(used), "--prior", str(tiny_prior))
    assert result.exit_code == 1 and "not empty" in result.stderr


def test_config_validation_names_the_option(cmu_small: Path, tiny_prior: Path, tmp_path: Path) -> None:
    for changes, fragment in (
        ({"micro_batch": 0}, "--micro-batch"),
        ({"group_size": 1}, "--group-size must be ≥ 2"),
        ({"kl_weight": float("inf")}, "--kl-weight"),
        ({"train_steps_per_trajectory": 0}, "--train-steps"),
        ({"augment": AugmentConfig(mirror=1.5)}, "--mirror"),
    ):
        config = dataclasses.replace(_config(cmu_small, tiny_prior, tmp_path / "r"), **changes)
        with pytest.raises(EgogrpoError, match=fragment):
            train_grpo(config)
    assert not (tmp_path / "r").exists()


def test_validation_samples_with_the_full_sampler_not_the_sde_window(cmu_small: Path, tiny_prior: Path) -> None:
    from egogrpo.eval.windows import joint_errors, split_windows
    from egogrpo.model.sampling import sample_states
    from egogrpo.train.grpo import grpo_validation

    torch.set_num_threads(1)
    model, model_config, _ = load_checkpoint(tiny_prior)
    body = load_body_model("default")
    crops = split_windows(str(cmu_small), "val", 128, 2).crops
    windowed = _config(
        cmu_small, tiny_prior, Path("unused"), sampler=dataclasses.replace(FAST, stochastic_steps=(0, 1))
    )
    full = dataclasses.replace(windowed, sampler=FAST)
    record = grpo_validation(model, windowed, model_config, body, crops)
    assert record == grpo_validation(model, full, model_config, body, crops)
    # sampling with the window itself gives other numbers: the test can tell the two samplers apart
    states = sample_states(model, model_config, windowed.sampler, crops, seed=0)
    with_window = float(joint_errors(body, states, crops)["mpjpe"].mean())
    states = sample_states(model, model_config, FAST, crops, seed=0)
    assert abs(with_window - float(joint_errors(body, states, crops)["mpjpe"].mean())) > 1e-3


def test_augment_trains_on_augmented_crops(cmu_small: Path, tiny_prior: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    rewards = {}
    for name in ("plain", "again", "augmented"):
        augment = AUGMENT_PRESETS["standard" if name == "augmented" else "none"]
        config = _config(cmu_small, tiny_prior, tmp_path / name, iterations=1, checkpoint_every=1, augment=augment)
        train_grpo(config)
        rewards[name] = [_records(tmp_path / name)[0][f"reward/{k}"] for k in ("rot", "pos", "vel")]
    assert rewards["plain"] == rewards["again"]  # the same crops and keys: the same rewards
    assert rewards["augmented"] != rewards["plain"]  # mirrored / reshaped / retimed crops: other ground truth
