"""The trajectory-conditioned perceptual model (MotionGRPO §3.4.1, Appendix C): a plausibility score s ∈ (0, 1)
of a body motion given the head (CPF) trajectory it should follow.

Inputs per frame t of T:

    body  (T, 21, 7)  per non-root body joint: its local rotation as a wxyz quaternion (w ≥ 0) and its
                      position, canonical (below)
    head  (T, 12)     the CPF position (3), canonical, and its rotation Rz(−ψ₀)·R_world_cpf(t) row-major (9)

Canonical positions are Rz(−ψ₀)·(p − p₀), p₀ the CPF's first-frame position and ψ₀ its first-frame heading
(`yaw_of_forward_axis`, as the prior's condition removes yaw): moving the whole scene or turning it about the
vertical leaves the score unchanged. Network: keypoint-wise linear embeddings of the body (one 7 → d map per
joint) and a frame-wise linear embedding of the head, plus a sinusoidal frame encoding; cross-attention from
every body token to the head tokens fuses the two; `num_blocks` blocks of MLP, spatial attention (over the 21
joints of a frame) and temporal attention (over the T frames of a joint), each pre-norm and residual; mean
pooling, an MLP head, a sigmoid.

Checkpoint: a folder with model.safetensors and config.json (the `PerceptualConfig` fields plus format
"egogrpo-perceptual/1", egogrpo_version, weights_sha256, extra), written atomically, weights first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from safetensors.torch import save_file
from torch import Tensor, nn

from egogrpo import __version__
from egogrpo.body import BodyModel
from egogrpo.config import PerceptualConfig, config_from_dict, config_to_dict
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import atomic_output, one_line, sha256_of_file
from egogrpo.geometry import quat_from_matrix, quat_to_matrix, rotation_about_z, yaw_of_forward_axis
from egogrpo.model.checkpoint import body_model_matches, read_checkpoint_meta, read_safetensors, resolve_checkpoint
from egogrpo.model.placement import place_on_cpf
from egogrpo.model.state import MotionState

FORMAT = "egogrpo-perceptual/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
NUM_JOINTS = 21  # non-root body joints
BODY_FEATURES = 7  # quaternion (4) + position (3)
HEAD_FEATURES = 12  # position (3) + yaw-free rotation (9)


# --- inputs -------------------------------------------------------------------------------------------


def canonical_inputs(
    body_quats: Float[Tensor, "*batch T 21 4"],
    joints: Float[Tensor, "*batch T 21 3"],
    T_world_cpf: Float[Tensor, "*batch T 7"],
) -> tuple[Float[Tensor, "*batch T 21 7"], Float[Tensor, "*batch T 12"]]:
    """Body and head features, positions relative to the first-frame CPF with its heading removed.

    body_quats: local rotations of the 21 non-root joints (wxyz); joints: their world positions (metres);
    T_world_cpf: the CPF poses (wxyz_xyz) in the same z-up world frame.
    """
    R_world_cpf = quat_to_matrix(T_world_cpf[..., :4])  # (..., T, 3, 3)
    R_canon = rotation_about_z(-yaw_of_forward_axis(R_world_cpf[..., 0, :, :]))  # (..., 3, 3)
    origin = T_world_cpf[..., 0, 4:]  # (..., 3)

    def canon(p: Tensor, extra: int) -> Tensor:  # p (..., T, [J,] 3)
        R = R_canon.reshape(*R_canon.shape[:-2], *([1] * extra), 3, 3)
        o = origin.reshape(*origin.shape[:-1], *([1] * extra), 3)
        return (R @ (p - o)[..., None])[..., 0]

    quats = torch.where(body_quats[..., :1] < 0, -body_quats, body_quats)  # q and −q: one rotation
    body = torch.cat((quats, canon(joints, 2)), dim=-1)
    head_rotation = (R_canon[..., None, :, :] @ R_world_cpf).flatten(-2)
    head = torch.cat((canon(T_world_cpf[..., 4:], 1), head_rotation), dim=-1)
    return body, head


def state_inputs(
    body: BodyModel, state: MotionState, T_world_cpf: Float[Tensor, "*batch T 7"]
) -> tuple[Float[Tensor, "*batch T 21 4"], Float[Tensor, "*batch T 21 3"]]:
    """A state's local quaternions and world positions of its 21 non-root joints, placed on `T_world_cpf`.

    `state` holds proper rotations (unpacked with projection); `body` on the state's device and dtype.
    """
    posed = place_on_cpf(body, state, T_world_cpf)
    return quat_from_matrix(state.body_rotmats), posed.joints[..., 1:22, :]


# --- the network ----------------------------------------------------------------------------------


def frame_encoding(T: int, d: int, device: torch.device) -> Float[Tensor, "T d"]:
    """Sinusoidal encoding of frame indices 0 … T−1 (sin in even, cos in odd channels)."""
    position = torch.arange(T, dtype=torch.float32, device=device)[:, None]
    rates = torch.exp(torch.arange(0, d, 2, dtype=torch.float32, device=device) * (-math.log(10_000.0) / d))
    encoding = torch.zeros(T, d, device=device)
    encoding[:, 0::2] = torch.sin(position * rates)
    encoding[:, 1::2] = torch.cos(position * rates[: d // 2])
    return encoding


def attention(mha: nn.MultiheadAttention, x: Float[Tensor, "S Lq d"], context: Tensor | None = None) -> Tensor:
    """`mha(x, c, c)` (batch-first, no mask, no dropout) with c = context or x: the module's own parameters in
    fused projections and one `scaled_dot_product_attention`, without `nn.MultiheadAttention`'s layout copies
    (the same numbers to float32 rounding, faster on CPUs). Shapes (S, Lq, d) → (S, Lq, d)."""
    d, h = mha.embed_dim, mha.num_heads
    weight, bias = mha.in_proj_weight, mha.in_proj_bias
    if context is None:
        q, k, v = F.linear(x, weight, bias).unflatten(-1, (3, h, d // h)).permute(2, 0, 3, 1, 4).unbind(0)
    else:
        q = F.linear(x, weight[:d], bias[:d]).unflatten(-1, (h, d // h)).transpose(1, 2)
        kv = F.linear(context, weight[d:], bias[d:]).unflatten(-1, (2, h, d // h))
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)
    return mha.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(-2))


class _Block(nn.Module):
    """MLP, spatial attention over joints, temporal attention over frames; each pre-norm and residual."""

    def __init__(self, c: PerceptualConfig) -> None:
        super().__init__()
        d = c.d_model
        self.mlp_norm, self.spatial_norm, self.temporal_norm = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, c.d_feedforward), nn.GELU(), nn.Linear(c.d_feedforward, d))
        self.spatial = nn.MultiheadAttention(d, c.num_heads, batch_first=True)
        self.temporal = nn.MultiheadAttention(d, c.num_heads, batch_first=True)

    def forward(self, x: Float[Tensor, "N T J d"]) -> Float[Tensor, "N T J d"]:
        N, T, J, d = x.shape
        x = x + self.mlp(self.mlp_norm(x))
        x = x + attention(self.spatial, self.spatial_norm(x).reshape(N * T, J, d)).reshape(N, T, J, d)
        y = self.temporal_norm(x).transpose(1, 2).reshape(N * J, T, d)
        return x + attention(self.temporal, y).reshape(N, J, T, d).transpose(1, 2)


class PerceptualModel(nn.Module):
    """φ(J | H): the plausibility logit of canonical body features given head features (module docstring)."""

    def __init__(self, config: PerceptualConfig) -> None:
        super().__init__()
        check_perceptual_config(config)
        self.config = config
        d = config.d_model
        self.joint_weight = nn.Parameter(torch.randn(NUM_JOINTS, BODY_FEATURES, d) / math.sqrt(BODY_FEATURES))
        self.joint_bias = nn.Parameter(torch.zeros(NUM_JOINTS, d))
        self.head_embed = nn.Linear(HEAD_FEATURES, d)
        self.body_norm, self.head_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fuse = nn.MultiheadAttention(d, config.num_heads, batch_first=True)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.num_blocks))
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))

    def forward(self, body: Float[Tensor, "N T 21 7"], head: Float[Tensor, "N T 12"]) -> Float[Tensor, "N"]:  # noqa: F821
        """Logits (N,); the score is their sigmoid."""
        N, T, J, _ = body.shape
        frames = frame_encoding(T, self.config.d_model, body.device)
        x = torch.einsum("ntjf,jfd->ntjd", body, self.joint_weight) + self.joint_bias + frames[:, None, :]
        h = self.head_norm(self.head_embed(head) + frames)  # (N, T, d)
        tokens = x.reshape(N, T * J, -1)
        tokens = tokens + attention(self.fuse, self.body_norm(tokens), h)
        x = tokens.reshape(N, T, J, -1)
        for block in self.blocks:
            x = block(x)
        return self.out(x.mean(dim=(1, 2)))[:, 0]


def check_perceptual_config(config: PerceptualConfig) -> None:
    """EgogrpoError unless the sizes describe a buildable model."""
    for name in ("d_model", "num_blocks", "num_heads", "d_feedforward"):
        value = getattr(config, name)
        if type(value) is not int or value < 1:
            raise EgogrpoError(f"PerceptualConfig.{name} must be a whole number ≥ 1, got {value!r}")
    if config.d_model % config.num_heads or config.d_model % 2:
        raise EgogrpoError(
            f"PerceptualConfig.d_model ({config.d_model}) must be even and a multiple of num_heads ({config.num_heads})"
        )


def score_logits(
    model: PerceptualModel,
    body_quats: Float[Tensor, "N T 21 4"],
    joints: Float[Tensor, "N T 21 3"],
    T_world_cpf: Float[Tensor, "N T 7"],
) -> Float[Tensor, "N"]:  # noqa: F821
    """The model's logits of N motions given their CPF trajectories (float32, autocast off)."""
    with torch.autocast(body_quats.device.type, enabled=False):
        body, head = canonical_inputs(body_quats.float(), joints.float(), T_world_cpf.float())
        return model(body, head)


