"""The task interface the harness programs against."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import tensorflow as tf


@dataclass
class TaskData:
    train: tf.data.Dataset
    test: tf.data.Dataset
    n_train: int
    n_test: int
    num_classes: int
    #: dataset identity for the record: name, sha256, source, n_train, n_test.
    dataset: dict[str, Any]
    #: how images were adapted to the model input (resize/pad, channels), for the record.
    adaptation: dict[str, Any] = field(default_factory=dict)
    #: a validation split, held out of the training images (early stopping, a recipe's choices)
    val: tf.data.Dataset | None = None
    batch_size: int | None = None


def batched(x, y, *, batch_size: int, seed: int | None, adapt, sequential: bool = False) -> tf.data.Dataset:
    """Arrays → cache → shuffle(seed) → batch → ``adapt(images, labels)`` on whole batches (so adapted copies are
    never cached) → prefetch. ``seed=None``: evaluation order. ``sequential``: adapt in order on one thread (seeded
    random layers then draw the same values every run)."""
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if seed is not None:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    parallel = {} if sequential else {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}
    return ds.batch(batch_size).map(adapt, **parallel).prefetch(tf.data.AUTOTUNE)


class Task(Protocol):
    name: str
    #: the kind of model it runs (the registry's ``kind``): "classification" or "segmentation"
    kind: str
    loss: str
    metrics: list[str]
    #: whether ``prepare`` takes ``validation_images`` (held out of the training split): what non-plain recipes need
    holds_out_validation: bool = False
    #: the registered models a suite runs on this task when none are named; None: every model of its ``kind``
    default_archs: tuple[str, ...] | None = None

    def prepare(self, *, input_shape: tuple[int, int, int], batch_size: int, seed: int,
                train_subset: int | None, test_subset: int | None, data_dir: str | None) -> TaskData: ...

    def verify_data(self, data_dir: str | None) -> dict[str, Any]:
        """Fetch (if needed) and verify the task's data; return its identity. Raises ChecksumError."""
        ...
