"""Run directories and process start-up shared by the training commands (train-prior, train-grpo, train-reward).

    run_dir/config.json          the resolved config
    run_dir/meta.json            egogrpo version, git commit, torch, world size, device
    run_dir/metrics.jsonl        one JSON object per logged step / iteration
    run_dir/checkpoints/NAME/    model.safetensors + config.json (a model checkpoint) + training_state.pt
    run_dir/checkpoints/latest   the name of the newest complete checkpoint

A run directory is never overwritten: a new run needs an empty folder, and resuming checks that the
stored config equals the new one except for fields that may change between sessions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from pathlib import Path
from typing import Any, TypeVar

import torch

from egogrpo import __version__
from egogrpo.config import config_from_dict, config_to_dict
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import atomic_output, check_writable
from egogrpo.model.checkpoint import RUN_CHECKPOINTS, load_checkpoint, read_pointer

CHECKPOINTS = RUN_CHECKPOINTS
C = TypeVar("C")


#: What a training command's `device` may be: "auto" (CUDA when this machine has it, else CPU), "cpu" or "cuda".
TRAINING_DEVICES = ("auto", "cpu", "cuda")


def start_processes(units: int, what: str, device: str = "auto") -> tuple[Any, int, int, torch.device]:
    """HF accelerate for this process on `device` (`TRAINING_DEVICES`; several processes: one GPU each, or CPU
    with gloo): (accelerator, rank, world size, device). EgogrpoError for an unknown or unavailable device, or
    unless the `units` of global work (`what` names them for the message) split evenly over the processes."""
    if device not in TRAINING_DEVICES:
        raise EgogrpoError(f"--device must be one of {', '.join(TRAINING_DEVICES)}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise EgogrpoError("--device cuda: this machine has no CUDA device (use --device cpu or auto)")
    from accelerate import Accelerator  # slow to import; only training needs it

    accelerator = Accelerator(cpu=device == "cpu" or not torch.cuda.is_available())
    world = accelerator.num_processes
    if units % world:
        raise EgogrpoError(f"{what} cannot be split evenly over {world} processes")
    return accelerator, accelerator.process_index, world, accelerator.device


def git_commit() -> str:
    """The commit of the egogrpo source tree, or "unknown"."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def check_whole_numbers(config: Any, minimum: dict[str, int], options: dict[str, str]) -> None:
    """EgogrpoError for the first field that is not an int ≥ its minimum (`options` maps a field to its
    option name; by default "--field-name")."""
    for name, least in minimum.items():
        value = getattr(config, name)
        if type(value) is not int or value < least:
            option = options.get(name, f"--{name.replace('_', '-')}")
            raise EgogrpoError(f"{option} must be a whole number ≥ {least}, got {value}")


def check_positive_numbers(config: Any, fields: tuple[tuple[str, str, bool], ...]) -> None:
    """EgogrpoError for the first (field, option, zero allowed) whose value is not finite and > 0 (or ≥ 0)."""
    for name, option, zero_ok in fields:
        value = getattr(config, name)
        if not (math.isfinite(value) and (value > 0 or (zero_ok and value == 0))):
            raise EgogrpoError(f"{option} must be a finite number {'≥' if zero_ok else '>'} 0, got {value}")


def write_json(path: Path, data: object) -> None:
    """Indented JSON, written atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def check_run_dir(run_dir: str | Path, resume: bool) -> None:
    """EgogrpoError unless `run_dir` can take a new run (absent or empty, writable) or holds one to resume."""
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / "config.json").is_file():
            raise EgogrpoError(f"{run_dir}: no run to resume here (config.json missing)")
    elif run_dir.is_dir() and any(run_dir.iterdir()):
        raise EgogrpoError(f"{run_dir} exists and is not empty; choose a new run directory or pass --resume")
    check_writable(run_dir, "--run-dir", folder=True)


def check_resumable(run_dir: str | Path) -> None:
    """EgogrpoError unless the newest checkpoint of `run_dir` (if any) has readable weights and training state."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return
    load_checkpoint(checkpoint, device="cpu")
    state = load_training_state(checkpoint)
    if not isinstance(state.get("optimizer"), dict) or type(state.get("step")) is not int:
        path = checkpoint / "training_state.pt"
        raise EgogrpoError(f"{path}: no optimizer state or step in it; the checkpoint is damaged")


def stored_config(run_dir: str | Path, config_type: type) -> Any:
    """The config a run was started with (its config.json), or an EgogrpoError naming the file."""
    config_path = Path(run_dir) / "config.json"
    if not config_path.is_file():
        raise EgogrpoError(f"{run_dir}: no run to resume here (config.json missing)")
    try:
        stored_data = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EgogrpoError(f"{config_path}: not valid JSON ({e})") from None
    return config_from_dict(config_type, stored_data, where=str(config_path))


