"""The suite across machines: each cell a Ray task (``cnnbench suite --executor ray [--address ADDR]``).

Ray is the usual engine for ML sweeps: tasks with resource requests (a gpu-profile cell asks for one GPU, any other
for one CPU), retries when a worker or node is lost, and a driver that needs no shared filesystem. A task runs its
cell exactly as the local executor does — in a fresh process (``python -m cnnbench.cell``), on the worker — but into
a temporary folder there, and returns the record; the driver writes it atomically into its own results folder. A
worker lost mid-cell (its process or node dies) makes Ray run the cell once more elsewhere; lost again, the cell is
recorded as crashed. A cell process that dies by itself (the kernel's OOM killer) is recorded as an ``error`` as
locally, not retried. Ctrl-C cancels what is still running; finished records are kept and ``--resume`` carries on.

Workers need cnnbench's dependencies (TensorFlow, ...) installed; the code itself travels with the job (Ray's
``py_modules``) when the driver connects to a running cluster, so every cell runs the driver's code, and each record
names the machine it ran on.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from cnnbench import cell as child
from cnnbench import records
from cnnbench.spec import RunConfig

#: a cell's task is run once more when its worker is lost, then recorded as crashed
RETRIES = 1


def run_cell_in_worker(cell: RunConfig) -> dict:
    """In a Ray worker: the cell in a fresh process, as the local executor runs it; its record returned, not written.
    ``{"record": dict | None, "returncode": int, "host": str}``."""
    import socket

    import architectures
    import cnnbench
    from cnnbench._util import die_with_parent

    paths = [str(Path(m.__file__).resolve().parents[1]) for m in (cnnbench, architectures)]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([*dict.fromkeys(paths), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as folder:
        proc = subprocess.run(child.command(cell, folder), env=env, preexec_fn=die_with_parent)
        written = sorted(Path(folder).glob("*.json"))
        record = records.read(written[0]) if written else None
    return {"record": record, "returncode": proc.returncode, "host": socket.gethostname()}


def run_on_ray(todo: list[tuple[str, object]], *, results_dir: Path, address: str | None) -> Counter[str]:
    """Run ``todo`` — (tag, RunConfig) pairs the suite decided to run — as Ray tasks; write each record as it comes
    back. Returns the outcome counts (run, failed, error; interrupted when Ctrl-C stopped it)."""
    import ray

    import architectures
    import cnnbench

    if not ray.is_initialized():
        # a running cluster gets our code with the job; a local one (no address) imports it from here
        runtime_env = {"py_modules": [cnnbench, architectures]} if address else None
        ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=True)
    task = ray.remote(max_retries=RETRIES)(run_cell_in_worker)
    pending = {}
    for tag, cell in todo:
        gpus = 1 if cell.profile == "gpu" else 0
        ref = task.options(num_cpus=1, num_gpus=gpus, name=tag).remote(cell)
        pending[ref] = (tag, cell, datetime.now(UTC), time.perf_counter())
        print(f"{tag}: submitted ({'1 GPU' if gpus else '1 CPU'})", flush=True)
    outcomes: Counter[str] = Counter()
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            tag, cell, started, t0 = pending.pop(ref)
            try:
                out = ray.get(ref)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                    ray.exceptions.ObjectLostError) as exc:
                path = child.record_crash(cell, None, results_dir, started, time.perf_counter() - t0,
                                    how=f"was lost with its Ray worker {RETRIES + 1} times ({type(exc).__name__})")
                print(f"{tag}: worker lost {RETRIES + 1} times; recorded as error → {path}", flush=True)
                outcomes["error"] += 1
                continue
            if out["record"] is None:  # the cell process died without writing its record
                path = child.record_crash(cell, out["returncode"], results_dir, started, time.perf_counter() - t0)
                print(f"{tag}: cell process died on {out['host']} ({out['returncode']}); recorded as error → {path}",
                      flush=True)
                outcomes["error"] += 1
                continue
            path = records.write(out["record"], results_dir)
            print(f"{tag}: {out['record']['outcome']} on {out['host']} → {path}", flush=True)
            outcomes[child.outcome(out["returncode"])] += 1
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        outcomes["interrupted"] += 1
    return outcomes
