"""Measured memory of one step through Keras' JAX backend: XLA's ``peak_bytes_in_use`` in a fresh process (the
peak cannot be reset), NVML's reading of that process beside it, and out-of-memory recognised as XLA reports it.
``python -m cnnbench.measure.jax_probe '<json spec>'`` prints one JSON object; ``measure_case`` runs it twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from cnnbench import nvml
from cnnbench._util import run_module

#: every process of the sweep: JAX, no preallocation (NVML then shows what each process really took), and one
#: compilation cache, so the throughput part loads what the parallel warm-up processes compiled instead of compiling
#: two dozen XLA programs one after the other.
CHILD_ENV = {"KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_CPP_MIN_LOG_LEVEL": "3",
             "JAX_COMPILATION_CACHE_DIR": os.path.join(os.environ.get("TMPDIR", "/tmp"), "cnnbench-xla-cache"),
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}



def compiled_steps(model, x, y) -> dict:
    """The backend's no-argument steps (``throughput.compiled_steps``; here JAX's: ``jax.jit``, state donated)."""
    from cnnbench.measure.throughput import compiled_steps as steps

    return steps(model, x, y)


def synthetic(model, batch: int, shape, seed: int = 0):
    """``timing.synthetic_arrays`` sized to the model's (first) output."""
    from cnnbench.measure.timing import synthetic_arrays

    out = model.compute_output_shape((batch, *shape))
    out = out[0] if isinstance(out, list) else out
    return synthetic_arrays(batch, shape, out[-1], seed, label_shape=out[1:-1])


def probe(spec: dict) -> dict:
    """One memory case in this (fresh) process: ``python -m cnnbench.measure.jax_probe '<json>'``."""
    before = nvml.used_bytes()
    import jax
    import keras

    from cnnbench.measure.steps import build_for_memory
    from cnnbench.measure.timing import sync

    device = jax.local_devices()[0]
    if spec.get("context_only"):  # the fixed cost of a process that uses the GPU: CUDA context, XLA runtime
        jax.device_put(1.0).block_until_ready()
        after = nvml.used_bytes()
        return {"device": str(device.device_kind), "nvml_process_bytes": nvml.process_used_bytes(os.getpid()),
                "nvml_device_delta_bytes": after - before if None not in (after, before) else None}
    keras.mixed_precision.set_global_policy(spec.get("precision", "float32"))
    model, shape = build_for_memory(spec)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = synthetic(model, spec["batch_size"], shape)
    try:
        step = compiled_steps(model, x, y)[spec["mode"]]  # the JAX backend's (CHILD_ENV)
        for _ in range(spec.get("steps", 3)):
            sync(step())
    except Exception as exc:  # XLA's out-of-memory is a JaxRuntimeError whose message names the status
        if "RESOURCE_EXHAUSTED" not in str(exc):
            raise
        return {"outcome": "oom", "error": str(exc).strip().splitlines()[0][:300]}
    stats = device.memory_stats() or {}
    return {"outcome": "ok", "device": str(device.device_kind), "peak_bytes": stats.get("peak_bytes_in_use"),
            "in_use_bytes": stats.get("bytes_in_use"), "allocator_limit_bytes": stats.get("bytes_limit"),
            "nvml_process_bytes": nvml.process_used_bytes(os.getpid())}


def run_probe(spec: dict, *, env: dict | None = None, timeout: float = 300,
              entry: tuple[str, ...] = ("cnnbench.measure.jax_probe",)) -> dict:
    """``probe(spec)`` in a fresh process (``entry``: another module and its leading arguments that take a JSON spec,
    e.g. the sweep's compile-only warm-up); a crash or timeout is returned as outcome ``error``."""
    t0 = time.perf_counter()
    try:
        _, out, stderr = run_module(*entry, json.dumps(spec), timeout=timeout,
                                    env=os.environ | CHILD_ENV | (env or {}))
        out = out or {"outcome": "error", "error": stderr.strip()[-600:]}
    except subprocess.TimeoutExpired:
        out = {"outcome": "error", "error": f"timed out after {timeout:.0f} s"}
    return out | {"wall_s": round(time.perf_counter() - t0, 1)}


def measure_case(spec: dict, **kwargs) -> dict:
    """A memory case measured twice, each in a fresh process: the first compiles (XLA's autotuner runs cuDNN's
    candidate algorithms with their workspaces, and they count in the process's peak) and fills the compilation
    cache; the second loads the compiled step, so its peak is the step's own."""
    first = run_probe(spec, **kwargs)
    if first["outcome"] != "ok":
        return first
    second = run_probe(spec, **kwargs)
    return second | {"peak_with_compile_bytes": first["peak_bytes"], "wall_s": first["wall_s"] + second["wall_s"]}


if __name__ == "__main__":
    print(json.dumps(probe(json.loads(sys.argv[1]))))
