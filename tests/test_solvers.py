"""Low-step inference samplers (issue 26): DDIM η = 0 and DPM-Solver++(2M) against float64 computations written
from the papers' update rules, the cases where the maths says they must agree, and the options' refusals."""

from __future__ import annotations

import itertools
import math

import pytest
import test_grpo
import torch

from egogrpo.config import SamplerConfig
from egogrpo.errors import EgogrpoError
from egogrpo.model import noise
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import multistep_weights, quadratic_steps, solver_options, timestep_plan
from egogrpo.model.schedule import NoiseSchedule

L, D = 16, 5


def _stub(x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """A denoiser whose x̂₀ depends on x_t, t and the condition (float32 in, float32 out)."""
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1, 1, 1) if torch.as_tensor(t).ndim else float(t)
    return 0.6 * x_t + 0.2 * cond[..., :D] + 0.001 * t - 0.3


def _stub64(x: torch.Tensor, t: int, cond: torch.Tensor) -> torch.Tensor:
    return 0.6 * x + 0.2 * cond[..., :D].double() + 0.001 * t - 0.3


def _initial(seed: int, B: int) -> torch.Tensor:
    """x_T of `DiffusionPolicy.sample` (one sample per sequence, own x_T per member): its keyed draw."""
    keys = noise.stream_key(
        seed, noise.PURPOSE_INITIAL, 0, torch.arange(B)[:, None], torch.ones(B, 1, dtype=torch.long)
    )
    return noise.normal(keys, (L, D))[:, 0]


def _sample(config: SamplerConfig, cond: torch.Tensor, seed: int = 3) -> torch.Tensor:
    policy = DiffusionPolicy(NoiseSchedule.cosine(), dataclass_window(config))
    return policy.sample(_stub, cond, D, seed=seed)[:, 0]


def dataclass_window(config: SamplerConfig) -> SamplerConfig:
    import dataclasses

    return dataclasses.replace(config, window=L, overlap=0)


def _alpha_sigma(t: int) -> tuple[float, float]:
    ab = float(NoiseSchedule.cosine().alpha_bar[t])
    return math.sqrt(ab), math.sqrt(1.0 - ab)


def test_ddim_eta_0_at_30_steps_matches_a_float64_reimplementation() -> None:
    cond = torch.randn(2, L, 8, generator=torch.Generator().manual_seed(0))
    config = SamplerConfig(rule="ddim", num_steps=30, eta=0.0)
    result = _sample(config, cond)
    x = _initial(3, 2).double()
    plan = timestep_plan(config)
    for s, t in itertools.pairwise(plan):
        x0 = _stub64(x, s, cond)
        if t == 0:
            x = x0
            break
        a_s, sig_s = _alpha_sigma(s)
        a_t, sig_t = _alpha_sigma(t)
        eps = (x - a_s * x0) / sig_s
        x = a_t * x0 + sig_t * eps  # Song et al. Eq. 12 with σ = 0
    assert torch.allclose(result.double(), x, atol=2e-5), float((result.double() - x).abs().max())


def test_dpmpp2m_matches_a_hand_worked_three_step_run() -> None:
    """N = 3, linear spacing: 1000 → 667 → 333 → 0. Step 1 is first order (DDIM), step 2 uses
    D = (1 + 1/2r)·X₁ − 1/2r·X₀ with r = h₀/h₁, the last returns x̂₀ (Lu et al. 2022, Algorithm 2)."""
    cond = torch.randn(1, L, 8, generator=torch.Generator().manual_seed(1))
    config = SamplerConfig(rule="dpmpp2m", num_steps=3)
    assert timestep_plan(config) == [1000, 667, 333, 0]
    result = _sample(config, cond, seed=5)

    def lam(t: int) -> float:
        a, s = _alpha_sigma(t)
        return math.log(a / s)

    x_T = _initial(5, 1).double()
    X0 = _stub64(x_T, 1000, cond)
    a1, s1 = _alpha_sigma(667)
    _, s0 = _alpha_sigma(1000)
    h0 = lam(667) - lam(1000)
    x1 = (s1 / s0) * x_T - a1 * (math.exp(-h0) - 1.0) * X0
    X1 = _stub64(x1, 667, cond)
    a2, s2 = _alpha_sigma(333)
    h1 = lam(333) - lam(667)
    r = h0 / h1
    D1 = (1 + 1 / (2 * r)) * X1 - 1 / (2 * r) * X0
    x2 = (s2 / s1) * x1 - a2 * (math.exp(-h1) - 1.0) * D1
    expected = _stub64(x2, 333, cond)
    assert torch.allclose(result.double(), expected, atol=2e-5), float((result.double() - expected).abs().max())
    w = multistep_weights(NoiseSchedule.cosine(), [1000, 667, 333, 0])
    assert w[0].tolist() == [1.0, 0.0] and w[2].tolist() == [1.0, 0.0]
    assert w[1].tolist() == pytest.approx([1 + 1 / (2 * r), -1 / (2 * r)], rel=1e-9)


