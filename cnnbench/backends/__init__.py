"""The backend seam: everything that differs between Keras' backends, one module each, chosen from
``keras.config.backend()``; the rest of the suite is backend-neutral.

Each module (``tensorflow_backend``, ``jax_backend``, ``torch_backend``) provides:

* ``NAME``; ``JIT_CHOICES``: how its steps may be compiled (``jit`` False and/or True); ``ALLOCATOR``: whose
  figure ``measured_peak_bytes`` is; ``capabilities()``: what only some backends can do (``strategies``:
  tf.distribute; ``tfds``; ``tf_data``: the input pipelines; ``graph_memory``: the traced-graph predictor;
  ``allocator_trace``: the allocator's own records of a step; ``measured_memory``), each ``True`` or the reason it
  is not;
* ``versions()``: the backend's packages; ``gpu()``: the GPUs it computes on (None: the CPU);
* ``set_determinism(seed)``; ``is_oom(exc)``;
* ``compiled_steps(model, x, y, jit=False)``: a no-argument train step and inference on fixed on-device batches;
* ``matmul(n, dtype)``: a no-argument n x n matrix product, for the matmul peak;
* ``running_forward(model, layers)``: a training-mode forward pass whose batch norm averages with a set momentum;
* ``LOSSES``: losses Keras names whose implementation fails on this backend, each with its stand-in (``loss``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {"tensorflow": "tensorflow_backend", "jax": "jax_backend", "torch": "torch_backend"}


def name() -> str:
    """The Keras backend this process runs (``KERAS_BACKEND``; TensorFlow by default)."""
    import keras

    return keras.config.backend()


def current() -> ModuleType:
    """The seam's module for this process's backend; a backend the suite does not support is a ValueError."""
    backend = name()
    if backend not in MODULES:
        raise ValueError(f"Keras' {backend} backend is not supported (supported: {', '.join(MODULES)})")
    return importlib.import_module(f"cnnbench.backends.{MODULES[backend]}")


def loss(name: str):
    """What to compile under the loss ``name``: Keras' own, or this backend's stand-in where Keras' fails."""
    return current().LOSSES.get(name, name)


def capability(what: str) -> str | None:
    """None where this backend can do ``what``, else the reason it cannot (for a record's ``skipped``)."""
    able = current().capabilities()[what]
    return None if able is True else able


def eager_running_forward(model, layers):
    """``running_forward`` where a forward pass runs eagerly (JAX outside ``jit``, PyTorch): (set_momentum(m),
    forward(x)), the batch-norm ``layers`` averaging with the momentum last set (``training.precise_batch_norm``)."""
    def set_momentum(m: float) -> None:
        for layer in layers:
            layer.momentum = m

    return set_momentum, lambda x: model(x, training=True)
