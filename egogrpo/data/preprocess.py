"""`egogrpo preprocess`: list a source's clips, read and process them in worker processes, write one HDF5.

Each source turns its inputs into `ClipTask`s (one per clip, with its output name and split). Worker
processes read a clip (`read_clip`), process it on the output body model (`process_clip`) and send
the arrays back; the main process is the only writer. Output goes to `<out>.partial` and is renamed
onto `<out>` when every clip is done, so an interrupted run never leaves a file that looks complete,
and running the same command again resumes, skipping finished sequences.

Named corpora (data_manifests/corpora.json: CMU, its BVH release, 100STYLE, HDM05, ACCAD) set the
sequence names, the split and the licence recorded with every sequence; `merge_motion_files`
(`preprocess merge`) puts several outputs in one file for training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import torch

from egogrpo.body import BodyModel, load_body_model
from egogrpo.config import PreprocessConfig, config_to_dict
from egogrpo.data.corpus import CorpusClip, corpus_tasks, load_corpus_manifest
from egogrpo.data.glitches import GLITCH_POLICIES, DroppedClipError, apply_glitch_policy
from egogrpo.data.hdf5_schema import MotionFile, MotionFileInfo, MotionFileWriter
from egogrpo.data.manifests import load_manifest, manifest_path
from egogrpo.data.motion import MotionClip, mirror_clip
from egogrpo.data.process import ShortClipError, process_clip
from egogrpo.data.sequence import SequenceArrays
from egogrpo.data.skeleton_motion import SkeletonMotion, drop_leading_bind_frame
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import check_writable, sha256_of_file

SOURCES = ("amass", "cmu", "bvh", "rich", "adt", "corpus")


@dataclass(frozen=True)
class ClipTask:
    """One clip to read: the reader's input files, the output group name and the split (corpus: its manifest entry)."""

    name: str
    split: str
    paths: tuple[str, ...]
    corpus_clip: CorpusClip | None = None


@dataclass
class PreprocessSummary:
    """What a run did (names of sequences, counts, seconds)."""

    out: Path
    written: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)  # finished by an earlier, interrupted run
    skipped_short: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # clip → why the glitch policy left it out
    excluded: dict[str, str] = field(default_factory=dict)  # clip (corpus: source) → reason, from the manifest
    frames: int = 0
    seconds: float = 0.0
    splits: dict[str, int] = field(default_factory=dict)  # split → sequences written
    namings: dict[str, int] = field(default_factory=dict)  # skeleton convention detected → sequences
    bind_frames_dropped: int = 0  # BVH sequences whose leading bind pose was dropped


# --- corpora (data_manifests/corpora.json) ---------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    """A named corpus: its licence (None: not verified), reading command, sequence-name prefix and split rule."""

    name: str
    licence: str | None
    source: str  # "cmu" (ASF/AMC) or "bvh"
    prefix: str
    split: str  # "cmu-manifest", "train" or "option" (preprocess bvh --split)


def corpus_info(name: str) -> Corpus:
    """The corpus `name` of data_manifests/corpora.json; EgogrpoError naming --corpus for an unknown one."""
    corpora = load_manifest("corpora").get("corpora")
    if not isinstance(corpora, dict):
        raise EgogrpoError(f"{manifest_path('corpora')}: expected a 'corpora' object")
    if name not in corpora:
        raise EgogrpoError(f"--corpus {name!r} is not a known corpus; use one of {', '.join(corpora)}")
    entry = corpora[name]
    try:
        corpus = Corpus(name, entry["licence"], entry["source"], entry["prefix"], entry["split"])
    except (KeyError, TypeError):
        raise EgogrpoError(
            f"{manifest_path('corpora')}: corpus {name!r} lacks licence, source, prefix or split"
        ) from None
    if corpus.source not in ("cmu", "bvh") or corpus.split not in ("cmu-manifest", "train", "option"):
        raise EgogrpoError(f"{manifest_path('corpora')}: corpus {name!r} has an unknown source or split rule")
    return corpus


