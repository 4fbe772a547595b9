"""Image classification on a verified array dataset (MNIST), adapted to whatever input the architecture takes."""

from __future__ import annotations

import numpy as np

from cnnbench._util import lazy
from cnnbench.data.fashion_mnist import load_fashion_mnist
from cnnbench.data.mnist import load_mnist
from cnnbench.data.pipeline import batched
from cnnbench.tasks.base import Task, TaskData

ops = lazy("keras.ops")


def adapt_images(images, input_shape: tuple[int, int, int]):
    """uint8 (B, h, w) → float32 (B, H, W, C) in [0, 1], in ``keras.ops`` (TensorFlow's ops inside tf.data).

    A target at most 8 px larger is reached by zero padding (how LeNet-5's 32x32 input holds 28x28 digits); anything
    else by bilinear resizing. Grey is replicated to C channels.
    """
    h, w, c = input_shape
    x = ops.cast(images, "float32")[..., None] / 255.0
    src_h, src_w = images.shape[1], images.shape[2]
    if (h, w) != (src_h, src_w):
        if 0 <= h - src_h <= 8 and 0 <= w - src_w <= 8:
            top, left = (h - src_h) // 2, (w - src_w) // 2
            x = ops.pad(x, [[0, 0], [top, h - src_h - top], [left, w - src_w - left], [0, 0]])
        else:
            x = ops.image.resize(x, (h, w), interpolation="bilinear")
    return ops.repeat(x, c, axis=-1) if c != 1 else x


def adaptation(src_hw: tuple[int, int], input_shape: tuple[int, int, int]) -> dict:
    h, w, c = input_shape
    dh, dw = h - src_hw[0], w - src_hw[1]
    how = "none" if (dh, dw) == (0, 0) else ("zero-pad" if 0 <= dh <= 8 and 0 <= dw <= 8 else "bilinear-resize")
    return {"source_hw": list(src_hw), "input_shape": [h, w, c], "spatial": how, "channels": "replicate" if c > 1
            else "grey", "scale": "x / 255"}


def pipeline(x, y, *, input_shape, batch_size: int, seed: int | None):
    """uint8 arrays → batches of float32 images adapted to ``input_shape`` (``adapt_images``) and int32 labels;
    ``seed=None`` means evaluation order (no shuffle)."""
    return batched(x, y.astype("int32"), batch_size=batch_size, seed=seed,
                   adapt=lambda im, lab: (adapt_images(im, input_shape), lab))


class MnistTask(Task):
    """Real MNIST, official 60k/10k split; test accuracy is the headline metric."""

    name = "mnist"
    title = "MNIST (real, 10 digits)"
    dataset_name = "mnist"
    load = staticmethod(load_mnist)  # the verified arrays
    holds_out_validation = True
    takes_dataset = False
    target_accuracy = 0.99
    columns = ("time_to_target",)

    def __init__(self, source: str | None = None):
        if source not in (None, self.dataset_name):
            raise ValueError(f"the {self.name} task reads {self.dataset_name} only, not {source!r} (--dataset is for "
                             "--task transfer and --task segmentation)")
        super().__init__(source)

    def verify_data(self, data_dir=None) -> dict:
        return self.load(data_dir_override=data_dir).metadata()

    def prepare(self, *, input_shape, batch_size, seed, train_subset=None, test_subset=None, data_dir=None,
                validation_images: int = 0) -> TaskData:
        """``validation_images``: the last N training images become ``val`` and are never trained on (the subset is
        taken from the rest)."""
        ds = self.load(data_dir_override=data_dir)
        if not 0 <= validation_images < len(ds.y_train):
            raise ValueError(f"validation_images must be in [0, {len(ds.y_train)}), got {validation_images}")
        n_fit = len(ds.y_train) - validation_images
        xtr, ytr = ds.x_train[:n_fit][:train_subset], ds.y_train[:n_fit][:train_subset]
        xte, yte = ds.x_test[:test_subset], ds.y_test[:test_subset]
        meta = ds.metadata() | {"n_train": len(ytr), "n_test": len(yte), "n_val": validation_images,
                                "subset": train_subset is not None or test_subset is not None}
        self._test = (xte, yte, input_shape, batch_size)  # what evaluate() shifts
        return TaskData(
            train=pipeline(xtr, ytr, input_shape=input_shape, batch_size=batch_size, seed=seed),
            test=pipeline(xte, yte, input_shape=input_shape, batch_size=batch_size, seed=None),
            val=pipeline(ds.x_train[n_fit:], ds.y_train[n_fit:], input_shape=input_shape, batch_size=batch_size,
                         seed=None) if validation_images else None,
            n_train=len(ytr), n_test=len(yte), num_classes=ds.num_classes, dataset=meta,
            adaptation=adaptation(ds.x_train.shape[1:3], input_shape), batch_size=batch_size,
        )


class FashionMnistTask(MnistTask):
    """Fashion-MNIST (Xiao et al. 2017), official 60k/10k split, the same 28x28 grey format as MNIST but far from
    saturated: where the ablations run, so that differences between variants can show."""

    name = "fashion_mnist"
    title = "Fashion-MNIST (real, 10 kinds of clothing)"
    dataset_name = "fashion_mnist"
    load = staticmethod(load_fashion_mnist)
    target_accuracy = 0.90
    shifts = (2, 3, 4)

    def evaluate(self, model, data: TaskData) -> dict:
        """Accuracy on the test images shifted right and down by 2, 3 and 4 pixels (zeros fill in): what weight sharing
        and pooling buy a CNN over a fully connected network, which sees a shifted image as a new one."""
        xte, yte, input_shape, batch_size = self._test
        out = {}
        for k in self.shifts:
            shifted = np.zeros_like(xte)
            shifted[:, k:, k:] = xte[:, :-k, :-k]
            test = pipeline(shifted, yte, input_shape=input_shape, batch_size=batch_size, seed=None)
            out[str(k)] = float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])
        return {"shifted_test_accuracy": out}
