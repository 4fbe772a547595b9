"""Where a number came from: package versions, the device, and the code's git sha."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_state(root: Path = REPO_ROOT) -> dict:
    """``{"sha": ..., "dirty": ...}`` of the checkout the code runs from; nulls when it is not a git checkout."""

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)

    if os.environ.get("CNNBENCH_GIT_SHA"):  # a copy of the tree on another machine, whose .git (if any) is stale
        return {"sha": os.environ["CNNBENCH_GIT_SHA"], "dirty": None}
    try:
        sha = git("rev-parse", "HEAD")
        if sha.returncode:
            return {"sha": None, "dirty": None}
        status = git("status", "--porcelain", "--untracked-files=no")
        return {"sha": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return {"sha": None, "dirty": None}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def device() -> dict:
    """The device TensorFlow computes on: the first GPU if one is visible, else the CPU."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return {"type": "gpu", "name": details.get("device_name", gpus[0].name), "count": len(gpus),
                "compute_capability": list(details.get("compute_capability") or []), "cpu_cores": cpus}
    return {"type": "cpu", "name": cpu_name(), "count": 1, "cpu_cores": cpus}


def environment(device_info: dict | None = None) -> dict:
    """Versions, the device (``device_info``, else TensorFlow's view of it), the code's git state."""
    return {
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "cnnbench": _version("cnnbench"),
        "platform": platform.platform(),
        "device": device_info or device(),
        "git": git_state(),
        "argv": sys.argv[1:],
    }
