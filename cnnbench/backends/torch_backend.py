"""PyTorch: Keras' eager backend on torch tensors."""

from __future__ import annotations

import torch

from cnnbench.backends import eager_running_forward as running_forward  # noqa: F401  (the seam's)

NAME = "torch"
JIT_CHOICES = (False,)  # eager: Keras' torch backend does not compile its steps
ALLOCATOR = "PyTorch's CUDA caching allocator (torch.cuda.max_memory_allocated; GPU only)"
CAPABILITIES = {"strategies": "tf.distribute is TensorFlow's", "tfds": "TFDS reads through TensorFlow",
                "tf_data": "tf.data is TensorFlow's: batches are a keras.utils.PyDataset of numpy arrays",
                "graph_memory": "the traced-graph predictor simulates TensorFlow's executor and allocator",
                "allocator_trace": "the allocator's trace is TensorFlow's profiler",
                "measured_memory": "no memory probe for PyTorch yet (torch.cuda.max_memory_allocated on a GPU)"}


def capabilities() -> dict:
    return CAPABILITIES


def flat_sparse_categorical_crossentropy(y_true, y_pred):
    """Keras' sparse cross-entropy over the class axis, computed on (pixels, classes) rows and shaped back. On a
    per-pixel output (N, H, W, C) Keras' torch backend moves the class axis to dimension 1 and its NLL backward
    refuses the non-contiguous result ("grad_input must be contiguous", Keras 3 with torch 2.13): the FCNs could not
    train. The same numbers, one row per pixel."""
    import keras
    from keras import ops

    flat = keras.losses.sparse_categorical_crossentropy(ops.reshape(y_true, (-1,)),
                                                        ops.reshape(y_pred, (-1, y_pred.shape[-1])))
    return ops.reshape(flat, y_pred.shape[:-1])


#: losses compiled by name whose Keras implementation fails on this backend, and the stand-in (``backends.loss``)
LOSSES = {"sparse_categorical_crossentropy": flat_sparse_categorical_crossentropy}



def versions() -> dict:
    return {"torch": torch.__version__}


def gpu() -> dict | None:
    """The CUDA devices PyTorch sees; None without one."""
    if not torch.cuda.is_available():
        return None
    return {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
            "compute_capability": list(torch.cuda.get_device_capability(0))}


def set_determinism(seed: int) -> None:
    """Seed Python, numpy and torch, and make torch choose deterministic kernels."""
    import keras

    keras.utils.set_random_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError | MemoryError)


def compiled_steps(model, x, y, *, jit: bool = False) -> dict:
    """Keras' own ``train_step`` and inference on fixed on-device batches, run eagerly as PyTorch runs them (``jit``:
    ``torch.compile`` is not used: Keras' torch backend does not compile its train step)."""
    from keras import ops

    x, y = ops.convert_to_tensor(x), ops.convert_to_tensor(y)

    def infer():
        with torch.no_grad():
            return model(x, training=False)

    return {"train": lambda: model.train_step((x, y)), "infer": infer}


def matmul(n: int, dtype: str):
    where = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device=where).manual_seed(1)
    a, b = (torch.randn(n, n, dtype=getattr(torch, dtype), device=where, generator=generator) for _ in range(2))
    return lambda: torch.matmul(a, b)
