"""`egogrpo eval`: run checkpoints on a motion file's split under a pinned protocol; every number carries its protocol.

A protocol (data_manifests/protocols.json) fixes the split, how sequences are cut into windows, the
sampler, the number of samples and seeds, and the metrics. For each checkpoint and seed the prior is
sampled on every window (conditioned on the ground-truth CPF trajectory), the body is placed by
head anchoring, and per-window metrics are computed. A row reports, per metric, the mean over all
(window, sample, seed) values ± the standard error (EgoAllo's aggregation). The record written
beside the table holds everything needed to reproduce it: file hashes, sequence list, slicing,
sampler, samples, seeds, body model, checkpoint hashes, egogrpo version.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from egogrpo import __version__
from egogrpo.body import BodyModel, load_body_model
from egogrpo.config import EvalConfig, SamplerConfig, config_from_dict, config_to_dict
from egogrpo.data.hdf5_schema import MotionFile, require_body_model
from egogrpo.data.manifests import load_manifest, manifest_path
from egogrpo.errors import EgogrpoError
from egogrpo.eval import metrics as m
from egogrpo.eval.windows import Windows, broadcast_state, mean_pose_state, placed_joints, sample_states, split_windows
from egogrpo.fileio import atomic_output, sha256_of_file
from egogrpo.geometry import quat_to_matrix
from egogrpo.model.checkpoint import body_model_matches, load_checkpoint, resolve_checkpoint
from egogrpo.model.state import MotionState


@dataclass(frozen=True)
class MetricSpec:
    """A column: its label, unit, and how it is computed from predicted/true joints and rotations."""

    label: str
    unit: str
    compute: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # (pred joints, gt joints, pred rot, gt rot) → (N, S)


FPS = 30.0
METRICS: dict[str, MetricSpec] = {
    "mpjpe": MetricSpec("MPJPE", "mm", lambda p, g, pr, gr: m.mpjpe(p, g).mean(dim=-1)),
    "pa_mpjpe": MetricSpec("PA-MPJPE", "mm", lambda p, g, pr, gr: m.pa_mpjpe(p, g).mean(dim=-1)),
    "mpjve": MetricSpec("MPJVE", "mm/s", lambda p, g, pr, gr: m.mpjve(p, g, FPS)),
    "mpjre": MetricSpec("MPJRE", "deg", lambda p, g, pr, gr: m.mpjre(pr, gr)),
    "jitter": MetricSpec("Jitter", "10² m/s³", lambda p, g, pr, gr: m.jitter(p, FPS)),
    "gp": MetricSpec("GP", "m", lambda p, g, pr, gr: m.ground_penetration(p)),
    "fs": MetricSpec("FS", "m", lambda p, g, pr, gr: m.foot_skating(p, FPS)),
    "t_head": MetricSpec("T_head", "m", lambda p, g, pr, gr: m.head_position_error(p, g)),
    "gnd": MetricSpec("GND", "", lambda p, g, pr, gr: m.egoallo_foot_contact(p)),
    "egoallo_foot_skate": MetricSpec("foot skate", "m", lambda p, g, pr, gr: m.egoallo_foot_skate(p)),
}


@dataclass(frozen=True)
class Protocol:
    """One entry of data_manifests/protocols.json (after command-line overrides)."""

    name: str
    description: str
    split: str
    slicing: str
    length: int
    samples: int
    seeds: tuple[int, ...]
    sampler: SamplerConfig
    guidance: str
    metrics: tuple[str, ...]


GUIDANCE = ("none", "post")


def load_protocol(
    name: str,
    split: str | None = None,
    samples: int | None = None,
    seeds: int | None = None,
    guidance: str | None = None,
) -> Protocol:
    """A named protocol with optional overrides; an unknown name or metric is an error naming the manifest."""
    manifest = load_manifest("protocols")
    where = manifest_path("protocols")
    entry = manifest["protocols"].get(name)
    if entry is None:
        raise EgogrpoError(f"{where}: unknown protocol {name!r}; known: {', '.join(manifest['protocols'])}")
    unknown = [k for k in entry["metrics"] if k not in METRICS]
    if unknown:
        raise EgogrpoError(f"{where}: protocol {name!r} names unknown metric(s) {', '.join(unknown)}")
    protocol = Protocol(
        name=name,
        description=entry["description"],
        split=split or entry["split"],
        slicing=entry["slicing"],
        length=int(entry["length"]),
        samples=samples or int(entry["samples"]),
        seeds=tuple(range(seeds)) if seeds else tuple(int(s) for s in entry["seeds"]),
        sampler=config_from_dict(SamplerConfig, entry.get("sampler", {}), where=f"{where}: {name}.sampler"),
        guidance=guidance or entry.get("guidance", "none"),
        metrics=tuple(entry["metrics"]),
    )
    if protocol.guidance not in GUIDANCE:
        raise EgogrpoError(f"unknown guidance {protocol.guidance!r}; choose one of {', '.join(GUIDANCE)}")
    return protocol


@dataclass
class Row:
    """One table row: a checkpoint (or the baseline) with mean and standard error per metric."""

    name: str
    checkpoint: str
    weights_sha256: str | None
    values: dict[str, tuple[float, float]]
    seconds: float


@dataclass
class EvalResult:
    protocol: Protocol
    rows: list[Row]
    record: dict


def _metric_values(protocol: Protocol, body: BodyModel, state: MotionState, windows: Windows) -> dict[str, Tensor]:
    """Each protocol metric for every (window, sample), flattened."""
    state = broadcast_state(state, windows.crops)
    predicted, truth = placed_joints(body, state, windows.crops)
    pred_rot = state.body_rotmats
    gt_rot = quat_to_matrix(windows.crops.body_quats)[:, None].expand_as(pred_rot)
    return {k: METRICS[k].compute(predicted, truth, pred_rot, gt_rot).reshape(-1) for k in protocol.metrics}


def evaluate(config: EvalConfig, progress: Callable[[str], None] | None = None) -> EvalResult:
    """Evaluate every checkpoint (and the baseline, if asked) under the protocol; write the record if `out` is set."""
    protocol = load_protocol(config.protocol, config.split, config.samples, config.seeds, config.guidance)
    with MotionFile(config.data) as motion:
        info = motion.info
        sequences = motion.names(protocol.split)
    if not sequences:
        raise EgogrpoError(f"{config.data}: the {protocol.split!r} split is empty")
    body = load_body_model(config.body)
    require_body_model(config.data, info, body.model_id, body.sha256)
    windows = split_windows(config.data, protocol.split, protocol.length, slicing=protocol.slicing)
    if windows is None:
        raise EgogrpoError(
            f"{config.data}: no sequence of the {protocol.split!r} split has {protocol.length + 1} frames"
        )
    rows = []
    for spec in config.checkpoints:
        folder = resolve_checkpoint(spec)
        model, model_config, meta = load_checkpoint(folder)
        if not body_model_matches(str(meta["body_model_id"]), info.body_model_id):
            raise EgogrpoError(
                f"{folder}: a checkpoint for body model {meta['body_model_id']}, but {config.data} was made with {info.body_model_id}"
            )
        start = time.perf_counter()
        values: dict[str, list[Tensor]] = {k: [] for k in protocol.metrics}
        for seed in protocol.seeds:
            if progress is not None:
                progress(f"{spec}: seed {seed}")
            states = sample_states(
                model, model_config, protocol.sampler, windows.crops, seed=seed, num_samples=protocol.samples
            )
            if protocol.guidance == "post":
                states = _post_guidance(body, states, windows)
            for k, v in _metric_values(protocol, body, states, windows).items():
                values[k].append(v)
        rows.append(
            Row(str(spec), str(folder), meta.get("weights_sha256"), _aggregate(values), time.perf_counter() - start)
        )
    if config.baseline:
        start = time.perf_counter()
        baseline = mean_pose_state(config.data, ("train",), body.num_betas)
        values = {k: [v] for k, v in _metric_values(protocol, body, baseline, windows).items()}
        rows.append(
            Row("baseline: mean training pose at the head", "", None, _aggregate(values), time.perf_counter() - start)
        )
    record = _record(config, protocol, info, windows, rows, body)
    if config.out:
        write_reports(Path(config.out), protocol, rows, record)
    return EvalResult(protocol, rows, record)


def _post_guidance(body: BodyModel, states: MotionState, windows: Windows) -> MotionState:
    """EgoAllo's post-sampling guidance: test-time refinement (priors, smoothness, foot skating) of every sample."""
    from egogrpo.config import RefineConfig
    from egogrpo.recover.refine import refine

    lead = states.body_rotmats.shape[:-3]
    return refine(body, states, windows.crops.T_world_cpf[:, None].expand(*lead, 7), RefineConfig(use_wrists=False))


