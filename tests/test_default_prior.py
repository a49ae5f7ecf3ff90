"""The shipped default prior: small, loads, records how it was made, and beats the mean-pose baseline on the CMU test split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egogrpo.body import load_body_model
from egogrpo.config import SamplerConfig
from egogrpo.model.checkpoint import default_prior_dir, load_checkpoint


def test_shipped_prior_is_small_and_documented() -> None:
    """Size, body model and the report's parameter count, checked against the loaded model (its accuracy
    claims are checked by computing them, in the test below, not by reading them back)."""
    folder = default_prior_dir()
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 20e6
    model, _config, meta = load_checkpoint(folder)
    assert meta["body_model_id"] == load_body_model("default").model_id
    report = json.loads((folder / "report.json").read_text())
    assert report["parameters"] == sum(p.numel() for p in model.parameters())
    assert report["body_model_id"] == meta["body_model_id"]


@pytest.mark.slow
def _held_out_people(sample_data: Path, tmp_path: Path) -> Path:
    """CMU 06 and 14 (test people of data_manifests/free.json, never trained on) and CMU 03 (a train person, whose
    mean pose is the baseline), preprocessed with free.json's sources."""
    from egogrpo.config import PreprocessConfig
    from egogrpo.data.preprocess import run_preprocess

    manifest = json.loads((Path(__file__).resolve().parents[1] / "data_manifests" / "free.json").read_text())
    sources = manifest["sources"]
    manifest["sources"] = {
        "cmu-asfamc": {**sources["cmu-asfamc"], "files": ["cmu/asfamc/subjects/03/*.amc"]},
        "cmu-hahne": {**sources["cmu-hahne"], "files": ["cmu/bvh_more/06/*.bvh"]},
        "cmu-poser": {**sources["cmu-poser"], "files": ["cmu/bvh_more/14/*.bvh"]},
    }
    manifest["splits"] = {"val": [], "test": ["cmu/06", "cmu/14"]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    data = tmp_path / "held_out.h5"
    config = PreprocessConfig(
        source="corpus", inputs=(str(tmp_path / "manifest.json"),), out=str(data), workers=2,
        corpus_root=str(sample_data), glitches="trim", skip_short=True,
    )  # fmt: skip
    run_preprocess(config)
    return data


@pytest.mark.slow
def test_shipped_prior_beats_the_mean_pose_baseline_on_people_it_never_saw(sample_data: Path, tmp_path: Path) -> None:
    from egogrpo.eval.windows import joint_errors, mean_pose_state, split_windows
    from egogrpo.model.sampling import sample_states

    data = _held_out_people(sample_data, tmp_path)
    body = load_body_model("default")
    model, config, _ = load_checkpoint(default_prior_dir())
    windows = split_windows(str(data), "test", 128)
    assert windows is not None and len(windows.names) >= 20
    model_errors = joint_errors(
        body, sample_states(model, config, SamplerConfig(), windows.crops, seed=7), windows.crops
    )
    baseline = joint_errors(body, mean_pose_state(str(data), ("train",), body.num_betas), windows.crops)
    assert float(model_errors["mpjpe"].mean()) < 0.8 * float(baseline["mpjpe"].mean())
    assert float(model_errors["pa_mpjpe"].mean()) < float(baseline["pa_mpjpe"].mean())


def test_default_names() -> None:
    from egogrpo.model.checkpoint import grpo_default_dir, resolve_checkpoint

    assert resolve_checkpoint("default-prior") == default_prior_dir()
    shipped = grpo_default_dir() if (grpo_default_dir() / "model.safetensors").is_file() else default_prior_dir()
    assert resolve_checkpoint("default") == shipped
    assert resolve_checkpoint("runs/x") == Path("runs/x")


def test_previous_default_and_run_pointers_resolve(tmp_path: Path) -> None:
    """`cmu3-prior` is the previous default; a run's checkpoints/best, checkpoints/latest and the run folder itself
    resolve to the checkpoint folder they name (best first); a bad pointer is one line naming it."""
    import pytest

    from egogrpo.errors import EgogrpoError
    from egogrpo.model.checkpoint import previous_prior_dir, resolve_checkpoint

    assert resolve_checkpoint("cmu3-prior") == previous_prior_dir()
    assert load_checkpoint(previous_prior_dir())[2]["body_model_id"] == load_body_model("default").model_id
    checkpoints = tmp_path / "run" / "checkpoints"
    for step in ("step_0000100", "step_0000200"):
        (checkpoints / step).mkdir(parents=True)
    (checkpoints / "latest").write_text("step_0000200\n")
    assert resolve_checkpoint(checkpoints / "latest") == checkpoints / "step_0000200"
    assert resolve_checkpoint(tmp_path / "run") == checkpoints / "step_0000200"
    (checkpoints / "best").write_text("step_0000100\n")
    assert resolve_checkpoint(tmp_path / "run") == checkpoints / "step_0000100"
    assert resolve_checkpoint(str(checkpoints / "best")) == checkpoints / "step_0000100"
    (checkpoints / "best").write_text("step_0000300\n")
    with pytest.raises(EgogrpoError, match="must name a folder beside it, found 'step_0000300'"):
        resolve_checkpoint(checkpoints / "best")