def config_corpus(config: PreprocessConfig) -> Corpus | None:
    """The run's corpus: --corpus, else "cmu" for `preprocess cmu`; None for other sources."""
    name = config.corpus or ("cmu" if config.source == "cmu" else "")
    return corpus_info(name) if name else None


def recorded_licence(config: PreprocessConfig) -> str:
    """The licence recorded for the run's sequences: --licence, else the corpus's, else "" (not known)."""
    corpus = config_corpus(config)
    return config.licence.strip() or (corpus.licence if corpus is not None and corpus.licence else "")


# --- tasks per source ------------------------------------------------------------------------------


def cmu_tasks(
    root: Path, splits: tuple[str, ...], manifest_name: str = "cmu", corpus: Corpus | None = None
) -> tuple[list[ClipTask], dict[str, str]]:
    """ASF/AMC clips under `root` (each subject folder holds its .asf and .amc files).

    CMU (the default corpus): named "CMU/<subject>/<clip>", split by a CMU manifest in data_manifests/
    (`cmu`: egogrpo's clip split; `cmu_subject02`: subject 02 held out). Another corpus (hdm05):
    named "<prefix>/<subject>/<clip>", the subject being the ASF's name after its last "_" (HDM_bd.asf:
    bd), all in the corpus's split. Where a folder holds several .asf files (HDM05 puts every actor's
    beside the clips), a clip takes the one whose name starts the clip's (HDM_bd_… → HDM_bd.asf).
    """
    corpus = corpus or corpus_info("cmu")
    if not root.is_dir():
        raise EgogrpoError(f"{root}: no such folder (expected subject folders with .asf and .amc files)")
    manifest = cmu_manifest(manifest_name)
    tasks, excluded = [], {}
    for amc in sorted(root.rglob("*.amc")):
        asfs = sorted(amc.parent.glob("*.asf"))
        if len(asfs) > 1:
            asfs = [asf for asf in asfs if amc.stem.startswith(asf.stem + "_")]
        if len(asfs) != 1:
            raise EgogrpoError(
                f"{amc.parent}: expected one .asf skeleton beside {amc.name} (or one whose name starts the "
                f"clip's name, as HDM_bd.asf for HDM_bd_…), found {len(asfs)}"
            )
        clip = amc.stem
        if corpus.split == "cmu-manifest":
            split = _cmu_clip_split(clip, manifest)
            if split is None:
                excluded[clip] = manifest["excluded"][clip]
                continue
            name = f"{corpus.prefix}/{clip.split('_')[0]}/{clip}"
        else:
            split, name = corpus.split, f"{corpus.prefix}/{asfs[0].stem.split('_')[-1]}/{clip}"
        if split in splits:
            tasks.append(ClipTask(name=name, split=split, paths=(str(asfs[0]), str(amc))))
    if not tasks and not excluded:
        raise EgogrpoError(f"{root}: no .amc clips found")
    return tasks, excluded


def cmu_manifest(name: str) -> dict:
    """A CMU split manifest: {"splits": {split: [clip, …]}, "excluded": {clip: reason}}, checked."""
    manifest = load_manifest(name)
    splits, excluded = manifest.get("splits"), manifest.get("excluded", {})
    valid = isinstance(splits, dict) and isinstance(excluded, dict)
    valid = valid and all(s in ("train", "val", "test") and isinstance(c, list) for s, c in splits.items())
    if not valid:
        raise EgogrpoError(
            f"{manifest_path(name)}: not a CMU split manifest (expected 'splits' with train/val/test clip lists)"
        )
    return {"splits": splits, "excluded": excluded}


def _cmu_subject_split(subject: str) -> str:
    """The manifest's rule for clips it does not list: by subject number (mod 10: 0 test, 1 val, else train)."""
    number = int(subject) if subject.isdigit() else sum(map(ord, subject))
    return {0: "test", 1: "val"}.get(number % 10, "train")


