"""The on-disk layout of preprocessed motion: the one module that writes and reads it.

`egogrpo preprocess` turns every mocap source into one HDF5 file with this layout, and the
training commands read random crops from it. The layout is self-describing:

File (root) attributes — `MotionFileInfo`:
    schema = "egogrpo.motion", schema_version = 1, egogrpo_version, body_model_kind,
    body_model_id, body_model_sha256, num_betas, fps, source_dataset, options_json, created_utc;
    plus complete = 1, set when the writer committed the file.

Sequence groups: a group name may contain "/" ("CMU/01/01_01" is nested groups). A sequence group
has the attributes egogrpo_sequence = 1, complete = 1 (set last), source_path, dataset, split
("train", "val", "test" or ""), num_frames, plus free-form extra attributes (str, int, float),
and exactly the datasets of `SequenceArrays` (see `egogrpo.data.sequence`): float32, T frames at
`fps`, chunked along time (CHUNK_FRAMES frames) and compressed with COMPRESSION; `betas` (1, B)
is stored contiguous.

`MotionFileWriter` writes into `<path>.partial` and renames it onto `path` when committed, so
`path` is always either absent or complete; an interrupted run resumes from its `.partial`.
`MotionFile` reads a committed file and refuses anything else with a one-line `EgogrpoError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from egogrpo import __version__
from egogrpo.data.sequence import OPTIONAL_FIELDS, SEQUENCE_FIELDS, SequenceArrays
from egogrpo.errors import EgogrpoError

SCHEMA_NAME = "egogrpo.motion"
SCHEMA_VERSION = 1
BODY_MODEL_KINDS = ("default", "smplh", "smplx")
SOURCE_DATASETS = (
    "amass",
    "cmu",
    "bvh",
    "rich",
    "adt",
    "merged",
    "corpus",
)  # merged: `preprocess merge`; corpus: `preprocess corpus`
SPLITS = ("train", "val", "test", "")

#: Frames per chunk along time (a 128-frame crop touches at most 5 chunks per dataset).
CHUNK_FRAMES = 32
#: Compression of the time-chunked datasets. Measured on 100 synthetic sequences (167k frames):
#: lzf reads random 128-frame crops as fast as no compression (the per-dataset h5py overhead
#: dominates), and shrinks the file by 6 % (noisy float32) to 43 % (constant hand poses, as in
#: AMASS subsets without hand capture); shuffle+lzf and gzip read crops 20–40 % slower.
COMPRESSION: str | None = "lzf"

#: Attributes the writer owns; callers may not set them through `attrs`.
_COMPLETE = "complete"  # root: file committed; group: every dataset written
_SEQUENCE_MARK = "egogrpo_sequence"
_REQUIRED_SEQUENCE_ATTRS = ("source_path", "dataset", "split")
_HOW_TO_MAKE = "make one with `egogrpo preprocess …`"


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _python_value(value: Any) -> Any:
    """An HDF5 attribute value as a plain Python str / int / float."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True, kw_only=True)
