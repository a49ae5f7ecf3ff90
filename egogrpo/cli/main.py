"""The `egogrpo` command line: one Typer application; each command group lives in its own module."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from egogrpo import __version__
from egogrpo.cli import body, demo, evaluate, grpo, model, preprocess, recover, train, view
from egogrpo.cli.common import print_error
from egogrpo.errors import EgogrpoError

app = typer.Typer(
    name="egogrpo",
    help="Full-body motion from a head-mounted device's trajectory (EgoAllo-style prior + MotionGRPO).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(body.app, name="body")
app.add_typer(preprocess.app, name="preprocess")
app.command("train-prior")(train.train_prior)
app.command("train-grpo")(grpo.train_grpo_command)
app.command("import-egoallo")(model.import_egoallo)
app.command("eval")(evaluate.eval_command)
app.command("recover")(recover.recover_command)
app.command("view")(view.view_command)
app.command("demo")(demo.demo_command)


def _print_version(value: bool) -> None:
    if value:
        print(f"egogrpo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """egogrpo: preprocess mocap, train and post-train motion priors, recover bodies from Aria recordings."""


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit status 1."""
    try:
        app()
    except EgogrpoError as error:
        print_error(str(error))
        sys.exit(1)
