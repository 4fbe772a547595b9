"""One cell in its own process: the child's entry point, the command that starts it, how its exit status reads, and
the record of a cell that died without writing one. Both executors (the local suite and the Ray cluster) use it.

``python -m cnnbench.cell '<RunConfig as JSON>' RESULTS_DIR`` runs the cell, writes its record, and exits 0 (ok),
``EXIT_CELL_FAILED`` (a failure outcome was recorded) or 130 (interrupted).
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from cnnbench import records
from cnnbench.spec import RunConfig

EXIT_INTERRUPTED = 130
EXIT_CELL_FAILED = 3  # the cell ran and recorded a failure outcome (oom, diverged, error)


def command(cell: RunConfig, results_dir: Path | str) -> list[str]:
    """The command line of one cell in a fresh process, here or on a cluster worker."""
    return [sys.executable, "-m", "cnnbench.cell", json.dumps(asdict(cell)), str(results_dir)]


def outcome(returncode: int) -> str:
    """What a cell process's exit status says: run, failed (recorded), interrupted, or crashed (no record)."""
    if returncode in (-signal.SIGINT, EXIT_INTERRUPTED):
        return "interrupted"
    return {0: "run", EXIT_CELL_FAILED: "failed"}.get(returncode, "crashed")


def record_crash(cell: RunConfig, returncode: int | None, results_dir: Path, started: datetime, seconds: float,
                 how: str | None = None) -> Path:
    """The cell process died (or, on a cluster, was lost) without writing its record: record an ``error`` for it."""
    from cnnbench.environment import environment

    if how is None:
        how = (f"was killed by signal {signal.Signals(-returncode).name}" if returncode < 0
               else f"exited with status {returncode}")
    hint = " (SIGKILL without a Python error is what the kernel's OOM killer does)" if returncode == -9 else ""
    record = {"schema_version": records.SCHEMA_VERSION, "arch": cell.arch, "task": cell.task,
              "profile": cell.profile, "seed": cell.seed, "outcome": "error", "config": dict(cell.ablation or {}),
              "env": environment(arch=cell.arch),
              "started_at": started.isoformat(), "duration_s": seconds,
              "error": {"type": "CellCrashed", "message": f"the cell process {how}{hint}", "returncode": returncode}}
    return records.write(record, results_dir)


def main(cell_json: str, results_dir: str) -> int:
    """Child entry: run one cell, record whatever happened, report the outcome on stdout."""
    from cnnbench.distribute import is_chief
    from cnnbench.harness import run_cell

    record = run_cell(RunConfig(**json.loads(cell_json)))
    if not is_chief():  # a multi-worker cell: the chief writes its record
        print(f"{record['arch']}: {record['outcome']} on this worker; the chief records it", flush=True)
        return 0 if record["outcome"] == "ok" else EXIT_CELL_FAILED
    path = records.write(record, results_dir)
    tag = f"{record['arch']} {record['task']} {record['profile']} seed {record['seed']}"
    if record["outcome"] == "ok":
        print(f"{tag}: {records.headline(record['metrics'])} → {path}", flush=True)
    else:
        print(f"{tag}: {record['outcome']}: {record['error']['message'][:300]} → {path}", flush=True)
        return EXIT_CELL_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
