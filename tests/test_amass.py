"""AMASS reader, manifest and gender-to-neutral shape map on synthetic SMPL-H models and AMASS files."""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from synthetic_body import make_synthetic_model, smplx_data_struct

from egogrpo.body import load_default_body, load_smpl_npz
from egogrpo.body.topology import SMPLH_JOINT_NAMES
from egogrpo.data.amass import AmassModels, amass_manifest, find_amass_files, read_amass_npz
from egogrpo.data.gender_map import fit_beta_map
from egogrpo.data.manifests import MANIFEST_DIR_ENV, load_manifest
from egogrpo.data.motion import mirror_clip
from egogrpo.errors import EgogrpoError
from egogrpo.geometry import quat_to_matrix

smplx = pytest.importorskip("smplx", reason="smplx (the optional cross-check backend) is not installed")

T = 8  # frames per synthetic AMASS clip
B = 16


# --- synthetic models: neutral, and male/female derived from it by known maps --------------------


def _derived_model(neutral: dict[str, np.ndarray], A: np.ndarray, b: np.ndarray, residual: float, seed: int):
    """A model whose rest mesh is neutral's at β_n = A β + b, plus (optionally) a part orthogonal to
    neutral's shape space that no neutral β can represent."""
    shapedirs = neutral["shapedirs"].astype(np.float64)  # (V, 3, B)
    v_template = neutral["v_template"].astype(np.float64) + shapedirs @ b
    new_dirs = np.einsum("vcb,bk->vck", shapedirs, A)
    if residual:
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(shapedirs.reshape(-1, B))
        project_out = lambda x: x - q @ (q.T @ x)
        v_template += residual * project_out(rng.normal(size=v_template.size)).reshape(v_template.shape)
        new_dirs += 0.4 * residual * project_out(rng.normal(size=(v_template.size, B))).reshape(new_dirs.shape)
    return dict(neutral, v_template=v_template.astype(np.float32), shapedirs=new_dirs.astype(np.float32))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("smplh")
    rng = np.random.default_rng(0)
    neutral = make_synthetic_model("smplh", num_betas=B, seed=3)
    truth = {
        "male": (np.eye(B) + 0.3 * rng.normal(size=(B, B)), 0.5 * rng.normal(size=B), 0.0),
        "female": (np.eye(B) + 0.3 * rng.normal(size=(B, B)), 0.5 * rng.normal(size=B), 0.005),
    }
    arrays = {"neutral": neutral}
    for i, (gender, (A, b, residual)) in enumerate(truth.items()):
        arrays[gender] = _derived_model(neutral, A, b, residual, seed=i)
    paths = {}
    for gender, a in arrays.items():
        paths[gender] = folder / f"{gender}.npz"
        np.savez(paths[gender], **a)
    loaded = {g: load_smpl_npz(p) for g, p in paths.items()}
    return {
        "arrays": arrays,
        "truth": truth,
        "loaded": loaded,
        "all": AmassModels(neutral=loaded["neutral"], male=loaded["male"], female=loaded["female"]),
        "neutral_only": AmassModels(neutral=loaded["neutral"]),
    }


# --- synthetic AMASS files ----------------------------------------------------------------------


