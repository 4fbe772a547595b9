"""The asv suite stays a thin, registry-driven wrapper over the harness."""

import architectures
from benchmarks.benchmarks import MnistCell, SegmentationCell


def test_asv_parameters_come_from_the_registry():
    cells = {"classification": MnistCell, "segmentation": SegmentationCell}
    # every registered model is benchmarked exactly once, by the cell of its kind
    benchmarked = [name for cell in cells.values() for name in cell.params[0]]
    assert sorted(benchmarked) == architectures.list_models() and len(set(benchmarked)) == len(benchmarked)
    for name in benchmarked:
        assert name in cells[architectures.model_info(name).kind].params[0], name
    assert {"lenet5", "resnet50", "xception"} <= set(MnistCell.params[0])
    assert {"fcn8s_vgg16", "fcn32s_vgg16"} <= set(SegmentationCell.params[0])


def test_tracks_read_the_harness_record(smoke_record):
    bench, cache = MnistCell(), {"lenet5": smoke_record}
    bench.setup(cache, "lenet5")
    assert bench.track_test_accuracy(cache, "lenet5") == smoke_record["metrics"]["test_accuracy"]
    assert bench.track_params(cache, "lenet5") == 61_706
    assert bench.track_train_images_per_s(cache, "lenet5") == smoke_record["throughput"]["train_images_per_s"]
    assert bench.track_train_mfu(cache, "lenet5") == smoke_record["throughput"]["train_mfu"]
    assert bench.track_train_step_memory(cache, "lenet5") == smoke_record["memory"]["measured_peak_bytes"]
