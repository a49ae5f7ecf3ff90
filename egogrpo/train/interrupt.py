"""Ctrl-C during training: the first SIGINT asks the loop to stop at the next step boundary and keep a
checkpoint there (so `--resume` continues exactly); a second one stops at once (nothing more is saved).

Every process of a multi-process run receives the signal; rank 0's request decides (`stop_requested`), so all
processes stop after the same step.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

import torch

STOP_MESSAGE = "stopping after this step with a checkpoint (Ctrl-C again to stop at once, keeping nothing more)"


class StopRequests:
    """A context in which SIGINT sets `requested` instead of raising (main thread only; elsewhere a no-op)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{STOP_MESSAGE}", file=sys.stderr, flush=True)

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def stop_requested(stops: StopRequests, accelerator: Any) -> bool:
    """Whether to stop after this step: rank 0's request, the same on every process (one process: its own flag,
    without a device tensor, so a training step pays no synchronisation for it)."""
    if accelerator.num_processes == 1:
        return stops.requested
    flag = torch.tensor([float(stops.requested)], device=accelerator.device)
    if accelerator.num_processes > 1:
        torch.distributed.broadcast(flag, src=0)
    return bool(flag.item())
