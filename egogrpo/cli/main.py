"""The `egogrpo` command line: one Typer application; each command group lives in its own module."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from egogrpo import __version__
from egogrpo.cli import body, compare, demo, evaluate, grpo, model, preprocess, recover, reward, train, view
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
app.command("train-reward")(reward.train_reward_command)
app.command("import-egoallo")(model.import_egoallo)
app.command("merge")(model.merge)
app.command("compare")(compare.compare_command)
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
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads per process for every command (torch's intra-op threads; default: torch's, one per core). "
            "On a machine that also runs other jobs, 1 is often faster.",
        ),
    ] = None,
) -> None:
    """egogrpo: preprocess mocap, train and post-train motion priors, recover bodies from Aria recordings."""
    if threads is not None:
        if threads < 1:
            raise EgogrpoError(f"--threads must be ≥ 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def main() -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit status.

    EgogrpoError exits 1; a command-line mistake Click finds (a missing option, a value of the wrong
    type) exits 2, as Click's own errors do, but in one line rather than a usage box; an operating
    system refusal naming a file (permissions, a full disk) exits 1 without a traceback.
    """
    try:
        code = app(standalone_mode=False)
    except EgogrpoError as error:
        print_error(str(error))
        sys.exit(1)
    except _CLICK_ERROR as error:
        if type(error).__name__ == "NoArgsIsHelpError":
            error.show()  # a request for help (`egogrpo preprocess` alone), not a mistake
        else:
            print_error(_usage_line(error))
        sys.exit(error.exit_code)
    except typer.Abort:
        print_error("aborted")
        sys.exit(1)
    except OSError as error:
        if error.filename is None:
            raise
        print_error(f"{error.filename}: {error.strerror or error}")
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


#: Click's base of command-line errors (Typer ≥ 0.24 vendors Click, older Typer uses it: found either way).
_CLICK_ERROR: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _usage_line(error: Exception) -> str:
    """Click's message for a command-line mistake, prefixed by the command it concerns, in one line."""
    context = getattr(error, "ctx", None)
    where = f"{context.command_path}: " if context is not None else ""
    hint = f" (see {context.command_path} --help)" if context is not None else ""
    return " ".join(f"{where}{error.format_message()}{hint}".split())
