"""Config dataclasses round-trip through JSON and refuse what they do not understand."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from egogrpo.config import config_from_dict, config_to_dict, load_config, save_config
from egogrpo.errors import EgogrpoError


@dataclass(frozen=True)
class Inner:
    width: int = 4
    rate: float = 1e-4


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    splits: tuple[str, ...] = ("train",)
    out: Path | None = None


def test_round_trip(tmp_path: Path) -> None:
    config = Outer(name="x", inner=Inner(width=8, rate=3), splits=("train", "val"), out=Path("/tmp/run"))
    save_config(config, tmp_path / "c.json")
    assert load_config(Outer, tmp_path / "c.json") == config
    assert config_to_dict(config)["splits"] == ["train", "val"]
    assert config_from_dict(Outer, {"name": "y"}) == Outer(name="y")


def test_bad_configs(tmp_path: Path) -> None:
    with pytest.raises(EgogrpoError, match="unknown key"):
        config_from_dict(Outer, {"name": "x", "typo": 1})
    with pytest.raises(EgogrpoError, match="missing key name"):
        config_from_dict(Outer, {})
    with pytest.raises(EgogrpoError, match="expected int"):
        config_from_dict(Outer, {"name": "x", "inner": {"width": "wide"}})
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(EgogrpoError, match="not valid JSON"):
        load_config(Outer, tmp_path / "broken.json")
