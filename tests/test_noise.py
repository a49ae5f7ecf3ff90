"""Counter-based random streams (`egogrpo.model.noise`): distributions, key independence, layout invariance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from egogrpo.model import noise

MASK32 = 0xFFFFFFFF


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.flatten().double().numpy(), b.flatten().double().numpy())[0, 1])


# --- distributions ----------------------------------------------------------------------------------


def test_normal_is_standard_normal() -> None:
    keys = noise.stream_key(3, noise.PURPOSE_STEP, 0, torch.arange(16))
    z = noise.normal(keys, (256, 256))  # 16 streams, ~10⁶ values
    assert z.shape == (16, 256, 256) and z.dtype == torch.float32
    assert abs(float(z.mean())) < 5e-3 and abs(float(z.std()) - 1.0) < 5e-3
    assert stats.kstest(z.flatten().double().numpy(), "norm").pvalue > 1e-3
    per_stream = z.flatten(1)
    assert float(per_stream.mean(1).abs().max()) < 0.02 and float((per_stream.std(1) - 1).abs().max()) < 0.02


def test_uniform_is_uniform() -> None:
    keys = noise.stream_key(3, noise.PURPOSE_SUBSET, torch.arange(16))
    u = noise.uniform(keys, (65536,))
    assert u.shape == (16, 65536) and u.dtype == torch.float32
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert stats.kstest(u.flatten().double().numpy(), "uniform").pvalue > 1e-3


def test_empty_batch_of_keys() -> None:
    keys = noise.stream_key(1, torch.zeros(0, dtype=torch.long))
    assert keys.shape == (0, 2)
    assert noise.normal(keys, (3, 4)).shape == (0, 3, 4)


# --- keys and streams -------------------------------------------------------------------------------


def test_a_rows_values_depend_only_on_its_key() -> None:
    """Layout invariance: a (4, 8) grid of keys, any chunk of it, or one key alone gives the same rows."""
    groups, members = torch.arange(4)[:, None], torch.arange(8)
    keys = noise.stream_key(9, noise.PURPOSE_STEP, 2, groups, members, 5)
    assert keys.shape == (4, 8, 2) and keys.dtype == torch.int64
    grid = noise.normal(keys, (6, 5))
    uniform_grid = noise.uniform(keys, (7,))
    assert grid.shape == (4, 8, 6, 5)
    for g, m in itertools.product(range(4), range(8)):
        single = noise.stream_key(9, noise.PURPOSE_STEP, 2, g, m, 5)
        assert single.shape == (2,) and torch.equal(single, keys[g, m])
        assert torch.equal(noise.normal(single[None], (6, 5))[0], grid[g, m])
        assert torch.equal(noise.uniform(single, (7,)), uniform_grid[g, m])
    assert torch.equal(noise.normal(keys[2:], (6, 5)), grid[2:])  # chunking
    assert torch.equal(noise.normal(keys.flatten(0, 1).flip(0), (6, 5)), grid.flatten(0, 1).flip(0))  # reordering


def test_keys_differing_in_any_part_are_unrelated_streams() -> None:
    base = (7, noise.PURPOSE_STEP, 3, 4, 5, 6)
    reference = noise.normal(noise.stream_key(*base), (100_000,))
    assert torch.equal(noise.normal(noise.stream_key(*base), (100_000,)), reference)  # a key is reproducible
    variants = []
    for i, delta in itertools.product(range(len(base)), (1, 2**20, 2**32, 2**40)):
        parts = list(base)
        parts[i] += delta
        variants.append(parts)
    variants += [list(reversed(base)), [*base, 0], list(base[:-1])]  # order and number of parts matter too
    keys = torch.stack([noise.stream_key(*parts) for parts in variants])
    assert len({tuple(k) for k in keys.tolist()} | {tuple(noise.stream_key(*base).tolist())}) == len(variants) + 1
    streams = noise.normal(keys, (100_000,))
    for parts, stream in zip(variants, streams, strict=True):
        assert not torch.equal(stream, reference), parts
        assert abs(_correlation(stream, reference)) < 0.02, parts  # 1/√10⁵ ≈ 0.003


def test_stream_key_broadcasts_tensor_parts() -> None:
    a, b = torch.arange(3)[:, None], torch.tensor([0, 5])
    keys = noise.stream_key(1, a, 2, b)
    assert keys.shape == (3, 2, 2)
    for i, j in itertools.product(range(3), range(2)):
        assert torch.equal(keys[i, j], noise.stream_key(1, i, 2, int(b[j])))
    assert torch.equal(noise.stream_key(torch.tensor(4), 1), noise.stream_key(4, 1))  # 0-d tensors are ints
    assert int(keys.min()) >= 0 and int(keys.max()) <= MASK32


def test_negative_parts_raise() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        noise.stream_key(-1, 2)
    with pytest.raises(ValueError, match="non-negative"):
        noise.stream_key(1, torch.tensor([0, 3, -2]))


# --- the integer hash ---------------------------------------------------------------------------------


def _python_lowbias32(x: int) -> int:
    x &= MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def test_mul32_is_exact_modular_multiplication() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [torch.tensor([0, 1, 0xFFFF, 0x10000, MASK32 - 1, MASK32]), torch.randint(0, 2**32, (4096,), generator=g)]
    )
    constants = [
        0x7FEB352D,
        0x846CA68B,
        0xFFFFFFFF,
        0x10001,
        1,
        0,
        *torch.randint(0, 2**32, (8,), generator=g).tolist(),
    ]
    for c in constants:
        out = noise._mul32(x, c)
        assert out.dtype == torch.int64
        assert out.tolist() == [(v * c) % 2**32 for v in x.tolist()], hex(c)


def test_lowbias32_stays_in_32_bits_and_matches_python_ints() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.cat(
        [
            torch.tensor([0, 1, 2, 0xFFFF, MASK32, 2**32, 2**62 - 1, 2**63 - 1]),
            torch.randint(0, 2**32, (4096,), generator=g),
            torch.randint(0, 2**62, (1024,), generator=g),
        ]
    )
    out = noise.lowbias32(x)
    assert int(out.min()) >= 0 and int(out.max()) < 2**32
    assert out.tolist() == [_python_lowbias32(v) for v in x.tolist()]
    # a bijection of 32-bit words: no two of 10⁵ distinct inputs collide
    words = torch.randperm(100_000, generator=g) * 40_000 + 12_345
    assert torch.unique(noise.lowbias32(words)).numel() == 100_000


def test_stream_key_words_are_32_bit() -> None:
    parts = torch.randint(0, 2**62, (3, 1000), generator=torch.Generator().manual_seed(2))
    keys = noise.stream_key(*parts)
    assert int(keys.min()) >= 0 and int(keys.max()) <= MASK32
    assert len({tuple(k) for k in keys.tolist()}) == 1000


def test_distinct_keys_never_share_a_cpu_stream() -> None:
    """Two keys found by a birthday search over stream_key(0, PURPOSE_STEP, 0, i), i < 300 000, whose words agree in
    the low 32 bits of a 63-bit seed: a generator that keeps only 32 bits of its seed (torch's CPU one) gives both
    the same stream; the streams must differ."""
    keys = noise.stream_key(0, noise.PURPOSE_STEP, 0, torch.tensor([263_518, 299_245]))
    assert not torch.equal(keys[0], keys[1])
    first, second = noise.normal(keys, (16,))
    assert not torch.equal(first, second)