def _motion(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    poses = 0.4 * rng.normal(size=(T, 156))
    poses[:, :3] = Rotation.random(T, random_state=seed).as_rotvec()
    return {
        "poses": poses,
        "trans": np.cumsum(0.02 * rng.normal(size=(T, 3)), axis=0) + np.array([0.5, -1.0, 0.9]),
        "betas": rng.normal(size=B),
        "gender": np.array("male"),
        "mocap_framerate": np.array(120.0),
        "dmpls": np.zeros((T, 8)),
    }


def write_amass(path: Path, seed: int = 0, **changes: object) -> dict[str, np.ndarray]:
    """An AMASS SMPL+H G npz with the real keys; `changes` replace keys (None removes one)."""
    arrays = _motion(seed)
    for key, value in changes.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def _smplx_joints(arrays: dict[str, np.ndarray], motion: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 52, 3) joints of smplx's SMPLH forward pass on the same model and motion."""
    body = smplx.SMPLH(
        model_path="unused",
        data_struct=smplx_data_struct(arrays),
        num_betas=B,
        use_pca=False,
        flat_hand_mean=True,
        batch_size=T,
    )
    f = lambda x: torch.from_numpy(np.asarray(x)).float()
    poses = motion["poses"]
    out = body(
        betas=f(np.tile(motion["betas"][:B], (T, 1))),
        global_orient=f(poses[:, :3]),
        body_pose=f(poses[:, 3:66]),
        left_hand_pose=f(poses[:, 66:111]),
        right_hand_pose=f(poses[:, 111:]),
        transl=f(motion["trans"]),
    )
    return out.joints[:, :52].detach().double().numpy()


def _fk(model, clip, betas: np.ndarray | None = None, hands: bool = False) -> np.ndarray:
    betas = clip.betas if betas is None else betas
    t = lambda x: torch.from_numpy(np.asarray(x)).double()
    shaped = model.to(dtype=torch.float64).with_shape(t(betas))
    posed = shaped.with_pose(t(clip.T_world_root), t(clip.body_quats), t(clip.hand_quats) if hands else None)
    return posed.joints.numpy()


# --- gender map ----------------------------------------------------------------------------------


def test_gender_map_recovers_known_map(models) -> None:
    loaded = models["loaded"]
    for gender in ("male", "female"):
        A, b, residual = models["truth"][gender]
        fitted = fit_beta_map(loaded[gender], loaded["neutral"])
        assert fitted.A.shape == (B, B) and fitted.b.shape == (B,)
        np.testing.assert_allclose(fitted.A, A, atol=1e-6)
        np.testing.assert_allclose(fitted.b, b, atol=1e-6)
        betas = np.random.default_rng(1).normal(size=(3, B))
        np.testing.assert_allclose(fitted.apply(betas), betas @ A.T + b, atol=1e-5)
        if residual:  # the part orthogonal to neutral's shape space stays as the residual
            assert 0.5 * residual * np.sqrt(3) < fitted.residual_rms < 2 * residual * np.sqrt(3)
        else:
            assert fitted.residual_rms < 1e-6
    assert models["all"].male_to_neutral is not None and models["all"].female_to_neutral is not None
    assert models["neutral_only"].male_to_neutral is None


def test_gender_map_refuses_models_without_a_matching_mesh(models) -> None:
    neutral = models["loaded"]["neutral"]
    with pytest.raises(EgogrpoError, match="has no mesh"):
        fit_beta_map(load_default_body(), neutral)
    mesh = neutral.mesh
    small = dataclasses.replace(
        neutral, mesh=dataclasses.replace(mesh, v_template=mesh.v_template[:100], shape_dirs=mesh.shape_dirs[:100])
    )
    with pytest.raises(EgogrpoError, match="same vertices"):
        fit_beta_map(small, neutral)


# --- manifest ------------------------------------------------------------------------------------


def test_manifest_has_egoallos_splits_fixes_and_skips() -> None:
    data = load_manifest("amass")
    assert "EgoAllo" in data["notes"]
    manifest = amass_manifest()
    assert manifest.splits["val"] == ("HumanEva", "MPI_HDM05", "MPI_mosh", "SFU")
    assert manifest.splits["test"] == ("Transitions_mocap", "SSM_synced")
    assert len(manifest.splits["train"]) == 13 and "BioMotionLab_NTroje" in manifest.splits["train"]
    assert manifest.split_of("CMU") == "train" and manifest.split_of("GRAB") == ""
    assert manifest.datasets(["test"]) == ["Transitions_mocap", "SSM_synced"]
    assert len(manifest.datasets()) == 19
    assert manifest.fixed_fps("BMLhandball/S01_Expert/Trial_upper_left_033_poses.npz") == 240
    assert manifest.fixed_fps("SSM_synced/20161014_50033/jumping_jacks_sync_poses.npz") == 59
    assert manifest.fixed_fps("CMU/01/01_01_poses.npz") is None


def test_manifest_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EgogrpoError, match=r"manifest nope\.json not found"):
        load_manifest("nope")
    with pytest.raises(EgogrpoError, match="plain file name"):
        load_manifest("../amass")
    (tmp_path / "broken.json").write_text('{"splits": [1, 2,}')
    (tmp_path / "list.json").write_text("[1, 2]")
    monkeypatch.setenv(MANIFEST_DIR_ENV, str(tmp_path))
    with pytest.raises(EgogrpoError, match=r"broken.json: not valid JSON \(line 1"):
        load_manifest("broken")
    with pytest.raises(EgogrpoError, match="must be a JSON object"):
        load_manifest("list.json")
    assert load_manifest("amass")["name"] == "amass"  # falls through to the repository's folder


