"""`egogrpo recover`: full-body motion from an Aria recording (no numerics here; see egogrpo.recover.pipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from egogrpo.cli.common import console, err_console
from egogrpo.config import RecoverConfig, SamplerConfig


def recover_command(
    recording: Annotated[
        Path, typer.Argument(help="Recording folder (MPS outputs below it; a .vrs inside gives the calibration).")
    ],
    out: Annotated[Path, typer.Option(help="Output folder (recovered.npz, joints.csv, motion.bvh).")],
    vrs: Annotated[Path | None, typer.Option(help="VRS file with the device calibration (T_device_cpf).")] = None,
    mps: Annotated[Path | None, typer.Option(help="MPS output folder, if not below the recording folder.")] = None,
    checkpoint: Annotated[str, typer.Option(help="'default' (the shipped prior) or a checkpoint folder.")] = "default",
    body: Annotated[
        str, typer.Option("--body", "--smplh", help="'default' or the SMPL-H .npz the checkpoint uses.")
    ] = "default",
    floor_z: Annotated[
        float | None, typer.Option(help="Floor height (world z, metres) instead of estimating it.")
    ] = None,
    samples: Annotated[int, typer.Option(help="Samples of the motion to draw.")] = 1,
    device: Annotated[
        str, typer.Option(help="Where to sample: auto (CUDA when present), cpu, cuda or cuda:N.")
    ] = "auto",
    combine: Annotated[
        str,
        typer.Option(help="'mean' of the --samples, or the 'best' the --verifier scores: one motion ('none': all)."),
    ] = "none",
    verifier: Annotated[
        Path | None, typer.Option(help="--combine best: the perceptual model (train-reward) that scores the samples.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler.")] = 0,
    refine: Annotated[
        bool, typer.Option(help="Test-time refinement: priors, smoothness, foot skating, wrists.")
    ] = False,
    csv: Annotated[bool, typer.Option(help="Also write world joint positions as CSV.")] = False,
    bvh: Annotated[bool, typer.Option(help="Also write the motion as BVH (centimetres, y-up).")] = False,
    projection: Annotated[
        str,
        typer.Option(
            help="The sampler's SO(3) projection: polar (the default: the same rotations to float32 rounding, "
            "faster) or svd (EgoAllo's computation)."
        ),
    ] = "polar",
    bf16: Annotated[bool, typer.Option(help="bf16 autocast of the denoiser while sampling (faster).")] = False,
    solver: Annotated[
        str,
        typer.Option(help="Sampler: egoallo (EgoAllo's 30 steps), ddim (deterministic) or dpmpp2m (DPM-Solver++ 2M)."),
    ] = "egoallo",
    steps: Annotated[int | None, typer.Option(help="--solver ddim/dpmpp2m: sampler steps.")] = None,
    spacing: Annotated[
        str | None, typer.Option(help="--solver ddim/dpmpp2m: linear (evenly strided) or quadratic timesteps.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs.")] = False,
) -> None:
    """Recover full-body motion from the head trajectory of an Aria recording (MPS closed-loop trajectory)."""
    from egogrpo.model.sampler import solver_options
    from egogrpo.recover.pipeline import recover

    config = RecoverConfig(
        recording=str(recording), out=str(out), vrs=None if vrs is None else str(vrs), mps=None if mps is None else str(mps),
        checkpoint=checkpoint, body=body, floor_z=floor_z, samples=samples, seed=seed, refine=refine,
        device=device, combine=combine, verifier=None if verifier is None else str(verifier),
        write_csv=csv, write_bvh=bvh, overwrite=overwrite,
        sampler=solver_options(SamplerConfig(projection=projection, autocast=bf16), solver, steps, spacing),
    )  # fmt: skip
    with err_console.status("recovering…") as status:
        result = recover(config, progress=lambda text: status.update(text))
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(
        f"recovered {result.num_frames} frames ({result.num_frames / 30:.1f} s) in {result.seconds:.1f} s; "
        f"floor at z = {result.floor_z:.3f} m; wrote {', '.join(str(f) for f in result.files)}"
    )
