"""SMPL-H/SMPL-X loading, FK, CPF and skinning against smplx and float64 numpy on synthetic model files."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from synthetic_body import make_synthetic_model, smplx_data_struct, write_synthetic_model

from egogrpo.body import load_body_model, load_smpl_npz
from egogrpo.body.topology import HEAD, SMPLH_LEFT_EYE_VERTICES, SMPLH_PARENTS, SMPLH_RIGHT_EYE_VERTICES
from egogrpo.errors import EgogrpoError

smplx = pytest.importorskip("smplx", reason="smplx (the optional cross-check backend) is not installed")

N = 12  # frames in the cross-check batch


@pytest.fixture(scope="module")
def smplh_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("smplh") / "model.npz"
    return path, write_synthetic_model(path, kind="smplh", num_betas=16, seed=3)


@pytest.fixture(scope="module")
def random_motion() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "betas": rng.normal(size=(N, 16)),
        "global_orient": Rotation.random(N, random_state=1).as_rotvec(),
        "pose": 0.6 * rng.normal(size=(N, 51, 3)),
        "transl": rng.normal(size=(N, 3)),
    }


def _smplx_forward(arrays: dict[str, np.ndarray], motion: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    model = smplx.SMPLH(
        model_path="unused",
        data_struct=smplx_data_struct(arrays),
        num_betas=16,
        use_pca=False,
        flat_hand_mean=True,
        batch_size=N,
    )
    f = lambda x: torch.from_numpy(x).float()
    out = model(
        betas=f(motion["betas"]),
        global_orient=f(motion["global_orient"]),
        body_pose=f(motion["pose"][:, :21].reshape(N, 63)),
        left_hand_pose=f(motion["pose"][:, 21:36].reshape(N, 45)),
        right_hand_pose=f(motion["pose"][:, 36:].reshape(N, 45)),
        transl=f(motion["transl"]),
    )
    return out.joints[:, :52].detach().double().numpy(), out.vertices.detach().double().numpy()


def _quats(rotvec: np.ndarray) -> torch.Tensor:
    flat = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_quat(scalar_first=True)
    return torch.from_numpy(flat.reshape(*rotvec.shape[:-1], 4)).float()


def _our_posed(model, motion: dict[str, np.ndarray], pelvis: np.ndarray, hands: bool = True):
    T_world_root = torch.cat((_quats(motion["global_orient"]), torch.from_numpy(pelvis).float()), dim=-1)
    pose = motion["pose"]
    return model.with_shape(torch.from_numpy(motion["betas"]).float()).with_pose(
        T_world_root, _quats(pose[:, :21]), _quats(pose[:, 21:]) if hands else None
    )


def test_joints_and_mesh_match_smplx_with_16_betas(smplh_file, random_motion) -> None:
    path, arrays = smplh_file
    model = load_smpl_npz(path)
    assert model.kind == "smplh" and model.num_betas == 16 and model.num_joints == 52
    joints_ref, vertices_ref = _smplx_forward(arrays, random_motion)
    posed = _our_posed(model, random_motion, pelvis=joints_ref[:, 0])
    np.testing.assert_allclose(posed.joints.double().numpy(), joints_ref, atol=1e-5)
    np.testing.assert_allclose(posed.skin().double().numpy(), vertices_ref, atol=1e-5)
    # Body-only FK poses the same 22 joints without touching the hands.
    body_only = _our_posed(model, random_motion, pelvis=joints_ref[:, 0], hands=False)
    assert body_only.joints.shape == (N, 22, 3)
    np.testing.assert_allclose(body_only.joints.double().numpy(), joints_ref[:, :22], atol=1e-5)
    # The last six betas matter (smplx would silently drop them without padding).
    assert np.abs(model.joints_shape_dirs[..., 10:].numpy()).max() > 1e-3


def test_cpf_is_egoallos_eye_midpoint(smplh_file, random_motion) -> None:
    path, arrays = smplh_file
    model = load_smpl_npz(path)
    a = {k: v.astype(np.float64) for k, v in arrays.items()}
    betas = random_motion["betas"]
    v_shaped = a["v_template"] + np.einsum("vcb,nb->nvc", a["shapedirs"], betas)
    eyes = v_shaped[:, list(SMPLH_RIGHT_EYE_VERTICES + SMPLH_LEFT_EYE_VERTICES)].mean(axis=1)
    head_rest = np.einsum("v,nvc->nc", a["J_regressor"][HEAD], v_shaped)
    offset_ref = eyes - head_rest  # (N, 3) in the head frame (identity rotation at rest)
    shaped = model.with_shape(torch.from_numpy(betas).float())
    np.testing.assert_allclose(shaped.cpf_offset.double().numpy(), offset_ref, atol=1e-6)

    # World CPF: head joint plus the offset rotated by the head's world orientation (chain of scipy rotations).
    joints_ref, _ = _smplx_forward(arrays, random_motion)
    posed = _our_posed(model, random_motion, pelvis=joints_ref[:, 0])
    chain = [HEAD]
    while SMPLH_PARENTS[chain[-1]] > 0:
        chain.append(SMPLH_PARENTS[chain[-1]])
    R_head = Rotation.from_rotvec(random_motion["global_orient"])
    for joint in reversed(chain):
        R_head = R_head * Rotation.from_rotvec(random_motion["pose"][:, joint - 1])
    expected = joints_ref[:, HEAD] + R_head.apply(offset_ref)
    T_world_cpf = posed.T_world_cpf.double().numpy()
    np.testing.assert_allclose(T_world_cpf[:, 4:], expected, atol=1e-5)
    got_rot = Rotation.from_quat(T_world_cpf[:, :4], scalar_first=True)
    assert (got_rot.inv() * R_head).magnitude().max() < 1e-5


def test_rest_height_and_cpf_height_from_vertices(smplh_file) -> None:
    path, arrays = smplh_file
    model = load_smpl_npz(path)
    betas = np.zeros((1, 16))
    betas[0, 0] = 2.0
    a = {k: v.astype(np.float64) for k, v in arrays.items()}
    v = a["v_template"] + np.einsum("vcb,nb->nvc", a["shapedirs"], betas)[0]
    eyes_y = v[list(SMPLH_RIGHT_EYE_VERTICES + SMPLH_LEFT_EYE_VERTICES), 1].mean()
    b = torch.from_numpy(betas).float()
    assert float(model.rest_height(b)) == pytest.approx(v[:, 1].max() - v[:, 1].min(), abs=1e-5)
    assert float(model.rest_cpf_height(b)) == pytest.approx(eyes_y - v[:, 1].min(), abs=1e-5)
    assert 1.5 < float(model.rest_height(torch.zeros(16))) < 2.0  # the synthetic body is human-sized


def test_any_leading_batch_shape_and_broadcast_betas(smplh_file) -> None:
    model = load_smpl_npz(smplh_file[0])
    g = torch.Generator().manual_seed(0)
    betas = torch.randn(2, 1, 16, generator=g)  # one shape per sequence, broadcast over 5 frames
    quats = torch.nn.functional.normalize(torch.randn(2, 5, 21, 4, generator=g), dim=-1)
    root = torch.cat(
        (torch.nn.functional.normalize(torch.randn(2, 5, 4, generator=g), dim=-1), torch.randn(2, 5, 3)), -1
    )
    posed = model.with_shape(betas).with_pose(root, quats)
    assert posed.joints.shape == (2, 5, 22, 3)
    assert posed.T_world_cpf.shape == (2, 5, 7)
    single = model.with_shape(betas[1, 0]).with_pose(root[1, 3], quats[1, 3])
    torch.testing.assert_close(single.joints, posed.joints[1, 3])


def test_fk_gradients_match_finite_differences(smplh_file) -> None:
    model = load_smpl_npz(smplh_file[0]).to(dtype=torch.float64)
    betas = torch.zeros(16, dtype=torch.float64)
    root = torch.tensor([1.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64)

    def joints_of(rotmats_6d: torch.Tensor) -> torch.Tensor:
        from egogrpo.geometry import matrix_from_6d

        return (
            model.with_shape(betas)
            .with_pose_matrices(root[:4].new_tensor(np.eye(3)), root[4:], matrix_from_6d(rotmats_6d))
            .joints
        )

    x = torch.randn(21, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(joints_of, (x,), eps=1e-6, atol=1e-6)


def test_smplx_file_loads_with_eye_joint_cpf(tmp_path: Path) -> None:
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    arrays = write_synthetic_model(path, kind="smplx", num_betas=20, seed=5)
    model = load_body_model(path)
    assert model.kind == "smplx" and model.num_joints == 55 and model.num_betas == 10 and model.has_hands
    a = {k: v.astype(np.float64) for k, v in arrays.items()}
    rest = a["J_regressor"] @ a["v_template"]
    np.testing.assert_allclose(model.joints_mean.numpy(), rest, atol=1e-5)
    np.testing.assert_allclose(model.cpf_offset_mean.numpy(), rest[[23, 24]].mean(0) - rest[HEAD], atol=1e-5)
    posed = model.with_shape(torch.zeros(10)).with_pose(
        torch.tensor([1.0, 0, 0, 0, 0, 0, 0]),
        torch.tensor([1.0, 0, 0, 0]).expand(21, 4),
        torch.tensor([1.0, 0, 0, 0]).expand(30, 4),
    )
    np.testing.assert_allclose(posed.joints.numpy(), rest - rest[0], atol=1e-5)
    assert posed.skin().shape == (10475, 3)


# --- bad input: one clear line naming the file ------------------------------------------------


def _expect_error(path: Path, fragment: str) -> None:
    with pytest.raises(EgogrpoError) as info:
        load_body_model(path)
    message = str(info.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.npz", "no such body model file")


def test_truncated_npz(tmp_path: Path, smplh_file) -> None:
    data = smplh_file[0].read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(data[: len(data) // 3])
    _expect_error(path, "not a readable .npz")


def test_corrupt_member(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.npz"
    arrays = make_synthetic_model(seed=1)
    np.savez_compressed(path, **arrays)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("posedirs.npy")
    start = info.header_offset + 30 + len(info.filename) + 200
    raw[start : start + 64] = b"\x00" * 64
    path.write_bytes(bytes(raw))
    _expect_error(path, "not a readable .npz")


def test_wrong_keys(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, poses=np.zeros((3, 156)), trans=np.zeros((3, 3)))
    _expect_error(path, "missing key(s) v_template")


def test_nans(tmp_path: Path) -> None:
    arrays = make_synthetic_model(seed=2)
    arrays["shapedirs"][5, 1, 3] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, **arrays)
    _expect_error(path, "shapedirs contains NaN")


def test_wrong_shapes_and_tree(tmp_path: Path) -> None:
    arrays = make_synthetic_model(seed=2)
    bad = dict(arrays, posedirs=arrays["posedirs"][:, :, :100])
    np.savez(tmp_path / "shape.npz", **bad)
    _expect_error(tmp_path / "shape.npz", "posedirs has shape")
    tree = arrays["kintree_table"].copy()
    tree[0, 5] = 3
    np.savez(tmp_path / "tree.npz", **dict(arrays, kintree_table=tree))
    _expect_error(tmp_path / "tree.npz", "kinematic tree")
    np.savez(tmp_path / "joints.npz", **dict(arrays, kintree_table=arrays["kintree_table"][:, :24]))
    _expect_error(tmp_path / "joints.npz", "24 joints")


def test_pickles_are_refused(tmp_path: Path) -> None:
    arrays = make_synthetic_model(seed=2)
    obj = np.empty(1, dtype=object)
    obj[0] = {"sparse": True}
    np.savez(tmp_path / "objects.npz", **dict(arrays, J_regressor=obj))
    _expect_error(tmp_path / "objects.npz", "pickled objects")
    (tmp_path / "model.pkl").write_bytes(b"\x80\x04junk")
    _expect_error(tmp_path / "model.pkl", "pickled SMPL models are not read")
