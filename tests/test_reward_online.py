"""train-grpo --reward CKPT --reward-online: the perceptual scorer keeps learning from the current policy.

The scorer's weights change on the update cadence and its EMA equals a float64 replay of the recurrence; the
negatives are the x̂₀ of the current policy's last three sampling steps in the same iteration (an independent
replay of the rollout); the visual reward comes from the EMA copy; two gloo processes give the same run as one;
a killed run resumes exactly (scorer, EMA and the scorer's optimizer); the held-out correlation of the visual
reward with val MPJPE matches a float64 recomputation; bad combinations are refused before any work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import test_grpo
import torch
from test_grpo import _config, _records, _strip_times, _weights

from egogrpo.body import load_body_model
from egogrpo.config import PERCEPTUAL_PRESETS, TrainGRPOConfig
from egogrpo.data.crops import MotionCropDataset
from egogrpo.errors import EgogrpoError
from egogrpo.eval.windows import split_windows
from egogrpo.model.checkpoint import load_checkpoint
from egogrpo.model.perceptual import PerceptualModel, load_perceptual, save_perceptual, score, state_inputs
from egogrpo.model.placement import placed_joints
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.sampling import sample_states
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim
from egogrpo.train import online_scorer
from egogrpo.train.grpo import iteration_crops, train_grpo
from egogrpo.train.perlin import perlin_keys, perturbed_condition

tiny_prior = test_grpo.tiny_prior  # the fixture: a random tiny prior for the default body
CROP = 32  # frames: short crops keep every run to seconds


@pytest.fixture(scope="module")
def scorer_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny perceptual model: where --reward-online starts."""
    torch.manual_seed(4)
    return save_perceptual(tmp_path_factory.mktemp("scorer") / "tiny", PerceptualModel(PERCEPTUAL_PRESETS["tiny"]))


def _online(data: Path, prior: Path, scorer: Path, run_dir: Path, **changes: object) -> TrainGRPOConfig:
    base: dict[str, object] = dict(
        crop_length=CROP, reward_model=str(scorer), reward_online=True, reward_update_every=1,
        reward_learning_rate=1e-3, reward_ema_decay=0.6, checkpoint_every=1,
    )  # fmt: skip
    base.update(changes)
    return _config(data, prior, run_dir, **base)


def _perceptual(folder: Path) -> dict[str, torch.Tensor]:
    return load_perceptual(folder)[0].state_dict()


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_the_scorer_learns_on_its_cadence_and_its_ema_is_the_recurrence(
    cmu_small: Path, tiny_prior: Path, scorer_checkpoint: Path, tmp_path: Path
) -> None:
    config = _online(cmu_small, tiny_prior, scorer_checkpoint, tmp_path / "run", iterations=4, reward_update_every=2)
    train_grpo(config)
    records = _records(tmp_path / "run")
    updated = [r["iteration"] for r in records if "reward_model/loss" in r]
    assert updated == [2, 4]
    for r in records:
        if "reward_model/loss" in r:  # a random prior's samples: no false negatives, every pair counts
            assert r["reward_model/pairs"] == 8 and r["reward_model/dropped_negatives"] == 0, r
            assert 0 <= r["reward_model/accuracy"] <= 1 and r["reward_model/grad_norm"] > 0
    folders = [tmp_path / "run" / "checkpoints" / f"iter_{i:07d}" for i in range(1, 5)]
    initial = _perceptual(scorer_checkpoint)
    online = [_perceptual(f / online_scorer.ONLINE_FOLDER) for f in folders]
    ema = [_perceptual(f / online_scorer.EMA_FOLDER) for f in folders]
    # the scorer moves at iterations 2 and 4 only
    assert _equal(online[0], initial) and _equal(online[2], online[1]) and _equal(ema[0], initial)
    assert not _equal(online[1], online[0]) and not _equal(online[3], online[2])
    # ē_k = d·ē_{k−1} + (1 − d)·φ_k in float64 from the starting checkpoint, over the two updates
    d = config.reward_ema_decay
    for name in initial:
        expected = initial[name].double()
        for k in (1, 3):
            expected = d * expected + (1 - d) * online[k][name].double()
            torch.testing.assert_close(ema[k][name].double(), expected, atol=2e-7, rtol=1e-6, msg=name)
    moved = max(float((online[3][n] - initial[n]).abs().max()) for n in initial)
    lag = max(float((online[3][n] - ema[3][n]).abs().max()) for n in initial)
    assert moved > 1e-3 and lag > 1e-4  # it learned, and the EMA trails it