def _cmu_clip_split(clip: str, manifest: dict) -> str | None:
    """A CMU clip's split ("01_01" → as listed, else by its subject), or None when the manifest excludes it."""
    if clip in manifest["excluded"]:
        return None
    for split, clips in manifest["splits"].items():
        if clip in clips:
            return split
    return _cmu_subject_split(clip.split("_")[0])


def bvh_tasks(
    inputs: tuple[str, ...], split: str, corpus: Corpus | None = None, manifest_name: str = "cmu"
) -> tuple[list[ClipTask], dict[str, str]]:
    """One task per BVH file (a folder stands for the .bvh files below it), and the clips the manifest excludes.

    Names: "<prefix>/<stem>" for a file, "<prefix>/<path below the folder>" for a folder's files,
    the prefix being the corpus's ("BVH" without one). All in `split`, except for a corpus split by
    the CMU manifest (cmu-bvh: clips "01_01" split as `preprocess cmu` splits them).
    """
    prefix = corpus.prefix if corpus is not None else "BVH"
    manifest = cmu_manifest(manifest_name) if corpus is not None and corpus.split == "cmu-manifest" else None
    tasks, excluded = [], {}
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files = [(file, file.relative_to(path).with_suffix("").as_posix()) for file in sorted(path.rglob("*.bvh"))]
            if not files:
                raise EgogrpoError(f"{path}: no .bvh files in this folder")
        elif path.is_file():
            files = [(path, path.stem)]
        else:
            raise EgogrpoError(f"{path}: no such BVH file or folder")
        for file, relative in files:
            clip_split = split if manifest is None else _cmu_clip_split(file.stem, manifest)
            if clip_split is None:
                excluded[file.stem] = manifest["excluded"][file.stem]  # type: ignore[index]
                continue
            tasks.append(ClipTask(name=f"{prefix}/{relative}", split=clip_split, paths=(str(file),)))
    if len({t.name for t in tasks}) != len(tasks):
        raise EgogrpoError("two BVH files share a name; their sequences would collide in the output")
    return tasks, excluded


def amass_tasks(root: Path, splits: tuple[str, ...]) -> list[ClipTask]:
    """AMASS `*_poses.npz` files of the datasets in the requested splits (data_manifests/amass.json)."""
    from egogrpo.data.amass import amass_manifest, find_amass_files

    manifest = amass_manifest()
    tasks = []
    for path in find_amass_files(root, manifest.datasets(splits)):
        relative = path.relative_to(root)
        split = manifest.split_of(relative.parts[0])
        tasks.append(ClipTask(name=relative.with_suffix("").as_posix(), split=split, paths=(str(path), str(root))))
    return tasks


def rich_tasks(root: Path, splits: tuple[str, ...]) -> tuple[list[ClipTask], dict[str, str]]:
    """RICH sequences of the official splits (data_manifests/rich.json) found under `root`; one task per person."""
    from egogrpo.data.rich import rich_manifest, rich_sequence_dir

    if not root.is_dir():
        raise EgogrpoError(f"{root}: no such folder (expected RICH's bodies/<split>/<sequence>/ folders)")
    manifest = rich_manifest()
    tasks, missing = [], {}
    for split in splits:
        for entry in manifest.split(split):
            try:
                folder = rich_sequence_dir(root, entry)
            except EgogrpoError:
                missing[f"{entry.sequence}/{entry.subject}"] = f"not found under {root}"
                continue
            name = f"RICH/{split}/{entry.sequence}/{entry.subject}"
            tasks.append(ClipTask(name=name, split=split, paths=(str(folder), entry.subject, entry.gender)))
    if not tasks:
        raise EgogrpoError(f"{root}: none of the RICH sequences of split(s) {', '.join(splits)} was found")
    return tasks, missing


