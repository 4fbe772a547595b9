"""The registry's models on a GPU through Keras' JAX backend (XLA), for machines that have JAX's CUDA build and cannot
get TensorFlow's: memory predicted against XLA's allocator and NVML, the out-of-memory path, a memory budget, and
throughput against keras.applications.

The models are Keras 3 and run unchanged on JAX; what is measured is the model compiled by XLA, not TensorFlow's
executor, and the record says so (``env.keras_backend``). The memory predictor models TensorFlow's executor (each op's
output held until its last reader, nothing fused); XLA fuses element-wise ops into their producers and plans buffers
for the whole step, so the comparison tells how far the prediction sits from a compiler's plan, not from TensorFlow's
allocator. The LRN layer (GoogLeNet, AlexNet) runs through its keras.ops path.

``KERAS_BACKEND=jax python -m cnnbench.measure.jax_sweep [--quick] [--deadline S]`` runs four parts, each recorded in
``results/jax/`` (and ``reports/jax.md``) as soon as it is done:

* **memory** — each model at its paper input x batch x {train, infer} x {float32, mixed_float16}, in fresh processes
  (XLA's ``peak_bytes_in_use`` counts from process start): one compiles the step, a second loads it from the
  compilation cache and gives the step's own peak after three steps; with the prediction and the memory the driver
  accounts to that process (NVML). A process that only starts the backend gives the fixed
  overhead (CUDA context, XLA runtime), stated apart.
* **budget** — ``cnnbench fit``'s largest batch for a budget runs with XLA's allocator capped at that budget; one
  batch more is predicted not to fit.
* **oom** — a batch predicted to need twice the GPU's memory: expected to fail with RESOURCE_EXHAUSTED, recorded as
  outcome ``oom`` with its prediction.
* **throughput** — ResNet-50 and Xception against their keras.applications twins in one process, windows interleaved
  on the same batch, float32 and mixed_float16, a batch sweep; MFU against this device's measured matmul peak.

Parts run while time is left (``--deadline``): a part that would start too late is recorded as skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from cnnbench import nvml
from cnnbench.measure.jax_probe import CHILD_ENV, compiled_steps, measure_case, run_probe, synthetic

MEMORY_ARCHS = ("resnet50", "seresnet50", "xception", "googlenet", "vgg16", "efficientnet_lite0")
PRECISIONS = ("float32", "mixed_float16")
MODES = ("train", "infer")
PARITY = ("resnet50", "xception")
THROUGHPUT_POINTS = (("float32", 32), ("float32", 64), ("mixed_float16", 128))  # (precision, batch)
TIMING = {"warmup": 5, "repeats": 5, "min_window_s": 0.5}
BUDGET_BYTES = 16 * 2**30
PARTS = ("memory", "budget", "oom", "throughput")
# ---------------------------------------------------------------------------------------------- in one process


def warm(spec: dict) -> dict:
    """Compile one throughput point's programs (ours and the twin, train and infer) into the shared cache."""
    points = ((spec["precision"], spec["batch_size"]),)
    rows = throughput(spec["arch"], points, spec.get("modes", MODES), timing={"warmup": 1, "repeats": 1,
                      "min_window_s": 0.01}, input_shape=spec.get("input_shape"), peak=1.0, quiet=True)
    return {"outcome": "ok", "modes": [r["mode"] for r in rows]}


def peak_flops(dtype: str = "float32") -> float:
    """The device's matmul peak through XLA (``throughput.peak_flops`` on the JAX backend)."""
    from cnnbench.measure.throughput import peak_flops as peak

    return peak(dtype)


