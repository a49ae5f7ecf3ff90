"""egogrpo's denoiser checkpoint: a folder with `model.safetensors` and `config.json`.

config.json holds the `DenoiserConfig` fields plus

    format            "egogrpo-denoiser/1"
    egogrpo_version   the version that wrote it
    body_model_id     the body model the motion state refers to (e.g. "smplh", or `BodyModel.model_id`)
    weights_sha256    SHA-256 of model.safetensors (checked on load: catches a half-replaced folder)
    extra             free-form JSON metadata (training step, provenance, …)

Both files are written atomically, weights first, so a reader sees either the old or the new pair;
a weights/config pair from two different writes fails the hash check. Loading checks every tensor
name and shape against the config before `load_state_dict(strict=True)`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from egogrpo import __version__
from egogrpo.config import DenoiserConfig, config_from_dict, config_to_dict
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import atomic_output, check_writable, one_line, sha256_of_file
from egogrpo.model.denoiser import EgoDenoiser

FORMAT = "egogrpo-denoiser/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
META_KEYS = ("format", "egogrpo_version", "body_model_id", "weights_sha256", "extra")

#: Top-level module names of EgoAllo's denoiser; a tensor outside them belongs to another architecture.
EGOALLO_MODULES = (
    "encoders",
    "decoders",
    "latent_from_cond",
    "noise_emb",
    "noise_emb_token_proj",
    "encoder_layers",
    "decoder_layers",
)


def save_checkpoint(
    directory: str | Path,
    model: EgoDenoiser,
    config: DenoiserConfig,
    body_model_id: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write `model`'s weights and `config` (which must be the model's) to `directory`; returns the folder."""
    directory = Path(directory)
    if model.config != config:
        raise ValueError("save_checkpoint: `config` is not the configuration the model was built with")
    meta = {"format": FORMAT, "egogrpo_version": __version__, "body_model_id": body_model_id, "extra": extra or {}}
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise ValueError(f"save_checkpoint: `extra` must be JSON-serialisable ({e})") from None
    tensors = {name: value.detach().cpu().contiguous() for name, value in model.state_dict().items()}
    with atomic_output(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        meta["weights_sha256"] = sha256_of_file(tmp)
    with atomic_output(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps({**config_to_dict(config), **meta}, indent=2) + "\n")
    return directory


def load_checkpoint(
    directory: str | Path, device: torch.device | str = "cpu"
) -> tuple[EgoDenoiser, DenoiserConfig, dict[str, Any]]:
    """Read a checkpoint folder: the model (on `device`, eval mode, float32 as stored), its config and metadata.

    meta holds format, egogrpo_version, body_model_id, weights_sha256 and extra from config.json, and
    `directory`. Any problem with the files is an EgogrpoError naming the file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise EgogrpoError(f"{directory}: no such checkpoint folder")
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file():
        hint = ""
        if (directory / "model_config.yaml").is_file():
            hint = "; it looks like an EgoAllo release: convert it with `egogrpo import-egoallo`"
        raise EgogrpoError(f"{config_path}: missing, {directory} is not an egogrpo checkpoint folder{hint}")
    config, meta = _read_config(config_path)
    if not weights_path.is_file():
        raise EgogrpoError(f"{weights_path}: missing (the checkpoint folder has {CONFIG_FILE} but no weights)")
    if "weights_sha256" in meta and sha256_of_file(weights_path) != meta["weights_sha256"]:
        raise EgogrpoError(
            f"{weights_path}: does not match the SHA-256 recorded in {CONFIG_FILE} "
            "(modified, corrupt, or from another save)"
        )
    model = build_denoiser(config, where=str(config_path))
    load_denoiser_weights(model, read_safetensors(weights_path), weights_path, config_source=config_path)
    meta["directory"] = str(directory)
    return model.to(device).eval(), config, meta


def read_checkpoint_meta(directory: str | Path) -> dict[str, Any]:
    """A checkpoint folder's metadata (format, egogrpo_version, body_model_id, …) from its config.json, weights unread."""
    return _read_config(Path(directory) / CONFIG_FILE)[1]


def _read_config(path: Path) -> tuple[DenoiserConfig, dict[str, Any]]:
    """config.json → (DenoiserConfig, metadata)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EgogrpoError(f"{path}: not valid JSON ({one_line(e)})") from None
    except OSError as e:
        raise EgogrpoError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise EgogrpoError(f"{path}: not an egogrpo denoiser checkpoint config (format {found!r}, expected {FORMAT!r})")
    meta = {key: data.pop(key) for key in META_KEYS if key in data}
    for key in ("egogrpo_version", "body_model_id"):
        if not isinstance(meta.get(key), str):
            raise EgogrpoError(f"{path}: missing or invalid {key!r}")
    meta.setdefault("extra", {})
    return config_from_dict(DenoiserConfig, data, where=str(path)), meta


def build_denoiser(config: DenoiserConfig, where: str) -> EgoDenoiser:
    """EgoDenoiser(config), with an unsupported setting reported against `where` (the file it came from)."""
    try:
        return EgoDenoiser(config)
    except EgogrpoError as e:
        raise EgogrpoError(f"{where}: {e}") from None


def read_safetensors(path: Path) -> dict[str, Tensor]:
    """Every tensor of a safetensors file, on the CPU; a truncated or corrupt file is an EgogrpoError naming it."""
    try:
        return load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise EgogrpoError(f"{path}: no such file") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise EgogrpoError(f"{path}: not a readable safetensors file, truncated or corrupt ({one_line(e)})") from None


def _first(names: list[str], count: int = 3) -> str:
    more = f", … ({len(names) - count} more)" if len(names) > count else ""
    return ", ".join(names[:count]) + more


def load_denoiser_weights(
    model: EgoDenoiser, tensors: dict[str, Tensor], path: Path, config_source: str | Path | None = None
) -> None:
    """Load `tensors` (read from `path`) into `model` strictly: every expected name present with its shape, nothing else.

    A file whose tensor names are not EgoAllo's is reported as another architecture; otherwise the
    missing, unexpected and mis-shaped tensors are named (the config, from `config_source`, does not
    describe the weights).
    """
    foreign = sorted(name for name in tensors if name.split(".")[0] not in EGOALLO_MODULES)
    if foreign:
        raise EgogrpoError(
            f"{path}: not an EgoAllo-architecture denoiser: {len(foreign)} of its {len(tensors)} tensors have "
            f"other names ({_first(foreign)})"
        )
    expected = model.state_dict()
    missing = [name for name in expected if name not in tensors]
    unexpected = sorted(name for name in tensors if name not in expected)
    mismatched = [
        f"{name} is {tuple(tensors[name].shape)}, expected {tuple(value.shape)}"
        for name, value in expected.items()
        if name in tensors and tensors[name].shape != value.shape
    ]
    not_float = sorted(name for name, value in tensors.items() if not value.is_floating_point())
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {_first(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s): {_first(unexpected)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {_first(mismatched)}")
    if not_float:
        problems.append(f"{len(not_float)} non-floating tensor(s): {_first(not_float)}")
    if problems:
        source = "the model config" if config_source is None else f"the model config in {config_source}"
        raise EgogrpoError(f"{path}: the weights do not match {source} ({'; '.join(problems)})")
    model.load_state_dict(tensors, strict=True)


#: The shipped default model: the post-trained prior when one ships (assets/default_grpo), else the plain prior.
DEFAULT_PRIOR = "default"
#: The shipped plain prior (the `cpu` preset with the default body; see its report.json), always loadable.
DEFAULT_PRIOR_NAME = "default-prior"
#: The previous default prior (the `cpu` preset trained on CMU subjects 01–03 only), kept loadable by name.
PREVIOUS_PRIOR_NAME = "cmu3-prior"


def default_prior_dir() -> Path:
    """Where the shipped plain prior lives inside the installed package (see its report.json)."""
    return Path(__file__).resolve().parent / "assets" / "default_prior"


def previous_prior_dir() -> Path:
    """Where the previous default prior (trained on the CMU sample clips of subjects 01–03) lives."""
    return Path(__file__).resolve().parent / "assets" / "cmu3_prior"


def grpo_default_dir() -> Path:
    """Where a shipped MotionGRPO post-trained default lives (absent until one beats the prior)."""
    return Path(__file__).resolve().parent / "assets" / "default_grpo"


def resolve_checkpoint(spec: str | Path) -> Path:
    """`"default"` for the shipped default model, `"default-prior"` for the plain prior, `"cmu3-prior"` for the
    previous default prior, else the given path: a checkpoint folder, a pointer file (a run's
    `checkpoints/best` or `checkpoints/latest`, which name a sibling folder) or a run folder (its best
    checkpoint, else its latest)."""
    if str(spec) == DEFAULT_PRIOR_NAME:
        return default_prior_dir()
    if str(spec) == PREVIOUS_PRIOR_NAME:
        return previous_prior_dir()
    if str(spec) == DEFAULT_PRIOR:
        grpo = grpo_default_dir()
        return grpo if (grpo / WEIGHTS_FILE).is_file() else default_prior_dir()
    path = Path(spec)
    if path.is_file():
        return read_pointer(path)
    if path.is_dir() and not (path / WEIGHTS_FILE).exists() and (path / RUN_CHECKPOINTS).is_dir():
        for pointer in ("best", "latest"):
            if (path / RUN_CHECKPOINTS / pointer).is_file():
                return read_pointer(path / RUN_CHECKPOINTS / pointer)
        raise EgogrpoError(f"{path}: a run folder without checkpoints/best or checkpoints/latest (no checkpoint yet?)")
    return path


#: A training run's checkpoint folder, and the pointer files in it that name a checkpoint.
RUN_CHECKPOINTS = "checkpoints"


def read_pointer(path: Path) -> Path:
    """The checkpoint folder a pointer file (e.g. checkpoints/latest) names: a sibling of the file."""
    try:
        name = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise EgogrpoError(f"{path}: not a checkpoint folder, run folder or checkpoint pointer") from None
    target = path.parent / name
    if not name or "/" in name or not target.is_dir():
        raise EgogrpoError(f"{path}: a checkpoint pointer must name a folder beside it, found {name[:60]!r}")
    return target


def load_checkpoint_for_body(
    spec: str | Path, body_model_id: str, device: torch.device | str = "cpu"
) -> tuple[Path, EgoDenoiser, DenoiserConfig, dict[str, Any]]:
    """`resolve_checkpoint` + `load_checkpoint`, refusing (one line) a checkpoint made for another body model."""
    folder = resolve_checkpoint(spec)
    model, config, meta = load_checkpoint(folder, device=device)
    if not body_model_matches(str(meta["body_model_id"]), body_model_id):
        raise EgogrpoError(
            f"{folder}: the checkpoint was trained for body model {meta['body_model_id']}, but --body is {body_model_id}"
        )
    return folder, model, config, meta


def body_model_matches(checkpoint_body_id: str, body_model_id: str) -> bool:
    """Whether a checkpoint made for `checkpoint_body_id` fits a body `body_model_id` ("kind:hash").

    Checkpoints trained by egogrpo record the full id; imported EgoAllo checkpoints record only the
    kind ("smplh"), which any SMPL-H file fits.
    """
    if ":" in checkpoint_body_id:
        return checkpoint_body_id == body_model_id
    return body_model_id.split(":")[0] == checkpoint_body_id


def _check_alpha(alpha: float) -> None:
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise EgogrpoError(f"--alpha must be in [0, 1], got {alpha}")


def interpolate_weights(
    start: dict[str, Tensor], end: dict[str, Tensor], alpha: float, names: tuple[str, str] = ("A", "B")
) -> dict[str, Tensor]:
    """WiSE-FT weight interpolation (Wortsman et al., arXiv 2109.01903): (1 − α)·start + α·end per tensor, in
    float64 then cast back, so α = 0 gives `start` and α = 1 gives `end` exactly. Both must hold the same names
    and shapes (the same architecture); float tensors only are interpolated, others must be equal."""
    _check_alpha(alpha)
    if start.keys() != end.keys():
        missing = sorted(set(start) ^ set(end))
        raise EgogrpoError(f"{names[0]} and {names[1]} hold different parameters (e.g. {_first(missing)})")
    merged = {}
    for key, a in start.items():
        b = end[key]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise EgogrpoError(f"{names[0]} and {names[1]}: {key} differs in shape or dtype ({a.shape} vs {b.shape})")
        if not a.is_floating_point():
            if not torch.equal(a, b):
                raise EgogrpoError(f"{names[0]} and {names[1]}: the non-float tensor {key} differs")
            merged[key] = a.clone()
        elif alpha == 0.0 or alpha == 1.0:
            merged[key] = (a if alpha == 0.0 else b).clone()
        else:
            merged[key] = ((1.0 - alpha) * a.double() + alpha * b.double()).to(a.dtype)
    return merged


def merge_checkpoints(
    start: str | Path, end: str | Path, alpha: float, out: str | Path, overwrite: bool = False
) -> Path:
    """Write the WiSE-FT interpolation of two checkpoints of one architecture and body model to `out`
    (`interpolate_weights`); its extra records both sources, their weight hashes and α. Everything is checked
    before anything is written; an existing checkpoint in `out` is replaced only with `overwrite`."""
    _check_alpha(alpha)
    out = Path(out)
    if not overwrite and ((out / CONFIG_FILE).exists() or (out / WEIGHTS_FILE).exists()):
        raise EgogrpoError(f"--out {out}: already holds a checkpoint (pass --overwrite to replace it)")
    check_writable(out, "--out", folder=True)
    folders = [resolve_checkpoint(spec) for spec in (start, end)]
    (model_a, config_a, meta_a), (model_b, config_b, meta_b) = (load_checkpoint(f) for f in folders)
    if config_a != config_b:
        raise EgogrpoError(f"{folders[0]} and {folders[1]}: different model configurations, nothing to interpolate")
    if meta_a["body_model_id"] != meta_b["body_model_id"]:
        raise EgogrpoError(
            f"{folders[0]} and {folders[1]}: made for different body models "
            f"({meta_a['body_model_id']} vs {meta_b['body_model_id']})"
        )
    names = (str(folders[0]), str(folders[1]))
    model_a.load_state_dict(interpolate_weights(model_a.state_dict(), model_b.state_dict(), alpha, names))
    merged = {
        "start": names[0], "end": names[1], "alpha": alpha,
        "start_sha256": meta_a.get("weights_sha256"), "end_sha256": meta_b.get("weights_sha256"),
    }  # fmt: skip
    pose = {k: v for k, v in meta_a["extra"].items() if k == "mean_training_pose"}  # the baseline, when A has it
    extra = {"merged": merged, **pose}
    return save_checkpoint(out, model_a, config_a, body_model_id=str(meta_a["body_model_id"]), extra=extra)
