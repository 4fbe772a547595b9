"""Throughput: the timing arithmetic, the measured figures' structure, the CLI, the recorded sweep."""

import json
import time

import pytest

from cnnbench.cli import main
from cnnbench.measure import throughput
from cnnbench.measure.throughput import calibrate, peak_flops, rates, time_step

FAST = ["--min-window", "0.02", "--repeats", "2"]


def test_rates_arithmetic():
    timing = {"steps_per_window": 10, "repeats": 3, "windows_s": [1.0, 2.0, 4.0],
              "others_windows_s": {"bare": [1.0, 1.0, 1.0], "keras": [2.0, 2.0, 2.0]}}
    r = rates(timing, batch_size=4)  # 40 images per window
    assert (r["images_per_s"], r["images_per_s_min"], r["images_per_s_max"]) == (20.0, 10.0, 40.0)
    assert r["cov"] == pytest.approx(((10 - 70 / 3) ** 2 + (20 - 70 / 3) ** 2 + (40 - 70 / 3) ** 2) ** 0.5
                                     / 3**0.5 / (70 / 3))
    assert r["bare_images_per_s"] == 40.0 and r["harness_overhead"] == pytest.approx(0.5)  # ours 20 vs bare 40
    assert r["keras_images_per_s"] == 20.0 and r["keras_ratio"] == 1.0


def test_windows_are_calibrated_to_the_target_length():
    def step():
        time.sleep(0.002)

    assert 10 <= calibrate(step, 0.05) <= 25
    t = time_step(step, warmup=1, repeats=3, min_window_s=0.05, others={"bare": step})
    assert len(t["windows_s"]) == 3 and min(t["windows_s"]) >= 0.04 and len(t["others_windows_s"]["bare"]) == 3
    assert 2.0 <= t["latency_ms_p50"] <= t["latency_ms_p90"] < 20


def test_peak_is_measured_once_per_process():
    first = peak_flops("float32", n=128, repeats=2, min_window_s=0.02)
    assert first > 1e8 and peak_flops("float32") == first  # cached


def test_cli_json_per_batch_size(capsys, mnist):
    assert main(["throughput", "lenet5", "--batch-sizes", "1,4", "--end-to-end", "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"]["type"] in {"cpu", "gpu"} and out["macs_per_image"] > 0 and out["peak_flops_per_s"] > 0
    assert [r["batch_size"] for r in out["results"]] == [1, 4]
    for r in out["results"]:
        assert {"images_per_s", "cov", "latency_ms_p50", "latency_ms_p90", "flops_per_image", "mfu",
                "harness_overhead", "end_to_end_images_per_s"} <= set(r)
        assert r["flops_per_image"] == 6 * out["macs_per_image"]  # a train step: 3 x (2 FLOPs per MAC)
        assert r["mfu"] == pytest.approx(r["images_per_s"] * r["flops_per_image"] / out["peak_flops_per_s"])
        assert r["latency_ms_p50"] <= r["latency_ms_p90"] and r["cov"] >= 0


def test_cli_compares_with_keras_applications(capsys):
    argv = ["throughput", "resnet50", "--mode", "infer", "--input-shape", "32,32,3", "--batch-sizes", "1", "--json",
            "--compare-keras"]
    assert main(argv + FAST) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["keras_images_per_s"] > 0 and row["keras_ratio"] == pytest.approx(
        row["images_per_s"] / row["keras_images_per_s"])
    assert main(["throughput", "lenet5", "--compare-keras", *FAST]) == 2  # no keras twin
    assert "no keras.applications equivalent" in capsys.readouterr().err


def test_sweep_is_recorded(tmp_path, monkeypatch, mnist):
    from cnnbench.measure import throughput_sweep

    monkeypatch.setattr(throughput_sweep, "TIMING", {"warmup": 1, "repeats": 2, "min_window_s": 0.02})
    result = throughput_sweep.run_sweep(["lenet5"], batch_sizes=(1, 2), results_dir=tmp_path, out_dir=tmp_path)
    assert len(result["rows"]) == 4 and result["summary"]["n"] == 4
    (saved,) = (tmp_path / "throughput").glob("throughput-sweep.*.json")
    assert json.loads(saved.read_text())["rows"] == result["rows"]
    assert "| lenet5 | 28x28x1 | train | 1 |" in (tmp_path / "throughput.md").read_text()


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        throughput.throughput_report("lenet5", precision="float8")
