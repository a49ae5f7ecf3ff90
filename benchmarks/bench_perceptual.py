"""Perceptual model speed: scoring throughput (motions per second, T = 128 frames) and one InfoNCE training step
(16 conditions × 16 motions by default) per preset, random weights and inputs (speed does not depend on them).
On a CUDA machine the same rows are timed on the GPU too, with peak memory. The median of `--repeats` is reported.

    python benchmarks/bench_perceptual.py [--presets tiny cpu] [--batch 32] [--repeats 3] [--train]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from egogrpo.config import PERCEPTUAL_PRESETS
from egogrpo.model.perceptual import PerceptualModel, score, score_logits
from egogrpo.train.reward_model import info_nce


def _inputs(N: int, T: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    quats = torch.nn.functional.normalize(torch.randn(N, T, 21, 4, device=device), dim=-1)
    cpf = torch.cat((torch.nn.functional.normalize(torch.randn(N, T, 4, device=device), dim=-1),
                     torch.randn(N, T, 3, device=device)), -1)  # fmt: skip
    return quats, torch.randn(N, T, 21, 3, device=device), cpf


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
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


def _row(name: str, device: torch.device, args: argparse.Namespace) -> str:
    """One table row: a preset on a device."""
    torch.manual_seed(0)
    model = PerceptualModel(PERCEPTUAL_PRESETS[name]).to(device)
    params = sum(p.numel() for p in model.parameters())
    quats, joints, cpf = _inputs(args.batch, args.frames, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = _time(lambda: score(model.eval(), quats, joints, cpf, chunk=args.batch), device, args.repeats)
    step = float("nan")
    if args.train:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        q, j, c = _inputs(16 * 16, args.frames, device)

        def train_step() -> None:
            scores = torch.sigmoid(score_logits(model.train(), q, j, c)).reshape(16, 16) / 0.07
            optimizer.zero_grad()
            info_nce(scores[:, 0], scores[:, 1:]).backward()
            optimizer.step()

        step = _time(train_step, device, args.repeats)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return f"{device.type:6} {name:6} {params:>10,} {args.batch / seconds:>16.1f} {step:>13.3f} {peak:>9.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    parser.add_argument("--batch", type=int, default=32, help="motions scored per call")
    parser.add_argument("--frames", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", action="store_true", help="also time one InfoNCE step of 16 × (1 + 15) motions")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, T = {args.frames}")
    print(f"{'device':6} {'preset':6} {'params':>10} {'score motions/s':>16} {'train step s':>13} {'peak GiB':>9}")
    for device in devices:
        for name in args.presets:
            print(_row(name, device, args), flush=True)


if __name__ == "__main__":
    main()
