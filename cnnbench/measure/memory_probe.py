"""Measured memory of one warm train step or inference, in a fresh process (peaks never leak between configs).

On the CPU the probe switches TF to its BFC allocator (``TF_CPU_ALLOCATOR_USE_BFC=true``), whose statistics count
every tensor TF allocates, as on a GPU; the default CPU allocator leaves variables out of its counts. Allocations
oneDNN makes for its own scratch space are outside TF's allocator and not counted on either. On a GPU, memory growth
is switched on so NVML's ``used`` reflects what TF really took, and NVML is read before TF starts (the baseline: other
processes) and after the step; the difference less the allocator's peak is the CUDA context and allocator slack.

``python -m cnnbench.measure.memory_probe '<json spec>'`` prints one JSON object; ``measure`` runs it.
"""

from __future__ import annotations

import gc
import json
import os
import sys

from cnnbench._util import run_module
from cnnbench.nvml import used_bytes


class ProbeError(RuntimeError):
    """The measuring process failed; its stderr tail is in the message."""


def measure(spec: dict, *, timeout: float = 900) -> dict:
    """Run the probe for ``spec`` (arch or model_file, batch_size, input_shape, mode, optimizer, precision)."""
    env = os.environ | {"TF_CPU_ALLOCATOR_USE_BFC": "true", "TF_CPP_MIN_LOG_LEVEL": "3",
                        "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    returncode, out, stderr = run_module("cnnbench.measure.memory_probe", json.dumps(spec), env=env, timeout=timeout)
    if returncode:
        raise ProbeError(f"memory probe failed ({returncode}): {stderr.strip()[-2000:]}")
    return out


def _probe(spec: dict) -> dict:
    baseline = used_bytes()
    import keras
    import tensorflow as tf

    from cnnbench.measure.steps import build_for_memory, make_step

    if spec.get("precision", "float32") != "float32":
        keras.mixed_precision.set_global_policy(spec["precision"])
    model, input_shape = build_for_memory(spec)
    # builders leave reference cycles holding tensors (the FCNs: 11.6 MiB of a dropped classifier at width 0.125,
    # until the cyclic collector happens to run — compiling a train step usually triggers it, an inference step does
    # not): collected here, so the step is measured on the model alone
    gc.collect()
    if spec.get("frozen_backbone"):  # transfer learning: only the layers after the last pooling/flatten train
        from cnnbench.measure.graph import freeze_backbone

        freeze_backbone(model)
    device = "GPU:0" if tf.config.list_physical_devices("GPU") else "CPU:0"
    step, args = make_step(model, spec, input_shape)

    def run():
        return step(*args)

    out = run()  # warm: traces, allocates optimizer state, autotunes
    tf.nest.flatten(out)[0].numpy()
    # TF's executor runs independent ops in any order (inter-op parallelism), so one step's peak varies from step
    # to step; we take the largest of several warm steps, and keep the smallest to show the spread.
    peaks = []
    for _ in range(spec.get("steps", 5)):
        tf.config.experimental.reset_memory_stats(device)
        before = tf.config.experimental.get_memory_info(device)["current"]
        out = run()
        tf.nest.flatten(out)[0].numpy()
        peaks.append(tf.config.experimental.get_memory_info(device)["peak"])
    used = used_bytes() if device == "GPU:0" else None
    traced = {"measured_alive_at_peak": allocations_at_peak(run)} if spec.get("trace") else {}
    return traced | {
        "device": device,
        "measured_peak_bytes": int(max(peaks)),
        "measured_peak_min_bytes": int(min(peaks)),
        "resident_before_step_bytes": int(before),
        "nvml_used_bytes": used,
        "nvml_baseline_bytes": baseline if device == "GPU:0" else None,
        "nvml_overhead_bytes": (used - baseline - int(max(peaks))) if used is not None and baseline is not None
        else None,
    }


def allocations_at_peak(run, top: int = 20) -> dict:
    """One more step under TensorFlow's profiler, whose trace holds every allocation and deallocation the allocator
    made (op, output or temp, shape, bytes in use after it): replayed in time order, they give the tensors alive when
    the step's bytes in use peaked. What was allocated before the step (variables, the batch) has no event and is
    reported as ``resident_bytes``. The measured side of ``cnnbench memory --graph --measure``."""
    import glob
    import tempfile
    from pathlib import Path

    import tensorflow as tf

    from cnnbench.compat import xspace

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        tf.nest.flatten(run())[0].numpy()
        tf.profiler.experimental.stop()
        space = xspace(Path(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]).read_bytes())
    events = []
    for plane in space.planes:
        stat_names = {k: v.name for k, v in plane.stat_metadata.items()}
        for line in plane.lines:
            for e in line.events:
                kind = plane.event_metadata[e.metadata_id].name
                if kind in ("MemoryAllocation", "MemoryDeallocation"):
                    stats = {stat_names[st.metadata_id]: stat_names[st.ref_value] if st.WhichOneof("value") ==
                             "ref_value" else getattr(st, st.WhichOneof("value")) for st in e.stats}
                    events.append((line.timestamp_ns * 1000 + e.offset_ps, kind == "MemoryAllocation", stats))
    events.sort(key=lambda ev: ev[0])
    live, best, best_live = {}, -1, {}
    for _, allocated, st in events:
        if allocated:
            live[st["addr"]] = (st.get("tf_op", "?"), st.get("region_type", "?"), st.get("shape", "?"),
                                int(st.get("allocation_bytes", 0)))
        else:
            live.pop(st["addr"], None)
        if int(st.get("bytes_allocated", 0)) > best:
            best, best_live = int(st["bytes_allocated"]), dict(live)
    tracked = sum(a[3] for a in best_live.values())
    alive = sorted(best_live.values(), key=lambda a: -a[3])
    return {"peak_bytes": max(best, 0), "resident_bytes": max(best, 0) - tracked, "alive_bytes": tracked,
            "events": len(events),
            "alive": [{"op": op, "region": region, "shape": shape, "bytes": n} for op, region, shape, n in alive[:top]]}


if __name__ == "__main__":
    print(json.dumps(_probe(json.loads(sys.argv[1]))))
