"""Data quality of a motion file, per sequence: feet below the floor, speeds, jitter, recorded glitches.

    quality = check_motion_file("free.h5")
    write_quality_report(quality, "free-quality.json")    # + free-quality.md

Measured on the stored 30 fps world joints (pelvis from T_world_root, the rest from the CPF frame;
the floor at z = 0):

- `foot_min_z_m`: the lowest ankle or toe height over the sequence (metres; negative: below the floor);
  `below_floor_share`: the share of frames with a foot joint more than 5 cm below the floor.
- `pelvis_speed_p99`, `joint_speed_p99` (m/s): the 99th percentile over frames of the pelvis speed
  and of the fastest joint's speed. Human motion in mocap corpora stays below ~7 m/s at the pelvis
  (sprinting) and ~12 m/s at any of these 22 joints; more betrays a frame rate set too high (a clip
  played faster than it was captured). A frame rate set too low slows motion down and is not flagged.
- `jitter`: `eval.metrics.jitter` (mean jerk, 10² m/s³); markerless capture shows more than optical.
- `glitch_frames`: what preprocessing found (data.glitches) and did (`glitch_policy`).

Flags: "below floor" (foot_min_z_m < −0.10 m), "too fast: frame rate?" (either p99 above its
bound), "glitch" (glitch frames found).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from egogrpo.data.crops import MotionCrop
from egogrpo.data.hdf5_schema import MotionFile
from egogrpo.eval.metrics import FOOT_JOINTS, jitter
from egogrpo.fileio import atomic_output
from egogrpo.model.placement import truth_joints

BELOW_FLOOR_FLAG_M = -0.10
BELOW_FLOOR_SHARE_M = -0.05
MAX_PELVIS_SPEED = 7.0  # m/s
MAX_JOINT_SPEED = 12.0  # m/s


@dataclass(frozen=True)
class SequenceQuality:
    """One sequence's measurements (see the module docstring) and flags."""

    name: str
    corpus: str
    person: str
    split: str
    minutes: float
    foot_min_z_m: float
    below_floor_share: float
    pelvis_speed_p99: float
    joint_speed_p99: float
    jitter: float
    glitch_frames: list[int]
    glitch_policy: str
    flags: list[str]


@dataclass(frozen=True)
class FileQuality:
    """Every sequence's quality, and the per-corpus summary."""

    path: str
    sequences: list[SequenceQuality]

    def by_corpus(self) -> dict[str, dict[str, float | int]]:
        """Per corpus: sequences, minutes, median jitter and foot minimum, flagged sequences."""
        corpora: dict[str, list[SequenceQuality]] = {}
        for sequence in self.sequences:
            corpora.setdefault(sequence.corpus, []).append(sequence)
        return {
            corpus: {
                "sequences": len(items),
                "minutes": round(sum(s.minutes for s in items), 2),
                "median_jitter": round(float(np.median([s.jitter for s in items])), 3),
                "median_joint_speed_p99": round(float(np.median([s.joint_speed_p99 for s in items])), 2),
                "lowest_foot_m": round(min(s.foot_min_z_m for s in items), 3),
                "flagged": sum(bool(s.flags) for s in items),
            }
            for corpus, items in sorted(corpora.items())
        }

    def summary_markdown(self) -> str:
        """The per-corpus table and the flagged sequences, as Markdown."""
        lines = [
            "| corpus | sequences | minutes | median jitter (10² m/s³) | median p99 joint speed (m/s) | lowest foot (m) | flagged |",
            "|---|---|---|---|---|---|---|",
        ]
        for corpus, row in self.by_corpus().items():
            lines.append(
                f"| {corpus} | {row['sequences']} | {row['minutes']} | {row['median_jitter']} | "
                f"{row['median_joint_speed_p99']} | {row['lowest_foot_m']} | {row['flagged']} |"
            )
        flagged = [s for s in self.sequences if s.flags]
        if flagged:
            lines += ["", "Flagged sequences:", ""]
            for s in flagged:
                lines.append(
                    f"- {s.name}: {'; '.join(s.flags)} (lowest foot {s.foot_min_z_m:.3f} m, p99 joint speed "
                    f"{s.joint_speed_p99:.1f} m/s, glitch frames {s.glitch_frames} {s.glitch_policy})"
                )
        return "\n".join(lines)


def sequence_quality(name: str, joints: np.ndarray, fps: float, attrs: dict[str, str | int | float]) -> SequenceQuality:
    """Measure one sequence's world joints (T, 22, 3), metres, z-up, floor at 0 (see the module docstring)."""
    feet = joints[:, list(FOOT_JOINTS), 2]
    speeds = np.linalg.norm(np.diff(joints, axis=0), axis=-1) * fps  # (T-1, 22)
    pelvis_p99 = float(np.percentile(speeds[:, 0], 99))
    joint_p99 = float(np.percentile(speeds.max(axis=1), 99))
    glitches = json.loads(str(attrs.get("glitch_frames", "[]")))
    flags = []
    if feet.min() < BELOW_FLOOR_FLAG_M:
        flags.append("below floor")
    if pelvis_p99 > MAX_PELVIS_SPEED or joint_p99 > MAX_JOINT_SPEED:
        flags.append("too fast: frame rate?")
    if glitches:
        flags.append("glitch")
    return SequenceQuality(
        name=name,
        corpus=str(attrs.get("corpus", attrs.get("dataset", ""))),
        person=str(attrs.get("person", "")),
        split=str(attrs.get("split", "")),
        minutes=len(joints) / fps / 60.0,
        foot_min_z_m=float(feet.min()),
        below_floor_share=float(np.mean((feet < BELOW_FLOOR_SHARE_M).any(axis=1))),
        pelvis_speed_p99=pelvis_p99,
        joint_speed_p99=joint_p99,
        jitter=float(jitter(torch.from_numpy(joints), fps=fps)),
        glitch_frames=[int(g) for g in glitches],
        glitch_policy=str(attrs.get("glitch_policy", "")),
        flags=flags,
    )


def check_motion_file(path: str | Path) -> FileQuality:
    """The quality of every sequence in a motion file from `egogrpo preprocess`."""
    sequences = []
    with MotionFile(path) as motion:
        for name in motion.names():
            joints = truth_joints(MotionCrop.from_arrays(motion.read(name), with_hand_quats=False)).double().numpy()
            sequences.append(sequence_quality(name, joints, motion.info.fps, motion.sequence_attrs(name)))
    return FileQuality(path=str(path), sequences=sequences)


def write_quality_report(quality: FileQuality, path: str | Path) -> None:
    """The report as JSON (every sequence, the per-corpus summary) and Markdown beside it (atomic writes)."""
    path = Path(path)
    record = {
        "file": quality.path,
        "definitions": __doc__,
        "by_corpus": quality.by_corpus(),
        "sequences": [dataclasses.asdict(s) for s in quality.sequences],
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    with atomic_output(path.with_suffix(".md")) as tmp:
        tmp.write_text(f"# Data quality: {quality.path}\n\n{quality.summary_markdown()}\n", encoding="utf-8")
