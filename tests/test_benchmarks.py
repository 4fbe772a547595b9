"""The asv suite stays a thin, registry-driven wrapper over the harness."""

import architectures
from benchmarks.benchmarks import MnistCell, SegmentationCell


def test_asv_parameters_come_from_the_registry():
    assert MnistCell.params == [architectures.list_models(kind="classification")]
    assert SegmentationCell.params == [architectures.list_models(kind="segmentation")]
    assert sorted(MnistCell.params[0] + SegmentationCell.params[0]) == architectures.list_models()


def test_tracks_read_the_harness_record(smoke_record):
    bench, cache = MnistCell(), {"lenet5": smoke_record}
    bench.setup(cache, "lenet5")
    assert bench.track_test_accuracy(cache, "lenet5") == smoke_record["metrics"]["test_accuracy"]
    assert bench.track_params(cache, "lenet5") == 61_706
    assert bench.track_train_images_per_s(cache, "lenet5") == smoke_record["throughput"]["train_images_per_s"]
    assert bench.track_train_mfu(cache, "lenet5") == smoke_record["throughput"]["train_mfu"]
    assert bench.track_train_step_memory(cache, "lenet5") == smoke_record["memory"]["measured_peak_bytes"]
