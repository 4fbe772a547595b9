"""How classifiers train from scratch: the recipes, the training loop that follows them (``train_from_scratch``),
and the pieces every recipe shares — determinism, divergence detection, the time to a target accuracy and batch-norm
statistics that do not lag short runs."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import keras
import numpy as np
from keras import ops

from cnnbench import backends
from cnnbench._util import lookup


@dataclass(frozen=True)
class Recipe:
    """What a from-scratch run does besides the profile's sizes (epochs, batch, learning rate): Adam (or SGD with
    momentum) with cosine decay to 0 over the run; optionally a linear warm-up, augmented training images and a
    validation split."""

    name: str
    description: str
    #: ``adam``, or ``momentum``: SGD with momentum 0.9, the AlexNet and ResNet papers' optimizer (without their weight
    #: decay). The names are the memory predictor's (``measure.memory.OPTIMIZER_TEMPORARIES``).
    optimizer: str = "adam"
    #: random ``rotation`` (± degrees), ``zoom`` (± fraction) and ``shift`` (± fraction of the side) of every training
    #: image, drawn per image in seeded order and applied as one affine resampling (``RandomAffine``); the empty space
    #: is filled with zeros (background). None: no augmentation.
    augment: dict | None = None
    warmup_epochs: float = 0.0
    #: images held out from the end of the training split (before any subset), evaluated after every epoch and never
    #: trained on. The test split is never used for a choice: it is evaluated, not selected on. 0 in every recipe:
    #: a run that chooses settings holds images out itself (``RunConfig.hold_out``, ``--hold-out``); records train on
    #: the whole split.
    validation_images: int = 0
    #: the sparse cross-entropy's targets become 1 - eps on the label and eps / classes elsewhere (Szegedy et al. 2016)
    label_smoothing: float = 0.0

    def make_optimizer(self, rate):
        if self.optimizer == "momentum":
            return keras.optimizers.SGD(rate, momentum=0.9)
        return keras.optimizers.Adam(rate)

    def augmentation(self, seed: int) -> RandomAffine | None:
        return RandomAffine(**self.augment, seed=seed) if self.augment else None

    def loss(self, default):
        """The task's loss (a sparse cross-entropy wherever a recipe runs: a name or the backend's stand-in), with this
        recipe's label smoothing."""
        if not self.label_smoothing:
            return default
        eps = self.label_smoothing

        def smoothed_sparse_categorical_crossentropy(y_true, y_pred):
            y_true = ops.one_hot(ops.reshape(ops.cast(y_true, "int32"), (-1,)), ops.shape(y_pred)[-1])
            return keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=eps)

        return smoothed_sparse_categorical_crossentropy

    def as_dict(self) -> dict:
        return asdict(self)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("plain", "Adam with cosine decay to 0 over the run; no augmentation, no held-out images"),
    # tried on the held-out 5,000 images only (mnist_cnn, seed 0): see the README's "Best from-scratch MNIST CNN"
    Recipe("augment", "one epoch of linear warm-up, then cosine decay; every training image randomly rotated "
           "(±10°), zoomed (±10 %) and shifted (±10 %) in one resampling; label smoothing 0.1",
           augment={"rotation": 10.0, "zoom": 0.1, "shift": 0.1}, warmup_epochs=1.0, label_smoothing=0.1),
    Recipe("sgd", "SGD with momentum 0.9 and cosine decay to 0 over the run; no augmentation, no held-out images",
           optimizer="momentum"),
)}


def affine_transforms(angle, scale, tx, ty, height: int, width: int):
    """Per-image transforms for ``keras.ops.image.affine_transform``: rotate by ``angle`` radians and scale by
    ``scale`` about the image centre (``scale`` > 1 shrinks the content), then move it ``tx`` pixels right and ``ty``
    down. Each argument is a vector, one entry per image."""
    cos, sin = ops.cos(angle) * scale, ops.sin(angle) * scale
    cx, cy = (width - 1) / 2, (height - 1) / 2
    zero = ops.zeros_like(cos)  # output (x, y) reads input (cos x - sin y + x0, sin x + cos y + y0)
    return ops.stack([cos, -sin, cx - cos * cx + sin * cy - tx, sin, cos, cy - sin * cx - cos * cy - ty, zero, zero],
                     axis=1)


