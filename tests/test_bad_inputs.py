"""A corpus of bad input across every command: each is refused with one line, a non-zero exit, nothing left behind.

Every case runs the real entry point (`egogrpo.cli.main.main`) in-process and asserts:
  * the exit status (1 for egogrpo's own refusals, 2 for command-line mistakes Click finds);
  * exactly one non-blank line on stderr, starting "error:", naming the option or file, no traceback;
  * nothing on stdout;
  * no file under the case's folder created, changed or deleted (inputs are made before the snapshot).
Most cases fail at option validation, before any data is read. The read-only-folder cases run as a
real subprocess (as root, with the capability that overrides file permissions dropped), which also
shows that what a user sees is one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
import pytest

MPS_HEADER_FIELDS = 20  # columns of an MPS closed_loop_trajectory.csv


class Inputs:
    """Inputs shared by the cases, made on first use (most cases need none of them)."""

    def __init__(self, request: pytest.FixtureRequest, root: Path) -> None:
        self.request = request
        self.root = root

    @cached_property
    def cmu(self) -> Path:
        """The real CMU fixture (train: 02_05, 02_06; val: 02_09); skips without the sample data."""
        return self.request.getfixturevalue("cmu_small")

    @cached_property
    def nan_h5(self) -> Path:
        """The CMU fixture with one NaN in a CPF pose of a training sequence."""
        path = self.root / "nan.h5"
        shutil.copy(self.cmu, path)
        with h5py.File(path, "r+") as f:
            name = next(n for n in _sequences(f) if f[n].attrs["split"] == "train")
            data = f[name]["T_world_cpf"]
            values = data[()]
            values[40, 5] = np.nan
            data[...] = values
        return path

    @cached_property
    def run(self) -> Path:
        """A train-prior run of two steps of the tiny preset (checkpoints at steps 1 and 2)."""
        from egogrpo.config import DENOISER_PRESETS, TrainPriorConfig
        from egogrpo.train.prior import train_prior

        run = self.root / "run"
        config = TrainPriorConfig(
            data=str(self.cmu), run_dir=str(run), model=DENOISER_PRESETS["tiny"], batch_size=2, max_steps=2,
            warmup_steps=1, val_every=0, checkpoint_every=1, log_every=1,
        )  # fmt: skip
        train_prior(config)
        return run

    @cached_property
    def smplh_checkpoint(self) -> Path:
        """The run's last checkpoint relabelled as made for the SMPL-H body (the data uses the default body)."""
        folder = self.root / "smplh-checkpoint"
        shutil.copytree(self.run / "checkpoints" / "step_0000002", folder)
        meta = json.loads((folder / "config.json").read_text())
        meta["body_model_id"] = "smplh"
        (folder / "config.json").write_text(json.dumps(meta))
        return folder

    @cached_property
    def recording(self) -> Path:
        """The demo's synthetic Aria recording (MPS trajectory + points), 4 seconds."""
        from egogrpo.recover.demo import write_synthetic_recording

        return write_synthetic_recording(self.root / "recording", seconds=4.0)

    @cached_property
    def recovered(self) -> Path:
        """A recovered.npz with recover's fields and shapes: 2 samples of 12 frames."""
        return write_recovered(self.root / "recovered.npz")

    @cached_property
    def release(self) -> Path:
        """An EgoAllo release folder: model_config.yaml and checkpoints_100/model.safetensors (weights unread)."""
        return write_release(self.root / "egoallo", {})


def _sequences(f: h5py.File) -> list[str]:
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Group) and "T_world_cpf" in obj else None)
    return names


def write_recovered(path: Path, samples: int = 2, frames: int = 12, nan: bool = False) -> Path:
    """recovered.npz as `egogrpo recover` writes it (identity rotations, a still body: enough for the checks)."""
    import json

    quats = np.zeros((samples, frames, 21, 4), np.float32)
    quats[..., 0] = 1
    cpf = np.zeros((frames, 7), np.float32)
    cpf[:, 0], cpf[:, 6] = 1, 1.6
    joints = np.zeros((samples, frames, 22, 3), np.float32)
    joints[..., 2] = np.linspace(0.0, 1.6, 22, dtype=np.float32)
    if nan:
        joints[1, 3, 4, 0] = np.nan
    np.savez(
        path,
        Ts_world_cpf=cpf,
        Ts_world_root=np.broadcast_to(cpf, (samples, frames, 7)).copy(),
        body_quats=quats,
        contacts=np.zeros((samples, frames, 21), np.float32),
        betas=np.zeros((samples, frames, 10), np.float32),
        joints_world=joints,
        frame_nums=np.arange(1, frames + 1),
        timestamps_ns=(10**9 + np.arange(frames) * 33_333_333).astype(np.int64),
        floor_z=np.float32(0.0),
        metadata=np.array(json.dumps({"body_model_id": "default", "fps": 30.0, "floor_z": 0.0, "trajectory": ""})),
    )
    return path


EGOALLO_FIELDS = {
    "activation": "gelu", "cond_param": "ours", "d_feedforward": 48, "d_latent": 32, "d_noise_emb": 24,
    "decoder_layers": 1, "dropout_p": 0.0, "encoder_layers": 1, "fourier_enc_freqs": 3,
    "include_canonicalized_cpf_rotation_in_cond": True, "include_hand_positions_cond": False,
    "include_hands": True, "max_t": 1000, "noise_conditioning": "token", "num_heads": 4,
    "positional_encoding": "rope", "xattn_mode": "kv_from_cond_q_from_x",
}  # fmt: skip


