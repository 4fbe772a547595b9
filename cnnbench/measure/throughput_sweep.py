"""Throughput of every registered model x batch size x mode on this machine, recorded — a benchmark, not a test.

Each model at its ``cpu`` profile input and width; per (mode, batch): images/s (median of timed windows), CoV,
latency p50/p90, FLOPs per image, MFU against the measured matmul peak, and our timing loop against a bare loop.
Models with a keras.applications twin (ResNet-50, Xception) are also timed against it at full width, same input,
same process: the parity ratio.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import keras

import architectures
from cnnbench import backends
from cnnbench.measure.flops import count_flops
from cnnbench.measure.sweep import cpu_model, save
from cnnbench.measure.throughput import measure_throughput, peak_flops
from cnnbench.records import variant

MODES = ("train", "infer")
PARITY = ("resnet50", "xception")
TIMING = {"warmup": 10, "repeats": 5, "min_window_s": 2.0}  # 2 s windows: this VM's noise averages out


def _measure(arch: str, shape, batch_sizes, *, twin: bool = False, precision: str = "float32", jit: bool = False,
             timing: dict, **kwargs) -> list[dict]:
    """Every (mode, batch) of one model; ``twin``: full width, timed against its keras.applications twin;
    ``precision``: the Keras policy the model is built under; ``jit``: steps compiled with XLA."""
    keras.mixed_precision.set_global_policy(precision)
    model = architectures.create_model(arch, input_shape=tuple(shape), **kwargs)
    other = getattr(keras.applications, architectures.model_info(arch).keras_equivalent)(
        weights=None, input_shape=tuple(shape), classes=10) if twin else None
    for m in (model, other):
        if m is not None:
            m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    macs = count_flops(model)["macs"]
    classes = int(model.compute_output_shape((1, *shape))[-1])
    rows = []
    for mode in MODES:
        for batch in batch_sizes:
            t = measure_throughput(model, input_shape=shape, batch_size=batch, num_classes=classes, modes=(mode,),
                                   macs_per_image=macs, bare=not twin, twin=other, precision=precision, jit=jit,
                                   **timing)
            row = {"arch": arch, "input_shape": list(shape), "mode": mode, "batch_size": batch, "macs_per_image": macs,
                   "precision": precision, "jit": jit} | {k.removeprefix(f"{mode}_"): v for k, v in t.items()
                                              if k.startswith(f"{mode}_")}
            rows.append(row)
            extra = f", ours/keras {row['keras_ratio']:.3f}" if twin else ""
            print(f"{arch:<18} {precision}{'+XLA' if jit else ''} {mode:<5} batch {batch:>3}: "
                  f"{row['images_per_s']:>10,.1f} img/s "
                  f"(CoV {100 * row['cov']:.1f} %, MFU {100 * row['mfu']:.1f} %{extra})", flush=True)
    keras.backend.clear_session(free_memory=True)
    keras.mixed_precision.set_global_policy("float32")
    return rows


def summarize(rows: list[dict], parity: list[dict]) -> dict:
    covs = [r["cov"] for r in rows]
    overheads = [r["harness_overhead"] for r in rows]
    return {"n": len(rows), "median_cov": statistics.median(covs), "worst_cov": max(covs),
            "within_5pct_cov": sum(c <= 0.05 for c in covs) / len(covs),
            "median_overhead": statistics.median(overheads), "worst_abs_overhead": max(map(abs, overheads)),
            "keras_ratios": {f"{p['arch']} {p['mode']} b{p['batch_size']}{variant(p)}": p["keras_ratio"]
                             for p in parity}}



def run_sweep(archs: list[str] | None, *, batch_sizes=(1, 8, 32), results_dir="results", profile: str = "cpu",
              precisions=("float32",), xla: bool = False, min_window_s: float | None = None) -> dict:
    """Every model x batch x mode at a profile's sizes, in each precision, and with XLA too when ``xla``; the keras
    parity pairs in each of those variants."""
    started = datetime.now(UTC)
    peak = peak_flops("float32")
    timing = TIMING | ({"min_window_s": min_window_s} if min_window_s else {})
    rows, parity = [], []
    jits = backends.current().JIT_CHOICES  # TensorFlow: without and with XLA; JAX: XLA always; PyTorch: eager
    variants = [(p, jit) for jit in (jits if xla else jits[:1]) for p in precisions]
    for arch in archs or architectures.list_models():
        kwargs, shape = cpu_model(arch, profile)
        shape = shape or list(architectures.model_info(arch).default_input_shape)
        for precision, jit in variants:
            rows += _measure(arch, shape, batch_sizes, precision=precision, jit=jit, timing=timing, **kwargs)
            if arch in PARITY:
                parity += _measure(arch, shape, batch_sizes, twin=True, precision=precision, jit=jit, timing=timing,
                                   classes=10)
    summary = summarize(rows, parity)
    return save("throughput_sweep", started=started, rows=rows, summary=summary, results_dir=results_dir,
                timing=timing, peak_flops_per_s=peak, parity=parity, profile=profile)