def _aggregate(values: dict[str, list[Tensor]]) -> dict[str, tuple[float, float]]:
    return {k: m.mean_and_standard_error(torch.cat(v).double()) for k, v in values.items()}


def _record(
    config: EvalConfig, protocol: Protocol, info: object, windows: Windows, rows: list[Row], body: BodyModel
) -> dict:
    return {
        "egogrpo_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "protocol": {**config_to_dict(protocol), "sampler": config_to_dict(protocol.sampler)},
        "stitching": {"window": protocol.sampler.window, "overlap": protocol.sampler.overlap},
        "placement": "head anchored to the ground-truth CPF (EgoAllo)",
        "data": {
            "file": str(Path(config.data).resolve()),
            "sha256": sha256_of_file(config.data),
            "body_model_id": info.body_model_id,  # type: ignore[attr-defined]
            "split": protocol.split,
            "windows": [f"{name}@{start}" for name, start in zip(windows.names, windows.starts, strict=True)],
        },
        "body_model": {"id": body.model_id, "sha256": body.sha256},
        "rows": [
            {
                "name": r.name,
                "checkpoint": r.checkpoint,
                "weights_sha256": r.weights_sha256,
                "seconds": round(r.seconds, 2),
                "metrics": {
                    k: {"mean": v[0], "standard_error": v[1], "unit": METRICS[k].unit} for k, v in r.values.items()
                },
            }
            for r in rows
        ],
    }


