"""Sampling cost per 128-frame window for each sampler × steps (issue 26), fp32 and bf16, batch 1 and 16.

A randomly initialised denoiser of the chosen preset (the cost does not depend on the weights; `egoallo` is
EgoAllo's 50.4 M model) samples one batch of 128-frame windows through `DiffusionPolicy.sample`, the path eval
and recover take, with the polar projection. Settings are run interleaved, `--repeats` rounds, and the median
CPU-or-wall time per window and per frame is printed beside the ratio to EgoAllo's 30-step sampler (egogrpo's
implementation; `bench_egoallo.py` times EgoAllo's own loop against it).

    OMP_NUM_THREADS=1 python benchmarks/bench_solvers.py --preset egoallo --batches 1 16 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from egogrpo.config import DENOISER_PRESETS, SamplerConfig
from egogrpo.model.denoiser import EgoDenoiser, sampling_denoiser
from egogrpo.model.policy import DiffusionPolicy
from egogrpo.model.sampler import body_rotation_projection
from egogrpo.model.schedule import NoiseSchedule
from egogrpo.model.state import packed_dim

SETTINGS = [
    ("egoallo 30", SamplerConfig(projection="polar")),
    *[
        (f"{rule} {n}", SamplerConfig(rule=rule, num_steps=n, eta=0.0, projection="polar", spacing="quadratic"))
        for rule in ("ddim", "dpmpp2m")
        for n in (5, 10, 15, 20)
    ],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="egoallo", choices=sorted(DENOISER_PRESETS))
    parser.add_argument("--batches", nargs="+", type=int, default=[1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="also every setting under bf16 autocast")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = DENOISER_PRESETS[args.preset]
    model = EgoDenoiser(config).eval()
    state_dim = packed_dim(config.num_betas, config.include_hands)
    settings = list(SETTINGS)
    if args.bf16:
        settings += [(f"{name} bf16", SamplerConfig(**{**s.__dict__, "autocast": True})) for name, s in SETTINGS]
    print(f"preset {args.preset}, {args.threads} thread(s), median of {args.repeats}, seconds per 128-frame window")
    print("| setting | " + " | ".join(f"batch {b}: s/window (× egoallo 30)" for b in args.batches) + " |")
    print("|---|" + "---|" * len(args.batches))
    results: dict[tuple[str, int], list[float]] = {}
    for batch in args.batches:
        cond = torch.randn(batch, 128, model.d_cond)
        for _ in range(args.repeats):
            for name, sampler in settings:  # interleaved: load drifts hit every setting alike
                policy = DiffusionPolicy(NoiseSchedule.cosine(), sampler, body_rotation_projection(config.num_betas))
                tick = time.perf_counter()
                policy.sample(sampling_denoiser(model, sampler), cond, state_dim, seed=0)
                results.setdefault((name, batch), []).append((time.perf_counter() - tick) / batch)
    for name, _ in settings:
        cells = []
        for batch in args.batches:
            median = statistics.median(results[(name, batch)])
            base = statistics.median(results[("egoallo 30", batch)])
            cells.append(f"{median:.3f} ({median / base:.2f}×)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
