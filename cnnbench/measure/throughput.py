"""Images per second of the compiled train step and of inference, on synthetic in-memory input.

Warm-up steps (tracing, autotuning) are run first and not timed; then ``repeats`` windows of ``steps`` steps are
timed, each ended by reading a value back so queued work is finished before the clock stops.
"""

from __future__ import annotations

import statistics
import time

import keras
import numpy as np
import tensorflow as tf


def _timed_windows(step, *, warmup: int, steps: int, repeats: int) -> list[float]:
    out = None
    for _ in range(warmup):
        out = step()
    _sync(out)
    windows = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            out = step()
        _sync(out)
        windows.append(time.perf_counter() - t0)
    return windows


def _sync(out) -> None:
    """Block until ``out`` is computed by copying one of its tensors to the host."""
    leaves = [t for t in tf.nest.flatten(out) if hasattr(t, "numpy")]
    if leaves:
        leaves[0].numpy()


def _summary(prefix: str, windows: list[float], steps: int, batch_size: int) -> dict[str, float]:
    rates = [steps * batch_size / w for w in windows]
    mean = statistics.fmean(rates)
    return {
        f"{prefix}_images_per_s": statistics.median(rates),
        f"{prefix}_images_per_s_min": min(rates),
        f"{prefix}_images_per_s_max": max(rates),
        f"{prefix}_cov": statistics.pstdev(rates) / mean if len(rates) > 1 else 0.0,
    }


def measure_throughput(model: keras.Model, *, input_shape: tuple[int, int, int], batch_size: int, num_classes: int,
                       warmup: int, steps: int, repeats: int, seed: int = 0) -> dict[str, float]:
    """Train-step and inference throughput of a compiled model. Trains it on random data: measure after evaluating."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, *input_shape)
    x = tf.constant(rng.random(shape, dtype=np.float32))
    y = tf.constant(rng.integers(0, num_classes, batch_size, dtype=np.int32))

    # fit()'s own compiled step, reused (no retrace when fit ran first): the step users' training runs. Batches
    # come from an iterator over one in-memory batch, batch dim left unknown like a real pipeline's.
    train_function = model.make_train_function()
    batches = iter(tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(batch_size))
    infer_step = tf.function(lambda t: model(t, training=False), jit_compile=bool(model.jit_compile))
    train = _timed_windows(lambda: train_function(batches), warmup=warmup, steps=steps, repeats=repeats)
    infer = _timed_windows(lambda: infer_step(x), warmup=warmup, steps=steps, repeats=repeats)
    return {"batch_size": batch_size, "timed_steps": steps, "timed_repeats": repeats, "warmup_steps": warmup,
            **_summary("train", train, steps, batch_size), **_summary("infer", infer, steps, batch_size)}
