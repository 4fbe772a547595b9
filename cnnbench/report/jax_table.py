"""The GPU sweeps through Keras' JAX backend (results/jax/, ``cnnbench.measure.jax_sweep``) as one markdown page,
reports/jax.md (``build_report`` writes it): each part from the latest recorded run that measured it."""

from __future__ import annotations


def merge(records: list[dict]) -> dict:
    """The latest measurement of each part over the recorded sweeps, oldest first (a short run may redo some parts
    only), with the records each part came from."""
    out: dict = {"memory": [], "throughput": [], "context": None, "budget": None, "oom": None, "sources": {}}
    for r in sorted(records, key=lambda r: r["started_at"]):
        parts = {"memory": [x for x in r["rows"] if x.get("outcome") != "skipped"] or None,
                 "throughput": [x for x in r["throughput"] if x.get("outcome") != "skipped"] or None,
                 "context": r.get("context"), "budget": r.get("budget"), "oom": r.get("oom")}
        for part, value in parts.items():
            if value:
                out[part] = value
                out["sources"][part] = f"{r['started_at'][:19]} (code {(r['env']['git']['sha'] or '?')[:10]})"
        out["env"] = r["env"]
    return out


def table(result: dict) -> str:
    mib = lambda n: "—" if n is None else f"{n / 2**20:,.0f}"  # noqa: E731
    dev, ctx = result["env"]["device"], result.get("context") or {}
    sources = "; ".join(f"{part} {src}" for part, src in result.get("sources", {}).items())
    lines = [f"Keras {result['env']['keras']} on JAX {result['env'].get('jax')} (XLA), {dev.get('name')}, driver "
             f"{dev.get('driver')}. Fixed overhead of a process using the GPU (CUDA context, XLA runtime): "
             f"{mib(ctx.get('nvml_process_bytes'))} MiB (NVML).", "",
             *([f"Recorded runs: {sources}.", ""] if sources else []),
             "XLA peak: the process's `peak_bytes_in_use` after three steps, in a process that loaded the compiled "
             "step; \"with compile\": in the process that compiled it, where XLA's autotuner ran cuDNN's candidate "
             "algorithms with their workspaces. A row with no \"with compile\" figure was measured in one process "
             "(compilation included): where its batch-1 peak is as large as the batch-32 one, autotuning set it.", "",
             "| model | input | precision | mode | batch | predicted MiB | XLA peak MiB | with compile MiB | "
             "NVML process MiB | NVML − context MiB | error vs XLA peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["memory"]:
        peak, used, base = r.get("peak_bytes"), r.get("nvml_process_bytes"), ctx.get("nvml_process_bytes")
        err = f"{100 * (r['predicted_bytes'] - peak) / peak:+.1f} %" if peak else r.get("outcome", "")
        lines.append(f"| {r['arch']} | {'x'.join(map(str, r['input_shape']))} | {r['precision']} | {r['mode']} | "
                     f"{r['batch_size']} | {mib(r['predicted_bytes'])} | {mib(peak)} | "
                     f"{mib(r.get('peak_with_compile_bytes'))} | {mib(used)} | "
                     f"{mib(used - base) if used is not None and base is not None else '—'} | {err} |")
    for name in ("budget", "oom"):
        if result.get(name):
            r = result[name]
            lines += ["", f"**{name}**: {r['arch']} {r['mode']} batch {r['batch_size']}, predicted "
                      f"{mib(r['predicted_bytes'])} MiB"
                      + (f" (budget {mib(r['budget_bytes'])} MiB; batch {r['batch_size'] + 1} predicted "
                         f"{mib(r['next_predicted_bytes'])} MiB)" if name == "budget" else
                         f" (GPU {mib(r['gpu_bytes'])} MiB)")
                      + f": outcome {r['outcome']}, XLA peak {mib(r.get('peak_bytes'))} MiB"
                      + (f" — {r['error'].strip().splitlines()[-1][:200]}" if r.get("error") else "")]
    if result["throughput"]:
        lines += ["", "| model | input | precision | mode | batch | ours images/s | keras images/s | ours / keras | "
                  "MFU ours | MFU keras |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["throughput"]:
            if r.get("outcome") != "ok":
                lines.append(f"| {r['arch']} | | {r['precision']} | {r['mode']} | {r['batch_size']} | "
                             f"{r['outcome']} | | | | |")
                continue
            lines.append(f"| {r['arch']} | {'x'.join(map(str, r['input_shape']))} | {r['precision']} | {r['mode']} | "
                         f"{r['batch_size']} | {r['images_per_s']:,.1f} | {r['keras_images_per_s']:,.1f} | "
                         f"{r['keras_ratio']:.3f} | {100 * r['mfu']:.1f} % | {100 * r['keras_mfu']:.1f} % |")
        peaks = {r["precision"]: r["peak_flops_per_s"] for r in result["throughput"]}
        lines += ["", "Matmul peak measured here (XLA, best window): " + ", ".join(
            f"{p} {v / 1e12:,.1f} TFLOP/s" for p, v in peaks.items()) + "."]
        if any(r.get("mfu", 0) > 1 for r in result["throughput"]):
            lines += ["", "An MFU above 100 % is no speed-up beyond the hardware: the convolutions ran in a faster "
                      "math mode (TF32 tensor cores) than the float32 matmul the peak was measured with."]
    return "\n".join(lines) + "\n"
