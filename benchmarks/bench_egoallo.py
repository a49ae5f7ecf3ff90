"""egogrpo's sampler against EgoAllo's own sampling code: the same 50 M model, one 128-frame window, 30 steps, CPU.

EgoAllo (github.com/brentyi/egoallo, MIT) is not vendored and nothing is fetched: pass a checkout with
`--egoallo-src DIR` (or set EGOALLO_SRC); without one the benchmark prints why and skips. EgoAllo's network needs
`rotary-embedding-torch` (and `loguru`, stubbed when absent: logging only); its guidance module needs JAX and is
replaced by a stub here, since guidance is off. EgoAllo targets Python ≥ 3.12: on 3.11 `typing.override` (a
marker decorator) is supplied as the identity, and the one PEP 695 generic function it imports
(tensor_dataclass._map_impl) is loaded with its type parameter list removed; no computation changes. Both networks hold the same weights (egogrpo's state dict uses
EgoAllo's names); the table first prints the largest difference of their x̂₀ predictions as a check.

EgoAllo's loop: `run_sampling_with_stitching` with guidance off, as its inference script runs it (for 128 frames
it denoises the window [0, 128) and an extra [96, 128) per step and recomputes the conditioning each step).
egogrpo's loop: `DiffusionPolicy.sample` + `MotionState.unpack`, conditioning computed once, default options
(SVD, float32) and fast options (polar projection, bf16 autocast); EgoAllo's loop is also run under the same
bf16 autocast, for a precision-matched comparison. Then one step of each (x̂₀ and projection), repeated: less
exposed to load from other processes than single 30-step runs. Runs are interleaved; medians reported.

    PYTHONPATH=/path/to/extra/site python benchmarks/bench_egoallo.py --egoallo-src /tmp/egoallo [--batches 1 16]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import math
import os
import re
import statistics
import sys
import time
import types
import typing
from collections.abc import Callable
from pathlib import Path

import torch

from egogrpo.config import DENOISER_PRESETS, SamplerConfig
from egogrpo.geometry import quat_from_axis_angle, quat_multiply
from egogrpo.model.conditioning import cpf_conditioning_from_trajectory
from egogrpo.model.denoiser import EgoDenoiser, sampling_denoiser
from egogrpo.model.policy import DiffusionPolicy
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim

WINDOW = 128


def _import_egoallo(src: Path) -> types.ModuleType | str:
    """EgoAllo's `sampling` and `network` modules from a checkout, or the reason they cannot be imported."""
    package = src / "src" / "egoallo"
    if not (package / "sampling.py").is_file():
        return f"{src}: not an EgoAllo checkout (no src/egoallo/sampling.py)"
    if importlib.util.find_spec("rotary_embedding_torch") is None:
        return "EgoAllo's network needs the package rotary-embedding-torch (pip install rotary-embedding-torch)"
    if importlib.util.find_spec("loguru") is None:
        quiet = types.SimpleNamespace(info=print, warning=print, debug=lambda *a, **k: None)
        sys.modules["loguru"] = types.SimpleNamespace(logger=quiet)  # type: ignore[assignment]
    guidance = types.ModuleType("egoallo.guidance_optimizer_jax")  # JAX-only; guidance is off here
    guidance.GuidanceMode = str  # type: ignore[attr-defined]

    def no_guidance(*args: object, **kwargs: object) -> None:
        raise RuntimeError("guidance is not benchmarked")

    guidance.do_guidance_optimization = no_guidance  # type: ignore[attr-defined]
    sys.modules["egoallo.guidance_optimizer_jax"] = guidance
    sys.path.insert(0, str(src / "src"))
    try:
        if sys.version_info < (3, 12):  # typing.override (3.12): a marker decorator; and one PEP 695 generic
            typing.override = getattr(typing, "override", lambda f: f)  # type: ignore[attr-defined]
            egoallo = importlib.import_module("egoallo")
            path = package / "tensor_dataclass.py"
            source = "from __future__ import annotations\n" + re.sub(
                r"def (\w+)\[[^\]]*\]\(", r"def \1(", path.read_text()
            )
            module = types.ModuleType("egoallo.tensor_dataclass")
            module.__file__, module.__package__ = str(path), "egoallo"
            sys.modules[module.__name__] = module
            exec(compile(source, str(path), "exec"), module.__dict__)
            egoallo.tensor_dataclass = module  # type: ignore[attr-defined]
        return importlib.import_module("egoallo.sampling")
    except ImportError as error:
        return f"EgoAllo's sampling code does not import: {error}"


