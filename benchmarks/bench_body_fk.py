"""FK throughput: egogrpo's joint-only forward kinematics against smplx's full SMPL-H forward.

Batch: 64 sequences × 128 frames = 8192 poses, random local rotations. Prints joint transforms per
second (poses × joints / s) and the speed-up. smplx runs on a synthetic SMPL-H file with the real
shapes (6890 vertices, 52 joints, 16 betas), in chunks of 512 poses to bound its memory (its LBS
holds a 4×4 matrix per vertex); the chunks' times are added up.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from egogrpo.body import load_body_model
from egogrpo.geometry import quat_normalize

SEQUENCES, FRAMES = 64, 128
POSES = SEQUENCES * FRAMES


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from synthetic_body import smplx_data_struct, write_synthetic_model

    g = torch.Generator().manual_seed(0)
    body_quats = quat_normalize(torch.randn(SEQUENCES, FRAMES, 21, 4, generator=g))
    hand_quats = quat_normalize(torch.randn(SEQUENCES, FRAMES, 30, 4, generator=g))
    T_world_root = torch.cat(
        (
            quat_normalize(torch.randn(SEQUENCES, FRAMES, 4, generator=g)),
            torch.randn(SEQUENCES, FRAMES, 3, generator=g),
        ),
        -1,
    )

    rows: list[tuple[str, float, int]] = []
    default = load_body_model("default")
    betas = torch.randn(SEQUENCES, 1, default.num_betas, generator=g)
    rows.append(
        (
            "egogrpo FK, default body, 22 joints",
            _time(lambda: default.with_shape(betas).with_pose(T_world_root, body_quats).joints, 10),
            22,
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.npz"
        arrays = write_synthetic_model(path, kind="smplh", num_betas=16)
        smplh = load_body_model(path)
    betas16 = torch.randn(SEQUENCES, 1, 16, generator=g)
    rows.append(
        (
            "egogrpo FK, SMPL-H, 22 body joints",
            _time(lambda: smplh.with_shape(betas16).with_pose(T_world_root, body_quats).joints, 10),
            22,
        )
    )
    rows.append(
        (
            "egogrpo FK, SMPL-H, 52 joints",
            _time(lambda: smplh.with_shape(betas16).with_pose(T_world_root, body_quats, hand_quats).joints, 5),
            52,
        )
    )

    try:
        import smplx
    except ImportError:
        print("smplx is not installed: install the 'test' or 'smplx' extra for the side-by-side figure")
        smplx = None
    if smplx is not None:
        chunk = 512
        model = smplx.SMPLH(
            model_path="unused",
            data_struct=smplx_data_struct(arrays),
            num_betas=16,
            use_pca=False,
            flat_hand_mean=True,
            batch_size=chunk,
        )
        flat_betas = betas16.expand(SEQUENCES, FRAMES, 16).reshape(POSES, 16)
        aa = torch.randn(POSES, 52, 3, generator=g) * 0.5

        @torch.no_grad()
        def run_smplx() -> None:
            for s in range(0, POSES, chunk):
                a = aa[s : s + chunk]
                model(betas=flat_betas[s : s + chunk], global_orient=a[:, 0], body_pose=a[:, 1:22].reshape(chunk, 63),
                      left_hand_pose=a[:, 22:37].reshape(chunk, 45), right_hand_pose=a[:, 37:].reshape(chunk, 45),
                      transl=torch.zeros(chunk, 3))  # fmt: skip

        rows.append(("smplx SMPLH forward (joints + mesh), 52 joints", _time(run_smplx, 3), 52))

    print(
        f"FK throughput, batch {SEQUENCES}×{FRAMES} = {POSES} poses, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{'method':<50} {'time (ms)':>10} {'joint transforms/s':>20}")
    for name, seconds, joints in rows:
        print(f"{name:<50} {seconds * 1e3:>10.1f} {POSES * joints / seconds:>20.3e}")
    if smplx is not None:
        ours, theirs = rows[0][1], rows[-1][1]
        print(
            f"speed-up of egogrpo joint FK (default body) over smplx's full forward: {theirs / ours:.1f}× (target ≥ 10×)"
        )


if __name__ == "__main__":
    main()
