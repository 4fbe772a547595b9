"""Semantic segmentation: a class for every pixel, judged by mean IoU.

Sources (``--dataset``): ``mnist_composites`` (offline default: real MNIST digits on generated layouts, see
:mod:`cnnbench.data.segmentation`) and ``tfds:oxford_iiit_pet`` (the default when TFDS has it or can download it).
Images are generated or resized at the model's input size, so masks are never resampled by the pipeline; grey is
replicated to the model's channels. ``train_subset`` / ``test_subset`` set how many train / test images are used
(validation: a fifth of the test count).

Metrics (:mod:`cnnbench.metrics`): mean IoU (``miou``), per-class IoU, pixel accuracy, mean class accuracy and
frequency-weighted IoU on the test split, and mean IoU on the validation split.
"""

from __future__ import annotations

import numpy as np

from cnnbench._util import lazy, tfds_or
from cnnbench.data import segmentation as seg
from cnnbench.data.pipeline import batched
from cnnbench.metrics import confusion_matrix, segmentation_scores
from cnnbench.tasks.base import Task, TaskData

ops = lazy("keras.ops")

DEFAULT_ONLINE = "tfds:oxford_iiit_pet"
DEFAULT_OFFLINE = "mnist_composites"
#: images per split when the profile sets no subset.
FULL_SIZES = {"train": 10_000, "val": 1_000, "test": 2_000}


def default_source() -> str:
    return tfds_or(DEFAULT_ONLINE, DEFAULT_OFFLINE)


def load(source: str, canvas: tuple[int, int], sizes: dict, data_dir=None) -> dict:
    if source == DEFAULT_OFFLINE:
        return seg.mnist_composites(canvas, sizes, data_dir=data_dir)
    if source.startswith("tfds:"):
        return seg.oxford_pets(source.removeprefix("tfds:"), canvas, sizes, data_dir=data_dir)
    raise KeyError(f"unknown segmentation source {source!r} ({DEFAULT_OFFLINE} or tfds:NAME)")


def pipeline(images, masks, *, channels: int, batch_size: int, seed: int | None):
    """uint8 images → float32 in [0, 1] with ``channels`` channels; uint8 masks → int32. ``seed=None``: in order."""
    def adapt(x, y):
        x = ops.cast(x, "float32") / 255.0
        if len(x.shape) == 3:  # grey (B, H, W)
            x = x[..., None]
        if x.shape[-1] != channels:
            x = ops.image.rgb_to_grayscale(x) if channels == 1 else ops.repeat(x[..., :1], channels, axis=-1)
        return x, ops.cast(y, "int32")

    return batched(images, masks, batch_size=batch_size, seed=seed, adapt=adapt)


#: test canvases whose input, true mask and predicted mask a record keeps (the report draws them).
N_SAMPLES = 3


def _rows(a: np.ndarray) -> list[str]:
    """A small 2-D array of values < 36 as one base-36 character per pixel, a string per row (compact in JSON)."""
    return ["".join(np.base_repr(int(v), 36) for v in row) for row in a]


def samples(model, dataset, n: int = N_SAMPLES) -> list[dict]:
    """The first ``n`` test canvases (of the first batch): input (grey, quantised to 0-35), true and predicted class
    per pixel."""
    images, masks = (ops.convert_to_numpy(t)[:n] for t in next(iter(dataset)))
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    grey = images[..., 0]
    return [{"input": _rows(np.round(35 * (g - g.min()) / max(np.ptp(g), 1e-9))), "truth": _rows(np.asarray(m)),
             "predicted": _rows(p)} for g, m, p in zip(grey, masks, predicted, strict=True)]


def confusion(model, dataset, num_classes: int) -> np.ndarray:
    """The confusion matrix of the model's per-pixel argmax over a dataset of (images, masks)."""
    total = np.zeros((num_classes, num_classes), np.int64)
    for x, y in dataset:
        predicted = np.argmax(model.predict_on_batch(x), axis=-1)
        total += confusion_matrix(ops.convert_to_numpy(y), predicted, num_classes)
    return total


class SegmentationTask(Task):
    """Per-pixel classification: every output position of a segmentation network is a pixel's class distribution."""

    name = "segmentation"
    title = "Segmentation (MNIST digits on generated canvases)"
    kind = "segmentation"
    metrics = ["accuracy"]  # per pixel, during training; the task's scores come from ``evaluate``
    score, score_label = "miou", "mean IoU (%)"
    columns = ("pixel_accuracy",)
    figures = ("fcn_heads", "segmentation_samples")

    def verify_data(self, data_dir=None) -> dict:
        if (self.source or default_source()) == DEFAULT_OFFLINE:
            from cnnbench.data.mnist import load_mnist

            return load_mnist(data_dir_override=data_dir).metadata()
        return {"source": self.source}

    def prepare(self, *, input_shape, batch_size, seed, train_subset=None, test_subset=None,
                data_dir=None) -> TaskData:
        source = self.source or default_source()
        sizes = {"train": train_subset or FULL_SIZES["train"], "test": test_subset or FULL_SIZES["test"]}
        sizes["val"] = max(1, sizes["test"] // 5) if test_subset else FULL_SIZES["val"]
        loaded = load(source, tuple(input_shape[:2]), sizes, data_dir=data_dir)
        classes, channels = loaded["classes"], input_shape[-1]
        k = len(classes)
        frequency = np.bincount(loaded["train"][1].ravel(), minlength=k) / loaded["train"][1].size
        make = lambda split, s: pipeline(*loaded[split], channels=channels, batch_size=batch_size, seed=s)  # noqa: E731
        n = {split: len(loaded[split][0]) for split in seg.SPLITS}
        return TaskData(
            train=make("train", seed), val=make("val", None), test=make("test", None), batch_size=batch_size,
            n_train=n["train"], n_test=n["test"], num_classes=k,
            dataset=loaded["identity"] | {f"n_{split}": n[split] for split in seg.SPLITS} | {
                "classes": classes, "train_pixel_frequency": [round(float(f), 6) for f in frequency],
                "subset": train_subset is not None or test_subset is not None},
            adaptation={"input_shape": list(input_shape), "spatial": "generated / resized at the input size "
                        "(masks: nearest)", "channels": "replicate" if channels > 1 else "grey", "scale": "x / 255"},
        )

    def evaluate(self, model, data: TaskData) -> dict:
        """Test scores (mIoU, per-class IoU, pixel and mean accuracy, fw IoU) and the validation mIoU."""
        classes = data.dataset["classes"]
        test = confusion(model, data.test, data.num_classes)
        scores = segmentation_scores(test, classes)
        val = segmentation_scores(confusion(model, data.val, data.num_classes), classes)
        return scores | {"test_accuracy": scores["pixel_accuracy"], "val_miou": val["miou"],
                         "confusion_matrix": test.tolist(), "samples": samples(model, data.test)}
