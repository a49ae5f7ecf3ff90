"""Post-training that holds on unseen people (issue 23): the anchor loss, the frozen condition encoder, the KL of
every rule, WiSE-FT merging, the test-time alternatives (mean of N, verifier best-of-N), and the GRPO update
path's gaps (PPO clipping side, KL scale, micro-batch normalisation).

Numerics against independent float64 computations or hand-worked cases.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import test_grpo
import torch
from test_grpo import _config, _records, _weights

from egogrpo.config import EvalConfig
from egogrpo.data.crops import MotionCropDataset
from egogrpo.errors import EgogrpoError
from egogrpo.eval.evaluate import evaluate
from egogrpo.model import noise
from egogrpo.model.checkpoint import interpolate_weights, load_checkpoint, merge_checkpoints, save_checkpoint
from egogrpo.model.combine import best_of_samples, mean_of_samples
from egogrpo.model.policy import DiffusionPolicy, RolloutIds
from egogrpo.model.sampler import body_rotation_projection, gaussian_mean_kl
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim
from egogrpo.train.anchor import AnchorLoss
from egogrpo.train.grpo import train_grpo
from egogrpo.train.rules.grpo import grpo_objective
from egogrpo.train.run_dir import load_training_state

tiny_prior = test_grpo.tiny_prior  # the fixture: a random tiny prior for the default body
AEA_VRS = "aria/aria_everyday_activities_test_data/recording.vrs"


# --- the anchor loss ----------------------------------------------------------------------------------


def _prior_loss_float64(x0_hat: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, num_betas: int) -> float:
    """EgoAllo's loss written out in float64 (reference/egoallo.md §5): per component the squared error averaged
    over its features (betas weighted 1/(i+1)), summed over frames, weighted by w(t) = 0.99·SNR(t)/SNR(1) + 0.01,
    summed over the batch and divided by the number of (batch, frame) pairs; components weighted 0.1 / 1 / 0.1."""
    ab = NoiseSchedule.cosine().alpha_bar.double()
    snr = ab / (1 - ab)
    w = 0.99 * snr[t] / snr[1] + 0.01
    sq = (x0_hat.double() - x0.double()) ** 2
    B, T, _ = x0.shape
    betas = sq[..., :num_betas] / torch.arange(1, num_betas + 1, dtype=torch.float64)
    body = sq[..., num_betas : num_betas + 189]
    contacts = sq[..., num_betas + 189 : num_betas + 210]
    total = 0.0
    for part, weight in ((betas, 0.1), (body, 1.0), (contacts, 0.1)):
        total += weight * float((part.mean(dim=-1).sum(dim=-1) * w).sum() / (B * T))
    return total


def test_the_anchor_loss_is_the_prior_training_loss_on_its_crops_and_noise(cmu_small: Path, tiny_prior: Path) -> None:
    model, model_config, _ = load_checkpoint(tiny_prior)
    assert not model_config.include_hands
    config = _config(cmu_small, tiny_prior, Path("unused"), anchor_weight=3.0, anchor_batch=3, seed=5)
    dataset = MotionCropDataset(str(cmu_small), splits=("train",), crop_length=config.crop_length, seed=config.seed)
    anchor = AnchorLoss(dataset, config, model_config, rank=0, world=1, device=torch.device("cpu"))
    step = 7
    value = anchor.loss(model, step)

    crops = anchor.crops(step)
    x0 = MotionState.from_crop(crops, include_hands=False).pack()
    rows = torch.arange(3)
    levels = noise.uniform(noise.stream_key(config.seed, noise.PURPOSE_ANCHOR, step, rows, 0), ())
    t = (1 + (levels * model_config.max_t).long()).clamp_max(model_config.max_t)
    z = noise.normal(noise.stream_key(config.seed, noise.PURPOSE_ANCHOR, step, rows, 1), tuple(x0.shape[1:]))
    ab = NoiseSchedule.cosine().alpha_bar.double()[t][:, None, None]
    x_t = (ab.sqrt() * x0.double() + (1 - ab).sqrt() * z.double()).float()
    from egogrpo.model.conditioning import cpf_conditioning

    cond = cpf_conditioning(crops.T_cpf_tm1_cpf_t, crops.T_world_cpf, config=model_config)
    with torch.no_grad():
        x0_hat = model(x_t, t, cond)
    expected = _prior_loss_float64(x0_hat, x0, t, model_config.num_betas)
    assert float(value.detach()) == pytest.approx(expected, rel=1e-4)
    assert expected > 0
    # another optimizer step draws other crops or noise: the loss is keyed by the step
    assert float(anchor.loss(model, step + 1).detach()) != pytest.approx(expected, rel=1e-6)


def test_the_anchor_gradient_is_added_with_its_weight_to_every_optimizer_step(
    cmu_small: Path, tiny_prior: Path
) -> None:
    model, model_config, _ = load_checkpoint(tiny_prior)
    config = _config(cmu_small, tiny_prior, Path("unused"), anchor_weight=2.5, anchor_batch=2)
    dataset = MotionCropDataset(str(cmu_small), splits=("train",), crop_length=config.crop_length, seed=0)
    anchor = AnchorLoss(dataset, config, model_config, rank=0, world=1, device=torch.device("cpu"))
    model.zero_grad()
    anchor.loss(model, 0).backward()
    plain = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    anchor.backward(model, 0)
    weighted = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    weighted_flat, plain_flat = torch.cat([w.flatten() for w in weighted]), torch.cat([g.flatten() for g in plain])
    scale = float(plain_flat.abs().max())
    assert scale > 0 and float((weighted_flat - 2.5 * plain_flat).abs().max()) <= 1e-5 * 2.5 * scale


def test_a_run_with_the_anchor_logs_it_and_differs_from_one_without(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path
) -> None:
    changes = dict(algo="draft", draft_k=2, iterations=1, checkpoint_every=1)
    plain = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "plain", **changes))
    anchored = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "anchor", **changes, anchor_weight=10.0))
    assert "anchor_loss" in _records(tmp_path / "anchor")[-1] and "anchor_loss" not in _records(tmp_path / "plain")[-1]
    a, b = _weights(plain.last_checkpoint), _weights(anchored.last_checkpoint)
    assert any(not torch.equal(a[k], b[k]) for k in a)


# --- the frozen condition encoder ---------------------------------------------------------------------


def test_a_frozen_condition_encoder_gets_no_gradient_no_optimizer_state_and_stays_bit_identical(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path
) -> None:
    run = train_grpo(
        _config(
            cmu_small, tiny_prior, tmp_path / "run", iterations=2, checkpoint_every=2, freeze_condition_encoder=True
        )
    )
    before, after = _weights(tiny_prior), _weights(run.last_checkpoint)
    frozen = [k for k in before if k.startswith("latent_from_cond.")]
    assert frozen == ["latent_from_cond.weight", "latent_from_cond.bias"]
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in frozen)  # the rest trained
    model, _, _ = load_checkpoint(tiny_prior)
    trainable = [
        p for name, p in model.named_parameters() if p.requires_grad and not name.startswith("latent_from_cond")
    ]
    state = load_training_state(run.last_checkpoint)["optimizer"]
    assert len(state["state"]) == len(trainable)  # Adam moments for the trained parameters only
    shapes = sorted(tuple(s["exp_avg"].shape) for s in state["state"].values())
    assert shapes == sorted(tuple(p.shape) for p in trainable)


# --- the KL to the starting policy --------------------------------------------------------------------


def test_the_gaussian_kl_and_its_gradient_match_a_float64_hand_computation() -> None:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(2, 3, 4, generator=g, requires_grad=True)
    reference = torch.randn(2, 3, 4, generator=g)
    std = torch.tensor([0.5, 2.0])
    kl = gaussian_mean_kl(mean, reference, std)
    diff = mean.detach().double() - reference.double()
    sigma2 = std.double()[:, None, None] ** 2
    expected = (diff**2).flatten(1).mean(dim=1) / (2 * sigma2.flatten())
    assert torch.allclose(kl.double(), expected, rtol=1e-6)
    kl.sum().backward()
    expected_grad = diff / (12 * sigma2)  # d/dμ of mean_d (μ − μ_ref)² / (2σ²), D = 12
    assert torch.allclose(mean.grad.double(), expected_grad, rtol=1e-5)
    assert float(gaussian_mean_kl(reference, reference, std).abs().max()) == 0.0


def test_drafts_kl_is_zero_at_the_prior_and_grows_when_the_policy_moves(tiny_prior: Path) -> None:
    model, model_config, _ = load_checkpoint(tiny_prior)
    policy = DiffusionPolicy(NoiseSchedule.cosine(), test_grpo.FAST, body_rotation_projection(model_config.num_betas))
    D = packed_dim(model_config.num_betas, model_config.include_hands)
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(2, 1, 16, model.d_cond, generator=g)
    ids = RolloutIds.grid(0, 0, 2, 1, False)
    start = torch.randn(2, 1, 16, D, generator=g)
    first = policy.num_transitions - 3
    reference = copy.deepcopy(model)
    at_start = policy.denoise_from(model, start, first, cond, ids, reference=reference)
    assert at_start.kl is not None and float(at_start.kl.detach().abs().max()) == 0.0
    assert policy.denoise_from(model, start, first, cond, ids).kl is None
    with torch.no_grad():
        model.latent_from_cond.bias.add_(0.05)
    moved = policy.denoise_from(model, start, first, cond, ids, reference=reference)
    assert float(moved.kl.detach().min()) > 0.0
    moved.kl.sum().backward()  # differentiable in θ
    assert model.latent_from_cond.bias.grad is not None and float(model.latent_from_cond.bias.grad.abs().max()) > 0


# --- GRPO's update path: the gaps the suite did not catch ------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "advantage", "expected", "clipped"),
    [
        (1.5, 1.0, -1.2, True),  # above 1 + ε with Â > 0: the clipped (pessimistic) value, no gradient
        (0.5, 1.0, -0.5, False),  # below 1 − ε with Â > 0: the unclipped value
        (1.5, -1.0, 1.5, False),  # above 1 + ε with Â < 0: unclipped
        (0.5, -1.0, 0.8, True),  # below 1 − ε with Â < 0: clipped
        (1.1, 2.0, -2.2, False),  # inside the range: both agree
    ],
)
def test_the_ppo_clipped_loss_takes_the_pessimistic_side_on_both_sides_of_the_range(
    ratio: float, advantage: float, expected: float, clipped: bool
) -> None:
    log_prob = torch.tensor([math.log(ratio)], requires_grad=True)
    terms = grpo_objective(log_prob, torch.zeros(1), torch.tensor([advantage]), clip_range=0.2)
    assert float(terms.loss.detach()) == pytest.approx(expected, rel=1e-6)
    assert bool(terms.clipped[0]) == clipped
    terms.loss.sum().backward()
    gradient = 0.0 if clipped else -advantage * ratio  # d(−Â·ρ)/d log π = −Â·ρ
    assert float(log_prob.grad[0]) == pytest.approx(gradient, rel=1e-6, abs=1e-12)


def test_two_micro_batch_sizes_give_the_same_update(cmu_small: Path, tiny_prior: Path, tmp_path: Path) -> None:
    """16 transitions per step: micro-batches of 3 (3+3+3+3+3+1) and of 16 must give the same gradient — each loss
    divided by the step's global item count, not its micro-batch's (which would scale the gradient ~5× and weight
    the last item 3× the others)."""
    changes = dict(iterations=1, checkpoint_every=1, grad_clip=1e9)
    runs = {
        m: train_grpo(_config(cmu_small, tiny_prior, tmp_path / f"m{m}", micro_batch=m, **changes)) for m in (3, 16)
    }
    records = {m: _records(tmp_path / f"m{m}")[-1] for m in runs}
    assert records[3]["trained_transitions"] == records[16]["trained_transitions"] == 16
    assert records[3]["grad_norm"] == pytest.approx(records[16]["grad_norm"], rel=1e-5)
    prior = _weights(tiny_prior)
    a, b = _weights(runs[3].last_checkpoint), _weights(runs[16].last_checkpoint)
    delta_a = torch.cat([(a[k] - prior[k]).flatten() for k in a])
    delta_b = torch.cat([(b[k] - prior[k]).flatten() for k in a])
    assert delta_a.abs().max() > 1e-4
    # Adam's first step is ≈ lr·sign(g): rounding flips a few near-zero entries, so compare directions
    assert float(torch.nn.functional.cosine_similarity(delta_a, delta_b, dim=0)) > 0.999


# --- WiSE-FT merging ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moved_prior(tiny_prior: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, config, meta = load_checkpoint(tiny_prior)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn(p.shape, generator=g))
    folder = tmp_path_factory.mktemp("moved") / "moved"
    return save_checkpoint(folder, model, config, body_model_id=meta["body_model_id"])


def test_merge_gives_the_endpoints_exactly_and_is_linear_between(
    tiny_prior: Path, moved_prior: Path, tmp_path: Path
) -> None:
    a, b = _weights(tiny_prior), _weights(moved_prior)
    for alpha, expected in ((0.0, a), (1.0, b)):
        merged = _weights(merge_checkpoints(tiny_prior, moved_prior, alpha, tmp_path / f"m{alpha}"))
        assert all(torch.equal(merged[k], expected[k]) for k in a)
    merged = _weights(merge_checkpoints(tiny_prior, moved_prior, 0.3, tmp_path / "m0.3"))
    for k in a:
        reference = (0.7 * a[k].double() + 0.3 * b[k].double()).float()
        assert torch.allclose(merged[k], reference, rtol=0, atol=1e-7), k
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed and all(not torch.equal(merged[k], a[k]) for k in changed)
    meta = load_checkpoint(tmp_path / "m0.3")[2]
    assert meta["extra"]["merged"]["alpha"] == 0.3


def test_merge_refuses_bad_alpha_other_architectures_and_existing_outputs(
    tiny_prior: Path, moved_prior: Path, tmp_path: Path, run_cli
) -> None:
    with pytest.raises(EgogrpoError, match=r"--alpha must be in \[0, 1\]"):
        merge_checkpoints(tiny_prior, moved_prior, 1.5, tmp_path / "x")
    with pytest.raises(EgogrpoError, match="different parameters"):
        interpolate_weights({"a": torch.zeros(1)}, {"b": torch.zeros(1)}, 0.5)
    assert not (tmp_path / "x").exists()
    ok = run_cli("merge", str(tiny_prior), str(moved_prior), "--alpha", "0.5", "--out", str(tmp_path / "m"))
    assert ok.exit_code == 0, ok.stderr
    again = run_cli("merge", str(tiny_prior), str(moved_prior), "--alpha", "0.5", "--out", str(tmp_path / "m"))
    assert again.exit_code == 1 and "pass --overwrite" in again.stderr and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


# --- test-time alternatives -----------------------------------------------------------------------------


def _samples(S: int, seed: int = 0) -> MotionState:
    """A (2, S, 4-frame) state of random proper rotations."""
    g = torch.Generator().manual_seed(seed)
    q = torch.nn.functional.normalize(torch.randn(2, S, 4, 21, 4, generator=g), dim=-1)
    from egogrpo.geometry import quat_to_matrix

    return MotionState(
        betas=torch.randn(2, S, 4, 2, generator=g),
        body_rotmats=quat_to_matrix(q),
        contacts=torch.rand(2, S, 4, 21, generator=g),
    )


def test_best_of_n_returns_the_sample_the_verifier_scores_highest() -> None:
    state = _samples(3)
    scores = torch.tensor([[0.1, 0.9, 0.3], [2.0, -1.0, 2.0]])  # a tie in the second: the first maximum
    best = best_of_samples(state, scores)
    for n, s in ((0, 1), (1, 0)):
        assert torch.equal(best.body_rotmats[n, 0], state.body_rotmats[n, s])
        assert torch.equal(best.betas[n, 0], state.betas[n, s])
        assert torch.equal(best.contacts[n, 0], state.contacts[n, s])
    with pytest.raises(ValueError, match="leading shape"):
        best_of_samples(state, scores[:, :2])


def test_the_mean_of_n_samples_is_the_projected_mean_rotation() -> None:
    state = _samples(3, seed=1)
    mean = mean_of_samples(state)
    assert mean.body_rotmats.shape == (2, 1, 4, 21, 3, 3)
    average = state.body_rotmats.double().mean(dim=1, keepdim=True)
    U, _, Vh = torch.linalg.svd(average)
    d = torch.linalg.det(U @ Vh)
    expected = U @ torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1)) @ Vh
    assert torch.allclose(mean.body_rotmats.double(), expected, atol=1e-5)
    assert torch.allclose(mean.contacts, state.contacts.mean(dim=1, keepdim=True))
    assert torch.allclose(mean.betas, state.betas.mean(dim=1, keepdim=True))
    same = mean_of_samples(MotionState(state.betas[:, :1].expand(2, 3, 4, 2), state.body_rotmats[:, :1].expand(2, 3, 4, 21, 3, 3),
                                       state.contacts[:, :1].expand(2, 3, 4, 21)))  # fmt: skip
    assert torch.allclose(same.body_rotmats, state.body_rotmats[:, :1], atol=1e-5)


@pytest.mark.slow
def test_eval_combine_mean_and_its_refusals(cmu_small: Path, tiny_prior: Path) -> None:
    base = dict(data=str(cmu_small), checkpoints=(str(tiny_prior),), protocol="cmu-test", split="val", seeds=1)
    plain = evaluate(EvalConfig(**base))
    combined = evaluate(EvalConfig(**base, combine="mean", candidates=2))
    assert combined.record["combine"]["rule"] == "mean" and combined.record["combine"]["candidates"] == 2
    a, b = plain.rows[-1].values["mpjpe"][0], combined.rows[-1].values["mpjpe"][0]
    assert math.isfinite(b) and a != b
    for changes, fragment in (
        ({"combine": "best"}, "--combine best needs --verifier"),
        ({"combine": "mean", "candidates": 1}, "--candidates must be"),
        ({"combine": "median"}, "--combine must be one of"),
        ({"verifier": "x"}, "--verifier applies to --combine best only"),
        ({"combine": "mean", "samples": 2}, "use --samples 1"),
    ):
        with pytest.raises(EgogrpoError, match=fragment):
            evaluate(EvalConfig(**{**base, **changes}))


@pytest.mark.slow
def test_recover_best_of_n_keeps_the_sample_the_verifier_scores_highest(sample_data: Path, tmp_path: Path) -> None:
    import numpy as np

    from egogrpo.config import PERCEPTUAL_PRESETS, RecoverConfig
    from egogrpo.model.perceptual import PerceptualModel, save_perceptual
    from egogrpo.recover.pipeline import recover

    torch.manual_seed(4)
    verifier = save_perceptual(tmp_path / "verifier", PerceptualModel(PERCEPTUAL_PRESETS["tiny"]).eval())
    base = dict(recording=str(sample_data / "aria/mps_sample"), vrs=str(sample_data / AEA_VRS), samples=2, seed=2)
    recover(RecoverConfig(**base, out=str(tmp_path / "all")))
    recover(RecoverConfig(**base, out=str(tmp_path / "best"), combine="best", verifier=str(verifier)))
    everything, best = np.load(tmp_path / "all/recovered.npz"), np.load(tmp_path / "best/recovered.npz")
    assert everything["joints_world"].shape[0] == 2 and best["joints_world"].shape[0] == 1
    matches = [np.allclose(best["joints_world"][0], everything["joints_world"][s], atol=1e-5) for s in range(2)]
    assert sum(matches) == 1
    # the one kept is the verifier's choice: score the two exported samples on the exported CPF trajectory
    from egogrpo.model.perceptual import load_perceptual, score

    model, _ = load_perceptual(verifier)
    quats = torch.from_numpy(everything["body_quats"]).float()  # (2, T, 21, 4)
    joints = torch.from_numpy(everything["joints_world"]).float()[:, :, 1:22]
    cpf = torch.from_numpy(everything["Ts_world_cpf"]).float()[None].expand(2, -1, 7)
    scores = score(model, quats, joints, cpf)
    assert matches[int(scores.argmax())], scores


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--combine", "best", "--samples", "2"], "--combine best needs --verifier"),
        (["--combine", "mean"], "turns --samples N ≥ 2 into one motion"),
        (["--combine", "vote", "--samples", "2"], "--combine must be one of"),
    ],
)
def test_recover_refuses_bad_combine_options_in_one_line(
    args: list[str], fragment: str, sample_data: Path, tmp_path: Path, run_cli
) -> None:
    result = run_cli("recover", str(sample_data / "aria/mps_sample"), "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 1 and fragment in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_eval_best_of_n_scores_each_window_with_the_sample_the_verifier_ranks_first(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path
) -> None:
    from egogrpo.body import load_body_model
    from egogrpo.config import PERCEPTUAL_PRESETS
    from egogrpo.eval.windows import joint_errors, split_windows
    from egogrpo.model.perceptual import PerceptualModel, sample_logits, save_perceptual
    from egogrpo.model.sampling import sample_states

    torch.manual_seed(5)
    model_v = PerceptualModel(PERCEPTUAL_PRESETS["tiny"]).eval()
    verifier = save_perceptual(tmp_path / "verifier", model_v)
    base = dict(data=str(cmu_small), checkpoints=(str(tiny_prior),), protocol="cmu-test", split="val", seeds=1)
    result = evaluate(EvalConfig(**base, combine="best", candidates=3, verifier=str(verifier)))
    assert result.record["combine"]["rule"] == "best"
    # independently: draw the 3 candidates of every window, score them, keep the argmax, measure MPJPE
    model, model_config, _ = load_checkpoint(tiny_prior)
    windows = split_windows(str(cmu_small), "val", 128)
    states = sample_states(model, model_config, result.protocol.sampler, windows.crops, 0, 3)
    body = load_body_model("default")
    logits = sample_logits(model_v, body, states, windows.crops.T_world_cpf)
    chosen = best_of_samples(states, logits)
    expected = joint_errors(body, chosen, windows.crops)["mpjpe"].reshape(len(windows.names), -1).mean(dim=1)
    measured = result.rows[-1].window_means["mpjpe"]
    assert len(measured) == len(expected)
    assert torch.allclose(measured.double(), expected.double(), rtol=1e-4), (measured, expected)
    every = joint_errors(body, states, windows.crops)["mpjpe"]  # (N, 3)
    assert not torch.allclose(every[:, 0], every[:, 1])  # the candidates differ: the choice matters


def test_a_cpu_budget_counts_process_cpu_time(
    cmu_small: Path, tiny_prior: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--budget-clock cpu stops on the process's CPU time, wall on wall-clock: with the CPU clock held still, the
    same tiny budget stops a wall-clock run after its first iteration and lets a CPU-clock run finish."""
    import egogrpo.train.grpo as grpo_module

    monkeypatch.setattr(grpo_module.time, "process_time", lambda: 0.0)
    common = dict(iterations=3, checkpoint_every=3, time_budget_minutes=1e-4)
    wall = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "wall", **common, budget_clock="wall"))
    cpu = train_grpo(_config(cmu_small, tiny_prior, tmp_path / "cpu", **common, budget_clock="cpu"))
    assert wall.final_iteration == 1 and wall.stop_reason == "time budget"
    assert cpu.final_iteration == 3 and cpu.stop_reason == "finished"


def test_val_windows_are_spread_over_the_split() -> None:
    from egogrpo.eval.windows import spread_indices

    assert spread_indices(10, 4) == [0, 3, 6, 9]  # first and last included, evenly spaced
    assert spread_indices(5, 9) == [0, 1, 2, 3, 4] and spread_indices(7, 1) == [0]
    assert spread_indices(216, 64)[-1] == 215 and len(spread_indices(216, 64)) == 64
