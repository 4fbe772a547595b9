"""Run one cell — (architecture, task, profile, seed) — and record it. Knows no particular model or dataset."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import keras
import tensorflow as tf

import architectures
from cnnbench import records
from cnnbench.environment import environment
from cnnbench.measure.params import count_params
from cnnbench.measure.throughput import measure_throughput
from cnnbench.profiles import RUN_KEYS, Profile, get_profile
from cnnbench.tasks import get_task


@dataclass(frozen=True)
class RunConfig:
    arch: str
    task: str = "mnist"
    profile: str = "cpu"
    seed: int = 0
    epochs: int | None = None  # None: the profile's
    batch_size: int | None = None  # None: the profile's
    data_dir: str | None = None


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


def _optimizer(profile: Profile, steps: int) -> keras.optimizers.Optimizer:
    schedule = keras.optimizers.schedules.CosineDecay(profile.learning_rate, decay_steps=max(steps, 1))
    return keras.optimizers.Adam(schedule)


def run(cfg: RunConfig, *, verbose: int | None = None) -> dict:
    """Train, evaluate and measure one cell; return its record (``records.write`` stores it)."""
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    env = environment()  # before training: the code and device this run started with
    profile = get_profile(cfg.profile)
    info = architectures.model_info(cfg.arch)
    task = get_task(cfg.task)
    setting = profile.setting(cfg.arch)
    sizes = {key: setting.pop(key) for key in RUN_KEYS}  # what is left are builder keywords
    epochs, batch_size = cfg.epochs or sizes["epochs"], cfg.batch_size or sizes["batch_size"]
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch size must be >= 1, got {epochs} and {batch_size}")
    model_kwargs = {"input_shape": info.default_input_shape} | setting
    input_shape = tuple(model_kwargs["input_shape"])

    set_determinism(cfg.seed)
    data = task.prepare(input_shape=input_shape, batch_size=batch_size, seed=cfg.seed,
                        train_subset=sizes["train_subset"], test_subset=sizes["test_subset"], data_dir=cfg.data_dir)
    model = architectures.create_model(cfg.arch, classes=data.num_classes, **model_kwargs)
    steps = epochs * math.ceil(data.n_train / batch_size)
    model.compile(optimizer=_optimizer(profile, steps), loss=task.loss, metrics=task.metrics)

    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2  # progress bar on a terminal, a line per epoch in logs
    timer = _EpochTimer()
    history = model.fit(data.train, epochs=epochs, verbose=verbose, callbacks=[timer], shuffle=False)
    evaluation = model.evaluate(data.test, verbose=0, return_dict=True)

    params = count_params(model)
    throughput = measure_throughput(model, input_shape=input_shape, batch_size=batch_size, num_classes=data.num_classes,
                                    warmup=profile.warmup_steps, steps=profile.timed_steps,
                                    repeats=profile.timed_repeats, seed=cfg.seed)
    record = {
        "schema_version": records.SCHEMA_VERSION,
        "arch": cfg.arch,
        "task": cfg.task,
        "profile": cfg.profile,
        "seed": cfg.seed,
        "outcome": "ok",
        "config": {
            "epochs": epochs,
            "batch_size": batch_size,
            "input_shape": list(input_shape),
            "model_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in model_kwargs.items()},
            "optimizer": {"name": "adam", "learning_rate": profile.learning_rate, "schedule": "cosine"},
            "loss": task.loss,
            "adaptation": data.adaptation,
            "profile": profile.as_dict(),
        },
        "model": info.as_dict(),
        "metrics": {
            "test_accuracy": float(evaluation["accuracy"]),
            "test_loss": float(evaluation["loss"]),
            "train_accuracy": float(history.history["accuracy"][-1]),
            "train_loss": [float(v) for v in history.history["loss"]],
            "epoch_seconds": timer.seconds,
            "train_seconds": sum(timer.seconds),
        },
        "params": params,
        "throughput": throughput,
        "dataset": data.dataset,
        "env": env,
        "started_at": started.isoformat(),
        "duration_s": time.perf_counter() - t_start,
    }
    return json.loads(json.dumps(record))  # JSON-native (tuples → lists): equal to the record read back
