"""RICH reader and the restricted unpickler, on synthetic SMPL-X models and RICH folders the tests write."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from synthetic_body import make_synthetic_model

from egogrpo.body.smplformat import load_smplx_extras
from egogrpo.data.gender_map import fit_beta_map
from egogrpo.data.restricted_pickle import load_restricted_pickle
from egogrpo.data.rich import (
    RichModels,
    read_multicam2world,
    read_rich_sequence,
    rich_manifest,
    rich_sequence_dir,
)
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_from_axis_angle

smplx = pytest.importorskip("smplx", reason="smplx (the optional cross-check backend) is not installed")

T = 6  # frames per synthetic sequence
FIRST_FRAME = 5  # RICH frame folders need not start at 0


def _expect_error(path: Path | str, fragment: str, call) -> EgogrpoError:
    with pytest.raises(EgogrpoError) as info:
        call()
    message = str(info.value)
    assert str(path) in message and fragment in message and "\n" not in message, message
    return info.value


# --- restricted unpickler ---------------------------------------------------------------------------


def _rich_frame(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A dict with the keys, shapes and dtype of a RICH frame pickle."""
    f = lambda *shape, s=1.0: (s * rng.normal(size=shape)).astype(np.float32)
    return {
        "betas": f(1, 10),
        "global_orient": f(1, 3),
        "body_pose": f(1, 63, s=0.4),
        "transl": f(1, 3),
        "left_hand_pose": f(1, 12),
        "right_hand_pose": f(1, 12),
        "jaw_pose": f(1, 3, s=0.1),
        "leye_pose": f(1, 3, s=0.1),
        "reye_pose": f(1, 3, s=0.1),
        "expression": f(1, 10),
    }


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_restricted_pickle_loads_arrays_and_containers(tmp_path: Path, protocol: int) -> None:
    frame = _rich_frame(np.random.default_rng(0))
    extra = {
        "scalars": [np.float64(1.5), np.int32(-3), np.bool_(True), 2.5, 7, "text", b"bytes", None],
        "containers": ({1, 2}, frozenset({3}), 1 + 2j, bytearray(b"ab")),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "record": np.zeros(2, dtype=[("a", "<f4"), ("b", "<i2")]),
        "strings": np.array(["a", "bc"]),
    }
    path = tmp_path / "frame.pkl"
    path.write_bytes(pickle.dumps({**frame, **extra}, protocol=protocol))
    loaded = load_restricted_pickle(path)
    for key, value in frame.items():
        assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value)
    assert loaded["scalars"] == extra["scalars"] and type(loaded["scalars"][0]) is np.float64
    assert loaded["containers"] == extra["containers"]
    assert np.array_equal(loaded["fortran"], extra["fortran"]) and loaded["fortran"].flags.f_contiguous
    assert np.array_equal(loaded["record"], extra["record"]) and list(loaded["strings"]) == ["a", "bc"]


class _RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def _malicious_pickles(marker: Path) -> dict[str, tuple[bytes, str]]:
    """name → (pickle bytes, the refused global as the error names it)."""
    system = f"{os.system.__module__}.system"  # posix.system on Linux
    return {
        "os.system": (pickle.dumps({"betas": np.zeros(3), "x": _RunsShell(f"touch {marker}")}), system),
        "os.system protocol 0": (f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(), "os.system"),
        "builtins.eval": (pickle.dumps(_CallsEval()), "builtins.eval"),
        "eval protocol 2": (pickle.dumps(_CallsEval(), protocol=2), "__builtin__.eval"),
        "builtins.getattr": (b"cbuiltins\ngetattr\n(cbuiltins\ndict\nS'get'\ntR.", "builtins.getattr"),
        "torch": (pickle.dumps(torch.zeros(2)), "torch."),
        "numpy.load": (b"cnumpy\nload\n(S'/etc/passwd'\ntR.", "numpy.load"),
    }


@pytest.mark.parametrize("case", list(_malicious_pickles(Path("m"))))
def test_restricted_pickle_refuses_code_without_running_it(tmp_path: Path, case: str) -> None:
    marker = tmp_path / "executed"
    data, refused = _malicious_pickles(marker)[case]
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    _expect_error(path, refused, lambda: load_restricted_pickle(path))
    assert "refused" in str(_expect_error(path, "", lambda: load_restricted_pickle(path)))
    assert not marker.exists()


