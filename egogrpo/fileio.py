"""Small file helpers shared by readers and writers: atomic output, hashes, safe npz and text reading."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from egogrpo.errors import EgogrpoError


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it.

    The rename is atomic on POSIX, so readers see either the old file, or the complete new one,
    never a half-written file. The temporary name keeps the target's extension (np.savez needs it).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(path: str | os.PathLike[str], what: str, folder: bool = False) -> None:
    """EgogrpoError (naming `what`, e.g. "--out") unless `path` can be written, checked before any work.

    `path` is an output file, or with `folder=True` an output folder. The nearest existing folder on
    the way to it must be a folder in which a file can be created (a real probe, so a read-only
    mount or missing permissions are found whoever runs it); an output file must not be a folder and
    an output folder must not be a file. Whether existing outputs may be replaced is the caller's rule.
    """
    target = Path(path)
    if folder and target.exists() and not target.is_dir():
        raise EgogrpoError(f"{what} {target}: exists and is not a folder")
    if not folder and target.is_dir():
        raise EgogrpoError(f"{what} {target}: is a folder; give a file name")
    probe = target if folder else target.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise EgogrpoError(f"{what} {target}: {probe} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".egogrpo-write-check-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise EgogrpoError(f"{what} {target}: cannot write in {probe} ({e.strerror or e})") from None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256_of_file(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def one_line(error: BaseException) -> str:
    """An exception as one line: its type and its message with whitespace collapsed."""
    return " ".join(f"{type(error).__name__}: {error}".split())


def read_text(path: Path) -> str:
    """A text file's contents (UTF-8, BOM tolerated); an unreadable file is an EgogrpoError naming it."""
    try:
        return path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as e:
        raise EgogrpoError(f"{path}: cannot read the file ({e.strerror or e})") from None


def read_npz(path: Path, keys: Iterable[str], required: str | None = None) -> dict[str, np.ndarray]:
    """The arrays named `keys` that an `.npz` holds, never unpickling anything.

    With `required` (what the file should be, e.g. "an SMPL-X model file"), every key must be there;
    else absent keys are left out. A truncated or corrupt archive, a pickled array, or a missing
    required key is an EgogrpoError naming the file.
    """
    keys = tuple(keys)
    arrays = _load_npz(path, keys)
    missing = [k for k in keys if k not in arrays]
    if required is not None and missing:
        raise EgogrpoError(f"{path}: not {required}: missing key(s) {', '.join(missing)} (expected {', '.join(keys)})")
    return arrays


def _load_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not zipfile.is_zipfile(path):
        raise EgogrpoError(f"{path}: not a readable .npz file (truncated, corrupt or not an npz)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in keys if k in npz.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise EgogrpoError(
                f"{path}: the file stores pickled objects, which egogrpo does not load; "
                "save every array as a plain numeric or string array"
            ) from None
        raise EgogrpoError(f"{path}: not a readable .npz file ({one_line(e)})") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as e:
        raise EgogrpoError(f"{path}: not a readable .npz file, truncated or corrupt ({one_line(e)})") from None
