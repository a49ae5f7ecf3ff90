"""Console objects, error reporting and option parsing shared by the command modules (no numerics here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from egogrpo.config import AUGMENT_PRESETS, AugmentConfig
from egogrpo.errors import EgogrpoError

console = Console(soft_wrap=True)  # off a terminal, long paths and commands stay on one line
err_console = Console(stderr=True, soft_wrap=True)


def print_error(message: str) -> None:
    """One red line on stderr."""
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)


def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated option ("train,val") as a tuple of its non-empty items."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def typed_fields(ctx: typer.Context, config: Any, fields: dict[str, str | tuple[str, ...]]) -> dict[str, Any]:
    """Config field → value in `config` for every option given on the command line (not left at its default);
    `fields` maps option parameter names to the config fields they set."""
    typed: dict[str, Any] = {}
    for param, names in fields.items():
        source = ctx.get_parameter_source(param)
        if source is not None and source.name == "COMMANDLINE":
            for name in (names,) if isinstance(names, str) else names:
                typed[name] = getattr(config, name)
    return typed


def with_run_config(
    ctx: typer.Context, config: Any, fields: dict[str, str | tuple[str, ...]], resumable: set[str]
) -> Any:
    """On --resume, the run's own config with the resumable options given now (`train.run_dir.resumed_config`),
    printed as "resuming RUN"; else `config` unchanged."""
    if not config.resume:
        return config
    from egogrpo.train.run_dir import resumed_config

    resumed = resumed_config(config, typed_fields(ctx, config, fields), resumable)
    if str(resumed.data) != str(config.data):
        raise EgogrpoError(f"{config.run_dir}: the run was trained on {resumed.data}, not {config.data}")
    return resumed


def report_interruption(command: str, data: Any, run_dir: Any, unit: str, done: int, checkpoint: Any) -> None:
    """After Ctrl-C: what was kept and the exact command that continues the run; exits with 130."""
    err_console.print(
        f"interrupted at {unit} {done}: checkpoint {checkpoint} kept; continue with:\n"
        f"  egogrpo {command} {data} --run-dir {run_dir} --resume",
        soft_wrap=True,
    )
    raise typer.Exit(130)


@contextmanager
def training_progress(
    command: str, unit: str, total: int, describe: Callable[[dict], str]
) -> Iterator[Callable[[int, int, dict], None]]:
    """The `progress(done, total, record)` callback of a training loop: a Rich bar on stderr showing
    `describe(record)`, or, off a terminal (logs, CI, nohup), one line "<unit> done/total <description>" per call."""
    interactive = err_console.is_terminal
    columns = (
        TextColumn(f"[bold]{command}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
    )  # fmt: skip
    with Progress(*columns, console=err_console, transient=True, disable=not interactive) as bar:
        task = bar.add_task(command, total=total, info="")
        printed = [0]  # id of the last record printed off a terminal

        def progress(done: int, total: int, record: dict) -> None:
            if record.get("resumed"):
                bar.update(task, completed=done)
                err_console.print(f"resumed from {unit} {done} of {total}", soft_wrap=True)
                return
            info = describe(record)
            bar.update(task, completed=done, info=info)
            if not interactive and id(record) != printed[0]:  # off a terminal: one line per logged record
                printed[0] = id(record)
                err_console.print(f"{unit} {done}/{total} {info}", soft_wrap=True)

        yield progress


def augmentation_options(
    preset: str,
    mirror: float | None = None,
    shape_prob: float | None = None,
    shape_std: float | None = None,
    speed_range: str | None = None,
) -> AugmentConfig:
    """The augmentation preset with the options given on the command line replacing its fields."""
    if preset not in AUGMENT_PRESETS:
        raise EgogrpoError(f"unknown --augment {preset!r}; choose one of {', '.join(AUGMENT_PRESETS)}")
    fields: dict[str, float] = {}
    for name, value in (("mirror", mirror), ("shape_prob", shape_prob), ("shape_std", shape_std)):
        if value is not None:
            fields[name] = value
    if speed_range is not None:
        try:
            low, high = (float(part) for part in speed_range.split(":"))
        except ValueError:
            raise EgogrpoError(f"--speed-range must be MIN:MAX (e.g. 0.8:1.2), got {speed_range!r}") from None
        fields["speed_min"], fields["speed_max"] = low, high
    return dataclasses.replace(AUGMENT_PRESETS[preset], **fields)