def test_restricted_pickle_truncated_corrupt_and_missing(tmp_path: Path) -> None:
    good = pickle.dumps(_rich_frame(np.random.default_rng(1)))
    cases = {
        "truncated.pkl": good[: len(good) // 2],
        "cut_last_byte.pkl": good[:-1],
        "empty.pkl": b"",
        "text.pkl": b"this is not a pickle",
        "garbage.pkl": np.random.default_rng(2).bytes(500),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        error = _expect_error(path, "", lambda path=path: load_restricted_pickle(path))
        assert "truncated or corrupt" in str(error) or "refused" in str(error)
    _expect_error(tmp_path / "nope.pkl", "no such file", lambda: load_restricted_pickle(tmp_path / "nope.pkl"))


# --- synthetic SMPL-X models ------------------------------------------------------------------------


def _smplx_file(path: Path, seed: int) -> dict[str, np.ndarray]:
    """A synthetic SMPL-X npz with everything smplx needs: 10 betas + 10 expression columns (the 1.0
    layout), hand PCA and face landmarks."""
    rng = np.random.default_rng(seed)
    arrays = make_synthetic_model("smplx", num_betas=20, seed=seed)
    num_faces = arrays["f"].shape[0]
    for side in "lr":
        arrays[f"hands_components{side}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0].astype(np.float32)
        arrays[f"hands_mean{side}"] = (0.2 * rng.normal(size=45)).astype(np.float32)
    bary = rng.uniform(size=(51, 3))
    arrays["lmk_faces_idx"] = rng.integers(0, num_faces, size=51)
    arrays["lmk_bary_coords"] = (bary / bary.sum(axis=1, keepdims=True)).astype(np.float32)
    np.savez(path, **arrays)
    return arrays


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("smplx")
    paths = {g: folder / f"SMPLX_{g.upper()}.npz" for g in ("male", "female", "neutral")}
    for seed, path in enumerate(paths.values()):
        _smplx_file(path, seed=10 + seed)
    return paths


@pytest.fixture(scope="module")
def models(model_files) -> RichModels:
    return RichModels.from_files(male=model_files["male"], female=model_files["female"], neutral=model_files["neutral"])


def test_smplx_extras_expression_columns_follow_smplx(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for columns, start in ((20, 10), (400, 300)):
        regressor, shapedirs = rng.uniform(size=(4, 7)), rng.normal(size=(7, 3, columns))
        path = tmp_path / f"extras_{columns}.npz"
        hands = {
            f"hands_{k}{s}": rng.normal(size=(45, 45) if k == "components" else 45)
            for k in ("components", "mean")
            for s in "lr"
        }
        np.savez(path, J_regressor=regressor, shapedirs=shapedirs, **hands)
        extras = load_smplx_extras(path)
        expected = np.einsum("jv,vcb->jcb", regressor, shapedirs[:, :, start : start + 10])
        np.testing.assert_allclose(extras.joints_expression_dirs, expected, atol=1e-12)
        np.testing.assert_array_equal(extras.hands_components_left, hands["hands_componentsl"])
    np.savez(tmp_path / "no_hands.npz", J_regressor=regressor, shapedirs=shapedirs)
    _expect_error(tmp_path / "no_hands.npz", "hands_componentsl", lambda: load_smplx_extras(tmp_path / "no_hands.npz"))
    np.savez(tmp_path / "pickled.npz", J_regressor=np.array([object()], dtype=object))
    _expect_error(tmp_path / "pickled.npz", "pickled", lambda: load_smplx_extras(tmp_path / "pickled.npz"))


# --- synthetic RICH folders -------------------------------------------------------------------------


def _write_sequence(root: Path, split: str, sequence: str, subjects: dict[str, list[dict[str, np.ndarray]]]) -> Path:
    """`root/bodies/<split>/<sequence>/<frame:05d>/<subject>.pkl`, pickled with the standard module."""
    seq_dir = root / "bodies" / split / sequence
    for subject, frames in subjects.items():
        for i, frame in enumerate(frames):
            folder = seq_dir / f"{FIRST_FRAME + i:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / f"{subject}.pkl", "wb") as f:
                pickle.dump(frame, f)
    return seq_dir


def _motion(seed: int, num_frames: int = T) -> list[dict[str, np.ndarray]]:
    """Per-frame RICH parameters: one shape per subject (as RICH), random poses."""
    rng = np.random.default_rng(seed)
    betas = rng.normal(size=(1, 10)).astype(np.float32)
    frames = []
    for _ in range(num_frames):
        frame = _rich_frame(rng)
        frame["betas"] = betas.copy()
        frames.append(frame)
    return frames


def _write_world(root: Path, name: str, R_world_cam: np.ndarray, t: np.ndarray, c: float, digits: int = 12) -> Path:
    """multicam2world JSON: the toolkit maps row vectors x ↦ c x @ R + t, so R = R_world_camᵀ."""
    folder = root / "multicam2world"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_multicam2world.json"
    R = np.round(R_world_cam.T, digits)
    path.write_text(json.dumps({"R": R.tolist(), "t": t.tolist(), "c": c}))
    return path


def _smplx_reference(model_file: Path, frames: list[dict[str, np.ndarray]]):
    """smplx's SMPLX forward exactly as the RICH toolkit sets it up (joints, full pose)."""
    model = smplx.SMPLX(
        str(model_file),
        ext="npz",
        num_pca_comps=12,
        flat_hand_mean=False,
        create_expression=True,
        create_jaw_pose=True,
        batch_size=len(frames),
    )
    params = {k: torch.from_numpy(np.concatenate([f[k] for f in frames])) for k in frames[0]}
    with torch.no_grad():
        out = model(return_verts=False, return_full_pose=True, **params)
    return out.joints[:, :55].double().numpy(), out.full_pose.double().numpy().reshape(len(frames), 55, 3)


def _same_rotation(q: np.ndarray, rotvec: np.ndarray) -> None:
    ref = quat_from_axis_angle(torch.from_numpy(rotvec)).numpy()
    np.testing.assert_allclose(np.abs((q * ref).sum(-1)), 1.0, atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 1.02])
def test_sequence_matches_smplx_in_the_world_frame(tmp_path: Path, model_files, models, scale: float) -> None:
    frames = _motion(seed=4)
    seq_dir = _write_sequence(tmp_path, "test", "Gym_011_pushup1", {"011": frames})
    R_world_cam = Rotation.random(random_state=5).as_matrix()
    t = np.array([0.4, -1.2, 1.5])
    _write_world(tmp_path, "Gym", R_world_cam, t, scale)
    clip = read_rich_sequence(seq_dir, models)

    joints_ref, full_pose = _smplx_reference(model_files["male"], frames)  # subject 011 is male
    world = lambda x: scale * x @ R_world_cam.T + t
    assert clip.name == "RICH/test/Gym_011_pushup1" and clip.dataset == "rich" and clip.fps == 30.0
    assert clip.num_frames == T and clip.joints_world.shape == (T, 22, 3)
    np.testing.assert_allclose(clip.joints_world, world(joints_ref[:, :22]), atol=2e-5)
    np.testing.assert_allclose(clip.T_world_root[:, 4:], world(joints_ref[:, 0]), atol=2e-5)
    R_root = Rotation.from_quat(clip.T_world_root[:, :4], scalar_first=True)
    R_expected = Rotation.from_matrix(R_world_cam) * Rotation.from_rotvec(full_pose[:, 0])
    assert (R_root.inv() * R_expected).magnitude().max() < 1e-6
    _same_rotation(clip.body_quats, full_pose[:, 1:22])
    _same_rotation(clip.hand_quats, full_pose[:, 25:55])  # PCA + mean hand, left then right

    betas = frames[0]["betas"][0].astype(np.float64)
    np.testing.assert_allclose(clip.betas, fit_beta_map(models.male, models.neutral).apply(betas), atol=1e-6)
    assert clip.attrs["gender"] == "male" and clip.attrs["gender_mapped"] == 1 and clip.attrs["split"] == "test"
    assert clip.attrs["world_scale"] == scale and clip.attrs["multicam2world"] == "Gym_multicam2world.json"

    # Unscaled, the fields reproduce the ground truth by FK on the gendered model (hands included).
    if scale == 1.0:
        male = models.male.to(dtype=torch.float64)
        f64 = lambda x: torch.from_numpy(np.ascontiguousarray(x))
        expression = np.concatenate([f["expression"] for f in frames]).astype(np.float64)
        shaped = male.with_shape(f64(np.tile(betas, (T, 1))))
        offset = torch.einsum("jce,te->tjc", f64(models.male_extras.joints_expression_dirs), f64(expression))
        shaped = type(shaped)(shaped.model, shaped.betas, shaped.rest_joints + offset, shaped.cpf_offset)
        posed = shaped.with_pose(f64(clip.T_world_root), f64(clip.body_quats), f64(clip.hand_quats))
        hands = posed.joints[:, 25:].numpy()  # SMPL-X: jaw and eyes are 22–24
        np.testing.assert_allclose(posed.joints[:, :22].numpy(), clip.joints_world, atol=1e-6)
        np.testing.assert_allclose(hands, world(joints_ref[:, 25:55]), atol=2e-5)


def test_without_a_neutral_model_betas_stay_gendered(tmp_path: Path, model_files) -> None:
    frames = _motion(seed=6)
    seq_dir = _write_sequence(tmp_path, "val", "ParkingLot2_016_phonetalk5", {"016": frames})  # female
    _write_world(tmp_path, "ParkingLot2", np.eye(3), np.zeros(3), 1.0)
    clip = read_rich_sequence(seq_dir, RichModels.from_files(female=model_files["female"]))
    np.testing.assert_allclose(clip.betas, frames[0]["betas"][0], atol=1e-6)
    assert clip.attrs["gender"] == "female" and clip.attrs["gender_mapped"] == 0 and clip.name.startswith("RICH/val/")
    _expect_error(seq_dir, "male SMPL-X model", lambda: read_rich_sequence(seq_dir, models=RichModels(), gender="male"))


def test_upright_body_is_z_up_after_the_world_transform(tmp_path: Path, models) -> None:
    """A standing fit in OpenCV camera axes (y down, z forward) comes out upright in the z-up world."""
    frames = _motion(seed=7)
    for frame in frames:
        frame["body_pose"][:] = 0.0
        frame["global_orient"][:] = [[np.pi, 0.0, 0.0]]  # model up (+y) → camera −y (up in the image)
    seq_dir = _write_sequence(tmp_path, "test", "Gym_010_lunge1", {"010": frames})
    camera_to_zup = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # a level camera
    _write_world(tmp_path, "Gym", camera_to_zup, np.array([0.0, 0.0, 1.4]), 1.0, digits=3)
    clip = read_rich_sequence(seq_dir, models)
    assert clip.attrs["spine_up"] > 0.99
    assert (clip.joints_world[:, 15, 2] > clip.joints_world[:, 0, 2] + 0.4).all()  # head above pelvis


def test_two_person_sequence_and_scene_specific_world_file(tmp_path: Path, models) -> None:
    sequence = "LectureHall_009_021_reparingprojector1"
    seq_dir = _write_sequence(tmp_path, "test", sequence, {"009": _motion(8), "021": _motion(9)})
    _write_world(tmp_path, "LectureHall_chair", np.eye(3), np.zeros(3), 1.0)
    _write_world(tmp_path, "LectureHall_yoga", np.eye(3), np.zeros(3), 1.0)
    _expect_error(seq_dir, "009, 021", lambda: read_rich_sequence(seq_dir, models))
    clip = read_rich_sequence(seq_dir, models, subject="021")
    assert clip.name == f"RICH/test/{sequence}/021" and clip.attrs["subject"] == "021"
    assert clip.attrs["multicam2world"] == "LectureHall_yoga_multicam2world.json"  # the manifest's scan
    other = read_rich_sequence(seq_dir, models, subject="009")
    assert not np.allclose(other.joints_world, clip.joints_world)


def test_other_layouts_explicit_arguments_and_sequence_lookup(tmp_path: Path, models) -> None:
    seq_dir = tmp_path / "my_copy" / "Gym_013_dips1"
    seq_dir.parent.mkdir()
    _write_sequence(tmp_path / "unused", "test", "Gym_013_dips1", {"013": _motion(15)}).rename(seq_dir)
    world = _write_world(tmp_path / "elsewhere", "Gym", np.eye(3), np.zeros(3), 1.0)
    clip = read_rich_sequence(seq_dir, models, gender="female", split="", multicam2world=world)
    assert clip.name == "RICH/Gym_013_dips1" and clip.attrs["gender"] == "female"
    entry = rich_manifest().find("Gym_013_dips1")
    for layout in ("bodies/test", "test_body", "data/bodies/test"):
        root = tmp_path / layout.replace("/", "_")
        (root / layout / entry.sequence).mkdir(parents=True)
        assert rich_sequence_dir(root, entry) == root / layout / entry.sequence
    _expect_error(tmp_path, "not found", lambda: rich_sequence_dir(tmp_path, entry))


def test_rounded_published_rotation_is_accepted(tmp_path: Path) -> None:
    R = Rotation.random(random_state=11).as_matrix()
    path = _write_world(tmp_path, "BBQ", R, np.ones(3), 0.98, digits=3)
    R_world_cam, t, c = read_multicam2world(path)
    assert np.abs(R_world_cam - R).max() < 2e-3 and np.allclose(R_world_cam @ R_world_cam.T, np.eye(3))
    assert c == 0.98 and np.array_equal(t, np.ones(3))
    path.write_text(json.dumps({"R": (2 * R.T).tolist(), "t": [0, 0, 0], "c": 1.0}))
    _expect_error(path, "not a rotation", lambda: read_multicam2world(path))
    path.write_text(json.dumps({"R": R.T.tolist(), "c": 1.0}))
    _expect_error(path, "expected an object", lambda: read_multicam2world(path))


# --- bad input: one line naming the file --------------------------------------------------------------


@pytest.fixture
def good_sequence(tmp_path: Path) -> Path:
    seq_dir = _write_sequence(tmp_path, "test", "Gym_013_dips1", {"013": _motion(12)})
    _write_world(tmp_path, "Gym", np.eye(3), np.zeros(3), 1.0)
    return seq_dir


def _frame_file(seq_dir: Path, i: int) -> Path:
    return seq_dir / f"{FIRST_FRAME + i:05d}" / "013.pkl"


def test_missing_folders_and_files(tmp_path: Path, good_sequence: Path, models) -> None:
    missing = tmp_path / "bodies" / "test" / "Gym_013_nothing"
    _expect_error(missing, "no such RICH sequence folder", lambda: read_rich_sequence(missing, models))
    empty = tmp_path / "bodies" / "test" / "Gym_013_empty"
    empty.mkdir()
    _expect_error(empty, "no frame folders", lambda: read_rich_sequence(empty, models))
    _frame_file(good_sequence, 3).unlink()
    _expect_error(_frame_file(good_sequence, 3), "missing fit", lambda: read_rich_sequence(good_sequence, models))
    (good_sequence / f"{FIRST_FRAME + 3:05d}").rmdir()
    _expect_error(good_sequence, "not consecutive", lambda: read_rich_sequence(good_sequence, models))
    (tmp_path / "multicam2world" / "Gym_multicam2world.json").unlink()
    no_world = _write_sequence(tmp_path, "test", "Gym_013_dips2", {"013": _motion(13)})
    _expect_error(no_world, "multicam2world", lambda: read_rich_sequence(no_world, models))


@pytest.mark.parametrize("case", ["missing key", "nan", "wrong size", "not a dict", "torch tensor"])
def test_bad_frame_pickles(good_sequence: Path, models, case: str) -> None:
    path = _frame_file(good_sequence, 2)
    frame = pickle.loads(path.read_bytes())
    fragment = {
        "missing key": "missing key(s) transl",
        "nan": "body_pose contains NaN",
        "wrong size": "global_orient has 4 values",
        "not a dict": "expected a dict",
        "torch tensor": "refused",
    }[case]
    if case == "missing key":
        del frame["transl"]
    elif case == "nan":
        frame["body_pose"][0, 5] = np.nan
    elif case == "wrong size":
        frame["global_orient"] = np.zeros((1, 4), np.float32)
    elif case == "not a dict":
        frame = [frame]
    else:
        frame["transl"] = torch.zeros(1, 3)
    path.write_bytes(pickle.dumps(frame))
    _expect_error(path, fragment, lambda: read_rich_sequence(good_sequence, models))


def test_malicious_or_truncated_frame_pickle(tmp_path: Path, good_sequence: Path, models) -> None:
    marker = tmp_path / "executed"
    path = _frame_file(good_sequence, 1)
    path.write_bytes(_malicious_pickles(marker)["os.system"][0])
    _expect_error(path, "refused", lambda: read_rich_sequence(good_sequence, models))
    assert not marker.exists()
    path.write_bytes(pickle.dumps(_motion(14)[0])[:-20])
    _expect_error(path, "truncated or corrupt", lambda: read_rich_sequence(good_sequence, models))


# --- manifest ---------------------------------------------------------------------------------------


def test_manifest_holds_the_official_splits() -> None:
    manifest = rich_manifest()
    test = manifest.split("test")
    assert len(test) == 53 and len({e.sequence for e in test}) == 52  # one two-person sequence
    assert len(manifest.split("val")) == 28 and len(manifest.split("train")) == 64
    for entry in manifest.entries:
        assert entry.sequence.startswith(entry.capture + "_") and entry.subject in entry.sequence.split("_")
        assert manifest.subject_gender[int(entry.subject)] == entry.gender
    all_sequences = [{e.sequence for e in manifest.split(s)} for s in ("train", "val", "test")]
    assert not (
        all_sequences[0] & all_sequences[1]
        or all_sequences[0] & all_sequences[2]
        or all_sequences[1] & all_sequences[2]
    )
    assert manifest.find("Gym_011_cooking1").scan == "scan_table_camcoord"
    with pytest.raises(EgogrpoError, match="unknown RICH split"):
        manifest.split("testing")


def test_preprocess_rich_command_end_to_end(tmp_path: Path, model_files, run_cli) -> None:
    """`egogrpo preprocess rich` on a synthetic download holding one official test sequence."""
    from egogrpo.data.hdf5_schema import MotionFile
    from egogrpo.geometry import se3_apply

    frames = _motion(seed=21, num_frames=40)
    seq_dir = _write_sequence(tmp_path / "rich", "test", "Gym_010_lunge1", {"010": frames})
    camera_to_zup = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    _write_world(tmp_path / "rich", "Gym", camera_to_zup, np.array([0.0, 0.0, 1.4]), 1.0)
    out = tmp_path / "rich.h5"
    result = run_cli(
        "preprocess", "rich", str(tmp_path / "rich"), "--smplx", str(model_files["neutral"]),
        "--smplx-male", str(model_files["male"]), "--smplx-female", str(model_files["female"]),
        "--out", str(out), "--min-frames", "1", "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "not found under" in result.stdout  # the other official test sequences are reported missing
    models = RichModels.from_files(
        male=model_files["male"], female=model_files["female"], neutral=model_files["neutral"]
    )
    truth = read_rich_sequence(seq_dir, models, subject="010", split="test").joints_world
    with MotionFile(out) as f:
        assert f.info.body_model_kind == "smplx" and f.names() == ["RICH/test/Gym_010_lunge1/010"]
        seq = f.read("RICH/test/Gym_010_lunge1/010")
    stored = se3_apply(
        torch.from_numpy(seq.T_world_cpf)[:, None].double(), torch.from_numpy(seq.joints_wrt_cpf).double()
    )
    shift = stored.numpy() - truth[1:, 1:]  # RICH is already 30 fps; the first frame is dropped
    np.testing.assert_allclose(shift[..., :2], 0.0, atol=1e-4)  # only the floor moves the body, along z
    np.testing.assert_allclose(shift[..., 2], shift[0, 0, 2], atol=1e-4)