class MotionFileInfo:
    """The file-level attributes of a motion file.

    body_model_kind:    "default", "smplh" or "smplx"
    body_model_id:      e.g. "default:51f398527f92"; training checks it against its own body model
    body_model_sha256:  hex SHA-256 of the body model file
    num_betas:          B, the width of every sequence's `betas` (1, B)
    source_dataset:     "amass", "cmu", "bvh", "rich", "adt", "merged" (`preprocess merge`) or "corpus" (`preprocess corpus`)
    options_json:       the preprocessing options as a JSON object string
    fps:                frames per second of every sequence
    """

    body_model_kind: str
    body_model_id: str
    body_model_sha256: str
    num_betas: int
    source_dataset: str
    options_json: str = "{}"
    fps: float = 30.0
    egogrpo_version: str = __version__
    created_utc: str = field(default_factory=_utc_now)
    schema: str = SCHEMA_NAME
    schema_version: int = SCHEMA_VERSION

    @property
    def options(self) -> dict[str, Any]:
        return json.loads(self.options_json)

    def problems(self) -> list[str]:
        """Invalid values (empty when the info is valid)."""
        found = []
        if self.schema != SCHEMA_NAME:
            found.append(f"schema is {self.schema!r}, expected {SCHEMA_NAME!r}")
        if self.body_model_kind not in BODY_MODEL_KINDS:
            found.append(f"body_model_kind {self.body_model_kind!r} is not one of {', '.join(BODY_MODEL_KINDS)}")
        if self.source_dataset not in SOURCE_DATASETS:
            found.append(f"source_dataset {self.source_dataset!r} is not one of {', '.join(SOURCE_DATASETS)}")
        if not self.body_model_id:
            found.append("body_model_id is empty")
        if self.num_betas < 1:
            found.append(f"num_betas is {self.num_betas}, expected ≥ 1")
        if not self.fps > 0:
            found.append(f"fps is {self.fps}, expected > 0")
        try:
            if not isinstance(json.loads(self.options_json), dict):
                found.append("options_json is not a JSON object")
        except json.JSONDecodeError:
            found.append("options_json is not valid JSON")
        return found

    def to_attrs(self) -> dict[str, str | int | float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], where: str) -> MotionFileInfo:
        """Read the info back from root attributes; EgogrpoError naming `where` when one is missing or mistyped."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in attrs:
                raise EgogrpoError(f"{where}: damaged motion file: root attribute {f.name!r} is missing")
            value = _python_value(attrs[f.name])
            expected = {"num_betas": int, "schema_version": int, "fps": (int, float)}.get(f.name, str)
            if not isinstance(value, expected) or isinstance(value, bool):
                raise EgogrpoError(f"{where}: damaged motion file: root attribute {f.name!r} is {value!r}")
            kwargs[f.name] = float(value) if f.name == "fps" else value
        return cls(**kwargs)


def _resume_differences(stored: MotionFileInfo, wanted: MotionFileInfo) -> list[str]:
    """Names of the settings that differ between a `.partial` file and a new run (all but created_utc)."""
    differ = []
    for f in dataclasses.fields(MotionFileInfo):
        if f.name in ("created_utc", "options_json"):
            continue
        if getattr(stored, f.name) != getattr(wanted, f.name):
            differ.append(f.name)
    if stored.options != wanted.options:
        differ.append("options")
    return differ


def partial_path_for(path: str | os.PathLike[str]) -> Path:
    """Where `MotionFileWriter` writes before committing: `<path>.partial`."""
    path = Path(path)
    return path.with_name(path.name + ".partial")


# ---------------------------------------------------------------------------------------------
# Sequence groups


# The markers are always 1; their presence is what counts (testing presence is ~10x faster than reading).
def _is_sequence(group: h5py.Group) -> bool:
    return _SEQUENCE_MARK in group.attrs


def _is_complete_sequence(group: h5py.Group) -> bool:
    return _SEQUENCE_MARK in group.attrs and _COMPLETE in group.attrs


def _walk_sequences(group: h5py.Group, prefix: str = "") -> Iterator[tuple[str, h5py.Group]]:
    """(name, group) of every complete sequence group below `group`, depth first."""
    for key in group:
        child = group.get(key)
        if not isinstance(child, h5py.Group):
            continue
        name = f"{prefix}{key}"
        if _is_sequence(child):
            if _is_complete_sequence(child):
                yield name, child
        else:
            yield from _walk_sequences(child, f"{name}/")


def _prune_incomplete(group: h5py.Group) -> None:
    """Delete everything below `group` that is not a complete sequence or a parent of one.

    An interrupted write leaves at most one sequence group without `complete`, or an empty group.
    """
    for key in list(group):
        child = group.get(key)
        if isinstance(child, h5py.Group) and _is_complete_sequence(child):
            continue
        holds_data = (
            not isinstance(child, h5py.Group)
            or _is_sequence(child)
            or any(isinstance(child.get(k), h5py.Dataset) for k in child)
        )
        if not holds_data:
            _prune_incomplete(child)
        if holds_data or len(child) == 0:
            del group[key]


def _check_name(name: str) -> None:
    parts = name.split("/") if isinstance(name, str) else []
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid sequence name {name!r}: use non-empty parts separated by single '/'")


def _sequence_attrs(attrs: Mapping[str, Any], num_frames: int) -> dict[str, str | int | float]:
    """Validate the caller's per-sequence attributes and add num_frames."""
    missing = [key for key in _REQUIRED_SEQUENCE_ATTRS if key not in attrs]
    if missing:
        raise ValueError(f"sequence attrs lack {', '.join(missing)}")
    if attrs["split"] not in SPLITS:
        raise ValueError(f"split {attrs['split']!r} is not one of {SPLITS}")
    if "num_frames" in attrs and attrs["num_frames"] != num_frames:
        raise ValueError(f"attrs num_frames={attrs['num_frames']} but the arrays have {num_frames} frames")
    out: dict[str, str | int | float] = {}
    for key, value in attrs.items():
        if key in (_COMPLETE, _SEQUENCE_MARK):
            raise ValueError(f"sequence attribute {key!r} is reserved for the writer")
        if isinstance(value, bool) or not isinstance(value, str | int | float | np.integer | np.floating):
            raise TypeError(f"sequence attribute {key!r} must be str, int or float, got {type(value).__name__}")
        out[key] = _python_value(value)
    out["num_frames"] = num_frames
    return out


