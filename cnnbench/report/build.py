"""Result files → a static site: index (a leaderboard per task), a page per architecture, innovations, memory,
throughput, every run, and the figures beside them (SVG). Reads result files and nothing else; works from file://.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from cnnbench._util import atomic_write, check_writable_dir
from cnnbench.ablations import ablation_tables, t975
from cnnbench.cards import read_cards
from cnnbench.records import variant
from cnnbench.report import figures, jax_table
from cnnbench.report.frames import (
    SUMMARY_KEYS,
    backend_comparison,
    failures_frame,
    jax_sweeps,
    latest_ok,
    latest_sweep,
    natural_key,
    records_frame,
    scaling_records,
    summary_frame,
    task_info,
)
from cnnbench.report.innovations import INNOVATIONS
from cnnbench.tasks import SUITE_TASKS, TASKS

MIB = 2**20


#: the site's pages besides the index and the architectures', in its navigation: (file, name, what it shows)
PAGES = (("innovations.html", "innovations", "what each idea is, and its measured effect (ablations)."),
         ("memory.html", "memory", "predicted vs measured peak memory over models, batches and modes."),
         ("throughput.html", "throughput", "images/s, latency and MFU over batch sizes."),
         ("runs.html", "every run", "failures included, each with its JSON record."))


class ReportError(ValueError):
    """The report cannot be made from what it was given (exit 2)."""


# --- formatting: every number shown passes through one of these ----------------------------------------------------

def pct(mean, std=None, n=1) -> str:
    if mean is None or pd.isna(mean):
        return "—"
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if n and n > 1 and std is not None else f"{100 * mean:.2f}"


def count(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{v:,.0f}"


def mib(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{v / MIB:,.1f}"


def rate(v, cov=None) -> str:
    if v is None or pd.isna(v):
        return "—"
    return f"{v:,.0f}" + (f" (±{100 * cov:.1f} %)" if cov is not None and not pd.isna(cov) else "")


def signed_pct(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{100 * v:+.1f} %"


def gmacs(v) -> str:
    return "—" if v is None or pd.isna(v) else (f"{v / 1e9:.3f}" if v >= 1e7 else f"{v / 1e6:.2f} M")


def md_escape(text) -> str:
    """Markdown-safe cell text: characters with meaning in (GitHub) markdown are backslash-escaped."""
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+!|~" else c for c in str(text)).replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table; every cell and header escaped."""
    lines = ["| " + " | ".join(map(md_escape, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(md_escape(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


# --- tables -----------------------------------------------------------------------------------------------------

@dataclass
class Cell:
    text: str
    best: bool = False
    href: str | None = None
    title: str | None = None
    cls: str = ""


@dataclass
class Table:
    heading: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""


def _mark_best(rows: list[list[Cell]], col: int, values: list, better) -> None:
    known = [(v, i) for i, v in enumerate(values) if v is not None and not pd.isna(v)]
    if len(known) > 1:
        best = better(v for v, _ in known)
        for v, i in known:
            rows[i][col].best = v == best


def _time_to_target(r) -> str:
    """Median epoch, images seen and training seconds (the row's machine) to the task's target over the seeds that
    reached it (DAWNBench, MLPerf)."""
    if not r.ttt_runs:
        return "—"
    if not r.ttt_hits:
        return "not reached"
    seen = f"epoch {r.ttt_epoch:g}" + ("" if pd.isna(r.n_train) else f", {count(r.ttt_epoch * r.n_train)} images")
    return (seen if pd.isna(r.ttt_s) else f"{r.ttt_s:.1f} s ({seen})") + (
        f", {r.ttt_hits} of {r.ttt_runs} seeds" if r.ttt_hits < r.ttt_runs else "")


def _missing_macs(summary: pd.DataFrame, task: str) -> str:
    gone = sorted(summary[(summary["task"] == task) & summary["macs"].isna()]["arch"], key=natural_key)
    return f" Not drawn, their records predate FLOP counting: {', '.join(gone)}." if gone else ""


def _innovation(arch: str, cards: dict, fallback) -> str:
    innovations = cards.get(arch, {}).get("model", {}).get("innovations") or fallback or []
    return innovations[0] if innovations else "—"


#: the extra leaderboard columns a task names (``Task.columns``): header (from the task's rows), cell (from a row)
TASK_COLUMNS = {
    "time_to_target": (lambda g: f"time to {pct(g['ttt_target'].dropna().iloc[0])} %" if g["ttt_target"].notna().any()
                       else "time to target",
                       _time_to_target),
    "from_scratch": (lambda g: "from scratch (%)", lambda r: pct(r.scratch_mean, r.scratch_std, r.seeds)),
    "pixel_accuracy": (lambda g: "pixel accuracy (%)", lambda r: pct(r.acc_mean, r.acc_std, r.seeds)),
}


def leaderboards(summary: pd.DataFrame, task: str, cards: dict, changes: pd.DataFrame | None) -> list[Table]:
    """One table per (profile, Keras backend) of ``task``: numbers from different scales or backends never share a
    table. A row pools its seeds over the machines that ran them (flagged); its times and speeds are one machine's,
    named in the row."""
    tables = []
    info = task_info(task)
    score = info.score_label
    tables_of = summary[summary["task"] == task].groupby(["profile", "backend"], sort=True)
    for (profile, backend), g in tables_of:
        g = g.reset_index(drop=True)
        extra = [TASK_COLUMNS[c] for c in info.columns]
        cols = ["architecture", "year", "innovation", "trainable params", "GMACs paper / as run", score + " (n)",
                *(header(g) for header, _ in extra), "train img/s (CoV)", "infer img/s (CoV)",
                "train-step MiB predicted / measured (error)", "input · width · images · epochs · lr · recipe",
                "times and speeds on", "flags",
                *(["vs baseline"] if changes is not None else [])]
        rows = []
        for r in g.itertuples():
            paper = cards.get(r.arch, {}).get("flops", {}).get("macs")
            # five seeds or more: the median too, what an accuracy target over seeds is judged by
            row = [Cell(r.arch + ("" if r.weights == "scratch" else f" ({r.weights})"), href=f"arch/{r.arch}.html"),
                   Cell(count(r.year).replace(",", "")), Cell(_innovation(r.arch, cards, r.innovations), cls="text"),
                   Cell(count(r.params_trainable)), Cell(f"{gmacs(paper)} / {gmacs(r.macs)}"),
                   Cell(f"{pct(r.score_mean, r.score_std, r.seeds)} ({r.seeds})"
                        + (f" · median {pct(r.score_median)}" if r.seeds >= 3 else "")),
                   *(Cell(cell(r)) for _, cell in extra),
                   Cell(rate(r.train_img_s, r.train_cov)), Cell(rate(r.infer_img_s, r.infer_cov)),
                   Cell(f"{mib(r.mem_predicted)}{'' if pd.notna(r.mem_graph) else ' (layer model)'} / "
                        f"{mib(r.mem_measured)} ({signed_pct(r.mem_error)})"),
                   Cell(" · ".join([str(r.input_shape), f"{1 if pd.isna(r.width) else r.width:g}", count(r.n_train),
                                    count(r.epochs), *([f"{r.lr:g}"] if pd.notna(r.lr) else []),
                                    *([r.recipe] if pd.notna(r.recipe) else [])])),
                   Cell(f"{r.machine} ({r.device})", cls="text"),
                   Cell("; ".join(r.flags), cls="flags")]
            if changes is not None:
                row.append(_change_cell(changes, r))
            rows.append(row)
        for column, values, better in (
                ("trainable params", g["params_trainable"], min), ("GMACs paper / as run", g["macs"], min),
                (score + " (n)", g["score_mean"], max), ("train img/s (CoV)", g["train_img_s"], max),
                ("infer img/s (CoV)", g["infer_img_s"], max),
                ("train-step MiB predicted / measured (error)", g["mem_error"].abs(), min)):
            _mark_best(rows, cols.index(column), list(values), better)
        on = "" if backend == "tensorflow" else f" · Keras on {backend}"
        tables.append(Table(f"profile {profile}{on}", cols, rows))
    return tables


# --- baseline ---------------------------------------------------------------------------------------------------

def compare(current: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Per (task, arch, profile, weights, backend) in both: the change and whether it is a regression (score below
    the baseline's mean − 2 std; where both rows' speeds come from one machine, train throughput −10 % or worse,
    measured memory +10 % or more)."""
    keys = SUMMARY_KEYS
    m = current.merge(baseline, on=keys, suffixes=("", "_base"))
    out = m[[*keys, "machine"]].copy()
    out["score_delta"] = m["score_mean"] - m["score_mean_base"]
    same = m["machine"] == m["machine_base"]  # speed and memory are compared on one machine only
    out["throughput_change"] = (m["train_img_s"] / m["train_img_s_base"] - 1).where(same)
    out["memory_change"] = (m["mem_measured"] / m["mem_measured_base"] - 1).where(same)
    out["score_regressed"] = m["score_mean"] < m["score_mean_base"] - 2 * m["score_std_base"]
    out["throughput_regressed"] = out["throughput_change"] <= -0.10
    out["memory_regressed"] = out["memory_change"] >= 0.10
    out["regressed"] = out[["score_regressed", "throughput_regressed", "memory_regressed"]].any(axis=1)
    return out


def _change_cell(changes: pd.DataFrame, r) -> Cell:
    hit = changes[(changes[SUMMARY_KEYS] == [getattr(r, k) for k in SUMMARY_KEYS]).all(axis=1)]
    if hit.empty:
        return Cell("new (not in baseline)")
    c = hit.iloc[0]
    parts = [f"score {100 * c.score_delta:+.2f} pp" + (" ▼" if c.score_regressed else ""),
             f"train img/s {signed_pct(c.throughput_change)}" + (" ▼" if c.throughput_regressed else ""),
             f"memory {signed_pct(c.memory_change)}" + (" ▲" if c.memory_regressed else "")]
    return Cell(", ".join(parts), cls="regressed" if c.regressed else "unchanged")


# --- pages ------------------------------------------------------------------------------------------------------

def _provenance(frames: list[pd.DataFrame], sweeps: list[dict] = ()) -> dict:
    """Code shas, TF/Keras versions, devices and dates of the run records (frames) and sweep records on a page."""
    sweeps = [s for s in sweeps if s]

    def values(column: str, from_sweep, cut=None) -> list[str]:
        found = {str(v)[:cut] for f in frames if column in f for v in f[column].dropna()}
        found |= {str(v)[:cut] for v in map(from_sweep, sweeps) if v}
        return sorted(v for v in found if v)

    dates = values("started_at", lambda s: s.get("started_at"), 10)
    return {"shas": values("git_sha", lambda s: s["env"].get("git", {}).get("sha"), 10),
            "tensorflow": values("tensorflow", lambda s: s["env"].get("tensorflow")),
            "keras": values("keras", lambda s: s["env"].get("keras")),
            "devices": values("device", lambda s: s["env"].get("device", {}).get("name")),
            "dates": f"{dates[0]} – {dates[-1]}" if len(dates) > 1 else (dates[0] if dates else "—")}


def _sweep_rows(sweep: dict | None) -> pd.DataFrame:
    return pd.DataFrame(sweep["rows"]) if sweep and sweep.get("rows") else pd.DataFrame()


def _frame_table(heading: str, df: pd.DataFrame, note: str = "", text: tuple[str, ...] = ()) -> Table:
    """``text``: columns of prose (left-aligned, wrapping); the others are figures, kept on one line."""
    cls = ["text" if c in text else "" for c in df.columns]
    return Table(heading, list(df.columns), [[Cell(str(v), cls=k) for v, k in zip(row, cls, strict=True)]
                                             for row in df.itertuples(index=False)], note)


def _memory_table(rows: pd.DataFrame) -> pd.DataFrame:
    name = rows["arch"].fillna(rows.get("model_file", pd.Series(index=rows.index, dtype=object)))
    return pd.DataFrame({
        "model": name, "input": rows["input_shape"].map(lambda s: "x".join(map(str, s))), "mode": rows["mode"],
        "batch": rows["batch_size"], "predicted MiB": rows["predicted_bytes"].map(mib),
        "measured MiB": rows["measured_peak_bytes"].map(mib),
        "error": ((rows["predicted_bytes"] - rows["measured_peak_bytes"]) / rows["measured_peak_bytes"]).map(
            signed_pct),
        "bare minimum MiB (Géron)": rows["bare_minimum_bytes"].map(mib)}
        | ({"traced graph MiB (error)": [  # the graph predictor, in sweeps that ran it
            "—" if pd.isna(g) else f"{mib(g)} ({signed_pct(e)})"
            for g, e in zip(rows["graph_predicted_bytes"], rows["graph_relative_error"], strict=True)]}
           if "graph_predicted_bytes" in rows else {})
        | ({"network drawn": rows["generator"].map(lambda d: " · ".join(d["blocks"]) if isinstance(d, dict) else "—")}
           if "generator" in rows and rows["generator"].notna().any() else {}))


def _throughput_table(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": rows["arch"], "input": rows["input_shape"].map(lambda s: "x".join(map(str, s))),
        "variant": [variant(r).strip() or "float32" for r in rows.to_dict("records")],
        "mode": rows["mode"], "batch": rows["batch_size"],
        "images/s (CoV)": [rate(v, c) for v, c in zip(rows["images_per_s"], rows["cov"], strict=True)],
        "latency p50 / p90 (ms)": [f"{a:,.2f} / {b:,.2f}" for a, b in zip(rows["latency_ms_p50"],
                                                                            rows["latency_ms_p90"], strict=True)],
        "GMACs/image": rows["macs_per_image"].map(gmacs), "MFU": rows["mfu"].map(lambda v: f"{100 * v:.1f} %"),
        "harness overhead": rows.get("harness_overhead", pd.Series(index=rows.index, dtype=float)).map(signed_pct)})


#: the backends in the order the comparison shows them
BACKENDS = ("tensorflow", "jax", "torch")


def _welch_cell(ref: pd.Series, other: pd.Series) -> str:
    """``other``'s mean minus ``ref``'s in percentage points, with Welch's 95 % interval (unequal variances; the
    t quantile at the Welch-Satterthwaite degrees of freedom, rounded down)."""
    if min(len(ref), len(other)) < 2:
        return "—"
    va, vb = ref.var(ddof=1) / len(ref), other.var(ddof=1) / len(other)
    diff = other.mean() - ref.mean()
    dof = (va + vb) ** 2 / (va**2 / (len(ref) - 1) + vb**2 / (len(other) - 1)) if va + vb else 1
    half = t975(max(1, int(dof))) * np.sqrt(va + vb)
    return f"{100 * diff:+.2f} [{100 * (diff - half):+.2f}, {100 * (diff + half):+.2f}]"


def _backend_table(results_dir: Path) -> Table | None:
    """The same models on each Keras backend, from results/backends/: train and inference images/s from each
    backend's latest throughput sweep, and the same smoke cell's test accuracy over seeds (mean ± std (n))."""
    sweeps, cells = backend_comparison(results_dir)
    if not sweeps:
        return None
    order = [b for b in BACKENDS if b in sweeps] + sorted(set(sweeps) - set(BACKENDS))
    rate_of = {(b, r["arch"], r["mode"]): r for b in order for r in sweeps[b][1]["rows"] if r.get("images_per_s")}
    ok = latest_ok(cells)
    accuracy = ok.groupby(["arch", "backend"])["test_accuracy"].agg(["mean", "std", "count"])
    seeds = ok.groupby(["arch", "backend"])["test_accuracy"]
    archs = sorted({arch for _, arch, _ in rate_of}, key=natural_key)
    rows = []
    for arch in archs:
        row = {"model": arch}
        for b in order:
            for mode in ("train", "infer"):
                r = rate_of.get((b, arch, mode))
                row[f"{b} {mode} img/s"] = rate(r["images_per_s"], r["cov"]) if r else "—"
        for b in order:
            a = accuracy.loc[(arch, b)] if (arch, b) in accuracy.index else None
            row[f"{b} test accuracy % (n)"] = "—" if a is None else (
                f"{pct(a['mean'], a['std'], int(a['count']))} ({int(a['count'])})")
        for b in order[1:]:
            pair = [seeds.get_group((arch, x)) if (arch, x) in accuracy.index else None for x in (order[0], b)]
            row[f"{b} − {order[0]} (pp, 95 % CI)"] = "—" if any(p is None for p in pair) else _welch_cell(*pair)
        rows.append(row)
    batch = {r["batch_size"] for b in order for r in sweeps[b][1]["rows"]}
    devices = {sweeps[b][1]["env"]["device"]["name"] for b in order}
    note = (f"Batch {', '.join(map(str, sorted(batch)))}, each model at the cpu profile's input and width, on "
            f"{', '.join(sorted(devices))}; each backend's sweep ran alone on the machine. Accuracy: the smoke cell "
            f"(test accuracy on 512 MNIST test images) over seeds; each backend draws its own random numbers, so its "
            f"seeds are independent of another's, and the difference of means has Welch's 95 % interval: one that "
            f"holds 0 is a difference within the seeds' spread. "
            f"From {', '.join(f for f, _ in sweeps.values())}.")
    return _frame_table("The same models on each Keras backend", pd.DataFrame(rows), note)


def _scaling_table(record: dict) -> pd.DataFrame:
    replicas = record["distribution"]["replicas"]
    return pd.DataFrame([{
        "batch per replica": r["batch_size"], "global batch": r.get("global_batch_size", r["batch_size"]),
        f"{replicas} replicas img/s": rate(r.get("images_per_s"), r.get("cov")),
        "per replica": rate(r.get("images_per_s_per_replica")),
        "1 replica alone": rate(r.get("one_replica_images_per_s")),
        "scaling efficiency": "—" if r.get("scaling_efficiency") is None else f"{100 * r['scaling_efficiency']:.0f} %",
    } for r in record["rows"] if "error" not in r])


def _runs_table(df: pd.DataFrame) -> Table:
    rows = []
    for r in df.sort_values(["task", "arch", "profile", "seed", "started_at"]).itertuples():
        ok = r.outcome == "ok"
        rows.append([
            Cell(r.task), Cell(r.arch + ("" if pd.isna(r.variant) else f" · {r.ablation}: {r.variant}"),
                               href=f"arch/{r.arch}.html"), Cell(r.profile), Cell(count(r.seed)),
            Cell(r.outcome + (" · superseded" if r.superseded else ""),
                 cls="superseded" if r.superseded else "" if ok else "failed",
                 title="another code version or other settings ran this cell later: not on the leaderboard"
                 if r.superseded else None if ok else r.error),
            Cell(pct(r.score) if ok else f"{r.error_type}: {r.error}"[:300], cls="" if ok else "message"),
            Cell(pct(r.train_accuracy)), Cell(count(r.params_trainable)), Cell(str(r.input_shape)),
            Cell(count(r.n_train)), Cell(count(r.epochs)), Cell("—" if pd.isna(r.train_s) else f"{r.train_s:,.1f}"),
            Cell(rate(r.train_img_s)), Cell(rate(r.infer_img_s)),
            Cell(f"{mib(r.mem_predicted)} / {mib(r.mem_measured)}"), Cell(str(r.device), cls="text"),
            Cell(r.machine, cls="text"),
            Cell(str(r.git_sha)[:10]), Cell(str(r.data_sha256)[:12]), Cell(str(r.started_at)[:16].replace("T", " ")),
            Cell("JSON", href=f"records/{r.file}")])
    return Table("Every run", ["task", "architecture", "profile", "seed", "outcome", "score (%) or error",
                               "train acc. (%)", "trainable params", "input", "train images", "epochs", "train s",
                               "train img/s", "infer img/s", "MiB predicted / measured", "device", "machine",
                               "code", "data sha256", "started (UTC)", "record"], rows)


@dataclass
class Site:
    out: Path
    env: jinja2.Environment
    written: list[Path] = field(default_factory=list)

    def page(self, name: str, template: str, **context) -> Path:
        depth = name.count("/")
        html = self.env.get_template(template).render(root="../" * depth, **context)
        return self.write(name, html)

    def write(self, name: str, text: str) -> Path:
        path = self.out / name
        with atomic_write(path) as f:
            f.write(text)
        path.chmod(0o644)  # world-readable, as a web server needs
        self.written.append(path)
        return path


def _segmentation_samples(df: pd.DataFrame, task: str, fig_dir: Path) -> list[tuple[str | None, str]]:
    ok = latest_ok(df[df["task"] == task])
    samples = {}
    for arch, g in ok.groupby("arch"):
        rec = g.iloc[-1]["record"]
        if rec["metrics"].get("samples"):
            samples[arch] = rec["metrics"]["samples"]
    name = figures.segmentation_samples(dict(sorted(samples.items(), key=lambda kv: natural_key(kv[0]))), fig_dir)
    return [(f"figures/{name}", "The first test canvases, their true masks and each FCN's prediction (its latest "
                                "record).") if name else
            (None, "No sample masks: these segmentation records predate recording them.")]


def _transfer_confusions(df: pd.DataFrame, task: str, fig_dir: Path) -> list[tuple[str, str]]:
    out = []
    ok = latest_ok(df[df["task"] == task])
    for (arch, profile, weights), g in ok.groupby(["arch", "profile", "weights"]):
        recs = list(g["record"])
        cms = [np.asarray(r["metrics"]["confusion_matrix"]) for r in recs if r["metrics"].get("confusion_matrix")]
        if not cms:
            continue
        classes = recs[0]["dataset"].get("classes") or [str(i) for i in range(len(cms[0]))]
        name = figures.confusion(sum(cms), classes, f"{arch} ({weights}, {profile}): summed over {len(cms)} seeds",
                                 fig_dir, f"{task}-confusion-{arch}-{profile}-{weights}.svg")
        out.append((f"figures/{name}", f"Confusion matrix of {arch}, {weights} weights, {profile} profile, test "
                                       f"predictions summed over {len(cms)} seed(s); each row is normalised to its "
                                       "true class."))
    return out


def _summary_figure(draw, caption: str):
    """A figure of the summary frame, its caption, for ``TASK_FIGURES``."""
    def make(df, summary, task, fig_dir):
        name = draw(summary, task, fig_dir)
        return [(f"figures/{name}", caption)] if name else []

    return make


#: the figures a task names (``Task.figures``), after the common ones: (records, summary, task, figure folder) →
#: [(path or None, caption)]
TASK_FIGURES = {
    "pretrained_vs_scratch": _summary_figure(figures.pretrained_vs_scratch, "Pretrained and fine-tuned vs the same "
                                             "network trained from scratch on the same images, mean ± std over seeds."),
    "transfer_confusions": lambda df, summary, task, fig_dir: _transfer_confusions(df, task, fig_dir),
    "fcn_heads": _summary_figure(figures.fcn_heads, "Mean IoU per FCN (head and backbone), mean ± std over seeds."),
    "segmentation_samples": lambda df, summary, task, fig_dir: _segmentation_samples(df, task, fig_dir),
}


@dataclass
class Inputs:
    """Everything the site is made from: the run records, their summary, the sweeps and the cards."""

    results_dir: Path
    df: pd.DataFrame
    summary: pd.DataFrame
    changes: pd.DataFrame | None
    sweeps: dict[str, tuple[dict | None, str | None]]
    jax: list[tuple[str, dict]]
    scaling: list[tuple[str, dict]]
    cards: dict

    @functools.cached_property
    def colours(self) -> dict:
        """One colour per architecture in every figure: the registry's (its cards) and any a record names."""
        return figures.arch_colours([*self.cards, *self.df.get("arch", [])])


def _read(results_dir: Path, baseline_dir) -> Inputs:
    if not results_dir.is_dir():
        raise ReportError(f"results folder {results_dir} does not exist (run `cnnbench run` or a suite first)")
    df = records_frame(results_dir)
    sweeps = {"memory": latest_sweep(results_dir, "memory_sweep"),
              "exercise": latest_sweep(results_dir, "memory_sweep", lambda row: row.get("arch") == "exercise"),
              "generated": latest_sweep(results_dir, "memory_sweep", lambda row: "generator" in row),
              "throughput": latest_sweep(results_dir, "throughput_sweep")}
    found = Inputs(results_dir, df, summary_frame(df), None, sweeps, jax_sweeps(results_dir),
                   scaling_records(results_dir), read_cards(results_dir))
    if df.empty and not (any(s for s, _ in sweeps.values()) or found.jax or found.scaling or found.cards):
        raise ReportError(f"no result records in {results_dir} (nothing to report)")
    if baseline_dir is not None:
        if not Path(baseline_dir).is_dir():
            raise ReportError(f"baseline folder {baseline_dir} does not exist")
        baseline = summary_frame(records_frame(baseline_dir))
        if baseline.empty or found.summary.empty:
            empty = baseline_dir if baseline.empty else results_dir
            raise ReportError(f"nothing to compare: no run records in {empty}")
        found.changes = compare(found.summary, baseline)
    return found


def build_report(results_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 baseline_dir: str | os.PathLike | None = None) -> Path:
    """Write the site into ``out_dir``; returns the path of its ``index.html``."""
    results_dir, out = Path(results_dir), Path(out_dir)
    inputs = _read(results_dir, baseline_dir)
    try:
        check_writable_dir(out)
    except OSError as e:
        raise ReportError(f"cannot write the report to {out}: {e.strerror or e}") from None
    env = jinja2.Environment(loader=jinja2.PackageLoader("cnnbench.report", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    site = Site(out, env)
    fig_dir = out / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)  # figures of records no longer present must not linger
    site.write("style.css", (Path(__file__).parent / "templates" / "style.css").read_text())
    # asv's own site (`asv publish`, html_dir reports/asv) from the asv results beside the records, when both exist
    asv = (results_dir / "asv").is_dir() and (out / "asv" / "index.html").is_file()
    common = {"generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "results_dir": str(results_dir),
              "asv": asv, "pages": PAGES}
    _copy_records(site, inputs)
    _index_page(site, inputs, fig_dir, common, baseline_dir)
    _arch_pages(site, inputs, common)
    _innovations_page(site, inputs, common)
    _memory_page(site, inputs, fig_dir, common)
    _throughput_page(site, inputs, fig_dir, common)
    failures = failures_frame(inputs.df)
    site.page("runs.html", "runs.html.j2", title="Every run", runs=_runs_table(inputs.df), n_failed=len(failures),
              failed_by_outcome=failures["outcome"].value_counts().to_dict(),
              n_superseded=int(inputs.df["superseded"].sum()), provenance=_provenance([inputs.df]), **common)
    # the README's excerpt: the same aggregation, as markdown; the GPU sweeps through JAX, each part from its latest run
    site.write("summary.md", markdown_table(_summary_markdown(inputs.summary)))
    if inputs.jax:
        site.write("jax.md", jax_table.table(jax_table.merge([record for _, record in inputs.jax])))
    _check_links(out, site.written)
    return out / "index.html"


def _copy_records(site: Site, inputs: Inputs) -> None:
    """Records travel with the site, so every "JSON" link works on any static host."""
    rec_dir = site.out / "records"
    if rec_dir.exists():
        shutil.rmtree(rec_dir)
    sweep_files = {f for _, f in inputs.sweeps.values() if f} | {f for f, _ in [*inputs.jax, *inputs.scaling]}
    for f in [*inputs.df["file"], *sorted(sweep_files), *(c["file"] for c in inputs.cards.values())]:
        site.write(f"records/{f}", (inputs.results_dir / f).read_text())


def _index_page(site: Site, inputs: Inputs, fig_dir: Path, common: dict, baseline_dir) -> None:
    """A leaderboard and figures per task."""
    df, summary, changes, colours = inputs.df, inputs.summary, inputs.changes, inputs.colours
    tasks = []
    present = set(summary["task"])
    for task in [t for t in dict.fromkeys((*SUITE_TASKS, *TASKS)) if t in present] + sorted(present - set(TASKS)):
        info = task_info(task)
        figs = []
        for name, caption in (
                (figures.score_vs_cost(summary, task, info.score_label, fig_dir, x="gmacs", colours=colours),
                 "Score against GMACs as run (log), points sized by parameters (Canziani et al. 2016 style), one "
                 "colour per architecture in every figure; bars: ±1 std over seeds. Profiles differ in input and "
                 "width: labels name the profile where a task has several."
                 + _missing_macs(summary, task)),
                (figures.score_vs_cost(summary, task, info.score_label, fig_dir, x="params", colours=colours),
                 "Score against trainable parameters as run (log)."),
                (figures.training_curves(df, task, fig_dir, colours),
                 "Training loss per epoch: mean over seeds with a ±1 std band.")):
            if name:
                figs.append((f"figures/{name}", caption))
        for figure in info.figures:
            figs += TASK_FIGURES[figure](df, summary, task, fig_dir)
        t = summary[summary["task"] == task]
        tasks.append({"name": task, "title": info.title or task,
                      "tables": leaderboards(summary, task, inputs.cards, changes),
                      "figures": figs, "reduced": sorted(set(t["profile"]) - {"gpu"}),
                      "datasets": df[df["task"] == task].dropna(subset=["dataset_note"]).drop_duplicates(
                          "dataset")[["dataset", "dataset_note"]].values.tolist()})
    site.page("index.html", "index.html.j2", title="cnnbench", tasks=tasks, archs=_archs(inputs),
              n_records=len(df), n_failed=len(failures_frame(df)), cards=bool(inputs.cards), changes=changes,
              provenance=_provenance([df]), **common, baseline=str(baseline_dir) if baseline_dir else None,
              regressions=[] if changes is None else changes[changes["regressed"]].to_dict("records"))


def _archs(inputs: Inputs) -> list[str]:
    """Every architecture with a card or a record."""
    return sorted(set(inputs.df["arch"]) | set(inputs.cards), key=natural_key)


def _arch_pages(site: Site, inputs: Inputs, common: dict) -> None:
    for arch in _archs(inputs):
        runs = inputs.df[inputs.df["arch"] == arch]
        card = inputs.cards.get(arch)
        layers = None
        if card:
            layers = Table("Layers at the paper input", ["#", "layer", "type", "output shape", "params", "MACs"], [
                [Cell(str(i + 1)), Cell(r["layer"], cls="text"), Cell(r["type"], cls="text"),
                 Cell(", ".join("x".join(map(str, s)) for s in r["output_shape"])), Cell(count(r["params"])),
                 Cell(count(r["macs"]))] for i, r in enumerate(card["layers"])])
        model = card["model"] if card else runs.iloc[-1]["record"]["model"]
        site.page(f"arch/{arch}.html", "arch.html.j2", title=arch, arch=arch, model=model, card=card, layers=layers,
                  runs=_runs_table(runs) if len(runs) else None, provenance=_provenance([runs]), **common,
                  counted=None if not card else {"params": card["params"], "macs": gmacs(card["flops"]["macs"]),
                                                  "input": "x".join(map(str, card["input_shape"]))})


def _innovations_page(site: Site, inputs: Inputs, common: dict) -> None:
    cards = inputs.cards
    intro = {i.key: sorted((a for a, c in cards.items() if any(i.matches(x) for x in c["model"]["innovations"])),
                           key=natural_key) for i in INNOVATIONS}
    site.page("innovations.html", "innovations.html.j2", title="Innovations", innovations=INNOVATIONS,
              introduced_by=intro, ablations=ablation_tables(inputs.df["record"]), provenance=_provenance([inputs.df]),
              **common)


def _rows_where(sweep: dict | None, keep) -> pd.DataFrame:
    rows = _sweep_rows(sweep)
    return rows[keep(rows)] if len(rows) else rows


def _memory_page(site: Site, inputs: Inputs, fig_dir: Path, common: dict) -> None:
    (mem_sweep, mem_file), (ex_sweep, ex_file) = inputs.sweeps["memory"], inputs.sweeps["exercise"]
    gen_sweep, gen_file = inputs.sweeps["generated"]
    mem_rows = _rows_where(mem_sweep, lambda r: r["arch"] != "exercise")
    ex_rows = _rows_where(ex_sweep, lambda r: r["arch"] == "exercise")
    gen_rows = pd.DataFrame([r for r in (gen_sweep or {}).get("rows", []) if "generator" in r])
    mem_figs = [(f"figures/{n}", c) for n, c in (
        (figures.memory_vs_batch(mem_rows, fig_dir, inputs.colours) if len(mem_rows) else None,
         "Peak memory per step against batch size: the prediction (the traced graph's, where the sweep ran it) as "
         "lines, the measured peak (TF allocator) as points."),
        (figures.predicted_vs_measured(mem_rows, fig_dir) if len(mem_rows) else None,
         "Registry: each predictor against the measured peak, log-log, with y = x and a ±10 % band."),
        (figures.predicted_vs_measured(gen_rows, fig_dir, "memory-generated-predicted-vs-measured.svg",
                                       "generated networks: predicted vs measured") if len(gen_rows) else None,
         "Generated networks (never in the registry): each predictor against the measured peak.")) if n]
    gpu = []
    for file, sweep in inputs.jax:
        rows = pd.DataFrame([r for r in sweep.get("rows", []) if r.get("outcome") == "ok"])
        if rows.empty:
            continue
        rows = rows.rename(columns={"peak_bytes": "measured_peak_bytes"})
        rows["arch"] = rows["arch"] + " · " + rows["precision"]
        name = figures.predicted_vs_measured(rows, fig_dir, f"memory-gpu-{Path(file).stem}.svg",
                                             f"{sweep['env']['device']['name']}: predicted vs XLA peak")
        gpu.append({"file": file, "device": sweep["env"]["device"], "summary": sweep.get("summary", {}),
                    "figure": f"figures/{name}" if name else None,
                    "table": _frame_table("", _memory_table(rows)),
                    "oom": sweep.get("oom"), "budget": sweep.get("budget"), "context": sweep.get("context")})
    site.page("memory.html", "memory.html.j2", title="Memory", sweep=mem_sweep, file=mem_file, figures=mem_figs,
              cases=_frame_table("Every case", _memory_table(mem_rows)) if len(mem_rows) else None, gpu=gpu,
              exercise=_frame_table("", _memory_table(ex_rows), f"From {ex_file} ({ex_sweep['env']['device']['name']})."
                                    ) if len(ex_rows) else None,
              exercise_file=ex_file,
              generated=_frame_table("", _memory_table(gen_rows), text=("network drawn",)) if len(gen_rows) else None,
              generated_sweep=gen_sweep, generated_file=gen_file,
              provenance=_provenance([], [mem_sweep, ex_sweep, gen_sweep, *[s for _, s in inputs.jax]]), **common)


def _throughput_page(site: Site, inputs: Inputs, fig_dir: Path, common: dict) -> None:
    tp_sweep, tp_file = inputs.sweeps["throughput"]
    tp_rows = _sweep_rows(tp_sweep)
    tp_fig = figures.throughput_vs_batch(tp_rows, fig_dir, inputs.colours) if len(tp_rows) else None
    gpu_tp = [{"file": file, "device": s["env"]["device"], "table": _frame_table("", pd.DataFrame([{
        "model": r["arch"], "precision": r["precision"], "batch": r["batch_size"],
        "ours img/s": rate(r.get("images_per_s"), r.get("cov")),
        "keras.applications img/s": rate(r.get("keras_images_per_s"), r.get("keras_cov")),
        "MFU": "—" if r.get("mfu") is None else f"{100 * r['mfu']:.1f} %"} for r in s["throughput"]
        if r.get("outcome") == "ok"]))} for file, s in inputs.jax if s.get("throughput")]
    parity = tp_sweep.get("parity") if tp_sweep else None
    site.page("throughput.html", "throughput.html.j2", title="Throughput", sweep=tp_sweep, file=tp_file,
              tp_figure=f"figures/{tp_fig}" if tp_fig else None,
              cases=_frame_table("Every case", _throughput_table(tp_rows)) if len(tp_rows) else None, gpu=gpu_tp,
              parity=_frame_table("Parity with keras.applications", pd.DataFrame([{
                  "model": p["arch"], "mode": p["mode"], "batch": p["batch_size"],
                  "ours img/s": rate(p["images_per_s"], p["cov"]),
                  "keras img/s": rate(p["keras_images_per_s"], p["keras_cov"]),
                  "ratio": f"{p['keras_ratio']:.3f}"} for p in parity])) if parity else None,
              scaling=[{"file": f, "record": s, "table": _frame_table("", _scaling_table(s))}
                       for f, s in inputs.scaling], backends=_backend_table(inputs.results_dir),
              provenance=_provenance([], [tp_sweep, *[s for _, s in [*inputs.jax, *inputs.scaling]]]), **common)


def _summary_markdown(s: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "task": s["task"], "architecture": s["arch"], "profile": s["profile"], "weights": s["weights"],
        "seeds": s["seeds"],
        "score (%)": [pct(m, sd, n) for m, sd, n in zip(s["score_mean"], s["score_std"], s["seeds"], strict=True)],
        "input": s["input_shape"], "train images": s["n_train"].map(count), "epochs": s["epochs"],
        "train img/s": s["train_img_s"].map(count), "machine": s["machine"]}) if len(s) else pd.DataFrame(
        columns=["task", "architecture"])


def _check_links(out: Path, written: list[Path]) -> None:
    """Every relative link and image of every page points at a file the site has (a broken one is a bug here)."""
    import re

    for page in (p for p in written if p.suffix == ".html"):
        for target in re.findall(r'(?:href|src)="([^"#:]+)(?:#[^"]*)?"', page.read_text()):
            if not (page.parent / target).resolve().is_file():
                raise AssertionError(f"{page.relative_to(out)} links to missing {target}")
