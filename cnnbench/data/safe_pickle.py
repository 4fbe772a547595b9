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


# --- PyTorch's legacy (pre-zip) torch.save format, read without torch -------------------------------------------
# The file is five pickles in a row: a magic number, the protocol version, system info, the object (tensors refer
# to storages by persistent id), then the list of storage keys; after them each storage's raw bytes, preceded by its
# element count. Only the globals a state dict of tensors needs are allowed, each replaced by our own function.

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Tensor:
    """A tensor waiting for its storage's bytes: storage key, offset, shape and strides (in elements)."""

    def __init__(self, storage, offset, size, stride, *_):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


class _TorchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            import collections

            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _Tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafePickleError(f"refusing to unpickle global {module}.{name}: only a state dict's tensors are allowed")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _size = pid[:5]
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise UnsafePickleError(f"unexpected persistent id {pid!r}")
        return key, storage_type.dtype


class _NothingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise UnsafePickleError(f"refusing to unpickle global {module}.{name}")


def load_torch_legacy(file: IO[bytes]) -> dict[str, np.ndarray]:
    """A state dict saved by ``torch.save`` in the legacy format, as numpy arrays (no torch, no arbitrary code)."""
    if _NothingUnpickler(file).load() != TORCH_MAGIC:
        raise pickle.UnpicklingError("not a legacy torch.save file (bad magic number)")
    _NothingUnpickler(file).load(), _NothingUnpickler(file).load()  # protocol version, system info
    state = _TorchUnpickler(file).load()
    keys = _NothingUnpickler(file).load()
    dtypes = {t.storage[0]: t.storage[1] for t in state.values() if isinstance(t, _Tensor)}
    storages = {}
    for key in keys:
        count = int(np.frombuffer(file.read(8), "<i8")[0])
        dtype = dtypes[key].newbyteorder("<")
        storages[key] = np.frombuffer(file.read(count * dtype.itemsize), dtype)
    out = {}
    for name, t in state.items():
        if not isinstance(t, _Tensor):
            raise UnsafePickleError(f"{name}: not a tensor")
        flat = storages[t.storage[0]]
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[t.offset:], shape=t.size,
                                               strides=tuple(s * itemsize for s in t.stride))
        out[name] = np.array(view)  # own copy, native byte order
    return out