def test_dpmpp2m_equals_ddim_where_the_predictions_do_not_change() -> None:
    """With an x̂₀ that does not depend on x_t or t, the multistep correction vanishes: DPM-Solver++(2M) is DDIM η = 0."""
    cond = torch.randn(2, L, 8, generator=torch.Generator().manual_seed(2))

    def constant(x_t, t, c):
        return 0.3 * c[..., :D] + 0.0 * x_t

    results = []
    for rule in ("ddim", "dpmpp2m"):
        config = dataclass_window(SamplerConfig(rule=rule, num_steps=12, eta=0.0, spacing="quadratic"))
        policy = DiffusionPolicy(NoiseSchedule.cosine(), config)
        results.append(policy.sample(constant, cond, D, seed=1))
    assert torch.equal(results[0], results[1])
    # and with one step both are the single prediction at T
    for rule in ("ddim", "dpmpp2m"):
        one = dataclass_window(SamplerConfig(rule=rule, num_steps=1, eta=0.0))
        x = DiffusionPolicy(NoiseSchedule.cosine(), one).sample(_stub, cond, D, seed=1)[:, 0]
        assert torch.allclose(x.double(), _stub64(_initial(1, 2).double(), 1000, cond), atol=1e-5)


def test_quadratic_spacing_and_its_limits() -> None:
    assert quadratic_steps(5) == [1000, 640, 360, 160, 40, 0]
    assert len(set(quadratic_steps(31))) == 32
    with pytest.raises(EgogrpoError, match=r"quadratic spacing must be in 1\.\.31"):
        quadratic_steps(32)


@pytest.mark.parametrize(
    ("solver", "steps", "spacing", "fragment"),
    [
        ("euler", None, None, "--solver must be one of"),
        ("ddim", 0, None, "--steps must be a whole number ≥ 1"),
        (None, 10, None, "--steps and --spacing need --solver ddim or dpmpp2m"),
        ("dpmpp2m", 10, "cosine", "--spacing must be one of"),
        ("dpmpp2m", 40, "quadratic", "--steps/--spacing"),
    ],
)
def test_bad_solver_options_are_refused(solver, steps, spacing, fragment) -> None:
    with pytest.raises(EgogrpoError, match=fragment):
        solver_options(SamplerConfig(), solver, steps, spacing)


def test_ddim_from_solver_options_is_deterministic_and_keeps_the_rest() -> None:
    base = SamplerConfig(projection="polar", window=64)
    fast = solver_options(base, "ddim", 10, "quadratic")
    assert (fast.rule, fast.eta, fast.num_steps, fast.spacing, fast.projection, fast.window) == (
        "ddim", 0.0, 10, "quadratic", "polar", 64,
    )  # fmt: skip
    assert solver_options(base, None, None, None) == base


def test_the_multistep_sampler_is_refused_for_post_training() -> None:
    policy = DiffusionPolicy(NoiseSchedule.cosine(), SamplerConfig(rule="dpmpp2m", num_steps=5))
    with pytest.raises(EgogrpoError, match="inference only"):
        policy.denoise_from(
            _stub, torch.zeros(1, 1, L, D), 0, torch.zeros(1, 1, L, 8), RolloutIds.grid(0, 0, 1, 1, False)
        )


tiny_prior = test_grpo.tiny_prior  # the fixture: a random tiny prior for the default body


def test_the_eval_record_names_solver_steps_and_spacing(cmu_small, tiny_prior) -> None:
    from egogrpo.config import EvalConfig
    from egogrpo.eval.evaluate import evaluate

    base = dict(data=str(cmu_small), checkpoints=(str(tiny_prior),), protocol="cmu-test", split="val", seeds=1)
    result = evaluate(EvalConfig(**base, solver="dpmpp2m", steps=5, spacing="quadratic"))
    sampler = result.record["protocol"]["sampler"]
    assert (sampler["rule"], sampler["num_steps"], sampler["spacing"]) == ("dpmpp2m", 5, "quadratic")
    assert math.isfinite(result.rows[-1].values["mpjpe"][0])
    with pytest.raises(EgogrpoError, match="--solver must be one of"):
        evaluate(EvalConfig(**base, solver="heun"))


def test_recover_refuses_a_bad_solver_in_one_line(sample_data, tmp_path, run_cli) -> None:
    result = run_cli("recover", str(sample_data / "aria/mps_sample"), "--out", str(tmp_path / "o"), "--steps", "5")
    assert result.exit_code == 1 and "--steps and --spacing need --solver" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()
