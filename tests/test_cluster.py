"""The suite on a local two-worker Ray cluster: the same records as the local executor, and a worker killed mid-cell
loses nothing."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import psutil
import pytest
import ray

from cnnbench import records
from cnnbench.cluster import RETRIES
from cnnbench.suite import plan, run_suite

# one Ray cluster for the module, on one xdist worker (the killers must not see another test's cluster); the slow tier
pytestmark = [pytest.mark.full, pytest.mark.xdist_group("cluster")]

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
    assert run_suite(matrix(), results_dir=tmp_path / "ray", executor="ray", resume="here") == 0
    assert len(list((tmp_path / "ray").glob("*.json"))) == 4


def under_ray(proc) -> bool:
    """Whether a process's parent is a Ray worker (which titles itself ``ray::…``)."""
    try:
        return " ".join(psutil.Process(proc.ppid()).cmdline()).startswith("ray::")
    except psutil.Error:
        return False


def kill_workers_mid_cell(killed: list, times: int, deadline_s: float = 240):
    """Each time a cell process starts under a Ray worker, SIGKILL that worker (its cell dies with it), ``times``
    times; ``killed`` gets (arch, seed, when) of each killed cell. Only a Ray worker's: another test's cell, running
    beside this one under pytest-xdist, is not this test's to kill (it once took down ``bench-gpu --quick``'s suite)."""
    seen: set[int] = set()
    deadline = time.time() + deadline_s
    while time.time() < deadline and len(killed) < times:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if "cnnbench.cell" in cmd and proc.pid not in seen and under_ray(proc):
                seen.add(proc.pid)
                cell = json.loads(cmd[cmd.index("cnnbench.cell") + 1])
                psutil.Process(proc.ppid()).send_signal(signal.SIGKILL)
                killed.append((cell["arch"], cell["seed"], datetime.now(UTC)))
                break
        time.sleep(0.05)


def run_while_killing(cells, folder, times: int) -> tuple[int, list]:
    killed: list = []
    killer = threading.Thread(target=kill_workers_mid_cell, args=(killed, times))
    killer.start()
    code = run_suite(cells, results_dir=folder, executor="ray")
    killer.join()
    assert len(killed) == times, f"saw {len(killed)} of {times} cells to kill"
    return code, killed


def test_a_worker_killed_mid_cell_loses_nothing(cluster, tmp_path):
    code, [(arch, seed, when)] = run_while_killing(matrix(), tmp_path, times=1)
    done = by_cell(tmp_path)
    assert code == 0 and len(done) == 4 and all(r["outcome"] == "ok" for r in done.values())
    # the killed cell's record is a retry's: it started after the kill
    assert datetime.fromisoformat(done[(arch, seed)]["started_at"]) > when


def test_a_cell_lost_twice_is_recorded_as_crashed(cluster, tmp_path, capsys):
    code, killed = run_while_killing(matrix()[:1], tmp_path, times=1 + RETRIES)
    assert code == 1 and {(a, s) for a, s, _ in killed} == {("lenet5", 0)}
    (record,) = by_cell(tmp_path).values()
    assert record["outcome"] == "error" and record["error"]["type"] == "CellCrashed"
    assert f"was lost with its Ray worker {1 + RETRIES} times" in record["error"]["message"]
    assert "worker lost 2 times; recorded as error" in capsys.readouterr().out


def test_ctrl_c_cancels_the_cluster_cells(tmp_path):
    """SIGINT to `cnnbench suite --executor ray` mid-cell: exit 130, no cell process left running, nothing written."""
    results = tmp_path / "results"
    # RAY_ADDRESS=local: a cluster of its own (not this module's), whose workers and cells descend from the suite
    suite = subprocess.Popen([sys.executable, "-m", "cnnbench", "suite", "--executor", "ray", "--profile", "smoke",
                              "--archs", "lenet5", "--seeds", "0", "1", "--epochs", "3", "--no-measure-memory",
                              "--no-measure-throughput", "--results", str(results)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             env=os.environ | {"RAY_ADDRESS": "local"},
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def cells() -> list[psutil.Process]:
        try:
            below = psutil.Process(suite.pid).children(recursive=True)
        except psutil.Error:
            return []
        found = []
        for p in below:
            with contextlib.suppress(psutil.Error):  # gone since listed
                if "cnnbench.cell" in p.cmdline() and under_ray(p):
                    found.append(p)
        return found

    deadline = time.time() + 240
    while not (running := cells()) and time.time() < deadline and suite.poll() is None:
        time.sleep(0.1)
    assert running, "no cell started"
    suite.send_signal(signal.SIGINT)
    out, _ = suite.communicate(timeout=120)
    assert suite.returncode == 130, out[-3000:]
    assert "interrupted; finished records are kept" in out
    _, alive = psutil.wait_procs(running, timeout=30)  # cancelled tasks are force-killed: their cells with them
    assert not alive and not list(results.glob("*.json"))
