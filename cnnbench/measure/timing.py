"""Timing a compiled step, whatever computes it (TensorFlow, or Keras on JAX): calibrated windows, interleaved
comparisons, latencies, and the images/s they give. No framework imports: a step is any callable, and its output is
waited for by reading one value back to the host."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import keras
import numpy as np


def sync(out) -> None:
    """Block until ``out`` is computed by copying one of its tensors to the host."""
    leaves = [t for t in keras.tree.flatten(out) if hasattr(t, "shape")]
    if leaves:
        keras.ops.convert_to_numpy(leaves[0])


def _window(step: Callable, n: int) -> float:
    t0 = time.perf_counter()
    out = None
    for _ in range(n):
        out = step()
    sync(out)
    return time.perf_counter() - t0


def calibrate(step: Callable, min_window_s: float, max_steps: int = 10_000) -> int:
    """Steps per window so that a window lasts about ``min_window_s`` (at least one step)."""
    n = 1
    while True:
        t = _window(step, n)
        if t >= min_window_s / 4 or n >= max_steps:
            return max(1, min(max_steps, math.ceil(n * min_window_s / max(t, 1e-9))))
        n *= 4


def time_step(step: Callable, *, warmup: int, repeats: int, steps: int | None = None, min_window_s: float = 1.0,
              latency_samples: int = 20, others: dict[str, Callable] | None = None) -> dict:
    """Warm up, then time ``repeats`` windows of ``steps`` steps (calibrated when None) and single-step latencies.

    ``others``: steps to compare with, each timed for the same number of steps right after each of our windows
    (interleaved, so drift and neighbours' noise hit both alike) — a bare loop over the compiled function, a twin
    model's step.
    """
    others = others or {}
    for s in (step, *others.values()):
        for _ in range(warmup):
            out = s()
        sync(out if warmup else s())
    steps = steps or calibrate(step, min_window_s)
    windows: list[float] = []
    other_windows: dict[str, list[float]] = {name: [] for name in others}
    for _ in range(repeats):
        windows.append(_window(step, steps))
        for name, s in others.items():
            other_windows[name].append(_window(s, steps))
    # latency: `latency_samples` single synchronised steps, fewer (3 at least) where they would outlast a window
    n = max(min(3, latency_samples), min(latency_samples, steps))
    latencies = [1000 * _window(step, 1) for _ in range(n)]
    return {"steps_per_window": steps, "repeats": repeats, "windows_s": windows, "others_windows_s": other_windows,
            "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else None,
            "latency_ms_p90": float(np.percentile(latencies, 90)) if latencies else None}


def rates(timing: dict, batch_size: int) -> dict:
    """Images/s of a ``time_step`` result (median window, min, max, coefficient of variation), and of the others:
    ``bare`` → ``bare_images_per_s`` and ``harness_overhead``; any other name → ``{name}_images_per_s`` and
    ``{name}_ratio`` (ours ÷ theirs)."""

    def summary(windows):
        r = [timing["steps_per_window"] * batch_size / w for w in windows]
        return statistics.median(r), min(r), max(r), statistics.pstdev(r) / statistics.fmean(r) if len(r) > 1 else 0.0

    median, low, high, cov = summary(timing["windows_s"])
    out = {"images_per_s": median, "images_per_s_min": low, "images_per_s_max": high, "cov": cov}
    for name, windows in timing.get("others_windows_s", {}).items():
        theirs, _, _, their_cov = summary(windows)
        out |= {f"{name}_images_per_s": theirs, f"{name}_cov": their_cov}
        if name == "bare":
            out["harness_overhead"] = (theirs - median) / theirs
        else:
            out[f"{name}_ratio"] = median / theirs
    return out


def synthetic_arrays(batch_size: int, input_shape, num_classes: int, seed: int = 0,
                     label_shape=()) -> tuple[np.ndarray, np.ndarray]:
    """The fixed batch a timed step runs on: random images in [0, 1) and integer labels, one per output position
    (``label_shape``: () for a classifier, (H, W) for a segmentation network)."""
    rng = np.random.default_rng(seed)
    x = rng.random((batch_size, *input_shape), dtype=np.float32)
    return x, rng.integers(0, num_classes, (batch_size, *label_shape), dtype=np.int32)
