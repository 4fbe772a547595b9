"""Result records → pandas tables → ``reports/index.html``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pandas as pd

from cnnbench import records
from cnnbench._util import atomic_write
from cnnbench.environment import machine_id

COLUMNS = {
    "task": "task", "arch": "arch", "profile": "profile", "seed": "seed", "outcome": "outcome",
    "metrics.test_accuracy": "test_accuracy", "metrics.baseline.test_accuracy": "scratch_accuracy",
    "metrics.miou": "miou", "dataset.note": "dataset_note",
    "config.weights": "weights", "dataset.name": "dataset",
    "params.total": "params", "params.trainable": "params_trainable",
    "model.reference_params": "reference_params", "model.count": "reference_counts", "dataset.n_train": "n_train",
    "config.input_shape": "input_shape", "config.model_kwargs.width": "width",
    "metrics.train_seconds": "train_s", "config.epochs": "epochs",
    "metrics.time_to_target.reached": "ttt_reached", "metrics.time_to_target.train_seconds": "ttt_s",
    "metrics.time_to_target.epoch": "ttt_epoch", "throughput.batch_size": "batch",
    "throughput.train_images_per_s": "train_img_s", "throughput.infer_images_per_s": "infer_img_s",
    "throughput.train_cov": "train_cov",
    "memory.predicted_bytes": "mem_predicted", "memory.measured_peak_bytes": "mem_measured",
    "env.device.name": "device", "env.git.sha": "git_sha",
    "env.git.dirty": "dirty", "dataset.sha256": "data_sha256", "started_at": "started_at",
    "error.message": "error",
}


def records_frame(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per valid record (invalid files are skipped with a warning by ``records.iter_records``)."""
    rows = [r | {"file": p.name} for p, r in records.iter_records(results_dir)]
    if not rows:
        return pd.DataFrame(columns=[*COLUMNS.values(), "file", "machine"])
    flat = pd.json_normalize(rows)
    df = flat.reindex(columns=[*COLUMNS, "file"]).rename(columns=COLUMNS)
    df["machine"] = [machine_id(r["env"]) for r in rows]  # records are kept and compared per machine, as asv does
    df["input_shape"] = df["input_shape"].map(lambda s: "x".join(map(str, s)) if isinstance(s, list) else s)
    df["weights"] = df["weights"].fillna("scratch")  # records from before pretrained weights existed
    return df.sort_values(["task", "arch", "profile", "weights", "machine", "seed", "started_at"]).reset_index(
        drop=True)


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, arch, profile, weights, machine): the latest ok record of each seed, aggregated as mean ± std over
    seeds."""
    keys = ["task", "arch", "profile", "weights", "machine"]  # one row per machine, side by side
    ok = df[df["outcome"] == "ok"].drop_duplicates([*keys, "seed"], keep="last")
    grouped = ok.groupby(keys, sort=True)
    out = grouped.agg(
        seeds=("seed", "nunique"),
        acc_mean=("test_accuracy", "mean"),
        acc_std=("test_accuracy", "std"),
        scratch_mean=("scratch_accuracy", "mean"),
        scratch_std=("scratch_accuracy", "std"),
        miou_mean=("miou", "mean"),
        miou_std=("miou", "std"),
        dataset=("dataset", "first"),
        params=("params", "first"),
        params_trainable=("params_trainable", "first"),
        reference_params=("reference_params", "first"),
        reference_counts=("reference_counts", "first"),
        input_shape=("input_shape", "first"),
        width=("width", "first"),
        n_train=("n_train", "first"),
        train_s=("train_s", "mean"),
        epochs=("epochs", "first"),
        train_img_s=("train_img_s", "median"),
        infer_img_s=("infer_img_s", "median"),
        batch=("batch", "first"),
        ttt_runs=("ttt_reached", "count"),  # runs that evaluated after each epoch (older records did not)
        ttt_hits=("ttt_reached", lambda v: int(sum(bool(x) for x in v.dropna()))),
        ttt_s=("ttt_s", "median"),
        ttt_epoch=("ttt_epoch", "median"),
        mem_predicted=("mem_predicted", "first"),
        mem_measured=("mem_measured", "median"),
        device=("device", "first"),
    )
    out["acc_std"] = out["acc_std"].fillna(0.0)
    out["scratch_std"] = out["scratch_std"].fillna(0.0)
    out["miou_std"] = out["miou_std"].fillna(0.0)
    return out.reset_index()


def _mean_std(mean, std, n) -> str:
    """A percentage as mean ± sample std over seeds; one seed has no spread to show."""
    if pd.isna(mean):
        return ""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if n > 1 else f"{100 * mean:.2f}"


def _time_to_target(runs, hits, seconds, epoch) -> str:
    """Median training seconds (and epoch) to the task's target over the seeds that reached it."""
    if not runs:
        return "—"
    if not hits:
        return "not reached"
    return f"{seconds:.1f} s (epoch {epoch:g})" + (f", {hits} of {runs} seeds" if hits < runs else "")