class RandomAffine(keras.layers.Layer):
    """Random rotation (± ``rotation`` degrees), zoom (± ``zoom``) and shift (± ``shift`` of each side) of every image
    in one bilinear resampling, drawn per image from a seeded stream. Chaining keras' RandomRotation, RandomZoom and
    RandomTranslation resamples three times, which visibly blurs 28x28 digits and, on two CPU cores, costs a third of
    mnist_cnn's training throughput (373 vs 554 images/s); this costs next to nothing."""

    def __init__(self, rotation: float, zoom: float, shift: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.shift = rotation, zoom, shift
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = True):
        if not training:
            return images
        height, width = images.shape[1], images.shape[2]
        u = keras.random.uniform((ops.shape(images)[0], 4), -1.0, 1.0, seed=self.seed_generator)
        transforms = affine_transforms(u[:, 0] * math.radians(self.rotation), 1.0 + u[:, 1] * self.zoom,
                                       u[:, 2] * self.shift * width, u[:, 3] * self.shift * height, height, width)
        return ops.image.affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant")


def get_recipe(name: str) -> Recipe:
    return lookup(RECIPES, name, "recipe")


def schedule(learning_rate: float, steps: int, warmup_steps: int = 0):
    """The rate rises linearly from 0 over ``warmup_steps``, then decays to 0 along a cosine by ``steps``."""
    decay = max(steps - warmup_steps, 1)
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=decay, warmup_target=learning_rate,
                                                      warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=decay)


class Diverged(ArithmeticError):
    """The training loss became NaN or infinite."""

    def __init__(self, step: int, epoch: int, loss: float):
        super().__init__(f"loss became {loss} at step {step} (epoch {epoch + 1})")
        self.step, self.epoch, self.loss = step, epoch, loss


