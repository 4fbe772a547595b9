"""The OOM advisor: the largest batch that fits a memory budget, and what each classic remedy would allow.

Remedies (each predicted; with ``measure=True`` the ones the probe can apply for real are measured at the batch
they allow): a smaller batch, mixed precision, a smaller input, a frozen backbone (transfer learning), and gradient
checkpointing (predicted only: it needs the model rewritten with ``tf.recompute_grad``).
"""

from __future__ import annotations

from cnnbench.measure.memory import build_for_memory, predict_memory

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


def advise(spec: dict, budget: int, *, measure: bool = False) -> dict:
    model, shape = build_for_memory(spec)
    mode, optimizer = spec.get("mode", "train"), spec.get("optimizer", "adam")
    precision = spec.get("precision", "float32")

    def remedy(name, model_=model, shape_=shape, probe_spec=None, **kw):
        options = {"mode": mode, "optimizer": optimizer, "precision": precision} | kw

        def predict(b):
            return predict_memory(model_, batch_size=b, input_shape=shape_, **options)["predicted_bytes"]

        batch, predicted = largest_batch(predict, budget)
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