def table_columns(protocol: Protocol) -> list[str]:
    return [
        f"{METRICS[k].label} ({METRICS[k].unit})" if METRICS[k].unit else METRICS[k].label for k in protocol.metrics
    ]


def format_value(mean: float, error: float) -> str:
    return f"{mean:.3f} ± {error:.3f}"


def write_reports(out: Path, protocol: Protocol, rows: list[Row], record: dict) -> None:
    """OUT.json (the full record), OUT.md and OUT.csv (the table), each written atomically."""
    columns = table_columns(protocol)
    with atomic_output(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"Protocol `{protocol.name}`: {protocol.description}",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    lines += [
        "| " + r.name + " | " + " | ".join(format_value(*r.values[k]) for k in protocol.metrics) + " |" for r in rows
    ]
    lines += ["", f"Data: {record['data']['file']} (sha256 {record['data']['sha256'][:12]}), split {protocol.split}, "
              f"{len(record['data']['windows'])} windows of {protocol.length} frames ({protocol.slicing}), "
              f"{protocol.samples} sample(s), seeds {list(protocol.seeds)}, egogrpo {__version__}."]  # fmt: skip
    with atomic_output(out.with_suffix(".md")) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    csv = ["method," + ",".join(f"{k}_mean,{k}_standard_error" for k in protocol.metrics)]
    csv += [
        f'"{r.name}",' + ",".join(f"{r.values[k][0]:.6f},{r.values[k][1]:.6f}" for k in protocol.metrics) for r in rows
    ]
    with atomic_output(out.with_suffix(".csv")) as tmp:
        tmp.write_text("\n".join(csv) + "\n")
