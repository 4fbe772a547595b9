"""How long planned cells take on this machine, from the records of earlier runs: ``suite --plan``'s estimate and the
suite's time left.

A cell's estimate is the median duration of the ``ok`` records with its settings — arch, task, profile and what
``--plan`` shows (input, width, train subset, epochs, batch, learning rate, recipe), any seed — measured on this
machine and Keras backend. Where only another machine recorded them, its durations are scaled by how the two compare
on the settings both recorded (the median ratio), or taken as they are where they share none, and the estimate says
so. Where no record has a cell's settings, the runs that chose them stand in (``selection/``, ``--hold-out N``: the
same settings on all but N training images), their durations scaled up to the whole split. Cells no record describes
have none. Speed belongs to the machine: the code fingerprint does not matter here.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from cnnbench import records
from cnnbench.environment import machine_id


@dataclass(frozen=True)
class Estimate:
    seconds: float
    source: str  # "here" | "scaled from MACHINE" | "as on MACHINE", each "…, held-out runs" where they stand in

#: where a results directory keeps the runs that chose the profiles' settings (one folder per setting tried)
SELECTION = "selection"


def _key(arch: str, task: str, profile: str, settings: dict) -> tuple:
    return arch, task, profile, tuple(sorted(settings.items()))


def timing_key(spec) -> tuple:
    """A resolved cell's timing identity (``spec.Spec``)."""
    return _key(spec.cfg.arch, spec.cfg.task, spec.cfg.profile, spec.settings())


class Estimator:
    """Durations read once from ``results_dir``; ``estimate(spec)`` for this machine (``here``: its id and backend)."""

    def __init__(self, results_dir: str | os.PathLike, here: tuple[str, str]):
        self.here = here
        found: dict[tuple, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
        held_out: dict[tuple, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
        folders = [results_dir, *sorted(Path(results_dir, SELECTION).glob("*"))]  # records, then the held-out runs
        for r in (r for folder in folders for _, r in records.iter_records(folder)):
            settings, held = r["config"].get("settings"), (r["config"].get("recipe") or {}).get("validation_images")
            if r["outcome"] != "ok" or not settings or r["config"].get("experiment"):
                continue
            where, seconds = (machine_id(r["env"]), r["env"].get("keras_backend", "tensorflow")), r["duration_s"]
            if held:  # a run that chose settings: as long as theirs would take on the whole split
                settings = settings | {"recipe": r["config"]["recipe"]["name"]}
                seconds *= (r["dataset"]["n_train"] + held) / r["dataset"]["n_train"]
            (held_out if held else found)[_key(r["arch"], r["task"], r["profile"], settings)][where].append(seconds)
        self.median = {key: {where: statistics.median(d) for where, d in by.items()} for key, by in found.items()}
        #: the keys only held-out runs describe
        self.held_out = {key: {where: statistics.median(d) for where, d in by.items()}
                         for key, by in held_out.items() if key not in found}

    def _ratio(self, other: tuple[str, str]) -> float | None:
        """This machine's durations over ``other``'s, the median over the settings both recorded."""
        shared = [by[self.here] / by[other] for by in self.median.values() if self.here in by and other in by]
        return statistics.median(shared) if shared else None

    def estimate(self, spec) -> Estimate | None:
        key = timing_key(spec)
        by, tag = (self.median[key], "") if key in self.median else (self.held_out.get(key), ", held-out runs")
        if not by:
            return None
        if self.here in by:
            return Estimate(by[self.here], "here" + tag)
        ratios = {where: self._ratio(where) for where in by}
        scaled = {where: r for where, r in ratios.items() if r is not None}
        if scaled:
            where = min(scaled, key=lambda w: abs(1 - scaled[w]))  # the machine most like this one
            return Estimate(by[where] * scaled[where], f"scaled from {where[0]}{tag}")
        where = next(iter(by))
        return Estimate(by[where], f"as on {where[0]}{tag}")


def clock(seconds: float | None) -> str:
    """``h:mm:ss`` (``m:ss`` under an hour); a dash for no estimate."""
    if seconds is None:
        return "—"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TimeLeft:
    """The suite's running estimate: cells' estimates corrected by how the finished cells compared with theirs. A
    cell without one takes the duration of a finished cell of the same settings (``keys``: another seed of the same
    model), else counts as the mean finished cell."""

    def __init__(self, estimates: list[float | None], keys: list | None = None):
        self.estimates = estimates
        self.keys = keys or [None] * len(estimates)
        self.took: dict[int, float] = {}

    def done(self, i: int, seconds: float) -> None:
        self.took[i] = seconds
        for j in range(i + 1, len(self.estimates)):
            if self.estimates[j] is None and self.keys[j] is not None and self.keys[j] == self.keys[i]:
                self.estimates[j] = seconds

    def skip(self, i: int) -> None:
        self.estimates[i] = 0.0

    def left(self, i: int) -> float | None:
        """Seconds left for cells ``i`` (0-based, about to start) onwards; None until anything can be said."""
        timed = [(self.took[j], self.estimates[j]) for j in self.took if self.estimates[j]]
        factor = sum(t for t, _ in timed) / sum(e for _, e in timed) if timed else 1.0
        mean = statistics.mean(self.took.values()) if self.took else None
        rest = [mean if e is None else e * factor for e in self.estimates[i:]]
        return None if any(r is None for r in rest) else sum(rest)
