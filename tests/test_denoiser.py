"""The denoiser: size and names of the EgoAllo preset, and the forward pass against a float64 numpy re-implementation."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from egogrpo.config import DENOISER_PRESETS, DenoiserConfig
from egogrpo.errors import EgogrpoError
from egogrpo.model.denoiser import EgoDenoiser, RotaryEmbedding

#: A tiny model with every modality (hands too) and two layers of each kind.
TINY = DenoiserConfig(
    d_latent=16, d_feedforward=32, d_noise_emb=8, num_heads=2, encoder_layers=2, decoder_layers=2, max_t=50
)

#: The rotary frequencies are computed and stored in float32 (as EgoAllo's); the numpy reference uses exact
#: float64 ones, so angles differ by ~1e-7 relative and outputs by ~1e-9.
ATOL = 1e-8


def _tiny_model(seed: int = 0, config: DenoiserConfig = TINY) -> EgoDenoiser:
    """float64, every weight (LayerNorms included) random, so that no part of a block is trivial."""
    torch.manual_seed(seed)
    model = EgoDenoiser(config).double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("rotary_emb.freqs"):
                p.copy_(0.3 * torch.randn_like(p) + (1.0 if name.endswith("norm1.weight") else 0.0))
    return model


def _inputs(model: EgoDenoiser, batch: int = 2, frames: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, frames, model.d_state, generator=g, dtype=torch.float64)
    t = torch.randint(1, model.config.max_t + 1, (batch,), generator=g)
    cond = torch.randn(batch, frames, model.d_cond, generator=g, dtype=torch.float64)
    return x, t, cond


# --- an independent numpy implementation -----------------------------------------------------------


def _np(module_params: dict[str, torch.Tensor], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix) :]: v.detach().numpy() for k, v in module_params.items() if k.startswith(prefix)}


def np_layernorm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * w + b


def np_gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def np_rope(x: np.ndarray) -> np.ndarray:
    """x (N, dh): the pair (2i, 2i+1) at position n turns by n / 10000^(2i/dh)."""
    out = x.copy()
    dh = x.shape[-1]
    for n in range(x.shape[0]):
        for i in range(dh // 2):
            angle = n / 10000.0 ** (2 * i / dh)
            a, b = x[n, 2 * i], x[n, 2 * i + 1]
            out[n, 2 * i] = a * math.cos(angle) - b * math.sin(angle)
            out[n, 2 * i + 1] = a * math.sin(angle) + b * math.cos(angle)
    return out


def np_attention(xq, xkv, Wq, Wk, Wv, Wo, heads, key_mask=None):
    """Multi-head attention for one sequence, rotary on q and k, masked keys excluded."""
    q, k, v = xq @ Wq.T, xkv @ Wk.T, xkv @ Wv.T
    dh = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        cols = slice(h * dh, (h + 1) * dh)
        scores = np_rope(q[:, cols]) @ np_rope(k[:, cols]).T / math.sqrt(dh)
        if key_mask is not None:
            scores = np.where(key_mask[None, :], scores, -np.inf)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        outs.append(weights @ v[:, cols])
    return np.concatenate(outs, -1) @ Wo.T


def np_block(p: dict[str, np.ndarray], x, heads, memory=None, key_mask=None):
    """Post-LN block; self-attention ignores the mask (EgoAllo), cross-attention uses it."""
    d = x.shape[-1]
    Wqkv = p["sattn_qkv_proj.weight"]
    attn = np_attention(x, x, Wqkv[:d], Wqkv[d : 2 * d], Wqkv[2 * d :], p["sattn_out_proj.weight"], heads)
    x = np_layernorm(x + attn, p["layernorm1.weight"], p["layernorm1.bias"])
    if memory is not None:
        Wkv = p["xattn_kv_proj.weight"]
        attn = np_attention(
            x, memory, p["xattn_q_proj.weight"], Wkv[:d], Wkv[d:], p["xattn_out_proj.weight"], heads, key_mask
        )
        x = np_layernorm(x + attn, p["xattn_layernorm.weight"], p["xattn_layernorm.bias"])
    hidden = np_gelu(x @ p["mlp0.weight"].T + p["mlp0.bias"])
    return np_layernorm(x + hidden @ p["mlp1.weight"].T + p["mlp1.bias"], p["layernorm2.weight"], p["layernorm2.bias"])


def np_linear(p, name, x):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def np_denoiser(model: EgoDenoiser, x, t, cond, mask=None) -> np.ndarray:
    """The whole network for one sequence, from its state dict and the written description."""
    sd = dict(model.state_dict())
    widths = {"betas": 16, "body_rotmats": 189, "contacts": 21, "hand_rotmats": 270}
    heads = model.config.num_heads
    start, tokens = 0, 0.0
    for name, width in widths.items():
        p = _np(sd, f"encoders.{name}.")
        h = np_gelu(np_linear(p, "0", x[:, start : start + width]))
        tokens = tokens + np_linear(p, "4", np_gelu(np_linear(p, "2", h)))
        start += width
    noise = sd["noise_emb.weight"].numpy()[t - 1] @ sd["noise_emb_token_proj.weight"].numpy().T
    key_mask = None if mask is None else np.concatenate([[True], mask])
    memory = np.concatenate([noise[None], np_linear(_np(sd, ""), "latent_from_cond", cond)])
    for i in range(model.config.encoder_layers):
        memory = np_block(_np(sd, f"encoder_layers.{i}."), memory, heads)
    h = np.concatenate([noise[None], tokens])
    for i in range(model.config.decoder_layers):
        h = np_block(_np(sd, f"decoder_layers.{i}."), h, heads, memory, key_mask)
    h = h[1:]
    outs = []
    for name in widths:
        p = _np(sd, f"decoders.{name}.")
        y = np_gelu(np_layernorm(np_linear(p, "0", h), p["1.weight"], p["1.bias"]))
        outs.append(np_linear(p, "5", np_gelu(np_linear(p, "3", y))))
    return np.concatenate(outs, -1)


# --- tests ----------------------------------------------------------------------------------------


def test_egoallo_preset_size_and_names() -> None:
    model = EgoDenoiser(DENOISER_PRESETS["egoallo"])
    assert model.num_parameters() == 50_447_088  # ≈ 50.45 M, as EgoAllo
    assert model.d_state == 496 and model.d_cond == 154
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["latent_from_cond.weight"] == (512, 154)
    assert shapes["noise_emb.weight"] == (1000, 1024)
    assert shapes["noise_emb_token_proj.weight"] == (512, 1024) and "noise_emb_token_proj.bias" not in shapes
    assert shapes["encoder_layers.5.sattn_qkv_proj.weight"] == (1536, 512)
    assert shapes["decoder_layers.5.xattn_kv_proj.weight"] == (1024, 512)
    assert shapes["decoder_layers.0.rotary_emb.freqs"] == (64,)
    assert shapes["encoder_layers.0.mlp0.weight"] == (2048, 512)
    assert shapes["decoders.hand_rotmats.5.weight"] == (270, 512) and shapes["decoders.betas.1.weight"] == (512,)
    assert "encoder_layers.0.xattn_q_proj.weight" not in shapes and "encoder_layers.6.mlp0.bias" not in shapes


def test_forward_shape_and_determinism() -> None:
    model = _tiny_model()
    x, t, cond = _inputs(model)
    out = model(x, t, cond)
    assert out.shape == x.shape == (2, 6, 496)
    assert torch.equal(out, model(x, t, cond))
    assert torch.equal(out, _tiny_model()(x, t, cond))
    assert not torch.allclose(out, model(x, t % model.config.max_t + 1, cond))  # the noise level matters


def test_forward_matches_numpy_reimplementation() -> None:
    model = _tiny_model()
    x, t, cond = _inputs(model, batch=2, frames=5)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = model(x, t, cond, mask)
    for b in range(2):
        expected = np_denoiser(model, x[b].numpy(), int(t[b]), cond[b].numpy(), mask[b].numpy())
        np.testing.assert_allclose(out[b].detach().numpy(), expected, atol=ATOL, rtol=0)


def test_one_block_against_numpy() -> None:
    model = _tiny_model(seed=3)
    block = model.decoder_layers[1]
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 7, 16, generator=g, dtype=torch.float64)
    memory = torch.randn(1, 7, 16, generator=g, dtype=torch.float64)
    key_mask = torch.tensor([[True, True, False, True, True, False, True]])
    out = block(x, memory=memory, key_mask=key_mask)[0].detach().numpy()
    params = _np(dict(block.state_dict()), "")
    expected = np_block(params, x[0].numpy(), 2, memory[0].numpy(), key_mask[0].numpy())
    np.testing.assert_allclose(out, expected, atol=ATOL, rtol=0)


def test_masks_reach_cross_attention_only() -> None:
    no_decoder = _tiny_model(config=dataclasses.replace(TINY, decoder_layers=0))
    x, t, cond = _inputs(no_decoder)
    mask = torch.tensor([[True, True, False, False, True, True]] * 2)
    assert torch.equal(no_decoder(x, t, cond, mask), no_decoder(x, t, cond))  # self-attention ignores it
    model = _tiny_model()
    assert torch.equal(model(x, t, cond, torch.ones(2, 6, dtype=torch.bool)), model(x, t, cond))
    assert not torch.allclose(model(x, t, cond, mask), model(x, t, cond))


def test_rotary_embedding() -> None:
    rope = RotaryEmbedding(8).double()
    torch.testing.assert_close(rope.freqs, torch.tensor([1.0, 10000**-0.25, 10000**-0.5, 10000**-0.75]).double())
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 9, 8, generator=g, dtype=torch.float64)
    k = torch.randn(2, 9, 8, generator=g, dtype=torch.float64)
    # Rotations: norms kept; position 0 untouched; scores depend on relative positions only.
    torch.testing.assert_close(rope.rotate(q).norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(rope.rotate(q)[:, 0], q[:, 0])
    scores = rope.rotate(q) @ rope.rotate(k).transpose(-1, -2)
    for shift in (1, 5, 37):
        shifted = rope.rotate(q, offset=shift) @ rope.rotate(k, offset=shift).transpose(-1, -2)
        torch.testing.assert_close(shifted, scores, atol=1e-10, rtol=0)
    # Offsets are positions: rotating at offset s equals rotating a longer sequence and keeping positions s…
    longer = torch.cat((torch.zeros(2, 3, 8, dtype=torch.float64), q), dim=1)
    torch.testing.assert_close(rope.rotate(q, offset=3), rope.rotate(longer)[:, 3:])
    np.testing.assert_allclose(rope.rotate(q)[0].numpy(), np_rope(q[0].numpy()), atol=ATOL)


def _uncached_rotate(freqs: torch.Tensor, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """The rotation as written before the tables were cached (angles in float32 or wider, then cast to x)."""
    dtype = torch.promote_types(freqs.dtype, torch.float32)
    positions = torch.arange(x.shape[-2], device=x.device, dtype=dtype) + offset
    angles = (positions[:, None] * freqs.to(dtype)).repeat_interleave(2, dim=-1)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    first, second = x.unflatten(-1, (-1, 2)).unbind(-1)
    return x * cos + torch.stack((-second, first), dim=-1).flatten(-2) * sin


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_cached_rotary_tables_are_bit_identical_to_uncached(dtype: torch.dtype) -> None:
    rope = RotaryEmbedding(16)
    g = torch.Generator().manual_seed(8)
    for frames, offset in ((129, 0), (7, 0), (129, 0), (7, 3)):  # repeated lengths hit the cache
        x = torch.randn(2, 4, frames, 16, generator=g).to(dtype)
        assert torch.equal(rope.rotate(x, offset), _uncached_rotate(rope.freqs, x, offset))
    assert len(rope._tables) == 3
    # New frequencies (a loaded state dict) invalidate the tables.
    rope.load_state_dict({"freqs": 2.0 * rope.freqs.detach()})
    x = torch.randn(1, 5, 16, generator=g).to(dtype)
    assert torch.equal(rope.rotate(x), _uncached_rotate(rope.freqs, x))


def test_rotary_tables_made_in_inference_mode_serve_training() -> None:
    model = _tiny_model().float()
    x, t, cond = (v.float() if v.is_floating_point() else v for v in _inputs(model))
    with torch.inference_mode():
        expected = model(x, t, cond)
    out = model(x, t, cond)  # the cached tables are ordinary tensors: backward works
    out.square().sum().backward()
    assert torch.equal(out.detach(), expected)


def test_gradients_reach_every_trainable_parameter() -> None:
    model = _tiny_model().float()
    x, t, cond = _inputs(model)
    model(x.float(), t, cond.float()).square().mean().backward()
    for name, p in model.named_parameters():
        if name.endswith("rotary_emb.freqs"):
            assert not p.requires_grad and p.grad is None
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("activation", "swish"),
        ("positional_encoding", "transformer"),
        ("noise_conditioning", "film"),
        ("xattn_mode", "kv_from_x_q_from_cond"),
        ("dropout_p", 0.1),
        ("cond_param", "absrel"),
        ("num_heads", 3),
    ],
)
def test_refuses_unsupported_settings(field: str, value: object) -> None:
    with pytest.raises(EgogrpoError, match=field) as error:
        EgoDenoiser(dataclasses.replace(TINY, **{field: value}))
    assert "\n" not in str(error.value)


def test_relu_activation_is_supported() -> None:
    model = EgoDenoiser(dataclasses.replace(TINY, activation="relu"))
    assert isinstance(model.encoders["betas"][1], torch.nn.ReLU)