def chunked_logits(
    model: PerceptualModel,
    body_quats: Float[Tensor, "N T 21 4"],
    joints: Float[Tensor, "N T 21 3"],
    T_world_cpf: Float[Tensor, "N T 7"],
    chunk: int = 64,
) -> Float[Tensor, "N"]:  # noqa: F821
    """The logits of N motions, `chunk` at a time, without gradients (float32)."""
    with torch.no_grad():
        parts = [
            score_logits(model, body_quats[i : i + chunk], joints[i : i + chunk], T_world_cpf[i : i + chunk])
            for i in range(0, body_quats.shape[0], chunk)
        ]
    return torch.cat(parts) if parts else body_quats.new_zeros(0)


def sample_logits(
    model: PerceptualModel,
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Float[Tensor, "N T 7"],
    chunk: int = 64,
) -> Float[Tensor, "N S"]:
    """Logits (N, S) of S samples per head trajectory (a state with leading (N, S)), each placed on its
    trajectory `T_world_cpf` (N, T, 7): the verifier of best-of-S (`model.combine.best_of_samples`)."""
    lead = state.body_rotmats.shape[:-4]
    T_world_cpf = T_world_cpf[:, None].expand(*lead, *T_world_cpf.shape[1:])
    quats, joints = state_inputs(body.to(dtype=T_world_cpf.dtype), state, T_world_cpf)
    flat = chunked_logits(model, quats.flatten(0, 1), joints.flatten(0, 1), T_world_cpf.flatten(0, 1), chunk)
    return flat.reshape(lead)


