"""`egogrpo eval`: run checkpoints on a motion file's split under a pinned protocol; every number carries its protocol.

A protocol (data_manifests/protocols.json) fixes the split, how sequences are cut into windows, the
sampler and its window rule, the label source, the number of samples and seeds, and the metrics. For
each checkpoint and seed the prior is sampled on every window (conditioned on the ground-truth CPF
trajectory), in chunks of a fixed number of windows, the body is placed by head anchoring, and
per-window metrics are computed. A row reports, per metric, the mean over all (window, sample, seed)
values ± the standard error (EgoAllo's aggregation). Every table also holds a ground-truth row (the
plausibility metrics of the real motion) and an oracle row (the ground-truth state placed on the
ground-truth CPF: the floor of the accuracy metrics under head anchoring and the label source). With a
perceptual model (`reward`), the checkpoint and baseline rows also report how often it scores the ground
truth above their motions (Accuracy and Wrong Count, paper Eq. 21; `egogrpo.eval.discrimination`). The
record written beside the table holds everything needed to reproduce it: file hashes, sequence list,
slicing, sampler, window rule, label source, metric definitions, samples, seeds, body model,
checkpoint hashes, device, egogrpo version.
"""

from __future__ import annotations

import dataclasses
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
from egogrpo.data.hdf5_schema import SPLITS, MotionFile, MotionFileInfo, require_body_model
from egogrpo.data.manifests import load_manifest, manifest_path
from egogrpo.device import resolve_device
from egogrpo.errors import EgogrpoError
from egogrpo.eval import metrics as m
from egogrpo.eval.discrimination import Judge, Tally, ground_truth_logits, load_judge, motion_logits
from egogrpo.eval.windows import (
    LABEL_SOURCES,
    SLICINGS,
    Windows,
    label_joints,
    mean_pose,
    mean_pose_from_json,
    read_windows,
)
from egogrpo.fileio import atomic_output, check_writable, sha256_of_file
from egogrpo.geometry import quat_to_matrix
from egogrpo.model.checkpoint import body_model_matches, load_checkpoint, resolve_checkpoint
from egogrpo.model.combine import COMBINE_RULES, best_of_samples, mean_of_samples
from egogrpo.model.placement import broadcast_state, placed_joints
from egogrpo.model.sampler import solver_options, window_starts
from egogrpo.model.sampling import sample_states
from egogrpo.model.state import MotionState

FPS = 30.0


@dataclass(frozen=True)
class MetricSpec:
    """A column: label, unit, whether it compares with the labels, how it is computed, and its definition.

    compute(pred joints, label joints, pred rotations, label rotations) → (N, S) values.
    """

    label: str
    unit: str
    accuracy: bool  # needs the labels (False: a plausibility metric of the motion alone)
    compute: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
    definition: str