# --- finding files -------------------------------------------------------------------------------


def test_find_files_sorted_with_skip_rules(tmp_path: Path) -> None:
    root = tmp_path / "normal_treadmill_root"  # words of the skip rules in the root itself do not matter
    kept = [
        "BioMotionLab_NTroje/rub001/0003_jumping1_poses.npz",
        "CMU/01/01_01_poses.npz",
        "CMU/01/01_02_poses.npz",
        "CMU/treadmill/normal_01_poses.npz",  # the rules are scoped to their dataset
        "MPI_HDM05/bk/HDM_bk_01-01_01_120_poses.npz",
        "MPI_HDM05/dg/HDM_dg_07-02_01_120_poses.npz",
    ]
    skipped = [
        "BioMotionLab_NTroje/rub001/0001_treadmill_norm_poses.npz",
        "BioMotionLab_NTroje/rub002/0002_normal_walk1_poses.npz",
        "MPI_HDM05/dg/HDM_dg_07-01_01_120_poses.npz",
    ]
    others = ["CMU/01/shape.npz", "CMU/01/notes_poses.txt", "GRAB/s1/apple_poses.npz"]
    for name in kept + skipped + others:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    found = find_amass_files(root, ["MPI_HDM05", "CMU", "BioMotionLab_NTroje", "KIT"])
    assert [p.relative_to(root).as_posix() for p in found] == kept


def test_find_files_errors(tmp_path: Path) -> None:
    with pytest.raises(EgogrpoError, match="AMASS root folder not found"):
        find_amass_files(tmp_path / "missing", ["CMU"])
    (tmp_path / "CMU" / "01").mkdir(parents=True)
    with pytest.raises(EgogrpoError, match="no AMASS files"):
        find_amass_files(tmp_path, ["CMU"])
    (tmp_path / "CMU" / "01" / "01_01_stageii.npz").write_bytes(b"")
    with pytest.raises(EgogrpoError, match="SMPL-X"):
        find_amass_files(tmp_path, ["CMU"])


# --- reading -------------------------------------------------------------------------------------


def _check_pose_fields(clip, motion: dict[str, np.ndarray]) -> None:
    poses = motion["poses"]
    got = quat_to_matrix(torch.from_numpy(clip.T_world_root[:, :4])).numpy()
    np.testing.assert_allclose(got, Rotation.from_rotvec(poses[:, :3]).as_matrix(), atol=1e-10)
    got = quat_to_matrix(torch.from_numpy(clip.body_quats)).numpy()
    np.testing.assert_allclose(
        got, Rotation.from_rotvec(poses[:, 3:66].reshape(-1, 3)).as_matrix().reshape(T, 21, 3, 3), atol=1e-10
    )
    got = quat_to_matrix(torch.from_numpy(clip.hand_quats)).numpy()
    np.testing.assert_allclose(
        got, Rotation.from_rotvec(poses[:, 66:].reshape(-1, 3)).as_matrix().reshape(T, 30, 3, 3), atol=1e-10
    )
    assert np.all(clip.T_world_root[:, 0] >= 0)  # wxyz