def throughput(arch: str, points=THROUGHPUT_POINTS, modes=MODES, timing=TIMING, deadline: float = float("inf"),
               input_shape=None, peak: float | None = None, quiet: bool = False) -> list[dict]:
    """Ours against the keras.applications twin, per (precision, batch, mode), windows interleaved (ours / keras)."""
    import keras

    import architectures
    from cnnbench.measure.flops import TRAIN_FACTOR, count_flops
    from cnnbench.measure.timing import rates, time_step

    info = architectures.model_info(arch)
    shape = tuple(input_shape or info.default_input_shape)
    rows = []

    def late(precision: str, batches, modes) -> bool:
        """Past the deadline: the cases not started are recorded as skipped, before anything is built for them."""
        if time.monotonic() <= deadline:
            return False
        rows.extend({"arch": arch, "input_shape": list(shape), "precision": precision, "batch_size": batch,
                     "mode": mode, "outcome": "skipped", "error": "deadline"} for batch in batches for mode in modes)
        return True

    for precision in dict.fromkeys(p for p, _ in points):
        batches = [b for p, b in points if p == precision]
        if late(precision, batches, modes):
            continue
        keras.mixed_precision.set_global_policy(precision)
        keras.backend.clear_session()
        ours = architectures.create_model(arch, input_shape=shape)
        twin = getattr(keras.applications, info.keras_equivalent)(weights=None, input_shape=shape)
        macs = count_flops(ours)["macs"]
        peak_ = peak or peak_flops("float16" if precision == "mixed_float16" else "float32")
        for batch in batches:
            if late(precision, [batch], modes):
                continue
            for model in (ours, twin):
                model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
            x, y = synthetic(ours, batch, shape)
            steps, theirs = compiled_steps(ours, x, y), compiled_steps(twin, x, y)
            for mode in modes:
                if late(precision, [batch], [mode]):
                    continue
                row = {"arch": arch, "input_shape": list(shape), "precision": precision, "batch_size": batch,
                       "mode": mode, "macs_per_image": macs, "peak_flops_per_s": peak_}
                t = time_step(steps[mode], others={"keras": theirs[mode]}, **timing)
                flops = 2 * macs * (TRAIN_FACTOR if mode == "train" else 1)
                r = rates(t, batch)
                rows.append(row | {"outcome": "ok", **r, "latency_ms_p50": t["latency_ms_p50"],
                                   "steps_per_window": t["steps_per_window"], "mfu": r["images_per_s"] * flops / peak_,
                                   "keras_mfu": r["keras_images_per_s"] * flops / peak_})
                if not quiet:
                    print(f"{arch:<10} {precision:<13} {mode:<5} batch {batch:>4}: {r['images_per_s']:>9,.1f} "
                          f"img/s, keras {r['keras_images_per_s']:>9,.1f} (ours/keras {r['keras_ratio']:.3f}), "
                          f"MFU {100 * rows[-1]['mfu']:.1f} %", flush=True)
    keras.mixed_precision.set_global_policy("float32")
    return rows


# ------------------------------------------------------------------------------------------------ the sweep


def memory_cases(archs=MEMORY_ARCHS, batches=(1, 32), modes=MODES, precisions=PRECISIONS) -> list[dict]:
    return [{"arch": a, "batch_size": b, "mode": m, "precision": p}
            for a in archs for p in precisions for m in modes for b in batches]


def predictions(spec: dict, model, shape) -> dict:
    from cnnbench.measure.memory import bare_minimum, predict_memory

    kw = {"batch_size": spec["batch_size"], "input_shape": shape, "mode": spec["mode"]}
    return {"input_shape": list(shape), "predicted_bytes": predict_memory(
        model, **kw, precision=spec["precision"])["predicted_bytes"],
        "bare_minimum_bytes": bare_minimum(model, **kw)["bare_minimum_bytes"]}


def summarize(result: dict) -> dict:
    rows = [r for r in result["memory"] if r.get("peak_bytes") and r.get("outcome") == "ok"]
    errors = [(r["predicted_bytes"] - r["peak_bytes"]) / r["peak_bytes"] for r in rows]
    ratios = [r["keras_ratio"] for r in result["throughput"] if r.get("outcome") == "ok"]
    return {"memory_cases": len(result["memory"]), "measured": len(rows),
            "median_abs_error": statistics.median(map(abs, errors)) if errors else None,
            "worst_under_prediction": min(errors, default=None),
            "keras_ratio_median": statistics.median(ratios) if ratios else None,
            "keras_ratio_range": [min(ratios), max(ratios)] if ratios else None}


