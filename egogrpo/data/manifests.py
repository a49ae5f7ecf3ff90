"""Find and load the JSON manifests in `data_manifests/` (dataset splits, fixes, protocols).

The folder is looked for, in order:

1. `$EGOGRPO_DATA_MANIFESTS`, when set (an explicit override);
2. `egogrpo/data_manifests/` inside the installed package (where package data would put it);
3. `data_manifests/` beside the `egogrpo/` package, i.e. the repository root of a source checkout
   or an editable install.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from egogrpo.errors import EgogrpoError

MANIFEST_DIR_ENV = "EGOGRPO_DATA_MANIFESTS"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # .../egogrpo
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def manifest_dirs() -> list[Path]:
    """The folders searched for manifests, in order (they need not exist)."""
    dirs = []
    if os.environ.get(MANIFEST_DIR_ENV):
        dirs.append(Path(os.environ[MANIFEST_DIR_ENV]))
    dirs += [_PACKAGE_DIR / "data_manifests", _PACKAGE_DIR.parent / "data_manifests"]
    return dirs


def manifest_path(name: str) -> Path:
    """Path of the manifest `name` (e.g. "amass" or "amass.json"): the first search folder that has it."""
    if not _NAME.match(name) or ".." in name:
        raise EgogrpoError(f"manifest name {name!r}: expected a plain file name such as 'amass'")
    file_name = name if name.endswith(".json") else f"{name}.json"
    for folder in manifest_dirs():
        if (folder / file_name).is_file():
            return folder / file_name
    searched = ", ".join(str(d) for d in manifest_dirs())
    raise EgogrpoError(f"manifest {file_name} not found (searched {searched}; set ${MANIFEST_DIR_ENV} to its folder)")


def load_manifest(name: str) -> dict[str, Any]:
    """The JSON object stored in manifest `name`, e.g. `load_manifest("amass")`.

    Raises EgogrpoError (one line naming the file) when it is missing, not valid JSON, or not an object.
    """
    path = manifest_path(name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise EgogrpoError(f"{path}: cannot read manifest ({type(e).__name__}: {e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise EgogrpoError(f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(data, dict):
        raise EgogrpoError(f"{path}: a manifest must be a JSON object, found {type(data).__name__}")
    return data
