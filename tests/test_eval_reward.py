"""`egogrpo eval --reward`: the perceptual model's Accuracy and Wrong Count (paper Eq. 21) on the evaluated windows,
checked against scoring the same motions directly, a model of known score, chunking, and the printed table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from egogrpo.body import load_body_model
from egogrpo.config import DENOISER_PRESETS, PERCEPTUAL_PRESETS, EvalConfig
from egogrpo.eval.evaluate import evaluate, load_protocol
from egogrpo.eval.windows import mean_pose_state, split_windows
from egogrpo.fileio import sha256_of_file
from egogrpo.model.checkpoint import load_checkpoint, save_checkpoint
from egogrpo.model.denoiser import EgoDenoiser
from egogrpo.model.perceptual import PerceptualModel, PerceptualScorer, load_perceptual, save_perceptual, score
from egogrpo.model.placement import broadcast_state, truth_joints
from egogrpo.model.sampling import sample_states

SPLIT = "val"  # CMU 02_09: two 128-frame windows
SEEDS, SAMPLES = 2, 2


@pytest.fixture(scope="module")
def prior_and_judge(cmu_small: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The CMU fixture, an untrained tiny prior for the default body, and a tiny perceptual model recording it."""
    root = tmp_path_factory.mktemp("eval-reward")
    torch.manual_seed(0)
    tiny = DENOISER_PRESETS["tiny"]
    prior = save_checkpoint(root / "prior", EgoDenoiser(tiny), tiny, body_model_id=load_body_model("default").model_id)
    torch.manual_seed(8)  # a judge that gets some of the pairs wrong (see the first test's guard)
    judge = save_perceptual(root / "judge", PerceptualModel(PERCEPTUAL_PRESETS["tiny"]), {"prior": str(prior)})
    return cmu_small, prior, judge


def _config(data: Path, prior: Path, judge: Path, **changes) -> EvalConfig:
    fields = dict(
        data=str(data), checkpoints=(str(prior),), protocol="cmu-test", split=SPLIT, seeds=SEEDS, samples=SAMPLES,
        baseline=True, reward=str(judge),
    )  # fmt: skip
    return EvalConfig(**{**fields, **changes})


def _count(s_gt: list[float], s_gen: list[list[float]]) -> tuple[int, int]:
    """(wrong, pairs) by hand: a pair is wrong unless the ground truth scores strictly higher."""
    pairs = [(gt, gen) for gt, row in zip(s_gt, s_gen, strict=True) for gen in row]
    return sum(1 for gt, gen in pairs if not gt > gen), len(pairs)


