"""Where a number came from: package versions, the device, and the code's git sha."""

from __future__ import annotations

import ast
import hashlib
import os
import platform
import re
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
def cpu_isa() -> str | None:
    """The widest x86 vector extension the CPU reports (avx512f, avx2, avx, sse4_2), None where unknown."""
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split())
    except (OSError, StopIteration):
        return None
    return next((isa for isa in ("avx512f", "avx2", "avx", "sse4_2") if isa in flags), None)


@cache
def device() -> dict:
    """The device this process's Keras backend computes on: its first GPU if it sees one, else the CPU."""
    from cnnbench import backends

    gpu = backends.current().gpu()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if gpu:
        return {"type": "gpu", **gpu, "cpu_cores": cpus}
    return {"type": "cpu", "name": cpu_name(), "count": 1, "cpu_cores": cpus}


#: what determines a record's numbers: the builders, the training recipes and loop (and, per Keras backend, its
#: determinism and precise batch norm's forward pass), the tasks' data pipelines and
#: scores, the pretrained weights' loading and the parameter and FLOP counts — not the CLI, the report, the suite and
#: its executors, the sweeps or the memory and speed measurements (speed and measured memory belong to the machine;
#: the predicted memory is the predictor's, which its own tests hold), and not the profiles: what a profile sets for
#: a cell is recorded with it (``config.determinants``) and compared on its own, so a recording split over sittings
#: keeps its records when another model's entry changes. Of ``architectures``, a model's fingerprint covers only its
#: own module and what it imports (``architecture_sources``): a fix to one network leaves the others' records current.
FINGERPRINTED = ("architectures", "cnnbench/data", "cnnbench/tasks", "cnnbench/training.py",
                 "cnnbench/backends",  # determinism and precise batch norm's forward pass, per backend
                 "cnnbench/metrics.py", "cnnbench/pretrained.py", "cnnbench/measure/flops.py",
                 "cnnbench/measure/params.py")


def architecture_sources(root: Path, module: str | None = None) -> list[Path]:
    """The files of the ``architectures`` package that build the models of ``module`` (``architectures.resnet``): it
    and the package modules it imports, transitively; the whole package for a module that builds other registered
    models by name (the FCNs' backbones, through ``create_model``) and where no module is named."""
    package = root / "architectures"
    everything = sorted(package.rglob("*.py"))
    if module is None:
        return everything
    todo, seen = [module.removeprefix("architectures.")], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse((package / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("architectures."):
                if any(alias.name == "create_model" for alias in node.names):
                    return everything
                todo.append(node.module.removeprefix("architectures."))
    return sorted(package / f"{name}.py" for name in seen)


@cache
def code_fingerprint(root: Path = REPO_ROOT, arch: str | None = None, shared: bool = False) -> str:
    """sha256 over the sources that determine a record's numbers (``FINGERPRINTED``): records with the same
    fingerprint were measured by the same code, whatever else their commits changed (CLI, report, suite, docs). With
    ``arch`` (a registered model), over that model's architecture sources only (``architecture_sources``); with
    ``shared``, over none of them: the code every model's fingerprint covers."""
    module = None
    if arch is not None:
        import architectures

        module = architectures.model_info(arch).builder.__module__
    digest = hashlib.sha256()
    files = (p for entry in FINGERPRINTED for p in (
        ([] if shared else architecture_sources(root, module)) if entry == "architectures" else
        [root / entry] if entry.endswith(".py") else sorted((root / entry).rglob("*.py"))))
    for path in sorted(files):
        digest.update(f"{path.relative_to(root).as_posix()}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def machine_id(env: dict) -> str:
    """Where a record was measured, as asv names machines: the name its user set (``CNNBENCH_MACHINE``), else one
    derived from the device — CPU model and cores, or GPU model and count — so that records written before machine ids
    existed get the same id their machine gives today."""
    if env.get("machine"):
        return env["machine"]["id"]
    d = env["device"]
    what = f"{d['count']}x {d['name']}" if d["type"] == "gpu" else d["name"]
    return _slug(f"{what} {d.get('cpu_cores') or '?'} cores")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def this_machine(device_info: dict | None = None) -> dict:
    """This machine's identity (see ``machine_id``) and where it came from."""
    name = os.environ.get("CNNBENCH_MACHINE", "").strip()
    if name:
        return {"id": _slug(name), "source": "CNNBENCH_MACHINE"}
    return {"id": machine_id({"device": device_info or device()}), "source": "device"}


def environment(device_info: dict | None = None, arch: str | None = None) -> dict:
    """Versions, the Keras backend and its packages, the device (``device_info``, else the backend's view of it), the
    machine's identity, the code's git state and fingerprint, and with ``arch`` (a registered model) its model's
    (``model_code_sha256``: what ``--resume`` and the report compare)."""
    from cnnbench import backends

    dev = device_info or device()
    return {
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
        "keras": _version("keras"),
        "keras_backend": backends.name(),
        "backend_versions": backends.current().versions(),
        "numpy": _version("numpy"),
        "cnnbench": _version("cnnbench"),
        "platform": platform.platform(),
        "cpu_isa": cpu_isa(),
        # TensorFlow's default depends on the CPU (on with AVX-512-class features): the CPU kernels, their speed and
        # their scratch memory differ with it
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "device": dev,
        "machine": this_machine(dev),
        "code_sha256": code_fingerprint(),
        **({"model_code_sha256": code_fingerprint(arch=arch)} if arch else {}),
        "shared_code_sha256": code_fingerprint(shared=True),
        "git": git_state(),
        "argv": sys.argv[1:],
    }


def asv_machine() -> dict:
    """This machine as asv records it beside its results (``machine.json``): asv's own fields under the machine id
    the suite's records use, and the GPU's model, count, driver and memory where NVML sees one."""
    from asv.machine import Machine

    from cnnbench.nvml import gpu_info

    info = Machine.get_defaults() | {"machine": this_machine()["id"]}
    gpu = gpu_info()
    if gpu:
        info |= {"gpu": f"{gpu['count']}x {gpu['name']}", "gpu_driver": gpu["driver"],
                 "gpu_cuda_driver": gpu["cuda_driver"], "gpu_memory_bytes": str(gpu["memory_total_bytes"])}
    return info


def write_asv_machine() -> str:
    """Store ``asv_machine()`` in asv's machine file (~/.asv-machine.json), keyed by the host name asv looks up by
    default, so that `asv run` needs no questions or `--machine`; returns the machine id."""
    from asv.machine import MachineCollection, _get_unique_machine_name

    info = asv_machine()
    MachineCollection.save(_get_unique_machine_name(), info)
    return info["machine"]


if __name__ == "__main__":  # `python -m cnnbench.environment asv-machine`: what nox -s asv and bench-gpu run first
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cnnbench.environment")
    parser.add_argument("what", choices=["asv-machine"], help="record this machine in asv's machine file")
    parser.parse_args()
    print(write_asv_machine())
