"""`egogrpo eval --reward`: how well a perceptual model tells the evaluated windows' ground truth from the
motions a method generates on them (MotionGRPO Eq. 21, Table 4).

For every window the ground-truth motion (the protocol's label joints and the file's body rotations) is scored
once; every generated motion of the window (each sample of each seed) is placed on the same ground-truth CPF
trajectory and scored given it. A pair (window, generated motion) is right when s_gt > s_gen, wrong otherwise
(ties are wrong). The comparison is made on the logits, which order the motions exactly as the scores do
(the sigmoid is strictly increasing) without float32 rounding a saturated score to 1 and inventing ties.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.config import config_to_dict
from egogrpo.eval import metrics as m
from egogrpo.eval.windows import Windows, label_joints
from egogrpo.model.perceptual import (
    PerceptualModel,
    chunked_logits,
    load_perceptual_for_body,
    sample_logits,
)
from egogrpo.model.placement import broadcast_state
from egogrpo.model.state import MotionState

DEFINITION = (
    "MotionGRPO Eq. 21 on the evaluated windows: for every (window, sample, seed) a pair of the window's "
    "ground-truth motion (label joints and body rotations) and the generated motion placed on the same "
    "ground-truth CPF, both scored by the perceptual model given that CPF trajectory; Accuracy = share of pairs "
    "with s_gt > s_gen (compared on the logits: the same order, no float32 ties at s = 1), Wrong Count = pairs with "
    "s_gt <= s_gen (ties are wrong); score_gt: mean score of the windows' ground truth (each window once), "
    "score_generated: mean score of the generated motions, each ± standard error"
)


@dataclass(frozen=True)
class Judge:
    """A frozen perceptual model loaded for evaluation, and its entry in the eval record (checkpoint path and
    SHA-256, size, body model and where that was read, the metric's definition)."""

    model: PerceptualModel
    record: dict


def load_judge(path: str, body_model_id: str, device: torch.device | str = "cpu", option: str = "--reward") -> Judge:
    """The `option` (--reward, --verifier) checkpoint on `device`; not a perceptual checkpoint, or one trained for
    another body model than `body_model_id`, is an EgogrpoError (one line naming the option)."""
    model, meta, trained_for, source = load_perceptual_for_body(path, body_model_id, option, device)
    record = {
        "checkpoint": str(Path(path).resolve()),
        "weights_sha256": meta.get("weights_sha256"),
        "config": config_to_dict(model.config),
        "body_model_id": trained_for,
        "body_model_source": source,
        "extra": meta.get("extra", {}),
        "definition": DEFINITION,
    }
    return Judge(model, record)


def ground_truth_logits(
    judge: Judge, body: BodyModel, windows: Windows, labels: str, chunk: int, device: torch.device | str = "cpu"
) -> Float[Tensor, "N"]:  # noqa: F821
    """Logits (N,) of each window's ground-truth motion (its body rotations and the protocol's label joints),
    `chunk` windows at a time on `device` (`body` there too); returned on the CPU."""
    parts = []
    for first in range(0, len(windows), chunk):
        crops = windows.chunk(first, min(first + chunk, len(windows)), device).crops
        joints = label_joints(body, crops, labels)[..., 1:22, :]  # the 21 non-root body joints
        parts.append(chunked_logits(judge.model, crops.body_quats, joints, crops.T_world_cpf, chunk).cpu())
    return torch.cat(parts)


def motion_logits(
    judge: Judge, body: BodyModel, state: MotionState, windows: Windows, chunk: int
) -> Float[Tensor, "N S"]:
    """Logits (N, S) of generated motions (a state with leading (N, S), or a baseline that broadcasts), each
    placed on its window's ground-truth CPF."""
    state = broadcast_state(state, windows.crops)
    return sample_logits(judge.model, body, state, windows.crops.T_world_cpf, chunk)


@dataclass
class Tally:
    """The pairs of one table row, added chunk by chunk: the wrong count and the generated motions' scores."""

    wrong: int = 0
    pairs: int = 0
    generated_scores: list[Tensor] = field(default_factory=list)

    def add(self, gt: Float[Tensor, "N"], generated: Float[Tensor, "N S"]) -> None:  # noqa: F821
        """Add the pairs of N windows: ground-truth logits (N,) against S generated logits each (N, S)."""
        _, wrong = m.perceptual_accuracy(gt[:, None], generated)
        self.wrong += wrong
        self.pairs += generated.numel()
        self.generated_scores.append(torch.sigmoid(generated.double()).flatten().cpu())

    def summary(self, gt: Float[Tensor, "W"]) -> dict:  # noqa: F821
        """Accuracy (a fraction), wrong_count, pairs, and mean ± standard error of the scores of the windows'
        ground truth (logits `gt` of every window, each once) and of the generated motions."""
        return {
            "accuracy": (self.pairs - self.wrong) / self.pairs,
            "wrong_count": self.wrong,
            "pairs": self.pairs,
            "score_gt": _mean_and_error(torch.sigmoid(gt.double())),
            "score_generated": _mean_and_error(torch.cat(self.generated_scores)),
        }


def _mean_and_error(scores: Tensor) -> dict[str, float]:
    mean, error = m.mean_and_standard_error(scores)
    return {"mean": mean, "standard_error": error}
