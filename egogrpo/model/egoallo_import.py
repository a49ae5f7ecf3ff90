"""Convert EgoAllo's released denoiser into an egogrpo checkpoint (reference/egoallo.md §11).

EgoAllo's release folder holds `model_config.yaml`, a PyYAML dump tagged
`!!python/object:egoallo.network.EgoDenoiserConfig`, and `checkpoints_<step>/model.safetensors`.
The YAML is read with a *safe* loader that turns that one tag into a plain mapping; any other Python
tag is refused (EgoAllo itself used the unsafe loader). Its fields map one to one onto
`DenoiserConfig`; a field the file lacks takes EgoAllo's default (as EgoAllo's own loader would) and
is listed in the report. Derived fields (`d_cond`, `d_state`) are accepted when they agree with the
value the other fields give, and refused when they do not. The weights are loaded strictly (every name used, every shape checked) and
saved as an egogrpo checkpoint with 16 shape parameters and body model "smplh" (EgoAllo uses SMPL-H).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import Tensor

from egogrpo.config import DenoiserConfig, config_from_dict
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import check_writable, one_line, read_text, sha256_of_file
from egogrpo.model.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    build_denoiser,
    load_denoiser_weights,
    read_safetensors,
    save_checkpoint,
)
from egogrpo.model.conditioning import d_cond
from egogrpo.model.state import packed_dim

EGOALLO_CONFIG_FILE = "model_config.yaml"
EGOALLO_CONFIG_TAG = "tag:yaml.org,2002:python/object:egoallo.network.EgoDenoiserConfig"
_SHORT_TAG = "!!python/object:egoallo.network.EgoDenoiserConfig"
EGOALLO_NUM_BETAS = 16
EGOALLO_BODY_MODEL_ID = "smplh"
#: Fields EgoAllo computes from the others (cached properties, written to the YAML when the config is
#: dumped after a model was built): accepted when they agree with the computed value.
DERIVED_FIELDS: dict[str, Callable[[DenoiserConfig], int]] = {
    "d_cond": d_cond,
    "d_state": lambda config: packed_dim(config.num_betas, config.include_hands),
}
#: Prefixes that training wrappers (DDP, torch.compile) put before every tensor name.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class EgoAlloImportReport:
    """What `import_egoallo` read and wrote."""

    out_dir: Path
    config_path: Path
    weights_path: Path
    step: int | None  # from the `checkpoints_<step>` folder name, when there is one
    config: DenoiserConfig
    defaults_used: tuple[str, ...]  # DenoiserConfig fields absent from model_config.yaml
    num_tensors: int
    num_parameters: int
    weights_sha256: str  # of EgoAllo's model.safetensors


class _EgoAlloConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus EgoAllo's one config tag, read as a plain mapping."""


def _construct_egoallo_config(loader: yaml.SafeLoader, node: yaml.Node) -> dict[Any, Any]:
    if not isinstance(node, yaml.MappingNode):
        raise yaml.constructor.ConstructorError(None, None, "expected a mapping for EgoDenoiserConfig", node.start_mark)
    return loader.construct_mapping(node, deep=True)


def _refuse_python_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None, None, f"refusing the Python tag !!python/{suffix} (only {_SHORT_TAG} is read)", node.start_mark
    )


_EgoAlloConfigLoader.add_constructor(EGOALLO_CONFIG_TAG, _construct_egoallo_config)
_EgoAlloConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", _refuse_python_tag)


