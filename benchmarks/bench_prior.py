"""Motion prior speed: sampling throughput (frames of motion per second) and training steps per second.

Sampling: one 128-frame window, EgoAllo's 30-step sampler, batch 1 and 16, for the shipped default
prior (`cpu` preset) and the 50 M `egoallo` preset (random weights: speed does not depend on them).
Training: optimizer steps per second on random 128-frame batches. On a CUDA machine the same runs
happen on the GPU too, with peak memory.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable

import torch

from egogrpo.config import DENOISER_PRESETS, DenoiserConfig, SamplerConfig
from egogrpo.model.checkpoint import default_prior_dir, load_checkpoint
from egogrpo.model.denoiser import EgoDenoiser
from egogrpo.model.sampler import body_rotation_projection, sample
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import packed_dim

WINDOW = 128


def _time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _models() -> list[tuple[str, EgoDenoiser, DenoiserConfig]]:
    models = []
    if (default_prior_dir() / "model.safetensors").is_file():
        model, config, _ = load_checkpoint(default_prior_dir())
        models.append(("default prior (cpu preset)", model, config))
    else:
        models.append(("cpu preset (untrained)", EgoDenoiser(DENOISER_PRESETS["cpu"]), DENOISER_PRESETS["cpu"]))
    models.append(("egoallo preset (50 M)", EgoDenoiser(DENOISER_PRESETS["egoallo"]), DENOISER_PRESETS["egoallo"]))
    return models


def _sample_once(model: EgoDenoiser, config: DenoiserConfig, cond: torch.Tensor, schedule: NoiseSchedule) -> None:
    sample(
        lambda x, t, c: model(x, t, c), cond, SamplerConfig(), schedule,
        packed_dim(config.num_betas, config.include_hands),
        generator_initial=torch.Generator().manual_seed(0), generator_steps=torch.Generator().manual_seed(1),
        project=body_rotation_projection(config.num_betas),
    )  # fmt: skip


def _train_step(
    model: EgoDenoiser, optimizer: torch.optim.Optimizer, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor
) -> None:
    loss = (model(x, t, cond) - x).square().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def bench_sampling(device: torch.device) -> None:
    schedule = NoiseSchedule.cosine()
    for name, model, config in _models():
        model = model.to(device).eval()
        for batch in (1, 16):
            cond = torch.randn(batch, WINDOW, 154, device=device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                run = functools.partial(_sample_once, model, config, cond, schedule)
                seconds = _time(run, 3 if device.type == "cuda" or batch == 1 else 1, device)
            memory = f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else ""
            print(f"sample  {name:<28} {device.type:>4} batch {batch:>2}: {seconds:7.3f} s per window set, "
                  f"{batch * WINDOW / seconds:9.0f} frames/s{memory}")  # fmt: skip


def bench_training(device: torch.device) -> None:
    presets = (("cpu preset", DENOISER_PRESETS["cpu"], 32), ("egoallo preset", DENOISER_PRESETS["egoallo"], 8))
    for name, config, batch in presets:
        model = EgoDenoiser(config).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        dim = packed_dim(config.num_betas, config.include_hands)
        x = torch.randn(batch, WINDOW, dim, device=device)
        cond = torch.randn(batch, WINDOW, 154, device=device)
        t = torch.randint(1, 1001, (batch,), device=device)
        seconds = _time(functools.partial(_train_step, model, optimizer, x, t, cond), 3, device)
        print(
            f"train   {name:<28} {device.type:>4} batch {batch:>2}: {1 / seconds:7.2f} steps/s ({seconds:.3f} s/step)"
        )


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        bench_sampling(device)
        bench_training(device)


if __name__ == "__main__":
    main()
