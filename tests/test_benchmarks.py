"""The asv suite stays a thin, registry-driven wrapper over the harness."""

import math

import pytest

import architectures
from benchmarks import benchmarks
from benchmarks.benchmarks import Cell, Step


def test_asv_parameters_come_from_the_registry(monkeypatch):
    for bench in (Step, Cell):  # every registered model, of every kind, exactly once
        assert bench.params[0] == architectures.list_models()
    monkeypatch.setenv("CNNBENCH_ASV_ARCHS", "lenet5, resnet5?")
    assert benchmarks._archs() == ["lenet5", "resnet50"]


def test_every_track_has_a_unit():
    tracks = [getattr(Cell, n) for n in dir(Cell) if n.startswith("track_")]
    assert len(tracks) >= 9 and all(t.unit for t in tracks)


def test_tracks_read_the_harness_record(smoke_record):
    bench, cache = Cell(), {"lenet5": smoke_record}
    bench.setup(cache, "lenet5")
    assert bench.track_test_accuracy(cache, "lenet5") == smoke_record["metrics"]["test_accuracy"]
    assert bench.track_params(cache, "lenet5") == 61_706
    assert bench.track_gmacs(cache, "lenet5") == smoke_record["flops"]["macs"] / 1e9
    assert bench.track_train_images_per_s(cache, "lenet5") == smoke_record["throughput"]["train_images_per_s"]
    assert bench.track_train_mfu(cache, "lenet5") == smoke_record["throughput"]["train_mfu"]
    memory = smoke_record["memory"]
    assert bench.track_train_step_memory_measured(cache, "lenet5") == memory["measured_peak_bytes"]
    assert bench.track_train_step_memory_predicted(cache, "lenet5") == memory["predicted_bytes"]
    no_gpu = {"lenet5": smoke_record | {"memory": memory | {"nvml_used_bytes": None}}}
    assert math.isnan(bench.track_train_step_memory_nvml(no_gpu, "lenet5"))  # no GPU reading: n/a, not a number
    gpu = {"lenet5": smoke_record | {"memory": memory | {"nvml_used_bytes": 123}}}
    assert bench.track_train_step_memory_nvml(gpu, "lenet5") == 123
    with pytest.raises(NotImplementedError):  # a model setup_cache did not run is skipped, not failed
        bench.setup(cache, "alexnet")


def test_step_times_a_real_train_step_and_the_gpu_profile_is_skipped_without_a_gpu(monkeypatch):
    step = Step()
    step.setup("lenet5")
    step.time_train_step("lenet5")
    step.time_infer_batch("lenet5")
    assert step.input_shape == (28, 28, 1)  # the profile's input for LeNet-5 (its paper's, 28x28 grey)
    monkeypatch.setattr(benchmarks, "PROFILE", "gpu")
    from cnnbench import nvml

    monkeypatch.setattr(nvml, "gpu_names", lambda: [])  # a machine without a GPU, whatever runs the test
    with pytest.raises(NotImplementedError, match="GPU"):
        Step().setup("lenet5")
