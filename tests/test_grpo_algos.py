"""train-grpo's efficient update rules (--algo awm | nft | draft) and rank advantages.

Each objective's gradient against an independent float64 computation (a hand-derived formula or central
finite differences); a tiny CPU run of each mode raising the joint rewards on its own training conditions;
two gloo processes giving the same update as one process.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_grpo
import torch
from test_grpo import _config, _mean_joint_reward, _records, _strip_times, _weights

from egogrpo.body import load_body_model
from egogrpo.config import RewardConfig, SamplerConfig
from egogrpo.data.crops import MotionCropDataset, collate_crops
from egogrpo.errors import EgogrpoError
from egogrpo.model import noise
from egogrpo.model.checkpoint import load_checkpoint
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import step_coefficients
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState
from egogrpo.tensor_dataclass import map_fields
from egogrpo.train.grpo import train_grpo
from egogrpo.train.rewards import group_advantages, win_rates
from egogrpo.train.rules.draft import joint_reward
from egogrpo.train.rules.matching import awm_loss, nft_loss

NUM_BETAS = 2
WIDTHS = {"betas": NUM_BETAS, "body": 189, "contacts": 21}  # packed state without hands: D = 212
LAMBDA = {"betas": 0.1, "body": 1.0, "contacts": 0.1}  # EgoAllo's component weights
tiny_prior = test_grpo.tiny_prior  # the fixture: a random tiny prior for the default body


def _hand_loss_gradient(pred: torch.Tensor, target: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
    """∂ℓᵢ/∂pred of the prior's loss of each sample alone, derived by hand: for entry (l, f) of component k,
    w(t)·λ_k·c_f·2(pred − target)/(F_k·L), with c_f = 1/(f+1) on the betas and 1 elsewhere."""
    L = pred.shape[1]
    scale = []
    for name, width in WIDTHS.items():
        c = 1.0 / torch.arange(1, width + 1, dtype=torch.float64) if name == "betas" else torch.ones(width)
        scale.append(LAMBDA[name] * c.double() / width)
    per_feature = torch.cat(scale)  # (D,)
    return weight_t[:, None, None] * per_feature * 2.0 * (pred - target) / L


def _case(seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    N, L, D = 3, 4, sum(WIDTHS.values())
    pred = torch.randn(N, L, D, generator=g, dtype=torch.float64)
    target = torch.randn(N, L, D, generator=g, dtype=torch.float64)
    advantages = torch.tensor([1.5, -0.5, -3.0], dtype=torch.float64)
    weight_t = torch.tensor([1.0, 0.3, 2.0], dtype=torch.float64)
    return pred, target, advantages, weight_t


def test_awm_gradient_is_the_advantage_weighted_gradient_of_the_prior_loss() -> None:
    pred, target, advantages, weight_t = _case()
    pred.requires_grad_(True)
    awm_loss(pred, target, advantages, weight_t, NUM_BETAS, False).sum().backward()
    expected = advantages[:, None, None] * _hand_loss_gradient(pred.detach(), target, weight_t)
    torch.testing.assert_close(pred.grad, expected, rtol=1e-12, atol=1e-15)
    small = pred.detach()[:, :2].clone().requires_grad_(True)  # finite differences too
    assert torch.autograd.gradcheck(
        lambda p: awm_loss(p, target[:, :2], advantages, weight_t, NUM_BETAS, False), (small,), fast_mode=True
    )


def test_nft_gradient_matches_the_hand_formula_and_equals_awm_at_the_old_policy() -> None:
    pred, target, advantages, weight_t = _case(1)
    old = pred + 0.1 * torch.randn(pred.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    beta, c = 0.7, 2.0  # Â = −3 is clipped to r = 0
    x = pred.clone().requires_grad_(True)
    nft_loss(x, old, target, advantages, weight_t, beta, c, NUM_BETAS, False).sum().backward()
    r = (0.5 + 0.5 * (advantages / c).clamp(-1, 1))[:, None, None]
    positive, negative = (1 - beta) * old + beta * pred, (1 + beta) * old - beta * pred
    expected = (c / beta) * (
        r * beta * _hand_loss_gradient(positive, target, weight_t)
        - (1 - r) * beta * _hand_loss_gradient(negative, target, weight_t)
    )
    torch.testing.assert_close(x.grad, expected, rtol=1e-12, atol=1e-15)
    small = pred[:, :2].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: nft_loss(p, old[:, :2], target[:, :2], advantages, weight_t, beta, c, NUM_BETAS, False),
        (small,),
        fast_mode=True,
    )
    # At θ = θ_old (x̂_old = x̂) the NFT gradient is AWM's with the advantage clipped to ±c.
    at_old = pred.clone().requires_grad_(True)
    nft_loss(at_old, pred, target, advantages, weight_t, beta, c, NUM_BETAS, False).sum().backward()
    clipped = advantages.clamp(-c, c)
    torch.testing.assert_close(
        at_old.grad, clipped[:, None, None] * _hand_loss_gradient(pred, target, weight_t), rtol=1e-12, atol=1e-15
    )


class _Toy(torch.nn.Module):
    """x̂₀ = a·x_t + b + 0.01·(t/1000)·mean(c): a tiny differentiable denoiser with a float64 twin."""

    def __init__(self, D: int) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(0.7))
        self.b = torch.nn.Parameter(0.1 * torch.randn(D, generator=torch.Generator().manual_seed(3)))

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.a * x + self.b + 0.01 * (t[:, None, None] / 1000) * cond.mean(dim=-1, keepdim=True)


def test_draft_gradient_matches_finite_differences_of_a_float64_replay_of_the_last_k_steps() -> None:
    B, G, L, C, D, k = 2, 2, 5, 3, 4, 3
    sampler = SamplerConfig(rule="ddim", num_steps=6, eta=1.0)
    schedule = NoiseSchedule.cosine()
    policy = DiffusionPolicy(schedule, sampler)
    model = _Toy(D)
    cond = torch.randn(B, G, L, C, generator=torch.Generator().manual_seed(4))
    ids = RolloutIds.grid(seed=5, iteration=2, num_groups=B, group_size=G)
    K = policy.num_transitions
    first = K - k
    rollout = policy.rollout(model, cond, ids, D, record=False, keep=(first,))
    start = rollout.latent(first)
    final = policy.denoise_from(model, start, first, cond, ids).final
    torch.testing.assert_close(final, rollout.final, rtol=0, atol=1e-6)  # the same keyed noise as the rollout
    target = torch.randn(B, G, L, D, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    (-(final.double() - target).square().sum()).backward()

    def reward64(a: float, b: torch.Tensor) -> float:
        """−‖x₀ − target‖² after replaying transitions first … K−1 in float64 from the stored latent."""
        x = start.double()
        cond64 = cond.double()
        for step in range(first, K):
            t, t_prev = policy.plan[step], policy.plan[step + 1]
            coeff = step_coefficients(schedule, sampler, t, t_prev)
            x0 = a * x + b + 0.01 * (t / 1000) * cond64.mean(dim=-1, keepdim=True)
            x = coeff.a * x0 + coeff.b * x
            if float(coeff.std) > 0:
                keys = noise.stream_key(5, noise.PURPOSE_STEP, 2, torch.arange(B)[:, None], torch.arange(G), step)
                x = x + coeff.std * noise.normal(keys, (L, D)).double()
        return float(-(x - target).square().sum())

    h = 1e-6
    a0, b0 = float(model.a.detach()), model.b.detach().double()
    fd_a = (reward64(a0 + h, b0) - reward64(a0 - h, b0)) / (2 * h)
    fd_b = torch.tensor(
        [(reward64(a0, b0 + h * e) - reward64(a0, b0 - h * e)) / (2 * h) for e in torch.eye(D).double()],
        dtype=torch.float64,
    )
    assert float(model.a.grad) == pytest.approx(fd_a, rel=2e-3)
    torch.testing.assert_close(model.b.grad.double(), fd_b, rtol=2e-3, atol=1e-4)
    assert fd_a != 0 and fd_b.abs().min() > 1e-3  # a non-trivial case


def test_the_joint_reward_gradient_matches_finite_differences(cmu_small: Path) -> None:
    dataset = MotionCropDataset(str(cmu_small), splits=("train",), crop_length=8, seed=0, preload=True)
    crops = map_fields(collate_crops([dataset[0], dataset[1]]), lambda t: t.double())
    body = load_body_model("default")
    g = torch.Generator().manual_seed(7)
    x = MotionState.from_crop(crops, include_hands=False).pack()
    x = (x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    direction = torch.randn(x.shape, generator=g, dtype=torch.float64)

    def reward(state: torch.Tensor) -> torch.Tensor:
        return joint_reward(body, state, crops, RewardConfig(), num_betas=10, include_hands=False).sum()

    reward(x).backward()
    h = 1e-6
    with torch.no_grad():
        fd = (reward(x + h * direction) - reward(x - h * direction)) / (2 * h)
    assert float((x.grad * direction).sum()) == pytest.approx(float(fd), rel=1e-5)
    assert abs(float(fd)) > 1e-3


def test_rank_advantages_are_within_group_win_rates() -> None:
    rewards = torch.tensor([[[0.3], [0.1], [0.2], [0.2]]], dtype=torch.float64)  # (B=1, G=4, K=1), a tie
    torch.testing.assert_close(win_rates(rewards)[0, :, 0], torch.tensor([1.0, 0.0, 0.5, 0.5], dtype=torch.float64))
    tiny = rewards * 1e-9  # the same order with a spread far below any std floor: the same advantages
    config = RewardConfig(advantage="rank", std_floor=1e-4)
    expected = (torch.tensor([1.0, 0.0, 0.5, 0.5]) - 0.5) / torch.tensor([1.0, 0.0, 0.5, 0.5]).std()
    torch.testing.assert_close(group_advantages(tiny, config).advantages[0], expected.double())
    flat = torch.full((1, 4, 1), 0.7, dtype=torch.float64)
    assert bool(group_advantages(flat, config).degenerate.all())


ITERATIONS = 6
#: Per mode: the learning rate and settings of the tiny run (a random tiny prior, the FAST 5-step sampler).
TINY_RUNS = {
    "awm": dict(learning_rate=1e-3, updates_per_epoch=2),  # two steps: each keeps whole groups together
    "nft": dict(learning_rate=1e-3),
    "draft": dict(learning_rate=1e-3, draft_k=2),
}


@pytest.fixture(scope="module")
def reward_before(cmu_small: Path, tiny_prior: Path, tmp_path_factory: pytest.TempPathFactory) -> float:
    config = _config(cmu_small, tiny_prior, tmp_path_factory.mktemp("unused"), iterations=ITERATIONS)
    return _mean_joint_reward(tiny_prior, cmu_small, config, range(ITERATIONS))


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(TINY_RUNS))
def test_a_tiny_run_of_each_mode_raises_the_joint_rewards_on_its_training_conditions(
    cmu_small: Path, tiny_prior: Path, reward_before: float, tmp_path: Path, algo: str
) -> None:
    config = _config(
        cmu_small, tiny_prior, tmp_path / "run", iterations=ITERATIONS, checkpoint_every=ITERATIONS, algo=algo,
        **TINY_RUNS[algo],
    )  # fmt: skip
    summary = train_grpo(config)
    after = _mean_joint_reward(summary.last_checkpoint, cmu_small, config, range(ITERATIONS))
    records = _records(tmp_path / "run")
    assert len(records) == ITERATIONS and "ratio/mean" not in records[-1]  # GRPO's ratio is not computed
    assert load_checkpoint(summary.last_checkpoint)[2]["extra"]["algorithm"] == algo
    assert after > reward_before + 0.01, (reward_before, after)


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run_for_nft(cmu_small: Path, tiny_prior: Path, tmp_path: Path) -> None:
    """NFT with two optimizer steps keeps a per-iteration snapshot of θ_old: none of it may leak into a resume."""
    changes = dict(algo="nft", iterations=2, checkpoint_every=1, updates_per_epoch=2)
    straight = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "a", **changes))
    train_grpo(_config(cmu_small, tiny_prior, tmp_path / "b", **{**changes, "iterations": 1}))
    resumed = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "b", **changes, resume=True))
    a, b = _weights(straight.last_checkpoint), _weights(resumed.last_checkpoint)
    assert resumed.final_iteration == 2 and all(torch.equal(a[k], b[k]) for k in a)
    assert [_strip_times(r) for r in _records(tmp_path / "a")] == [_strip_times(r) for r in _records(tmp_path / "b")]


@pytest.mark.slow
def test_a_time_budget_stops_with_a_checkpoint_and_its_clock_continues_over_a_resume(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path
) -> None:
    """A budget smaller than one iteration stops after it — validated and checkpointed although neither falls
    due — and the resumed run's clock starts where the first left off."""
    changes = dict(iterations=4, checkpoint_every=3, val_every=3, val_windows=1, val_seeds=1)
    first = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "run", **changes, time_budget_minutes=1e-6))
    records = _records(tmp_path / "run")
    assert first.final_iteration == 1 and first.last_checkpoint.name == "iter_0000001"
    assert "val/mpjpe_mm" in records[-1] and records[-1]["time/elapsed_s"] > 0 and records[-1]["time/cpu_s"] > 0
    second = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "run", **changes, resume=True))
    records = _records(tmp_path / "run")
    assert second.final_iteration == 4 and [r["iteration"] for r in records] == [0, 1, 2, 3, 4]
    elapsed = [r["time/elapsed_s"] for r in records[1:]]
    assert all(b > a for a, b in itertools.pairwise(elapsed)), elapsed
    with pytest.raises(EgogrpoError, match="--time-budget must be"):
        train_grpo(_config(cmu_small, tiny_prior, tmp_path / "bad", time_budget_minutes=0.0))