def _write_dataset(group: h5py.Group, name: str, value: np.ndarray) -> None:
    value = np.ascontiguousarray(value, dtype=np.float32)
    if name == "betas":
        group.create_dataset(name, data=value)
        return
    chunks = (min(CHUNK_FRAMES, value.shape[0]), *value.shape[1:])
    group.create_dataset(name, data=value, chunks=chunks, compression=COMPRESSION)


# ---------------------------------------------------------------------------------------------
# Writer


class MotionFileWriter:
    """Write sequences into `<path>.partial`; `commit()` renames it onto `path` atomically.

    with MotionFileWriter(path, info) as writer:
        for clip in clips:
            if name not in writer.finished_names():
                writer.write(name, arrays, {"source_path": ..., "dataset": ..., "split": ...})
    # leaving the block normally commits; leaving it with an exception keeps the `.partial`.

    overwrite: replace an existing `path` on commit (else an existing `path` is an error).
    resume:    reuse an existing `.partial` made with the same info (else start it afresh).
    """

    def __init__(
        self, path: str | os.PathLike[str], info: MotionFileInfo, overwrite: bool = False, resume: bool = True
    ) -> None:
        self.path = Path(path)
        self.partial_path = partial_path_for(self.path)
        problems = info.problems()
        if problems:
            raise EgogrpoError(f"{self.path}: invalid motion file info: {'; '.join(problems)}")
        if self.path.exists() and not overwrite:
            raise EgogrpoError(f"{self.path} exists; pass --overwrite to replace it")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.partial_path.exists():
            self._file: h5py.File | None = self._reopen(info)
        else:
            self.partial_path.unlink(missing_ok=True)
            self._file = h5py.File(self.partial_path, "w")
            self._file.attrs.update(info.to_attrs())
            self._file.flush()
            self.info = info
        self._finished = {name for name, _ in _walk_sequences(self._file)}

    def _reopen(self, info: MotionFileInfo) -> h5py.File:
        """Open an existing `.partial` for appending, keep its complete sequences, drop the rest."""
        start_over = f"delete {self.partial_path} to start over"
        try:
            file = h5py.File(self.partial_path, "r+")
        except OSError as e:
            raise EgogrpoError(
                f"{self.partial_path}: cannot resume from this partial file ({_one_line(e)}); if no other "
                f"`egogrpo preprocess` is writing it, {start_over}"
            ) from None
        try:
            if _python_value(file.attrs.get("schema")) != SCHEMA_NAME:
                raise EgogrpoError(
                    f"{self.partial_path}: cannot resume, not an egogrpo partial motion file; {start_over}"
                )
            stored = MotionFileInfo.from_attrs(file.attrs, str(self.partial_path))
            differ = _resume_differences(stored, info)
            if differ:
                raise EgogrpoError(
                    f"{self.partial_path}: cannot resume, the partial file was made with different settings "
                    f"(differing: {', '.join(differ)}); rerun with the same settings, or {start_over}"
                )
            if _COMPLETE in file.attrs:
                del file.attrs[_COMPLETE]
            _prune_incomplete(file)
            file.flush()
        except BaseException:
            file.close()
            raise
        self.info = stored
        return file

    def __enter__(self) -> MotionFileWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._file is None:
            return
        if exc_type is None:
            self.commit()
        else:
            self.close()

    @property
    def is_open(self) -> bool:
        """False after commit(), close() or discard()."""
        return self._file is not None

    def _require_open(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError(f"{self.partial_path}: the writer is closed")
        return self._file

    def finished_names(self) -> set[str]:
        """Names of the sequences already written completely (in this run or the resumed one)."""
        return set(self._finished)

    def write(self, name: str, arrays: SequenceArrays, attrs: Mapping[str, str | int | float]) -> None:
        """Write one sequence group; `attrs` must hold source_path, dataset and split (num_frames is added).

        The group gets `complete = 1` last and the file is flushed, so an interruption leaves at
        most one incomplete group, which a resumed writer deletes.
        """
        file = self._require_open()
        _check_name(name)
        group_attrs = _sequence_attrs(attrs, arrays.num_frames)
        problems = arrays.problems()
        if arrays.num_frames == 0:
            problems.append("it has no frames")
        if arrays.betas.ndim == 2 and arrays.betas.shape[1] != self.info.num_betas:
            problems.append(f"betas has {arrays.betas.shape[1]} values, the file has num_betas={self.info.num_betas}")
        if problems:
            raise EgogrpoError(f"{attrs['source_path']}: sequence {name!r} is invalid: {'; '.join(problems)}")
        if name in self._finished:
            raise EgogrpoError(
                f"{attrs['source_path']}: sequence name {name!r} was already written (two sources map to it)"
            )
        self._check_free(file, name)

        group = file.create_group(name)
        try:
            group.attrs[_SEQUENCE_MARK] = 1
            group.attrs.update(group_attrs)
            for field_name in SEQUENCE_FIELDS:
                value = getattr(arrays, field_name)
                if value is not None:
                    _write_dataset(group, field_name, value)
            group.attrs[_COMPLETE] = 1
            file.flush()
        except BaseException:
            with contextlib.suppress(Exception):
                del file[name]
            raise
        self._finished.add(name)

    def _check_free(self, file: h5py.File, name: str) -> None:
        """Refuse a name nested inside a sequence, or one that is already a parent of sequences."""
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = file.get("/".join(parts[:i]))
            if parent is None:
                return
            if not isinstance(parent, h5py.Group) or _is_sequence(parent):
                raise EgogrpoError(
                    f"{self.partial_path}: sequence name {name!r} would nest inside sequence {'/'.join(parts[:i])!r}"
                )
        if name in file:
            raise EgogrpoError(f"{self.partial_path}: sequence name {name!r} is already a group of other sequences")

    def commit(self) -> Path:
        """Mark the file complete, close it and rename `.partial` onto `path`; returns `path`."""
        file = self._require_open()
        file.attrs[_COMPLETE] = 1
        file.close()
        self._file = None
        with open(self.partial_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.partial_path, self.path)
        return self.path

    def close(self) -> None:
        """Close without committing: the `.partial` stays for a later resume."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        """Close and delete the `.partial` (e.g. when nothing was written)."""
        self.close()
        self.partial_path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Reader


@dataclass(frozen=True)
class _Entry:
    split: str
    num_frames: int
    has_hand_quats: bool


def _open_hdf5(path: Path) -> h5py.File:
    """Open read-only, turning every way that fails into one line naming the file."""
    if not path.exists():
        hint = ""
        if partial_path_for(path).exists():
            hint = f" ({partial_path_for(path).name} exists: rerun `egogrpo preprocess` with the same options to finish it)"
        raise EgogrpoError(f"{path}: no such file{hint}")
    if path.is_dir():
        raise EgogrpoError(f"{path}: is a directory, not a motion file")
    if not h5py.is_hdf5(path):
        raise EgogrpoError(f"{path}: not an HDF5 file, so not an egogrpo motion file; {_HOW_TO_MAKE}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise EgogrpoError(f"{path}: cannot read this HDF5 file, it is truncated or damaged ({_one_line(e)})") from None


class MotionFile:
    """Read-only access to a committed motion file (also a context manager).

    Every refusal is an EgogrpoError naming the file: missing, not HDF5, truncated, not ours, a
    newer schema, unfinished (`.partial`), or a sequence group whose datasets do not match
    `SEQUENCE_FIELDS`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = _open_hdf5(self.path)
        try:
            self.info = self._read_info(self._file)
        except BaseException:
            self.close()
            raise
        self._entries: dict[str, _Entry] | None = None
        self._validated: dict[str, tuple[int, tuple[str, ...]]] = {}  # name → (num_frames, its datasets)

    def _read_info(self, file: h5py.File) -> MotionFileInfo:
        where = str(self.path)
        schema = _python_value(file.attrs.get("schema"))
        if schema != SCHEMA_NAME:
            raise EgogrpoError(
                f"{where}: not an egogrpo motion file (no root attribute schema = {SCHEMA_NAME!r}); {_HOW_TO_MAKE}"
            )
        version = _python_value(file.attrs.get("schema_version"))
        if not isinstance(version, int) or version < 1:
            raise EgogrpoError(f"{where}: damaged motion file: schema_version is {version!r}")
        if version > SCHEMA_VERSION:
            raise EgogrpoError(
                f"{where}: made by a newer egogrpo (motion schema version {version}; this egogrpo {__version__} "
                f"reads up to {SCHEMA_VERSION}); upgrade egogrpo"
            )
        if _COMPLETE not in file.attrs:
            raise EgogrpoError(
                f"{where}: unfinished motion file (an interrupted `egogrpo preprocess` left it); "
                "rerun `egogrpo preprocess` with the same options to finish it"
            )
        info = MotionFileInfo.from_attrs(file.attrs, where)
        problems = info.problems()
        if problems:
            raise EgogrpoError(f"{where}: damaged motion file: {'; '.join(problems)}")
        return info

    def __enter__(self) -> MotionFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _h5(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError(f"{self.path}: the motion file is closed")
        return self._file

    def _index(self) -> dict[str, _Entry]:
        """Every complete sequence's split, length and hand flag, read from attributes once."""
        if self._entries is None:
            entries = {}
            for name, group in _walk_sequences(self._h5()):
                split = _python_value(group.attrs.get("split", ""))
                entries[name] = _Entry(split, int(group.attrs.get("num_frames", 0)), "hand_quats" in group)
            self._entries = entries
        return self._entries

    def _entry(self, name: str) -> _Entry:
        entry = self._index().get(name)
        if entry is None:
            raise EgogrpoError(f"{self.path}: no sequence {name!r}")
        return entry

    def names(self, split: str | Iterable[str] | None = None) -> list[str]:
        """Sorted sequence names, all or those in `split` (one split name or several)."""
        index = self._index()
        if split is None:
            return sorted(index)
        wanted = {split} if isinstance(split, str) else set(split)
        return sorted(name for name, entry in index.items() if entry.split in wanted)

    def num_frames(self, name: str) -> int:
        return self._entry(name).num_frames

    def has_hand_quats(self, name: str) -> bool:
        return self._entry(name).has_hand_quats

    def sequence_attrs(self, name: str) -> dict[str, str | int | float]:
        """source_path, dataset, split, num_frames and the extra attributes of one sequence."""
        group = self._group(name)
        return {k: _python_value(v) for k, v in group.attrs.items() if k not in (_COMPLETE, _SEQUENCE_MARK)}

    def _group(self, name: str) -> h5py.Group:
        """The sequence's group; its datasets are validated on first access (then cached: reads stay fast)."""
        if name in self._validated:
            return self._h5()[name]
        group = self._h5().get(name) if isinstance(name, str) and name.strip("/") else None
        if not isinstance(group, h5py.Group) or not _is_complete_sequence(group):
            raise EgogrpoError(f"{self.path}: no sequence {name!r}")
        self._validated[name] = self._validate(name, group)
        return group

    def _validate(self, name: str, group: h5py.Group) -> tuple[int, tuple[str, ...]]:
        """Check the group's datasets against SEQUENCE_FIELDS; returns its number of frames and dataset names."""
        where = f"{self.path}: sequence {name!r}"
        num_frames = _python_value(group.attrs.get("num_frames"))
        if not isinstance(num_frames, int) or num_frames < 1:
            raise EgogrpoError(f"{where}: num_frames attribute is {num_frames!r}")
        unknown = sorted(set(group) - set(SEQUENCE_FIELDS))
        if unknown:
            raise EgogrpoError(f"{where}: unexpected member(s) {', '.join(unknown)}")
        for field_name, trailing in SEQUENCE_FIELDS.items():
            dataset = group.get(field_name)
            if dataset is None:
                if field_name in OPTIONAL_FIELDS:
                    continue
                raise EgogrpoError(f"{where}: dataset {field_name} is missing")
            lead = (1,) if field_name == "betas" else (num_frames,)
            expected = lead + tuple(self.info.num_betas if size is None else size for size in trailing)
            if not isinstance(dataset, h5py.Dataset) or dataset.shape != expected:
                shape = dataset.shape if isinstance(dataset, h5py.Dataset) else "a group"
                raise EgogrpoError(f"{where}: {field_name} has shape {shape}, expected {expected}")
            if dataset.dtype != np.float32:
                raise EgogrpoError(f"{where}: {field_name} has dtype {dataset.dtype}, expected float32")
        return num_frames, tuple(field_name for field_name in SEQUENCE_FIELDS if field_name in group)

    def read(self, name: str) -> SequenceArrays:
        """The whole sequence (float32)."""
        self._group(name)
        return self.read_frames(name, 0, self._validated[name][0])

    def read_frames(self, name: str, start: int, stop: int) -> SequenceArrays:
        """Frames [start, stop) of a sequence (float32); `betas` is the whole (1, B).

        A NaN or infinite value is an EgogrpoError naming the file, sequence, dataset and frame.
        """
        group = self._group(name)
        num_frames, fields = self._validated[name]
        if not 0 <= start < stop <= num_frames:
            raise ValueError(f"frames [{start}, {stop}) are outside sequence {name!r} of {num_frames} frames")
        values = {field_name: group[field_name][start:stop] for field_name in fields if field_name != "betas"}
        values["betas"] = group["betas"][()]
        for field_name, array in values.items():
            finite = np.isfinite(array)
            if not finite.all():
                frame = int(np.argwhere(~finite)[0, 0]) + (0 if field_name == "betas" else start)
                raise EgogrpoError(
                    f"{self.path}: sequence {name!r}: {field_name} holds NaN or infinite values "
                    f"(first at {'row' if field_name == 'betas' else 'frame'} {frame}); "
                    "the file is damaged or was written by another tool"
                )
        return SequenceArrays(**values)


def require_body_model(
    path: str | os.PathLike[str], info: MotionFileInfo, body_model_id: str, body_sha256: str
) -> None:
    """Refuse (one line) a motion file preprocessed with another body model than the one given."""
    if info.body_model_sha256 != body_sha256:
        raise EgogrpoError(
            f"{path}: made with body model {info.body_model_id}, but --body is {body_model_id}; "
            "pass the body model the file was preprocessed with"
        )
