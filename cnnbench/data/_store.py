"""Verified array datasets, canonical order, and the local cache they live in."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbench._util import atomic_write

DATA_DIR_ENV = "CNNBENCH_DATA_DIR"
SPLITS = ("x_train", "y_train", "x_test", "y_test")


class ChecksumError(RuntimeError):
    """A dataset file or array does not match its recorded sha256."""


class DataUnavailableError(RuntimeError):
    """No source for a dataset could be reached."""


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Where fetched datasets are cached: ``override``, else ``$CNNBENCH_DATA_DIR``, else the user data dir."""
    if override:
        return Path(override).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("cnnbench"))


def array_sha256(a: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-order bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_order(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort examples by the sha256 of (image, label) bytes.

    Sources store the same split in different orders (TFDS shuffles at preparation); sorting makes every source give
    byte-identical arrays, so one checksum and one seed mean one experiment. Training shuffles anyway.
    """
    keys = [hashlib.sha256(xi.tobytes() + yi.tobytes()).digest() for xi, yi in zip(x, y, strict=True)]
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return x[order], y[order]


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A train/test split as uint8 arrays, already verified against ``checksums``."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    checksums: dict[str, str]
    source: str
    num_classes: int

    @property
    def sha256(self) -> str:
        """One digest for the whole dataset: sha256 over the per-array digests in split order."""
        return hashlib.sha256("".join(self.checksums[k] for k in SPLITS).encode()).hexdigest()

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "source": self.source,
            "n_train": len(self.y_train),
            "n_test": len(self.y_test),
            "num_classes": self.num_classes,
        }


def verify(arrays: dict[str, np.ndarray], expected: dict[str, str], *, what: str) -> None:
    for key in SPLITS:
        got = array_sha256(arrays[key])
        if got != expected[key]:
            raise ChecksumError(
                f"{what}: {key} has sha256 {got}, expected {expected[key]}. The file is corrupt or not the "
                "official data; delete it and run again to re-fetch."
            )


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read an ``.npz`` of plain arrays; object arrays (which would need pickle) are refused."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in SPLITS}
