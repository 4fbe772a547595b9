"""The suite: the matrix of cells (arch x task x seed) at one profile, each cell in its own process.

A fresh process per cell gives every run a clean TF state and its own memory peak, and lets the suite outlive a
crash: a cell that dies (segfault, the kernel's OOM killer) is recorded as ``error`` by the suite. Records are written
atomically by the cell; ``--resume`` skips cells that already have a valid ``ok`` record from this machine, this
model/harness code and the cell's settings (missing, invalid, failed and other machines' cells run again);
``--resume any`` keeps other machines' records too (a recording split over several machines). A per-cell file lock keeps
parallel suites on one results directory from running the same cell.
Ctrl-C stops the running cell, keeps every finished record, and exits 130; ``--resume`` carries on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import glob
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import filelock

import architectures
from cnnbench import cell as child
from cnnbench import records
from cnnbench._util import die_with_parent
from cnnbench.cell import EXIT_INTERRUPTED
from cnnbench.environment import code_fingerprint, machine_id, this_machine
from cnnbench.estimate import Estimate, Estimator, TimeLeft, clock, timing_key
from cnnbench.profiles import get_profile
from cnnbench.quiet import Relay
from cnnbench.spec import RunConfig, Spec, resolve
from cnnbench.tasks import get_task


def expand_archs(patterns: list[str] | None, kind: str | None = None) -> list[str]:
    """Registry names of ``kind`` from names or wildcards (all of that kind when none); an unknown name fails with
    the registry's did-you-mean."""
    if not patterns:
        return architectures.list_models(kind=kind)
    names: list[str] = []
    for pattern in patterns:
        matched = architectures.list_models(pattern) or [architectures.model_info(pattern).name]
        names += [n for n in matched if n not in names and kind in (None, architectures.model_info(n).kind)]
    return names


def _archs(patterns: list[str] | None, task) -> list[str]:
    """The models a suite runs on ``task``: those named (of the task's kind), else the task's defaults."""
    return expand_archs(patterns, task.kind) if patterns or task.default_archs is None else list(task.default_archs)


def plan(*, profile: str, tasks: list[str], archs: list[str] | None, seeds: list[int] | None,
         dataset: str | None = None, weights: str | None = None, **options) -> list[RunConfig]:
    """Every cell of the matrix, validated before anything runs. ``options``: the other ``RunConfig`` fields
    (epochs, batch_size, learning_rate, data_dir, measure_memory, measure_throughput), the same for every cell —
    except that memory and throughput, properties of the machine and not of the seed, are measured by each model's
    first seed only (as ablations do)."""
    prof = get_profile(profile)
    cells = []
    for t in map(get_task, tasks):
        for a in _archs(archs, t):
            for i, s in enumerate(seeds or prof.setting(a, t.name)["seeds"]):
                cell = RunConfig(arch=a, task=t.name, profile=profile, seed=s, **options,
                                 dataset=dataset if t.takes_dataset else None,
                                 weights=weights if t.takes_weights else None)
                cells.append(cell if i == 0 else dataclasses.replace(cell, measure_memory=False,
                                                                     measure_throughput=False))
    for pattern in archs or []:  # a model that no requested task runs is a mistake, not an empty plan
        if not any(fnmatch.fnmatch(c.arch, pattern) for c in cells):
            kinds = {t: get_task(t).kind for t in tasks}
            fitting = {kind: ", ".join(architectures.list_models(kind=kind)) for kind in set(kinds.values())}
            raise ValueError(f"{pattern!r} names no model the task(s) run ({kinds}); {fitting}")
    for cell in cells:
        resolve(cell)
    return cells


def estimates(specs: list[Spec], results_dir: str | os.PathLike) -> list[Estimate | None]:
    """Each resolved cell's duration on this machine and backend, from the records in ``results_dir``
    (``estimate``)."""
    estimator = Estimator(results_dir, _here())
    return [estimator.estimate(spec) for spec in specs]


def time_left(specs: list[Spec], results_dir: str | os.PathLike, recorded: list[bool]) -> TimeLeft:
    """The run's ``TimeLeft``: each cell's estimate (0 for a cell recorded already), keyed by its timing settings and
    builder keywords (an ablation's variants differ in those only). Seed 0 measures memory and throughput besides, so
    its duration overestimates the other seeds' a little."""
    est = estimates(specs, results_dir)
    return TimeLeft([0.0 if was else e and e.seconds for was, e in zip(recorded, est, strict=True)],
                    [(*timing_key(s), s.determinants()["builder"]) for s in specs])


