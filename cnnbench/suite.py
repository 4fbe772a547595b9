"""The suite: every (arch, seed) cell of a task at one profile, skipping cells that already have a valid record."""

from __future__ import annotations

import os

import keras

import architectures
from cnnbench import records
from cnnbench.harness import RunConfig, run
from cnnbench.profiles import get_profile


def expand_archs(patterns: list[str] | None) -> list[str]:
    """Registry names from names or wildcards; an unknown name fails with the registry's did-you-mean."""
    if not patterns:
        return architectures.list_models()
    names: list[str] = []
    for pattern in patterns:
        matched = architectures.list_models(pattern) or [architectures.model_info(pattern).name]
        names += [n for n in matched if n not in names]
    return names


def finished_cells(results_dir: str | os.PathLike, task: str, profile: str) -> set[tuple[str, int]]:
    return {(r["arch"], r["seed"]) for _, r in records.iter_records(results_dir)
            if r["task"] == task and r["profile"] == profile and r["outcome"] == "ok"}


def run_suite(*, profile: str, task: str, archs: list[str] | None, seeds: list[int] | None,
              results_dir: str | os.PathLike, epochs: int | None = None, batch_size: int | None = None,
              data_dir: str | None = None) -> int:
    prof = get_profile(profile)
    names = expand_archs(archs)
    cells = [(a, s) for a in names for s in (seeds or prof.setting(a)["seeds"])]
    done = finished_cells(results_dir, task, profile)
    for i, (arch, seed) in enumerate(cells, 1):
        tag = f"[{i}/{len(cells)}] {arch} {task} {profile} seed {seed}"
        if (arch, seed) in done:
            print(f"{tag}: recorded already, skipped")
            continue
        print(f"{tag}: running", flush=True)
        record = run(RunConfig(arch=arch, task=task, profile=profile, seed=seed, epochs=epochs,
                               batch_size=batch_size, data_dir=data_dir))
        path = records.write(record, results_dir)
        print(f"{tag}: test accuracy {record['metrics']['test_accuracy']:.4f} → {path}", flush=True)
        keras.backend.clear_session(free_memory=True)
    return 0
