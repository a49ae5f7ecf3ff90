"""The console script's entry point: `egogrpo --version` answers without importing the commands (and torch)."""

from __future__ import annotations

import sys


def main() -> None:
    """`egogrpo …`: the version at once, everything else through `egogrpo.cli.main.main`."""
    if sys.argv[1:] == ["--version"]:
        from egogrpo import __version__

        print(f"egogrpo {__version__}")
        return
    from egogrpo.cli.main import main as run

    run()