def run(*, archs=MEMORY_ARCHS, batches=(1, 32), precisions=PRECISIONS, parity=PARITY, points=THROUGHPUT_POINTS,
        input_shape=None, workers: int = 8, deadline_s: float = 450, results_dir="results",
        budget_bytes: int = BUDGET_BYTES, parts=PARTS, modes=MODES) -> dict:
    os.environ.update(CHILD_ENV)  # this process computes too (predictions, throughput): no preallocation
    from cnnbench.measure.advisor import largest_batch
    from cnnbench.measure.memory import predict_memory
    from cnnbench.measure.steps import build_for_memory
    from cnnbench.measure.sweep import save

    start, started = time.monotonic(), datetime.now(UTC)
    deadline = start + deadline_s
    gpu, env = _environment()
    result = {"memory": [], "throughput": [], "context": None, "budget": None, "oom": None, "skipped": []}

    def due(part: str) -> bool:
        """Whether ``part`` was asked for and may start: one that would start after the deadline is skipped (named
        in the record's ``skipped``; throughput, case by case, in its rows)."""
        if part in parts and time.monotonic() > deadline:
            result["skipped"].append(part)
            print(f"{part}: skipped, past the deadline", flush=True)
            return False
        return part in parts

    def flush():  # the record of this run, rewritten as each part lands (`cnnbench report` renders reports/jax.md)
        save("jax_sweep", started=started, rows=result["memory"], summary=summarize(result), env=env,
             results_dir=results_dir, **{k: v for k, v in result.items() if k != "memory"})

    shape_spec = {"input_shape": list(input_shape)} if input_shape else {}
    result["context"] = run_probe({"context_only": True})
    print(f"context: {result['context']}", flush=True)
    cases = [c | shape_spec for c in memory_cases(archs, batches, precisions=precisions)] if due("memory") else []
    gpu_bytes = (gpu or {}).get("memory_total_bytes")
    resnet = {"arch": "resnet50", "mode": "train", "precision": "float32"} | shape_spec
    model, shape = build_for_memory(resnet)

    def predict(b):
        return predict_memory(model, batch_size=b, input_shape=shape)["predicted_bytes"]

    b, predicted = largest_batch(predict, budget_bytes)
    budget = resnet | {"batch_size": b, "predicted_bytes": predicted, "budget_bytes": budget_bytes,
                       "next_predicted_bytes": predict(b + 1)}
    warm_ups = [{"arch": a, "precision": p, "batch_size": b, "modes": list(modes)} | shape_spec
                for a in parity for p, b in points] if "throughput" in parts and time.monotonic() <= deadline else []
    _memory_part(cases, warm_ups, budget if gpu_bytes and b and due("budget") else None, result, workers=workers,
                 gpu_bytes=gpu_bytes, budget_bytes=budget_bytes)
    flush()
    if gpu_bytes and due("oom"):  # alone: it asks for the whole GPU. No autotuning: it would only delay the
        b, predicted = largest_batch(predict, 2 * gpu_bytes)  # allocation that fails
        result["oom"] = resnet | {"batch_size": b, "predicted_bytes": predicted, "gpu_bytes": gpu_bytes}
        result["oom"] |= run_probe(result["oom"], env={"XLA_FLAGS": "--xla_gpu_autotune_level=0"},
                                   timeout=max(60.0, min(180.0, deadline - time.monotonic())))
        print(f"oom: {result['oom']}", flush=True)
        flush()
    for arch in parity if "throughput" in parts else ():
        result["throughput"] += throughput(arch, points, modes, deadline=deadline, input_shape=input_shape)
        flush()
    print(f"done in {time.monotonic() - start:.0f} s", flush=True)
    return result | {"env": env}


