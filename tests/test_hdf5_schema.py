"""The motion-file layout: exact round trip, resumable atomic writes, and clear refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import egogrpo.data.hdf5_schema as hdf5_schema
from egogrpo.data.hdf5_schema import MotionFile, MotionFileInfo, MotionFileWriter, partial_path_for
from egogrpo.data.sequence import SEQUENCE_FIELDS, SequenceArrays
from egogrpo.errors import EgogrpoError

NUM_BETAS = 10


def random_quats(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """(*shape, 4) random unit quaternions, wxyz."""
    q = rng.normal(size=(*shape, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def random_pose(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """(T, 7) wxyz_xyz poses."""
    return np.concatenate([random_quats(rng, (num_frames,)), rng.normal(size=(num_frames, 3))], axis=-1)


def make_sequence(rng: np.random.Generator, num_frames: int, hands: bool = True) -> SequenceArrays:
    """A valid float32 SequenceArrays of random values (not a physically consistent motion)."""
    T_world_cpf = random_pose(rng, num_frames)
    return SequenceArrays(
        T_world_root=random_pose(rng, num_frames),
        body_quats=random_quats(rng, (num_frames, 21)),
        contacts=(rng.random((num_frames, 21)) > 0.5).astype(np.float64),
        betas=rng.normal(size=(1, NUM_BETAS)),
        T_world_cpf=T_world_cpf,
        T_cpf_tm1_cpf_t=random_pose(rng, num_frames),
        height_from_floor=T_world_cpf[:, 6:7],
        joints_wrt_cpf=rng.normal(size=(num_frames, 21, 3)),
        hand_quats=random_quats(rng, (num_frames, 30)) if hands else None,
    ).astype(np.float32)


def make_info(**changes: object) -> MotionFileInfo:
    info = MotionFileInfo(
        body_model_kind="default",
        body_model_id="default:51f398527f92",
        body_model_sha256="ab" * 32,
        num_betas=NUM_BETAS,
        source_dataset="cmu",
        options_json=json.dumps({"fps": 30.0, "min_seconds": 1.0}),
    )
    return dataclasses.replace(info, **changes)


def seq_attrs(name: str, split: str = "train", **extra: str | int | float) -> dict[str, str | int | float]:
    return {"source_path": f"/data/{name}.amc", "dataset": "cmu", "split": split, **extra}


def write_motion_file(path: Path, sequences: dict[str, tuple[SequenceArrays, str]]) -> Path:
    """Write {name: (arrays, split)} as a committed motion file."""
    with MotionFileWriter(path, make_info()) as writer:
        for name, (arrays, split) in sequences.items():
            writer.write(name, arrays, seq_attrs(name, split))
    return path


def assert_same(a: SequenceArrays, b: SequenceArrays) -> None:
    for name in SEQUENCE_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert y.dtype == np.float32 and np.array_equal(x, y), name


def test_round_trip_is_exact_with_and_without_hands(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with_hands, without_hands = make_sequence(rng, 70), make_sequence(rng, 5, hands=False)
    path = write_motion_file(tmp_path / "m.hdf5", {"a": (with_hands, "train"), "CMU/01/01_01": (without_hands, "val")})
    assert not partial_path_for(path).exists()
    with MotionFile(path) as motion:
        assert_same(motion.read("a"), with_hands)
        assert_same(motion.read("CMU/01/01_01"), without_hands)
        assert motion.has_hand_quats("a") and not motion.has_hand_quats("CMU/01/01_01")
        part = motion.read_frames("a", 33, 66)
        assert part.num_frames == 33
        assert np.array_equal(part.body_quats, with_hands.body_quats[33:66])
        assert np.array_equal(part.hand_quats, with_hands.hand_quats[33:66])
        assert np.array_equal(part.betas, with_hands.betas)
        with pytest.raises(ValueError):
            motion.read_frames("a", 60, 71)
        with h5py.File(path, "r") as raw:  # the on-disk layout itself
            assert (
                raw["a/body_quats"].chunks == (32, 21, 4) and raw["a/body_quats"].compression == hdf5_schema.COMPRESSION
            )
            assert raw["a/betas"].chunks is None and raw["CMU/01/01_01/T_world_root"].chunks == (5, 7)


def test_nested_names_and_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    layout = {"x": "train", "CMU/01/01_01": "train", "CMU/01/01_02": "val", "CMU/02/02_01": "test", "misc": ""}
    path = write_motion_file(tmp_path / "m.hdf5", {n: (make_sequence(rng, 4), s) for n, s in layout.items()})
    with MotionFile(path) as motion:
        assert motion.names() == sorted(layout)
        assert motion.names(split="train") == ["CMU/01/01_01", "x"]
        assert motion.names(split=["val", "test"]) == ["CMU/01/01_02", "CMU/02/02_01"]
        assert motion.names(split="") == ["misc"]
        assert motion.names(split="nope") == []
        with pytest.raises(EgogrpoError, match="no sequence 'CMU/01'"):
            motion.read("CMU/01")


def test_attributes_round_trip(tmp_path: Path) -> None:
    info = make_info(source_dataset="amass", body_model_kind="smplh", fps=30.0)
    arrays = make_sequence(np.random.default_rng(2), 9)
    attrs = seq_attrs("s", "val", gender="female", source_fps=120.0, trimmed_frames=np.int64(3))
    with MotionFileWriter(tmp_path / "m.hdf5", info) as writer:
        writer.write("BMLrub/s", arrays, attrs)
    with MotionFile(tmp_path / "m.hdf5") as motion:
        assert motion.info == info
        assert motion.info.options == {"fps": 30.0, "min_seconds": 1.0}
        assert motion.num_frames("BMLrub/s") == 9
        got = motion.sequence_attrs("BMLrub/s")
        assert got == {**attrs, "trimmed_frames": 3, "num_frames": 9}
        assert type(got["trimmed_frames"]) is int and type(got["source_fps"]) is float and type(got["gender"]) is str


def test_resume_after_crash(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    sequences = {f"S/{i}": make_sequence(rng, 6) for i in range(4)}
    path = tmp_path / "out" / "m.hdf5"
    with pytest.raises(KeyboardInterrupt), MotionFileWriter(path, make_info()) as writer:
        for name in list(sequences)[:2]:
            writer.write(name, sequences[name], seq_attrs(name))
        raise KeyboardInterrupt
    assert not path.exists() and partial_path_for(path).exists()

    with MotionFileWriter(path, make_info()) as writer:
        assert writer.finished_names() == {"S/0", "S/1"}
        for name, arrays in sequences.items():
            if name not in writer.finished_names():
                writer.write(name, arrays, seq_attrs(name))
    assert path.exists() and not partial_path_for(path).exists()
    with MotionFile(path) as motion:
        assert motion.names() == sorted(sequences)
        for name, arrays in sequences.items():
            assert_same(motion.read(name), arrays)


def test_resume_drops_incomplete_groups(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    path = tmp_path / "m.hdf5"
    writer = MotionFileWriter(path, make_info())
    for name in ("A/a", "B/b"):
        writer.write(name, make_sequence(rng, 6), seq_attrs(name))
    writer.close()  # as after a crash
    with h5py.File(partial_path_for(path), "r+") as raw:  # a write interrupted before `complete` was set
        del raw["B/b"].attrs["complete"]
        raw.create_group("C/c")  # … or right after the group was created
    writer = MotionFileWriter(path, make_info())
    assert writer.finished_names() == {"A/a"}
    writer.write("B/b", make_sequence(rng, 7), seq_attrs("B/b"))
    writer.commit()
    with MotionFile(path) as motion:
        assert motion.names() == ["A/a", "B/b"] and motion.num_frames("B/b") == 7
    with h5py.File(path, "r") as raw:
        assert "C" not in raw


def test_failed_write_leaves_no_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    writer = MotionFileWriter(tmp_path / "m.hdf5", make_info())
    writer.write("a", make_sequence(rng, 6), seq_attrs("a"))
    original = hdf5_schema._write_dataset

    def failing(group: h5py.Group, name: str, value: np.ndarray) -> None:
        if name == "contacts":
            raise OSError("disk full")
        original(group, name, value)

    monkeypatch.setattr(hdf5_schema, "_write_dataset", failing)
    with pytest.raises(OSError, match="disk full"):
        writer.write("b", make_sequence(rng, 6), seq_attrs("b"))
    monkeypatch.setattr(hdf5_schema, "_write_dataset", original)
    assert writer.finished_names() == {"a"}
    writer.write("b", make_sequence(rng, 6), seq_attrs("b"))
    writer.commit()
    with MotionFile(tmp_path / "m.hdf5") as motion:
        assert motion.names() == ["a", "b"]


@pytest.mark.parametrize(
    "changes",
    [
        {"options_json": json.dumps({"fps": 30.0, "min_seconds": 2.0})},
        {"body_model_id": "smplh:0123456789ab"},
        {"source_dataset": "amass"},
    ],
)
def test_resume_with_different_settings_is_refused(tmp_path: Path, changes: dict[str, object]) -> None:
    path = tmp_path / "m.hdf5"
    writer = MotionFileWriter(path, make_info())
    writer.write("a", make_sequence(np.random.default_rng(6), 4), seq_attrs("a"))
    writer.close()
    with pytest.raises(EgogrpoError, match="different settings") as error:
        MotionFileWriter(path, make_info(**changes))
    assert str(partial_path_for(path)) in str(error.value) and "\n" not in str(error.value)
    # The same options written in another key order are the same settings.
    reordered = json.dumps({"min_seconds": 1.0, "fps": 30.0})
    assert MotionFileWriter(path, make_info(options_json=reordered)).finished_names() == {"a"}
    # Without resume the partial file is started afresh.
    fresh = MotionFileWriter(path, make_info(**changes), resume=False)
    assert fresh.finished_names() == set()
    fresh.discard()
    assert not partial_path_for(path).exists()


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    path = write_motion_file(tmp_path / "m.hdf5", {"old": (make_sequence(rng, 4), "train")})
    with pytest.raises(EgogrpoError, match="exists; pass --overwrite"):
        MotionFileWriter(path, make_info())
    with MotionFileWriter(path, make_info(), overwrite=True) as writer:
        writer.write("new", make_sequence(rng, 4), seq_attrs("new"))
        with MotionFile(path) as motion:  # the old file stays intact until commit
            assert motion.names() == ["old"]
    with MotionFile(path) as motion:
        assert motion.names() == ["new"]


def test_writer_refuses_bad_sequences(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    writer = MotionFileWriter(tmp_path / "m.hdf5", make_info())
    bad = make_sequence(rng, 4)
    bad.body_quats[1, 2] = np.nan
    with pytest.raises(EgogrpoError, match="body_quats contains NaN"):
        writer.write("bad", bad, seq_attrs("bad"))
    with pytest.raises(EgogrpoError, match="num_betas=10"):
        writer.write(
            "bad", dataclasses.replace(make_sequence(rng, 4), betas=np.zeros((1, 16), np.float32)), seq_attrs("bad")
        )
    writer.write("a/b", make_sequence(rng, 4), seq_attrs("a/b"))
    with pytest.raises(EgogrpoError, match="already written"):
        writer.write("a/b", make_sequence(rng, 4), seq_attrs("a/b"))
    with pytest.raises(EgogrpoError, match="nest inside sequence"):
        writer.write("a/b/c", make_sequence(rng, 4), seq_attrs("a/b/c"))
    with pytest.raises(EgogrpoError, match="already a group"):
        writer.write("a", make_sequence(rng, 4), seq_attrs("a"))
    with pytest.raises(ValueError, match="lack split"):
        writer.write("c", make_sequence(rng, 4), {"source_path": "x", "dataset": "cmu"})
    assert writer.finished_names() == {"a/b"} and writer.is_open
    writer.discard()
    assert not writer.is_open and not partial_path_for(tmp_path / "m.hdf5").exists()


def _refusal_file(kind: str, tmp_path: Path) -> Path:
    """A file the reader must refuse, of the given kind."""
    rng = np.random.default_rng(9)
    path = tmp_path / f"{kind}.hdf5"
    if kind == "missing":
        return path
    if kind == "random_bytes":
        path.write_bytes(rng.bytes(4096))
    elif kind == "truncated":
        write_motion_file(path, {"a": (make_sequence(rng, 200), "train")})
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "foreign_hdf5":
        with h5py.File(path, "w") as raw:
            raw["data"] = np.zeros(3)
    elif kind == "partial":
        writer = MotionFileWriter(path, make_info())
        writer.write("a", make_sequence(rng, 4), seq_attrs("a"))
        writer.close()
        return partial_path_for(path)
    elif kind == "newer_schema":
        write_motion_file(path, {"a": (make_sequence(rng, 4), "train")})
        with h5py.File(path, "r+") as raw:
            raw.attrs["schema_version"] = 2
    return path


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("missing", "no such file"),
        ("random_bytes", "not an HDF5 file"),
        ("truncated", "truncated or damaged"),
        ("foreign_hdf5", "not an egogrpo motion file.*egogrpo preprocess"),
        ("partial", "unfinished motion file"),
        ("newer_schema", "newer egogrpo"),
    ],
)
def test_reader_refuses_with_one_line(tmp_path: Path, kind: str, says: str) -> None:
    path = _refusal_file(kind, tmp_path)
    with pytest.raises(EgogrpoError, match=says) as error:
        MotionFile(path)
    message = str(error.value)
    assert message.startswith(str(path)) and "\n" not in message


def test_reader_refuses_a_group_with_a_wrong_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    path = write_motion_file(tmp_path / "m.hdf5", {"CMU/a": (make_sequence(rng, 5), "train")})
    with h5py.File(path, "r+") as raw:
        del raw["CMU/a/body_quats"]
        raw["CMU/a/body_quats"] = np.zeros((5, 20, 4), np.float32)
    with MotionFile(path) as motion:
        assert motion.names() == ["CMU/a"]
        with pytest.raises(
            EgogrpoError, match=r"sequence 'CMU/a': body_quats has shape \(5, 20, 4\), expected \(5, 21, 4\)"
        ) as error:
            motion.read("CMU/a")
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
