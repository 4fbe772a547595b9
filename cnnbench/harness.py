"""Run one cell — (architecture, task, profile, seed) — and record it. Knows no particular model or dataset.

``run`` trains, evaluates and measures, raising on failure; ``run_cell`` turns a failure into a record with its
outcome: ``oom`` (with the predicted memory), ``diverged`` (with the step), or ``error`` (with the message).
"""

from __future__ import annotations

import inspect
import json
import math
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

import keras
import tensorflow as tf

import architectures
from cnnbench import distribute, records
from cnnbench.data import ChecksumError, DataUnavailableError
from cnnbench.distribute import describe, device_peaks, make_strategy, prepare_for_fit, split_cpu
from cnnbench.environment import environment
from cnnbench.measure.flops import count_flops
from cnnbench.measure.memory import memory_report
from cnnbench.measure.params import count_params
from cnnbench.measure.throughput import measure_throughput
from cnnbench.profiles import get_profile
from cnnbench.tasks import get_task
from cnnbench.training import (
    Diverged,
    DivergenceGuard,
    Recipe,
    get_recipe,
    precise_batch_norm,
    scalar,
    schedule,
)


@dataclass(frozen=True)
class RunConfig:
    arch: str
    task: str = "mnist"
    profile: str = "cpu"
    seed: int = 0
    epochs: int | None = None  # None: the profile's
    batch_size: int | None = None  # None: the profile's
    learning_rate: float | None = None  # None: the profile's (for this architecture)
    data_dir: str | None = None
    measure_memory: bool = True  # peak of one warm train step, measured in a fresh process
    measure_throughput: bool = True  # calibrated train/infer throughput after training (False: record null)
    #: evaluate the test split after every epoch for the time to the task's target accuracy (False: record null;
    #: ablation cells, which compare final accuracies and training curves and would spend a fifth of their time on it)
    time_to_target: bool = True
    dataset: str | None = None  # the task's data source (transfer: fashion_mnist, tfds:NAME, dir:PATH)
    weights: str | None = None  # transfer: imagenet (default), scratch, or a .weights.h5 file
    #: builder keywords over the profile's (an ablation's variant switches, its input and width)
    model_kwargs: dict | None = None
    train_subset: int | None = None  # None: the profile's
    #: an ablation cell: {"ablation": name, "variant": name, "reference": bool, "claim": text}, recorded in config
    ablation: dict | None = None
    recipe: str | None = None  # None: the profile's (for this architecture); see cnnbench.training.RECIPES
    #: one model on several devices (cnnbench.distribute): default | mirrored | multiworker; batch_size per replica
    strategy: str = "default"
    cpu_devices: int | None = None  # split the CPU into this many logical devices (mirrored without GPUs)