@pytest.mark.slow
def test_accuracy_and_wrong_count_equal_direct_scoring(prior_and_judge) -> None:
    """Each row's counts and mean scores equal the GRPO loop's scorer on the same samples, counted by hand."""
    data, prior, judge = prior_and_judge
    result = evaluate(_config(data, prior, judge))
    rows = {r.kind: r for r in result.rows}
    assert rows["ground_truth"].perceptual is None and rows["oracle"].perceptual is None

    # Independently: the windows, the samples of every seed (window n is group n of the seed's streams), the GRPO
    # scorer on the samples placed on the ground-truth CPF, `score` on the ground truth (cmu-test: stored labels).
    body = load_body_model("default")
    model, model_config, _ = load_checkpoint(prior)
    perceptual, _ = load_perceptual(judge)
    scorer = PerceptualScorer(perceptual, body)
    windows = split_windows(str(data), SPLIT, 128)
    crops = windows.crops
    s_gt = score(perceptual, crops.body_quats, truth_joints(crops)[..., 1:22, :], crops.T_world_cpf).double()
    sampler = load_protocol("cmu-test").sampler
    s_gen = torch.cat(
        [scorer(sample_states(model, model_config, sampler, crops, seed, SAMPLES), crops) for seed in range(SEEDS)], 1
    ).double()  # (N, seeds × samples)
    wrong, pairs = _count(s_gt.tolist(), s_gen.tolist())
    judged = rows["checkpoint"].perceptual
    assert len(windows) == 2 and pairs == 2 * SEEDS * SAMPLES
    assert (judged["wrong_count"], judged["pairs"]) == (wrong, pairs)
    assert judged["accuracy"] == (pairs - wrong) / pairs
    assert judged["score_gt"]["mean"] == pytest.approx(float(s_gt.mean()), abs=1e-6)
    assert judged["score_generated"]["mean"] == pytest.approx(float(s_gen.mean()), abs=1e-6)
    std = float(s_gen.std(unbiased=False))
    assert judged["score_generated"]["standard_error"] == pytest.approx(std / math.sqrt(pairs), abs=1e-6)

    # The baseline row: the mean training pose (the file's train split), one motion per window.
    pose = mean_pose_state(str(data), ("train",), body.num_betas)
    s_base = scorer(broadcast_state(pose, crops), crops).double()  # (N, 1)
    wrong, pairs = _count(s_gt.tolist(), s_base.tolist())
    judged = rows["baseline"].perceptual
    assert (judged["wrong_count"], judged["pairs"]) == (wrong, pairs) and pairs == 2
    assert judged["score_generated"]["mean"] == pytest.approx(float(s_base.mean()), abs=1e-6)
    # Guard (what makes the checks above and the chunking test able to fail): the judge gets some but not all of
    # the checkpoint's pairs right, and pairing each window's motions with the other window's ground truth
    # changes a count, so a row that compared against the wrong window would not pass.
    assert 0 < rows["checkpoint"].perceptual["wrong_count"] < rows["checkpoint"].perceptual["pairs"]
    swapped = s_gt.flip(0).tolist()
    assert (_count(swapped, s_gen.tolist()), _count(swapped, s_base.tolist())) != (
        _count(s_gt.tolist(), s_gen.tolist()),
        (wrong, pairs),
    )


@pytest.mark.slow
def test_a_negated_judge_reverses_every_pair(prior_and_judge, tmp_path: Path) -> None:
    """−φ orders every pair the other way (no ties here): wrong counts become pairs − wrong, scores 1 − s."""
    data, prior, judge = prior_and_judge
    model, meta = load_perceptual(judge)
    with torch.no_grad():  # the output layer is the last operation: logits → −logits exactly
        model.out[-1].weight.neg_()
        model.out[-1].bias.neg_()
    negated = save_perceptual(tmp_path / "negated", model, meta["extra"])
    a, b = (evaluate(_config(data, prior, j, seeds=1)) for j in (judge, negated))
    for row, flipped in zip(a.rows, b.rows, strict=True):
        if row.kind not in ("checkpoint", "baseline"):
            continue
        x, y = row.perceptual, flipped.perceptual
        assert y["pairs"] == x["pairs"] and y["wrong_count"] == x["pairs"] - x["wrong_count"], row.kind
        for key in ("score_gt", "score_generated"):
            assert y[key]["mean"] == pytest.approx(1.0 - x[key]["mean"], abs=1e-6)


def _constant_judge(folder: Path, logit: float, prior: Path) -> Path:
    """A perceptual model whose output layer ignores its input: every motion gets the score sigmoid(logit)."""
    torch.manual_seed(2)
    model = PerceptualModel(PERCEPTUAL_PRESETS["tiny"])
    with torch.no_grad():
        model.out[-1].weight.zero_()
        model.out[-1].bias.fill_(logit)
    return save_perceptual(folder, model, {"prior": str(prior)})


