"""`egogrpo preprocess …`: one command per source, each writing the same self-describing HDF5 layout."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from egogrpo.cli.common import console, err_console
from egogrpo.config import PreprocessConfig, ProcessConfig
from egogrpo.data.preprocess import PreprocessSummary, merge_motion_files, run_preprocess, validate_config
from egogrpo.errors import EgogrpoError
from egogrpo.fileio import check_writable

app = typer.Typer(help="Turn mocap datasets into egogrpo's HDF5 layout (30 fps, floor at z = 0, contacts, CPF).")

Out = Annotated[Path, typer.Option("--out", "-o", help="The HDF5 file to write.", dir_okay=False)]
Mirror = Annotated[bool, typer.Option(help="Also write a left/right mirrored copy of every clip.")]
SkipShort = Annotated[bool, typer.Option(help="Leave out clips shorter than one crop instead of stopping.")]
Overwrite = Annotated[bool, typer.Option(help="Replace an existing output file.")]
Workers = Annotated[int, typer.Option(help="Worker processes (0: one per CPU core).")]
MinFrames = Annotated[int, typer.Option(help="Shortest sequence kept, in 30 fps frames (one training crop).")]
Splits = Annotated[str, typer.Option(help="Comma-separated splits to write (from data_manifests/).")]
FitSmplh = Annotated[Path | None, typer.Option(help="Fit SMPL-H betas (your .npz) instead of the default body.")]
Glitches = Annotated[
    str, typer.Option(help="Single-frame glitches in the source: keep (record only), trim (longest clean part), drop.")
]
Licence = Annotated[
    str, typer.Option(help="The data's licence, recorded in every sequence (default: the corpus's, from corpora.json).")
]


def _splits(text: str) -> tuple[str, ...]:
    splits = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in splits if s not in ("train", "val", "test")]
    if bad or not splits:
        raise typer.BadParameter(
            f"unknown split(s) {', '.join(bad) or '(none)'}; use train, val, test", param_hint="--splits"
        )
    return splits


_COLUMNS = (
    TextColumn("[bold]{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
    TimeRemainingColumn(),
    TextColumn("{task.fields[clip]}"),
)


def _run(config: PreprocessConfig) -> None:
    """Run with a progress bar, then print what was written."""
    _with_progress(f"preprocess {config.source}", lambda progress: run_preprocess(config, progress))


def _with_progress(description: str, work: Callable[[Callable[[int, int, str], None]], PreprocessSummary]) -> None:
    """Call `work(progress)` under a progress bar, then print what it wrote."""
    with Progress(*_COLUMNS, console=err_console, transient=True, disable=not err_console.is_terminal) as bar:
        task = bar.add_task(description, total=None, clip="")

        def progress(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, clip=name)

        summary = work(progress)
    _report(summary)


def _report(summary: PreprocessSummary) -> None:
    size_mb = summary.out.stat().st_size / 1e6
    console.print(
        f"wrote {len(summary.written)} sequence(s), {summary.frames} frames "
        f"({summary.frames / 30 / 60:.1f} min at 30 fps) to {summary.out} ({size_mb:.1f} MB) in {summary.seconds:.1f} s"
    )
    if summary.splits:
        console.print("splits: " + ", ".join(f"{s} {n}" for s, n in sorted(summary.splits.items())))
    if summary.namings:
        namings = ", ".join(f"{name} ({n})" for name, n in sorted(summary.namings.items()))
        console.print(
            f"skeleton naming detected: {namings}; leading bind frame dropped in {summary.bind_frames_dropped}"
        )
    if summary.resumed:
        console.print(f"resumed: {len(summary.resumed)} clip(s) were already finished by an earlier run")
    if summary.skipped_short:
        console.print(f"skipped (shorter than one crop): {', '.join(summary.skipped_short)}")
    for clip, reason in summary.dropped.items():
        console.print(f"dropped by --glitches drop: {clip} ({reason})")
    reasons: dict[str, list[str]] = {}
    for clip, reason in summary.excluded.items():
        reasons.setdefault(reason.split(": ", 1)[-1], []).append(clip)
    for reason, clips in reasons.items():
        console.print(f"excluded by the manifest ({reason}): {', '.join(clips)}")


def _process(min_frames: int, trim: float = 0.0) -> ProcessConfig:
    return dataclasses.replace(ProcessConfig(), min_frames=min_frames, trim_fraction=trim)


@app.command("cmu")
def cmu(
    root: Annotated[Path, typer.Argument(help="Folder with CMU subject folders (each: one .asf and its .amc clips).")],
    out: Out,
    smplh: FitSmplh = None,
    splits: Splits = "train,val,test",
    fps: Annotated[float, typer.Option(help="Frame rate of the AMC files (CMU: 120).")] = 120.0,
    split_manifest: Annotated[
        str,
        typer.Option(help="Split list in data_manifests/: cmu (clip split) or cmu_subject02 (subject 02 held out)."),
    ] = "cmu",
    corpus: Annotated[
        str, typer.Option(help="cmu, or hdm05 (HDM_<actor>_….amc; named HDM05/<actor>/…, all in train).")
    ] = "cmu",
    licence: Licence = "",
    glitches: Glitches = "keep",
    mirror: Mirror = False,
    skip_short: SkipShort = False,
    min_frames: MinFrames = 128,
    overwrite: Overwrite = False,
    workers: Workers = 0,
) -> None:
    """ASF/AMC mocap (CMU, HDM05), retargeted onto the body model (default body, or SMPL-H with --smplh)."""
    _run(
        PreprocessConfig(
            source="cmu",
            inputs=(str(root),),
            out=str(out),
            body=str(smplh) if smplh else "default",
            splits=_splits(splits),
            process=_process(min_frames),
            mirror=mirror,
            skip_short=skip_short,
            overwrite=overwrite,
            workers=workers,
            source_fps=fps,
            split_manifest=split_manifest,
            corpus=corpus,
            licence=licence,
            glitches=glitches,
        )
    )


@app.command("bvh")
def bvh(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="BVH files or folders of them (MotionBuilder/Mixamo, 3ds Max, Biped, CMU, Xsens, … naming)."
        ),
    ],
    out: Out,
    smplh: FitSmplh = None,
    units: Annotated[str, typer.Option(help="Length unit: auto, m, cm, mm, inch, cmu, or metres per unit.")] = "auto",
    split: Annotated[
        str, typer.Option(help="The split to record the clips under (cmu-bvh: by the CMU split).")
    ] = "train",
    corpus: Annotated[
        str, typer.Option(help="cmu-bvh, 100style or accad (data_manifests/corpora.json): names, split, licence.")
    ] = "",
    fps: Annotated[
        float | None, typer.Option(help="The true frame rate, overriding the files' Frame Time (recorded).")
    ] = None,
    licence: Licence = "",
    glitches: Glitches = "keep",
    mirror: Mirror = False,
    skip_short: SkipShort = False,
    min_frames: MinFrames = 128,
    overwrite: Overwrite = False,
    workers: Workers = 0,
) -> None:
    """BVH files, retargeted onto the body model; joint namings are recognised, an unknown skeleton is refused."""
    _run(
        PreprocessConfig(
            source="bvh",
            inputs=tuple(str(f) for f in files),
            out=str(out),
            body=str(smplh) if smplh else "default",
            splits=(split,),
            process=_process(min_frames),
            mirror=mirror,
            skip_short=skip_short,
            overwrite=overwrite,
            workers=workers,
            bvh_units=units,
            bvh_split=_splits(split)[0],
            bvh_fps=fps,
            corpus=corpus,
            licence=licence,
            glitches=glitches,
        )
    )


@app.command("corpus")
def corpus_command(
    manifest: Annotated[
        Path,
        typer.Argument(help="A corpus manifest (e.g. data_manifests/free.json): files, readers, licences, people."),
    ],
    root: Annotated[Path, typer.Option(help="The folder the manifest's file patterns are relative to.")],
    out: Out,
    report: Annotated[
        Path | None, typer.Option(help="Also write a data quality report (JSON; a Markdown table beside it).")
    ] = None,
    glitches: Glitches = "trim",
    splits: Splits = "train,val,test",
    mirror: Mirror = False,
    min_frames: MinFrames = 128,
    overwrite: Overwrite = False,
    workers: Workers = 0,
) -> None:
    """Every file of several corpora in one training set, split by person (whole people in train, val or test)."""
    from egogrpo.data.corpus import corpus_tasks, load_corpus_manifest, split_people
    from egogrpo.eval.data_check import check_motion_file, write_quality_report

    if report is not None:
        check_writable(report, "--report")
        if not overwrite and any(p.is_file() for p in (report, report.with_suffix(".md"))):
            raise EgogrpoError(f"--report {report}: exists; pass --overwrite to replace it")
    config = PreprocessConfig(
        source="corpus",
        inputs=(str(manifest),),
        out=str(out),
        splits=_splits(splits),
        process=_process(min_frames),
        mirror=mirror,
        skip_short=True,
        overwrite=overwrite,
        workers=workers,
        corpus_root=str(root),
        glitches=glitches,
    )
    validate_config(config)
    parsed = load_corpus_manifest(manifest)
    clips, _ = corpus_tasks(parsed, root)
    _run(config)
    for split, people in split_people(clips).items():
        console.print(f"{split}: {len(people)} people: {', '.join(people)}")
    console.print("licences (recorded in every sequence and in the file's options_json):")
    for licence in parsed.licences.values():
        users = [s.name for s in parsed.sources if s.licence == licence]
        console.print(
            f"- {', '.join(users)}: {licence.text}" + (f" {licence.acknowledgement}" if licence.acknowledgement else "")
        )
    if report is not None:
        quality = check_motion_file(out)
        write_quality_report(quality, report)
        console.print(quality.summary_markdown())
        console.print(f"quality report: {report} and {report.with_suffix('.md')}")


@app.command("amass")
def amass(
    root: Annotated[Path, typer.Argument(help="AMASS root: <root>/<Dataset>/…/*_poses.npz (SMPL+H G release).")],
    smplh: Annotated[Path, typer.Option(help="The neutral SMPL-H model .npz (16 betas).")],
    out: Out,
    smplh_male: Annotated[Path | None, typer.Option(help="The male SMPL-H .npz, to map male betas to neutral.")] = None,
    smplh_female: Annotated[Path | None, typer.Option(help="The female SMPL-H .npz.")] = None,
    splits: Splits = "train,val,test",
    trim: Annotated[float, typer.Option(help="Fraction dropped at each end of every clip (EgoAllo: 0.1).")] = 0.1,
    mirror: Mirror = False,
    skip_short: SkipShort = False,
    min_frames: MinFrames = 128,
    overwrite: Overwrite = False,
    workers: Workers = 0,
) -> None:
    """AMASS SMPL+H G: EgoAllo's splits, frame-rate fixes and skip list; gendered betas mapped to the neutral model."""
    _run(
        PreprocessConfig(
            source="amass",
            inputs=(str(root),),
            out=str(out),
            body=str(smplh),
            splits=_splits(splits),
            process=_process(min_frames, trim),
            mirror=mirror,
            skip_short=skip_short,
            overwrite=overwrite,
            workers=workers,
            male_model=str(smplh_male) if smplh_male else None,
            female_model=str(smplh_female) if smplh_female else None,
        )
    )