def _head_trajectory(frames: int) -> torch.Tensor:
    """A walking, turning head: (frames + 1, 7) wxyz_xyz poses of the CPF (+z forward), z up."""
    t = torch.arange(frames + 1, dtype=torch.float32) / 30.0
    yaw = 0.3 * t
    q_yaw = quat_from_axis_angle(torch.stack([torch.zeros_like(yaw), torch.zeros_like(yaw), yaw], dim=-1))
    q_forward = quat_from_axis_angle(torch.tensor([0.0, math.pi / 2, 0.0]).expand(frames + 1, 3))
    heading = torch.stack([torch.cos(yaw), torch.sin(yaw), torch.zeros_like(yaw)], dim=-1)
    position = torch.cumsum(heading * 1.2 / 30.0, dim=0)
    position[:, 2] = 1.6 + 0.02 * torch.sin(6.0 * t)
    return torch.cat([quat_multiply(q_yaw, q_forward), position], dim=-1)


def _median_times(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--egoallo-src", type=Path, default=os.environ.get("EGOALLO_SRC"))
    parser.add_argument("--batches", nargs="+", type=int, default=[1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1, help="rounds of whole 30-step loops (0: none)")
    parser.add_argument("--step-repeats", type=int, default=3, help="rounds of single steps")
    args = parser.parse_args(argv if argv is not None else [])
    if args.egoallo_src is None:
        print("no EgoAllo checkout given (--egoallo-src DIR or EGOALLO_SRC): skipped")
        return
    sampling = _import_egoallo(args.egoallo_src)
    if isinstance(sampling, str):
        print(f"{sampling}: skipped")
        return
    network = importlib.import_module("egoallo.network")
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    config = DENOISER_PRESETS["egoallo"]
    ours = EgoDenoiser(config).eval()
    theirs = network.EgoDenoiser(network.EgoDenoiserConfig()).eval()
    theirs.load_state_dict(ours.state_dict())
    trajectory = _head_trajectory(WINDOW)
    cond = cpf_conditioning_from_trajectory(trajectory, 0.0, config=config)[None]
    state_dim = packed_dim(config.num_betas, config.include_hands)
    with torch.no_grad():
        x, t = torch.randn(1, WINDOW, state_dim), torch.tensor([500])
        T_cpf_tm1_cpf_t = sampling.SE3(trajectory[:-1]).inverse() @ sampling.SE3(trajectory[1:])
        reference = theirs.forward(
            x, t, T_world_cpf=trajectory[None, 1:], T_cpf_tm1_cpf_t=T_cpf_tm1_cpf_t.wxyz_xyz[None],
            project_output_rotmats=False, hand_positions_wrt_cpf=None, mask=None,
        )  # fmt: skip
        difference = float((ours(x, t, cond) - reference).abs().max())
    print(f"torch {torch.__version__}, {args.threads} thread(s); EgoAllo at {args.egoallo_src}")
    print(f"same model check: max |x̂₀ egogrpo − x̂₀ EgoAllo| = {difference:.2e} ({ours.num_parameters():,} parameters)")

    fast = SamplerConfig(projection="polar", autocast=True)
    schedule = NoiseSchedule.cosine()
    for batch in args.batches:

        def egoallo(batch: int = batch, autocast: bool = False) -> None:
            quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
            with quiet[0], quiet[1], torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                sampling.run_sampling_with_stitching(
                    theirs, None, "off", False, False, trajectory, 0.0, None, None, batch, torch.device("cpu")
                )

        def egogrpo(sampler: SamplerConfig, batch: int = batch) -> None:
            with torch.no_grad():
                c = cpf_conditioning_from_trajectory(trajectory, 0.0, config=config)[None].expand(batch, -1, -1)
                policy = DiffusionPolicy(schedule, sampler, body_rotation_projection(config.num_betas))
                x0 = policy.sample(sampling_denoiser(ours, sampler), c, state_dim, seed=0)
                MotionState.unpack(x0, config.num_betas, config.include_hands)

        runs = {
            "EgoAllo run_sampling_with_stitching": egoallo,
            "egogrpo (svd, fp32)": lambda batch=batch: egogrpo(SamplerConfig(), batch),
            "egogrpo (polar, bf16 autocast)": lambda batch=batch: egogrpo(fast, batch),
            "EgoAllo under bf16 autocast": lambda batch=batch: egoallo(batch, autocast=True),
        }
        if args.repeats > 0:
            seconds = _median_times(runs, args.repeats)
            base = seconds["EgoAllo run_sampling_with_stitching"]
            for name, value in seconds.items():
                print(
                    f"batch {batch:>2} | {name:<36} | {value:8.2f} s | {batch * WINDOW / value:7.1f} frames/s | "
                    f"{base / value:5.2f}× EgoAllo",
                    flush=True,
                )
        steps = _one_step_runs(sampling, network, theirs, ours, trajectory, cond.expand(batch, -1, -1), fast)
        seconds = _median_times(steps, args.step_repeats)
        base = seconds["EgoAllo step"]
        for name, value in seconds.items():
            print(
                f"batch {batch:>2} | one step: {name:<26} | {value:8.3f} s | {base / value:5.2f}× EgoAllo", flush=True
            )


def _one_step_runs(
    sampling: types.ModuleType,
    network: types.ModuleType,
    theirs: torch.nn.Module,
    ours: EgoDenoiser,
    trajectory: torch.Tensor,
    cond: torch.Tensor,
    fast: SamplerConfig,
) -> dict[str, Callable[[], object]]:
    """One sampling step's work (x̂₀ of a 128-frame window, projected), short enough to repeat many times.

    EgoAllo: its network on [0, 128) and [96, 128) (its stitching for 128 frames), conditioning inside, then
    `EgoDenoiseTraj.unpack(project_rotmats=True).pack()`; egogrpo: the denoiser and the body projection.
    """
    batch = cond.shape[0]
    x, t = torch.randn(batch, WINDOW, ours.d_state), torch.full((batch,), 500)
    relative = (sampling.SE3(trajectory[:-1]).inverse() @ sampling.SE3(trajectory[1:])).wxyz_xyz

    def egoallo(autocast: bool) -> None:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            x0 = torch.zeros_like(x)
            for start in range(0, WINDOW, WINDOW - 32):
                x0[:, start:] += theirs.forward(
                    x[:, start:], t, T_cpf_tm1_cpf_t=relative[None, start:].repeat(batch, 1, 1),
                    T_world_cpf=trajectory[None, start + 1 :].repeat(batch, 1, 1), project_output_rotmats=False,
                    hand_positions_wrt_cpf=None, mask=None,
                )  # fmt: skip
            network.EgoDenoiseTraj.unpack(x0, include_hands=True, project_rotmats=True).pack()

    def egogrpo(sampler: SamplerConfig) -> None:
        project = body_rotation_projection(ours.config.num_betas, method=sampler.projection)
        with torch.no_grad():
            project(sampling_denoiser(ours, sampler)(x, t, cond))

    return {
        "EgoAllo step": lambda: egoallo(False),
        "egogrpo (svd, fp32)": lambda: egogrpo(SamplerConfig()),
        "egogrpo (polar, bf16)": lambda: egogrpo(fast),
        "EgoAllo under bf16": lambda: egoallo(True),
    }


if __name__ == "__main__":
    main(sys.argv[1:])
