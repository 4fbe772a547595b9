"""TensorFlow: the default backend, and the only one with tf.distribute, TFDS, the traced-graph memory predictor and
the allocator's traces."""

from __future__ import annotations

from importlib import metadata

import tensorflow as tf

NAME = "tensorflow"
#: how a step may be compiled: traced into a graph (False), or by XLA too (True)
JIT_CHOICES = (False, True)
ALLOCATOR = "TensorFlow's BFC allocator (peak of tf.config.experimental.get_memory_info)"
LOSSES: dict = {}  # Keras' own losses work here (``backends.loss``)
CAPABILITIES = {"strategies": True, "tfds": True, "tf_data": True, "graph_memory": True, "allocator_trace": True,
                "measured_memory": True}


def capabilities() -> dict:
    return CAPABILITIES



def versions() -> dict:
    return {"tensorflow": tf.__version__, "tensorflow_datasets": _version("tensorflow-datasets")}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def gpu() -> dict | None:
    """The GPUs TensorFlow sees (the first one's name and compute capability, their count); None without one."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return {"name": details.get("device_name", gpus[0].name), "count": len(gpus),
            "compute_capability": list(details.get("compute_capability") or [])}


def set_determinism(seed: int) -> None:
    """Seed Python, numpy and TF, and make TF ops deterministic (same command twice → same metrics on CPU)."""
    import keras

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, tf.errors.ResourceExhaustedError | MemoryError)


def compiled_steps(model, x, y, *, jit: bool = False) -> dict:
    """The train step (the model must be compiled) and inference as ``tf.function``s (XLA with ``jit``) on fixed,
    on-device batches, each a no-argument callable."""
    train = tf.function(model.train_step, jit_compile=jit)
    infer = tf.function(lambda t: model(t, training=False), jit_compile=jit)
    x, y = tf.constant(x), tf.constant(y)
    return {"train": lambda: train((x, y)), "infer": lambda: infer(x)}


def matmul(n: int, dtype: str):
    a = tf.random.stateless_normal((n, n), seed=(1, 2), dtype=dtype)
    b = tf.random.stateless_normal((n, n), seed=(3, 4), dtype=dtype)
    product = tf.function(lambda: tf.linalg.matmul(a, b))
    return product



def running_forward(model, layers):
    """(set_momentum(m), forward(x)): a traced training-mode forward pass whose batch-norm ``layers`` read their
    momentum from one variable, so every pass runs as one graph (``training.precise_batch_norm``)."""
    momentum = tf.Variable(0.0, trainable=False, dtype="float32")
    for layer in layers:
        layer.momentum = momentum
    return momentum.assign, tf.function(lambda x: model(x, training=True))
