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


def check_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove a file can be written there; ``OSError`` if not (before any work)."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    probe = p / f".write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
    return p


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w") -> Iterator[IO]:
    """Write ``path`` all or nothing: a reader (or a process killed half-way) sees the old file or the whole new one.

    On Linux the bytes go to an unnamed file in the same directory (``O_TMPFILE``), fsynced, then linked in under
    ``path``: a writer killed at any point, even by SIGKILL, leaves no partial file and no temporary file behind.
    Where that is not available, a named temporary file is fsynced and renamed over ``path`` (a SIGKILL between the
    two can leave that ``.tmp`` file).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = os.open(path.parent, os.O_TMPFILE | os.O_WRONLY, 0o666), None
    except (AttributeError, OSError):  # not Linux, or a file system without O_TMPFILE
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            pause_point("atomic-write", path)
            if tmp is None:
                _link_into_place(f.fileno(), path)
        if tmp is not None:
            os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def _link_into_place(fd: int, path: Path) -> None:
    """Give the unnamed file ``fd`` the name ``path`` (replacing an existing file through a rename)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY)
    try:
        try:
            os.link(str(fd), path, src_dir_fd=proc, follow_symlinks=True)
            return
        except FileExistsError:
            pass
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        os.link(str(fd), tmp, src_dir_fd=proc, follow_symlinks=True)
        os.replace(tmp, path)
    finally:
        os.close(proc)


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """``preexec_fn`` for a child process: on Linux it gets SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), so a
    killed suite leaves no orphan cell that writes later, and a killed cell no orphan memory probe."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG; a no-op off Linux


PAUSE_ENV = "CNNBENCH_PAUSE_AT"


def run_module(module: str, *args: str, env: dict | None = None,
               timeout: float | None = None) -> tuple[int, dict | None, str]:
    """``python -m module args`` in a fresh process that dies with this one: its exit status, the JSON object it
    printed last (None when it failed) and its stderr."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, preexec_fn=die_with_parent)
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
    return proc.returncode, out, proc.stderr


def pause_point(name: str, detail: object = "") -> None:
    """Fault injection for the kill tests: with ``CNNBENCH_PAUSE_AT=name:seconds`` set, announce the point on stderr
    and sleep there, so a test can SIGKILL the process at exactly this step. A no-op otherwise."""
    for item in filter(None, os.environ.get(PAUSE_ENV, "").split(",")):
        point, _, seconds = item.partition(":")
        if point == name:
            import sys
            import time

            print(f"cnnbench pause-point {name} {detail}", file=sys.stderr, flush=True)
            time.sleep(float(seconds or 1))


class lazy:
    """A module imported on first attribute access: ``tf = lazy("tensorflow")`` at the top of a module that must be
    importable without starting TensorFlow (the report reads task classes; TensorFlow loads when a task runs)."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        import importlib

        return getattr(importlib.import_module(self._name), attr)


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