def adt_tasks(folders: tuple[str, ...]) -> list[ClipTask]:
    """One task per Aria Digital Twin sequence folder, named "ADT/<folder>", in the test split."""
    tasks = []
    for folder in folders:
        path = Path(folder)
        if not path.is_dir():
            raise EgogrpoError(f"{path}: no such ADT sequence folder")
        tasks.append(ClipTask(name=f"ADT/{path.resolve().name}", split="test", paths=(str(path),)))
    return tasks


def make_tasks(config: PreprocessConfig) -> tuple[list[ClipTask], dict[str, str]]:
    """The clips a run will process (and those the manifest excludes, with reasons)."""
    if config.source == "corpus":
        clips, skipped = corpus_tasks(load_corpus_manifest(config.inputs[0]), config.corpus_root)
        tasks = [ClipTask(c.name, c.split, c.paths, corpus_clip=c) for c in clips if c.split in config.splits]
        return tasks, {source: "sources with no file under the root, not required" for source in skipped}
    if config.source == "cmu":
        return cmu_tasks(Path(config.inputs[0]), config.splits, config.split_manifest, config_corpus(config))
    if config.source == "bvh":
        return bvh_tasks(config.inputs, config.bvh_split, config_corpus(config), config.split_manifest)
    if config.source == "amass":
        return amass_tasks(Path(config.inputs[0]), config.splits), {}
    if config.source == "rich":
        return rich_tasks(Path(config.inputs[0]), config.splits)
    if config.source == "adt":
        return adt_tasks(config.inputs), {}
    raise EgogrpoError(f"unknown preprocessing source {config.source!r}; expected one of {', '.join(SOURCES)}")


# --- workers ---------------------------------------------------------------------------------------


@dataclass
class _WorkerState:
    config: PreprocessConfig
    body: BodyModel
    body64: BodyModel  # the same in float64, for processing (converted once per worker)
    models: object | None = None  # the source's own models: AmassModels or RichModels


_STATE: _WorkerState | None = None


def _init_worker(config: PreprocessConfig) -> None:
    """Load the body model(s) once per worker process."""
    global _STATE
    torch.set_num_threads(1)
    body = load_body_model(config.body)
    models = None
    if config.source == "amass":
        from egogrpo.data.amass import AmassModels

        models = AmassModels(
            neutral=body,
            male=None if config.male_model is None else load_body_model(config.male_model),
            female=None if config.female_model is None else load_body_model(config.female_model),
        )
    elif config.source == "rich":
        from egogrpo.data.rich import RichModels

        models = RichModels.from_files(male=config.male_model, female=config.female_model, neutral=config.body)
    _STATE = _WorkerState(config=config, body=body, body64=body.to(dtype=torch.float64), models=models)


def read_clip(task: ClipTask, config: PreprocessConfig, body: BodyModel, models: object | None = None) -> MotionClip:
    """Read one clip as a MotionClip of `body` (retargeting skeleton sources onto it)."""
    if config.source == "corpus":
        assert task.corpus_clip is not None
        return _read_corpus_clip(task.corpus_clip, config.glitches, body)
    if config.source == "cmu":
        from egogrpo.data.asf_amc import read_asf_amc

        motion = read_asf_amc(task.paths[0], task.paths[1], fps=config.source_fps)
        return _retarget_skeleton(motion, body, task.name, "cmu", config.glitches)
    if config.source == "bvh":
        motion, attrs = _read_bvh_motion(task.paths[0], config.bvh_units, config.bvh_fps)
        clip = _retarget_skeleton(motion, body, task.name, "bvh", config.glitches)
        return dataclasses.replace(clip, attrs={**clip.attrs, **attrs})
    if config.source == "amass":
        from egogrpo.data.amass import read_amass_npz

        return read_amass_npz(task.paths[0], task.paths[1], models)  # type: ignore[arg-type]
    if config.source == "rich":
        from egogrpo.data.rich import read_rich_sequence

        folder, subject, gender = task.paths
        clip = read_rich_sequence(folder, models, subject=subject, gender=gender, split=task.split)  # type: ignore[arg-type]
        return dataclasses.replace(clip, name=task.name)
    if config.source == "adt":
        from egogrpo.data.adt import read_adt_sequence
        from egogrpo.data.retarget import retarget_positions
        from egogrpo.geometry import quat_to_matrix

        sequence = read_adt_sequence(task.paths[0])
        head = quat_to_matrix(torch.from_numpy(sequence.T_world_cpf[:, :4])).numpy()
        clip = retarget_positions(sequence.skeleton, body, task.name, "adt", head_rotations=head)[0]
        return dataclasses.replace(clip, T_world_cpf=sequence.T_world_cpf, attrs={**clip.attrs, **sequence.attrs})
    raise EgogrpoError(f"unknown preprocessing source {config.source!r}")


