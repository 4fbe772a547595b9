"""Arrays → batches for Keras' ``fit``/``evaluate`` on any backend: a ``tf.data`` pipeline on TensorFlow (parallel,
prefetched), ``batches.ArrayBatches`` (a ``keras.utils.PyDataset`` of numpy batches) elsewhere. The tasks'
``adapt``, written in ``keras.ops``, is the same code in both."""

from __future__ import annotations

from cnnbench import backends
from cnnbench._util import lazy

tf = lazy("tensorflow")


def batched(x, y, *, batch_size: int, seed: int | None, adapt, sequential: bool = False):
    """Arrays → cache → shuffle(seed) → batch → ``adapt(images, labels)`` on whole batches (so adapted copies are
    never cached) → prefetch. ``seed=None``: evaluation order. ``sequential``: adapt in order on one thread (seeded
    random layers then draw the same values every run). A tf.data pipeline on TensorFlow, ``ArrayBatches``
    elsewhere."""
    if backends.capability("tf_data"):
        from cnnbench.data.batches import ArrayBatches

        return ArrayBatches(x, y, batch_size=batch_size, seed=seed, adapt=adapt)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if seed is not None:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    parallel = {} if sequential else {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}
    return ds.batch(batch_size).map(adapt, **parallel).prefetch(tf.data.AUTOTUNE)


def mapped(dataset, fn):
    """``dataset`` with ``fn(images, labels)`` applied to every batch, in order (seeded random layers draw the same
    values every run)."""
    if backends.capability("tf_data"):
        return dataset.then(fn)
    return dataset.map(fn).prefetch(tf.data.AUTOTUNE)
