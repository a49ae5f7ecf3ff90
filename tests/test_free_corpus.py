"""`egogrpo preprocess corpus` and what the free corpora need: Rigify naming (ReActIdle), a CMU ASF skeleton
whose root is called `hip` (amc2bvh), `--fps` for mislabelled frame rates, glitches and the quality report.

Every fixture is synthetic (test_corpora's standing person, written with each corpus's joint names).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_corpora import CMU_BVH, CMU_BVH_ROLES, _side, check_standing_pose, read_sequences, write_bvh

from egogrpo.body.topology import BODY_JOINT_NAMES
from egogrpo.data.bvh import read_bvh
from egogrpo.data.glitches import glitch_frames, glitch_threshold, longest_clean_run
from egogrpo.data.hdf5_schema import MotionFile
from egogrpo.data.retarget import RIGIFY, mapped_points, resolve_mapping

J = {name: i for i, name in enumerate(BODY_JOINT_NAMES)}
PREPROCESS = ("--workers", "1", "--min-frames", "20")

#: Rigify / FreeMoCap (ReActIdle): the wrists and toes are end sites only; "spine" starts at the pelvis.
RIGIFY_BONES = _side(
    [
        ("pelvis", None, (0, 0, 0), "xyz"), ("spine", "pelvis", (0, 0, 0), "xyz"),
        ("spine.001", "spine", (0, 0.24, 0.01), "xyz"), ("neck", "spine.001", (0, 0.22, -0.02), "xyz"),
        ("face", "neck", (0, 0.14, 0.01), "xyz"), ("shoulder.{L}", "spine.001", (0, 0.22, -0.02), "xyz"),
        ("upper_arm.{L}", "shoulder.{L}", (0.17, 0, 0), "xyz"), ("forearm.{L}", "upper_arm.{L}", (0.28, 0, 0), "xyz"),
        ("pelvis.{L}", "pelvis", (0, 0, 0), "xyz"), ("thigh.{L}", "pelvis", (0.09, 0, 0), "xyz"),
        ("shin.{L}", "thigh.{L}", (0, -0.42, 0), "xyz"), ("foot.{L}", "shin.{L}", (0, -0.42, 0), "xyz"),
    ]
)  # fmt: skip
RIGIFY_ENDS = {
    "forearm.L": (0.25, 0, 0), "forearm.R": (-0.25, 0, 0), "foot.L": (0, -0.05, 0.13), "foot.R": (0, -0.05, 0.13),
    "face": (0, 0.1, 0.02), "pelvis.L": (0.1, 0, 0), "pelvis.R": (-0.1, 0, 0),
}  # fmt: skip
RIGIFY_ROLES = {"right_arm": "upper_arm.R", "left_elbow": "forearm.L", "neck": "neck"}

#: amc2bvh's CMU export: ASF bone names as BVH joints (a joint is its bone's start), root "root" (or "hip").
ASF_BVH = _side(
    [
        ("root", None, (0, 0, 0), "zyx"), ("{s}hipjoint", "root", (0, 0, 0), "zyx"),
        ("{s}femur", "{s}hipjoint", (0.09, -0.08, 0.02), "zyx"), ("{s}tibia", "{s}femur", (0, -0.42, 0), "zyx"),
        ("{s}foot", "{s}tibia", (0, -0.42, 0), "zyx"), ("{s}toes", "{s}foot", (0, -0.05, 0.13), "zyx"),
        ("lowerback", "root", (0, 0, 0), "zyx"), ("upperback", "lowerback", (0, 0.12, 0), "zyx"),
        ("thorax", "upperback", (0, 0.12, 0), "zyx"), ("lowerneck", "thorax", (0, 0.12, 0), "zyx"),
        ("upperneck", "lowerneck", (0, 0.09, 0), "zyx"), ("head", "upperneck", (0, 0.08, 0.01), "zyx"),
        ("{s}clavicle", "lowerneck", (0, 0, 0), "zyx"), ("{s}humerus", "{s}clavicle", (0.18, 0, 0), "zyx"),
        ("{s}radius", "{s}humerus", (0.28, 0, 0), "zyx"), ("{s}wrist", "{s}radius", (0.25, 0, 0), "zyx"),
    ]
)  # fmt: skip
ASF_BVH_ROLES = {"right_arm": "rhumerus", "left_elbow": "lradius", "neck": "upperneck"}


def _rename_root(bones, name: str):
    return [(name if b == "root" else b, name if p == "root" else p, o, r) for b, p, o, r in bones]


def _z_up(points: dict[str, tuple[float, float, float]]) -> np.ndarray:
    return np.array([(x, -z, y) for x, y, z in points.values()])


# --- namings -----------------------------------------------------------------------------------------


def test_rigify_naming_puts_each_joint_where_it_is(tmp_path: Path) -> None:
    """Rest positions of the hand-made skeleton (y-up, metres), mapped onto our 22 joints, by hand."""
    path = write_bvh(tmp_path / "001_acted.bvh", RIGIFY_BONES, RIGIFY_ROLES, 24.0, 1.0, "xyz", end_sites=RIGIFY_ENDS)
    motion = read_bvh(path, units="m")
    assert resolve_mapping(motion) is RIGIFY
    expected = {
        "pelvis": (0, 0, 0), "left_hip": (0.09, 0, 0), "right_hip": (-0.09, 0, 0),
        "spine1": (0, 0.08, 0.01 / 3), "left_knee": (0.09, -0.42, 0), "right_knee": (-0.09, -0.42, 0),
        "spine2": (0, 0.16, 0.02 / 3), "left_ankle": (0.09, -0.84, 0), "right_ankle": (-0.09, -0.84, 0),
        "spine3": (0, 0.24, 0.01), "left_foot": (0.09, -0.89, 0.13), "right_foot": (-0.09, -0.89, 0.13),
        "neck": (0, 0.46, -0.01), "left_collar": (0.085, 0.46, -0.01), "right_collar": (-0.085, 0.46, -0.01),
        "head": (0, 0.60, 0.0), "left_shoulder": (0.17, 0.46, -0.01), "right_shoulder": (-0.17, 0.46, -0.01),
        "left_elbow": (0.45, 0.46, -0.01), "right_elbow": (-0.45, 0.46, -0.01),
        "left_wrist": (0.70, 0.46, -0.01), "right_wrist": (-0.70, 0.46, -0.01),
    }  # fmt: skip
    assert list(expected) == list(BODY_JOINT_NAMES)
    np.testing.assert_allclose(mapped_points(motion, RIGIFY, motion.rest_positions), _z_up(expected), atol=1e-5)


def test_rigify_clip_preprocesses_to_the_standing_pose(tmp_path: Path, run_cli) -> None:
    path = write_bvh(tmp_path / "001_acted.bvh", RIGIFY_BONES, RIGIFY_ROLES, 24.0, 1.0, "xyz", end_sites=RIGIFY_ENDS)
    out = tmp_path / "r.h5"
    result = run_cli("preprocess", "bvh", str(path), "--out", str(out), *PREPROCESS)
    assert result.exit_code == 0, result.stderr
    _, sequences = read_sequences(out)
    ((attrs, joints),) = sequences.values()
    assert attrs["skeleton_convention"] == "rigify" and attrs["file_fps"] == 24.0
    check_standing_pose(joints)


def test_cmu_asf_names_under_a_root_called_hip(tmp_path: Path, run_cli) -> None:
    """amc2bvh wrote CMU 16_01/16_02 with the root named `hip`: it loads, and exactly as with `root`."""
    joints = {}
    for root in ("root", "hip"):
        path = write_bvh(tmp_path / root / "16_01.bvh", _rename_root(ASF_BVH, root), ASF_BVH_ROLES, 120.0, 1.0)
        out = tmp_path / f"{root}.h5"
        result = run_cli("preprocess", "bvh", str(path), "--out", str(out), "--units", "m", *PREPROCESS)
        assert result.exit_code == 0, result.stderr
        _, sequences = read_sequences(out)
        ((attrs, joints[root]),) = sequences.values()
        assert attrs["skeleton_convention"] == "cmu-asf"
        check_standing_pose(joints[root])
    np.testing.assert_allclose(joints["hip"], joints["root"], atol=1e-6)


def test_fps_overrides_the_frame_time_exactly(tmp_path: Path, run_cli) -> None:
    """A file stating 60 fps replayed at --fps 120: the head's per-frame step at 30 fps doubles, the clip halves."""
    still = {"right_arm": "-", "left_elbow": "-", "neck": "-"}  # no joint turns: the body only translates
    path = write_bvh(tmp_path / "walk.bvh", CMU_BVH, still, 60.0, 1.0, root_velocity=0.6)
    steps, frames = {}, {}
    for fps in (None, 120.0):
        out = tmp_path / f"{fps}.h5"
        extra = ("--fps", str(fps)) if fps else ()
        result = run_cli("preprocess", "bvh", str(path), "--out", str(out), "--units", "m", *extra, *PREPROCESS)
        assert result.exit_code == 0, result.stderr
        with MotionFile(out) as motion:
            (name,) = motion.names()
            arrays, attrs = motion.read(name), motion.sequence_attrs(name)
            options = json.loads(motion.info.options_json)
        steps[fps] = np.diff(arrays.T_world_cpf[:, 4:], axis=0)
        frames[fps] = arrays.num_frames
        assert attrs["file_fps"] == 60.0 and attrs["source_fps"] == (fps or 60.0) and options["bvh_fps"] == fps
    np.testing.assert_allclose(steps[None][:, 0], 0.6 / 30, rtol=1e-4)
    np.testing.assert_allclose(steps[120.0][:, 0], 2 * 0.6 / 30, rtol=1e-4)
    np.testing.assert_allclose(steps[120.0][:, 1:], 0.0, atol=1e-6)
    assert frames[None] == 60 and frames[120.0] == 30  # 2 s → 1 s, the first frame dropped at 30 fps