def plan_table(cells: list[RunConfig], results_dir: str | os.PathLike) -> str:
    """The cells as a table with the settings each runs with (``spec.resolve``) and its estimated duration here."""
    specs = [resolve(cell) for cell in cells]
    est = estimates(specs, results_dir)
    rows = [("#", "arch", "task", "seed", *Spec.ROW, "est.", "from")]
    for i, (cell, spec, e) in enumerate(zip(cells, specs, est, strict=True), 1):
        variant = f" [{cell.ablation['variant']}]" if cell.ablation else ""
        rows.append((str(i), cell.arch + variant, cell.task, str(cell.seed), *spec.row(),
                     clock(e and e.seconds), "" if e is None or e.source == "here" else e.source))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    known = [e.seconds for e in est if e]
    total = (f"{len(cells)} cells: est. {clock(sum(known))} on this machine for {len(known)}" + (
        f"; {len(cells) - len(known)} no earlier run describes" if len(known) < len(cells) else "")
        if known else f"{len(cells)} cells: no estimate yet (no earlier run of these settings in the results)")
    return "\n".join([*lines, total])


def _done(record: dict, here: tuple[str, str], any_machine: bool) -> bool:
    """An ``ok`` record by this code — its model's fingerprint (``records.code_version``) — on this Keras backend
    (``here``: machine id, backend), measured on this machine unless ``any_machine``. By default other machines'
    records — the committed reference records on a fresh clone — are not this machine's results and their cells run
    again; a recording split over several machines (``--resume any``) keeps them: accuracy belongs to code, settings,
    data and seed, speed to the machine that measured it, and each record keeps its own."""
    env = record["env"]
    return (record["outcome"] == "ok" and env.get("keras_backend", "tensorflow") == here[1]
            and (any_machine or machine_id(env) == here[0])
            and record["arch"] in architectures.list_models()
            and records.code_version(record) == code_fingerprint(arch=record["arch"]))


def _here() -> tuple[str, str]:
    from cnnbench import backends

    return this_machine()["id"], backends.name()


def _key(arch: str, task: str, profile: str, seed: int, experiment: str | None, strategy: str | None) -> tuple:
    """A cell's identity: (arch, task, profile, seed), an ablation cell's experiment where there is one (the
    variants of one builder share the rest), and the distribution strategy where it is not the default."""
    return (arch, task, profile, seed, *([experiment] if experiment else []),
            *([strategy] if strategy not in (None, "default") else []))


def cell_key(cell: RunConfig) -> tuple:
    return _key(cell.arch, cell.task, cell.profile, cell.seed, (cell.ablation or {}).get("experiment"), cell.strategy)


def record_key(r: dict) -> tuple:
    return _key(r["arch"], r["task"], r["profile"], r["seed"], r["config"].get("experiment"),
                r["config"].get("strategy"))


def done_key(cell: RunConfig | Spec) -> tuple:
    """What a finished record must match: the cell's identity and what it resolves to (``Spec.determinants``: a run
    with other epochs, builder keywords or a hold-out is another experiment, not this cell done)."""
    spec = cell if isinstance(cell, Spec) else resolve(cell)
    return cell_key(spec.cfg), tuple(sorted(spec.determinants().items()))


def _record_done_key(r: dict) -> tuple:
    return record_key(r), tuple(sorted(r["config"].get("determinants", {}).items()))


def finished(results_dir: str | os.PathLike, any_machine: bool = False) -> set[tuple]:
    """The cells (``done_key``) with a valid ``ok`` record from this code (and machine: ``_done``)."""
    here = _here()
    return {_record_done_key(r) for _, r in records.iter_records(results_dir) if _done(r, here, any_machine)}


def cell_finished(results_dir: Path, cell: RunConfig, any_machine: bool = False) -> bool:
    """Whether this one cell has such a record (reads only that cell's files)."""
    prefix, here, want = f"{cell.arch}.{cell.task}.{cell.profile}.seed{cell.seed}.", _here(), done_key(cell)
    for path in results_dir.glob(f"{glob.escape(prefix)}*.json"):
        with contextlib.suppress(records.InvalidRecordError):
            record = records.read(path)
            if _done(record, here, any_machine) and _record_done_key(record) == want:
                return True
    return False


def _spawn(cell: RunConfig, results_dir: Path, verbose: bool = False) -> subprocess.Popen:
    """The cell's process; its stderr a pipe for a ``Relay`` unless ``verbose``."""
    return subprocess.Popen(child.command(cell, results_dir), preexec_fn=die_with_parent,
                            stderr=None if verbose else subprocess.PIPE, text=True, errors="replace")


def _wait(proc: subprocess.Popen) -> int:
    """Wait for the cell; on Ctrl-C pass it on, give the cell time to stop, then re-raise."""
    try:
        return proc.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise


