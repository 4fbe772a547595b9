"""The suite on Keras' JAX or PyTorch backend with TensorFlow blocked from importing, as on the GPU machines that
carry no TensorFlow: ``nox -s tests-jax`` / ``tests-torch`` (tests/without_tensorflow on PYTHONPATH, KERAS_BACKEND
set). Marked ``without_tf``: the other tiers leave these out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from architectures import list_models

pytestmark = pytest.mark.without_tf
ROOT = Path(__file__).resolve().parents[1]
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
#: above chance on 512 MNIST test images: a model that learned only the class frequencies scores about 0.11, and 0.2
#: is seven standard deviations above that. (The TensorFlow tier's bar, 0.5, was set on TensorFlow's random streams;
#: on JAX's, GoogLeNet's smoke cell reached 0.44 where TensorFlow's reached the bar.)
LEARNED = 0.2


@pytest.fixture(scope="module", autouse=True)
def _without_tensorflow():
    if BACKEND == "tensorflow" or "without_tensorflow" not in os.environ.get("PYTHONPATH", ""):
        pytest.fail("this tier runs with KERAS_BACKEND=jax or torch and tests/without_tensorflow on PYTHONPATH "
                    "(nox -s tests-jax, tests-torch)")


def _cnnbench(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnbench", *args], capture_output=True, text=True, **kwargs)


def test_tensorflow_cannot_be_imported_and_keras_runs_on_the_backend():
    import keras

    with pytest.raises(ImportError, match="blocked"):
        import tensorflow  # noqa: F401
    assert keras.config.backend() == BACKEND
    assert "tensorflow" not in sys.modules


@pytest.mark.xdist_group("backend_suite")
def test_the_smoke_suite_trains_every_classifier_and_fcn_without_tensorflow(tmp_path):
    """Every classifier on MNIST, the transfer task's default backbone and every FCN, one process per cell, on this
    backend: records written, each classifier above chance, memory measurement skipped with its reason where the
    backend keeps no allocator statistics (the CPU), never faked. (Throughput on this backend: the bench-gpu test.)"""
    run = _cnnbench("suite", "--profile", "smoke", "--tasks", "mnist", "transfer", "segmentation", "--seeds", "0",
                    "--no-measure-throughput", "--results", str(tmp_path), timeout=3000)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    cells = {(r["arch"], r["task"]): r for r in records}
    expected = {(a, "mnist") for a in list_models(kind="classification")} | {("efficientnet_lite0", "transfer")}
    expected |= {(a, "segmentation") for a in list_models(kind="segmentation")}
    assert set(cells) == expected and all(r["outcome"] == "ok" for r in records)
    assert {r["env"]["keras_backend"] for r in records} == {BACKEND}
    assert all(BACKEND in r["env"]["backend_versions"] for r in records)
    low = {a: r["metrics"]["test_accuracy"] for (a, t), r in cells.items() if t == "mnist"
           and r["metrics"]["test_accuracy"] < LEARNED}
    assert not low, f"below {LEARNED} on the test images: {low}"
    for r in records:  # the CPU: no allocator statistics on this backend, and the record says so
        memory = r["memory"]
        assert memory["measured_peak_bytes"] is None and memory["measure_skipped"]


def test_bench_gpu_quick_runs_end_to_end_without_tensorflow(tmp_path):
    """``bench-gpu --quick`` with the GPU check forced, on this CPU: the suite, the memory and throughput sweeps, asv
    and the report, every step on this backend (asv's processes get the blocker through ASV_PYTHONPATH)."""
    results, reports, home = tmp_path / "results", tmp_path / "reports", tmp_path / "home"
    home.mkdir()
    blocker = str(ROOT / "tests" / "without_tensorflow")
    env = os.environ | {"CNNBENCH_ASSUME_GPU": "1", "HOME": str(home), "ASV_PYTHONPATH": blocker}
    run = subprocess.run([sys.executable, "-m", "cnnbench.pipeline", "--quick", "--profile", "smoke",
                          "--archs", "lenet5", "--batch-sizes", "8", "--min-window", "0.05",
                          "--results", str(results), "--reports", str(reports)],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (record,) = [json.loads(p.read_text()) for p in results.glob("lenet5.mnist.smoke.seed0.*.json")]
    assert record["outcome"] == "ok" and record["env"]["keras_backend"] == BACKEND
    (memory,) = [json.loads(p.read_text()) for p in (results / "memory").glob("*.json")]
    assert {(r["mode"], r["batch_size"]) for r in memory["rows"]} == {("train", 8), ("infer", 8)}
    assert all(r["graph_skipped"] and r["measure_skipped"] for r in memory["rows"])
    (throughput,) = [json.loads(p.read_text()) for p in (results / "throughput").glob("*.json")]
    assert {r["precision"] for r in throughput["rows"]} == {"float32", "mixed_float16"}
    assert throughput["env"]["keras_backend"] == BACKEND
    asv_results = [p for p in (results / "asv").rglob("*.json") if p.name not in ("machine.json", "benchmarks.json")]
    tracked = json.loads(asv_results[0].read_text())["results"]
    assert "benchmarks.Cell.track_test_accuracy" in tracked and "benchmarks.Step.time_train_step" in tracked
    assert (reports / "index.html").is_file() and (reports / "asv" / "index.html").is_file()
