"""Recovery throughput: frames of motion recovered per second of wall time, on the demo's synthetic recording.

The default prior (`cpu` preset) and the 50 M `egoallo` preset (random weights; its speed does not
depend on them), each without and with test-time refinement; on CPU, and on CUDA when available.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from egogrpo.config import DENOISER_PRESETS, RecoverConfig
from egogrpo.model.checkpoint import save_checkpoint
from egogrpo.model.denoiser import EgoDenoiser
from egogrpo.recover.demo import write_synthetic_recording
from egogrpo.recover.pipeline import recover


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        recording = write_synthetic_recording(root / "recording")
        egoallo = DENOISER_PRESETS["egoallo"]
        # The egoallo preset with the default body's 10 shape parameters and no hands, so it runs on the default body.
        from dataclasses import replace

        big = replace(egoallo, num_betas=10, include_hands=False)
        save_checkpoint(root / "egoallo", EgoDenoiser(big), big, body_model_id=_default_body_id())
        for name, checkpoint in (
            ("default prior (cpu preset)", "default"),
            ("egoallo preset (50 M)", str(root / "egoallo")),
        ):
            for refine in (False, True):
                config = RecoverConfig(
                    recording=str(recording),
                    out=str(root / "out"),
                    checkpoint=checkpoint,
                    refine=refine,
                    overwrite=True,
                )
                start = time.perf_counter()
                result = recover(config)
                seconds = time.perf_counter() - start
                print(f"{name:<28} refine={'yes' if refine else 'no ':<3}: {result.num_frames} frames in {seconds:6.1f} s "
                      f"= {result.num_frames / seconds:6.1f} frames/s")  # fmt: skip


def _default_body_id() -> str:
    from egogrpo.body import load_body_model

    return load_body_model("default").model_id


if __name__ == "__main__":
    main()