def resumed_config(config: Any, typed: dict[str, Any], resumable: set[str]) -> Any:
    """`--resume` continues a run with its OWN settings: its stored config, `resume` set, with the resumable
    fields given on the command line (`typed`: field → value) replacing the stored ones. A typed field that may
    not change on resume must equal the stored value (EgogrpoError naming it otherwise)."""
    stored = stored_config(config.run_dir, type(config))
    fixed = {k: v for k, v in typed.items() if k not in resumable and config_to_dict(stored).get(k) != _plain(v)}
    if fixed:
        listed = ", ".join(
            k if dataclasses.is_dataclass(getattr(stored, k)) else f"{k} (the run has {getattr(stored, k)!r})"
            for k in fixed
        )
        raise EgogrpoError(
            f"{config.run_dir}: --resume continues the run with its own settings and cannot change {listed}; "
            f"what may change: {', '.join(sorted(resumable - {'resume'}))}"
        )
    changes = {k: v for k, v in typed.items() if k in resumable}
    return dataclasses.replace(stored, resume=True, run_dir=config.run_dir, **changes)  # the folder may have moved


def _plain(value: Any) -> Any:
    """A config value as its JSON form (for comparison with a stored config)."""
    return json.loads(json.dumps(value, default=str)) if not dataclasses.is_dataclass(value) else config_to_dict(value)


def prepare_run_dir(
    config: Any, run_dir: str | Path, resume: bool, resumable: set[str], world_size: int, device: str
) -> None:
    """Create a new run directory (refusing a non-empty one), or check a resumed one's config.

    `resumable`: top-level config fields allowed to differ on resume (lengths, logging cadence, …).
    """
    run_dir = Path(run_dir)
    config_path = run_dir / "config.json"
    check_run_dir(run_dir, resume)
    if resume:
        stored = config_to_dict(stored_config(run_dir, type(config)))
        current = config_to_dict(config)
        differs = [k for k, v in current.items() if k not in resumable and k != "run_dir" and stored[k] != v]
        if differs:
            raise EgogrpoError(f"{run_dir}: cannot resume with different settings ({', '.join(differs)})")
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
    write_json(config_path, config_to_dict(config))
    write_json(
        run_dir / "meta.json",
        {
            "egogrpo_version": __version__,
            "git_commit": git_commit(),
            "torch": torch.__version__,
            "world_size": world_size,
            "device": device,
        },
    )


def checkpoint_folder(run_dir: str | Path, unit: str, count: int) -> Path:
    """The one naming of checkpoints: run_dir/checkpoints/<unit>_<count, 7 digits> ("step" for train-prior and
    train-reward, "iter" for train-grpo), so folders sort in training order."""
    return Path(run_dir) / CHECKPOINTS / f"{unit}_{count:07d}"


def latest_checkpoint(run_dir: str | Path, pointer_name: str = "latest") -> Path | None:
    """The folder named by checkpoints/latest (or another pointer written by `point_to`), if it exists."""
    pointer = Path(run_dir) / CHECKPOINTS / pointer_name
    if not pointer.is_file():
        return None
    try:
        return read_pointer(pointer)
    except EgogrpoError:
        return None


def point_to(run_dir: str | Path, name: str, folder: Path) -> None:
    """Write checkpoints/NAME (e.g. "latest", "best") holding the checkpoint folder's name, atomically."""
    with atomic_output(Path(run_dir) / CHECKPOINTS / name) as tmp:
        tmp.write_text(folder.name + "\n")


def truncate_metrics(path: Path, last: int, key: str = "step") -> None:
    """Drop logged records after `last` (they are recomputed identically on resume)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)[key] <= last]
    with atomic_output(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in keep))


def append_metrics(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to metrics.jsonl."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (an empty list when it does not exist)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_training_state(folder: Path, state: dict[str, Any]) -> None:
    """training_state.pt beside a model checkpoint (optimizer state, counters), atomically."""
    with atomic_output(folder / "training_state.pt") as tmp:
        torch.save(state, tmp)


def load_training_state(folder: Path) -> dict[str, Any]:
    """Read training_state.pt (tensors and plain containers only), with a one-line error if it is damaged."""
    path = folder / "training_state.pt"
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise EgogrpoError(f"{path}: missing; the checkpoint cannot be resumed") from None
    except Exception as e:  # any unpickling failure means a damaged file
        raise EgogrpoError(f"{path}: cannot be read ({type(e).__name__}); the checkpoint is damaged") from None


def restore_latest(
    run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[Path, dict[str, Any]] | None:
    """Load the newest complete checkpoint's weights and optimizer state; returns it and its training state."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        return None
    loaded, _, _ = load_checkpoint(checkpoint, device="cpu")
    model.load_state_dict(loaded.state_dict())
    state = load_training_state(checkpoint)
    optimizer.load_state_dict(state["optimizer"])
    return checkpoint, state


def tensorboard_writer(run_dir: str | Path) -> Any | None:
    """A TensorBoard SummaryWriter on run_dir/tensorboard when the `tensorboard` package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))


def log_scalars(writer: Any | None, record: dict[str, Any], step_key: str) -> None:
    """Mirror a metrics record's numbers to TensorBoard (no-op without a writer)."""
    if writer is None:
        return
    for key, value in record.items():
        if key != step_key and isinstance(value, int | float):
            writer.add_scalar(key, value, record[step_key])
    writer.flush()
