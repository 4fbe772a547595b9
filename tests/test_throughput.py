"""Throughput: the timing arithmetic, the measured figures' structure, the CLI, the recorded sweep."""

import json

import pytest

from cnnbench.cli import main
from cnnbench.measure import throughput, timing
from cnnbench.measure.throughput import peak_flops
from cnnbench.measure.timing import calibrate, rates, time_step

FAST = ["--min-window", "0.02", "--repeats", "2"]


def test_rates_arithmetic():
    timing = {"steps_per_window": 10, "repeats": 3, "windows_s": [1.0, 2.0, 4.0],
              "others_windows_s": {"bare": [1.0, 1.0, 1.0], "keras": [2.0, 2.0, 2.0]}}
    r = rates(timing, batch_size=4)  # 40 images per window: 40, 20 and 10 images/s
    assert (r["images_per_s"], r["images_per_s_min"], r["images_per_s_max"]) == (20.0, 10.0, 40.0)
    assert r["cov"] == pytest.approx(0.534522, abs=1e-6)  # population std 12.4722 / mean 23.3333
    assert r["bare_images_per_s"] == 40.0 and r["harness_overhead"] == 0.5  # ours 20 vs bare 40
    assert r["keras_images_per_s"] == 20.0 and r["keras_ratio"] == 1.0


class FakeClock:
    """``time.perf_counter`` that only a step moves: timing arithmetic checked without timing anything."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def step(self, seconds):
        self.now += seconds


def test_windows_are_calibrated_to_the_target_length(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    step, bare = (lambda: clock.step(2**-9)), (lambda: clock.step(2**-10))  # 1.953125 ms and half that: exact
    # calibration: 1, 4, 16 steps (31.25 ms >= a quarter window), then ceil(16 x 50 / 31.25) = 26 steps
    assert calibrate(step, 0.05) == 26
    t = time_step(step, warmup=1, repeats=3, min_window_s=0.05, others={"bare": bare})
    assert t["steps_per_window"] == 26 and t["windows_s"] == [26 * 2**-9] * 3
    assert t["others_windows_s"]["bare"] == [26 * 2**-10] * 3  # as many bare steps, each half as long
    assert t["latency_ms_p50"] == t["latency_ms_p90"] == 1.953125


def test_flops_per_image_and_mfu_from_hand_numbers(monkeypatch):
    import keras

    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    # every window: 10 steps of 4 images in 1 s = 40 images/s; the device peak: 1 GFLOP/s
    monkeypatch.setattr(throughput, "time_step", lambda *a, **k: {
        "steps_per_window": 10, "repeats": 2, "windows_s": [1.0, 1.0], "others_windows_s": {},
        "latency_ms_p50": 25.0, "latency_ms_p90": 25.0})
    monkeypatch.setattr(throughput, "peak_flops", lambda dtype: 1e9)
    out = throughput.measure_throughput(model, input_shape=(4, 4, 1), batch_size=4, num_classes=3, warmup=0,
                                        repeats=2, min_window_s=0.1, macs_per_image=1000)
    # train: 1000 MACs = 2000 FLOPs forward, x3 with the backward pass; 40 x 6000 / 1e9
    assert out["train_flops_per_image"] == 6000 and out["train_mfu"] == pytest.approx(2.4e-4)
    assert out["infer_flops_per_image"] == 2000 and out["infer_mfu"] == pytest.approx(8e-5)
    assert out["train_images_per_s"] == 40.0 and out["peak_flops_per_s"] == 1e9


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
        assert r["flops_per_image"] == 6 * 416_520  # a train step: 3 x 2 FLOPs per MAC; LeNet-5's MACs, by hand
        assert 0 < r["mfu"] < 1 and r["latency_ms_p50"] <= r["latency_ms_p90"] and r["cov"] >= 0


def test_cli_compares_with_keras_applications(capsys):
    argv = ["throughput", "resnet50", "--mode", "infer", "--input-shape", "32,32,3", "--batch-sizes", "1", "--json",
            "--compare-keras"]
    assert main(argv + FAST) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert row["keras_images_per_s"] > 0 and row["keras_ratio"] > 0  # the ratio's arithmetic: test_rates_arithmetic
    assert main(["throughput", "lenet5", "--compare-keras", *FAST]) == 2  # no keras twin
    assert "no keras.applications equivalent" in capsys.readouterr().err


def test_sweep_is_recorded(tmp_path, monkeypatch, mnist):
    from cnnbench.measure import throughput_sweep

    monkeypatch.setattr(throughput_sweep, "TIMING", {"warmup": 1, "repeats": 2, "min_window_s": 0.02})
    result = throughput_sweep.run_sweep(["lenet5"], batch_sizes=(1, 2), results_dir=tmp_path)
    assert len(result["rows"]) == 4 and result["summary"]["n"] == 4
    (saved,) = (tmp_path / "throughput").glob("throughput-sweep.*.json")
    assert json.loads(saved.read_text())["rows"] == result["rows"]
    from cnnbench.report import build_report

    build_report(tmp_path, tmp_path / "site")  # the report's throughput page renders the sweep
    page = (tmp_path / "site" / "throughput.html").read_text()
    assert "<td>lenet5</td><td>28x28x1</td><td>float32</td><td>train</td><td>1</td>" in page.replace("\n", "")


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        throughput.throughput_report("lenet5", precision="float8")