WORKER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_grpo import _config
from egogrpo.train.grpo import train_grpo
for algo in {algos!r}:
    train_grpo(_config(Path({data!r}), Path({prior!r}), Path({root!r}) / algo, **{changes!r}, algo=algo))
"""
#: 3 groups × 4 members over 2 processes: 6 rows each, so group 1 spans both ranks; two optimizer steps (NFT
#: then trains against its snapshot of θ_old in the second).
SPLIT = dict(
    iterations=1, group_size=4, batch_groups=3, checkpoint_every=1, micro_batch=2, draft_k=2, updates_per_epoch=2
)


@pytest.mark.slow
def test_two_gloo_processes_give_the_same_update_as_one_for_each_mode(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path
) -> None:
    algos = ["awm", "nft", "draft"]
    for algo in algos:  # one process, in this one
        train_grpo(_config(cmu_small, tiny_prior, tmp_path / "one" / algo, **SPLIT, algo=algo))
    script = tmp_path / "worker.py"
    tests = str(Path(__file__).parent)
    root = str(tmp_path / "two")
    script.write_text(
        WORKER.format(tests=tests, algos=algos, data=str(cmu_small), prior=str(tiny_prior), root=root, changes=SPLIT)
    )
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    prior = _weights(tiny_prior)
    for algo in algos:
        assert json.loads((tmp_path / "two" / algo / "meta.json").read_text())["world_size"] == 2
        one, two = _records(tmp_path / "one" / algo)[-1], _records(tmp_path / "two" / algo)[-1]
        assert one["trained_transitions"] == two["trained_transitions"] > 0, algo
        assert one["reward/total"] == pytest.approx(two["reward/total"], rel=1e-5), algo
        assert one["loss"] == pytest.approx(two["loss"], rel=1e-3, abs=1e-7), algo
        assert one["grad_norm"] == pytest.approx(two["grad_norm"], rel=1e-3), algo
        a = _weights(tmp_path / "one" / algo / "checkpoints/iter_0000001")
        b = _weights(tmp_path / "two" / algo / "checkpoints/iter_0000001")
        delta_a = torch.cat([(a[k] - prior[k]).flatten() for k in a])
        delta_b = torch.cat([(b[k] - prior[k]).flatten() for k in a])
        assert delta_a.abs().max() > 1e-4, algo  # it trained
        assert float(torch.nn.functional.cosine_similarity(delta_a, delta_b, dim=0)) > 0.999, algo


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"algo": "ppo"}, "--algo must be one of"),
        ({"algo": "awm", "clip_range": 0.2}, "--clip-range applies to --algo grpo only"),
        ({"anchor_weight": -1.0}, "--anchor-weight must be"),
        ({"anchor_batch": 0}, "--anchor-batch must be"),
        ({"budget_clock": "gpu"}, "--budget-clock must be one of"),
        ({"algo": "draft", "draft_k": 0}, "--draft-k must be ≥ 1"),
        ({"algo": "draft", "draft_k": 6}, "--draft-k must be ≤ 5"),
        ({"algo": "nft", "nft_beta": 0.0}, "--nft-beta"),
        ({"reward": RewardConfig(advantage="softmax")}, "--advantage must be"),
    ],
)
def test_mode_options_are_validated_before_any_work(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path, changes: dict, fragment: str
) -> None:
    with pytest.raises(EgogrpoError, match=fragment):
        train_grpo(_config(cmu_small, tiny_prior, tmp_path / "run", **changes))
    assert not (tmp_path / "run").exists()


def test_cli_runs_a_mode_and_refuses_a_bad_one_in_one_line(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path, run_cli
) -> None:
    good = run_cli("train-grpo", str(cmu_small), "--run-dir", str(tmp_path / "good"), "--prior", str(tiny_prior),
                   "--algo", "nft", "--nft-beta", "0.5", "--advantage", "rank", "--iterations", "1", "--group-size",
                   "2", "--batch-groups", "1", "--train-steps", "1", "--val-every", "0")  # fmt: skip
    assert good.exit_code == 0, good.stderr
    config = json.loads((tmp_path / "good/config.json").read_text())
    assert (config["algo"], config["nft_beta"], config["reward"]["advantage"]) == ("nft", 0.5, "rank")
    assert "--algo nft" in good.stderr and len(_records(tmp_path / "good")) == 1
    bad = run_cli("train-grpo", str(cmu_small), "--run-dir", str(tmp_path / "bad"), "--prior", str(tiny_prior),
                  "--algo", "draft", "--draft-k", "0")  # fmt: skip
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.exit_code == 1 and len(lines) == 1 and "--draft-k" in lines[0], bad.stderr
    assert not (tmp_path / "bad").exists()