@pytest.mark.parametrize("gender", ["male", "female"])
def test_gendered_clip_matches_smplx_and_maps_betas(tmp_path: Path, models, gender: str) -> None:
    root = tmp_path / "amass"
    path = root / "CMU" / "01" / "01_01_poses.npz"
    encoded = np.array(gender) if gender == "male" else np.array([gender.encode()])  # str, or bytes in a 1-array
    motion = write_amass(path, seed=1, gender=encoded)
    clip = read_amass_npz(path, root, models["all"])

    assert clip.name == "CMU/01/01_01_poses" and clip.dataset == "amass" and clip.source == str(path)
    assert clip.fps == 120.0 and clip.num_frames == T
    assert clip.attrs == {
        "gender": gender,
        "source_fps": 120.0,
        "fps_fixed": 0,
        "amass_dataset": "CMU",
        "split": "train",
        "gender_mapped": 1,
    }
    _check_pose_fields(clip, motion)
    A, b, residual = models["truth"][gender]
    np.testing.assert_allclose(clip.betas, A @ motion["betas"] + b, atol=1e-5)

    reference = _smplx_joints(models["arrays"][gender], motion)  # the gendered model, as captured
    np.testing.assert_allclose(clip.T_world_root[:, 4:], reference[:, 0], atol=1e-5)
    assert clip.joints_world is not None and clip.joints_world.shape == (T, 22, 3)
    np.testing.assert_allclose(clip.joints_world, reference[:, :22], atol=1e-5)
    # FK of the stored fields on the neutral body: exact when the gendered mesh lies in neutral's
    # shape space (male), within the residual otherwise (female).
    error = np.abs(_fk(models["loaded"]["neutral"], clip) - clip.joints_world).max()
    assert error < (1e-5 if residual == 0 else 0.05)


def test_neutral_clip_and_unmapped_gendered_clip(tmp_path: Path, models) -> None:
    root = tmp_path / "amass"
    path = root / "KIT" / "3" / "walking_slow08_poses.npz"
    motion = write_amass(path, seed=2, gender=np.array(b"neutral"), betas=np.arange(20) / 10.0)
    clip = read_amass_npz(path, root, models["all"])
    assert clip.joints_world is None and clip.attrs["gender_mapped"] == 1 and clip.attrs["gender"] == "neutral"
    np.testing.assert_allclose(clip.betas, np.arange(16) / 10.0)  # the first 16 of 20
    reference = _smplx_joints(models["arrays"]["neutral"], motion)
    np.testing.assert_allclose(clip.T_world_root[:, 4:], reference[:, 0], atol=1e-5)
    np.testing.assert_allclose(_fk(models["loaded"]["neutral"], clip, hands=True), reference, atol=1e-5)

    # Male clip without the male model: its betas are used as neutral, and the clip says so.
    motion = write_amass(path, seed=3, betas=np.arange(10) / 10.0)
    clip = read_amass_npz(path, root, models["neutral_only"])
    assert clip.joints_world is None and clip.attrs["gender_mapped"] == 0 and clip.attrs["gender"] == "male"
    np.testing.assert_allclose(clip.betas, np.r_[np.arange(10) / 10.0, np.zeros(6)])  # zero-padded
    reference = _smplx_joints(models["arrays"]["neutral"], dict(motion, betas=clip.betas))
    np.testing.assert_allclose(clip.T_world_root[:, 4:], reference[:, 0], atol=1e-5)


