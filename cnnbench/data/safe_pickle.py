"""An unpickler that can rebuild numpy arrays and nothing else.

Pickle runs whatever callable the file names, so a downloaded pickle is code. We only accept the globals a pickled
``ndarray`` needs (under their numpy 1.x and 2.x module names, plus ``_codecs.encode`` for bytes); anything else is
refused before it is imported.
"""

from __future__ import annotations

import codecs
import io
import pickle
from typing import IO, Any

import numpy as np

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy.core.numeric", "_frombuffer"): np._core.numeric._frombuffer,  # protocol 5 out-of-band arrays
    ("numpy._core.numeric", "_frombuffer"): np._core.numeric._frombuffer,
    # Protocol-2 pickles written by Python 3 spell raw bytes as _codecs.encode(str, "latin1"): data in, data out.
    ("_codecs", "encode"): codecs.encode,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the numpy allow-list."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle global {module}.{name}: only numpy array reconstruction is allowed"
            ) from None


def load(file: IO[bytes], *, encoding: str = "latin1") -> Any:
    """Unpickle ``file`` allowing only numpy arrays (``latin1`` reads Python 2 pickles such as mnist.pkl)."""
    return NumpyOnlyUnpickler(file, encoding=encoding).load()


def loads(data: bytes, *, encoding: str = "latin1") -> Any:
    return load(io.BytesIO(data), encoding=encoding)