@app.command("rich")
def rich(
    root: Annotated[
        Path, typer.Argument(help="RICH download: bodies/<split>/<sequence>/<frame>/<subject>.pkl and multicam2world/.")
    ],
    smplx: Annotated[Path, typer.Option(help="The neutral SMPL-X .npz the output is stored for.")],
    smplx_male: Annotated[Path, typer.Option(help="The male SMPL-X .npz (RICH's fits are gendered).")],
    smplx_female: Annotated[Path, typer.Option(help="The female SMPL-X .npz.")],
    out: Out,
    splits: Splits = "test",
    skip_short: SkipShort = False,
    min_frames: MinFrames = 128,
    overwrite: Overwrite = False,
    workers: Workers = 0,
) -> None:
    """RICH SMPL-X fits (pickles read with a restricted unpickler) in the official splits; ground truth from the gendered fits."""
    _run(
        PreprocessConfig(
            source="rich",
            inputs=(str(root),),
            out=str(out),
            body=str(smplx),
            splits=_splits(splits),
            process=_process(min_frames),
            skip_short=skip_short,
            overwrite=overwrite,
            workers=workers,
            male_model=str(smplx_male),
            female_model=str(smplx_female),
        )
    )


@app.command("adt")
def adt(
    folders: Annotated[
        list[Path], typer.Argument(help="Aria Digital Twin sequence folders (device trajectory + skeleton).")
    ],
    out: Out,
    smplh: FitSmplh = None,
    min_frames: MinFrames = 1,
    overwrite: Overwrite = False,
    workers: Workers = 0,
) -> None:
    """ADT sequences for evaluation: the Aria device's CPF as the condition, the wearer's skeleton as ground truth."""
    _run(
        PreprocessConfig(
            source="adt",
            inputs=tuple(str(f) for f in folders),
            out=str(out),
            body=str(smplh) if smplh else "default",
            splits=("test",),
            process=_process(min_frames),
            overwrite=overwrite,
            workers=workers,
        )
    )


@app.command("merge")
def merge(
    files: Annotated[
        list[Path], typer.Argument(help="Motion files from `egogrpo preprocess` (same body model and fps).")
    ],
    out: Out,
    overwrite: Overwrite = False,
) -> None:
    """Merge motion files into one (e.g. several corpora for one training run); sequences keep their attributes."""
    inputs = tuple(str(f) for f in files)
    _with_progress("merge", lambda progress: merge_motion_files(inputs, str(out), overwrite, progress))
