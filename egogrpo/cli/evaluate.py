"""`egogrpo eval`: the paper's metric tables under pinned protocols (no numerics here; see egogrpo.eval.evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from egogrpo.cli.common import console, err_console
from egogrpo.config import EvalConfig


def eval_command(
    checkpoints: Annotated[list[str], typer.Argument(help="Checkpoint folders, or 'default' for the shipped prior.")],
    data: Annotated[Path, typer.Option(help="Motion file from `egogrpo preprocess`.")],
    protocol: Annotated[
        str,
        typer.Option(
            help="A protocol of data_manifests/protocols.json (egoallo, motiongrpo, cmu-test, cmu-subject02, people)."
        ),
    ] = "motiongrpo",
    split: Annotated[
        str | None, typer.Option(help="Override the protocol's split: a split, several comma-separated, or 'all'.")
    ] = None,
    subset: Annotated[
        str | None,
        typer.Option(help="Only the sequences whose name starts with this, e.g. CMU/ or ReActIdle/ (one corpus)."),
    ] = None,
    samples: Annotated[int | None, typer.Option(help="Override: samples per window (≥ 1).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Override: use seeds 0 … N−1 (N ≥ 1).")] = None,
    guidance: Annotated[
        str | None, typer.Option(help="Override: 'none', or 'post' (refinement after sampling).")
    ] = None,
    body: Annotated[
        str, typer.Option(help="The body model the data was made with: 'default' or your .npz.")
    ] = "default",
    baseline: Annotated[bool, typer.Option(help="Add a row: the mean training pose placed at the head.")] = False,
    baseline_from: Annotated[
        Path | None,
        typer.Option(help="The baseline's training data: a motion file whose train split gives the mean pose."),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Where to sample: auto (CUDA when present), cpu, cuda or cuda:N.")
    ] = "auto",
    chunk_size: Annotated[
        int, typer.Option(help="Windows sampled at once (bounds memory; results do not depend on it).")
    ] = 64,
    projection: Annotated[
        str,
        typer.Option(
            help="The sampler's SO(3) projection: polar (the default: the same rotations as the protocol's svd to "
            "float32 rounding, faster) or svd (EgoAllo's computation); the record says which."
        ),
    ] = "polar",
    bf16: Annotated[bool, typer.Option(help="bf16 autocast of the denoiser while sampling (faster).")] = False,
    solver: Annotated[
        str | None,
        typer.Option(
            help="Replace the protocol's sampler: egoallo (30 steps), ddim (deterministic) or dpmpp2m "
            "(DPM-Solver++ 2M); the record says which."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="--solver ddim/dpmpp2m: sampler steps.")] = None,
    spacing: Annotated[
        str | None, typer.Option(help="--solver ddim/dpmpp2m: linear (evenly strided) or quadratic timesteps.")
    ] = None,
    reward: Annotated[
        Path | None,
        typer.Option(
            help="Perceptual model from `train-reward`: adds Acc (%) and Wrong columns (paper Eq. 21) — how often it "
            "scores a window's ground truth above the generated motion."
        ),
    ] = None,
    combine: Annotated[
        str,
        typer.Option(
            help="Test-time: 'mean' of --candidates samples, or the 'best' the --verifier scores highest ('none': off)."
        ),
    ] = "none",
    candidates: Annotated[int, typer.Option(help="Samples per window and seed that --combine turns into one.")] = 4,
    verifier: Annotated[
        Path | None, typer.Option(help="--combine best: the perceptual model (train-reward) that scores candidates.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write OUT.json (full protocol record), OUT.md and OUT.csv.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing OUT.json, OUT.md and OUT.csv.")] = False,
) -> None:
    """Evaluate checkpoints: one row per checkpoint, mean ± standard error, every number with its protocol."""
    from egogrpo.eval.evaluate import (
        evaluate,
        markdown_table,
        paired_markdown,
        report_paths,
        row_cells,
        summary_line,
        table_columns,
    )  # fmt: skip

    config = EvalConfig(
        data=str(data), checkpoints=tuple(checkpoints), protocol=protocol, body=body, split=split,
        subset=subset, samples=samples, seeds=seeds, guidance=guidance, baseline=baseline,
        baseline_from=None if baseline_from is None else str(baseline_from), out=None if out is None else str(out), overwrite=overwrite,
        device=device, chunk_size=chunk_size, projection=projection, bf16=bf16, solver=solver, steps=steps,
        spacing=spacing,
        reward=None if reward is None else str(reward), combine=combine, candidates=candidates,
        verifier=None if verifier is None else str(verifier),
    )  # fmt: skip
    interactive = err_console.is_terminal
    columns = (
        TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TextColumn("windows"), TimeElapsedColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )  # fmt: skip
    with Progress(*columns, console=err_console, transient=True, disable=not interactive) as bar:
        task = bar.add_task("eval", total=None, info="")

        def progress(done: int, total: int, text: str) -> None:
            bar.update(task, completed=done, total=total, info=text)
            if not interactive:  # logs, CI, nohup: one line per chunk
                err_console.print(f"eval {done}/{total}: {text}", soft_wrap=True)

        result = evaluate(config, progress=progress)
    p = result.protocol
    judged = reward is not None
    if console.is_terminal:
        table = Table(title=f"protocol {p.name}: {','.join(p.splits)} split, {len(result.record['data']['windows'])} "
                      f"windows × {p.length} frames, {p.samples} sample(s), {len(p.seeds)} seed(s)")  # fmt: skip
        table.add_column("method")
        for column in table_columns(p, judged):
            table.add_column(column, justify="right")
        for row in result.rows:
            table.add_row(row.name, *row_cells(p, row, judged))
        console.print(table)
        for line in paired_markdown(p, result.record["paired"]):
            console.print(line, soft_wrap=True, markup=False)
    else:  # logs and CI: the full Markdown table, never cut to a terminal width
        typer.echo(f"Protocol {p.name}, split {','.join(p.splits)}")
        paired = paired_markdown(p, result.record["paired"])
        lines = [*markdown_table(p, result.rows, judged), "", *paired, *([""] if paired else [])]
        for line in [*lines, summary_line(p, result.record)]:
            typer.echo(line)
    if out is not None:
        paths = report_paths(out)
        console.print(
            f"record: {paths['.json']}, tables: {paths['.md']}, {paths['.csv']}",
            soft_wrap=True,
        )