def read_egoallo_config(path: Path) -> dict[str, Any]:
    """The fields of EgoAllo's `model_config.yaml`, read safely."""
    try:
        data = yaml.load(read_text(path), Loader=_EgoAlloConfigLoader)  # a SafeLoader subclass: safe
    except yaml.MarkedYAMLError as e:
        where = "" if e.problem_mark is None else f" at line {e.problem_mark.line + 1}"
        raise EgogrpoError(f"{path}: cannot read EgoAllo's model config{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise EgogrpoError(f"{path}: cannot read EgoAllo's model config ({one_line(e)})") from None
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise EgogrpoError(f"{path}: expected a mapping of EgoDenoiserConfig fields, got {type(data).__name__}")
    return data


def denoiser_config_from_egoallo(fields: dict[str, Any], path: Path) -> tuple[DenoiserConfig, tuple[str, ...]]:
    """Map EgoAllo's config fields onto `DenoiserConfig` (num_betas = 16); also returns the fields left at default."""
    known = {f.name for f in dataclasses.fields(DenoiserConfig)} - {"num_betas"}
    unknown = sorted(set(fields) - known - set(DERIVED_FIELDS))
    if unknown:
        raise EgogrpoError(f"{path}: unknown EgoDenoiserConfig field(s) {', '.join(unknown)}")
    defaults_used = tuple(sorted(known - set(fields)))
    own = {k: v for k, v in fields.items() if k in known}
    config = config_from_dict(DenoiserConfig, {**own, "num_betas": EGOALLO_NUM_BETAS}, where=str(path))
    for name, derive in DERIVED_FIELDS.items():
        if name in fields and (type(fields[name]) is not int or fields[name] != derive(config)):
            raise EgogrpoError(
                f"{path}: {name}: {fields[name]!r} does not match the value the other fields give ({derive(config)})"
            )
    return config, defaults_used


def _checkpoint_step(folder: Path) -> int | None:
    match = re.fullmatch(r"checkpoints_(\d+)", folder.name)
    return int(match.group(1)) if match else None


def locate_egoallo_files(path: Path) -> tuple[Path, Path, int | None]:
    """(model_config.yaml, model.safetensors, step) for a release folder, a `checkpoints_<step>` folder,
    or a `model.safetensors` file. A release folder with several checkpoints gives the latest step."""
    path = Path(path)
    if path.is_file():
        weights = path
    elif path.is_dir() and (path / WEIGHTS_FILE).is_file():
        weights = path / WEIGHTS_FILE
    elif path.is_dir():
        found = []
        for candidate in path.glob(f"checkpoints_*/{WEIGHTS_FILE}"):
            step = _checkpoint_step(candidate.parent)
            if step is not None:
                found.append((step, candidate))
        if not found:
            raise EgogrpoError(f"{path}: no {WEIGHTS_FILE} and no checkpoints_<step>/{WEIGHTS_FILE} in this folder")
        weights = max(found)[1]
    else:
        raise EgogrpoError(f"{path}: no such EgoAllo checkpoint folder or file")
    step = _checkpoint_step(weights.parent)
    candidates = [weights.parent / EGOALLO_CONFIG_FILE, weights.parent.parent / EGOALLO_CONFIG_FILE]
    config = next((c for c in candidates if c.is_file()), None)
    if config is None:
        expected, other = candidates[::-1] if step is not None else candidates
        raise EgogrpoError(f"{expected}: missing (EgoAllo's model config; not in {other.parent} either)")
    return config, weights, step


def _strip_wrapper_prefix(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop a `module.` / `_orig_mod.` prefix shared by every tensor name (DDP or torch.compile wrappers)."""
    for prefix in _WRAPPER_PREFIXES:
        if tensors and all(name.startswith(prefix) for name in tensors):
            tensors = {name[len(prefix) :]: value for name, value in tensors.items()}
    return tensors


def import_egoallo(checkpoint_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> EgoAlloImportReport:
    """Read EgoAllo's config and weights, check them against each other, and write an egogrpo checkpoint."""
    config_path, weights_path, step = locate_egoallo_files(Path(checkpoint_dir))
    out_dir = Path(out_dir)
    check_writable(out_dir, "--out", folder=True)
    if not overwrite and ((out_dir / CONFIG_FILE).exists() or (out_dir / WEIGHTS_FILE).exists()):
        raise EgogrpoError(f"{out_dir}: already holds a checkpoint (pass --overwrite to replace it)")
    fields = read_egoallo_config(config_path)
    config, defaults_used = denoiser_config_from_egoallo(fields, config_path)
    model = build_denoiser(config, where=str(config_path))
    tensors = _strip_wrapper_prefix(read_safetensors(weights_path))
    load_denoiser_weights(model, tensors, weights_path, config_source=config_path)
    weights_sha256 = sha256_of_file(weights_path)
    extra = {
        "source": "egoallo",
        "egoallo_config": str(config_path.resolve()),
        "egoallo_weights": str(weights_path.resolve()),
        "egoallo_weights_sha256": weights_sha256,
        "egoallo_step": step,
        "egoallo_fields_defaulted": list(defaults_used),
    }
    save_checkpoint(out_dir, model, config, EGOALLO_BODY_MODEL_ID, extra)
    return EgoAlloImportReport(
        out_dir=out_dir,
        config_path=config_path,
        weights_path=weights_path,
        step=step,
        config=config,
        defaults_used=defaults_used,
        num_tensors=len(tensors),
        num_parameters=model.num_parameters(),
        weights_sha256=weights_sha256,
    )
