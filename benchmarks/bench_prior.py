"""Motion prior speed: one 128-frame window sampled with EgoAllo's 30-step sampler, and training steps per second,
each speed option on and off, for the shipped `cpu` preset (the default prior) and the 50 M `egoallo` preset
(random weights: speed does not depend on them).

Sampling rows are cumulative (each adds one option to the row above), so the table shows what each buys:

    baseline     rotary sin/cos recomputed every call, SVD projection, float32
    +rope cache  rotary tables cached per (length, device, dtype)            (always on in egogrpo)
    +polar       SamplerConfig.projection = "polar"                          (opt-in)
    +bf16        SamplerConfig.autocast = True: the denoiser under bf16 autocast (opt-in; rollouts only)
    +compile     SamplerConfig.compile = True (only with --compile: compiling takes minutes on a CPU)

Configurations are timed interleaved (one repeat of every row, then the next repeat) and the median is
reported, so that load from other processes hits all rows alike. Training rows: one optimizer step of a
random batch, with train-prior's noise (CPU torch.randn before, counter-based streams on the device after)
and bf16 autocast off/on. On a CUDA machine the same table is printed for the GPU, with peak memory.

    python benchmarks/bench_prior.py [--presets cpu egoallo] [--batches 1 16] [--repeats 3] [--compile]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch

from egogrpo.config import DENOISER_PRESETS, DenoiserConfig, SamplerConfig
from egogrpo.model.checkpoint import default_prior_dir, load_checkpoint
from egogrpo.model.denoiser import EgoDenoiser, RotaryEmbedding, sampling_denoiser
from egogrpo.model.policy import DiffusionPolicy
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import MotionState, packed_dim
from egogrpo.train.prior import step_noise
from egogrpo.train.prior_loss import prior_loss

WINDOW = 128

#: (row name, rotary cache, sampler options) — cumulative.
SAMPLING_ROWS = (
    ("baseline", False, {}),
    ("+rope cache", True, {}),
    ("+polar", True, {"projection": "polar"}),
    ("+bf16", True, {"projection": "polar", "autocast": True}),
)
COMPILE_ROW = ("+compile", True, {"projection": "polar", "autocast": True, "compile": True})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _interleaved(runs: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds of each run over `repeats` interleaved rounds, after one warm-up call of each run on a GPU
    (kernels, allocator) and of the compiled row (compilation) — on a CPU the other runs need none."""
    for name, run in runs.items():
        if device.type == "cuda" or "compile" in name:
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _model(preset: str) -> tuple[str, EgoDenoiser, DenoiserConfig]:
    if preset == "cpu" and (default_prior_dir() / "model.safetensors").is_file():
        model, config, _ = load_checkpoint(default_prior_dir())
        return "cpu (shipped prior)", model, config
    config = DENOISER_PRESETS[preset]
    return f"{preset} (random)", EgoDenoiser(config), config


def _sample_window(model: EgoDenoiser, config: DenoiserConfig, cond: torch.Tensor, options: dict) -> Callable:
    sampler = SamplerConfig(**options)
    policy = DiffusionPolicy(
        NoiseSchedule.cosine(), sampler, body_rotation_projection(config.num_betas), device=cond.device
    )
    denoise = sampling_denoiser(model, sampler)
    state_dim = packed_dim(config.num_betas, config.include_hands)

    def run() -> MotionState:
        with torch.no_grad():
            x0 = policy.sample(denoise, cond, state_dim, seed=0)
            return MotionState.unpack(x0, config.num_betas, config.include_hands)

    return run


def bench_sampling(device: torch.device, presets: list[str], batches: list[int], repeats: int, compile_: bool) -> None:
    rows = SAMPLING_ROWS + ((COMPILE_ROW,) if compile_ else ())
    for preset in presets:
        name, model, config = _model(preset)
        model = model.to(device).eval()
        for batch in batches:
            cond = torch.randn(batch, WINDOW, model.d_cond, device=device)
            runs = {}
            for row, cache, options in rows:
                sample = _sample_window(model, config, cond, options)

                def run(sample: Callable = sample, cache: bool = cache) -> None:
                    RotaryEmbedding.cache_tables = cache
                    try:
                        sample()
                    finally:
                        RotaryEmbedding.cache_tables = True

                runs[row] = run
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            slow = preset == "egoallo" and batch > 4 and device.type == "cpu"
            seconds = _interleaved(runs, 1 if slow else repeats, device)
            memory = f"  peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""
            base = seconds["baseline"]
            for row, value in seconds.items():
                print(
                    f"sample | {name:<20} | {device.type:>4} | batch {batch:>2} | {row:<12} | {value:8.3f} s | "
                    f"{batch * WINDOW / value:8.0f} frames/s | ×{base / value:5.2f}{memory}",
                    flush=True,
                )


def _train_step(
    model: EgoDenoiser,
    optimizer: torch.optim.Optimizer,
    crop_x0: torch.Tensor,
    cond: torch.Tensor,
    after: bool,
    autocast: bool,
) -> None:
    """One train-prior step on a fixed batch: 'before' draws t and noise with a CPU generator and copies them,
    'after' draws counter-based streams on the device (the loss, backward and AdamW step are the loop's)."""
    config, device, batch = model.config, crop_x0.device, crop_x0.shape[0]
    schedule = NoiseSchedule.cosine()
    if after:
        t, noise = step_noise(0, 0, torch.arange(batch), config.max_t, tuple(crop_x0.shape[1:]), device)
    else:
        generator = torch.Generator().manual_seed(0)
        t = torch.randint(1, config.max_t + 1, (batch,), generator=generator).to(device)
        noise = torch.randn(crop_x0.shape, generator=generator).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
        x0_hat = model(schedule.q_sample(crop_x0, t, noise), t, cond).float()
    losses = prior_loss(x0_hat, crop_x0, schedule.loss_weight(t).float(), config.num_betas, config.include_hands)
    optimizer.zero_grad(set_to_none=True)
    losses["total"].backward()
    optimizer.step()


def bench_training(device: torch.device, presets: list[str], repeats: int) -> None:
    batches = {"cpu": 32, "egoallo": 8, "small": 32, "tiny": 32}
    for preset in presets:
        config, batch = DENOISER_PRESETS[preset], batches[preset]
        model = EgoDenoiser(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
        x0 = torch.randn(batch, WINDOW, packed_dim(config.num_betas, config.include_hands), device=device)
        cond = torch.randn(batch, WINDOW, model.d_cond, device=device)
        step = functools.partial(_train_step, model, optimizer, x0, cond)
        runs = {
            "before": functools.partial(step, after=False, autocast=False),
            "device noise": functools.partial(step, after=True, autocast=False),
            "+bf16": functools.partial(step, after=True, autocast=True),
        }
        runs["before"]()  # AdamW allocates its state on the first step
        seconds = _interleaved(runs, repeats, device)
        for row, value in seconds.items():
            print(
                f"train  | {preset + ' preset':<20} | {device.type:>4} | batch {batch:>2} | {row:<12} | "
                f"{value:8.3f} s | {1 / value:8.2f} steps/s | ×{seconds['before'] / value:5.2f}",
                flush=True,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["cpu", "egoallo"], choices=sorted(DENOISER_PRESETS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per row (egoallo at batch > 4: 1)")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile row (slow to compile on CPU)")
    parser.add_argument("--no-training", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; one {WINDOW}-frame window, 30 steps")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        bench_sampling(device, args.presets, args.batches, args.repeats, args.compile)
        if not args.no_training:
            bench_training(device, args.presets, args.repeats)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
