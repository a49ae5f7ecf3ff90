"""Counter-based random streams: noise that is a pure function of a key and a shape, on any device.

Every random number egogrpo's policy uses is addressed, not drawn in sequence: a *key* names a stream
(e.g. (seed, purpose, iteration, group, member, step)) and the values of a row are a pure function of
its key and the requested shape. A member computed alone, on another rank, or in a batch of 1000 gets
bit-identical numbers, so results do not depend on the batch layout, chunking or number of processes.

A key is a hash of its parts, computed on the device with integer arithmetic on int64 tensors holding
32-bit words (products split into 16-bit halves so nothing overflows; `lowbias32`, a 32-bit integer
finaliser, folds each part into two independent words). The 64-bit key then drives a counter-based
generator for that row: NumPy's Philox on the CPU (torch's CPU generator would keep only 32 bits of the
seed, so distinct keys would collide), torch's Philox on CUDA. CPU and CUDA streams differ from each
other; each is reproducible on its own.

    keys = stream_key(seed, PURPOSE_STEP, iteration, group_ids, member_ids, step)   # (..., 2) int64
    z = normal(keys, (L, D))                                                        # (..., L, D) float32
"""

from __future__ import annotations

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

#: Stream purposes: the second part of every key, so that streams of different uses never coincide.
PURPOSE_INITIAL = 1  # x_T of a rollout
PURPOSE_STEP = 2  # the noise of one sampler transition
PURPOSE_PERLIN = 3  # Perlin gradients and phases of a condition perturbation
PURPOSE_SUBSET = 4  # which MDP steps of a trajectory are trained
PURPOSE_SHUFFLE = 5  # order of training transitions
PURPOSE_RENOISE = 6  # forward-process noise that re-noises final samples (AWM, DiffusionNFT)
PURPOSE_PRIOR = 7  # noise levels and noise of a train-prior step (per global batch row)
PURPOSE_NEGATIVE = 8  # train-reward negatives: GT noise and which of the last three x̂₀ (per condition)
PURPOSE_ANCHOR = 9  # noise levels and noise of train-grpo's anchor loss (per optimizer step and real crop)

_MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mul32(x: Tensor, constant: int) -> Tensor:
    """(x · constant) mod 2³² for int64 tensors holding 32-bit values, without int64 overflow."""
    lo, hi = constant & 0xFFFF, constant >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def lowbias32(x: Tensor) -> Tensor:
    """A 32-bit integer hash (Wellons' lowbias32 finaliser) on int64 tensors holding 32-bit values."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def stream_key(*parts: int | Tensor, device: torch.device | str | None = None) -> Int[Tensor, "*batch 2"]:
    """Fold integer parts (Python ints ≥ 0, or int tensors broadcast together) into a two-word key.

    The words are independent 32-bit hashes of the sequence of parts (each part may be up to 2⁶² and is
    folded as two 32-bit halves), so keys differing in any part are unrelated streams.
    """
    tensors = [torch.as_tensor(p, dtype=torch.int64, device=device) for p in parts]
    if device is None:
        device = next((t.device for t in tensors if t.dim() > 0), tensors[0].device if tensors else "cpu")
    tensors = [t.to(device) for t in tensors]
    if any(bool((t < 0).any()) for t in tensors):
        raise ValueError("stream_key parts must be non-negative integers")
    shape = torch.broadcast_shapes(*(t.shape for t in tensors)) if tensors else ()
    h0 = torch.full(shape, 0x243F6A88, dtype=torch.int64, device=device)
    h1 = torch.full(shape, 0x85A308D3, dtype=torch.int64, device=device)
    for part in tensors:
        for word in (part & _MASK32, (part >> 32) & _MASK32):
            h0 = lowbias32(h0 ^ lowbias32(word + _GOLDEN))
            h1 = lowbias32(h1 ^ lowbias32(word ^ 0x5BD1E995))
    return torch.stack((h0, h1), dim=-1)


def _row_seeds(keys: Int[Tensor, "*batch 2"]) -> list[int]:
    """One 64-bit seed per key (the two 32-bit words joined)."""
    words = keys.reshape(-1, 2).cpu().tolist()
    return [(h0 << 32) | h1 for h0, h1 in words]


def _draw(keys: Tensor, shape: tuple[int, ...], kind: str) -> Tensor:
    """One stream per key: NumPy's counter-based Philox keyed by all 64 bits on the CPU (torch's CPU generator
    keeps only 32 bits of a seed), torch's Philox with the 64-bit seed on CUDA."""
    device = keys.device
    rows = []
    for seed in _row_seeds(keys):
        if device.type == "cpu":
            generator = np.random.Generator(np.random.Philox(key=seed))
            draw = generator.standard_normal if kind == "normal" else generator.random
            rows.append(torch.from_numpy(draw(shape, dtype=np.float32)))
        else:
            generator = torch.Generator(device=device).manual_seed(seed & 0x7FFFFFFFFFFFFFFF)
            draw = torch.randn if kind == "normal" else torch.rand
            rows.append(draw(shape, generator=generator, device=device, dtype=torch.float32))
    if not rows:
        return torch.zeros(*keys.shape[:-1], *shape, device=device)
    return torch.stack(rows).reshape(*keys.shape[:-1], *shape)


def uniform(keys: Int[Tensor, "*batch 2"], shape: tuple[int, ...]) -> Float[Tensor, "*batch *shape"]:
    """Uniform numbers in [0, 1), float32, one stream per key: shape (*keys.shape[:-1], *shape)."""
    return _draw(keys, tuple(shape), "uniform")


def normal(keys: Int[Tensor, "*batch 2"], shape: tuple[int, ...]) -> Float[Tensor, "*batch *shape"]:
    """Standard normal numbers, float32, one stream per key: shape (*keys.shape[:-1], *shape)."""
    return _draw(keys, tuple(shape), "normal")