def set_determinism(seed: int) -> None:
    """Seed Python, numpy and TF, and make TF ops deterministic (same command twice → same metrics on CPU)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t0)


class _TimeToTarget(keras.callbacks.Callback):
    """Time to accuracy (DAWNBench, MLPerf): after each epoch the test split is evaluated, outside the epoch's timed
    span; the first epoch whose accuracy reaches the task's target is recorded with the images seen and the training
    seconds up to then (evaluations excluded), or ``reached: false``."""

    def __init__(self, test, target: float, n_train: int, timer: _EpochTimer):
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


def run(cfg: RunConfig, *, verbose: int | None = None, context: dict | None = None) -> dict:
    """Train, evaluate and measure one cell; return its record (``records.write`` stores it).

    ``context`` is filled as the run goes (start time and environment, ``config``, then ``memory``), so a caller
    can record how far it got.
    """
    context = {} if context is None else context
    context.update(started=datetime.now(UTC), t_start=time.perf_counter())
    if cfg.cpu_devices:
        split_cpu(cfg.cpu_devices)
    strategy = make_strategy(cfg.strategy)  # before any other TensorFlow op (multi-worker's requirement)
    context["env"] = env = environment()  # before training: the code and device this run started with
    started, t_start = context["started"], context["t_start"]
    profile = get_profile(cfg.profile)
    info = architectures.model_info(cfg.arch)
    task = _task(cfg)
    s = validate_cell(cfg)
    epochs, batch_size, learning_rate, recipe = s.epochs, s.batch_size, s.learning_rate, s.recipe
    builder_kwargs, model_kwargs = s.builder_kwargs, s.model_kwargs
    input_shape = tuple(model_kwargs["input_shape"])
    distribution = describe(cfg.strategy, strategy)
    global_batch = batch_size * distribution["replicas"]
    context["config"] = config = {
        "epochs": epochs,
        "batch_size": batch_size,
        "global_batch_size": global_batch,
        **distribution,
        "input_shape": list(input_shape),
        "model_kwargs": model_kwargs,
        "optimizer": {"name": "adam", "learning_rate": learning_rate, "schedule": "cosine",
                      "warmup_epochs": recipe.warmup_epochs},
        "recipe": recipe.as_dict(),
        "loss": task.loss,
        "profile": profile.as_dict(),
    } | (cfg.ablation or {})

    set_determinism(cfg.seed)
    data = task.prepare(input_shape=input_shape, batch_size=global_batch, seed=cfg.seed,
                        train_subset=s.train_subset, test_subset=s.test_subset, data_dir=cfg.data_dir,
                        **({"validation_images": recipe.validation_images} if recipe.validation_images else {}))
    config["adaptation"] = data.adaptation
    with strategy.scope():
        registry_model = architectures.create_model(cfg.arch, classes=data.num_classes, **model_kwargs)
    # Predicted and measured memory of one train step (of one replica: its device's), before training: an OOM
    # record then carries both.
    memory_spec = {"arch": cfg.arch,
                   "model_kwargs": builder_kwargs | {"classes": data.num_classes},
                   "input_shape": list(input_shape), "batch_size": batch_size, "mode": "train", "optimizer": "adam",
                   "precision": "float32"}
    context["memory"] = memory = memory_report(memory_spec, measure=cfg.measure_memory,
                                               built=(registry_model, input_shape), strict=False)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2  # progress bar on a terminal, a line per epoch in logs
    if hasattr(task, "train"):  # the task's own recipe (transfer: pretrained backbone, two phases, a baseline)
        from cnnbench.pretrained import resolve

        weights = resolve(cfg.arch, cfg.weights or "imagenet", cfg.data_dir)
        config |= {"weights": weights["weights"], "weights_sha256": weights["sha256"]}
        model, metrics = task.train(arch=cfg.arch, weights=weights, model_kwargs=model_kwargs, data=data,
                                    epochs=epochs, learning_rate=learning_rate, verbose=verbose,
                                    precise_bn_images=min(profile.precise_bn_images, data.n_train))
        config["precise_bn_images"] = min(profile.precise_bn_images, data.n_train)  # the scratch training's
        timer = None
    else:
        config["weights"] = "scratch"
        model = registry_model
        with strategy.scope():  # fit, evaluate: the strategy's (a no-op scope for the default one)
            model, metrics, timer = _train_classifier(model, task, data, epochs=epochs, learning_rate=learning_rate,
                                                      recipe=recipe, seed=cfg.seed, verbose=verbose,
                                                      strategy=cfg.strategy, time_to_target=cfg.time_to_target)
            config["precise_bn_images"] = precise_batch_norm(model, data.train, profile.precise_bn_images)
            evaluation = model.evaluate(data.test, verbose=0, return_dict=True)
            metrics = {"test_accuracy": scalar(evaluation["accuracy"]),
                       "test_loss": scalar(evaluation["loss"])} | metrics
            if data.val is not None:  # held-out images, scored like the test after precise BN
                metrics["val_accuracy"] = scalar(model.evaluate(data.val, verbose=0, return_dict=True)["accuracy"])
            if hasattr(task, "evaluate"):  # the task's own scores (segmentation: mIoU, per-class IoU, ...)
                metrics = task.evaluate(model, data) | metrics

    if cfg.strategy != "default":  # the whole run's peak on each GPU replica (the prediction is of one step's)
        memory["replica_peak_bytes"] = device_peaks(strategy)
    flops = count_flops(model)
    throughput = None
    if cfg.measure_throughput:
        with strategy.scope():
            throughput = measure_throughput(
                model, input_shape=input_shape, batch_size=global_batch, num_classes=data.num_classes,
                warmup=profile.warmup_steps, repeats=profile.timed_repeats, min_window_s=profile.min_window_s,
                macs_per_image=flops["macs"], seed=cfg.seed, strategy=None if cfg.strategy == "default" else strategy)
        if timer is not None:  # end to end: fit() through the task's real tf.data pipeline, the first epoch left out
            steady = timer.seconds[1:] or timer.seconds
            throughput["end_to_end_train_images_per_s"] = data.n_train / statistics.median(steady)
    record = _base_record(cfg, env, started) | {
        "outcome": "ok",
        "config": config,
        "model": info.as_dict(),
        "metrics": metrics,
        "params": count_params(model),
        "throughput": throughput,
        "flops": {k: v for k, v in flops.items() if k != "per_layer"},
        "memory": memory,
        "dataset": data.dataset,
        "duration_s": time.perf_counter() - t_start,
    }
    return json.loads(json.dumps(record))  # JSON-native (tuples → lists): equal to the record read back


def _task(cfg: RunConfig):
    return get_task(cfg.task, **({"source": cfg.dataset} if cfg.dataset else {}))


def _train_classifier(model, task, data, *, epochs: int, learning_rate: float, recipe: Recipe, seed: int,
                      verbose, strategy: str = "default", time_to_target: bool = True) -> tuple:
    """Train every layer by ``recipe`` (cnnbench.training); stop at a non-finite loss. ``data.train`` itself stays
    unaugmented: precise BN afterwards estimates the statistics of the images the test resembles."""
    steps_per_epoch = math.ceil(data.n_train / data.batch_size)
    rate = schedule(learning_rate, epochs * steps_per_epoch, round(recipe.warmup_epochs * steps_per_epoch))
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss=recipe.loss(task.loss), metrics=task.metrics)
    prepare_for_fit(model, strategy, data.train.element_spec)
    train, augment = data.train, recipe.augmentation(seed)
    if augment is not None:  # in order on one thread: the seeded layers then draw the same values every run
        train = train.map(lambda x, y: (augment(x, training=True), y)).prefetch(tf.data.AUTOTUNE)
    timer = _EpochTimer()
    target = getattr(task, "target_accuracy", None) if time_to_target else None
    ttt = _TimeToTarget(data.test, target, data.n_train, timer) if target else None
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


def _base_record(cfg: RunConfig, env: dict, started: datetime) -> dict:
    return {"schema_version": records.SCHEMA_VERSION, "arch": cfg.arch, "task": cfg.task, "profile": cfg.profile,
            "seed": cfg.seed, "env": env, "started_at": started.isoformat()}


def _failure(exc: BaseException, context: dict) -> tuple[str, dict]:
    """The outcome a failed run is recorded with, and what to say about it."""
    error = {"type": type(exc).__name__, "message": str(exc).strip()[:2000]}
    if isinstance(exc, Diverged):
        return "diverged", error | {"step": exc.step, "epoch": exc.epoch, "loss": str(exc.loss)}
    if isinstance(exc, tf.errors.ResourceExhaustedError | MemoryError):
        return "oom", error | {"predicted_memory": context.get("memory")}
    return "error", error | {"traceback": "".join(traceback.format_exception(exc, limit=-8))}


@dataclass(frozen=True)
class Settings:
    """What a cell runs with, resolved once from its profile (for its model and task) and its own overrides."""

    epochs: int
    batch_size: int  # per replica
    learning_rate: float
    recipe: Recipe
    train_subset: int | None  # None: the whole split (transfer: images per class)
    test_subset: int | None
    builder_kwargs: dict  # the profile's builder keywords and the cell's own (``model_kwargs``)
    model_kwargs: dict  # the same with the input shape always set (the registered default where none is)


def settings(cfg: RunConfig) -> Settings:
    """The cell's settings: its overrides, else its profile's for the model and task."""
    info, profile = architectures.model_info(cfg.arch), get_profile(cfg.profile)
    sizes = profile.setting(cfg.arch, cfg.task)
    builder_kwargs = profile.builder_kwargs(cfg.arch, cfg.task) | (cfg.model_kwargs or {})
    return Settings(epochs=cfg.epochs or sizes["epochs"], batch_size=cfg.batch_size or sizes["batch_size"],
                    learning_rate=cfg.learning_rate or sizes["learning_rate"],
                    recipe=get_recipe(cfg.recipe or sizes["recipe"]),
                    train_subset=cfg.train_subset or sizes["train_subset"], test_subset=sizes["test_subset"],
                    builder_kwargs=builder_kwargs,
                    model_kwargs={"input_shape": info.default_input_shape} | builder_kwargs)


def validate_cell(cfg: RunConfig) -> Settings:
    """Resolve every name and setting before anything runs, and return the settings: unknown names raise KeyError
    with a did-you-mean; a model of another kind than the task's (a classifier on ``segmentation``), a builder
    keyword the model does not take, a non-positive size or a recipe the task cannot follow raise ValueError."""
    info, task = architectures.model_info(cfg.arch), _task(cfg)
    s = settings(cfg)
    recipe = s.recipe
    if s.epochs < 1 or s.batch_size < 1 or not s.learning_rate > 0:
        raise ValueError(f"epochs, batch size and learning rate must be positive, got {s.epochs}, {s.batch_size}, "
                         f"{s.learning_rate}")
    taken = inspect.signature(info.builder).parameters
    if unknown := sorted(set(s.model_kwargs) - set(taken)):
        raise ValueError(f"{cfg.arch}'s builder takes no {', '.join(unknown)} (it takes {', '.join(taken)})")
    if recipe != get_recipe("plain") and not getattr(task, "holds_out_validation", False):
        raise ValueError(f"the {recipe.name} recipe augments and holds out images of a classification task's own "
                         f"split; the {cfg.task} task trains by its own recipe (use the plain one)")
    distribute.check(cfg.strategy, cfg.cpu_devices)
    if cfg.strategy != "default" and hasattr(task, "train"):
        raise ValueError(f"the {cfg.task} task trains by its own two-phase recipe on one device: --strategy default")
    if info.kind != task.kind:
        fitting = ", ".join(architectures.list_models(kind=task.kind))
        raise ValueError(f"{cfg.arch} is a {info.kind} model; the {cfg.task} task runs {task.kind} models: {fitting}")
    if cfg.weights:
        from cnnbench.pretrained import check_weights

        check_weights(cfg.weights)
    return s


def run_cell(cfg: RunConfig, *, verbose: int | None = None) -> dict:
    """``run``, with a failure recorded as its outcome instead of raised (KeyboardInterrupt still propagates)."""
    validate_cell(cfg)
    context: dict = {"started": datetime.now(UTC), "t_start": time.perf_counter()}
    try:
        return run(cfg, verbose=verbose, context=context)
    except (ChecksumError, DataUnavailableError):
        raise  # bad or missing data is the user's input to fix, not an outcome of this cell
    except Exception as exc:
        outcome, error = _failure(exc, context)
    finally:
        keras.backend.clear_session(free_memory=True)
    record = _base_record(cfg, context.get("env") or environment(), context["started"]) | {
        "outcome": outcome, "error": error, "config": context.get("config", {}),
        "duration_s": time.perf_counter() - context["t_start"],
    }
    return json.loads(json.dumps(record))
