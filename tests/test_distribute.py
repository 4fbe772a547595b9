"""One model on several devices (``--strategy``): MirroredStrategy over two logical CPU devices, a two-process
MultiWorkerMirroredStrategy on localhost ports, the 1-vs-2-replica throughput record, and what is refused.

Each run is a fresh process: the CPU can only be split before TensorFlow starts, and each worker is its own process.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from cnnbench import records
from cnnbench.cli import main
from cnnbench.suite import cell_key, record_key

#: the loss trajectory under two replicas equals one device's at the same global batch to this relative tolerance
#: (the gradient is summed from two half-batches, so only float rounding differs: 2e-7 observed)
RTOL = 1e-5
# LeNet-5 (no batch norm: two replicas' BN would normalise each half-batch by its own statistics), 2 epochs of the
# smoke slice, global batch 64
RUN = ["run", "lenet5", "--profile", "smoke", "--epochs", "2", "--no-measure-memory", "--no-measure-throughput"]


def cnnbench(*argv: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"} | (env or {})
    return subprocess.Popen([sys.executable, "-m", "cnnbench", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def only_record(folder) -> dict:
    paths = list(folder.glob("*.json"))
    assert len(paths) == 1, paths
    return records.read(paths[0])


@pytest.fixture(scope="module")
def one_device(tmp_path_factory, mnist):
    folder = tmp_path_factory.mktemp("one_device")
    finish(cnnbench(*RUN, "--batch-size", "64", "--results", str(folder)))
    return only_record(folder)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory, mnist):
    folder = tmp_path_factory.mktemp("mirrored")
    finish(cnnbench(*RUN, "--batch-size", "32", "--strategy", "mirrored", "--cpu-devices", "2",
                    "--results", str(folder)))
    return only_record(folder)


def test_two_mirrored_cpu_devices_follow_one_device_at_the_same_global_batch(one_device, mirrored):
    record = mirrored
    config = record["config"]
    assert (config["strategy"], config["replicas"], config["batch_size"], config["global_batch_size"]) == (
        "mirrored", 2, 32, 64)
    assert [d.rsplit("/", 1)[-1] for d in config["devices"]] == ["device:CPU:0", "device:CPU:1"]
    assert record["memory"]["replica_peak_bytes"] is None  # per GPU; logical CPU devices share one allocator
    assert one_device["config"]["strategy"] == "default" and one_device["config"]["replicas"] == 1
    mine, theirs = record["metrics"]["train_loss"], one_device["metrics"]["train_loss"]
    assert mine == pytest.approx(theirs, rel=RTOL), (mine, theirs)
    assert record["metrics"]["test_accuracy"] == pytest.approx(one_device["metrics"]["test_accuracy"], abs=2 / 512)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_train_one_model_and_the_chief_records_it(one_device, tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    procs = [cnnbench(*RUN, "--batch-size", "32", "--strategy", "multiworker", "--results", str(tmp_path / f"w{i}"),
                      env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    outputs = [finish(p) for p in procs]
    assert "the chief writes the record" in outputs[1]
    assert not (tmp_path / "w1").exists() or not list((tmp_path / "w1").glob("*.json"))
    record = only_record(tmp_path / "w0")
    config = record["config"]
    assert (config["strategy"], config["replicas"], config["workers"], config["global_batch_size"]) == (
        "multiworker", 2, 2, 64)
    # each worker trains on its shard of every global batch: one device's trajectory again
    assert record["metrics"]["train_loss"] == pytest.approx(one_device["metrics"]["train_loss"], rel=RTOL)


def test_throughput_records_one_against_two_replicas(tmp_path):
    out = finish(cnnbench("throughput", "lenet5", "--strategy", "mirrored", "--cpu-devices", "2", "--batch-sizes",
                          "8", "--min-window", "0.05", "--repeats", "3", "--results", str(tmp_path)))
    assert "scaling efficiency" in out
    path, = (tmp_path / "scaling").glob("scaling.*.json")
    result = json.loads(path.read_text())
    assert result["distribution"]["strategy"] == "mirrored" and result["distribution"]["replicas"] == 2
    assert result["env"]["code_sha256"] and result["env"]["device"]
    row, = result["rows"]
    assert (row["batch_size"], row["global_batch_size"], row["replicas"]) == (8, 16, 2)
    assert row["images_per_s_per_replica"] == pytest.approx(row["images_per_s"] / 2)
    assert row["scaling_efficiency"] == pytest.approx(row["images_per_s"] / (2 * row["one_replica_images_per_s"]))
    from cnnbench.report.build import build_report

    build_report(tmp_path, tmp_path / "reports")
    page = (tmp_path / "reports" / "throughput.html").read_text()
    assert "One model on 2 replicas: lenet5" in page and f"{100 * row['scaling_efficiency']:.0f} %" in page
    assert (tmp_path / "reports" / "records" / "scaling" / path.name).is_file()  # the page's link resolves


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "lenet5", "--cpu-devices", "2"], "--cpu-devices splits the CPU for --strategy mirrored"),
    (["run", "lenet5", "--strategy", "multiworker"], "needs TF_CONFIG"),
    (["run", "efficientnet_lite0", "--task", "transfer", "--strategy", "mirrored"], "own two-phase recipe"),
    (["suite", "--archs", "lenet5", "--strategy", "mirrored", "--executor", "ray"], "--strategy default"),
    (["throughput", "lenet5", "--strategy", "mirrored", "--jit"], "not with --compare-keras, --end-to-end or --jit"),
])
def test_what_cannot_be_distributed_is_refused_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert main([*argv, "--results", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_distributed_cell_is_not_the_single_device_cell(one_device):
    from cnnbench.spec import RunConfig

    assert record_key(one_device) == cell_key(RunConfig(arch="lenet5", profile="smoke", seed=0))
    assert cell_key(RunConfig(arch="lenet5", profile="smoke", seed=0, strategy="mirrored")) != record_key(one_device)


def test_the_report_keeps_distributed_runs_out_of_the_single_device_tables(one_device, mirrored, tmp_path):
    from cnnbench.report.frames import records_frame, summary_frame

    for record in (one_device, mirrored):
        records.write(record, tmp_path)
    frame = records_frame(tmp_path)
    assert sorted(frame["strategy"]) == ["default", "mirrored"]
    summary = summary_frame(frame)
    assert len(summary) == 1 and summary.iloc[0]["seeds"] == 1
    assert summary.iloc[0]["acc_mean"] == one_device["metrics"]["test_accuracy"]
