"""The training commands against their configs: every config field is set by an option (or is listed here with the
reason it is not), every option has help text, and an option's own default is the config's default."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

from egogrpo.cli import grpo, reward, train
from egogrpo.config import TrainGRPOConfig, TrainPriorConfig, TrainRewardConfig

POSITIONAL = {"data", "run_dir", "resume"}
#: Config fields without an option, and why.
NOT_OPTIONS = {
    TrainPriorConfig: {"sampler"},  # validation samples with EgoAllo's sampler, as the protocols do
    TrainRewardConfig: {"sampler"},  # the prior's own sampler makes the hard negatives (the paper's)
    TrainGRPOConfig: set(),
}
#: Options whose CLI value is converted (a preset name, a comma list, a choice string): compared by hand below.
CONVERTED = {"preset", "augment", "train_splits", "perlin_lambda", "perlin_scope", "sde_window", "projection",
             "std_floor", "advantage", "log_prob_fields", "reward_model", "mirror_prob", "shape_prob", "shape_std",
             "speed_range", "time_budget"}  # fmt: skip
COMMANDS = [
    (train.train_prior, TrainPriorConfig, train.OPTION_FIELDS),
    (reward.train_reward_command, TrainRewardConfig, reward.OPTION_FIELDS),
    (grpo.train_grpo_command, TrainGRPOConfig, grpo.OPTION_FIELDS),
]


def _option_infos(command) -> dict[str, tuple[object, object]]:
    """Parameter name → (its typer OptionInfo/ArgumentInfo, its default)."""
    hints = typing.get_type_hints(command, include_extras=True)
    result = {}
    for name, parameter in inspect.signature(command).parameters.items():
        if name == "ctx":
            continue
        info = next(m for m in hints[name].__metadata__ if hasattr(m, "help"))
        result[name] = (info, parameter.default)
    return result


@pytest.mark.parametrize(("command", "config_class", "fields"), COMMANDS, ids=lambda v: getattr(v, "__name__", ""))
def test_every_config_field_has_an_option_with_help(command, config_class, fields) -> None:
    covered = set(POSITIONAL)
    for value in fields.values():
        covered |= {value} if isinstance(value, str) else set(value)
    names = {f.name for f in dataclasses.fields(config_class)}
    assert names - covered == NOT_OPTIONS[config_class]
    infos = _option_infos(command)
    assert set(fields) == set(infos) - POSITIONAL  # every option maps to fields, for --resume
    for name, (info, _) in infos.items():
        assert info.help and len(info.help) > 10, f"{command.__name__}: --{name} has no help"


@pytest.mark.parametrize(("command", "config_class", "fields"), COMMANDS, ids=lambda v: getattr(v, "__name__", ""))
def test_an_option_default_is_the_config_default(command, config_class, fields) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)}
    for name, (_, default) in _option_infos(command).items():
        field = fields.get(name)
        if name in POSITIONAL or name in CONVERTED or not isinstance(field, str) or default is None:
            continue  # None: "the preset's value" (train-grpo's overrides)
        if defaults[field] is dataclasses.MISSING:
            continue  # a required config field (e.g. prior): the command chooses its default
        assert default == defaults[field], (
            f"{command.__name__}: --{name} defaults to {default!r}, the config to {defaults[field]!r}"
        )
    # the converted ones
    if "train_splits" in fields:
        assert tuple(_option_infos(command)["train_splits"][1].split(",")) == defaults["train_splits"]