def run_suite(cells: list[RunConfig], *, results_dir: str | os.PathLike, resume: str | None = None,
              executor: str = "local", address: str | None = None, verbose: bool = False) -> int:
    """Run the cells: one after another here (``local``), or as Ray tasks on a cluster (``ray``, ``address``: a
    running cluster's; none: a local one). ``resume``: skip cells recorded already, by this machine (``here``) or
    any (``any``). 0: all ok; 1: some cell failed (recorded); 130: interrupted (resumable)."""
    if executor not in ("local", "ray"):
        raise ValueError(f"executor must be local or ray, got {executor!r}")
    if resume not in (None, "here", "any"):
        raise ValueError(f"resume must be here or any, got {resume!r}")
    results_dir, any_machine = Path(results_dir), resume == "any"
    done = finished(results_dir, any_machine) if resume else set()
    specs = [resolve(cell) for cell in cells]  # each cell resolved once here
    recorded = [done_key(spec) in done for spec in specs]
    t0 = time.perf_counter()
    timing = time_left(specs, results_dir, recorded)
    lock_dir = results_dir / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    outcomes: Counter[str] = Counter()
    todo, held = [], []  # the cluster's cells, and their locks: held until the records are back
    try:
        for i, cell in enumerate(cells, 1):
            key = cell_key(cell)
            variant = f" [{cell.ablation['ablation']}: {cell.ablation['variant']}]" if cell.ablation else ""
            tag = f"[{i}/{len(cells)}] {cell.arch}{variant} {cell.task} {cell.profile} seed {cell.seed}"
            if recorded[i - 1]:
                print(f"{tag}: recorded already, skipped", flush=True)
                outcomes["skipped"] += 1
                continue
            name = ".".join(map(str, key[:4])) + "".join(f".{hashlib.sha256(k.encode()).hexdigest()[:16]}"
                                                          for k in key[4:])
            lock = filelock.FileLock(lock_dir / f"{name}.lock")
            try:
                lock.acquire(timeout=0)
            except filelock.Timeout:
                print(f"{tag}: running in another suite process, skipped", flush=True)
                timing.skip(i - 1)
                outcomes["busy"] += 1
                continue
            held.append(lock)
            if resume and cell_finished(results_dir, cell, any_machine):  # another suite finished it since we started
                print(f"{tag}: recorded by another suite process, skipped", flush=True)
                timing.skip(i - 1)
                outcomes["skipped"] += 1
            elif executor == "ray":
                todo.append((tag, cell))
                continue
            else:
                est, left = timing.estimates[i - 1], timing.left(i - 1)
                outcome, seconds = _run_here(tag, cell, results_dir, f" (est. {clock(est)}; run: "
                                             f"{clock(time.perf_counter() - t0)} elapsed, {clock(left)} left)",
                                             verbose)
                if outcome == "interrupted":
                    return EXIT_INTERRUPTED
                timing.done(i - 1, seconds)
                outcomes[outcome] += 1
            held.pop().release()
        if todo:
            from cnnbench.cluster import run_on_ray

            outcomes += run_on_ray(todo, results_dir=results_dir, address=address)
            if outcomes["interrupted"]:
                print("interrupted; finished records are kept. Rerun with --resume to continue.", file=sys.stderr,
                      flush=True)
                return EXIT_INTERRUPTED
    finally:
        for lock in held:
            lock.release()
    print("suite finished: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())), flush=True)
    return 1 if outcomes["failed"] or outcomes["error"] else 0


def _run_here(tag: str, cell: RunConfig, results_dir: Path, progress: str = "",
              verbose: bool = False) -> tuple[str, float]:
    """The local executor: the cell in a fresh process here (its TensorFlow chatter hidden unless ``verbose``). Its
    outcome (run, failed, error or interrupted) and how long it took."""
    print(f"{tag}: running{progress}", flush=True)
    started, t0 = datetime.now(UTC), time.perf_counter()
    proc = _spawn(cell, results_dir, verbose)
    quiet = Relay(proc.stderr) if proc.stderr else None
    try:
        returncode = _wait(proc)
    except KeyboardInterrupt:
        print(f"\n{tag}: interrupted; finished records are kept. Rerun with --resume to continue.",
              file=sys.stderr, flush=True)
        return "interrupted", time.perf_counter() - t0
    seconds, result = time.perf_counter() - t0, child.outcome(returncode)
    if quiet is not None:
        quiet.thread.join(timeout=5)
        if result in ("crashed", "failed"):
            quiet.show()
    if result == "interrupted":
        print(f"{tag}: interrupted; rerun with --resume to continue.", file=sys.stderr, flush=True)
    elif result == "crashed":
        path = child.record_crash(cell, returncode, results_dir, started, seconds)
        print(f"{tag}: cell process died ({returncode}); recorded as error → {path}", flush=True)
        result = "error"
    else:
        print(f"{tag}: {'done' if result == 'run' else 'failed (recorded)'} in {clock(seconds)}", flush=True)
    return result, seconds