# --- glitches ----------------------------------------------------------------------------------------


def test_glitch_frames_by_hand() -> None:
    positions = np.zeros((10, 2, 3))
    positions[:, 1, 0] = np.arange(10) * 0.01  # a node moving at constant speed: no second difference
    positions[6, 1, 2] = -0.4  # one frame 40 cm away
    assert glitch_frames(positions, 120.0).tolist() == [6]  # its neighbours deviate by half: not flagged
    assert glitch_frames(positions, 24.0).tolist() == []  # 250 m/s² at 24 fps is 0.434 m
    assert glitch_threshold(120.0) == 0.3 and glitch_threshold(24.0) == pytest.approx(250 / 576)
    assert longest_clean_run(10, np.array([6])) == (0, 6)
    assert longest_clean_run(10, np.array([2])) == (3, 10)
    assert longest_clean_run(10, np.array([], dtype=int)) == (0, 10)


# --- preprocess corpus -------------------------------------------------------------------------------

LICENCES = {
    "lab": {"text": "LAB TERMS: free to use", "acknowledgement": "Thanks to the lab."},
    "mit": {"text": "MIT licence", "acknowledgement": "Cite the idle paper."},
}


def _manifest(tmp_path: Path, **changes) -> Path:
    manifest = {
        "description": "two tiny corpora",
        "licences": LICENCES,
        "sources": {
            "mocap": {"format": "bvh", "files": ["mocap/*.bvh"], "naming": "cmu-bvh", "units": "m", "fps": None,
                      "people": "lab", "person": "/(?P<person>\\d+)_\\d+\\.bvh$", "prefix": "LAB", "licence": "lab"},
            "idle": {"format": "bvh", "files": ["idle/*/*.bvh"], "naming": "rigify", "units": "m", "fps": 24,
                     "people": "idle", "person": "/(?P<person>\\d{3})_\\w+\\.bvh$", "prefix": "Idle", "licence": "mit"},
        },
        "splits": {"val": ["lab/02"], "test": ["idle/002"]},
    }  # fmt: skip
    for key, value in changes.items():
        target = manifest
        *parents, last = key.split(".")
        for part in parents:
            target = target[part]
        target[last] = value
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture
def corpus_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for person in ("01", "02", "03"):
        write_bvh(root / "mocap" / f"{person}_01.bvh", CMU_BVH, CMU_BVH_ROLES, 60.0, 1.0)
    for person, take in (("001", "acted"), ("001", "genuine"), ("002", "acted")):
        path = root / "idle" / take / f"{person}_{take}.bvh"
        write_bvh(path, RIGIFY_BONES, RIGIFY_ROLES, 24.0, 1.0, "xyz", end_sites=RIGIFY_ENDS, frame_time=1 / 30)
    return root