def test_ties_are_wrong(prior_and_judge, tmp_path: Path) -> None:
    """A model of known, constant score ties every pair: accuracy 0, every pair wrong, both means sigmoid(0.3)."""
    data, prior, _ = prior_and_judge
    judge = _constant_judge(tmp_path / "constant", 0.3, prior)
    result = evaluate(_config(data, prior, judge, seeds=1))
    for kind, pairs in (("checkpoint", 2 * SAMPLES), ("baseline", 2)):
        judged = next(r for r in result.rows if r.kind == kind).perceptual
        assert (judged["accuracy"], judged["wrong_count"], judged["pairs"]) == (0.0, pairs, pairs), kind
        expected = 1.0 / (1.0 + math.exp(-0.3))
        assert judged["score_gt"]["mean"] == pytest.approx(expected, abs=1e-7)
        assert judged["score_generated"]["mean"] == pytest.approx(expected, abs=1e-7)


@pytest.mark.slow
def test_results_do_not_depend_on_the_chunk_size(prior_and_judge) -> None:
    """Keyed noise: one window per chunk samples and scores the same motions as both windows at once."""
    data, prior, judge = prior_and_judge
    whole = evaluate(_config(data, prior, judge, chunk_size=64))
    single = evaluate(_config(data, prior, judge, chunk_size=1))
    assert single.record["chunk_size"] == 1
    for a, b in zip(whole.rows, single.rows, strict=True):
        if a.perceptual is None:
            assert b.perceptual is None
            continue
        assert (a.perceptual["wrong_count"], a.perceptual["pairs"]) == (
            b.perceptual["wrong_count"],
            b.perceptual["pairs"],
        )
        for key in ("score_gt", "score_generated"):
            for stat in ("mean", "standard_error"):
                assert b.perceptual[key][stat] == pytest.approx(a.perceptual[key][stat], abs=1e-6), (a.kind, key)


def test_cli_prints_and_records_the_columns(prior_and_judge, tmp_path: Path, run_cli) -> None:
    data, prior, judge = prior_and_judge
    args = ("eval", str(prior), "--data", str(data), "--protocol", "cmu-test", "--split", SPLIT, "--seeds", "1")
    plain = run_cli(*args, "--baseline")
    assert plain.exit_code == 0, plain.stderr
    assert "Acc (%)" not in plain.stdout and "Wrong" not in plain.stdout
    out = tmp_path / "report"
    result = run_cli(*args, "--baseline", "--reward", str(judge), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["perceptual"]["weights_sha256"] == sha256_of_file(judge / "model.safetensors")
    assert record["perceptual"]["checkpoint"] == str(judge.resolve())
    assert "Eq. 21" in record["perceptual"]["definition"] and "ties are wrong" in record["perceptual"]["definition"]
    assert record["perceptual"]["body_model_id"] == load_body_model("default").model_id
    rows = {row["kind"]: row for row in record["rows"]}
    assert rows["ground_truth"]["perceptual"] is None
    judged = rows["checkpoint"]["perceptual"]
    table = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    assert header[-2:] == ["Acc (%)", "Wrong"] and len(table) == 5, result.stdout
    cells = {line.split(" | ")[0][2:]: [c.strip() for c in line.strip("|").split("|")] for line in table[1:]}
    checkpoint_cells = next(v for k, v in cells.items() if k == str(prior))
    assert checkpoint_cells[-2:] == [f"{100 * judged['accuracy']:.2f}", f"{judged['wrong_count']}/{judged['pairs']}"]
    assert cells["ground truth: the label motion"][-2:] == ["—", "—"]
    assert f"| {100 * judged['accuracy']:.2f} | {judged['wrong_count']}/{judged['pairs']} |" in (
        out.with_suffix(".md").read_text()
    )
    csv = out.with_suffix(".csv").read_text().splitlines()
    assert csv[0].endswith(
        "perceptual_accuracy,perceptual_wrong_count,perceptual_pairs,perceptual_score_gt_mean,"
        "perceptual_score_generated_mean"
    )
    checkpoint_csv = next(line for line in csv if line.startswith(f'"{prior}"'))
    assert checkpoint_csv.split(",")[-4:-2] == [str(judged["wrong_count"]), str(judged["pairs"])]