def _environment() -> tuple[dict | None, dict]:
    """NVML's GPU (None without one) and the record's environment; a GPU JAX cannot use stops the sweep."""
    import jax
    import keras

    from cnnbench.environment import environment

    gpu = nvml.gpu_info()
    if gpu and jax.default_backend() != "gpu":
        raise SystemExit(f"NVML sees {gpu['name']} but JAX has no GPU backend (jax {jax.__version__}, backends "
                         f"{jax.default_backend()}): install JAX's CUDA build, e.g. `pip install 'jax[cuda13]'`")
    env = environment(device_info=gpu or {"type": jax.default_backend(), "name": str(jax.devices()[0])})
    return gpu, env | {"jax": jax.__version__, "keras_backend": keras.config.backend()}


def _memory_part(cases: list[dict], warm_ups: list[dict], budget: dict | None, result: dict, *, workers: int,
                 gpu_bytes: int | None, budget_bytes: int) -> None:
    """The memory cases (each measured in its own process, predicted here), the budget check and the throughput
    points' compilation, side by side on ``workers`` processes; rows into ``result``."""
    import keras

    from cnnbench.measure.steps import build_for_memory

    # processes at once share the GPU: each warm-up may grow to its share (XLA's allocator keeps what it took)
    share = {"XLA_PYTHON_CLIENT_MEM_FRACTION": f"{0.9 / min(workers, len(warm_ups) + len(cases) + 1):.3f}"}
    with ThreadPoolExecutor(workers) as pool:
        warming = [pool.submit(run_probe, w, entry=("cnnbench.measure.jax_sweep", "--warm"),
                               env=share if gpu_bytes else None) for w in warm_ups]
        futures = [pool.submit(measure_case, c, timeout=240) for c in cases]
        capped = {"XLA_PYTHON_CLIENT_PREALLOCATE": "true",
                  "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{budget_bytes / gpu_bytes:.4f}"} if gpu_bytes else {}
        budget_future = pool.submit(run_probe, budget, env=capped) if budget else None
        built = {}
        for case, future in zip(cases, futures, strict=True):
            if case["arch"] not in built:
                keras.backend.clear_session()
                built[case["arch"]] = build_for_memory(case)
            row = case | predictions(case, *built[case["arch"]]) | future.result()
            result["memory"].append(row)
            print(f"{row['arch']:<18} {row['precision']:<13} {row['mode']:<5} batch {row['batch_size']:>3}: predicted "
                  f"{row['predicted_bytes'] / 2**20:8.0f} MiB, XLA peak "
                  f"{(row.get('peak_bytes') or 0) / 2**20:8.0f} MiB, NVML "
                  f"{(row.get('nvml_process_bytes') or 0) / 2**20:8.0f} MiB [{row['outcome']}, {row['wall_s']} s]",
                  flush=True)
        if budget_future:
            result["budget"] = budget | budget_future.result()
        result["warm_up"] = [f.result() for f in warming]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnnbench.measure.jax_sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--warm", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="LeNet-5-sized check of the plumbing (any machine)")
    p.add_argument("--deadline", type=float, default=450, help="seconds after which no new part starts")
    p.add_argument("--workers", type=int, default=8, help="memory probes run at once (each its own process)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=PARTS)
    p.add_argument("--modes", nargs="+", choices=MODES, default=MODES, help="throughput: which steps to time")
    p.add_argument("--results", default="results")
    args = p.parse_args(argv)
    if args.warm:
        print(json.dumps(warm(json.loads(args.warm))))
        return 0
    quick = {"archs": ("resnet50",), "batches": (1,), "precisions": ("float32",), "parity": ("resnet50",),
             "points": (("float32", 2),), "input_shape": (32, 32, 3), "budget_bytes": 2**30} if args.quick else {}
    run(workers=args.workers, deadline_s=args.deadline, results_dir=args.results, parts=args.parts,
        modes=args.modes, **quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
