"""asv suite: thin wrappers over the harness, one parameter per registered model of the task's kind.

The run profile comes from ``CNNBENCH_ASV_PROFILE`` (``smoke`` by default, ``cpu`` or ``gpu`` for real numbers).
``setup_cache`` runs each cell once through the harness; the ``track_*`` methods only read its record.
"""

import os

import architectures
from cnnbench.harness import RunConfig, run

PROFILE = os.environ.get("CNNBENCH_ASV_PROFILE", "smoke")


class MnistCell:
    task = "mnist"
    params = [architectures.list_models(kind="classification")]
    param_names = ["arch"]
    timeout = 6 * 3600

    def setup_cache(self):
        return {arch: run(RunConfig(arch=arch, task=self.task, profile=PROFILE, seed=0), verbose=0)
                for arch in self.params[0]}

    def setup(self, cache, arch):
        if arch not in cache:
            raise NotImplementedError(f"{arch} was not run in setup_cache")

    def track_test_accuracy(self, cache, arch):
        return cache[arch]["metrics"]["test_accuracy"]

    track_test_accuracy.unit = "fraction"

    def track_train_images_per_s(self, cache, arch):
        return cache[arch]["throughput"]["train_images_per_s"]

    track_train_images_per_s.unit = "images/s"

    def track_infer_images_per_s(self, cache, arch):
        return cache[arch]["throughput"]["infer_images_per_s"]

    track_infer_images_per_s.unit = "images/s"

    def track_params(self, cache, arch):
        return cache[arch]["params"]["total"]

    track_params.unit = "parameters"

    def track_train_mfu(self, cache, arch):
        return cache[arch]["throughput"]["train_mfu"]

    track_train_mfu.unit = "fraction of the measured matmul peak"

    def track_train_step_memory(self, cache, arch):
        return cache[arch]["memory"]["measured_peak_bytes"]

    track_train_step_memory.unit = "bytes"


class SegmentationCell(MnistCell):
    """The FCNs on the segmentation task (MNIST composites offline): the same tracks, plus mean IoU."""

    task = "segmentation"
    params = [architectures.list_models(kind="segmentation")]

    def track_miou(self, cache, arch):
        return cache[arch]["metrics"]["miou"]

    track_miou.unit = "fraction"