def _read_bvh_motion(path: str, units: str, fps: float | None) -> tuple[SkeletonMotion, dict[str, float | int]]:
    """A BVH file's motion at `fps` (None: the file's Frame Time), a leading bind frame dropped; attrs to record."""
    from egogrpo.data.bvh import read_bvh

    motion = read_bvh(path, units=_bvh_units(units))
    attrs: dict[str, float | int] = {"file_fps": motion.fps, "source_fps": fps or motion.fps}
    if fps is not None:
        motion = dataclasses.replace(motion, fps=fps)
    motion, dropped = drop_leading_bind_frame(motion)
    return motion, {**attrs, "dropped_bind_frame": int(dropped)}


def _retarget_skeleton(
    motion: SkeletonMotion, body: BodyModel, name: str, dataset: str, glitches: str, naming: str = ""
) -> MotionClip:
    """Glitch policy, then retargeting onto `body`; `naming`, when given, is the convention the skeleton must have."""
    from egogrpo.data.retarget import resolve_mapping, retarget

    mapping = resolve_mapping(motion)
    if naming and mapping.convention != naming:
        raise EgogrpoError(
            f"{motion.source}: the manifest says {naming} naming, but the skeleton is {mapping.convention}"
        )
    motion, glitch_attrs = apply_glitch_policy(motion, glitches)
    clip = retarget(motion, body, name, dataset, mapping)[0]
    return dataclasses.replace(clip, attrs={**clip.attrs, **glitch_attrs})


def _read_corpus_clip(entry: CorpusClip, glitches: str, body: BodyModel) -> MotionClip:
    """One file of a corpus manifest, read as its source says, with its corpus, person and licence recorded."""
    source = entry.source
    if source.format == "asf-amc":
        from egogrpo.data.asf_amc import read_asf_amc

        assert source.fps is not None
        motion = read_asf_amc(entry.paths[0], entry.paths[1], fps=source.fps)
        attrs: dict[str, float | int] = {"source_fps": source.fps}
    else:
        motion, attrs = _read_bvh_motion(entry.paths[0], source.units, source.fps)
    clip = _retarget_skeleton(motion, body, entry.name, source.people, glitches, source.naming)
    recorded = {"corpus": source.name, "person": entry.person, "licence": source.licence.text,
                "acknowledgement": source.licence.acknowledgement}  # fmt: skip
    return dataclasses.replace(clip, attrs={**clip.attrs, **attrs, **recorded})


def _bvh_units(units: str) -> str | float:
    try:
        return float(units)
    except ValueError:
        return units


@dataclass(frozen=True)
class _Result:
    """A worker's answer: processed sequences, or a short clip, or a user error (one line)."""

    task: ClipTask
    sequences: tuple[tuple[str, SequenceArrays, dict], ...] = ()
    short: str | None = None
    dropped: str | None = None
    error: str | None = None


