"""asv suite: thin wrappers over the harness, parametrised from the registry.

``CNNBENCH_ASV_PROFILE`` picks the run profile (``smoke`` by default; ``cpu`` or ``gpu`` for real numbers; ``gpu``
without a GPU is skipped). ``CNNBENCH_ASV_ARCHS`` narrows the models (comma-separated registry names or patterns;
default: every model). A combination the harness cannot run is skipped in ``setup`` (``NotImplementedError``).

- ``Step``: what asv times itself — one compiled train step and one inference batch on a fixed synthetic batch at the
  profile's input, width and batch size. (No ``peakmem_``: asv's peak RSS would count the setup too — TensorFlow's
  import and the model's build; the train step's own peak is ``Cell.track_train_step_memory_measured``, the
  allocator's peak in a fresh process.)
- ``Cell``: what asv cannot time — ``setup_cache`` runs each model once through the harness (its task, the profile's
  schedule, seed 0; a model that fails is recorded so, and only its tracks fail) and the ``track_`` methods read that
  run's record: accuracy, parameters, GMACs, predicted and measured train-step memory, throughput and MFU.
  On a GPU the same train step's NVML reading is tracked too (n/a elsewhere).

Only long-standing harness entry points are used (``RunConfig``/``run_cell``, the profile, ``compiled_steps``), so the
current suite can be run over older commits for a history.
"""

import fnmatch
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter would fill asv's --show-stderr

import keras
import numpy as np

import architectures
from cnnbench.harness import RunConfig, run_cell
from cnnbench.measure.throughput import compiled_steps, synthetic_batch
from cnnbench.profiles import get_profile
from cnnbench.tasks import home_task

PROFILE = os.environ.get("CNNBENCH_ASV_PROFILE", "smoke")


def _archs() -> list[str]:
    patterns = [p.strip() for p in os.environ.get("CNNBENCH_ASV_ARCHS", "*").split(",") if p.strip()]
    return [a for a in architectures.list_models() if any(fnmatch.fnmatch(a, p) for p in patterns)]


def _check_device() -> None:
    if PROFILE == "gpu":
        try:
            from cnnbench.nvml import gpu_names
        except ImportError:  # a commit from before 2026-12-07, where NVML's module sat in measure/
            from cnnbench.measure.nvml import gpu_names

        if not gpu_names():
            raise NotImplementedError("the gpu profile needs a GPU (NVML sees none)")


def _sync(out) -> None:
    leaves = [t for t in keras.tree.flatten(out) if hasattr(t, "shape")]
    np.asarray(leaves[0])  # block until the step is computed


class Step:
    """A train step and an inference batch of each model, timed by asv on synthetic data."""

    params = [_archs()]
    param_names = ["arch"]
    timeout = 1800

    def setup(self, arch):
        _check_device()
        profile = get_profile(PROFILE)
        task = home_task(arch)
        kwargs = profile.builder_kwargs(arch, task)
        self.input_shape = shape = tuple(kwargs.pop("input_shape", architectures.model_info(arch).default_input_shape))
        batch = profile.setting(arch, task)["batch_size"]
        model = architectures.create_model(arch, input_shape=shape, **kwargs)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        out = model.compute_output_shape((batch, *shape))
        x, y = synthetic_batch(batch, shape, out[-1], label_shape=tuple(out[1:-1]))
        # a step is a no-argument callable (the backend's), or (function, arguments) in commits before 2026-12-07
        self.steps = {mode: step if callable(step) else (lambda f=step[0], a=step[1]: f(*a))
                      for mode, step in compiled_steps(model, x, y).items()}
        for step in self.steps.values():  # trace and warm both before timing
            _sync(step())

    def _step(self, mode):
        _sync(self.steps[mode]())

    def time_train_step(self, arch):
        self._step("train")

    def time_infer_batch(self, arch):
        self._step("infer")


class Cell:
    """Each model once through the harness on its task (the profile's schedule, seed 0); the tracks read its
    record."""

    params = [_archs()]
    param_names = ["arch"]
    timeout = 6 * 3600

    def setup_cache(self):
        try:
            _check_device()
        except NotImplementedError:
            return {}  # setup skips every model, saying why
        # a model that fails is recorded as its outcome (run_cell), so the others still run
        return {arch: run_cell(RunConfig(arch=arch, task=home_task(arch), profile=PROFILE, seed=0), verbose=0)
                for arch in self.params[0]}

    def setup(self, cache, arch):
        _check_device()
        if arch not in cache:
            raise NotImplementedError(f"{arch} was not run in setup_cache")
        if cache[arch]["outcome"] != "ok":  # this model's tracks fail, saying why; the others are unaffected
            raise RuntimeError(f"{arch}: {cache[arch]['outcome']}: {cache[arch]['error']['message'][:500]}")

    def track_test_accuracy(self, cache, arch):
        return cache[arch]["metrics"]["test_accuracy"]

    track_test_accuracy.unit = "fraction"

    def track_params(self, cache, arch):
        return cache[arch]["params"]["total"]

    track_params.unit = "parameters"

    def track_gmacs(self, cache, arch):
        return cache[arch]["flops"]["macs"] / 1e9

    track_gmacs.unit = "GMACs per image (as run)"

    def track_train_images_per_s(self, cache, arch):
        return cache[arch]["throughput"]["train_images_per_s"]

    track_train_images_per_s.unit = "images/s"

    def track_infer_images_per_s(self, cache, arch):
        return cache[arch]["throughput"]["infer_images_per_s"]

    track_infer_images_per_s.unit = "images/s"

    def track_train_mfu(self, cache, arch):
        return cache[arch]["throughput"]["train_mfu"]

    track_train_mfu.unit = "fraction of the measured matmul peak"

    def track_train_step_memory_predicted(self, cache, arch):
        return cache[arch]["memory"]["predicted_bytes"]

    track_train_step_memory_predicted.unit = "bytes"

    def track_train_step_memory_measured(self, cache, arch):
        peak = cache[arch]["memory"]["measured_peak_bytes"]
        return float("nan") if peak is None else peak  # not measured (a backend without CPU statistics): n/a

    track_train_step_memory_measured.unit = "bytes (TF allocator peak)"

    def track_train_step_memory_nvml(self, cache, arch):
        used = cache[arch]["memory"].get("nvml_used_bytes")
        return float("nan") if used is None else used  # no GPU: no NVML reading (asv shows n/a)

    track_train_step_memory_nvml.unit = "bytes (NVML, this process, CUDA context included)"
