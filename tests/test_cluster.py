"""The suite on a local two-worker Ray cluster: the same records as the local executor, and a worker killed mid-cell
loses nothing."""

import os
import signal
import threading
import time

import psutil
import pytest

from cnnbench import records
from cnnbench.suite import plan, run_suite

ray = pytest.importorskip("ray", reason="the cluster extra (pip install 'cnnbench[cluster]') is not installed")

#: timing fields: measured, so they differ between any two runs
TIMES = {"epoch_seconds", "train_seconds", "time_to_target"}


def matrix():
    return plan(profile="smoke", tasks=["mnist"], archs=["lenet5", "mlp"], seeds=[0, 1], epochs=1, train_subset=256,
                measure_memory=False, measure_throughput=False)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # two workers, one cell each at a time
    yield
    ray.shutdown()


def by_cell(folder):
    return {(r["arch"], r["seed"]): r for _, r in records.iter_records(folder)}


def test_a_ray_cluster_writes_the_records_the_local_executor_writes(cluster, tmp_path):
    assert run_suite(matrix(), results_dir=tmp_path / "local") == 0
    assert run_suite(matrix(), results_dir=tmp_path / "ray", executor="ray") == 0
    local, remote = by_cell(tmp_path / "local"), by_cell(tmp_path / "ray")
    assert sorted(local) == sorted(remote) == [("lenet5", 0), ("lenet5", 1), ("mlp", 0), ("mlp", 1)]
    for cell, r in remote.items():
        mine = {k: v for k, v in r["metrics"].items() if k not in TIMES}
        assert mine == {k: v for k, v in local[cell]["metrics"].items() if k not in TIMES}  # bit-equal
        assert r["config"] == local[cell]["config"] and r["outcome"] == "ok"
    # written by the driver, atomically: nothing but the records and the lock folder
    assert sorted(p.name for p in (tmp_path / "ray").iterdir() if not p.name.endswith(".json")) == [".locks"]
    # --resume: everything recorded by this machine and code, nothing runs
    assert run_suite(matrix(), results_dir=tmp_path / "ray", executor="ray", resume=True) == 0
    assert len(list((tmp_path / "ray").glob("*.json"))) == 4


def under_ray(proc) -> bool:
    """Whether a process's parent is a Ray worker (which titles itself ``ray::…``)."""
    try:
        return " ".join(psutil.Process(proc.ppid()).cmdline()).startswith("ray::")
    except psutil.Error:
        return False


def kill_one_worker_mid_cell(killed: list):
    """Wait for a cell process to start under a Ray worker, then SIGKILL that worker (its cell dies with it). Only a
    Ray worker's: another test's cell, running beside this one under pytest-xdist, is not this test's to kill (it
    once took down ``bench-gpu --quick``'s suite)."""
    deadline = time.time() + 120
    while time.time() < deadline and not killed:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if "cnnbench.suite" in cmd and proc.ppid() != os.getpid() and under_ray(proc):
                time.sleep(2)  # mid-cell: TensorFlow imported, training under way
                worker = psutil.Process(proc.ppid())
                killed.append(worker.pid)
                worker.send_signal(signal.SIGKILL)
                return
        time.sleep(0.2)


def test_a_worker_killed_mid_cell_loses_nothing(cluster, tmp_path):
    killed: list[int] = []
    killer = threading.Thread(target=kill_one_worker_mid_cell, args=(killed,))
    killer.start()
    code = run_suite(matrix(), results_dir=tmp_path, executor="ray")
    killer.join()
    assert killed, "no cell process was seen to kill"
    done = by_cell(tmp_path)
    assert code == 0 and len(done) == 4 and all(r["outcome"] == "ok" for r in done.values())  # the lost cell re-ran
