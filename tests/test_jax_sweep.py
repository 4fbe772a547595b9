"""The JAX-backend sweep (GPU machines without TensorFlow's CUDA build): its plumbing end to end on the CPU, the merge
of recorded runs into one table, and the NVML readings' no-GPU contract. Its GPU figures are in results/jax/."""

import json
import os

import pytest

from cnnbench import nvml
from cnnbench.measure import jax_sweep
from cnnbench.report import jax_table


def test_nvml_readings_are_none_without_a_gpu_and_the_drivers_with_one(monkeypatch):
    """None, not an error, without NVML or without a device; the driver's figures where it reports one (a stand-in
    reporting one H100: tests/fake_nvml)."""
    import importlib.util
    import sys
    from pathlib import Path

    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py missing, or no driver to load
    assert nvml.gpu_names() == [] and nvml.gpu_info() is None
    assert (nvml.used_bytes(), nvml.process_used_bytes(os.getpid())) == (None, None)
    spec = importlib.util.spec_from_file_location("pynvml", Path(__file__).parent / "fake_nvml" / "pynvml.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setenv("FAKE_NVML_GPUS", "0")  # the driver loads and reports no device
    assert nvml.gpu_names() == [] and nvml.gpu_info() is None and nvml.used_bytes() is None
    monkeypatch.setenv("FAKE_NVML_GPUS", "1")
    assert nvml.gpu_names() == ["NVIDIA H100 80GB HBM3"]
    assert nvml.gpu_info() == {"type": "gpu", "name": "NVIDIA H100 80GB HBM3", "count": 1, "driver": "580.65.06",
                               "cuda_driver": "13.0", "memory_total_bytes": 80 * 2**30}
    assert (nvml.used_bytes(), nvml.process_used_bytes(os.getpid())) == (2**30, None)


def record(started, *, memory=(), throughput=(), oom=None, sha="a" * 40):
    return {"started_at": started, "rows": list(memory), "throughput": list(throughput), "context": None,
            "budget": None, "oom": oom, "env": {"git": {"sha": sha}, "keras": "3", "jax": "0",
                                               "device": {"name": "GPU", "driver": "1"}}}


def test_merge_takes_each_part_from_its_latest_run():
    mem = {"arch": "resnet50", "input_shape": [224, 224, 3], "precision": "float32", "mode": "train",
           "batch_size": 32, "predicted_bytes": 90 * 2**20, "peak_bytes": 100 * 2**20, "outcome": "ok"}
    fast = {"arch": "resnet50", "input_shape": [224, 224, 3], "precision": "float32", "mode": "train",
            "batch_size": 32, "outcome": "ok", "images_per_s": 3000.0, "keras_images_per_s": 2000.0,
            "keras_ratio": 1.5, "mfu": 2.0, "keras_mfu": 1.3, "peak_flops_per_s": 3e13}
    skipped = {k: fast[k] for k in ("arch", "precision", "mode", "batch_size")} | {"outcome": "skipped"}
    oom = {"arch": "resnet50", "mode": "train", "batch_size": 3550, "predicted_bytes": 2**38, "gpu_bytes": 2**37,
           "outcome": "oom", "error": "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 211.06GiB"}
    merged = jax_table.merge([record("2026-11-26T10:10:00", throughput=[fast], oom=oom, sha="b" * 40),
                              record("2026-11-26T10:00:00", memory=[mem], throughput=[skipped])])
    assert merged["memory"] == [mem] and merged["throughput"] == [fast] and merged["oom"] == oom
    assert merged["sources"]["memory"].endswith("(code aaaaaaaaaa)")
    assert merged["sources"]["throughput"].endswith("(code bbbbbbbbbb)")
    text = jax_table.table(merged)
    assert "| resnet50 | 224x224x3 | float32 | train | 32 | 90 | 100 | — | — | — | -10.0 % |" in text
    assert "| 3,000.0 | 2,000.0 | 1.500 | 200.0 % | 130.0 % |" in text
    assert "MFU above 100 %" in text  # explained, not published bare
    assert ("**oom**: resnet50 train batch 3550, predicted 262,144 MiB (GPU 131,072 MiB): outcome oom, XLA peak — "
            "MiB — RESOURCE_EXHAUSTED: Out of memory while trying to allocate 211.06GiB") in text
    assert jax_sweep.summarize(merged)["median_abs_error"] == pytest.approx(0.1)


@pytest.mark.full
def test_sweep_end_to_end_on_the_cpu(tmp_path, monkeypatch):
    """Memory (each case twice, fresh processes), the twin-timed throughput, the record and the table, on JAX's CPU
    backend at toy sizes. The sweep's own processes run ``python -m cnnbench.measure.jax_sweep``."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # for this test's processes only (not the worker's later tests)
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "from cnnbench.measure import jax_sweep as j; j.run(archs=('lenet5',), batches=(2,), "
         "precisions=('float32',), parity=('resnet50',), points=(('float32', 2),), modes=('infer',), "
         f"input_shape=(32, 32, 3), parts=('memory', 'throughput'), workers=2, results_dir={str(tmp_path)!r})"],
        capture_output=True, text=True, timeout=600, env=os.environ | {"KERAS_BACKEND": "jax"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "jax").glob("jax-sweep.*.json")
    result = json.loads(path.read_text())
    assert result["env"]["keras_backend"] == "jax" and result["env"]["jax"]
    assert [(r["mode"], r["outcome"]) for r in result["rows"]] == [("train", "ok"), ("infer", "ok")]
    assert all(r["predicted_bytes"] > r["bare_minimum_bytes"] > 0 for r in result["rows"])
    (row,) = result["throughput"]
    assert row["outcome"] == "ok" and row["images_per_s"] > 0 and row["keras_images_per_s"] > 0
    # the parity figure is ours against keras' own ResNet-50, timed in the same run (how close they are is a
    # measurement, recorded in results/jax/, not something a test on shared cores can assert)
    assert row["keras_ratio"] == pytest.approx(row["images_per_s"] / row["keras_images_per_s"], rel=1e-6)
    assert "| resnet50 | 32x32x3 | float32 | infer | 2 |" in jax_table.table(jax_table.merge([result]))
