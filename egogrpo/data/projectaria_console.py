"""Keeping projectaria-tools quiet: its C++ readers print INFO lines and parse failures straight to the
process's stdout/stderr. Every call into it runs inside `console_output_captured`, and the captured
text is searched for the problem to report in a one-line error.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PROBLEM = re.compile(r"error|fail|cannot|can not", re.IGNORECASE)


@contextlib.contextmanager
def console_output_captured() -> Iterator[io.StringIO]:
    """Capture what is written to stdout/stderr inside the block, by Python code or native code.

    File descriptors 1 and 2 are pointed at a temporary file (projectaria-tools' C++ writes there
    directly), and sys.stdout/sys.stderr at the buffer. The buffer holds all of it, ANSI colour
    codes removed, once the block has ended.
    """
    buffer = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with tempfile.TemporaryFile() as sink:
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            try:
                with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                    yield buffer
            finally:
                with contextlib.suppress(Exception):  # C stdio buffers still hold native output
                    ctypes.CDLL(None).fflush(None)
                for fd, copy in saved.items():
                    os.dup2(copy, fd)
                sink.seek(0)
                buffer.write(_ANSI.sub("", sink.read().decode("utf-8", errors="replace")))
    finally:
        for copy in saved.values():
            os.close(copy)


def problem_lines(log: io.StringIO) -> list[str]:
    """The captured lines that report a failure (error, fail, cannot), stripped."""
    return [line.strip() for line in log.getvalue().splitlines() if _PROBLEM.search(line)]


def first_problem(log: io.StringIO) -> str:
    """The first captured line that reports a failure, shortened ("" if none)."""
    lines = problem_lines(log)
    return lines[0][:300] if lines else ""
