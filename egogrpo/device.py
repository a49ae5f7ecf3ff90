"""The one way a command names where it computes (`--device`)."""

from __future__ import annotations

import torch

from egogrpo.errors import EgogrpoError


def resolve_device(text: str) -> torch.device:
    """ "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N" as a torch device; an unknown or
    unavailable device is an EgogrpoError."""
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise EgogrpoError(f"--device {text!r}: not a device; give cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0 or (device.index or 0) >= count:
            raise EgogrpoError(f"--device {text}: no such CUDA device on this machine ({count} available)")
    elif device.type != "cpu":
        raise EgogrpoError(f"--device {text!r}: only cpu and cuda devices are supported")
    return device
