"""The input pipeline on Keras' backends other than TensorFlow (``pipeline.batched`` chooses it)."""

from __future__ import annotations

import keras
import numpy as np


class ArrayBatches(keras.utils.PyDataset):
    """Batches of in-memory arrays for Keras' ``fit``/``evaluate`` on any backend (a ``keras.utils.PyDataset``):
    shuffled per epoch by a seeded numpy permutation (``seed=None``: in order), each batch passed through ``adapt``
    and then each function given to ``then``, in the main process, in order."""

    def __init__(self, x, y, *, batch_size: int, seed: int | None, adapt, transforms=()):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.y, self.batch_size, self.seed, self.adapt = x, y, batch_size, seed, adapt
        self.transforms, self.epoch = tuple(transforms), 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if self.seed is None:
            return np.arange(len(self.x))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.x))

    def then(self, fn) -> ArrayBatches:
        return ArrayBatches(self.x, self.y, batch_size=self.batch_size, seed=self.seed, adapt=self.adapt,
                            transforms=(*self.transforms, fn))

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        take = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        batch = self.adapt(self.x[take], self.y[take])
        for fn in self.transforms:
            batch = fn(*batch)
        return batch

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()