def scalar(value) -> float:
    """A logged metric as a float (a 1-vector under multiworker: cnnbench.distribute.prepare_for_fit)."""
    return float(np.ravel(value)[0])


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, naming the global step."""

    def on_train_begin(self, logs=None):
        self.step, self.epoch = 0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        loss = scalar((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise Diverged(self.step, self.epoch, loss)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += batch_norm_layers(layer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
    return found


def precise_batch_norm(model: keras.Model, dataset, images: int) -> int:
    """Re-estimate every BN layer's population statistics as the plain average over ``images`` training images.

    Moving averages (momentum 0.99) lag the weights in short runs, and deep nets then evaluate far below their
    training accuracy. With momentum 1 - 1/k at the k-th batch, the moving statistics become the running mean of the
    batch statistics under the final weights ("precise BN", as in pycls; Wu & Johnson 2021). Returns the images used.
    On TensorFlow the momentum is a variable the traced forward pass reads, so the passes run as one graph (a
    ResNet-56 over 8,192 images: 20 s instead of 54 s eagerly on two cores); elsewhere they run eagerly
    (``backends``: ``running_forward``).
    """
    layers = batch_norm_layers(model)
    if not layers or images <= 0:
        return 0
    momenta = [layer.momentum for layer in layers]
    set_momentum, forward = backends.current().running_forward(model, layers)
    seen = 0
    try:
        for k, (x, _) in enumerate(dataset, 1):
            set_momentum(1.0 - 1.0 / k)
            forward(x)
            seen += int(x.shape[0])
            if seen >= images:
                break
    finally:
        for layer, m in zip(layers, momenta, strict=True):
            layer.momentum = m
    return seen


class PreciseBNValidation(keras.callbacks.Callback):
    """At each epoch end: re-estimate BN statistics (``precise_batch_norm``), then evaluate on ``val`` and put
    ``val_accuracy`` / ``val_loss`` into the epoch's logs, ahead of early stopping. Without it a network trained from
    scratch for a few hundred steps validates at chance: its moving averages still describe the initial weights."""

    def __init__(self, train, val, images: int):
        super().__init__()
        self.train, self.val, self.images = train, val, images

    def on_epoch_end(self, epoch, logs=None):
        precise_batch_norm(self.model, self.train, self.images)
        result = self.model.evaluate(self.val, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"val_{k}": float(v) for k, v in result.items()})


def set_determinism(seed: int) -> None:
    """Seed Python, numpy and the backend, and make its ops deterministic where it can (same command twice → same
    metrics on the CPU)."""
    backends.current().set_determinism(seed)


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


class TimeToTarget(keras.callbacks.Callback):
    """Time to accuracy (DAWNBench, MLPerf): after each epoch the test split is evaluated, outside the epoch's timed
    span; the first epoch whose accuracy reaches the task's target is recorded with the images seen and the training
    seconds up to then (evaluations excluded), or ``reached: false``."""

    def __init__(self, test, target: float, n_train: int, timer: EpochTimer):
        super().__init__()
        self.test, self.target, self.n_train, self.timer = test, target, n_train, timer
        self.accuracy: list[float] = []

    def on_epoch_end(self, epoch, logs=None):
        self.accuracy.append(scalar(self.model.evaluate(self.test, verbose=0, return_dict=True)["accuracy"]))

    def result(self) -> dict:
        out = {"metric": "test_accuracy", "target": self.target, "per_epoch": self.accuracy, "reached": False,
               "epoch": None, "images_seen": None, "train_seconds": None}
        hit = next((i for i, a in enumerate(self.accuracy) if a >= self.target), None)
        if hit is not None:
            out |= {"reached": True, "epoch": hit + 1, "images_seen": (hit + 1) * self.n_train,
                    "train_seconds": sum(self.timer.seconds[:hit + 1])}
        return out


def train_from_scratch(model, task, data, *, epochs: int, learning_rate: float, recipe: Recipe, seed: int,
                       verbose, strategy: str = "default", time_to_target: bool = True) -> tuple:
    """Train every layer by ``recipe``; stop at a non-finite loss. ``data.train`` itself stays unaugmented: precise
    BN afterwards estimates the statistics of the images the test resembles. Returns (model, metrics, timer)."""
    from cnnbench.data.pipeline import mapped
    from cnnbench.distribute import prepare_for_fit

    steps_per_epoch = math.ceil(data.n_train / data.batch_size)
    rate = schedule(learning_rate, epochs * steps_per_epoch, round(recipe.warmup_epochs * steps_per_epoch))
    model.compile(optimizer=recipe.make_optimizer(rate),
                  loss=recipe.loss(backends.loss(task.loss)), metrics=task.metrics)
    prepare_for_fit(model, strategy, data.train)
    train, augment = data.train, recipe.augmentation(seed)
    if augment is not None:  # in order on one thread: the seeded layers then draw the same values every run
        train = mapped(train, lambda x, y: (augment(x, training=True), y))
    timer = EpochTimer()
    target = task.target_accuracy if time_to_target else None
    ttt = TimeToTarget(data.test, target, data.n_train, timer) if target else None
    history = model.fit(train, epochs=epochs, verbose=verbose, shuffle=False, validation_data=data.val,
                        callbacks=[DivergenceGuard(), timer, *([ttt] if ttt else [])])
    h = history.history
    metrics = {"train_accuracy": scalar(h["accuracy"][-1]),
               "train_accuracy_curve": [scalar(v) for v in h["accuracy"]],
               "train_loss": [scalar(v) for v in h["loss"]],
               "epoch_seconds": timer.seconds, "train_seconds": sum(timer.seconds),
               "time_to_target": ttt.result() if ttt else None}
    if data.val is not None:  # with the moving BN statistics of each epoch's end
        metrics["val_accuracy_curve"] = [scalar(v) for v in h["val_accuracy"]]
    return model, metrics, timer