def test_corpus_command_splits_by_person(corpus_root: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "corpus.h5"
    result = run_cli("preprocess", "corpus", str(_manifest(tmp_path)), "--root", str(corpus_root), "--out", str(out),
                     *PREPROCESS)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    options, sequences = read_sequences(out)
    expected = {
        "LAB/01/01_01": ("lab/01", "train"), "LAB/02/02_01": ("lab/02", "val"), "LAB/03/03_01": ("lab/03", "train"),
        "Idle/001/001_acted": ("idle/001", "train"), "Idle/001/001_genuine": ("idle/001", "train"),
        "Idle/002/002_acted": ("idle/002", "test"),
    }  # fmt: skip
    assert {name: (a["person"], a["split"]) for name, (a, _) in sequences.items()} == expected
    for name, (attrs, joints) in sequences.items():
        licence = LICENCES["lab" if name.startswith("LAB") else "mit"]
        assert attrs["licence"] == licence["text"] and attrs["acknowledgement"] == licence["acknowledgement"]
        assert attrs["corpus"] == ("mocap" if name.startswith("LAB") else "idle")
        check_standing_pose(joints)
    # the manifest's fps (24) overrides the idle files' Frame Time (1/30): 2 s at 24 fps is 2 s, 60 frames
    assert (
        sequences["Idle/002/002_acted"][0]["file_fps"] == 30.0
        and sequences["Idle/002/002_acted"][0]["num_frames"] == 60
    )
    assert options["manifest"]["licences"] == LICENCES and len(options["manifest_sha256"]) == 64
    assert "LAB TERMS: free to use" in result.stdout and "Cite the idle paper." in result.stdout
    assert "val: 1 people: lab/02" in result.stdout and "test: 1 people: idle/002" in result.stdout
    assert "splits: test 1, train 4, val 1" in result.stdout
    assert "skeleton naming detected: cmu-bvh (3), rigify (3)" in result.stdout


def test_quality_report_flags_a_glitch_and_a_wrong_frame_rate(corpus_root: Path, tmp_path: Path, run_cli) -> None:
    glitchy = corpus_root / "mocap" / "01_01.bvh"
    lines = glitchy.read_text().splitlines()
    first = lines.index("MOTION") + 3
    row = lines[first + 50].split()
    row[1] = f"{float(row[1]) + 0.9:.4f}"  # the root 0.9 m up for one frame
    lines[first + 50] = " ".join(row)
    glitchy.write_text("\n".join(lines) + "\n")
    # 03 jogs at 2.5 m/s, but its file says 4 × its frame rate: 10 m/s over 0.5 s
    write_bvh(
        corpus_root / "mocap" / "03_01.bvh", CMU_BVH, CMU_BVH_ROLES, 60.0, 1.0, frame_time=1 / 240, root_velocity=2.5
    )
    manifest = _manifest(tmp_path, **{"sources.mocap.files": ["mocap/0[13]_01.bvh", "mocap/02_01.bvh"]})
    report = tmp_path / "quality.json"
    for policy in ("trim", "drop"):
        out = tmp_path / f"{policy}.h5"
        result = run_cli("preprocess", "corpus", str(manifest), "--root", str(corpus_root), "--out", str(out),
                         "--report", str(report), "--glitches", policy, "--overwrite", "--workers", "1",
                         "--min-frames", "10")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        flags = {s["name"]: s["flags"] for s in json.loads(report.read_text())["sequences"]}
        assert flags["LAB/03/03_01"] == ["too fast: frame rate?"]
        assert flags["LAB/02/02_01"] == [] and flags["Idle/001/001_acted"] == []
        _, sequences = read_sequences(out)
        if policy == "trim":  # 121 frames at 60 fps, the glitch at frame 50: frames 51–120 are kept (70, 1.17 s)
            attrs = sequences["LAB/01/01_01"][0]
            assert flags["LAB/01/01_01"] == ["glitch"] and json.loads(attrs["glitch_frames"]) == [50]
            assert json.loads(attrs["glitch_kept_frames"]) == [51, 121] and attrs["num_frames"] == 34
        else:
            assert "LAB/01/01_01" not in sequences and "dropped by --glitches drop: LAB/01/01_01" in result.stdout
    assert "too fast" in report.with_suffix(".md").read_text()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sources.mocap.files": ["mocap/*.bvhx"]}, "source 'mocap': no file matches mocap/*.bvhx"),
        ({"sources.mocap.naming": "maya"}, "source 'mocap': unknown naming 'maya'"),
        ({"sources.idle.licence": "cc0"}, "source 'idle': unknown licence 'cc0'"),
        ({"splits": {"val": ["lab/02"], "test": ["lab/02"]}}, "person 'lab/02' is in two splits (val and test)"),
        ({"splits": {"val": ["lab/09"]}}, "person 'lab/09' of splits has no file"),
        ({"sources.mocap.person": "(\\d+)_"}, "has no group (?P<person>…)"),
        ({"sources.mocap.naming": "rigify"}, "the manifest says rigify naming, but the skeleton is cmu-bvh"),
        ({"sources.mocap.units": "furlong"}, "unknown units 'furlong'"),
    ],
)
def test_bad_manifests_are_refused_in_one_line(changes, message, corpus_root: Path, tmp_path: Path, run_cli) -> None:
    out = tmp_path / "bad.h5"
    result = run_cli("preprocess", "corpus", str(_manifest(tmp_path, **changes)), "--root", str(corpus_root),
                     "--out", str(out), *PREPROCESS)  # fmt: skip
    assert result.exit_code == 1 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not out.exists()


def test_free_manifest_builds_from_the_shared_data(sample_data: Path, tmp_path: Path) -> None:
    """data_manifests/free.json lists files that exist and people that hold files; splits are disjoint."""
    from egogrpo.data.corpus import corpus_tasks, load_corpus_manifest, split_people

    manifest = load_corpus_manifest(Path(__file__).resolve().parents[1] / "data_manifests" / "free.json")
    clips, skipped = corpus_tasks(manifest, sample_data)
    people = split_people(clips)
    assert not skipped and len(clips) == 28 + 92 + 22
    assert len(people["val"]) >= 3 and len(people["test"]) >= 3
    assert not set(people["val"]) & set(people["test"]) and not set(people["train"]) & set(people["test"])
    assert {"cmu/01", "cmu/02", "cmu/03"}.isdisjoint(people["test"])  # the previous default saw these people
    for clip in clips:
        assert clip.person.split("/")[1] == clip.name.split("/")[1]


def test_public_manifest_reads_the_corpora_a_user_has(tmp_path: Path, run_cli) -> None:
    """data_manifests/public.json on a root holding only HDM05 and 100STYLE: those are read, the rest skipped."""
    from test_corpora import STYLE100, STYLE100_ROLES, write_asf_amc

    root = tmp_path / "root"
    for actor in ("bd", "mm"):
        write_asf_amc(
            root / "HDM05" / actor / f"HDM_{actor}.asf", root / "HDM05" / actor / f"HDM_{actor}_01-01_01_120.amc"
        )
    write_bvh(root / "100STYLE" / "Aeroplane" / "Aeroplane_FW.bvh", STYLE100, STYLE100_ROLES, 60.0, 100.0, "yxz")
    manifest = Path(__file__).resolve().parents[1] / "data_manifests" / "public.json"
    out = tmp_path / "public.h5"
    result = run_cli("preprocess", "corpus", str(manifest), "--root", str(root), "--out", str(out), *PREPROCESS)
    assert result.exit_code == 0, result.stderr
    _, sequences = read_sequences(out)
    found = {name: (a["person"], a["split"], a["licence"][:9]) for name, (a, _) in sequences.items()}
    assert found == {
        "HDM05/bd/HDM_bd_01-01_01_120": ("hdm05/bd", "train", "CC BY-SA "),
        "HDM05/mm/HDM_mm_01-01_01_120": ("hdm05/mm", "test", "CC BY-SA "),
        "100STYLE/100STYLE/Aeroplane_FW": ("100style/100STYLE", "train", "CC BY 4.0"),
    }
    for _, joints in sequences.values():
        check_standing_pose(joints)
    assert "not required): cmu, reactidle, accad" in result.stdout


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        ("cmu-subject02", "protocol cmu-subject02 needs a file made with split_manifest 'cmu_subject02'"),
        (
            "people",
            "protocol people needs a file made by `egogrpo preprocess corpus`, but this one was made by `preprocess cmu`",
        ),
    ],
)
def test_protocols_refuse_files_made_another_way(protocol, message, cmu_small: Path, run_cli) -> None:
    """cmu-subject02 on the clip split would call seen people held out; people needs a person split."""
    result = run_cli("eval", "default", "--data", str(cmu_small), "--protocol", protocol, "--seeds", "1")
    assert result.exit_code == 1 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_eval_subset_keeps_one_corpus(tmp_path: Path, run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import test_corpora

    monkeypatch.setattr(test_corpora, "SECONDS", 4.5)  # one 128-frame window per clip
    root = tmp_path / "root"
    write_bvh(root / "mocap" / "02_01.bvh", CMU_BVH, CMU_BVH_ROLES, 30.0, 1.0)
    for take in ("acted", "genuine"):
        write_bvh(root / "idle" / take / f"001_{take}.bvh", RIGIFY_BONES, RIGIFY_ROLES, 24.0, 1.0, "xyz",
                  end_sites=RIGIFY_ENDS)  # fmt: skip
    out = tmp_path / "corpus.h5"
    manifest = _manifest(tmp_path, splits={"val": [], "test": ["lab/02", "idle/001"]})
    assert run_cli("preprocess", "corpus", str(manifest), "--root", str(root), "--out", str(out),
                   *PREPROCESS).exit_code == 0  # fmt: skip
    for subset, expected in (("LAB/", ["LAB/02/02_01"]), ("Idle/", ["Idle/001/001_acted", "Idle/001/001_genuine"])):
        report = tmp_path / f"eval-{subset[:-1]}"
        result = run_cli("eval", "default", "--data", str(out), "--protocol", "people", "--subset", subset,
                         "--seeds", "1", "--out", str(report), *(("--split", "test")))  # fmt: skip
        assert result.exit_code == 0, result.stderr
        record = json.loads(report.with_suffix(".json").read_text())
        assert sorted({w.split("@")[0] for w in record["data"]["windows"]}) == expected
        assert record["data"]["subset"] == subset
    result = run_cli("eval", "default", "--data", str(out), "--protocol", "people", "--subset", "XYZ/", "--seeds", "1")
    assert result.exit_code == 1 and "--subset 'XYZ/': no sequence of the 'test' split starts with it" in result.stderr
