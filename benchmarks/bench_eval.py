"""Evaluation speed and memory: a chunked `egoallo`-protocol eval on synthetic data built from the CMU sample clips.

The motion file is made of real CMU motion (the sample clips, preprocessed onto the default body)
cut into prefixes of varied length, so the windows, labels and metrics are those of real data; the
model is a randomly initialised denoiser of the chosen preset (sampling cost does not depend on the
weights). The evaluation runs in a child process, so its peak memory (getrusage max RSS) is the
evaluation's own, not the data preparation's.

    bench_eval.py                          # short: 12 sequences (~12 windows), `tiny` preset
    bench_eval.py --amass                  # AMASS-test-sized: 280 sequences, 50 000 frames (~380 windows)
    bench_eval.py --amass --preset egoallo --max-chunks 1 --chunk-size 16   # the 50 M model, first chunk

EgoAllo's AMASS test split (Transitions_mocap + SSM_synced, middle 80 % of each clip, with the mirrored
copies) is estimated here at ~280 sequences and ~50 000 frames at 30 fps; pass --sequences/--frames
for another size. With --max-chunks the child stops after that many chunks and reports the time per
window, from which the full run's time is extrapolated (and labelled as such).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cmu_subjects


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def prepare(folder: Path, sequences: int, frames: int, preset: str, seed: int = 0) -> tuple[Path, Path] | None:
    """A test-split motion file of `sequences` CMU prefixes summing to about `frames`, and a random checkpoint."""
    import numpy as np

    from egogrpo.body import load_body_model
    from egogrpo.config import DENOISER_PRESETS, PreprocessConfig
    from egogrpo.data.hdf5_schema import MotionFile, MotionFileWriter
    from egogrpo.data.preprocess import run_preprocess
    from egogrpo.model.checkpoint import save_checkpoint
    from egogrpo.model.denoiser import EgoDenoiser

    subjects = cmu_subjects()
    if subjects is None:
        return None
    cmu = folder / "cmu.h5"
    run_preprocess(PreprocessConfig(source="cmu", inputs=(str(subjects),), out=str(cmu), workers=2))
    data = folder / "synthetic.h5"
    rng = np.random.default_rng(seed)
    mean = frames / sequences  # lengths uniform in [0.45, 1.55]·mean: some shorter than one 129-frame slice
    lengths = rng.integers(int(0.45 * mean), int(1.55 * mean) + 1, size=sequences)
    with MotionFile(cmu) as source:
        clips = [(name, source.read(name)) for name in source.names()]
        with MotionFileWriter(data, source.info) as writer:
            for i, length in enumerate(lengths):
                name, arrays = clips[i % len(clips)]
                length = min(int(length), arrays.num_frames)
                cut = dataclasses.replace(
                    arrays,
                    **{
                        f.name: getattr(arrays, f.name)[:length]
                        for f in dataclasses.fields(arrays)
                        if f.name != "betas" and getattr(arrays, f.name) is not None
                    },
                )
                writer.write(f"SYN/{i:04d}", cut, {"source_path": name, "dataset": "synthetic", "split": "test"})
    body = load_body_model("default")
    config = dataclasses.replace(DENOISER_PRESETS[preset], num_betas=body.num_betas)
    checkpoint = save_checkpoint(folder / "checkpoint", EgoDenoiser(config), config, body.model_id)
    return data, checkpoint


class _Stop(Exception):
    pass


def child(args: argparse.Namespace) -> None:
    """Run the evaluation and print one JSON line of measurements."""
    import torch

    from egogrpo.config import EvalConfig
    from egogrpo.eval.evaluate import evaluate

    torch.set_num_threads(args.threads)
    rss_start = _max_rss_mb()
    chunks: list[dict] = []
    start = time.perf_counter()

    def progress(done: int, total: int, text: str) -> None:
        chunks.append(
            {"done": done, "total": total, "seconds": time.perf_counter() - start, "max_rss_mb": _max_rss_mb()}
        )
        if args.max_chunks and done >= args.max_chunks:
            raise _Stop

    config = EvalConfig(
        data=args.data,
        checkpoints=(args.checkpoint,),
        protocol="egoallo",
        chunk_size=args.chunk_size,
        device=args.device,
    )
    result = None
    try:
        result = evaluate(config, progress=progress)
    except _Stop:
        pass
    seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds, "chunks": chunks, "max_rss_start_mb": rss_start, "max_rss_mb": _max_rss_mb(),
        "cuda_max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "rows": None if result is None else {r.name: r.values.get("mpjpe") for r in result.rows},
        "windows": None if result is None else len(result.record["data"]["windows"]),
    }))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """`argv`: the options (none under run_all: the short run)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amass", action="store_true", help="AMASS-test-sized data (280 sequences, 50 000 frames)")
    parser.add_argument("--sequences", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--preset", default="tiny", help="denoiser preset: tiny, cpu, small, egoallo (50 M)")
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--max-chunks", type=int, default=0, help="stop after this many chunks (0: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("DATA", "CHECKPOINT"), help=argparse.SUPPRESS)
    args = parser.parse_args([] if argv is None else argv)
    if args.child:
        args.data, args.checkpoint = args.child
        child(args)
        return
    sequences = args.sequences or (280 if args.amass else 12)
    frames = args.frames or (50_000 if args.amass else 2_000)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = prepare(Path(tmp), sequences, frames, args.preset)
        if prepared is None:
            return
        data, checkpoint = prepared
        command = [sys.executable, __file__, "--child", str(data), str(checkpoint), "--chunk-size", str(args.chunk_size),
                   "--max-chunks", str(args.max_chunks), "--device", args.device, "--threads", str(args.threads)]  # fmt: skip
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    m = json.loads(output.strip().splitlines()[-1])
    last = m["chunks"][-1] if m["chunks"] else None
    total_chunks = last["total"] if last else 0
    print(f"egoallo protocol, {args.preset} preset, {sequences} sequences / ~{frames} frames, chunk {args.chunk_size} "
          f"windows, device {args.device}, {args.threads} threads")  # fmt: skip
    if m["windows"] is not None:
        print(f"  {m['windows']} windows in {total_chunks} chunks: {m['seconds']:.1f} s in all "
              f"({m['seconds'] / m['windows']:.2f} s per window, ground-truth and oracle rows, sampling, metrics)")  # fmt: skip
    elif last is not None:
        done = last["done"]
        per_chunk = last["seconds"] / done
        print(f"  stopped after {done} of {total_chunks} chunks: {last['seconds']:.1f} s "
              f"({per_chunk:.1f} s per chunk of {args.chunk_size} windows; all {total_chunks} chunks extrapolated: "
              f"~{per_chunk * total_chunks / 60:.0f} min)")  # fmt: skip
    rss = [c["max_rss_mb"] for c in m["chunks"]]
    print(f"  peak RSS: {m['max_rss_mb']:.0f} MB (after imports and loading: {m['max_rss_start_mb']:.0f} MB; "
          f"after each chunk: {', '.join(f'{r:.0f}' for r in rss[:8])}{' …' if len(rss) > 8 else ''} MB)")  # fmt: skip
    if m["cuda_max_allocated_mb"] is not None:
        print(f"  CUDA peak allocated: {m['cuda_max_allocated_mb']:.0f} MB")
    if m["rows"]:
        for name, value in m["rows"].items():
            if value is not None:
                print(f"  {name:<52} MPJPE {value[0]:8.3f} ± {value[1]:.3f} mm")


if __name__ == "__main__":
    main(sys.argv[1:])