def test_frame_rate_spellings_fixes_and_split(tmp_path: Path, models) -> None:
    root = tmp_path / "amass"
    cases = [
        ("CMU/01/01_01_poses.npz", {"mocap_framerate": np.array(120.0)}, 120.0, 0, "train"),
        ("HumanEva/S1/Walking_1_poses.npz", {"mocap_framerate": None, "mocap_frame_rate": np.array(60)}, 60.0, 0, "val"),
        ("BMLhandball/S01_Expert/Trial_upper_left_033_poses.npz", {"mocap_framerate": np.array(120.0)}, 240.0, 1, "train"),
        ("BMLhandball/S02_Novice/Trial_upper_left_034_poses.npz", {"mocap_framerate": None}, 240.0, 1, "train"),
        ("SSM_synced/20160930_50032/punch_kick_sync_poses.npz", {"mocap_framerate": np.array(60.0)}, 59.0, 1, "test"),
        ("SSM_synced/20160330_03333/walking_sync_poses.npz", {"mocap_framerate": np.array(120.0)}, 120.0, 0, "test"),
        ("GRAB/s1/apple_eat_1_poses.npz", {}, 120.0, 0, ""),
    ]  # fmt: skip
    for name, changes, fps, fixed, split in cases:
        write_amass(root / name, **changes)
        clip = read_amass_npz(root / name, root, models["all"])
        assert (clip.fps, clip.attrs["source_fps"], clip.attrs["fps_fixed"]) == (fps, fps, fixed), name
        assert clip.attrs["split"] == split and clip.attrs["amass_dataset"] == name.split("/")[0]
        assert clip.name == name.removesuffix(".npz")


# --- mirroring -----------------------------------------------------------------------------------

_SWAP = np.array(
    [
        SMPLH_JOINT_NAMES.index(n.replace("left_", "right_") if n.startswith("left_") else n.replace("right_", "left_"))
        for n in SMPLH_JOINT_NAMES
    ]
)
_FLIP_X = np.array([-1.0, 1.0, 1.0])


def _symmetric(model):
    """The model with its rest joints (for every β) made left/right symmetric about x = 0."""
    joints = model.joints_mean.double().numpy()
    dirs = model.joints_shape_dirs.double().numpy()
    joints = 0.5 * (joints + joints[_SWAP] * _FLIP_X)
    dirs = 0.5 * (dirs + dirs[_SWAP] * _FLIP_X[:, None])
    return dataclasses.replace(
        model, joints_mean=torch.from_numpy(joints).float(), joints_shape_dirs=torch.from_numpy(dirs).float()
    )


def test_mirrored_clip_is_the_mirrored_motion(tmp_path: Path, models) -> None:
    neutral, male = (_symmetric(models["loaded"][g]) for g in ("neutral", "male"))
    amass_models = AmassModels(neutral=neutral, male=male)
    root = tmp_path / "amass"
    mirror = lambda joints: joints[:, _SWAP[: joints.shape[1]]] * _FLIP_X

    path = root / "ACCAD" / "s1" / "run_poses.npz"
    write_amass(path, seed=4, gender=np.array("neutral"))
    clip = read_amass_npz(path, root, amass_models)
    mirrored = mirror_clip(clip)
    assert mirrored.name == "ACCAD/s1/run_poses_mirror"
    np.testing.assert_allclose(_fk(neutral, mirrored, hands=True), mirror(_fk(neutral, clip, hands=True)), atol=1e-6)

    # A gendered clip: the mirrored ground-truth joints are FK of the mirrored motion on the gendered body.
    motion = write_amass(path, seed=5, gender=np.array("male"))
    clip = read_amass_npz(path, root, amass_models)
    mirrored = mirror_clip(clip)
    np.testing.assert_allclose(_fk(male, clip, betas=motion["betas"]), clip.joints_world, atol=1e-6)
    np.testing.assert_allclose(_fk(male, mirrored, betas=motion["betas"]), mirrored.joints_world, atol=1e-6)
    np.testing.assert_allclose(mirrored.joints_world, mirror(clip.joints_world), atol=1e-12)


# --- bad input: one line naming the file ---------------------------------------------------------


def _expect_error(path: Path, root: Path, models, fragment: str) -> None:
    with pytest.raises(EgogrpoError) as info:
        read_amass_npz(path, root, models)
    message = str(info.value)
    assert str(path) in message and fragment in message and "\n" not in message, message


