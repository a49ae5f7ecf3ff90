"""Console objects and error reporting shared by the command modules (no numerics here)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """One red line on stderr."""
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
