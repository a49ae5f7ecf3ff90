"""Console objects and error reporting shared by the command modules (no numerics here)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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
