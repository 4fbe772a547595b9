"""The OOM advisor: the largest batch that fits a memory budget, and what each classic remedy would allow.

Remedies (each predicted; with ``measure=True`` the ones the probe can apply for real are measured at the batch
they allow): a smaller batch, mixed precision, a smaller input, a frozen backbone (transfer learning), and gradient
checkpointing (predicted only: it needs the model rewritten with ``tf.recompute_grad``). Each remedy is predicted
from the traced step (``graph_memory``: the graph TF runs, its kernels' scratch, the allocator's chunks) of a model
built for it; checkpointing, which no traced step shows, as the traced plain step scaled by the saving the layer
model predicts. The layer model's answer is where the search for the largest batch starts.
"""

from __future__ import annotations

import functools

from cnnbench.measure.memory import predict_memory
from cnnbench.measure.steps import build_for_memory

MAX_BATCH = 1 << 16


def largest_batch(predict, budget: int) -> tuple[int, int]:
    """The largest batch b with predict(b) <= budget (predictions grow with b), and predict(b); (0, predict(1))."""
    if predict(1) > budget:
        return 0, predict(1)
    low, high = 1, 2
    while high <= MAX_BATCH and predict(high) <= budget:
        low, high = high, high * 2
    high = min(high, MAX_BATCH + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if predict(mid) <= budget else (low, mid)
    return low, predict(low)


def largest_batch_near(predict, budget: int, guess: int) -> tuple[int, int]:
    """``largest_batch`` for a costly ``predict`` that is close to linear in the batch: bracketed from ``guess``
    (doubling or halving), then narrowed by interpolation with bisection as the fallback — a handful of calls."""
    calls: dict[int, int] = {}

    def p(b):
        if b not in calls:
            calls[b] = predict(b)
        return calls[b]

    low = high = min(max(1, guess), MAX_BATCH)
    while p(low) > budget:  # down until it fits
        if low == 1:
            return 0, p(1)
        high, low = low, max(1, low // 2)
    while high <= MAX_BATCH and p(high) <= budget:  # up until it does not
        low, high = high, high * 2
    if high > MAX_BATCH:
        return MAX_BATCH, p(MAX_BATCH)
    while high - low > 1:
        slope = (p(high) - p(low)) / (high - low)
        mid = low + int((budget - p(low)) / slope) if slope > 0 else (low + high) // 2
        mid = mid if low < mid < high else (low + high) // 2
        low, high = (mid, high) if p(mid) <= budget else (low, mid)
    return low, p(low)


def _traced_predictor(spec: dict, mode: str, optimizer: str, precision: str, frozen: bool):
    """predict(batch) from the traced step of a model built for ``spec`` under ``precision`` (its layers keep the
    policy they were built with), with the backbone frozen if asked; each batch traced once."""
    import keras

    from cnnbench.measure.graph_memory import predict_from_graph

    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        model, shape = build_for_memory(spec)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    if frozen:
        from cnnbench.measure.graph import freeze_backbone

        freeze_backbone(model)

    @functools.cache
    def predict(b):
        step = {"batch_size": b, "mode": mode, "optimizer": optimizer}
        return predict_from_graph(model, spec | step, shape)["graph_predicted_bytes"]

    return predict


def advise(spec: dict, budget: int, *, measure: bool = False) -> dict:
    model, shape = build_for_memory(spec)
    mode, optimizer = spec.get("mode", "train"), spec.get("optimizer", "adam")
    precision = spec.get("precision", "float32")

    traced_plain = _traced_predictor(spec, mode, optimizer, precision, False)  # shared: checkpointing scales it

    def remedy(name, model_=model, shape_=shape, probe_spec=None, **kw):
        options = {"mode": mode, "optimizer": optimizer, "precision": precision} | kw

        def predict(b):
            return predict_memory(model_, batch_size=b, input_shape=shape_, **options)["predicted_bytes"]

        batch, predicted = largest_batch(predict, budget)
        if probe_spec == {}:
            traced = traced_plain
        elif probe_spec is not None:
            traced = _traced_predictor(spec | probe_spec, mode, optimizer, options["precision"],
                                       options.get("frozen_backbone", False))
        else:  # checkpointing, which no traced step has: the traced plain step scaled by the layer model's saving
            def traced(b):
                plain = predict_memory(model_, batch_size=b, input_shape=shape_,
                                       **(options | {"checkpointing": False}))["predicted_bytes"]
                return round(traced_plain(b) * predict(b) / plain)

        batch, predicted = largest_batch_near(traced, budget, batch)
        row = {"remedy": name, "batch_size": batch, "predicted_bytes": predicted, "input_shape": list(shape_),
               "measured_peak_bytes": None}
        if measure and probe_spec is not None and batch:
            from cnnbench.measure.memory_probe import measure as probe

            row["measured_peak_bytes"] = probe(spec | probe_spec | {"batch_size": batch})["measured_peak_bytes"]
        return row

    rows = [remedy(f"batch size ({precision})", probe_spec={}),
            remedy("mixed precision (mixed_float16)", probe_spec={"precision": "mixed_float16"},
                   precision="mixed_float16")]
    if spec.get("arch"):  # a registered builder can be rebuilt at half the input size
        half = (max(1, shape[0] // 2), max(1, shape[1] // 2), shape[2])
        try:
            small, _ = build_for_memory(spec | {"input_shape": list(half)})
            rows.append(remedy("half input size", model_=small, shape_=half,
                               probe_spec={"input_shape": list(half)}))
        except ValueError as e:  # the topology does not accept it
            rows.append({"remedy": "half input size", "batch_size": None, "note": str(e)})
    if mode == "train":
        rows.append(remedy("frozen backbone (head trains)", probe_spec={"frozen_backbone": True},
                           frozen_backbone=True))
        rows.append(remedy("gradient checkpointing (sqrt(n) segments, predicted only)", checkpointing=True))
    return {"arch": spec.get("arch"), "model_file": spec.get("model_file"), "mode": mode, "optimizer": optimizer,
            "budget_bytes": budget, "input_shape": list(shape), "largest_batch": rows[0]["batch_size"],
            "remedies": rows}
