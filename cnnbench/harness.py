"""Run one cell — (architecture, task, profile, seed) — and record it. Knows no particular model or dataset.

``run`` trains, evaluates and measures, raising on failure; ``run_cell`` turns a failure into a record with its
outcome: ``oom`` (with the predicted memory), ``diverged`` (with the step), or ``error`` (with the message).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import traceback
from datetime import UTC, datetime

import keras

import architectures
from cnnbench import backends, records
from cnnbench.data import ChecksumError, DataUnavailableError
from cnnbench.distribute import describe, device_peaks, make_strategy, split_cpu
from cnnbench.environment import environment
from cnnbench.measure.flops import count_flops
from cnnbench.measure.memory import graph_report, memory_report
from cnnbench.measure.params import count_params
from cnnbench.measure.throughput import measure_throughput
from cnnbench.spec import RunConfig, Spec, resolve
from cnnbench.tasks import TaskData
from cnnbench.training import Diverged, precise_batch_norm, scalar, set_determinism, train_from_scratch


def run(cell: RunConfig | Spec, *, verbose: int | None = None, context: dict | None = None) -> dict:
    """Train, evaluate and measure one cell (resolved here unless it is already a ``Spec``); return its record
    (``records.write`` stores it).

    ``context`` is filled as the run goes (start time and environment, ``config``, then ``memory``), so a caller
    can record how far it got.
    """
    spec = cell if isinstance(cell, Spec) else resolve(cell)
    cfg = spec.cfg
    context = {} if context is None else context
    context.update(started=datetime.now(UTC), t_start=time.perf_counter())
    if cfg.cpu_devices:
        split_cpu(cfg.cpu_devices)
    strategy = make_strategy(cfg.strategy)  # before any other TensorFlow op (multi-worker's requirement)
    context["env"] = env = environment(arch=cfg.arch)  # before training: the code and device this run started with
    distribution = describe(cfg.strategy, strategy)
    global_batch = spec.batch_size * distribution["replicas"]
    context["config"] = config = _config(spec, distribution, global_batch)

    set_determinism(cfg.seed)
    recipe = spec.recipe
    data = spec.task.prepare(input_shape=spec.input_shape, batch_size=global_batch, seed=cfg.seed,
                             train_subset=spec.train_subset, test_subset=spec.test_subset, data_dir=cfg.data_dir,
                             **({"validation_images": recipe.validation_images} if recipe.validation_images else {}))
    config["adaptation"] = data.adaptation
    with strategy.scope():
        registry_model = architectures.create_model(cfg.arch, classes=data.num_classes, **spec.model_kwargs)
    # Predicted and measured memory of one train step (of one replica: its device's), before training: an OOM
    # record then carries both.
    memory_spec = {"arch": cfg.arch, "model_kwargs": spec.builder_kwargs | {"classes": data.num_classes},
                   "input_shape": list(spec.input_shape), "batch_size": spec.batch_size, "mode": "train",
                   "optimizer": spec.recipe.optimizer, "precision": "float32"}
    context["memory"] = memory = memory_report(memory_spec, measure=cfg.measure_memory,
                                               built=(registry_model, spec.input_shape), strict=False)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2  # progress bar on a terminal, a line per epoch in logs
    if spec.task.trains_itself:
        model, metrics, timer = _train_by_task(spec, data, config, verbose)
    else:
        config["weights"] = "scratch"
        with strategy.scope():  # fit, evaluate: the strategy's (a no-op scope for the default one)
            model, metrics, timer = _train_by_recipe(spec, registry_model, data, config, verbose)

    if cfg.strategy != "default":  # the whole run's peak on each GPU replica (the prediction is of one step's)
        memory["replica_peak_bytes"] = device_peaks(strategy)
    elif cfg.measure_memory:  # the traced step's prediction, of a fresh build once training is done: it cannot
        memory |= graph_report(memory_spec, memory["measured_peak_bytes"])  # touch the trained model or its seeds
    flops = count_flops(model)
    throughput = None
    if cfg.measure_throughput:
        with strategy.scope():
            throughput = measure_throughput(
                model, input_shape=spec.input_shape, batch_size=global_batch, num_classes=data.num_classes,
                warmup=spec.profile.warmup_steps, repeats=spec.profile.timed_repeats,
                min_window_s=spec.profile.min_window_s, macs_per_image=flops["macs"], seed=cfg.seed,
                strategy=None if cfg.strategy == "default" else strategy)
        if timer is not None:  # end to end: fit() through the task's real tf.data pipeline, the first epoch left out
            steady = timer.seconds[1:] or timer.seconds
            throughput["end_to_end_train_images_per_s"] = data.n_train / statistics.median(steady)
    record = _base_record(cfg, env, context["started"]) | {
        "outcome": "ok",
        "config": config,
        "model": spec.info.as_dict(),
        "metrics": metrics,
        "params": count_params(model),
        "throughput": throughput,
        "flops": {k: v for k, v in flops.items() if k != "per_layer"},
        "memory": memory,
        "dataset": data.dataset,
        "duration_s": time.perf_counter() - context["t_start"],
    }
    return json.loads(json.dumps(record))  # JSON-native (tuples → lists): equal to the record read back


def _config(spec: Spec, distribution: dict, global_batch: int) -> dict:
    """The record's ``config``: the settings the cell runs with."""
    return {
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "global_batch_size": global_batch,
        **distribution,
        "input_shape": list(spec.input_shape),
        "model_kwargs": spec.model_kwargs,
        "optimizer": {"name": spec.recipe.optimizer, "learning_rate": spec.learning_rate, "schedule": "cosine",
                      "warmup_epochs": spec.recipe.warmup_epochs},
        "recipe": spec.recipe.as_dict(),
        "loss": spec.task.loss,
        "profile": spec.profile.as_dict(),
        "settings": spec.settings(),
        "determinants": spec.determinants(),
    } | (spec.cfg.ablation or {})