def _process_task(task: ClipTask) -> _Result:
    assert _STATE is not None, "worker not initialised"
    config = _STATE.config
    try:
        clip = read_clip(task, config, _STATE.body, _STATE.models)
        clips = [clip, mirror_clip(clip)] if config.mirror else [clip]
        sequences = []
        for c in clips:
            arrays = process_clip(c, _STATE.body64, config.process)
            attrs = {"source_path": c.source, "dataset": c.dataset, "split": task.split, **c.attrs}
            sequences.append((c.name, arrays, attrs))
        return _Result(task=task, sequences=tuple(sequences))
    except ShortClipError as e:
        return _Result(task=task, short=str(e))
    except DroppedClipError as e:
        return _Result(task=task, dropped=str(e))
    except EgogrpoError as e:
        return _Result(task=task, error=str(e))


# --- the run ---------------------------------------------------------------------------------------


def recorded_options(config: PreprocessConfig) -> dict:
    """The settings that determine the written data (recorded in the file; a resume must match them)."""
    options = config_to_dict(config)
    for transient in ("out", "overwrite", "workers"):
        options.pop(transient)
    corpus = config_corpus(config)
    options.update(corpus=corpus.name if corpus is not None else "", licence=recorded_licence(config))
    if config.source == "corpus":
        manifest = Path(config.inputs[0])
        options["manifest"] = json.loads(manifest.read_text(encoding="utf-8"))
        options["manifest_sha256"] = sha256_of_file(manifest)
    return options


def corpus_attrs(config: PreprocessConfig) -> dict[str, str]:
    """The attributes every sequence of a cmu/bvh run gets: its corpus and licence (when known).

    (A corpus manifest's clips record their own source's, in `_read_corpus_clip`.)
    """
    corpus = config_corpus(config)
    attrs = {"corpus": corpus.name} if corpus is not None else {}
    licence = recorded_licence(config)
    return {**attrs, "licence": licence} if licence else attrs


