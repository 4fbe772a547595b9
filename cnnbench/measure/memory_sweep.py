"""Predicted vs measured memory for every registered model x batch size x mode, each measured in a fresh process.

Inputs are CPU-feasible: each model at its ``cpu`` profile input size and width (the same builder); on a GPU the
``gpu`` profile's (paper) sizes, where NVML's reading is recorded beside the allocator's. The sweep is a
benchmark, not a test: its result file (``results/memory/``) is what the report's memory page and the README quote.
``exercise`` among the archs adds the textbook's worked network (Géron, ch. 14: three stride-2 3x3 convolutions of
100/200/400 maps on 200x300 RGB) at its two cases, inference at batch 1 and training at batch 50; ``random=N`` adds N
generated networks (``random_nets``: seeds ``random_seed`` … + N - 1, never in the registry) in both modes at the
batch each drew. Every row carries both predictions: the layer model's and the traced graph's (``graph_*``).
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import architectures
from cnnbench.measure.memory import memory_report
from cnnbench.measure.sweep import cpu_model, save


def sweep_specs(archs: list[str], batch_sizes=(1, 8, 32), modes=("train", "infer"), optimizer="adam",
                profile: str = "cpu") -> list[dict]:
    specs = []
    for arch in archs:
        kwargs, shape = cpu_model(arch, profile)
        for mode in modes:
            for batch in batch_sizes:
                specs.append({"arch": arch, "model_kwargs": kwargs, "input_shape": shape, "batch_size": batch,
                              "mode": mode, "optimizer": optimizer, "precision": "float32"})
    return specs


def summarize(rows: list[dict], key: str = "relative_error") -> dict:
    errors = [r[key] for r in rows if r.get(key) is not None]
    if not errors:
        return {"n": 0}
    return {"n": len(errors), "median_abs_error": statistics.median(abs(e) for e in errors),
            "worst_abs_error": max(abs(e) for e in errors), "worst_under_prediction": min(errors),
            "within_15pct": sum(abs(e) <= 0.15 for e in errors) / len(errors)}


EXERCISE = "exercise"
EXERCISE_CASES = (("infer", 1), ("train", 50))


def exercise_model():
    """Géron's worked example: 3 conv layers, 3x3, stride 2, same padding, 100/200/400 maps, ReLU, on 200x300 RGB."""
    import keras

    inputs = keras.Input((200, 300, 3))
    x = inputs
    for filters in (100, 200, 400):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    return keras.Model(inputs, x, name=EXERCISE)


def _exercise_specs(folder: str) -> list[dict]:
    path = f"{folder}/{EXERCISE}.keras"
    exercise_model().save(path)
    return [{"model_file": path, "input_shape": [200, 300, 3], "batch_size": batch, "mode": mode,
             "optimizer": "adam", "precision": "float32"} for mode, batch in EXERCISE_CASES]


def _random_specs(folder: str, n: int, first_seed: int) -> list[dict]:
    from cnnbench.measure.random_nets import random_network

    specs = []
    for seed in range(first_seed, first_seed + n):
        model, drawn = random_network(seed)
        path = f"{folder}/{model.name}.keras"
        model.save(path)
        specs += [{"model_file": path, "input_shape": drawn["input_shape"], "batch_size": drawn["batch_size"],
                   "mode": mode, "optimizer": "adam", "precision": "float32", "name": model.name, "generator": drawn}
                  for mode in ("train", "infer")]
    return specs


def run_sweep(archs: list[str] | None, *, batch_sizes=(1, 8, 32), results_dir="results", profile: str = "cpu",
              random: int = 0, random_seed: int = 0) -> dict:
    import tempfile

    started = datetime.now(UTC)
    rows = []
    archs = architectures.list_models() if archs is None else archs
    with tempfile.TemporaryDirectory() as folder:
        specs = sweep_specs([a for a in archs if a != EXERCISE], batch_sizes, profile=profile)
        specs += _exercise_specs(folder) if EXERCISE in archs else []
        specs += _random_specs(folder, random, random_seed)
        for spec in specs:
            # strict=False: a measuring process that dies (a TF segfault on one network) is that row's
            # `measure_error`, not the end of the sweep
            row = memory_report(spec, measure=True, graph=True, strict=False)
            if spec.get("model_file"):  # saved to a temporary file: named, not by its path
                row |= {"arch": spec.get("name", EXERCISE), "model_file": None}
                row |= {"generator": spec["generator"]} if "generator" in spec else {}
            rows.append(row)
            print(_line(row), flush=True)
    summary = sweep_summary(rows)
    return save("memory_sweep", started=started, rows=rows, summary=summary, results_dir=results_dir, profile=profile)


def sweep_summary(rows: list[dict]) -> dict:
    """Error statistics of the registry's rows (top level: layer model, ``graph``: traced graph), and of the textbook
    exercise's and the generated networks' rows apart (``layers`` / ``graph`` each); the rows not measured."""
    groups = {"registry": [], EXERCISE: [], "generated": []}
    for r in rows:
        groups["generated" if "generator" in r else EXERCISE if r["arch"] == EXERCISE else "registry"].append(r)
    both = {name: {"layers": summarize(g), "graph": summarize(g, "graph_relative_error")} for name, g in groups.items()}
    return both["registry"]["layers"] | {
        "graph": both["registry"]["graph"], EXERCISE: both[EXERCISE], "generated": both["generated"],
        "not_measured": [f"{r['arch']} {r['mode']} batch {r['batch_size']}" for r in rows if "measure_error" in r]}


def _line(row: dict) -> str:
    head = f"{row['arch']:<18} {row['mode']:<5} batch {row['batch_size']:>3}: "
    if row["measured_peak_bytes"] is None:
        why = row.get("measure_error") or row.get("measure_skipped") or ""
        return head + f"predicted {row['predicted_bytes'] / 2**20:9.2f} MiB; NOT MEASURED ({why.splitlines()[0][:200]})"
    return (head + f"measured {row['measured_peak_bytes'] / 2**20:9.2f} MiB; predicted by layers "
            f"{row['predicted_bytes'] / 2**20:9.2f} MiB ({100 * row['relative_error']:+.1f} %), by the graph "
            f"{row['graph_predicted_bytes'] / 2**20:9.2f} MiB ({100 * row['graph_relative_error']:+.1f} %)")
