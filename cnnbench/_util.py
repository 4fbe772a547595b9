"""Small helpers shared across the harness: atomic file writes, did-you-mean lookups, default data sources."""

from __future__ import annotations

import contextlib
import difflib
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO]:
    """Write ``path`` all or nothing: a temp file in the same directory, fsync, then rename over ``path``.

    A reader (or a process killed half-way) sees the old file or the whole new one, never a part.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def lookup(mapping: Mapping[str, T], name: str, what: str) -> T:
    """``mapping[name]``, or a KeyError that names the close matches and the known names."""
    try:
        return mapping[name]
    except KeyError:
        close = difflib.get_close_matches(name, mapping, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown {what} {name!r}{hint} (known: {', '.join(sorted(mapping))})") from None


def reachable(host: str = "storage.googleapis.com", port: int = 443, timeout: float = 3.0) -> bool:
    """Whether ``host`` answers (TFDS and keras downloads come from storage.googleapis.com)."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def tfds_or(online: str, offline: str) -> str:
    """``online`` (``"tfds:NAME"``) when TFDS has NAME prepared locally or its servers answer; else ``offline``."""
    try:
        import tensorflow_datasets as tfds

        if tfds.builder(online.removeprefix("tfds:")).is_prepared() or reachable():
            return online
    except Exception:
        pass
    return offline