def write_release(
    root: Path, changes: dict[str, object], tag: str = "!!python/object:egoallo.network.EgoDenoiserConfig"
) -> Path:
    """A release folder whose YAML holds EGOALLO_FIELDS updated by `changes` (None removes a field)."""
    fields = {**EGOALLO_FIELDS, **changes}
    lines = [tag] + [
        f"{k}: {str(v).lower() if isinstance(v, bool) else v}" for k, v in sorted(fields.items()) if v is not None
    ]
    (root / "checkpoints_100").mkdir(parents=True)
    (root / "model_config.yaml").write_text("\n".join(lines) + "\n")
    (root / "checkpoints_100/model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return root


def trajectory_with(recording: Path, folder: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    """A copy of `recording` whose closed_loop_trajectory.csv rows are edited."""
    shutil.copytree(recording, folder)
    csv = folder / "trajectory/closed_loop_trajectory.csv"
    csv.write_text("\n".join(edit(csv.read_text().splitlines())) + "\n")
    return folder


def _set_field(row: str, column: int, value: str) -> str:
    fields = row.split(",")
    fields[column] = value
    return ",".join(fields)


@dataclasses.dataclass(frozen=True)
class Case:
    """`build(ctx, tmp)` makes the case's inputs under `tmp` and returns the arguments after `egogrpo`."""

    id: str
    build: Callable[[Inputs, Path], list[str]]
    fragment: str  # must appear in the error line
    code: int = 1


def _tiny_amc(tmp: Path) -> Path:
    subject = tmp / "subjects/02"
    subject.mkdir(parents=True)
    (subject / "02.asf").write_text(":version 1.10\n:name broken\n:units\n  mass 1.0\n  length what\n")
    (subject / "02_05.amc").write_text(":FULLY-SPECIFIED\n:DEGREES\n1\nroot 0 0 0 0 0 0\n")
    return tmp / "subjects"


def _copy_run(ctx: Inputs, tmp: Path) -> Path:
    run = tmp / "run"
    shutil.copytree(ctx.run, run)
    return run


def _corrupt_state(ctx: Inputs, tmp: Path) -> Path:
    run = _copy_run(ctx, tmp)
    state = run / "checkpoints/step_0000002/training_state.pt"
    state.write_bytes(state.read_bytes()[:200])
    return run


def _state_without_optimizer(ctx: Inputs, tmp: Path) -> Path:
    import torch

    run = _copy_run(ctx, tmp)
    torch.save({"step": 2}, run / "checkpoints/step_0000002/training_state.pt")
    return run


def _truncated_prior(tmp: Path) -> Path:
    """A copy of the shipped prior whose weights file lost its tail."""
    from egogrpo.model.checkpoint import default_prior_dir

    folder = tmp / "prior"
    shutil.copytree(default_prior_dir(), folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return folder


def _perceptual(tmp: Path, prior: Path) -> Path:
    """A tiny perceptual checkpoint whose hard negatives came from `prior` (as train-reward records it)."""
    from egogrpo.config import PERCEPTUAL_PRESETS
    from egogrpo.model.perceptual import PerceptualModel, save_perceptual

    return save_perceptual(tmp / "judge", PerceptualModel(PERCEPTUAL_PRESETS["tiny"]), {"prior": str(prior)})


def _smplh(tmp: Path) -> Path:
    from synthetic_body import write_synthetic_model

    write_synthetic_model(tmp / "smplh.npz")
    return tmp / "smplh.npz"


def _file(tmp: Path, name: str = "file.txt", text: str = "not what you think\n") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _folder(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.mkdir()
    return path


def _prior(ctx: Inputs, tmp: Path, *extra: str) -> list[str]:
    return ["train-prior", str(ctx.cmu), "--run-dir", str(tmp / "new-run"), "--preset", "tiny", *extra]


def _grpo(ctx: Inputs, tmp: Path, *extra: str) -> list[str]:
    return ["train-grpo", str(ctx.cmu), "--run-dir", str(tmp / "new-run"), *extra]


def _scorer_folder(tmp: Path) -> Path:
    """A folder that passes the CLI's look at --reward (a config.json); options are refused before it is read."""
    folder = _folder(tmp, "scorer")
    (folder / "config.json").write_text("{}")
    return folder


def _reward(ctx: Inputs, tmp: Path, *extra: str) -> list[str]:
    return ["train-reward", str(ctx.cmu), "--run-dir", str(tmp / "new-run"), *extra]


def _recover(ctx: Inputs, tmp: Path, *extra: str) -> list[str]:
    return ["recover", str(ctx.recording), "--out", str(tmp / "out"), *extra]


def _view(ctx: Inputs, tmp: Path, *extra: str) -> list[str]:
    return ["view", str(ctx.recovered), "--png", str(tmp / "strip.png"), *extra]


def _import(ctx: Inputs, tmp: Path, changes: dict[str, object], tag: str | None = None) -> list[str]:
    release = write_release(tmp / "egoallo", changes, *([tag] if tag else []))
    return ["import-egoallo", str(release), "--out", str(tmp / "imported")]


def _cmu(tmp: Path, *extra: str) -> list[str]:
    return ["preprocess", "cmu", str(_folder(tmp, "in")), "--out", str(tmp / "out.h5"), *extra]


def _eval(ctx: Inputs, tmp: Path, *extra: str) -> list[str]:
    return ["eval", "default", "--data", str(ctx.cmu), "--out", str(tmp / "table"), *extra]


# fmt: off
CASES = [
    # --- preprocess ------------------------------------------------------------------------------
    Case("preprocess-min-frames-negative", lambda c, t: _cmu(t, "--min-frames", "-5"), "--min-frames"),
    Case("preprocess-min-frames-zero", lambda c, t: _cmu(t, "--min-frames", "0"), "--min-frames"),
    Case("preprocess-workers-negative", lambda c, t: _cmu(t, "--workers", "-2"), "--workers"),
    Case("preprocess-workers-not-a-number", lambda c, t: _cmu(t, "--workers", "two"), "--workers", 2),
    Case("preprocess-fps-zero", lambda c, t: _cmu(t, "--fps", "0"), "--fps"),
    Case("preprocess-fps-nan", lambda c, t: _cmu(t, "--fps", "nan"), "--fps"),
    Case("preprocess-unknown-split", lambda c, t: _cmu(t, "--splits", "train,holdout"), "unknown split(s) holdout", 2),
    Case("preprocess-no-split", lambda c, t: _cmu(t, "--splits", ","), "unknown split(s) (none)", 2),
    Case("preprocess-out-is-a-folder", lambda c, t: [*_cmu(t)[:3], "--out", str(_folder(t, "o.h5"))], "o.h5", 2),
    Case(
        "preprocess-out-below-a-file",
        lambda c, t: [*_cmu(t)[:3], "--out", str(_file(t) / "out.h5")],
        "file.txt is not a folder",
    ),
    Case(
        "preprocess-cmu-root-missing",
        lambda c, t: ["preprocess", "cmu", str(t / "absent"), "--out", str(t / "o.h5")],
        "absent: no such folder",
    ),
    Case("preprocess-cmu-no-clips", lambda c, t: _cmu(t), "no .amc clips found"),
    Case(
        "preprocess-cmu-broken-asf",
        lambda c, t: ["preprocess", "cmu", str(_tiny_amc(t)), "--out", str(t / "o.h5"), "--workers", "1"],
        "02.asf",
    ),
    Case(
        "preprocess-out-exists",
        lambda c, t: ["preprocess", "cmu", str(_tiny_amc(t)), "--out", str(_file(t, "o.h5"))],
        "exists; pass --overwrite",
    ),
    Case(
        "preprocess-bvh-missing-file",
        lambda c, t: ["preprocess", "bvh", str(t / "absent.bvh"), "--out", str(t / "o.h5")],
        "absent.bvh: no such BVH file",
    ),
    Case(
        "preprocess-bvh-unknown-units",
        lambda c, t: ["preprocess", "bvh", str(_file(t, "a.bvh")), "--out", str(t / "o.h5"), "--units", "furlong"],
        "--units",
    ),
    Case(
        "preprocess-bvh-negative-units",
        lambda c, t: ["preprocess", "bvh", str(_file(t, "a.bvh")), "--out", str(t / "o.h5"), "--units", "-0.01"],
        "--units",
    ),
    Case(
        "preprocess-bvh-unknown-split",
        lambda c, t: ["preprocess", "bvh", str(_file(t, "a.bvh")), "--out", str(t / "o.h5"), "--split", "all"],
        "unknown split(s) all",
        2,
    ),
    Case(
        "preprocess-bvh-not-bvh",
        lambda c, t: ["preprocess", "bvh", str(_file(t, "a.bvh")), "--out", str(t / "o.h5"), "--workers", "1"],
        "a.bvh",
    ),
    Case(
        "preprocess-amass-trim-too-large",
        lambda c, t: ["preprocess", "amass", str(t), "--smplh", str(t / "m.npz"), "--out", str(t / "o.h5"), "--trim", "0.6"],
        "--trim",
    ),
    Case(
        "preprocess-amass-trim-negative",
        lambda c, t: ["preprocess", "amass", str(t), "--smplh", str(t / "m.npz"), "--out", str(t / "o.h5"), "--trim", "-0.1"],
        "--trim",
    ),
    Case(
        "preprocess-amass-missing-smplh-option",
        lambda c, t: ["preprocess", "amass", str(t), "--out", str(t / "o.h5")],
        "Missing option '--smplh'",
        2,
    ),
    Case(
        "preprocess-amass-smplh-missing-file",
        lambda c, t: ["preprocess", "amass", str(t), "--smplh", str(t / "absent.npz"), "--out", str(t / "o.h5")],
        "absent.npz",
    ),
    Case(
        "preprocess-rich-missing-gendered-models",
        lambda c, t: ["preprocess", "rich", str(t), "--smplx", str(t / "x.npz"), "--out", str(t / "o.h5")],
        "Missing option '--smplx-male'",
        2,
    ),
    Case(
        "preprocess-adt-missing-folder",
        lambda c, t: ["preprocess", "adt", str(t / "absent"), "--out", str(t / "o.h5")],
        "absent: no such ADT sequence folder",
    ),
    Case(
        "preprocess-adt-min-frames-negative",
        lambda c, t: ["preprocess", "adt", str(t), "--out", str(t / "o.h5"), "--min-frames", "-1"],
        "--min-frames",
    ),
    Case("preprocess-unknown-source", lambda c, t: ["preprocess", "mocap", str(t)], "No such command 'mocap'", 2),
    Case("preprocess-no-subcommand", lambda c, t: ["preprocess"], "Missing command", 2),
    Case(
        "merge-one-file",
        lambda c, t: ["preprocess", "merge", str(c.cmu), "--out", str(t / "m.h5")],
        "at least two motion files",
    ),
    Case(
        "merge-missing-file",
        lambda c, t: ["preprocess", "merge", str(c.cmu), str(t / "absent.h5"), "--out", str(t / "m.h5")],
        "absent.h5: no such file",
    ),
    Case(
        "merge-not-hdf5",
        lambda c, t: ["preprocess", "merge", str(c.cmu), str(_file(t, "x.h5")), "--out", str(t / "m.h5")],
        "x.h5: not an HDF5 file",
    ),
    Case(
        "merge-same-file-twice",
        lambda c, t: ["preprocess", "merge", str(c.cmu), str(c.cmu), "--out", str(t / "m.h5")],
        "every input must be different",
    ),
    # --- train-prior ------------------------------------------------------------------------------
    Case("train-prior-batch-size-zero", lambda c, t: _prior(c, t, "--batch-size", "0"), "--batch-size"),
    Case("train-prior-batch-size-negative", lambda c, t: _prior(c, t, "--batch-size", "-3"), "--batch-size"),
    Case("train-prior-batch-size-not-a-number", lambda c, t: _prior(c, t, "--batch-size", "abc"), "--batch-size", 2),
    Case("train-prior-max-steps-negative", lambda c, t: _prior(c, t, "--max-steps", "-5"), "--max-steps"),
    Case("train-prior-max-steps-zero", lambda c, t: _prior(c, t, "--max-steps", "0"), "--max-steps"),
    Case("train-prior-lr-negative", lambda c, t: _prior(c, t, "--lr", "-0.001"), "--lr"),
    Case("train-prior-lr-nan", lambda c, t: _prior(c, t, "--lr", "nan"), "--lr"),
    Case("train-prior-lr-infinite", lambda c, t: _prior(c, t, "--lr", "inf"), "--lr"),
    Case("train-prior-warmup-negative", lambda c, t: _prior(c, t, "--warmup-steps", "-1"), "--warmup-steps"),
    Case("train-prior-val-every-negative", lambda c, t: _prior(c, t, "--val-every", "-1"), "--val-every"),
    Case("train-prior-val-seeds-zero", lambda c, t: _prior(c, t, "--val-seeds", "0"), "--val-seeds"),
    Case("train-prior-checkpoint-every-zero", lambda c, t: _prior(c, t, "--checkpoint-every", "0"), "--checkpoint-every"),
    Case("train-prior-log-every-zero", lambda c, t: _prior(c, t, "--log-every", "0"), "--log-every"),
    Case("train-prior-num-workers-negative", lambda c, t: _prior(c, t, "--num-workers", "-1"), "--num-workers"),
    Case("train-prior-seed-negative", lambda c, t: _prior(c, t, "--seed", "-1"), "--seed"),
    Case("train-prior-unknown-preset", lambda c, t: _prior(c, t, "--preset", "huge"), "unknown --preset"),
    Case("train-prior-missing-run-dir", lambda c, t: ["train-prior", str(t / "d.h5")], "Missing option '--run-dir'", 2),
    Case(
        "train-prior-data-missing",
        lambda c, t: ["train-prior", str(t / "absent.h5"), "--run-dir", str(t / "r")],
        "absent.h5: no such file",
    ),
    Case(
        "train-prior-data-not-hdf5",
        lambda c, t: ["train-prior", str(_file(t, "d.h5")), "--run-dir", str(t / "r")],
        "not an HDF5 file",
    ),
    Case(
        "train-prior-nan-data",
        lambda c, t: ["train-prior", str(c.nan_h5), "--run-dir", str(t / "r"), "--preset", "tiny"],
        "T_world_cpf holds NaN or infinite values",
    ),
    Case(
        "train-prior-body-missing",
        lambda c, t: _prior(c, t, "--body", str(t / "absent.npz")),
        "absent.npz",
    ),
    Case(
        "train-prior-run-dir-not-empty",
        lambda c, t: [*_prior(c, t)[:3], str(_file(_folder(t, "used")).parent)],
        "not empty",
    ),
    Case(
        "train-prior-run-dir-is-a-file",
        lambda c, t: [*_prior(c, t)[:3], str(_file(t, "run"))],
        "exists and is not a folder",
    ),
    Case("train-prior-resume-nothing", lambda c, t: _prior(c, t, "--resume"), "no run to resume"),
    Case(
        "train-prior-resume-corrupt-training-state",
        lambda c, t: ["train-prior", str(c.cmu), "--run-dir", str(_corrupt_state(c, t)), "--preset", "tiny",
                      "--batch-size", "2", "--max-steps", "3", "--warmup-steps", "1", "--val-every", "0", "--resume"],
        "training_state.pt: cannot be read",
    ),
    Case(
        "train-prior-resume-training-state-without-optimizer",
        lambda c, t: ["train-prior", str(c.cmu), "--run-dir", str(_state_without_optimizer(c, t)), "--preset", "tiny",
                      "--batch-size", "2", "--max-steps", "3", "--warmup-steps", "1", "--val-every", "0", "--resume"],
        "no optimizer state or step",
    ),
    Case(
        "train-prior-resume-other-settings",
        lambda c, t: ["train-prior", str(c.cmu), "--run-dir", str(_copy_run(c, t)), "--preset", "small", "--resume"],
        "cannot change model",
    ),
    # --- train-grpo (refused by the loop's own validation) ---------------------------------------
    Case("train-grpo-kl-weight-nan", lambda c, t: _grpo(c, t, "--kl-weight", "nan"), "--kl-weight"),
    Case("train-grpo-inner-epochs-zero", lambda c, t: _grpo(c, t, "--inner-epochs", "0"), "--inner-epochs"),
    Case("train-grpo-updates-per-epoch-zero", lambda c, t: _grpo(c, t, "--updates-per-epoch", "0"), "--updates-per-epoch"),
    Case("train-grpo-checkpoint-every-zero", lambda c, t: _grpo(c, t, "--checkpoint-every", "0"), "--checkpoint-every"),
    Case("train-grpo-val-every-negative", lambda c, t: _grpo(c, t, "--val-every", "-1"), "--val-every"),
    Case("train-grpo-time-budget-negative", lambda c, t: _grpo(c, t, "--time-budget", "-5"), "--time-budget must be"),
    Case("train-grpo-perlin-lambda-infinite", lambda c, t: _grpo(c, t, "--perlin-lambda", "inf"), "--perlin-lambda"),
    Case("train-grpo-clip-range-zero", lambda c, t: _grpo(c, t, "--clip-range", "0"), "--clip-range"),
    Case(
        "train-grpo-prior-of-another-body",
        lambda c, t: _grpo(c, t, "--prior", str(c.smplh_checkpoint)),
        "trained for body model smplh",
    ),
    Case(
        "recover-checkpoint-of-another-body",
        lambda c, t: _recover(c, t, "--checkpoint", str(c.smplh_checkpoint)),
        "trained for body model smplh",
    ),
    Case("train-grpo-projection-unknown", lambda c, t: _grpo(c, t, "--projection", "qr"), "--projection"),
    Case("train-grpo-algo-unknown", lambda c, t: _grpo(c, t, "--algo", "ppo"), "--algo"),
    Case("train-grpo-reward-missing", lambda c, t: _grpo(c, t, "--reward", str(t / "absent")), "--reward"),
    Case(
        "train-grpo-reward-online-without-reward",
        lambda c, t: _grpo(c, t, "--reward-online"),
        "--reward-online needs --reward",
    ),
    Case(
        "train-grpo-reward-online-with-draft",
        lambda c, t: _grpo(c, t, "--reward", str(_scorer_folder(t)), "--reward-online", "--algo", "draft"),
        "--reward-online does not apply to --algo draft",
    ),
    Case(
        "train-grpo-reward-ema-decay-one",
        lambda c, t: _grpo(c, t, "--reward-online", "--reward-ema-decay", "1"),
        "--reward-ema-decay must be in [0, 1)",
    ),
    Case(
        "train-grpo-reward-lr-without-online",
        lambda c, t: _grpo(c, t, "--reward", str(_scorer_folder(t)), "--reward-lr", "1e-4"),
        "--reward-lr applies to --reward-online only",
    ),
    Case("train-prior-augment-unknown", lambda c, t: _prior(c, t, "--augment", "heavy"), "--augment"),
    Case("train-prior-speed-range-reversed", lambda c, t: _prior(c, t, "--speed-range", "1.2:0.8"), "--speed-range"),
    Case("train-prior-ema-decay-one", lambda c, t: _prior(c, t, "--ema-decay", "1"), "--ema-decay must be in [0, 1)"),
    Case("train-grpo-iterations-not-a-number", lambda c, t: _grpo(c, t, "--iterations", "ten"), "--iterations", 2),
    Case(
        "train-grpo-data-missing",
        lambda c, t: ["train-grpo", str(t / "absent.h5"), "--run-dir", str(t / "r")],
        "absent.h5: no such motion file",
    ),
    # --- train-reward -------------------------------------------------------------------------------
    Case("train-reward-negatives-unknown", lambda c, t: _reward(c, t, "--negatives", "random"), "--negatives"),
    Case("train-reward-alpha-negative", lambda c, t: _reward(c, t, "--negatives", "gt-noise", "--alpha", "-0.1"), "--alpha"),
    Case("train-reward-preset-unknown", lambda c, t: _reward(c, t, "--preset", "huge"), "--preset"),
    Case("train-reward-steps-zero", lambda c, t: _reward(c, t, "--steps", "0"), "--steps"),
    Case("train-reward-temperature-zero", lambda c, t: _reward(c, t, "--temperature", "0"), "--temperature"),
    Case("train-reward-num-negatives-zero", lambda c, t: _reward(c, t, "--num-negatives", "0"), "--num-negatives"),
    Case("train-reward-lr-nan", lambda c, t: _reward(c, t, "--lr", "nan"), "--lr"),
    Case("train-reward-val-every-negative", lambda c, t: _reward(c, t, "--val-every", "-1"), "--val-every"),
    Case("train-reward-prior-missing", lambda c, t: _reward(c, t, "--prior", str(t / "absent")), "absent"),
    Case(
        "train-reward-data-missing",
        lambda c, t: ["train-reward", str(t / "absent.h5"), "--run-dir", str(t / "r")],
        "absent.h5: no such motion file",
    ),
    # --- import-egoallo ---------------------------------------------------------------------------
    Case(
        "import-egoallo-missing-release",
        lambda c, t: ["import-egoallo", str(t / "absent"), "--out", str(t / "o")],
        "no such EgoAllo checkpoint",
    ),
    Case("import-egoallo-derived-d-cond-disagrees", lambda c, t: _import(c, t, {"d_cond": 150}), "d_cond: 150 does not match"),
    Case(
        "import-egoallo-derived-d-state-not-a-number",
        lambda c, t: _import(c, t, {"d_state": "wide"}),
        "d_state: 'wide' does not match",
    ),
    Case("import-egoallo-unknown-field", lambda c, t: _import(c, t, {"d_hidden": 3}), "unknown EgoDenoiserConfig field"),
    Case(
        "import-egoallo-other-python-tag",
        lambda c, t: _import(c, t, {}, tag="!!python/object/apply:os.system"),
        "refusing the Python tag",
    ),
    Case("import-egoallo-bad-value", lambda c, t: _import(c, t, {"d_latent": "big"}), "d_latent"),
    Case("import-egoallo-corrupt-weights", lambda c, t: _import(c, t, {}), "model.safetensors"),
    Case(
        "import-egoallo-out-holds-a-checkpoint",
        lambda c, t: ["import-egoallo", str(c.release), "--out", str(_file(_folder(t, "o"), "config.json").parent)],
        "already holds a checkpoint",
    ),
    Case(
        "import-egoallo-out-is-a-file",
        lambda c, t: ["import-egoallo", str(c.release), "--out", str(_file(t))],
        "file.txt",
        2,
    ),
    # --- eval -------------------------------------------------------------------------------------
    Case("eval-data-missing", lambda c, t: ["eval", "default", "--data", str(t / "absent.h5")], "absent.h5"),
    Case("eval-unknown-protocol", lambda c, t: _eval(c, t, "--protocol", "mine"), "mine"),
    Case("eval-checkpoint-missing", lambda c, t: ["eval", str(t / "ckpt"), "--data", str(c.cmu)], "ckpt"),
    Case(
        "eval-checkpoint-truncated-weights",
        lambda c, t: ["eval", str(_truncated_prior(t)), "--data", str(c.cmu)],
        "model.safetensors: does not match the SHA-256",
    ),
    Case("eval-samples-not-a-number", lambda c, t: _eval(c, t, "--samples", "many"), "--samples", 2),
    Case("eval-missing-data-option", lambda c, t: ["eval", "default"], "Missing option '--data'", 2),
    Case("eval-reward-missing", lambda c, t: _eval(c, t, "--reward", str(t / "absent")), "--reward: "),
    Case(
        "eval-reward-is-a-prior",
        lambda c, t: _eval(c, t, "--reward", str(c.run / "checkpoints" / "step_0000002")),
        "not a perceptual model checkpoint",
    ),
    Case(
        "eval-reward-of-another-body",
        lambda c, t: _eval(c, t, "--reward", str(_perceptual(t, c.smplh_checkpoint))),
        "a perceptual model for body model smplh",
    ),
    # --- recover ----------------------------------------------------------------------------------
    Case("recover-samples-zero", lambda c, t: _recover(c, t, "--samples", "0"), "--samples"),
    Case("recover-samples-negative", lambda c, t: _recover(c, t, "--samples", "-2"), "--samples"),
    Case("recover-seed-negative", lambda c, t: _recover(c, t, "--seed", "-1"), "--seed"),
    Case("recover-floor-z-nan", lambda c, t: _recover(c, t, "--floor-z", "nan"), "--floor-z"),
    Case("recover-projection-unknown", lambda c, t: _recover(c, t, "--projection", "qr"), "--projection"),
    Case("recover-floor-z-infinite", lambda c, t: _recover(c, t, "--floor-z", "-inf"), "--floor-z"),
    Case(
        "recover-out-is-a-file",
        lambda c, t: ["recover", str(c.recording), "--out", str(_file(t))],
        "exists and is not a folder",
    ),
    Case(
        "recover-out-below-a-file",
        lambda c, t: ["recover", str(c.recording), "--out", str(_file(t) / "out")],
        "file.txt is not a folder",
    ),
    Case(
        "recover-npz-exists",
        lambda c, t: ["recover", str(c.recording), "--out", str(_file(_folder(t, "o"), "recovered.npz").parent)],
        "recovered.npz exists; pass --overwrite",
    ),
    Case(
        "recover-csv-exists",
        lambda c, t: ["recover", str(c.recording), "--csv", "--out", str(_file(_folder(t, "o"), "joints.csv").parent)],
        "joints.csv exists; pass --overwrite",
    ),
    Case(
        "recover-recording-missing",
        lambda c, t: ["recover", str(t / "absent"), "--out", str(t / "o")],
        "absent",
    ),
    Case(
        "recover-no-trajectory",
        lambda c, t: ["recover", str(_folder(t, "rec")), "--out", str(t / "o")],
        "rec",
    ),
    Case(
        "recover-nan-trajectory",
        lambda c, t: ["recover", str(trajectory_with(c.recording, t / "rec", lambda r: [
            *r[:50], _set_field(r[50], 4, "nan"), *r[51:]])), "--out", str(t / "o")],
        "closed_loop_trajectory.csv",
    ),
    Case(
        "recover-short-trajectory",
        lambda c, t: ["recover", str(trajectory_with(c.recording, t / "rec", lambda r: r[:4])), "--out", str(t / "o")],
        "closed_loop_trajectory.csv",
    ),
    Case("recover-checkpoint-missing", lambda c, t: _recover(c, t, "--checkpoint", str(t / "ckpt")), "ckpt"),
    Case(
        "recover-checkpoint-config-not-json",
        lambda c, t: _recover(c, t, "--checkpoint", str(_file(_folder(t, "ckpt"), "config.json", "{oops").parent)),
        "config.json: not valid JSON",
    ),
    Case("recover-body-missing", lambda c, t: _recover(c, t, "--smplh", str(t / "absent.npz")), "absent.npz"),
    Case("recover-vrs-missing", lambda c, t: _recover(c, t, "--vrs", str(t / "absent.vrs")), "absent.vrs"),
    Case("recover-vrs-not-vrs", lambda c, t: _recover(c, t, "--vrs", str(_file(t, "r.vrs"))), "not a readable Aria VRS"),
    Case("recover-mps-missing", lambda c, t: _recover(c, t, "--mps", str(t / "mps")), "no such MPS folder"),
    Case("recover-missing-out-option", lambda c, t: ["recover", str(c.recording)], "Missing option '--out'", 2),
    # --- view -------------------------------------------------------------------------------------
    Case("view-frames-zero", lambda c, t: _view(c, t, "--frames", "0"), "at least 1"),
    Case("view-sample-out-of-range", lambda c, t: _view(c, t, "--sample", "5"), "no sample 5"),
    Case("view-serve-sample-negative", lambda c, t: ["view", str(c.recovered), "--sample", "-1"], "no sample -1"),
    Case("view-port-out-of-range", lambda c, t: ["view", str(c.recovered), "--port", "70000"], "--port"),
    Case("view-port-zero", lambda c, t: ["view", str(c.recovered), "--port", "0"], "--port"),
    Case("view-host-not-this-machine", lambda c, t: ["view", str(c.recovered), "--host", "192.0.2.1"], "--host 192.0.2.1"),
    Case(
        "view-png-is-a-folder",
        lambda c, t: ["view", str(c.recovered), "--png", str(_folder(t, "strip.png"))],
        "is a folder",
    ),
    Case(
        "view-png-below-a-file",
        lambda c, t: ["view", str(c.recovered), "--png", str(_file(t) / "strip.png")],
        "file.txt is not a folder",
    ),
    Case("view-folder-without-output", lambda c, t: ["view", str(_folder(t, "run"))], "recovered.npz: no such file"),
    Case("view-file-missing", lambda c, t: ["view", str(t / "absent.npz")], "absent.npz: no such file"),
    Case(
        "view-nan-joints",
        lambda c, t: ["view", str(write_recovered(t / "nan.npz", nan=True)), "--png", str(t / "s.png")],
        "non-finite",
    ),
    Case("view-text-file", lambda c, t: ["view", str(_file(t, "r.npz"))], "not a readable .npz"),
    # --- demo -------------------------------------------------------------------------------------
    Case("demo-out-is-a-file", lambda c, t: ["demo", "--out", str(_file(t))], "exists and is not a folder"),
    Case("demo-out-below-a-file", lambda c, t: ["demo", "--out", str(_file(t) / "demo")], "file.txt is not a folder"),
    # --- body, and the command line itself -----------------------------------------------------------
    Case("body-info-missing-file", lambda c, t: ["body", "info", str(t / "absent.npz")], "absent.npz"),
    Case("body-info-not-npz", lambda c, t: ["body", "info", str(_file(t, "m.npz"))], "not a readable .npz"),
    Case("body-info-wrong-extension", lambda c, t: ["body", "info", str(_file(t, "m.obj"))], "expected 'default'"),
    Case(
        "body-info-num-betas-zero",
        lambda c, t: ["body", "info", str(_smplh(t)), "--num-betas", "0"],
        "asked for 0 shape parameters",
    ),
    Case(
        "body-info-num-betas-too-many",
        lambda c, t: ["body", "info", str(_smplh(t)), "--num-betas", "300"],
        "asked for 300 shape parameters",
    ),
    Case("body-info-num-betas-on-default", lambda c, t: ["body", "info", "--num-betas", "4"], "--num-betas"),
    Case("body-info-num-betas-not-a-number", lambda c, t: ["body", "info", "--num-betas", "x"], "--num-betas", 2),
    Case("body-unknown-subcommand", lambda c, t: ["body", "show"], "No such command 'show'", 2),
    Case("unknown-command", lambda c, t: ["frobnicate"], "No such command 'frobnicate'", 2),
    Case("unknown-option", lambda c, t: ["demo", "--fast"], "No such option: --fast", 2),
]
# fmt: on


@pytest.fixture(scope="module")
def inputs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    return Inputs(request, tmp_path_factory.mktemp("bad-input-corpus"))


def _snapshot(root: Path) -> dict[str, tuple[int, int] | None]:
    """Every file below `root` with its (size, modification time in ns), and every folder (None)."""
    return {
        str(p.relative_to(root)): None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
    }


def _assert_one_line(code: int, stdout: str, stderr: str, expected_code: int, fragment: str) -> None:
    lines = stderr.splitlines()
    assert code == expected_code, (code, stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr  # not even a blank line around it
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in stderr and stdout.strip() == "", (stdout, stderr)


def test_the_corpus_covers_every_command() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    commands = {"preprocess", "train-prior", "train-grpo", "import-egoallo", "eval", "recover", "view", "demo", "body"}
    assert commands <= {
        i.split("-")[0] if not i.startswith(("train-", "import-")) else "-".join(i.split("-")[:2]) for i in ids
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_refused_in_one_line(case: Case, inputs: Inputs, tmp_path: Path, run_cli, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    args = case.build(inputs, tmp_path)
    before = _snapshot(tmp_path)
    result = run_cli(*args)
    _assert_one_line(result.exit_code, result.stdout, result.stderr, case.code, case.fragment)
    assert _snapshot(tmp_path) == before  # nothing created, changed or removed


# --- through a real process: read-only output folders, and what a user sees --------------------------------------


def _entry_point() -> list[str]:
    exe = Path(sys.executable).with_name("egogrpo")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "egogrpo"]


def _as_unprivileged(command: list[str]) -> list[str]:
    """`command` so that folder permissions apply to it: as root, with CAP_DAC_OVERRIDE dropped (util-linux setpriv)."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a folder read-only for the command")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]


READ_ONLY_CASES = {
    "preprocess": lambda c, ro: ["preprocess", "cmu", str(c.root), "--out", str(ro / "out.h5")],
    "train-prior": lambda c, ro: ["train-prior", str(c.cmu), "--run-dir", str(ro / "run"), "--preset", "tiny"],
    "train-grpo": lambda c, ro: ["train-grpo", str(c.cmu), "--run-dir", str(ro / "run")],
    "import-egoallo": lambda c, ro: ["import-egoallo", str(c.release), "--out", str(ro / "imported")],
    "eval": lambda c, ro: ["eval", "default", "--data", str(c.cmu), "--out", str(ro / "table")],
    "recover": lambda c, ro: ["recover", str(c.recording), "--out", str(ro / "out")],
    "view": lambda c, ro: ["view", str(c.recovered), "--png", str(ro / "strip.png")],
    "demo": lambda c, ro: ["demo", "--out", str(ro / "demo")],
}

#: Runs each command line of argv[1] (JSON) through the entry point in this one process; prints JSON results.
_DRIVER = """
import contextlib, io, json, sys
from egogrpo.cli.main import main
results = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["egogrpo", *args]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def read_only_results(inputs: Inputs, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """Every READ_ONLY_CASES command run by one unprivileged process against its own read-only folder."""
    import json

    root = tmp_path_factory.mktemp("read-only")
    folders = {name: root / name for name in READ_ONLY_CASES}
    commands = []
    for name, build in READ_ONLY_CASES.items():
        folders[name].mkdir()
        commands.append(build(inputs, folders[name]))
        folders[name].chmod(0o555)
    try:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "80"}
        driver = [sys.executable, "-c", _DRIVER, json.dumps(commands)]
        out = subprocess.run(_as_unprivileged(driver), capture_output=True, text=True, env=env, timeout=300)
    finally:
        for folder in folders.values():
            folder.chmod(0o755)
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout.strip().splitlines()[-1])
    return {name: (*result, folders[name]) for name, result in zip(READ_ONLY_CASES, results, strict=True)}


@pytest.mark.parametrize("command", list(READ_ONLY_CASES))
def test_read_only_output_folder_is_refused_before_any_work(command: str, read_only_results: dict) -> None:
    code, stdout, stderr, folder = read_only_results[command]
    _assert_one_line(code, stdout, stderr, 1, "cannot write in")
    assert str(folder) in stderr and list(folder.iterdir()) == []


@pytest.mark.parametrize("case_id", ["train-prior-batch-size-zero", "preprocess-unknown-split"])
def test_a_real_process_prints_one_line(case_id: str, inputs: Inputs, tmp_path: Path) -> None:
    """What a user's terminal shows (stderr not a terminal, narrow): one line, no traceback, no usage box."""
    case = next(c for c in CASES if c.id == case_id)
    args = case.build(inputs, tmp_path)
    before = _snapshot(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "60"}
    out = subprocess.run([*_entry_point(), *args], capture_output=True, text=True, env=env, timeout=120)
    _assert_one_line(out.returncode, out.stdout, out.stderr, case.code, case.fragment)
    assert _snapshot(tmp_path) == before
