"""Images per second of a train step and of inference, with latency, MFU and the cost of our own timing loop.

How a figure is taken (airbench / asv practice):

* input is synthetic and already on the device, so no input pipeline sits in the timed region; ``end_to_end``
  batches come from a real ``tf.data`` pipeline instead (the caller's iterator; TensorFlow only);
* the step is the backend's (``cnnbench.backends``: a ``tf.function``, optionally XLA; ``jax.jit``; PyTorch eager)
  and runs ``warmup`` times untimed (tracing, autotuning);
* the number of steps per timed window is calibrated so one window lasts ``min_window_s`` (a window of 30 LeNet
  steps is 0.2 s, too short for a stable median); ``repeats`` windows are timed, each ended by reading a value back
  so queued work has finished; the figure is the median window, with min/max and the coefficient of variation;
* latency is the p50/p90 of single steps, each synchronised;
* ``bare_images_per_s`` times the same compiled step in a bare loop (one clock, one sync) over as many steps: the
  harness overhead is how far our reported median sits below it;
* MFU = images/s x FLOPs per image ÷ the device's matmul peak, measured once per process and dtype.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from cnnbench import backends
from cnnbench.measure.flops import TRAIN_FACTOR
from cnnbench.measure.timing import rates, synthetic_arrays, time_step

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
FIXED_STEPS = 20  # steps per timed window under multiworker, where windows cannot be calibrated per worker
_PEAKS: dict[tuple[str, str, str], float] = {}


def peak_flops(dtype: str = "float32", *, n: int | None = None, repeats: int = 5, min_window_s: float = 0.5) -> float:
    """The device's matmul peak in FLOP/s through this backend (2 n^3 per n x n product), best of ``repeats``
    windows; cached per process."""
    backend = backends.current()
    gpu = backend.gpu() is not None
    key = (backend.NAME, "GPU" if gpu else "CPU", dtype)
    if key not in _PEAKS:
        n = n or (8192 if gpu else 1024)
        timing = time_step(backend.matmul(n, dtype), warmup=3, repeats=repeats, min_window_s=min_window_s,
                           latency_samples=0)
        _PEAKS[key] = 2 * n**3 * timing["steps_per_window"] / min(timing["windows_s"])
    return _PEAKS[key]


def compute_dtype(precision: str) -> str:
    return {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[precision]


def compiled_steps(model: keras.Model, x, y, *, jit: bool = False) -> dict:
    """Per mode, a no-argument step on fixed, on-device batches, as this backend compiles it (``backends``): the
    train step (the model must be compiled) and inference."""
    return backends.current().compiled_steps(model, x, y, jit=jit)


def synthetic_batch(batch_size: int, input_shape, num_classes: int, seed: int = 0, label_shape=()) -> tuple:
    """``synthetic_arrays``: the step functions put them on the device once."""
    return synthetic_arrays(batch_size, input_shape, num_classes, seed, label_shape)


def measure_throughput(model: keras.Model, *, input_shape, batch_size: int, num_classes: int, warmup: int,
                       repeats: int, min_window_s: float, macs_per_image: int | None = None, seed: int = 0,
                       modes=("train", "infer"), jit: bool = False, precision: str = "float32",
                       bare: bool = False, twin: keras.Model | None = None, batches: Iterator | None = None,
                       strategy=None) -> dict:
    """Throughput of a compiled model at one batch size, per mode: ``{mode}_images_per_s`` and friends.

    Trains the model on random data: measure after evaluating. ``bare``: also a bare loop over the same compiled
    step (``{mode}_harness_overhead``). ``twin``: another compiled model timed interleaved with ours on the same
    batch (``{mode}_keras_images_per_s``, ``{mode}_keras_ratio``). ``batches``: an iterator of real ``(x, y)``
    batches for an end-to-end train figure (``end_to_end_images_per_s``), input pipeline included. ``strategy``: the
    model was built in its scope; ``batch_size`` is the global batch, split over the replicas
    (``{mode}_images_per_s`` in total, ``{mode}_images_per_s_per_replica``); across workers the windows have
    ``FIXED_STEPS`` steps, not calibrated (every worker must run the same steps: each is an all-reduce).
    """
    out_shape = tuple(model.compute_output_shape((batch_size, *input_shape)))
    x, y = synthetic_batch(batch_size, input_shape, num_classes, seed, label_shape=out_shape[1:-1])
    replicas = strategy.num_replicas_in_sync if strategy is not None else 1
    if strategy is not None and (jit or twin is not None or batches is not None):
        raise ValueError("a distributed model is timed alone, without XLA, a twin or the real input pipeline")
    if strategy is not None:
        from cnnbench.distribute import across_workers, replicated_steps

        fns = replicated_steps(model, strategy, x, y)
    else:
        fns = compiled_steps(model, x, y, jit=jit)
    steps = FIXED_STEPS if strategy is not None and across_workers(strategy) else None
    theirs = compiled_steps(twin, x, y, jit=jit) if twin is not None else {}
    jit = jit if jit in backends.current().JIT_CHOICES else backends.current().JIT_CHOICES[0]  # what ran
    out: dict = {"batch_size": batch_size, "warmup_steps": warmup, "jit": jit, "precision": precision,
                 "replicas": replicas}
    peak = peak_flops(compute_dtype(precision)) if macs_per_image else None
    if peak:
        out["peak_flops_per_s"] = peak
    for mode in modes:
        step = fns[mode]
        others = {"bare": step} if bare else {}
        if theirs:
            others["keras"] = theirs[mode]
        timing = time_step(step, warmup=warmup, repeats=repeats, min_window_s=min_window_s, steps=steps,
                           others=others)
        figures = rates(timing, batch_size) | {k: timing[k] for k in ("steps_per_window", "repeats",
                                                                      "latency_ms_p50", "latency_ms_p90")}
        if macs_per_image:
            flops = 2 * macs_per_image * (TRAIN_FACTOR if mode == "train" else 1)
            units = 1
            if strategy is not None:
                from cnnbench.distribute import hardware_units

                units = hardware_units(strategy)
            figures |= {"flops_per_image": flops, "mfu": figures["images_per_s"] * flops / (peak * units)}
        if replicas > 1:
            figures["images_per_s_per_replica"] = figures["images_per_s"] / replicas
        out |= {f"{mode}_{k}": v for k, v in figures.items()}
    if batches is not None:
        import tensorflow as tf  # the tf.data pipeline's batches (check_options: TensorFlow only)

        train = tf.function(model.train_step, jit_compile=jit)
        timing = time_step(lambda: train(next(batches)), warmup=warmup, repeats=repeats,
                           min_window_s=min_window_s, latency_samples=0)
        e2e = rates(timing, batch_size)
        out |= {"end_to_end_images_per_s": e2e["images_per_s"], "end_to_end_cov": e2e["cov"]}
    return out


def check_options(arch: str, *, width: float | None = None, precision: str = "float32", compare_keras: bool = False,
                  end_to_end: bool = False, jit: bool = False, strategy: str = "default"):
    """What ``throughput_report`` refuses before any work (ValueError; an unknown model: KeyError); the model's
    registry entry."""
    import architectures

    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})")
    info = architectures.model_info(arch)
    if compare_keras and not info.keras_equivalent:
        twins = [n for n in architectures.list_models() if architectures.model_info(n).keras_equivalent]
        raise ValueError(f"{arch} has no keras.applications equivalent (models with one: {', '.join(twins)})")
    if compare_keras and width not in (None, 1.0):
        raise ValueError("--compare-keras needs the full-width model (keras.applications has no width multiplier)")
    if strategy != "default" and (compare_keras or end_to_end or jit):
        raise ValueError("--strategy times the replicated model alone: not with --compare-keras, --end-to-end or --jit")
    for option, what in ((strategy != "default", "strategies"), (end_to_end, "tfds")):
        if option and (why := backends.capability(what)):
            raise ValueError(f"not on Keras' {backends.name()} backend: {why}")
    return info


def throughput_report(arch: str, *, mode: str = "train", batch_sizes=(1, 8, 32), input_shape=None,
                      width: float | None = None, jit: bool = False, precision: str = "float32",
                      compare_keras: bool = False, end_to_end: bool = False, warmup: int = 10, repeats: int = 7,
                      min_window_s: float = 1.0, data_dir: str | None = None, strategy: str = "default") -> dict:
    """A batch-size sweep of one registered model: images/s, CoV, latency, FLOPs, MFU, our timing loop's overhead,
    and optionally the same figures for its keras.applications twin and through the real MNIST pipeline.

    ``strategy`` (cnnbench.distribute): the model replicated, each batch size per replica; each row adds the global
    batch, images/s per replica and of one replica alone (the same model on one device at the per-replica batch,
    timed right after) and the scaling efficiency: total ÷ (replicas x one replica's)."""
    import architectures
    from cnnbench.environment import device as local_device
    from cnnbench.measure.flops import count_flops

    info = check_options(arch, width=width, precision=precision, compare_keras=compare_keras, end_to_end=end_to_end,
                         jit=jit, strategy=strategy)
    shape = tuple(input_shape or info.default_input_shape)
    kwargs = {"input_shape": shape} | ({"width": width} if width else {})
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        dist = None
        if strategy != "default":
            from cnnbench.distribute import make_strategy

            dist = make_strategy(strategy)
        replicas = dist.num_replicas_in_sync if dist else 1
        with dist.scope() if dist else contextlib.nullcontext():
            model = architectures.create_model(arch, **kwargs)
            model.compile(optimizer="adam", loss=backends.loss("sparse_categorical_crossentropy"))
        twin = getattr(keras.applications, info.keras_equivalent)(weights=None, input_shape=shape) \
            if compare_keras else None
        alone = architectures.create_model(arch, **kwargs) if dist else None  # one replica, for the efficiency
        for m in (twin, alone):
            if m is not None:
                m.compile(optimizer="adam", loss=backends.loss("sparse_categorical_crossentropy"))
        timing = {"warmup": warmup, "repeats": repeats, "min_window_s": min_window_s, "modes": (mode,),
                  "precision": precision, "macs_per_image": None}
        flops = count_flops(model)
        classes = int(model.compute_output_shape((1, *shape))[-1])
        rows = []
        for batch_size in batch_sizes:
            batches = _mnist_batches(shape, batch_size, data_dir) if end_to_end and mode == "train" else None
            row = {"batch_size": batch_size} | ({"global_batch_size": batch_size * replicas} if dist else {})
            try:
                figures = measure_throughput(
                    model, input_shape=shape, batch_size=batch_size * replicas, num_classes=classes, warmup=warmup,
                    repeats=repeats, min_window_s=min_window_s, macs_per_image=flops["macs"], modes=(mode,),
                    jit=jit, precision=precision, bare=True, twin=twin, batches=batches, strategy=dist)
                row |= {k.removeprefix(f"{mode}_"): v for k, v in figures.items()
                        if k not in ("batch_size", "jit", "precision", "warmup_steps")}
                if dist:
                    one = measure_throughput(alone, input_shape=shape, batch_size=batch_size, num_classes=classes,
                                             **timing)[f"{mode}_images_per_s"]
                    row |= {"one_replica_images_per_s": one,
                            "scaling_efficiency": row["images_per_s"] / (replicas * one)}
            except Exception as exc:
                if not backends.current().is_oom(exc):
                    raise
                row["error"] = f"out of memory: {str(exc).splitlines()[0][:300]}"
            rows.append(row)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    distribution = {"strategy": "default", "replicas": 1}
    if dist:
        from cnnbench.distribute import describe

        distribution = describe(strategy, dist)
    return {"arch": arch, "mode": mode, "input_shape": list(shape), "width": width or 1.0, "jit": jit,
            "distribution": distribution,
            "precision": precision, "end_to_end": end_to_end, "device": local_device(),
            "macs_per_image": flops["macs"], "activations_per_image": flops["activations"],
            "peak_flops_per_s": peak_flops(compute_dtype(precision)), "results": rows}


def _mnist_batches(input_shape, batch_size: int, data_dir: str | None) -> Iterator:
    """Endless real MNIST batches through the task's own pipeline (whole batches only: one traced shape)."""
    from cnnbench.tasks import get_task

    subset = (60_000 // batch_size) * batch_size
    data = get_task("mnist").prepare(input_shape=input_shape, batch_size=batch_size, seed=0, train_subset=subset,
                                     test_subset=batch_size, data_dir=data_dir)
    return iter(data.train.repeat())
