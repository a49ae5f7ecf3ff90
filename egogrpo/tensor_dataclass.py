"""One helper for dataclasses of arrays (tensors or numpy arrays): apply a function to every field that is set."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

D = TypeVar("D")


def map_fields(obj: D, fn: Callable[[Any], Any]) -> D:
    """A copy of the (frozen or not) dataclass `obj` with `fn` applied to every field; None stays None."""
    values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
    return dataclasses.replace(obj, **{k: None if v is None else fn(v) for k, v in values.items()})  # type: ignore[type-var]
