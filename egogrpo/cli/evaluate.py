"""`egogrpo eval`: the paper's metric tables under pinned protocols (no numerics here; see egogrpo.eval.evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from egogrpo.cli.common import console, err_console
from egogrpo.config import EvalConfig


def eval_command(
    checkpoints: Annotated[list[str], typer.Argument(help="Checkpoint folders, or 'default' for the shipped prior.")],
    data: Annotated[Path, typer.Option(help="Motion file from `egogrpo preprocess`.")],
    protocol: Annotated[
        str, typer.Option(help="A protocol of data_manifests/protocols.json (egoallo, motiongrpo, cmu-test).")
    ] = "motiongrpo",
    split: Annotated[str | None, typer.Option(help="Override the protocol's split.")] = None,
    samples: Annotated[int | None, typer.Option(help="Override: samples per window.")] = None,
    seeds: Annotated[int | None, typer.Option(help="Override: use seeds 0 … N−1.")] = None,
    guidance: Annotated[
        str | None, typer.Option(help="Override: 'none', or 'post' (refinement after sampling).")
    ] = None,
    body: Annotated[
        str, typer.Option(help="The body model the data was made with: 'default' or your .npz.")
    ] = "default",
    baseline: Annotated[bool, typer.Option(help="Add a row: the mean training pose placed at the head.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write OUT.json (full protocol record), OUT.md and OUT.csv.")] = None,
) -> None:
    """Evaluate checkpoints: one row per checkpoint, mean ± standard error, every number with its protocol."""
    from egogrpo.eval.evaluate import evaluate, format_value, table_columns

    config = EvalConfig(
        data=str(data), checkpoints=tuple(checkpoints), protocol=protocol, body=body, split=split,
        samples=samples, seeds=seeds, guidance=guidance, baseline=baseline, out=None if out is None else str(out),
    )  # fmt: skip
    with err_console.status("evaluating…") as status:
        result = evaluate(config, progress=lambda text: status.update(f"evaluating {text}"))
    p = result.protocol
    table = Table(title=f"protocol {p.name}: {p.split} split, {len(result.record['data']['windows'])} windows × {p.length} frames, "
                  f"{p.samples} sample(s), {len(p.seeds)} seed(s)")  # fmt: skip
    table.add_column("method")
    for column in table_columns(p):
        table.add_column(column, justify="right")
    for row in result.rows:
        table.add_row(row.name, *(format_value(*row.values[k]) for k in p.metrics))
    console.print(table)
    if out is not None:
        console.print(
            f"record: {out.with_suffix('.json')}, tables: {out.with_suffix('.md')}, {out.with_suffix('.csv')}"
        )