def _train_by_task(spec: Spec, data: TaskData, config: dict, verbose) -> tuple:
    """The task's own recipe (transfer: a pretrained backbone, two phases, a from-scratch baseline)."""
    from cnnbench.pretrained import resolve as resolve_weights

    cfg = spec.cfg
    weights = resolve_weights(cfg.arch, cfg.weights or "imagenet", cfg.data_dir)
    config |= {"weights": weights["weights"], "weights_sha256": weights["sha256"]}
    images = min(spec.precise_bn_images, data.n_train)
    model, metrics = spec.task.train(arch=cfg.arch, weights=weights, model_kwargs=spec.model_kwargs, data=data,
                                     epochs=spec.epochs, learning_rate=spec.learning_rate, verbose=verbose,
                                     precise_bn_images=images)
    config["precise_bn_images"] = images  # the scratch training's
    return model, metrics, None


def _train_by_recipe(spec: Spec, model, data: TaskData, config: dict, verbose) -> tuple:
    """The harness's from-scratch recipe, precise BN, then the test (and held-out) scores and the task's own."""
    cfg = spec.cfg
    model, metrics, timer = train_from_scratch(model, spec.task, data, epochs=spec.epochs,
                                               learning_rate=spec.learning_rate, recipe=spec.recipe, seed=cfg.seed,
                                               verbose=verbose, strategy=cfg.strategy,
                                               time_to_target=cfg.time_to_target)
    config["precise_bn_images"] = precise_batch_norm(model, data.train, spec.precise_bn_images)
    evaluation = model.evaluate(data.test, verbose=0, return_dict=True)
    metrics = {"test_accuracy": scalar(evaluation["accuracy"]), "test_loss": scalar(evaluation["loss"])} | metrics
    if data.val is not None:  # held-out images, scored like the test after precise BN
        metrics["val_accuracy"] = scalar(model.evaluate(data.val, verbose=0, return_dict=True)["accuracy"])
    return model, spec.task.evaluate(model, data) | metrics, timer


def _base_record(cfg: RunConfig, env: dict, started: datetime) -> dict:
    return {"schema_version": records.SCHEMA_VERSION, "arch": cfg.arch, "task": cfg.task, "profile": cfg.profile,
            "seed": cfg.seed, "env": env, "started_at": started.isoformat()}


def _failure(exc: BaseException, context: dict) -> tuple[str, dict]:
    """The outcome a failed run is recorded with, and what to say about it."""
    error = {"type": type(exc).__name__, "message": str(exc).strip()[:2000]}
    if isinstance(exc, Diverged):
        return "diverged", error | {"step": exc.step, "epoch": exc.epoch, "loss": str(exc.loss)}
    if backends.current().is_oom(exc):
        return "oom", error | {"predicted_memory": context.get("memory")}
    return "error", error | {"traceback": "".join(traceback.format_exception(exc, limit=-8))}


def run_cell(cfg: RunConfig, *, verbose: int | None = None) -> dict:
    """``run``, with a failure recorded as its outcome instead of raised (KeyboardInterrupt still propagates)."""
    spec = resolve(cfg)  # a cell that cannot run is the caller's mistake, raised, not recorded
    context: dict = {"started": datetime.now(UTC), "t_start": time.perf_counter()}
    try:
        return run(spec, verbose=verbose, context=context)
    except (ChecksumError, DataUnavailableError):
        raise  # bad or missing data is the user's input to fix, not an outcome of this cell
    except Exception as exc:
        outcome, error = _failure(exc, context)
    finally:
        keras.backend.clear_session(free_memory=True)
    record = _base_record(cfg, context.get("env") or environment(arch=cfg.arch), context["started"]) | {
        "outcome": outcome, "error": error, "config": context.get("config", {}),
        "duration_s": time.perf_counter() - context["t_start"],
    }
    return json.loads(json.dumps(record))
