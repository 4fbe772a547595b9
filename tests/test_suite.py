"""The suite survives SIGKILL and Ctrl-C at any point, resumes to the same numbers, and shares a results dir."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnbench import records
from cnnbench.suite import finished

MATRIX = ["--profile", "smoke", "--archs", "lenet5", "--seeds", "0", "1", "2"]
KEYS = ("test_accuracy", "test_loss", "train_accuracy", "train_loss")


def start(results: Path, *extra: str) -> subprocess.Popen:
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"}
    # A terminal delivers Ctrl-C; a background job (`cmd &` in a script, as CI may run us) inherits SIGINT ignored,
    # and Python then never installs its KeyboardInterrupt handler: give the suite a terminal's default.
    return subprocess.Popen([sys.executable, "-m", "cnnbench", "suite", *MATRIX, "--results", str(results), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def json_files(results: Path) -> list[Path]:
    return sorted(results.glob("*.json"))


def wait_for(predicate, timeout=240):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError
        time.sleep(0.2)


def metrics_by_seed(results: Path) -> dict[int, dict]:
    return {r["seed"]: {k: r["metrics"][k] for k in KEYS} for _, r in records.iter_records(results)
            if r["outcome"] == "ok"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist):
    results = tmp_path_factory.mktemp("uninterrupted")
    proc = start(results)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "suite finished: 3 run" in out
    return metrics_by_seed(results)


def test_sigkill_at_several_points_then_resume_equals_an_uninterrupted_run(uninterrupted, tmp_path):
    # Kill points: mid-way through the first cell, mid-way through the second, right as the second record lands.
    kill_after = [(0, 2.0), (1, 2.0), (2, 0.0)]
    for n_records, delay in kill_after:
        proc = start(tmp_path, "--resume")
        wait_for(lambda n=n_records: len(json_files(tmp_path)) >= n)
        time.sleep(delay)
        proc.kill()  # SIGKILL to the suite process only; its running cell must die with it
        proc.wait()
        time.sleep(3)
        for path in json_files(tmp_path):  # every record present is complete and valid
            records.read(path)
        assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]
        assert len(json_files(tmp_path)) <= 3
    proc = start(tmp_path, "--resume")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert {s for (_, _, _, s) in finished(tmp_path)} == {0, 1, 2}
    assert len(json_files(tmp_path)) == 3  # no cell ran twice: killed cells left nothing, orphans wrote nothing
    assert metrics_by_seed(tmp_path) == uninterrupted


def test_ctrl_c_stops_keeps_records_and_resumes(uninterrupted, tmp_path):
    proc = start(tmp_path)
    wait_for(lambda: len(json_files(tmp_path)) >= 1)
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "--resume" in out
    for path in json_files(tmp_path):
        records.read(path)
    proc = start(tmp_path, "--resume")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out and "recorded already, skipped" in out
    assert metrics_by_seed(tmp_path) == uninterrupted


def test_parallel_suites_share_a_results_dir(uninterrupted, tmp_path):
    procs = [start(tmp_path, "--resume") for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(json_files(tmp_path)) == 3, outs  # each cell ran exactly once
    assert metrics_by_seed(tmp_path) == uninterrupted


def test_resume_reruns_invalid_records(uninterrupted, tmp_path):
    proc = start(tmp_path, "--seeds", "0")
    proc.communicate(timeout=600)
    (good,) = json_files(tmp_path)
    good.write_text(good.read_text()[:200])  # truncated, as if hand-edited
    assert finished(tmp_path) == set()
    proc = start(tmp_path, "--seeds", "0", "--resume")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "skipping invalid result file" in out
    assert metrics_by_seed(tmp_path) == {0: uninterrupted[0]}
