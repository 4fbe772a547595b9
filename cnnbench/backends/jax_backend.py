"""JAX (XLA): the backend of the GPU machines that carry no TensorFlow."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from cnnbench.backends import eager_running_forward as running_forward  # noqa: F401  (the seam's)

NAME = "jax"
JIT_CHOICES = (True,)  # XLA compiles every step
ALLOCATOR = "XLA's allocator (peak_bytes_in_use of jax.Device.memory_stats; GPU only)"
LOSSES: dict = {}  # Keras' own losses work here (``backends.loss``)
CAPABILITIES = {"strategies": "tf.distribute is TensorFlow's", "tfds": "TFDS reads through TensorFlow",
                "tf_data": "tf.data is TensorFlow's: batches are a keras.utils.PyDataset of numpy arrays",
                "graph_memory": "the traced-graph predictor simulates TensorFlow's executor and allocator",
                "allocator_trace": "the allocator's trace is TensorFlow's profiler"}


def capabilities() -> dict:
    gpu = jax.default_backend() == "gpu"
    return CAPABILITIES | {"measured_memory": True if gpu else "XLA keeps no allocator statistics on the CPU"}



def versions() -> dict:
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}


def gpu() -> dict | None:
    """The GPUs XLA computes on; None where JAX runs on the CPU."""
    if jax.default_backend() != "gpu":
        return None
    gpus = jax.devices()
    return {"name": gpus[0].device_kind, "count": len(gpus),
            "compute_capability": [int(c) for c in str(getattr(gpus[0], "compute_capability", "")).split(".") if c]}


def set_determinism(seed: int) -> None:
    """Seed Python, numpy and Keras' JAX random streams. XLA on the CPU computes deterministically; on a GPU,
    ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` must be set before JAX starts (the cell's environment)."""
    import keras

    keras.utils.set_random_seed(seed)


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, jax.errors.JaxRuntimeError)
                                            and "RESOURCE_EXHAUSTED" in str(exc))


def compiled_steps(model, x, y, *, jit: bool = True) -> dict:
    """Keras' own ``train_step`` under ``jax.jit`` with its state donated (as ``fit`` runs it), and inference through
    ``stateless_call``, on fixed on-device batches; each call works on its own copy of the model's state. XLA
    compiles every step (``jit`` is always on)."""
    from cnnbench.compat import build_training_state

    build_training_state(model, (x, y, None))  # builds optimizer, loss and metric state, as fit() does first
    copy = lambda vs: [jnp.array(v.value, copy=True) for v in vs]  # noqa: E731
    state = [(copy(model.trainable_variables), copy(model.non_trainable_variables),
              copy(model.optimizer.variables), copy(model.metrics_variables))]
    x, y = jax.device_put(x), jax.device_put(y)
    train = jax.jit(model.train_step, donate_argnums=0)
    infer = jax.jit(lambda tv, ntv, t: model.stateless_call(tv, ntv, t, training=False)[0])
    weights = (copy(model.trainable_variables), copy(model.non_trainable_variables))

    def train_step():
        logs, state[0] = train(state[0], (x, y))
        return logs

    return {"train": train_step, "infer": lambda: infer(*weights, x)}


def matmul(n: int, dtype: str):
    a, b = (jax.random.normal(jax.random.key(k), (n, n), dtype) for k in (1, 2))
    product = jax.jit(jnp.matmul)
    return lambda: product(a, b)