FOOT = "ankles 7/8 and toes 10/11 (SMPL joint order)"
CONTACT = "a foot joint is in contact when its height above the floor (z = 0) is below 0.08 m (ankles) or 0.04 m (toes)"
METRICS: dict[str, MetricSpec] = {
    "mpjpe": MetricSpec(
        "MPJPE", "mm", True, lambda p, g, pr, gr: m.mpjpe(p, g).mean(dim=-1),
        "mean over frames and 22 joints (pelvis + 21 body joints) of ‖p̂ − p‖₂, no alignment beyond head anchoring",
    ),
    "pa_mpjpe": MetricSpec(
        "PA-MPJPE", "mm", True, lambda p, g, pr, gr: m.pa_mpjpe(p, g).mean(dim=-1),
        "MPJPE after a per-frame Umeyama similarity alignment (rotation, translation, scale) of the prediction",
    ),
    "mpjve": MetricSpec(
        "MPJVE", "mm/s", True, lambda p, g, pr, gr: m.mpjve(p, g, FPS),
        f"mean ‖v̂ − v‖₂ over 22 joints and T−1 forward differences × fps, fps {FPS:g}",
    ),
    "mpjre": MetricSpec(
        "MPJRE", "deg", True, lambda p, g, pr, gr: m.mpjre(pr, gr),
        "geodesic angle of R̂ᵀR (not an L1 of axis-angle or Euler angles), mean over frames and the 21 local "
        "(parent-relative) body rotations; the root orientation is placed from the head, so not included",
    ),
    "jitter": MetricSpec(
        "Jitter", "10² m/s³", False, lambda p, g, pr, gr: m.jitter(p, FPS),
        f"third forward difference × fps³ (jerk), norm averaged over T−3 frames and 22 joints, ÷ 100; fps {FPS:g}",
    ),
    "gp": MetricSpec(
        "GP", "m", False, lambda p, g, pr, gr: m.ground_penetration(p),
        "Σ over frames and 22 joints of max(0, −z): depth below the floor z = 0, summed per window",
    ),
    "fs": MetricSpec(
        "FS", "m", False, lambda p, g, pr, gr: m.foot_skating(p, FPS),
        f"Σ over {FOOT} and steps t → t+1 with the joint in contact at both frames of its horizontal "
        f"displacement ‖Δp_xy‖₂; {CONTACT}; summed per window (read with Float and GP: a floating body has "
        "no contacts)",
    ),
    "float": MetricSpec(
        "Float", "mm", False, lambda p, g, pr, gr: m.floating_height(p) * 1000.0,
        f"mean over frames of max(0, height above the floor of the lowest of the {FOOT}); compare with the "
        "ground-truth row",
    ),
    "t_head": MetricSpec(
        "T_head", "m", True, lambda p, g, pr, gr: m.head_position_error(p, g),
        "EgoAllo's T_head: mean over frames of the head joint (15) position error",
    ),
    "gnd": MetricSpec(
        "GND", "", False, lambda p, g, pr, gr: m.egoallo_foot_contact(p),
        "EgoAllo's foot contact: 1 if in any frame an ankle is below 0.08 m or a toe below 0.04 m, else 0",
    ),
    "egoallo_foot_skate": MetricSpec(
        "foot skate", "m", False, lambda p, g, pr, gr: m.egoallo_foot_skate(p),
        "EgoAllo's (EgoEgo/kinpoly) foot skate: z shifted by the window's minimum over the 21 non-root joints, "
        "Σ over ankles (0.08 m) and toes (0.04 m) and steps of (|Δx| + |Δy|)·1[z < H]·(2 − 2^(z/H))",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    """One entry of data_manifests/protocols.json (after command-line overrides).

    splits: the splits evaluated, ("all",) for every sequence; labels: "state_fk" or "stored"
    (`egogrpo.eval.windows.label_joints`); the window rule is `sampler.window_rule`.
    """

    name: str
    description: str
    splits: tuple[str, ...]
    slicing: str
    length: int
    samples: int
    seeds: tuple[int, ...]
    sampler: SamplerConfig
    guidance: str
    labels: str
    metrics: tuple[str, ...]
    requires: dict = dataclasses.field(default_factory=dict)  # {"source_dataset": …, "options": {…}} the file must have


GUIDANCE = ("none", "post")
NAMED_SPLITS = tuple(s for s in SPLITS if s)


def parse_splits(text: str) -> tuple[str, ...]:
    """ "test", "test,val" or "all" → the split names (("all",) for every sequence); unknown names are refused."""
    parts = tuple(dict.fromkeys(p.strip() for p in text.split(",")))
    if parts == ("all",):
        return parts
    unknown = [p for p in parts if p not in NAMED_SPLITS]
    if unknown:
        raise EgogrpoError(
            f"--split {text!r}: unknown split {unknown[0]!r}; give {', '.join(NAMED_SPLITS)}, "
            "a comma-separated list of them, or all"
        )
    return parts


def _at_least_one(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise EgogrpoError(f"{option} must be at least 1, got {value}")


def load_protocol(
    name: str,
    split: str | None = None,
    samples: int | None = None,
    seeds: int | None = None,
    guidance: str | None = None,
) -> Protocol:
    """A named protocol with optional overrides; an unknown name, metric or setting is an error naming the manifest."""
    _at_least_one(samples, "--samples")
    _at_least_one(seeds, "--seeds")
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
        splits=parse_splits(split if split is not None else entry["split"]),
        slicing=entry["slicing"],
        length=int(entry["length"]),
        samples=samples if samples is not None else int(entry["samples"]),
        seeds=tuple(range(seeds)) if seeds is not None else tuple(int(s) for s in entry["seeds"]),
        sampler=config_from_dict(SamplerConfig, entry.get("sampler", {}), where=f"{where}: {name}.sampler"),
        guidance=guidance if guidance is not None else entry.get("guidance", "none"),
        labels=entry.get("labels", "stored"),
        metrics=tuple(entry["metrics"]),
        requires=entry.get("requires", {}),
    )
    if protocol.guidance not in GUIDANCE:
        raise EgogrpoError(f"unknown guidance {protocol.guidance!r}; choose one of {', '.join(GUIDANCE)}")
    if protocol.slicing not in SLICINGS or protocol.labels not in LABEL_SOURCES:
        raise EgogrpoError(
            f"{where}: protocol {name!r}: unknown slicing {protocol.slicing!r} or labels {protocol.labels!r}"
        )
    try:
        window_starts(protocol.length, protocol.sampler.window, protocol.sampler.overlap, protocol.sampler.window_rule)
    except EgogrpoError as e:
        raise EgogrpoError(f"{where}: protocol {name!r}: {e}") from None
    return protocol


@dataclass
class Row:
    """One table row with mean and standard error per metric (a metric it has no value for is absent).

    kind: "ground_truth", "oracle", "checkpoint" or "baseline"; perceptual: `Tally.summary` of its motions
    (checkpoint and baseline rows, with a perceptual model), else None.
    """

    name: str
    kind: str
    checkpoint: str
    weights_sha256: str | None
    values: dict[str, tuple[float, float]]
    seconds: float
    perceptual: dict | None = None
    window_means: dict[str, Tensor] | None = None  # checkpoint rows: per window, the mean over seeds and samples


@dataclass
class EvalResult:
    protocol: Protocol
    rows: list[Row]
    record: dict


#: progress(done, total, text): windows sampled so far (over every checkpoint and seed) of `total`; called once
#: before sampling and after every chunk.
Progress = Callable[[int, int, str], None]


def _metric_values(
    protocol: Protocol, body: BodyModel, state: MotionState | None, windows: Windows
) -> dict[str, Tensor]:
    """Each protocol metric for every (window, sample), flattened; `state` None: the labels' own motion
    (plausibility metrics only)."""
    crops = windows.crops
    truth = label_joints(body, crops, protocol.labels)
    gt_rot = quat_to_matrix(crops.body_quats)
    if state is None:
        joints, rot, truth_s, gt_rot_s = truth, gt_rot, truth, gt_rot
        keys = [k for k in protocol.metrics if not METRICS[k].accuracy]
    else:
        state = broadcast_state(state, crops)
        joints, _ = placed_joints(body, state, crops)
        rot = state.body_rotmats
        truth_s, gt_rot_s = truth[:, None].expand_as(joints), gt_rot[:, None].expand_as(rot)
        keys = list(protocol.metrics)
    return {k: METRICS[k].compute(joints, truth_s, rot, gt_rot_s).reshape(-1).cpu() for k in keys}


def _check_requirements(protocol: Protocol, info: MotionFileInfo, data: str) -> None:
    """EgogrpoError when the file was not made the way the protocol needs (its command or recorded options)."""
    needed_source = protocol.requires.get("source_dataset")
    if needed_source and info.source_dataset != needed_source:
        raise EgogrpoError(
            f"{data}: protocol {protocol.name} needs a file made by `egogrpo preprocess {needed_source}`, "
            f"but this one was made by `preprocess {info.source_dataset}`"
        )
    options = info.options
    for key, value in protocol.requires.get("options", {}).items():
        if options.get(key) != value:
            raise EgogrpoError(
                f"{data}: protocol {protocol.name} needs a file made with {key} {value!r} "
                f"(e.g. `--{key.replace('_', '-')} {value}`), but this one has {options.get(key)!r}"
            )


def _select_sequences(motion: MotionFile, splits: tuple[str, ...], data: str, subset: str | None = None) -> list[str]:
    """The names of `splits` (all sequences for ("all",)), those starting with `subset` when given; none is an error."""
    names = motion.names(None if splits == ("all",) else splits)
    if subset is not None:
        kept = [name for name in names if name.startswith(subset)]
        if not kept:
            prefixes = sorted({name.split("/")[0] + "/" for name in names})
            raise EgogrpoError(
                f"--subset {subset!r}: no sequence of the {','.join(splits)!r} split starts with it "
                f"(the split's sequences start with {', '.join(prefixes) or 'nothing'})"
            )
        names = kept
    if not names:
        counts = {s or "(none)": len(motion.names(s)) for s in SPLITS}
        have = ", ".join(f"{s} ({n})" for s, n in counts.items() if n) or "no sequences"
        raise EgogrpoError(
            f"{data}: the {','.join(splits)!r} split is empty; the file has: {have} (choose one with --split)"
        )
    return names


def _baseline_pose(
    config: EvalConfig, protocol: Protocol, motion: MotionFile, body: BodyModel, metas: list[dict]
) -> tuple[MotionState, str]:
    """The mean training pose and where it came from, refusing training data that is being evaluated.

    Order: --baseline-from (a motion file: its train split); a checkpoint's `extra["mean_training_pose"]`;
    the train split of the evaluated file when train is not evaluated.
    """
    how = "pass --baseline-from FILE (a motion file with a train split)"
    if config.baseline_from is not None:
        with MotionFile(config.baseline_from) as source:
            names = source.names("train")
            if not names:
                have = ", ".join(s for s in NAMED_SPLITS if source.names(s)) or "no named split"
                raise EgogrpoError(f"--baseline-from {config.baseline_from}: no 'train' split (the file has: {have})")
            same_file = source.path.resolve() == motion.path.resolve()
            if same_file and ("all" in protocol.splits or "train" in protocol.splits):
                raise EgogrpoError(f"--baseline-from {config.baseline_from}: its train split is being evaluated")
            pose = mean_pose(source, names, body.num_betas)
            return pose, f"train split of {config.baseline_from} (sha256 {sha256_of_file(config.baseline_from)})"
    for meta in metas:
        value = meta.get("extra", {}).get("mean_training_pose")
        if value is not None:
            where = f"{meta['directory']}/config.json"
            return mean_pose_from_json(value, where, body.num_betas), f"{where} (extra.mean_training_pose)"
    names = motion.names("train")
    if not names:
        have = ", ".join(s for s in NAMED_SPLITS if motion.names(s)) or "no named split"
        raise EgogrpoError(f"--baseline: {config.data} has no 'train' split (it has: {have}); {how}")
    if "all" in protocol.splits or "train" in protocol.splits:
        raise EgogrpoError(
            f"--baseline: the mean training pose would come from the clips being evaluated (the train split "
            f"of {config.data}); {how}"
        )
    return mean_pose(motion, names, body.num_betas), f"train split of {config.data}"


def _with_speed_options(protocol: Protocol, config: EvalConfig) -> Protocol:
    """The protocol with `--projection` / `--bf16` / `--solver` / `--steps` / `--spacing` applied to its sampler
    (recorded with it)."""
    if config.projection is not None and config.projection not in ("svd", "polar"):
        raise EgogrpoError(f"--projection must be svd or polar, got {config.projection!r}")
    sampler = dataclasses.replace(
        protocol.sampler,
        projection=config.projection or protocol.sampler.projection,
        autocast=config.bf16 or protocol.sampler.autocast,
    )
    sampler = solver_options(sampler, config.solver, config.steps, config.spacing)
    return dataclasses.replace(protocol, sampler=sampler)


def _check_combine(config: EvalConfig, protocol: Protocol) -> None:
    """EgogrpoError naming the option for a --combine setting evaluation cannot run with."""
    if config.combine not in COMBINE_RULES:
        raise EgogrpoError(f"--combine must be one of {', '.join(COMBINE_RULES)}, got {config.combine!r}")
    if config.combine == "none":
        if config.verifier is not None:
            raise EgogrpoError("--verifier applies to --combine best only")
        return
    if type(config.candidates) is not int or config.candidates < 2:
        raise EgogrpoError(f"--candidates must be a whole number ≥ 2 with --combine, got {config.candidates}")
    if protocol.samples != 1:
        raise EgogrpoError(f"--combine {config.combine} makes one motion per window and seed: use --samples 1")
    if config.combine == "best" and config.verifier is None:
        raise EgogrpoError("--combine best needs --verifier CKPT (a perceptual model from `egogrpo train-reward`)")
    if config.combine == "mean" and config.verifier is not None:
        raise EgogrpoError("--verifier applies to --combine best only")


def evaluate(config: EvalConfig, progress: Progress | None = None) -> EvalResult:
    """Evaluate every checkpoint (and the baseline, if asked) under the protocol; write the record if `out` is set.

    Every input and option is checked before sampling starts.
    """
    protocol = load_protocol(config.protocol, config.split, config.samples, config.seeds, config.guidance)
    protocol = _with_speed_options(protocol, config)
    _at_least_one(config.chunk_size, "--chunk-size")
    _check_combine(config, protocol)
    device = resolve_device(config.device)
    if config.out:
        for path in report_paths(config.out).values():
            check_writable(path, "--out")
            if path.exists() and not config.overwrite:
                raise EgogrpoError(f"--out {path}: exists; pass --overwrite to replace it")
    body = load_body_model(config.body)
    models = []
    for spec in config.checkpoints:
        folder = resolve_checkpoint(spec)
        model, model_config, meta = load_checkpoint(folder, device=device)
        models.append((spec, folder, model, model_config, meta))
    judge = None if config.reward is None else load_judge(config.reward, body.model_id, device)
    verifier = None
    if config.combine == "best":
        verifier = load_judge(config.verifier, body.model_id, device, option="--verifier")
    with MotionFile(config.data) as motion:
        info = motion.info
        require_body_model(config.data, info, body.model_id, body.sha256)
        for _, folder, _, _, meta in models:
            if not body_model_matches(str(meta["body_model_id"]), info.body_model_id):
                raise EgogrpoError(
                    f"{folder}: a checkpoint for body model {meta['body_model_id']}, but {config.data} was made with {info.body_model_id}"
                )
        _check_requirements(protocol, info, config.data)
        names = _select_sequences(motion, protocol.splits, config.data, config.subset)
        windows = read_windows(motion, names, protocol.length, protocol.slicing)
        if windows is None:
            raise EgogrpoError(
                f"{config.data}: no sequence of the {','.join(protocol.splits)!r} split has "
                f"{protocol.length + (protocol.slicing == 'egoallo')} frames"
            )
        baseline = None
        if config.baseline:
            baseline = _baseline_pose(config, protocol, motion, body, [meta for *_, meta in models])
    body_device = body.to(device=device, dtype=torch.float32)
    chunks = [(a, min(a + config.chunk_size, len(windows))) for a in range(0, len(windows), config.chunk_size)]
    gt_logits = None  # each window's ground truth, scored once for every row
    if judge is not None:
        gt_logits = ground_truth_logits(judge, body_device, windows, protocol.labels, config.chunk_size, device)

    def judged(tally: Tally | None, state: MotionState, part: Windows, first: int) -> None:
        """Add the perceptual pairs of a chunk of windows (from window `first`) to `tally` (None: no model)."""
        if tally is not None and judge is not None and gt_logits is not None:
            generated = motion_logits(judge, body_device, state, part, config.chunk_size).cpu()
            tally.add(gt_logits[first : first + len(part)], generated)

    def summary(tally: Tally | None) -> dict | None:
        return None if tally is None or gt_logits is None else tally.summary(gt_logits)

    def fixed_row(name: str, kind: str, state_of: Callable[[Windows], MotionState | None], scored: bool = False) -> Row:
        """A row without sampling (ground truth, oracle, baseline), its metrics computed chunk by chunk; `scored`:
        its motions are also judged by the perceptual model."""
        start = time.perf_counter()
        values: dict[str, list[Tensor]] = {}
        tally = Tally() if scored and judge is not None else None
        for a, b in chunks:
            part = windows.chunk(a, b, device)
            motion = state_of(part)
            for k, v in _metric_values(protocol, body_device, motion, part).items():
                values.setdefault(k, []).append(v)
            if motion is not None:
                judged(tally, motion, part, a)
        return Row(name, kind, "", None, _aggregate(values), time.perf_counter() - start, summary(tally))

    rows = [
        fixed_row("ground truth: the label motion", "ground_truth", lambda part: None),
        fixed_row("oracle: ground-truth state on the ground-truth CPF", "oracle", _oracle_state),
    ]
    total, done = len(models) * len(protocol.seeds) * len(windows), 0
    if progress is not None:
        progress(0, total, f"{len(windows)} windows × {len(protocol.seeds)} seed(s) × {len(models)} checkpoint(s)")
    for spec, folder, model, model_config, meta in models:
        start = time.perf_counter()
        values: dict[str, list[Tensor]] = {k: [] for k in protocol.metrics}
        window_means = {k: torch.zeros(len(windows), dtype=torch.float64) for k in protocol.metrics}
        tally = Tally() if judge is not None else None
        for seed in protocol.seeds:
            for a, b in chunks:
                part = windows.chunk(a, b, device)
                draws = protocol.samples if config.combine == "none" else config.candidates
                states = sample_states(model, model_config, protocol.sampler, part.crops, seed, draws, first_group=a)
                if config.combine == "mean":
                    states = mean_of_samples(states)
                elif verifier is not None:
                    states = best_of_samples(
                        states, motion_logits(verifier, body_device, states, part, config.chunk_size)
                    )
                if protocol.guidance == "post":
                    states = _post_guidance(body_device, states, part)
                for k, v in _metric_values(protocol, body_device, states, part).items():
                    values[k].append(v)
                    window_means[k][a:b] += v.double().reshape(b - a, -1).mean(dim=1) / len(protocol.seeds)
                judged(tally, states, part, a)
                done += b - a
                if progress is not None:
                    progress(done, total, f"{spec}: seed {seed}, windows {b}/{len(windows)}")
        rows.append(
            Row(str(spec), "checkpoint", str(folder), meta.get("weights_sha256"), _aggregate(values),
                time.perf_counter() - start, summary(tally), window_means)
        )  # fmt: skip
    baseline_source = None
    if baseline is not None:
        state, baseline_source = baseline
        state = state.to(device)
        rows.append(fixed_row("baseline: mean training pose at the head", "baseline", lambda part: state, True))
    record = _record(config, protocol, info, windows, rows, body, device, baseline_source, judge)
    if config.out:
        write_reports(Path(config.out), protocol, rows, record)
    return EvalResult(protocol, rows, record)


def _oracle_state(windows: Windows) -> MotionState:
    """The ground-truth state of the windows as (N, 1, T, …): one "sample" per window."""
    return MotionState.from_crop(windows.crops, include_hands=False).map(lambda v: v[:, None])


def _post_guidance(body: BodyModel, states: MotionState, windows: Windows) -> MotionState:
    """EgoAllo's post-sampling guidance: test-time refinement (priors, smoothness, foot skating) of every sample."""
    from egogrpo.config import RefineConfig
    from egogrpo.model.refine import refine

    lead = states.body_rotmats.shape[:-3]
    return refine(body, states, windows.crops.T_world_cpf[:, None].expand(*lead, 7), RefineConfig(use_wrists=False))


def _aggregate(values: dict[str, list[Tensor]]) -> dict[str, tuple[float, float]]:
    return {k: m.mean_and_standard_error(torch.cat(v).double()) for k, v in values.items()}


def _record(
    config: EvalConfig,
    protocol: Protocol,
    info: object,
    windows: Windows,
    rows: list[Row],
    body: BodyModel,
    device: torch.device,
    baseline_source: str | None,
    judge: Judge | None = None,
) -> dict:
    sampler = protocol.sampler
    return {
        "egogrpo_version": __version__,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "protocol": {**config_to_dict(protocol), "sampler": config_to_dict(sampler)},
        "stitching": {
            "window": sampler.window,
            "overlap": sampler.overlap,
            "window_rule": sampler.window_rule,
            "rule": {
                "egoallo": "EgoAllo's: windows start at range(0, L, window − overlap), each cut at the sequence end "
                "(a 128-frame window is denoised as [0, 128) and [96, 128)), blended with EgoAllo's weights",
                "aligned": "egogrpo's: whole windows, the last aligned to the sequence end (a 128-frame window is "
                "one denoiser call), blended with EgoAllo's weights",
            }[sampler.window_rule],
        },
        "slicing": {
            "egoallo": "EgoAllo's deterministic slices: floor(sum T / (length + 1)) items over the sequences of at "
            "least length + 1 frames (sorted by name); item i reads sequence i mod N at slice i div N, start "
            "(slice * (length + 1)) mod (T - length - 1); the window skips the slice's first frame",
            "windows": "non-overlapping windows from frame 0 of every sequence",
        }[protocol.slicing],
        "labels": {
            "state_fk": "forward kinematics of the ground-truth state (betas, body rotations, T_world_root) with "
            "the evaluation body model (EgoAllo's labels)",
            "stored": "the file's joints_wrt_cpf placed on its CPF, the pelvis from T_world_root",
        }[protocol.labels],
        "placement": "head anchored to the ground-truth CPF (EgoAllo)",
        "combine": {
            "rule": config.combine,
            "candidates": config.candidates if config.combine != "none" else None,
            "verifier": None if config.verifier is None else str(Path(config.verifier).resolve()),
            "definition": {
                "none": "each sample is a row value",
                "mean": "per window and seed, the mean of the candidates (rotations: the mean matrix projected to SO(3))",
                "best": "per window and seed, the candidate the verifier's logit ranks highest",
            }[config.combine],
        },
        "aggregation": "mean over every (window, sample, seed) value ± standard error std/sqrt(n), std with ddof 0",
        "metrics": {
            k: {"label": METRICS[k].label, "unit": METRICS[k].unit, "definition": METRICS[k].definition}
            for k in protocol.metrics
        },
        "device": str(device),
        "chunk_size": config.chunk_size,
        "data": {
            "file": str(Path(config.data).resolve()),
            "sha256": sha256_of_file(config.data),
            "body_model_id": info.body_model_id,  # type: ignore[attr-defined]
            "splits": list(protocol.splits),
            "subset": config.subset,
            "windows": [f"{name}@{start}" for name, start in zip(windows.names, windows.starts, strict=True)],
        },
        "body_model": {"id": body.model_id, "sha256": body.sha256},
        "baseline_pose": baseline_source,
        "perceptual": None if judge is None else judge.record,
        "paired": paired_differences(rows),
        "rows": [
            {
                "name": r.name,
                "kind": r.kind,
                "checkpoint": r.checkpoint,
                "weights_sha256": r.weights_sha256,
                "seconds": round(r.seconds, 2),
                "metrics": {
                    k: {"mean": v[0], "standard_error": v[1], "unit": METRICS[k].unit} for k, v in r.values.items()
                },
                **({} if judge is None else {"perceptual": r.perceptual}),
            }
            for r in rows
        ],
    }


def paired_differences(rows: list[Row]) -> dict | None:
    """Each later checkpoint row minus the first, paired by window: per metric the mean ± standard error over
    the windows of (row − first) of the per-window means over seeds and samples, and the mean change in % of
    the first row's mean. Pairing removes the window-to-window spread that dominates each row's own ± (None
    with fewer than two checkpoint rows)."""
    checkpoints = [r for r in rows if r.window_means is not None]
    if len(checkpoints) < 2:
        return None
    first = checkpoints[0]
    differences = {}
    for row in checkpoints[1:]:
        entry = {}
        for k, reference in first.window_means.items():
            entry[k] = m.paired_difference(row.window_means[k], reference)
        differences[row.name] = entry
    return {
        "reference": first.name,
        "definition": "per window: the mean over seeds and samples; then the mean ± standard error (ddof 0) over "
        "windows of (row − reference), and that mean in % of the reference's mean",
        "rows": differences,
    }


def paired_markdown(protocol: Protocol, paired: dict | None) -> list[str]:
    """The paired differences as Markdown lines (empty without them)."""
    if paired is None:
        return []
    columns = table_columns(protocol)
    lines = [
        f"Paired difference to `{paired['reference']}` (per-window means over seeds and samples; mean ± s.e. over "
        "windows; % of the reference):",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for name, entry in paired["rows"].items():
        cells = [
            f"{entry[k]['mean']:+.3f} ± {entry[k]['standard_error']:.3f}"
            + (f" ({entry[k]['percent']:+.1f} %)" if entry[k]["percent"] is not None else "")
            for k in protocol.metrics
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


#: The table's perceptual columns (with a perceptual model): Accuracy in %, and Wrong Count of all pairs.
PERCEPTUAL_COLUMNS = ("Acc (%)", "Wrong")


def table_columns(protocol: Protocol, perceptual: bool = False) -> list[str]:
    """Column headers: the protocol's metrics, then the perceptual columns when a perceptual model judged."""
    metrics = [
        f"{METRICS[k].label} ({METRICS[k].unit})" if METRICS[k].unit else METRICS[k].label for k in protocol.metrics
    ]
    return metrics + list(PERCEPTUAL_COLUMNS) if perceptual else metrics


def format_value(mean: float, error: float) -> str:
    return f"{mean:.3f} ± {error:.3f}"


def row_cells(protocol: Protocol, row: Row, perceptual: bool = False) -> list[str]:
    """The row's table cells, one per protocol metric ("—" where it has no value), then, when `perceptual`,
    Accuracy (%) and "wrong/pairs"."""
    cells = [format_value(*row.values[k]) if k in row.values else "—" for k in protocol.metrics]
    if not perceptual:
        return cells
    judged = row.perceptual
    if judged is None:
        return [*cells, "—", "—"]
    return [*cells, f"{100.0 * judged['accuracy']:.2f}", f"{judged['wrong_count']}/{judged['pairs']}"]


def markdown_table(protocol: Protocol, rows: list[Row], perceptual: bool = False) -> list[str]:
    """The table as Markdown lines (the .md report, and the terminal output when stdout is not a terminal)."""
    columns = table_columns(protocol, perceptual)
    lines = ["| method | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    return lines + ["| " + r.name + " | " + " | ".join(row_cells(protocol, r, perceptual)) + " |" for r in rows]


def summary_line(protocol: Protocol, record: dict) -> str:
    return (
        f"Data: {record['data']['file']} (sha256 {record['data']['sha256'][:12]}), split {','.join(protocol.splits)}, "
        f"{len(record['data']['windows'])} windows of {protocol.length} frames ({protocol.slicing}), "
        f"{protocol.samples} sample(s), seeds {list(protocol.seeds)}, window rule {protocol.sampler.window_rule}, "
        f"labels {protocol.labels}, egogrpo {__version__}."
        + (f" Subset: sequences starting with {record['data']['subset']}." if record["data"].get("subset") else "")
        + (f" Baseline: the mean pose of the {record['baseline_pose']}." if record.get("baseline_pose") else "")
    )


REPORT_SUFFIXES = (".json", ".md", ".csv")


def report_paths(out: str | Path) -> dict[str, Path]:
    """The files `--out OUT` names, by suffix: OUT.json, OUT.md, OUT.csv. A report suffix on OUT is replaced
    (table.md → table.json, …); any other dot stays part of the name (eval_alpha0.05 → eval_alpha0.05.json)."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix in REPORT_SUFFIXES else out
    return {suffix: stem.with_name(stem.name + suffix) for suffix in REPORT_SUFFIXES}


def write_reports(out: Path, protocol: Protocol, rows: list[Row], record: dict) -> None:
    """OUT.json (the full record), OUT.md and OUT.csv (the table), each written atomically.

    With a perceptual model (record["perceptual"]) the tables gain its columns; the CSV holds accuracy (a
    fraction), wrong_count, pairs and the mean scores of the ground truth and of the generated motions."""
    perceptual = record.get("perceptual") is not None
    paths = report_paths(out)
    with atomic_output(paths[".json"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"Protocol `{protocol.name}`, split {','.join(protocol.splits)}: {protocol.description}",
        "",
        *markdown_table(protocol, rows, perceptual),
    ]
    paired = paired_markdown(protocol, record.get("paired"))
    lines += ["", *paired, *([""] if paired else []), summary_line(protocol, record)]
    with atomic_output(paths[".md"]) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    header = [f"{k}_mean,{k}_standard_error" for k in protocol.metrics]
    if perceptual:
        header.append(",".join(f"perceptual_{k}" for k in PERCEPTUAL_CSV))
    csv = ["method," + ",".join(header)]
    for r in rows:
        cells = [f"{r.values[k][0]:.6f},{r.values[k][1]:.6f}" if k in r.values else "," for k in protocol.metrics]
        if perceptual:
            cells.append(",".join(_perceptual_csv(r.perceptual)))
        csv.append(f'"{r.name}",' + ",".join(cells))
    with atomic_output(paths[".csv"]) as tmp:
        tmp.write_text("\n".join(csv) + "\n")


#: The CSV's perceptual columns (each prefixed "perceptual_").
PERCEPTUAL_CSV = ("accuracy", "wrong_count", "pairs", "score_gt_mean", "score_generated_mean")


def _perceptual_csv(judged: dict | None) -> list[str]:
    """A row's PERCEPTUAL_CSV cells (empty when the row was not judged)."""
    if judged is None:
        return [""] * len(PERCEPTUAL_CSV)
    return [
        f"{judged['accuracy']:.6f}",
        str(judged["wrong_count"]),
        str(judged["pairs"]),
        f"{judged['score_gt']['mean']:.6f}",
        f"{judged['score_generated']['mean']:.6f}",
    ]