def _replayed_rollout(config: TrainGRPOConfig, data: Path, checkpoint: Path, iteration: int):
    """The rollout of `iteration` by the policy in `checkpoint`, replayed outside the loop (one process)."""
    model, model_config, _ = load_checkpoint(checkpoint)
    dataset = MotionCropDataset(str(data), splits=("train",), crop_length=CROP, seed=config.seed, preload=True)
    crops = iteration_crops(dataset, config, iteration)
    B, G = config.batch_groups, config.group_size
    keys = perlin_keys(config.seed, iteration, torch.arange(B), torch.arange(G), config.perlin.scope)
    cond = perturbed_condition(crops, keys, config.perlin, model_config).flatten(0, 1)
    rows = torch.arange(B * G)
    ids = RolloutIds(config.seed, iteration, rows // G, (rows % G)[:, None], config.share_initial_noise)
    policy = DiffusionPolicy(NoiseSchedule.cosine(), config.sampler, body_rotation_projection(model_config.num_betas))
    D = packed_dim(model_config.num_betas, model_config.include_hands)
    return policy.rollout(model, cond[:, None], ids, D, record=True), crops, model_config


def test_negatives_are_this_iterations_policy_x0_at_its_last_three_steps(
    cmu_small: Path, tiny_prior: Path, scorer_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[torch.Tensor] = []
    update = online_scorer.OnlineScorer.update

    def spy(self, crops, negatives, local_rows, accelerator):
        seen.append(negatives.pack()[:, 0].clone())  # (n, L, D) as the update received them
        return update(self, crops, negatives, local_rows, accelerator)

    monkeypatch.setattr(online_scorer.OnlineScorer, "update", spy)
    config = _online(cmu_small, tiny_prior, scorer_checkpoint, tmp_path / "run", iterations=3)
    train_grpo(config)
    assert len(seen) == 3
    checkpoints = [tiny_prior, *(tmp_path / "run" / "checkpoints" / f"iter_{i:07d}" for i in (1, 2))]
    steps_used = set()
    for iteration in range(3):
        last = _replayed_rollout(config, cmu_small, checkpoints[iteration], iteration)[0].x0_hat_last[:, 0]
        for row, negative in enumerate(seen[iteration]):
            matches = [k for k in range(3) if torch.allclose(negative, last[row, k], atol=1e-6, rtol=0)]
            assert len(matches) == 1, (iteration, row, matches)
            steps_used.add(matches[0])
    assert steps_used == {0, 1, 2}  # each of the last three steps is drawn
    # not the previous policy's rollout of the same iteration, nor the current policy's of the previous iteration
    stale_policy = _replayed_rollout(config, cmu_small, tiny_prior, 2)[0].x0_hat_last[:, 0]
    stale_iteration = _replayed_rollout(config, cmu_small, checkpoints[2], 1)[0].x0_hat_last[:, 0]
    for other in (stale_policy, stale_iteration):
        gap = (seen[2][:, None] - other).abs().amax(dim=(-1, -2)).min()
        assert float(gap) > 1e-3


def test_the_visual_reward_comes_from_the_ema_copy(
    cmu_small: Path, tiny_prior: Path, scorer_checkpoint: Path, tmp_path: Path
) -> None:
    config = _online(cmu_small, tiny_prior, scorer_checkpoint, tmp_path / "run", iterations=2, reward_ema_decay=0.5)
    train_grpo(config)
    record = _records(tmp_path / "run")[1]  # iteration 2: scored after iteration 1's scorer update
    folder = tmp_path / "run" / "checkpoints" / "iter_0000001"
    rollout, crops, model_config = _replayed_rollout(config, cmu_small, folder, 1)
    final = MotionState.unpack(rollout.final[:, 0], model_config.num_betas, model_config.include_hands)
    groups = torch.arange(config.batch_groups * config.group_size) // config.group_size
    T_world_cpf = crops.T_world_cpf[groups]
    quats, joints = state_inputs(load_body_model("default"), final, T_world_cpf)

    def mean_reward(model_folder: Path) -> float:
        s = score(load_perceptual(model_folder)[0], quats, joints, T_world_cpf).double()
        return float(torch.exp(s).mean())  # ω_vis = 1

    by_ema, by_online = mean_reward(folder / "reward_ema"), mean_reward(folder / "reward_online")
    assert record["reward/vis"] == pytest.approx(by_ema, rel=1e-5)
    assert abs(by_online - by_ema) > 1e-3 * by_ema  # the two copies do disagree: the test can tell them apart


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(
    cmu_small: Path, tiny_prior: Path, scorer_checkpoint: Path, tmp_path: Path
) -> None:
    """The resumed iterations take scorer steps: without the scorer's AdamW moments they would differ."""
    straight = train_grpo(_online(cmu_small, tiny_prior, scorer_checkpoint, tmp_path / "a", iterations=3))
    train_grpo(_online(cmu_small, tiny_prior, scorer_checkpoint, tmp_path / "b", iterations=2))  # killed …
    (tmp_path / "b/checkpoints/latest").write_text("iter_0000001\n")  # … before iteration 2's state was saved
    resumed = train_grpo(_online(cmu_small, tiny_prior, scorer_checkpoint, tmp_path / "b", iterations=3, resume=True))
    assert resumed.final_iteration == 3
    assert _equal(_weights(straight.last_checkpoint), _weights(resumed.last_checkpoint))
    for name in (online_scorer.ONLINE_FOLDER, online_scorer.EMA_FOLDER):
        assert _equal(_perceptual(straight.last_checkpoint / name), _perceptual(resumed.last_checkpoint / name))
    assert [_strip_times(r) for r in _records(tmp_path / "a")] == [_strip_times(r) for r in _records(tmp_path / "b")]
    assert not _equal(_perceptual(straight.last_checkpoint / "reward_online"), _perceptual(scorer_checkpoint))


WORKER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_reward_online import _online
from egogrpo.train.grpo import train_grpo
train_grpo(_online(Path({data!r}), Path({prior!r}), Path({scorer!r}), Path({run!r}), **{changes!r}))
"""
#: 3 groups × 4 members over 2 processes: 6 rows each, so group 1 spans both ranks (its positive is scored by
#: rank 0, two of its negatives by rank 1); the second iteration is scored by the EMA after the first update.
SPLIT = dict(iterations=2, group_size=4, batch_groups=3, micro_batch=2)


@pytest.mark.slow
def test_two_gloo_processes_equal_one(
    cmu_small: Path, tiny_prior: Path, scorer_checkpoint: Path, tmp_path: Path
) -> None:
    train_grpo(_online(cmu_small, tiny_prior, scorer_checkpoint, tmp_path / "one", **SPLIT))
    script = tmp_path / "worker.py"
    paths = dict(data=cmu_small, prior=tiny_prior, scorer=scorer_checkpoint, run=tmp_path / "two")
    script.write_text(
        WORKER.format(tests=str(Path(__file__).parent), changes=SPLIT, **{k: str(v) for k, v in paths.items()})
    )
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "meta.json").read_text())["world_size"] == 2
    for one, two in zip(_records(tmp_path / "one"), _records(tmp_path / "two"), strict=True):
        assert one["reward_model/pairs"] == two["reward_model/pairs"] == 12
        assert one["reward_model/wrong_count"] == two["reward_model/wrong_count"]
        for key in ("reward_model/loss", "reward_model/grad_norm", "reward_model/score_gt", "reward/vis"):
            assert one[key] == pytest.approx(two[key], rel=1e-4), key
    initial = _perceptual(scorer_checkpoint)
    for name in (online_scorer.ONLINE_FOLDER, online_scorer.EMA_FOLDER):
        a = _perceptual(tmp_path / "one" / "checkpoints" / "iter_0000002" / name)
        b = _perceptual(tmp_path / "two" / "checkpoints" / "iter_0000002" / name)
        delta_a = torch.cat([(a[k] - initial[k]).flatten() for k in a])
        delta_b = torch.cat([(b[k] - initial[k]).flatten() for k in a])
        assert delta_a.abs().max() > 1e-4, name  # it trained
        # Adam turns the float rounding of a ~0 gradient (e.g. attention key biases) into ±lr steps: compare the
        # direction of the whole update, as for the policy
        assert float(torch.nn.functional.cosine_similarity(delta_a, delta_b, dim=0)) > 0.9999, name


def _val_correlation(data: Path, config: TrainGRPOConfig, policy: Path, scorer: Path) -> float:
    """Pearson correlation (float64) of exp(s) and MPJPE over the val windows × seeds, recomputed from scratch."""
    windows = split_windows(str(data), config.val_split, config.crop_length, config.val_windows)
    model, model_config, _ = load_checkpoint(policy)
    body = load_body_model("default")
    perceptual = load_perceptual(scorer)[0]
    rewards, errors = [], []
    for seed in range(config.val_seeds):
        state = sample_states(model, model_config, config.sampler, windows.crops, seed=seed)
        predicted, truth = placed_joints(body, state, windows.crops)  # (N, 1, T, 22, 3)
        errors.append((predicted - truth).double().norm(dim=-1).mean(dim=(-1, -2))[:, 0])
        quats, joints = state_inputs(body, state, windows.crops.T_world_cpf[:, None])
        s = score(perceptual, quats[:, 0], joints[:, 0], windows.crops.T_world_cpf)
        rewards.append(torch.exp(s.double()))
    return float(np.corrcoef(torch.cat(rewards).numpy(), torch.cat(errors).numpy())[0, 1])


@pytest.mark.parametrize("online", [False, True])
def test_the_held_out_guard_correlates_the_visual_reward_with_val_mpjpe(
    cmu_small: Path, tiny_prior: Path, scorer_checkpoint: Path, tmp_path: Path, online: bool
) -> None:
    changes = dict(iterations=1, val_every=1, val_windows=3, val_seeds=2)
    if online:
        config = _online(cmu_small, tiny_prior, scorer_checkpoint, tmp_path / "run", **changes)
    else:
        config = _config(
            cmu_small, tiny_prior, tmp_path / "run", crop_length=CROP, reward_model=str(scorer_checkpoint), **changes
        )
    train_grpo(config)
    first, last = _records(tmp_path / "run")
    folder = tmp_path / "run" / "checkpoints" / "iter_0000001"
    scorer_after = folder / online_scorer.EMA_FOLDER if online else scorer_checkpoint
    expected_first = _val_correlation(cmu_small, config, tiny_prior, scorer_checkpoint)
    expected_last = _val_correlation(cmu_small, config, folder, scorer_after)
    assert first["val/vis_mpjpe_corr"] == pytest.approx(expected_first, abs=1e-4)
    assert last["val/vis_mpjpe_corr"] == pytest.approx(expected_last, abs=1e-4)
    assert abs(expected_first) < 0.999 and abs(expected_last) < 0.999  # six points: not trivially ±1


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"reward_online": True}, "--reward-online needs --reward"),
        (
            {"reward_online": True, "algo": "draft", "reward_model": "x"},
            "--reward-online does not apply to --algo draft",
        ),
        ({"reward_update_every": 0}, "--reward-update-every must be ≥ 1"),
        ({"reward_ema_decay": 1.0}, r"--reward-ema-decay must be in \[0, 1\)"),
        ({"reward_learning_rate": float("nan")}, "--reward-lr must be"),
        ({"reward_ema_decay": 0.5}, "--reward-ema-decay applies to --reward-online only"),
    ],
)
def test_online_options_are_refused_before_any_work(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path, changes: dict, fragment: str
) -> None:
    with pytest.raises(EgogrpoError, match=fragment):
        train_grpo(_config(cmu_small, tiny_prior, tmp_path / "run", **changes))
    assert not (tmp_path / "run").exists()


def test_cli_runs_online_and_records_its_options(
    cmu_small: Path, tiny_prior: Path, scorer_checkpoint: Path, tmp_path: Path, run_cli
) -> None:
    result = run_cli(
        "train-grpo", str(cmu_small), "--run-dir", str(tmp_path / "run"), "--prior", str(tiny_prior),
        "--reward", str(scorer_checkpoint), "--reward-online", "--reward-update-every", "1", "--reward-ema-decay",
        "0.8", "--reward-lr", "2e-4", "--reward-min-negative-error", "0.01", "--iterations", "1", "--group-size", "2",
        "--batch-groups", "1", "--train-steps", "1", "--val-every", "0",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    config = json.loads((tmp_path / "run/config.json").read_text())
    assert (config["reward_online"], config["reward_update_every"], config["reward_ema_decay"]) == (True, 1, 0.8)
    assert (config["reward_learning_rate"], config["reward_min_negative_error"]) == (2e-4, 0.01)
    assert "online reward model" in result.stderr
    assert _records(tmp_path / "run")[-1]["reward_model/pairs"] == 2
