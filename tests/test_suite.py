"""The suite survives SIGKILL and Ctrl-C at any point, resumes to the same numbers, and shares a results dir.

Kill points wait for events, not for times: a cell process starting, its memory probe running (a process of its own,
which must die with the cell), a cell training, a record being written (held open there by the ``CNNBENCH_PAUSE_AT``
fault-injection point), and a record just landed between two cells. They are drawn at random from a fixed seed, with a
random delay after each event.
"""

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from cnnbench import records

# The memory probe runs (a process of the cell's own: a kill point); the timing is tested once per model kind
# (test_harness, test_segmentation). Two epochs: keras announces "Epoch 1/2" as training starts (with one epoch it
# prints nothing until the end).
MATRIX = ["--profile", "smoke", "--epochs", "2", "--archs", "lenet5", "--seeds", "0", "1", "2",
          "--no-measure-throughput"]
KEYS = ("test_accuracy", "test_loss", "train_accuracy", "train_loss")
PAUSE_S = 1.0  # how long the record writer holds its complete, unlinked file open before naming it

# the tests share the uninterrupted reference run; each starts suites, cells and probes: the slow tier
pytestmark = [pytest.mark.xdist_group("suite"), pytest.mark.full]


class Suite:
    """A ``cnnbench suite`` process; a thread collects its output (cells included) so a test can wait for a line."""

    def __init__(self, results: Path, *extra: str, pause: bool = False):
        env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
        if pause:
            env["CNNBENCH_PAUSE_AT"] = f"atomic-write:{PAUSE_S}"
        # A terminal delivers Ctrl-C; a background job (`cmd &` in a script, as CI may run us) inherits SIGINT
        # ignored, and Python then never installs its KeyboardInterrupt handler: give the suite a terminal's default.
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cnnbench", "suite", *MATRIX, "--results", str(results), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: list[str] = []
        self._eof = False
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._seen:
                self.lines.append(line.rstrip("\n"))
                self._seen.notify_all()
        with self._seen:
            self._eof = True
            self._seen.notify_all()

    def wait_for(self, pattern: str, timeout: float = 240) -> bool:
        """Block until a line (from now on) matches ``pattern``; False if the suite ended first."""
        start, deadline = len(self.lines), time.monotonic() + timeout
        with self._seen:
            while True:
                if any(re.search(pattern, line) for line in self.lines[start:]):
                    return True
                if self._eof:  # the suite closed its output: it has ended
                    return False
                if not self._seen.wait(timeout=max(0.0, deadline - time.monotonic())):
                    raise TimeoutError(f"no line matching {pattern!r}; output:\n" + self.output)

    def wait_for_probe(self, results: Path, timeout: float = 240) -> int | None:
        """Block until one of this suite's cells runs its memory probe; its pid (None if the suite ended first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._eof:
            cells = set(cell_processes(results))
            for pid in processes_named("cnnbench.measure.memory_probe"):
                with contextlib.suppress(OSError):
                    if int(Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[1]) in cells:
                        return pid
            time.sleep(0.02)
        if self._eof:
            return None
        raise TimeoutError("no memory probe started; output:\n" + self.output)

    def finish(self, timeout: float = 600) -> int:
        self.proc.wait(timeout=timeout)
        self._reader.join()
        return self.proc.returncode

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL to the suite process only; its running cell must die with it
        self.finish()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def json_files(results: Path) -> list[Path]:
    return sorted(results.glob("*.json"))


def metrics_by_seed(results: Path) -> dict[int, dict]:
    """Metrics of the ok records per seed; a seed with two ok records (a finished cell run again) fails."""
    ok = [r for _, r in records.iter_records(results) if r["outcome"] == "ok"]
    counts = Counter(r["seed"] for r in ok)
    assert max(counts.values(), default=1) == 1, f"a cell ran twice: {counts}"
    return {r["seed"]: {k: r["metrics"][k] for k in KEYS} for r in ok}


def processes_named(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            named = proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes()
            if named and (proc / "stat").read_text().split(") ")[1][0] != "Z":  # zombies write nothing
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def cell_processes(results: Path) -> list[int]:
    """Pids of live processes whose command line names ``results`` (the suite and its cells)."""
    return processes_named(str(results))


def assert_clean_after_kill(results: Path) -> None:
    """No process of the killed suite survives; every file is a whole, valid record; nothing temporary is left."""
    deadline = time.monotonic() + 10
    while cell_processes(results) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not cell_processes(results), "an orphan cell outlived the killed suite"
    before = {p.name for p in results.iterdir()}
    for path in json_files(results):
        records.read(path)
    assert not [n for n in before if n.endswith(".tmp") or (n.startswith(".") and n != ".locks")], before
    time.sleep(0.3)
    assert {p.name for p in results.iterdir()} == before  # nothing writes after the kill


@pytest.fixture(scope="session")  # session: xdist may tear a module fixture down between its tests
def uninterrupted(tmp_path_factory, mnist):
    results = tmp_path_factory.mktemp("uninterrupted")
    suite = Suite(results)
    assert suite.finish() == 0, suite.output
    assert "suite finished: 3 run" in suite.output
    return metrics_by_seed(results)


# (event, the line that announces it, delay range after it in seconds); PROBE: a memory probe process is running
PROBE = None
EVENTS = {
    "cell starting": (r"seed \d: running \(est\. ", (0.0, 2.0)),
    "memory probe running": (PROBE, (0.0, 1.0)),
    "cell training": (r"^Epoch 1/", (0.0, 0.5)),
    "record being written": (r"^cnnbench pause-point atomic-write .*\.json$", (0.0, 0.8 * PAUSE_S)),
    "between cells": (r"test accuracy .* → ", (0.0, 0.05)),
}
KILL_POINTS = 20


def test_sigkill_at_random_events_then_resume_equals_an_uninterrupted_run(uninterrupted, tmp_path):
    rng = random.Random(20261126)
    landed: Counter[str] = Counter()
    rounds = 0
    results = tmp_path / "round0"
    while sum(landed.values()) < KILL_POINTS:
        event = rng.choice(sorted(EVENTS))
        pattern, (low, high) = EVENTS[event]
        suite = Suite(results, "--resume", pause=True)
        probe = suite.wait_for_probe(results) if pattern is PROBE else None
        came = probe is not None if pattern is PROBE else suite.wait_for(pattern)
        if not came:  # the matrix finished before this event came: check it, start a new one
            assert suite.finish() == 0, suite.output
            assert metrics_by_seed(results) == uninterrupted
            rounds += 1
            results = tmp_path / f"round{rounds}"
            continue
        time.sleep(rng.uniform(low, high))
        suite.kill()
        landed[event] += 1
        assert_clean_after_kill(results)
        assert probe not in processes_named("cnnbench.measure.memory_probe"), "the memory probe outlived its cell"
        assert len(json_files(results)) <= 3
    suite = Suite(results, "--resume")
    assert suite.finish() == 0, suite.output
    assert metrics_by_seed(results) == uninterrupted  # bit for bit, each cell once
    assert set(landed) == set(EVENTS), landed  # every kind of kill point was exercised


def test_ctrl_c_stops_keeps_records_and_resumes(uninterrupted, tmp_path):
    suite = Suite(tmp_path)
    suite.wait_for(r"test accuracy .* → ")  # the first record has landed
    suite.wait_for(r"^Epoch 1/")  # the second cell is training
    os.killpg(suite.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    assert suite.finish(timeout=120) == 130, suite.output
    assert "--resume" in suite.output
    assert len(json_files(tmp_path)) == 1
    records.read(json_files(tmp_path)[0])
    again = Suite(tmp_path, "--resume")
    assert again.finish() == 0, again.output
    assert "seed 0: recorded already, skipped" in again.output
    assert "suite finished: 2 run, 1 skipped" in again.output
    assert metrics_by_seed(tmp_path) == uninterrupted


def test_parallel_suites_split_the_matrix(uninterrupted, tmp_path):
    suites = [Suite(tmp_path, "--resume") for _ in range(2)]
    assert [s.finish() for s in suites] == [0, 0], [s.output for s in suites]
    ran = [{int(m) for m in re.findall(r"seed (\d): running \(", s.output)} for s in suites]
    assert all(ran) and not ran[0] & ran[1] and ran[0] | ran[1] == {0, 1, 2}, ran  # both worked, each cell once
    assert len(json_files(tmp_path)) == 3
    assert metrics_by_seed(tmp_path) == uninterrupted


def test_resume_reruns_invalid_records(uninterrupted, tmp_path):
    first = Suite(tmp_path, "--seeds", "0")
    assert first.finish() == 0, first.output
    (good,) = json_files(tmp_path)
    good.write_text(good.read_text()[:200])  # truncated, as if hand-edited
    again = Suite(tmp_path, "--seeds", "0", "--resume")
    assert again.finish() == 0, again.output
    assert "skipping invalid result file" in again.output and "seed 0: running" in again.output
    assert metrics_by_seed(tmp_path) == {0: uninterrupted[0]}
