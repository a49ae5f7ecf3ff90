"""Corpus manifests: every file of several mocap corpora, how to read each, and a split by person.

    manifest = load_corpus_manifest("data_manifests/free.json")
    tasks, missing = corpus_tasks(manifest, root)      # one CorpusClip per file under `root`

A manifest (JSON) has four parts:

- `licences`: key → {"text": the terms, "acknowledgement": what the authors ask users to say}.
- `sources`: name → how to read one group of files:
  `format` ("bvh" or "asf-amc"), `files` (glob patterns relative to the root), `naming` (the skeleton
  convention the files must have, one of `retarget.NAMINGS`), `units` (BVH: "auto", "m", "cm", …, or
  metres per unit), `fps` (the true frame rate: overrides a BVH's `Frame Time`, gives an AMC its rate;
  null: the BVH's own), `people` (the person namespace, e.g. "cmu": CMU subject numbers are the same
  person whichever release a clip comes from), `person` (a regular expression with a group `person`,
  searched in the file's path relative to the root), `prefix` (first part of the sequence names),
  `licence` (a key of `licences`), `required` (false: a source with no file under the root is skipped,
  for manifests of corpora a user may not have).
- `splits`: {"val": [person, …], "test": [person, …]}, persons written "<people>/<id>" (e.g. "cmu/05",
  "reactidle/003"); every other person is in train. Whole people are in one split.
- `excluded`: {path relative to the root: why} for files under the root that are not read (e.g. a
  second conversion of a clip another source has); reported, never silently dropped.
- `description`, free text.

Sequences are named "<prefix>/<person id>/<file stem>" and carry the attributes `corpus` (the source
name), `person`, `licence` and `acknowledgement`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egogrpo.errors import EgogrpoError
from egogrpo.fileio import read_text

FORMATS = ("bvh", "asf-amc")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Licence:
    """A licence's terms and the acknowledgement its authors request."""

    key: str
    text: str
    acknowledgement: str


@dataclass(frozen=True)
class CorpusSource:
    """One group of files read the same way (see the module docstring for each field)."""

    name: str
    format: str
    files: tuple[str, ...]
    naming: str
    units: str
    fps: float | None
    people: str
    person: str
    prefix: str
    licence: Licence
    required: bool = True


