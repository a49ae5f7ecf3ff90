"""Atomic writes leave either the old file or the complete new one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from egogrpo.fileio import atomic_output, sha256_of_file


def test_atomic_output_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.npz"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == target.parent
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert list(target.parent.iterdir()) == [target]


def test_atomic_output_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_sha256_of_file(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"egogrpo" * 100_000)
    assert sha256_of_file(path, chunk_bytes=4096) == hashlib.sha256(b"egogrpo" * 100_000).hexdigest()


def test_atomic_output_respects_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    previous = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o644
