"""Console objects, error reporting and option parsing shared by the command modules (no numerics here)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from egogrpo.config import AUGMENT_PRESETS, AugmentConfig
from egogrpo.errors import EgogrpoError

console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """One red line on stderr."""
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)


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

        def progress(done: int, total: int, record: dict) -> None:
            info = describe(record)
            bar.update(task, completed=done, info=info)
            if not interactive:
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
