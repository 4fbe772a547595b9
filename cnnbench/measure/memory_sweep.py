"""Predicted vs measured memory for every registered model x batch size x mode, each measured in a fresh process.

Inputs are CPU-feasible: each model at its ``cpu`` profile input size and width (the same builder). The sweep is a
benchmark, not a test: its result file (``results/memory/``) and table (``reports/memory.md``) are what the README
quotes.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import architectures
from cnnbench.measure.memory import memory_report
from cnnbench.measure.sweep import cpu_model, save


def sweep_specs(archs: list[str], batch_sizes=(1, 8, 32), modes=("train", "infer"), optimizer="adam") -> list[dict]:
    specs = []
    for arch in archs:
        kwargs, shape = cpu_model(arch)
        for mode in modes:
            for batch in batch_sizes:
                specs.append({"arch": arch, "model_kwargs": kwargs, "input_shape": shape, "batch_size": batch,
                              "mode": mode, "optimizer": optimizer, "precision": "float32"})
    return specs


def summarize(rows: list[dict]) -> dict:
    errors = [r["relative_error"] for r in rows if r["relative_error"] is not None]
    if not errors:
        return {"n": 0}
    return {"n": len(errors), "median_abs_error": statistics.median(abs(e) for e in errors),
            "worst_abs_error": max(abs(e) for e in errors), "worst_under_prediction": min(errors),
            "within_15pct": sum(abs(e) <= 0.15 for e in errors) / len(errors)}


def table(rows: list[dict], summary: dict) -> str:
    mib = lambda n: f"{n / 2**20:,.2f}"  # noqa: E731
    lines = ["| model | input | mode | batch | predicted MiB | measured MiB (min-max of 5 steps) | error | "
             "bare minimum MiB |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arch']} | {'x'.join(map(str, r['input_shape']))} | {r['mode']} | {r['batch_size']} | "
                     f"{mib(r['predicted_bytes'])} | {mib(r['measured_peak_min_bytes'])}–"
                     f"{mib(r['measured_peak_bytes'])} | "
                     f"{100 * r['relative_error']:+.1f} % | {mib(r['bare_minimum_bytes'])} |")
    if summary.get("n"):
        lines.append("")
        lines.append(f"{summary['n']} configurations: median |error| {100 * summary['median_abs_error']:.1f} %, "
                     f"worst |error| {100 * summary['worst_abs_error']:.1f} %, most under-predicted "
                     f"{100 * summary['worst_under_prediction']:+.1f} %.")
    return "\n".join(lines) + "\n"


def run_sweep(archs: list[str] | None, *, batch_sizes=(1, 8, 32), results_dir="results", out_dir="reports") -> dict:
    started = datetime.now(UTC)
    rows = []
    for spec in sweep_specs(archs or architectures.list_models(), batch_sizes):
        row = memory_report(spec, measure=True)
        rows.append(row)
        print(f"{row['arch']:<18} {row['mode']:<5} batch {row['batch_size']:>3}: predicted "
              f"{row['predicted_bytes'] / 2**20:9.2f} MiB, measured {row['measured_peak_bytes'] / 2**20:9.2f} MiB "
              f"({100 * row['relative_error']:+.1f} %)", flush=True)
    summary = summarize(rows)
    return save("memory_sweep", started=started, rows=rows, summary=summary, table=table(rows, summary),
                results_dir=results_dir, out_dir=out_dir)