def score(
    model: PerceptualModel,
    body_quats: Float[Tensor, "N T 21 4"],
    joints: Float[Tensor, "N T 21 3"],
    T_world_cpf: Float[Tensor, "N T 7"],
    chunk: int = 64,
) -> Float[Tensor, "N"]:  # noqa: F821
    """Plausibility scores s ∈ (0, 1) of N motions, `chunk` at a time, without gradients."""
    return torch.sigmoid(chunked_logits(model, body_quats, joints, T_world_cpf, chunk))


class PerceptualScorer:
    """The GRPO loop's scorer (`train.grpo.Scorer`): a frozen model scoring states placed on the crops' CPF."""

    def __init__(self, model: PerceptualModel, body: BodyModel) -> None:
        self.model, self.body = model.eval().requires_grad_(False), body

    def __call__(self, state: MotionState, crops: Any) -> Tensor:
        """Scores of a state with leading (N, S) given crops (N,): shape (N, S)."""
        lead = state.body_rotmats.shape[:-4]
        device, dtype = crops.T_world_cpf.device, crops.T_world_cpf.dtype
        T_world_cpf = crops.T_world_cpf[:, None].expand(*lead, *crops.T_world_cpf.shape[1:])
        self.model.to(device)
        quats, joints = state_inputs(self.body.to(device=device, dtype=dtype), state, T_world_cpf)
        flat = score(self.model, quats.flatten(0, 1), joints.flatten(0, 1), T_world_cpf.flatten(0, 1))
        return flat.reshape(lead)