def _results(tasks: list[ClipTask], config: PreprocessConfig, workers: int) -> Iterator[_Result]:
    """Results in completion order; one worker runs inline (no process start-up)."""
    if workers <= 1:
        _init_worker(config)
        for task in tasks:
            yield _process_task(task)
        return
    context = multiprocessing.get_context("spawn")  # torch and h5py are not fork-safe
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(config,)) as pool:
        pending: set[Future[_Result]] = {pool.submit(_process_task, task) for task in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()


def validate_config(config: PreprocessConfig) -> None:
    """EgogrpoError naming the option for a value the run cannot use, or an output it cannot write (before any work)."""
    if config.source not in SOURCES:
        raise EgogrpoError(f"unknown preprocessing source {config.source!r}; expected one of {', '.join(SOURCES)}")
    if type(config.workers) is not int or config.workers < 0:
        raise EgogrpoError(f"--workers must be a whole number ≥ 0 (0: one per CPU core), got {config.workers}")
    process = config.process
    if type(process.min_frames) is not int or process.min_frames < 1:
        raise EgogrpoError(f"--min-frames must be a whole number ≥ 1, got {process.min_frames}")
    if not (math.isfinite(process.trim_fraction) and 0 <= process.trim_fraction < 0.5):
        raise EgogrpoError(f"--trim must be a fraction in [0, 0.5), got {process.trim_fraction}")
    for value, option in ((process.fps, "output fps"), (config.source_fps, "--fps")):
        if not (math.isfinite(value) and value > 0):
            raise EgogrpoError(f"{option} must be a finite number > 0, got {value}")
    if config.glitches not in GLITCH_POLICIES:
        raise EgogrpoError(f"--glitches must be one of {', '.join(GLITCH_POLICIES)}, got {config.glitches!r}")
    if config.glitches != "keep" and config.source not in ("cmu", "bvh", "corpus"):
        raise EgogrpoError(f"--glitches applies to skeleton mocap (cmu, bvh, corpus), not {config.source}")
    if config.bvh_fps is not None and not (math.isfinite(config.bvh_fps) and config.bvh_fps > 0):
        raise EgogrpoError(f"--fps must be a finite number > 0, got {config.bvh_fps}")
    if config.source == "corpus":
        if len(config.inputs) != 1:
            raise EgogrpoError("preprocess corpus reads one manifest")
        load_corpus_manifest(config.inputs[0])
        if not Path(config.corpus_root).is_dir():
            raise EgogrpoError(f"--root {config.corpus_root}: no such folder")
    if config.source == "bvh":
        from egogrpo.data.bvh import UNITS

        units = _bvh_units(config.bvh_units)
        known = isinstance(units, str) and units.lower() in (*UNITS, "auto")
        if not known and not (isinstance(units, float) and math.isfinite(units) and units > 0):
            raise EgogrpoError(
                f"--units must be auto, {', '.join(UNITS)} or a finite number of metres per unit > 0, got {units!r}"
            )
    _validate_corpus(config)
    if not config.inputs:
        raise EgogrpoError("no input given")
    check_writable(config.out, "--out")


def _validate_corpus(config: PreprocessConfig) -> None:
    """--corpus must be read by this command, and a corpus whose licence egogrpo has not verified needs --licence."""
    if (config.corpus or config.licence) and config.source not in ("cmu", "bvh"):
        raise EgogrpoError(
            f"--corpus and --licence apply to `preprocess cmu` and `preprocess bvh`, not {config.source}"
        )
    corpus = config_corpus(config)
    if corpus is None:
        return
    if corpus.source != config.source:
        raise EgogrpoError(
            f"--corpus {corpus.name} is read by `egogrpo preprocess {corpus.source}`, not {config.source}"
        )
    if corpus.licence is None and not config.licence.strip():
        raise EgogrpoError(
            f"--corpus {corpus.name}: egogrpo has not verified this corpus's licence; pass --licence with the "
            "terms you obtained the data under (it is recorded in every sequence)"
        )


def run_preprocess(
    config: PreprocessConfig, progress: Callable[[int, int, str], None] | None = None
) -> PreprocessSummary:
    """Process every clip of `config` into `config.out` (see the module docstring).

    `progress(done, total, name)` is called after each clip. Raises EgogrpoError (one line) on bad
    input; sequences finished before the error stay in `<out>.partial` for a resume.
    """
    start = time.perf_counter()
    validate_config(config)
    body = load_body_model(config.body)
    tasks, excluded = make_tasks(config)
    summary = PreprocessSummary(out=Path(config.out), excluded=excluded)
    info = MotionFileInfo(
        body_model_kind=body.kind,
        body_model_id=body.model_id,
        body_model_sha256=body.sha256,
        num_betas=body.num_betas,
        source_dataset=config.source,
        options_json=json.dumps(recorded_options(config), sort_keys=True),
        fps=config.process.fps,
    )
    licence_attrs = corpus_attrs(config)
    writer = MotionFileWriter(config.out, info, overwrite=config.overwrite, resume=True)
    with kept_for_resume(writer):
        finished = writer.finished_names()
        suffixes = ("", "_mirror") if config.mirror else ("",)
        todo = []
        for task in tasks:
            if all(task.name + s in finished for s in suffixes):
                summary.resumed.append(task.name)
            else:
                todo.append(task)
        workers = min(config.workers or os.cpu_count() or 1, max(len(todo), 1))
        done = len(summary.resumed)
        for result in _results(todo, config, workers):
            if result.error is not None:
                raise EgogrpoError(result.error)
            if result.short is not None:
                if not config.skip_short:
                    raise EgogrpoError(f"{result.short} (pass --skip-short to leave such clips out)")
                summary.skipped_short.append(result.task.name)
            if result.dropped is not None:
                summary.dropped[result.task.name] = result.dropped
            for name, arrays, attrs in result.sequences:
                if name not in finished:
                    writer.write(name, arrays, {**attrs, **licence_attrs})
                    summary.written.append(name)
                    summary.frames += arrays.num_frames
                    summary.splits[str(attrs["split"])] = summary.splits.get(str(attrs["split"]), 0) + 1
                    if "skeleton_convention" in attrs:
                        naming = str(attrs["skeleton_convention"])
                        summary.namings[naming] = summary.namings.get(naming, 0) + 1
                    summary.bind_frames_dropped += int(attrs.get("dropped_bind_frame", 0))
            done += 1
            if progress is not None:
                progress(done, len(tasks), result.task.name)
        if not summary.written and not summary.resumed:
            raise EgogrpoError(f"{config.out}: no sequence to write (every clip was excluded or too short)")
        writer.commit()
    summary.seconds = time.perf_counter() - start
    return summary


@contextlib.contextmanager
def kept_for_resume(writer: MotionFileWriter) -> Iterator[None]:
    """Around a run's writes: on an error, delete a `.partial` that holds nothing, else keep it and say so."""
    try:
        yield
    except BaseException as error:
        if writer.is_open and not writer.finished_names():
            writer.discard()  # nothing worth resuming: leave nothing behind
            raise
        if writer.is_open:
            writer.close()
        if isinstance(error, EgogrpoError) and writer.partial_path.exists():
            kept = f"finished sequences are kept in {writer.partial_path}; run the same command again to resume"
            raise EgogrpoError(f"{error} — {kept}") from None
        raise


def merge_motion_files(
    inputs: tuple[str, ...], out: str, overwrite: bool = False, progress: Callable[[int, int, str], None] | None = None
) -> PreprocessSummary:
    """Copy every sequence of several motion files into one (`egogrpo preprocess merge`).

    The inputs must share the body model (SHA-256), number of betas and frame rate, and no sequence
    name may appear in two of them. Sequences keep their datasets and attributes (split, corpus,
    licence, …). The output's source_dataset is "merged"; its options_json lists every input's file
    name, source dataset and options. Written like every preprocess output (`.partial`, resumable).
    """
    start = time.perf_counter()
    if len(inputs) < 2:
        raise EgogrpoError("give at least two motion files to merge")
    check_writable(out, "--out")
    resolved = [Path(p).resolve() for p in inputs]
    if Path(out).resolve() in resolved or len(set(resolved)) != len(resolved):
        raise EgogrpoError(f"{out}: the output and every input must be different files")
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(MotionFile(p)) for p in inputs]
        first = files[0]
        owner: dict[str, MotionFile] = {}
        for motion in files:
            for key in ("body_model_sha256", "num_betas", "fps"):
                if getattr(motion.info, key) != getattr(first.info, key):
                    raise EgogrpoError(
                        f"{motion.path}: {key} is {getattr(motion.info, key)}, but {first.path} has "
                        f"{getattr(first.info, key)}; only files made with the same body model and frame rate merge"
                    )
            for name in motion.names():
                if name in owner:
                    raise EgogrpoError(f"{motion.path}: sequence {name!r} is also in {owner[name].path}")
                owner[name] = motion
        merged_from = [
            {"file": m.path.name, "source_dataset": m.info.source_dataset, "options": m.info.options} for m in files
        ]
        info = MotionFileInfo(
            body_model_kind=first.info.body_model_kind,
            body_model_id=first.info.body_model_id,
            body_model_sha256=first.info.body_model_sha256,
            num_betas=first.info.num_betas,
            source_dataset="merged",
            options_json=json.dumps({"merged_from": merged_from}, sort_keys=True),
            fps=first.info.fps,
        )
        summary = PreprocessSummary(out=Path(out))
        writer = MotionFileWriter(out, info, overwrite=overwrite, resume=True)
        with kept_for_resume(writer):
            finished = writer.finished_names()
            for done, (name, motion) in enumerate(owner.items(), start=1):
                if name in finished:
                    summary.resumed.append(name)
                else:
                    arrays = motion.read(name)
                    writer.write(name, arrays, motion.sequence_attrs(name))
                    summary.written.append(name)
                    summary.frames += arrays.num_frames
                if progress is not None:
                    progress(done, len(owner), name)
            writer.commit()
    summary.seconds = time.perf_counter() - start
    return summary
