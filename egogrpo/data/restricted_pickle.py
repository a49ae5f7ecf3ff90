"""Load pickles that hold only numpy arrays and plain containers, refusing everything else.

A pickle can name any importable callable and call it while loading (`os.system`, `eval`, …), so
`pickle.load` on a downloaded file runs whatever code the file asks for. This loader resolves only
a fixed list of globals that rebuild arrays, dtypes, numpy scalars and builtin containers; any other
global stops the load before it is called. What remains possible is building those objects
(a hostile file can still ask for a large allocation), not running code.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from egogrpo.errors import EgogrpoError

try:  # numpy ≥ 2 keeps its internals in numpy._core; numpy 1.x in numpy.core
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """(module, name) as written in a pickle → the object it resolves to."""
    numpy_internals = {
        "_reconstruct": _multiarray._reconstruct,  # ndarray.__reduce__ (protocols 0–4)
        "scalar": _multiarray.scalar,  # numpy scalars such as np.float64(1.0)
    }
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocols 0–2: encode(str, "latin1")
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        for name, obj in numpy_internals.items():
            allowed[(module, name)] = obj
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = _numeric._frombuffer  # ndarray.__reduce_ex__ (protocol 5)
    for module in ("builtins", "__builtin__"):  # __builtin__: protocol 0–2 pickles written by Python 2
        for obj in (dict, list, tuple, set, frozenset, complex, bytes, bytearray):
            allowed[(module, obj.__name__)] = obj
    return allowed


_ALLOWED = _allowed_globals()


class _Refused(Exception):
    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name}")
        self.module, self.name = module, name


class _ArrayUnpickler(pickle.Unpickler):
    """An Unpickler whose `find_class` resolves only `_ALLOWED` (nothing is imported)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")


def load_restricted_pickle(path: str | Path) -> Any:
    """The object stored in a pickle of numpy arrays and plain containers (dict, list, tuple, set, …).

    Python 2 pickles load too (byte strings are decoded as latin-1, as numpy needs). Raises
    EgogrpoError, one line naming the file, for a missing, truncated or corrupt file and for a
    pickle that references anything else (the refused global is named; it is never imported or called).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EgogrpoError(f"{path}: no such file") from None
    except OSError as e:
        raise EgogrpoError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    try:
        return _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _Refused as e:
        raise EgogrpoError(
            f"{path}: refused to unpickle: it references {e.module}.{e.name}, and only numpy arrays "
            "and plain containers are loaded (a pickle can run code through such references)"
        ) from None
    except RecursionError:
        raise EgogrpoError(f"{path}: not a readable pickle (nested too deeply)") from None
    except Exception as e:  # truncated or corrupt data raises many types (EOFError, UnpicklingError, …)
        message = " ".join(str(e).split())[:200]
        raise EgogrpoError(
            f"{path}: not a readable pickle, truncated or corrupt ({type(e).__name__}: {message})"
        ) from None