# --- the checkpoint --------------------------------------------------------------------------------


def save_perceptual(directory: str | Path, model: PerceptualModel, extra: dict[str, Any] | None = None) -> Path:
    """Write the model's weights and config to `directory` (weights first, both atomic); returns the folder."""
    directory = Path(directory)
    meta = {"format": FORMAT, "egogrpo_version": __version__, "extra": extra or {}}
    json.dumps(meta)  # extra must be JSON
    tensors = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    with atomic_output(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        meta["weights_sha256"] = sha256_of_file(tmp)
    with atomic_output(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps({**config_to_dict(model.config), **meta}, indent=2) + "\n")
    return directory


def load_perceptual(
    directory: str | Path, device: torch.device | str = "cpu"
) -> tuple[PerceptualModel, dict[str, Any]]:
    """Read a perceptual checkpoint folder: the model (eval mode, on `device`) and its metadata.

    Any problem with the files is an EgogrpoError naming the file.
    """
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not directory.is_dir():
        raise EgogrpoError(f"{directory}: no such perceptual checkpoint folder")
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EgogrpoError(f"{config_path}: missing, {directory} is not a perceptual checkpoint") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EgogrpoError(f"{config_path}: not valid JSON ({one_line(e)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise EgogrpoError(f"{config_path}: not a perceptual model checkpoint (format {found!r}, expected {FORMAT!r})")
    meta = {key: data.pop(key) for key in ("format", "egogrpo_version", "weights_sha256", "extra") if key in data}
    config = config_from_dict(PerceptualConfig, data, where=str(config_path))
    if not weights_path.is_file():
        raise EgogrpoError(f"{weights_path}: missing")
    if sha256_of_file(weights_path) != meta.get("weights_sha256"):
        raise EgogrpoError(f"{weights_path}: does not match the SHA-256 recorded in {CONFIG_FILE}")
    model = PerceptualModel(config)
    tensors = read_safetensors(weights_path)
    expected = {name: tuple(v.shape) for name, v in model.state_dict().items()}
    found = {name: tuple(v.shape) for name, v in tensors.items()}
    if expected != found:
        raise EgogrpoError(f"{weights_path}: tensors do not match the model described by {CONFIG_FILE}")
    model.load_state_dict(tensors, strict=True)
    meta["directory"] = str(directory)
    return model.to(device).eval(), meta


def load_perceptual_for_body(
    path: str | Path, body_model_id: str, option: str, device: torch.device | str = "cpu"
) -> tuple[PerceptualModel, dict[str, Any], str | None, str]:
    """`load_perceptual`, refusing (one line naming `option`) a checkpoint trained for another body model than
    `body_model_id`; also returns `perceptual_body_model_id`'s (body model id, where it was read)."""
    try:
        model, meta = load_perceptual(path, device=device)
        trained_for, source = perceptual_body_model_id(meta)
    except EgogrpoError as e:
        raise EgogrpoError(f"{option}: {e}") from None
    if trained_for is not None and not body_model_matches(trained_for, body_model_id):
        raise EgogrpoError(
            f"{option} {path}: a perceptual model for body model {trained_for} ({source}), but the body is "
            f"{body_model_id}"
        )
    return model, meta, trained_for, source


def perceptual_body_model_id(meta: dict[str, Any]) -> tuple[str | None, str]:
    """The body model a perceptual checkpoint (its `load_perceptual` metadata) was trained for, and where that
    was read: `extra.body_model_id`, else the body model of the prior recorded in `extra.prior` (train-reward's
    hard-negative policy, trained for the same body). (None, why) when neither is recorded or the prior is gone."""
    extra = meta.get("extra") or {}
    if isinstance(extra.get("body_model_id"), str):
        return extra["body_model_id"], "extra.body_model_id"
    prior = extra.get("prior")
    if not isinstance(prior, str):
        return None, "not recorded (no extra.body_model_id or extra.prior)"
    folder = resolve_checkpoint(prior)
    if not folder.is_dir():
        return None, f"not checked: its prior {prior} (extra.prior) is not on this machine"
    return str(read_checkpoint_meta(folder)["body_model_id"]), f"its prior {prior} (extra.prior)"
