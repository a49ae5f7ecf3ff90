"""EgoAllo's denoiser: a conditional transformer that predicts the clean motion x₀ (reference/egoallo.md §4).

Module and parameter names and shapes are EgoAllo's, so a released state dict loads strictly:

    encoders.<modality>.{0,2,4}      per-modality MLPs (in → d → d → d, activation between), summed per frame
    decoders.<modality>.{0,1,3,5}    Linear, LayerNorm, act, Linear, act, Linear (d → modality width)
    latent_from_cond                 Linear d_cond → d (the Fourier-encoded CPF conditioning)
    noise_emb                        Embedding max_t × d_noise_emb, row t − 1 for noise level t
    noise_emb_token_proj             Linear d_noise_emb → d, no bias: a token prepended to both sequences
    encoder_layers.{i}               post-LN self-attention blocks over the conditioning
    decoder_layers.{i}               post-LN self-attention, cross-attention (kv from the encoder), MLP

Attention uses rotary position embeddings (interleaved pairs) on q and k, positions 0..T with the noise
token at 0, and `scaled_dot_product_attention`'s default 1/√d_head scale.

Masks follow EgoAllo exactly, quirk included: self-attention ignores the mask (EgoAllo computes a
masked attention and then overwrites it with an unmasked one); only cross-attention (and the loss)
use it. With full-length crops or mask=None, as EgoAllo trains and samples, this makes no difference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn

from egogrpo.config import DenoiserConfig, SamplerConfig
from egogrpo.errors import EgogrpoError
from egogrpo.model.conditioning import check_conditioning_config, d_cond
from egogrpo.model.state import packed_dim, state_layout

ROPE_THETA = 10000.0


def check_denoiser_config(config: DenoiserConfig) -> None:
    """EgogrpoError naming the field when the config asks for something this implementation does not do."""
    check_conditioning_config(config)
    supported = {
        "activation": ("gelu", "relu"),
        "positional_encoding": ("rope",),
        "noise_conditioning": ("token",),
        "xattn_mode": ("kv_from_cond_q_from_x",),
    }
    for name, options in supported.items():
        value = getattr(config, name)
        if value not in options:
            raise EgogrpoError(
                f"DenoiserConfig.{name}={value!r} is not supported (supported: {', '.join(map(repr, options))})"
            )
    if config.dropout_p != 0.0:
        raise EgogrpoError(f"DenoiserConfig.dropout_p={config.dropout_p} is not supported: only 0 (EgoAllo's value)")
    for name in ("max_t", "d_latent", "d_feedforward", "d_noise_emb", "num_heads", "num_betas"):
        if getattr(config, name) < 1:
            raise EgogrpoError(f"DenoiserConfig.{name} must be ≥ 1, got {getattr(config, name)}")
    for name in ("encoder_layers", "decoder_layers"):
        if getattr(config, name) < 0:
            raise EgogrpoError(f"DenoiserConfig.{name} must be ≥ 0, got {getattr(config, name)}")
    if config.d_latent % config.num_heads or (config.d_latent // config.num_heads) % 2:
        raise EgogrpoError(
            f"DenoiserConfig.d_latent={config.d_latent} must split into num_heads={config.num_heads} heads "
            "of even width (rotary embeddings rotate pairs)"
        )


def _activation(name: str) -> nn.Module:
    """nn.GELU() (exact, not the tanh approximation) or nn.ReLU()."""
    return nn.GELU() if name == "gelu" else nn.ReLU()


class RotaryEmbedding(nn.Module):
    """Rotary position embedding on interleaved pairs (x_{2i}, x_{2i+1}), frequencies 1/θ^(2i/d).

    `freqs` is a (frozen) parameter because EgoAllo's checkpoints store it. The cos/sin tables are cached per
    (length, offset, device, dtype) and rebuilt when `freqs` changes (e.g. a loaded state dict); a cached
    rotation is bit for bit the uncached one.
    """

    MAX_CACHED = 16  # tables kept (one per length/offset/device/dtype in use)
    cache_tables = True  # False recomputes them every call (benchmarks measure what the cache buys)

    def __init__(self, dim: int, theta: float = ROPE_THETA) -> None:
        super().__init__()
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
        self.freqs = nn.Parameter(freqs, requires_grad=False)
        self._tables: dict[tuple, tuple[Tensor, Tensor]] = {}

    def tables(
        self, length: int, offset: int, device: torch.device, dtype: torch.dtype
    ) -> tuple[Float[Tensor, "N d"], Float[Tensor, "N d"]]:
        """cos(n·f) and the signed sin (−sin, +sin per pair) of positions n = offset … offset+length−1, in `dtype`."""
        if torch.compiler.is_compiling() or not self.cache_tables:  # traced: the compiler folds them into the graph
            return self._make_tables(length, offset, device, dtype)
        key = (length, offset, device, dtype, self.freqs.device, self.freqs._version, self.freqs.data_ptr())
        cached = self._tables.get(key)
        if cached is None:
            with torch.no_grad(), torch.inference_mode(False):  # plain tensors, usable under autograd later
                cached = self._make_tables(length, offset, device, dtype)
            if len(self._tables) >= self.MAX_CACHED:
                self._tables.clear()
            self._tables[key] = cached
        return cached

    def _make_tables(self, length: int, offset: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        angle_dtype = torch.promote_types(self.freqs.dtype, torch.float32)  # angles never in half precision
        positions = torch.arange(length, device=device, dtype=angle_dtype) + offset
        angles = positions[:, None] * self.freqs.detach().to(device=device, dtype=angle_dtype)  # (N, d/2)
        cos = angles.cos().to(dtype).repeat_interleave(2, dim=-1)  # f0 f0 f1 f1 …
        sin = angles.sin().to(dtype)
        return cos, torch.stack((-sin, sin), dim=-1).flatten(-2)  # signed sin: −s0 s0 −s1 s1 …

    def rotate(self, x: Float[Tensor, "*batch N d"], offset: int = 0) -> Float[Tensor, "*batch N d"]:
        """Rotate the pair i of position n (= offset + index along N) by the angle n · freqs[i]."""
        cos, signed_sin = self.tables(x.shape[-2], offset, x.device, x.dtype)
        swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)  # x1 x0 x3 x2 …
        return x * cos + swapped * signed_sin


class TransformerBlock(nn.Module):
    """Post-LayerNorm block: x = LN(x + SelfAttn(x)); [x = LN(x + CrossAttn(x, memory))]; x = LN(x + MLP(x))."""

    def __init__(self, d_latent: int, d_feedforward: int, num_heads: int, activation: str, cross_attention: bool):
        super().__init__()
        self.num_heads = num_heads
        self.cross_attention = cross_attention
        self.sattn_qkv_proj = nn.Linear(d_latent, 3 * d_latent, bias=False)  # [q | k | v]
        self.sattn_out_proj = nn.Linear(d_latent, d_latent, bias=False)
        self.layernorm1 = nn.LayerNorm(d_latent)
        self.layernorm2 = nn.LayerNorm(d_latent)
        self.rotary_emb = RotaryEmbedding(d_latent // num_heads)
        if cross_attention:
            self.xattn_kv_proj = nn.Linear(d_latent, 2 * d_latent, bias=False)  # [k | v]
            self.xattn_q_proj = nn.Linear(d_latent, d_latent, bias=False)
            self.xattn_layernorm = nn.LayerNorm(d_latent)
            self.xattn_out_proj = nn.Linear(d_latent, d_latent, bias=False)
        self.mlp0 = nn.Linear(d_latent, d_feedforward)
        self.mlp1 = nn.Linear(d_feedforward, d_latent)
        self.activation = _activation(activation)

    def _split_heads(self, x: Float[Tensor, "B N H*dh"]) -> Float[Tensor, "B H N dh"]:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(-3, -2)

    def _attend(
        self,
        q: Float[Tensor, "B N H*dh"],
        k: Float[Tensor, "B N H*dh"],
        v: Float[Tensor, "B N H*dh"],
        key_mask: Bool[Tensor, "B N"] | None,
    ) -> Float[Tensor, "B N H*dh"]:
        """Multi-head attention with rotary positions 0..N−1 on q and k; masked keys are not attended to."""
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        q, k = self.rotary_emb.rotate(q), self.rotary_emb.rotate(k)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return out.transpose(-3, -2).flatten(-2)

    def forward(
        self,
        x: Float[Tensor, "B N d"],
        memory: Float[Tensor, "B N d"] | None = None,
        key_mask: Bool[Tensor, "B N"] | None = None,
    ) -> Float[Tensor, "B N d"]:
        """One block; `memory` (the encoder output) is needed by cross-attention blocks only."""
        q, k, v = self.sattn_qkv_proj(x).chunk(3, dim=-1)
        x = self.layernorm1(x + self.sattn_out_proj(self._attend(q, k, v, key_mask=None)))  # mask ignored (EgoAllo)
        if self.cross_attention:
            if memory is None:
                raise ValueError("a cross-attention block needs the encoder output")
            k, v = self.xattn_kv_proj(memory).chunk(2, dim=-1)
            attended = self._attend(self.xattn_q_proj(x), k, v, key_mask=key_mask)
            x = self.xattn_layernorm(x + self.xattn_out_proj(attended))
        return self.layernorm2(x + self.mlp1(self.activation(self.mlp0(x))))


class EgoDenoiser(nn.Module):
    """x̂₀ = f(x_t, t, cond): EgoAllo's network, for any `DenoiserConfig` it supports (see `check_denoiser_config`)."""

    def __init__(self, config: DenoiserConfig) -> None:
        super().__init__()
        check_denoiser_config(config)
        self.config = config
        self.layout = state_layout(config.num_betas, config.include_hands)  # (modality, width), packing order
        self.d_state = packed_dim(config.num_betas, config.include_hands)
        self.d_cond = d_cond(config)
        d = config.d_latent

        def act() -> nn.Module:
            return _activation(config.activation)

        self.encoders = nn.ModuleDict(
            {
                name: nn.Sequential(nn.Linear(width, d), act(), nn.Linear(d, d), act(), nn.Linear(d, d))
                for name, width in self.layout
            }
        )
        self.decoders = nn.ModuleDict(
            {
                name: nn.Sequential(
                    nn.Linear(d, d), nn.LayerNorm(d), act(), nn.Linear(d, d), act(), nn.Linear(d, width)
                )
                for name, width in self.layout
            }
        )
        self.latent_from_cond = nn.Linear(self.d_cond, d)
        self.noise_emb = nn.Embedding(config.max_t, config.d_noise_emb)
        self.noise_emb_token_proj = nn.Linear(config.d_noise_emb, d, bias=False)
        self.encoder_layers = nn.ModuleList(
            TransformerBlock(d, config.d_feedforward, config.num_heads, config.activation, cross_attention=False)
            for _ in range(config.encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            TransformerBlock(d, config.d_feedforward, config.num_heads, config.activation, cross_attention=True)
            for _ in range(config.decoder_layers)
        )

    def num_parameters(self) -> int:
        """Every parameter, the frozen rotary frequencies included (as EgoAllo's state dict)."""
        return sum(p.numel() for p in self.parameters())

    def forward(
        self,
        x_t: Float[Tensor, "B T D"],
        t: Int[Tensor, "B"],  # noqa: F821
        cond: Float[Tensor, "B T d_cond"],
        mask: Bool[Tensor, "B T"] | None = None,
    ) -> Float[Tensor, "B T D"]:
        """Predict the clean packed state x₀ from the noisy one (no SVD projection: see `MotionState.unpack`).

        t: integer noise levels in 1..max_t (a 0-d tensor is used for the whole batch).
        mask: valid frames; used by cross-attention only (EgoAllo's behaviour, see the module docstring).
        """
        batch, frames, width = x_t.shape
        if width != self.d_state:
            raise ValueError(f"x_t has width {width}, this denoiser's packed state has {self.d_state}")
        if cond.shape != (batch, frames, self.d_cond):
            raise ValueError(f"cond has shape {tuple(cond.shape)}, expected {(batch, frames, self.d_cond)}")
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t has shape {tuple(t.shape)}, expected ({batch},)")

        chunks = torch.split(x_t, [w for _, w in self.layout], dim=-1)
        tokens = sum(self.encoders[name](chunk) for (name, _), chunk in zip(self.layout, chunks, strict=True))
        noise_token = self.noise_emb_token_proj(self.noise_emb(t - 1))[:, None, :]  # (B, 1, d)
        key_mask = None if mask is None else torch.cat((mask.new_ones(batch, 1), mask.bool()), dim=1)

        memory = torch.cat((noise_token, self.latent_from_cond(cond)), dim=1)  # (B, T+1, d)
        for layer in self.encoder_layers:
            memory = layer(memory)
        x = torch.cat((noise_token, tokens), dim=1)  # (B, T+1, d)
        for layer in self.decoder_layers:
            x = layer(x, memory=memory, key_mask=key_mask)
        x = x[:, 1:, :]  # drop the noise token
        return torch.cat([self.decoders[name](x) for name, _ in self.layout], dim=-1)


def sampling_denoiser(
    model: nn.Module, config: SamplerConfig
) -> Callable[[Float[Tensor, "N W D"], Int[Tensor, "N"], Float[Tensor, "N W C"]], Float[Tensor, "N W D"]]:  # noqa: F821
    """The sampler's `denoise_fn` for `model`: compiled (`config.compile`) and under bf16 autocast on the input's
    device (`config.autocast`), returning float32.

    For rollouts, evaluation and recovery only: log-probabilities (`DiffusionPolicy.log_prob_and_mean`) must be
    computed with the plain model, float32 with autocast off.
    """
    forward = torch.compile(model) if config.compile else model

    def denoise(x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        with torch.autocast(x_t.device.type, dtype=torch.bfloat16, enabled=config.autocast):
            return forward(x_t, t, cond).float()

    return denoise


def condition_encoder(model: nn.Module) -> nn.Module:
    """The denoiser's condition encoder: `latent_from_cond`, the linear map of the per-frame head features into
    the latent (EgoAllo's name; the module the MotionGRPO first author's script freezes)."""
    encoder = getattr(model, "latent_from_cond", None)
    if not isinstance(encoder, nn.Module):
        raise EgogrpoError(f"{type(model).__name__} has no condition encoder (latent_from_cond)")
    return encoder