def _pickled(value: object) -> np.ndarray:
    array = np.empty((), dtype=object)
    array[()] = value
    return array


BAD_FILES = {
    "no_poses": ({"poses": None}, "missing key(s) poses"),
    "no_trans": ({"trans": None}, "missing key(s) trans"),
    "no_betas_gender": ({"betas": None, "gender": None}, "missing key(s) betas, gender"),
    "poses_cols": ({"poses": np.zeros((T, 150))}, "poses has shape (8, 150), expected (*, 156)"),
    "poses_1d": ({"poses": np.zeros(156)}, "poses has shape (156,)"),
    "no_frames": ({"poses": np.zeros((0, 156)), "trans": np.zeros((0, 3))}, "no frames"),
    "trans_cols": ({"trans": np.zeros((T, 2))}, "trans has shape (8, 2), expected (8, 3)"),
    "trans_rows": ({"trans": np.zeros((T + 1, 3))}, "trans has shape (9, 3)"),
    "betas_2d": ({"betas": np.zeros((1, 16))}, "betas has shape (1, 16)"),
    "poses_text": ({"poses": np.full((T, 156), "x")}, "poses has dtype"),
    "poses_nan": ({"poses": np.full((T, 156), np.nan)}, "poses contains NaN or infinite"),
    "trans_inf": ({"trans": np.full((T, 3), np.inf)}, "trans contains NaN or infinite"),
    "betas_nan": ({"betas": np.full(16, np.nan)}, "betas contains NaN or infinite"),
    "no_fps": ({"mocap_framerate": None}, "unknown frame rate"),
    "zero_fps": ({"mocap_framerate": np.array(0.0)}, "expected a positive frame rate"),
    "negative_fps": ({"mocap_frame_rate": np.array(-30.0), "mocap_framerate": None}, "is -30.0"),
    "nan_fps": ({"mocap_framerate": np.array(np.nan)}, "expected a positive frame rate"),
    "text_fps": ({"mocap_framerate": np.array("120")}, "must be a single number"),
    "bad_gender": ({"gender": np.array("other")}, "gender is 'other'"),
    "numeric_gender": ({"gender": np.array(1)}, "gender must be a single string"),
    "pickled_gender": ({"gender": _pickled("male")}, "pickled objects"),
    "pickled_poses": ({"poses": _pickled(np.zeros((T, 156)))}, "pickled objects"),
    "smplx_type": ({"surface_model_type": np.array("smplx")}, "SMPL-X release file (surface_model_type 'smplx')"),
    "smplx_poses": ({"poses": np.zeros((T, 165))}, "SMPL-X release file (poses with 165 columns)"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files(tmp_path: Path, models, case: str) -> None:
    changes, fragment = BAD_FILES[case]
    path = tmp_path / "CMU" / "01" / f"{case}_poses.npz"
    write_amass(path, **changes)
    _expect_error(path, tmp_path, models["all"], fragment)


def test_unreadable_files(tmp_path: Path, models) -> None:
    path = tmp_path / "CMU" / "01" / "01_01_poses.npz"
    write_amass(path, poses=np.zeros((2000, 156)), trans=np.zeros((2000, 3)))
    data = path.read_bytes()
    truncated = path.with_name("truncated_poses.npz")
    truncated.write_bytes(data[: len(data) // 2])
    _expect_error(truncated, tmp_path, models["all"], "not a readable .npz")

    corrupt = path.with_name("corrupt_poses.npz")
    np.savez_compressed(corrupt, **dict(_motion(0), poses=np.random.default_rng(0).normal(size=(2000, 156))))
    raw = bytearray(corrupt.read_bytes())
    with zipfile.ZipFile(corrupt) as zf:
        info = zf.getinfo("poses.npy")
    start = info.header_offset + 30 + len(info.filename) + 500
    raw[start : start + 64] = b"\x00" * 64
    corrupt.write_bytes(bytes(raw))
    _expect_error(corrupt, tmp_path, models["all"], "not a readable .npz")

    _expect_error(path.with_name("missing_poses.npz"), tmp_path, models["all"], "no such AMASS file")
    _expect_error(path, tmp_path / "elsewhere", models["all"], "not inside the AMASS root")


def test_models_must_be_smplh(models) -> None:
    smplx_like = dataclasses.replace(models["loaded"]["neutral"], kind="smplx")
    with pytest.raises(EgogrpoError, match="needs an SMPL-H model, got smplx"):
        AmassModels(neutral=smplx_like)


def test_manifest_file_is_plain_json() -> None:
    path = Path(__file__).resolve().parents[1] / "data_manifests" / "amass.json"
    data = json.loads(path.read_text())
    assert set(data) >= {"notes", "keys", "splits", "fps_fixes", "skip"}


def _long_motion(seed: int, frames: int, gender: str) -> dict[str, np.ndarray]:
    """A smooth clip long enough for one crop: a slow turn and walk, small pose changes."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 120.0
    poses = np.zeros((frames, 156))
    poses[:, :3] = (Rotation.from_euler("z", 0.3 * t[:, None]) * Rotation.from_euler("x", 90, degrees=True)).as_rotvec()
    poses[:, 3:66] = 0.1 * np.sin(t[:, None] + rng.uniform(0, 6, size=63))
    return {
        "poses": poses,
        "trans": np.stack([0.5 * t, 0 * t, 0.9 + 0 * t], -1),
        "betas": rng.normal(size=B),
        "gender": np.array(gender),
        "mocap_frame_rate": np.array(120.0),
    }


def test_preprocess_amass_command_end_to_end(tmp_path: Path, models, run_cli) -> None:
    """`egogrpo preprocess amass`: EgoAllo's splits and skip rules, gender → neutral betas, mirroring."""
    from egogrpo.data.hdf5_schema import MotionFile

    root = tmp_path / "amass"
    clips = {
        "CMU/01/01_01_poses.npz": ("male", 2400),  # train
        "HumanEva/S1/walk_poses.npz": ("female", 2400),  # val
        "Transitions_mocap/mazen/a_poses.npz": ("male", 2400),  # test
        "BioMotionLab_NTroje/rub001/treadmill_0007_poses.npz": ("male", 2400),  # skipped by EgoAllo's rules
    }
    for i, (relative, (gender, frames)) in enumerate(clips.items()):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        np.savez(root / relative, **_long_motion(i, frames, gender))
    paths = {g: str(m.source) for g, m in models["loaded"].items()}
    out = tmp_path / "amass.h5"
    result = run_cli(
        "preprocess", "amass", str(root), "--smplh", paths["neutral"], "--smplh-male", paths["male"],
        "--smplh-female", paths["female"], "--out", str(out), "--mirror", "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    with MotionFile(out) as f:
        assert f.info.body_model_kind == "smplh" and f.info.num_betas == B
        assert f.names("train") == ["CMU/01/01_01_poses", "CMU/01/01_01_poses_mirror"]
        assert f.names("val") == ["HumanEva/S1/walk_poses", "HumanEva/S1/walk_poses_mirror"]
        assert f.names("test") == ["Transitions_mocap/mazen/a_poses", "Transitions_mocap/mazen/a_poses_mirror"]
        seq = f.read("HumanEva/S1/walk_poses")
        # 2400 frames at 120 fps span 19.99 s → 600 frames at 30 fps → the middle 80 % (EgoAllo's trim)
        # → 480 → the first dropped.
        assert seq.num_frames == 479
        source_betas = np.load(root / "HumanEva/S1/walk_poses.npz")["betas"]
        np.testing.assert_allclose(seq.betas[0], models["all"].female_to_neutral.apply(source_betas), atol=1e-4)
        assert f.sequence_attrs("HumanEva/S1/walk_poses")["gender"] == "female"
        assert f.sequence_attrs("CMU/01/01_01_poses_mirror")["mirrored"] == 1