@dataclass(frozen=True)
class CorpusManifest:
    """A parsed, checked corpus manifest."""

    path: str
    description: str
    licences: dict[str, Licence]
    sources: tuple[CorpusSource, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    excluded: dict[str, str]

    def split_of(self, person: str) -> str:
        """The split of a person ("cmu/05"): val, test, or train for everyone not listed."""
        return "val" if person in self.val else "test" if person in self.test else "train"


@dataclass(frozen=True)
class CorpusClip:
    """One file to read: its source, paths (ASF + AMC, or the BVH), output name, person and split."""

    source: CorpusSource
    paths: tuple[str, ...]
    name: str
    person: str
    split: str


def _field(where: str, entry: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in entry:
        if default is ...:
            raise EgogrpoError(f"{where}: missing {key!r}")
        return default
    value = entry[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise EgogrpoError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _source(path: str, name: str, entry: Any, licences: dict[str, Licence]) -> CorpusSource:
    from egogrpo.data.bvh import UNITS
    from egogrpo.data.retarget import NAMINGS

    where = f"{path}: source {name!r}"
    if not isinstance(entry, dict):
        raise EgogrpoError(f"{where}: expected an object")
    fmt = _field(where, entry, "format", str)
    if fmt not in FORMATS:
        raise EgogrpoError(f"{where}: unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    files = _field(where, entry, "files", list)
    if not files or not all(isinstance(f, str) and f and not Path(f).is_absolute() for f in files):
        raise EgogrpoError(f"{where}: 'files' must be a non-empty list of glob patterns relative to the root")
    naming = _field(where, entry, "naming", str)
    if naming not in NAMINGS:
        raise EgogrpoError(f"{where}: unknown naming {naming!r}; use one of {', '.join(NAMINGS)}")
    units = _field(where, entry, "units", (str, int, float), "auto")
    if isinstance(units, str) and units.lower() not in (*UNITS, "auto"):
        raise EgogrpoError(f"{where}: unknown units {units!r}; use auto, {', '.join(UNITS)} or metres per unit")
    if not isinstance(units, str) and not (math.isfinite(units) and units > 0):
        raise EgogrpoError(f"{where}: units must be a positive number of metres per unit, got {units}")
    fps = _field(where, entry, "fps", (int, float, type(None)), None)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise EgogrpoError(f"{where}: fps must be a positive number or null, got {fps}")
    if fmt == "asf-amc" and fps is None:
        raise EgogrpoError(f"{where}: AMC files do not state a frame rate; give 'fps'")
    person = _field(where, entry, "person", str)
    try:
        if "person" not in re.compile(person).groupindex:
            raise EgogrpoError(f"{where}: the 'person' pattern {person!r} has no group (?P<person>…)")
    except re.error as e:
        raise EgogrpoError(f"{where}: the 'person' pattern {person!r} is not a regular expression ({e})") from None
    licence = _field(where, entry, "licence", str)
    if licence not in licences:
        raise EgogrpoError(f"{where}: unknown licence {licence!r}; the manifest's licences are {', '.join(licences)}")
    return CorpusSource(
        name=name,
        format=fmt,
        files=tuple(files),
        naming=naming,
        units=str(units),
        fps=None if fps is None else float(fps),
        people=_field(where, entry, "people", str),
        person=person,
        prefix=_field(where, entry, "prefix", str),
        licence=licences[licence],
        required=_field(where, entry, "required", bool, True),
    )


def load_corpus_manifest(path: str | Path) -> CorpusManifest:
    """Read and check a corpus manifest; EgogrpoError (one line naming the file) for anything wrong."""
    path = str(path)
    try:
        data = json.loads(read_text(Path(path)))
    except json.JSONDecodeError as e:
        raise EgogrpoError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise EgogrpoError(f"{path}: a corpus manifest must be a JSON object")
    licences: dict[str, Licence] = {}
    for key, entry in _field(path, data, "licences", dict).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str) or not entry["text"].strip():
            raise EgogrpoError(f"{path}: licence {key!r} needs a non-empty 'text'")
        licences[key] = Licence(key, entry["text"], str(entry.get("acknowledgement", "")))
    sources = tuple(_source(path, name, entry, licences) for name, entry in _field(path, data, "sources", dict).items())
    if not sources:
        raise EgogrpoError(f"{path}: no sources")
    splits = _field(path, data, "splits", dict)
    unknown = [s for s in splits if s not in ("val", "test")]
    if unknown:
        raise EgogrpoError(f"{path}: unknown split {unknown[0]!r} in 'splits' (list val and test; the rest is train)")
    listed: dict[str, str] = {}
    for split in ("val", "test"):
        people = splits.get(split, [])
        if not isinstance(people, list) or not all(isinstance(p, str) and "/" in p for p in people):
            raise EgogrpoError(f"{path}: splits.{split} must be a list of persons written '<people>/<id>'")
        for person in people:
            if person in listed:
                raise EgogrpoError(f"{path}: person {person!r} is in two splits ({listed[person]} and {split})")
            listed[person] = split
    excluded = _field(path, data, "excluded", dict, {})
    if not all(isinstance(reason, str) and reason.strip() for reason in excluded.values()):
        raise EgogrpoError(f"{path}: every 'excluded' file needs a reason")
    return CorpusManifest(
        path=path,
        excluded=dict(excluded),
        description=str(data.get("description", "")),
        licences=licences,
        sources=sources,
        val=tuple(splits.get("val", [])),
        test=tuple(splits.get("test", [])),
    )


def _asf_for(amc: Path) -> Path:
    """The ASF skeleton of an AMC clip: the folder's only .asf, or the one whose name starts the clip's."""
    asfs = sorted(amc.parent.glob("*.asf"))
    if len(asfs) > 1:
        asfs = [asf for asf in asfs if amc.stem.startswith(asf.stem + "_")]
    if len(asfs) != 1:
        raise EgogrpoError(f"{amc}: expected one .asf skeleton beside it, found {len(asfs)}")
    return asfs[0]


def corpus_tasks(manifest: CorpusManifest, root: str | Path) -> tuple[list[CorpusClip], list[str]]:
    """Every file of the manifest under `root`, with its name, person and split; and the sources skipped.

    A required source whose patterns match no file, a file whose path has no person, a person listed
    in a split who has no file (unless a source of their people is not required), and two files with
    one sequence name are refused (EgogrpoError).
    """
    root = Path(root)
    if not root.is_dir():
        raise EgogrpoError(f"--root {root}: no such folder")
    clips: list[CorpusClip] = []
    skipped: list[str] = []
    for source in manifest.sources:
        files = sorted({f for pattern in source.files for f in root.glob(pattern) if f.is_file()})
        if not files:
            if source.required:
                raise EgogrpoError(
                    f"{manifest.path}: source {source.name!r}: no file matches {', '.join(source.files)} under {root}"
                )
            skipped.append(source.name)
            continue
        for file in files:
            relative = file.relative_to(root).as_posix()
            if relative in manifest.excluded:
                continue
            match = re.search(source.person, relative)
            if match is None or not match.group("person"):
                raise EgogrpoError(
                    f"{manifest.path}: source {source.name!r}: no person in {relative!r} (pattern {source.person!r})"
                )
            person_id = match.group("person")
            person = f"{source.people}/{person_id}"
            paths = (str(_asf_for(file)), str(file)) if source.format == "asf-amc" else (str(file),)
            name = f"{source.prefix}/{person_id}/{file.stem}"
            clips.append(CorpusClip(source, paths, name, person, manifest.split_of(person)))
    names: dict[str, str] = {}
    for clip in clips:
        if clip.name in names:
            raise EgogrpoError(f"{manifest.path}: {clip.paths[-1]} and {names[clip.name]} both make {clip.name!r}")
        names[clip.name] = clip.paths[-1]
    present = {clip.person for clip in clips}
    optional = {s.people for s in manifest.sources if not s.required}  # a user may hold part of such a corpus
    for person in (*manifest.val, *manifest.test):
        if person not in present and person.split("/")[0] not in optional:
            raise EgogrpoError(f"{manifest.path}: person {person!r} of splits has no file under {root}")
    return clips, skipped


def split_people(clips: list[CorpusClip]) -> dict[str, list[str]]:
    """The persons of each split, sorted."""
    people: dict[str, set[str]] = {split: set() for split in SPLITS}
    for clip in clips:
        people[clip.split].add(clip.person)
    return {split: sorted(p) for split, p in people.items()}
