"""train-grpo's update rules, one module each (`base` says what a rule is), registered here by name."""

from __future__ import annotations

from egogrpo.errors import EgogrpoError
from egogrpo.train.rules.base import RolloutNeeds, UpdateRule
from egogrpo.train.rules.draft import DraftRule
from egogrpo.train.rules.grpo import GRPORule
from egogrpo.train.rules.matching import MatchingRule

#: `TrainGRPOConfig.algo` → its rule; grpo, the paper's, is the default.
RULES: dict[str, UpdateRule] = {
    "grpo": GRPORule(),
    "awm": MatchingRule("awm"),
    "nft": MatchingRule("nft"),
    "draft": DraftRule(),
}


def rule_for(name: str) -> UpdateRule:
    """The registered rule called `name` (EgogrpoError naming --algo otherwise)."""
    if name not in RULES:
        raise EgogrpoError(f"--algo must be one of {', '.join(RULES)}, got {name!r}")
    return RULES[name]


__all__ = ["RULES", "RolloutNeeds", "UpdateRule", "rule_for"]