def _count(value) -> str:
    """A count for display; "—" where the runs did not measure it (e.g. ``--no-measure-throughput``)."""
    return "—" if pd.isna(value) else f"{value:,.0f}"


def _display_summary(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "task": s["task"], "dataset": s["dataset"], "architecture": s["arch"], "profile": s["profile"],
        "weights": s["weights"], "seeds": s["seeds"],
        "test accuracy (%; segmentation: per pixel)": [
            _mean_std(*v) for v in zip(s["acc_mean"], s["acc_std"], s["seeds"], strict=True)],
        "mean IoU (%)": [_mean_std(*v) for v in zip(s["miou_mean"], s["miou_std"], s["seeds"], strict=True)],
        "same net from scratch (%)": [_mean_std(*v) for v in zip(s["scratch_mean"], s["scratch_std"], s["seeds"],
                                                                  strict=True)],
        "input": s["input_shape"], "width": s["width"].fillna(1.0),
        # one convention per row: the run's count of what the reference counts (total or trainable)
        "params (as run)": [f"{(t if c == 'trainable' else n):,.0f}" for n, t, c in zip(
            s["params"], s["params_trainable"], s["reference_counts"], strict=True)],
        "reference params (paper input)": [
            f"{n:,.0f} ({c})" for n, c in zip(s["reference_params"], s["reference_counts"], strict=True)],
        "train images": s["n_train"].map("{:,.0f}".format), "epochs": s["epochs"],
        "train time (s)": s["train_s"].map("{:.1f}".format),
        "time to 99 % (MNIST)": [_time_to_target(*v) for v in zip(s["ttt_runs"], s["ttt_hits"], s["ttt_s"],
                                                                     s["ttt_epoch"], strict=True)],
        "train img/s": s["train_img_s"].map(_count), "infer img/s": s["infer_img_s"].map(_count),
        "batch": s["batch"],
        "train-step memory predicted / measured (MiB)": [
            f"{p / 2**20:,.1f} / " + ("—" if pd.isna(m) else f"{m / 2**20:,.1f} ({100 * (p - m) / m:+.0f} %)")
            for p, m in zip(s["mem_predicted"], s["mem_measured"], strict=True)],
        "machine": s["machine"], "device": s["device"],
    })


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (for README excerpts); cells are plain text."""
    cells = [[str(v).replace("|", "\\|") for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in cells]) + "\n"


def build_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write ``index.html`` (summary + every run) and ``summary.md`` (the summary table) into ``out_dir``."""
    df = records_frame(results_dir)
    summary = _display_summary(summary_frame(df))
    env = jinja2.Environment(loader=jinja2.PackageLoader("cnnbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]))
    runs = df.assign(git_sha=df["git_sha"].str[:10], data_sha256=df["data_sha256"].str[:12]).drop(
        columns="dataset_note")
    notes = df.dropna(subset=["dataset_note"]).drop_duplicates("dataset").set_index("dataset")["dataset_note"]
    page = env.get_template("index.html.j2").render(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        results_dir=str(results_dir),
        n_records=len(df),
        dataset_notes=notes.to_dict(),
        # pandas escapes cell text (escape=True); the tables are then inserted as markup.
        summary_html=jinja2.utils.markupsafe.Markup(
            summary.to_html(index=False, escape=True, classes="summary", border=0)),
        runs_html=jinja2.utils.markupsafe.Markup(
            runs.to_html(index=False, escape=True, classes="runs", border=0, float_format="{:.4g}".format)),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    with atomic_write(path) as f:
        f.write(page)
    with atomic_write(out / "summary.md") as f:
        f.write(markdown_table(summary))
    return path
