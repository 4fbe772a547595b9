"""Figures: a frame of records in, an SVG file out (seaborn on matplotlib's file-only Agg backend).

Each function returns the file name it wrote under ``out`` or None when its records hold nothing to draw, so a page
shows only figures that have data. SVGs carry no creation date, so re-rendering unchanged records changes no file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
plt.rcParams.update({"svg.hashsalt": "cnnbench", "svg.fonttype": "none"})
MIB = 2**20


def _save(fig, out: Path, name: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / name, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    (out / name).chmod(0o644)
    return name


def arch_colours(archs) -> dict[str, tuple]:
    """One colour per architecture for every figure of a report: the names in sorted order, the strong half of
    tab20 first, then its light half, then Dark2 and Set1 (36 colours; more names reuse them)."""
    tab20 = sns.color_palette("tab20", 20)
    colours = tab20[0::2] + tab20[1::2] + sns.color_palette("Dark2", 8) + sns.color_palette("Set1", 8)
    return {arch: colours[i % len(colours)] for i, arch in enumerate(sorted(set(archs)))}


def _palette(colours: dict, names) -> dict:
    """``colours`` for every name a figure draws (grey for a name it lacks: seaborn wants each)."""
    return {n: colours.get(n, (0.5, 0.5, 0.5)) for n in set(names)}


def score_vs_cost(summary: pd.DataFrame, task: str, score_label: str, out: Path, *, x: str,
                  colours: dict) -> str | None:
    """Accuracy against GMACs as run (points sized by parameters; Canziani et al. 2016) or against parameters; each
    point in its architecture's colour and labelled with its name."""
    s = summary[(summary["task"] == task) & summary["score_mean"].notna()].copy()
    s["GMACs as run"] = s["macs"] / 1e9
    s["parameters (M)"] = s["params_trainable"] / 1e6
    column = "GMACs as run" if x == "gmacs" else "parameters (M)"
    s = s[s[column].notna() & (s[column] > 0)]
    if s.empty:
        return None
    s["score"] = 100 * s["score_mean"]
    s["label"] = s["arch"] + np.where(s["weights"] != "scratch", " (" + s["weights"] + ")", "")
    for key in ("profile", "machine"):  # rows of different profiles or machines are told apart, never mixed silently
        if s[key].nunique() > 1:
            s["label"] += " · " + s[key].astype(str)
    fig, ax = plt.subplots(figsize=(8, 5))
    sizes = (s["parameters (M)"] / s["parameters (M)"].max()).clip(0.02) * 400 if x == "gmacs" else 60
    ax.scatter(s[column], s["score"], s=sizes, c=s["arch"].map(_palette(colours, s["arch"])).tolist(), alpha=0.75,
               edgecolors="white", linewidths=0.5, zorder=2)
    ax.errorbar(s[column], s["score"], yerr=100 * s["score_std"].fillna(0), fmt="none", ecolor="0.5", lw=0.8,
                zorder=1)
    for x_, y_, label in zip(s[column], s["score"], s["label"], strict=True):
        ax.annotate(label, (x_, y_), xytext=(5, 3), textcoords="offset points", fontsize=6.5, color="0.15")
    ax.set_xscale("log")
    ax.set(xlabel=column + " (log)", ylabel=score_label, title=f"{task}: score vs {column}")
    return _save(fig, out, f"{task}-score-vs-{x}.svg")


def training_curves(runs: pd.DataFrame, task: str, out: Path, colours: dict) -> str | None:
    """Training loss per epoch, mean over seeds with a ±1 std band, one line per architecture."""
    rows = [(r.arch, r.profile, e + 1, loss) for r in runs[(runs["task"] == task) & (runs["outcome"] == "ok")]
            .itertuples() if isinstance(r.train_loss_curve, list) for e, loss in enumerate(r.train_loss_curve)]
    if not rows:
        return None
    d = pd.DataFrame(rows, columns=["arch", "profile", "epoch", "training loss"])
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    sns.lineplot(data=d, x="epoch", y="training loss", hue="arch", style="profile", errorbar="sd", ax=ax,
                 palette=_palette(colours, d["arch"]))
    ax.set(yscale="log", title=f"{task}: training loss per epoch (mean ± std over seeds)")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7, frameon=False)
    return _save(fig, out, f"{task}-training-curves.svg")


def confusion(cm: np.ndarray, classes: list[str], title: str, out: Path, name: str) -> str:
    """A confusion matrix (rows true, columns predicted), each row normalised to the share of its class."""
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    sns.heatmap(100 * share, annot=cm.shape[0] <= 12, fmt=".0f", cmap="Blues", cbar_kws={"label": "% of true class"},
                xticklabels=classes, yticklabels=classes, ax=ax, annot_kws={"fontsize": 7})
    ax.set(xlabel="predicted", ylabel="true", title=title)
    ax.tick_params(labelsize=7)
    return _save(fig, out, name)


def pretrained_vs_scratch(summary: pd.DataFrame, task: str, out: Path) -> str | None:
    s = summary[(summary["task"] == task) & summary["scratch_mean"].notna()]
    if s.empty:
        return None
    d = pd.concat([pd.DataFrame({"arch": s["arch"] + " (" + s["profile"] + ")", "weights": w, "accuracy": 100 * m,
                                 "std": 100 * sd})
                   for w, m, sd in ((s["weights"].iloc[0] + " weights, fine-tuned", s["acc_mean"], s["acc_std"]),
                                    ("same network from scratch", s["scratch_mean"], s["scratch_std"]))])
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    sns.barplot(data=d, x="arch", y="accuracy", hue="weights", ax=ax)
    for bar, sd in zip(ax.patches, d["std"], strict=False):
        ax.errorbar(bar.get_x() + bar.get_width() / 2, bar.get_height(), yerr=sd, color="0.2", lw=1)
    ax.set(xlabel="", ylabel="test accuracy (%)", title="transfer: pretrained vs from scratch (mean ± std)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, out, "transfer-pretrained-vs-scratch.svg")


def fcn_heads(summary: pd.DataFrame, task: str, out: Path) -> str | None:
    """Mean IoU of each FCN (FCN-32s / 16s / 8s heads, backbones) with ±1 std over seeds."""
    s = summary[(summary["task"] == task) & summary["miou_mean"].notna()]
    if s.empty:
        return None
    d = s.assign(miou=100 * s["miou_mean"], std=100 * s["miou_std"], label=s["arch"] + " (" + s["profile"] + ")")
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    sns.barplot(data=d, y="label", x="miou", color="#4c72b0", ax=ax)
    ax.errorbar(d["miou"], range(len(d)), xerr=d["std"], fmt="none", color="0.2", lw=1)
    ax.set(ylabel="", xlabel="mean IoU (%)", title="segmentation: FCN heads and backbones (mean ± std)")
    return _save(fig, out, "segmentation-fcn-miou.svg")


def _decode(rows: list[str]) -> np.ndarray:
    return np.array([[int(c, 36) for c in row] for row in rows])


def segmentation_samples(samples: dict[str, list[dict]], out: Path) -> str | None:
    """Input, true mask and each FCN's predicted mask for the first test canvases (from each arch's latest record)."""
    if not samples:
        return None
    first = next(iter(samples.values()))
    n, cols = len(first), 2 + len(samples)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.7 * n), squeeze=False)
    cmap = matplotlib.colormaps["tab20"].resampled(11)
    for i in range(n):
        panels = [("input", _decode(first[i]["input"]), "gray", None),
                  ("truth", _decode(first[i]["truth"]), cmap, (0, 10))]
        panels += [(arch, _decode(s[i]["predicted"]), cmap, (0, 10)) for arch, s in samples.items() if len(s) > i]
        for ax, (title, image, colours, limits) in zip(axes[i], panels, strict=False):
            ax.imshow(image, cmap=colours, interpolation="nearest", **(dict(vmin=limits[0], vmax=limits[1])
                                                                         if limits else {}))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=7)
    fig.suptitle("segmentation: test canvases, true masks and predictions (colour = digit class)", fontsize=9)
    return _save(fig, out, "segmentation-samples.svg")


def throughput_vs_batch(rows: pd.DataFrame, out: Path, colours: dict) -> str | None:
    if rows.empty:
        return None
    g = sns.relplot(data=rows, x="batch_size", y="images_per_s", hue="arch", col="mode", kind="line", marker="o",
                    height=3.6, aspect=1.1, facet_kws={"sharey": False}, palette=_palette(colours, rows["arch"]))
    g.set(xscale="log", yscale="log", xlabel="batch size", ylabel="images/s (median)")
    g.figure.suptitle("throughput vs batch size", y=1.03)
    return _save(g.figure, out, "throughput-vs-batch.svg")


def _predicted_mib(rows: pd.DataFrame) -> pd.Series:
    """The better prediction a sweep row has: the traced graph's where it ran, else the layer model's."""
    graph = rows["graph_predicted_bytes"] if "graph_predicted_bytes" in rows else pd.Series(np.nan, index=rows.index)
    return graph.fillna(rows["predicted_bytes"]) / MIB


def memory_vs_batch(rows: pd.DataFrame, out: Path, colours: dict) -> str | None:
    """Predicted (lines: the traced graph where the sweep ran it) and measured (points) peak memory against batch
    size, per mode."""
    d = rows.assign(predicted=_predicted_mib(rows), measured=rows["measured_peak_bytes"] / MIB)
    if d.empty:
        return None
    modes = sorted(d["mode"].unique(), reverse=True)
    fig, axes = plt.subplots(1, len(modes), figsize=(5.2 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        m = d[d["mode"] == mode]
        palette = _palette(colours, m["arch"])
        sns.lineplot(data=m, x="batch_size", y="predicted", hue="arch", ax=ax, legend=False, lw=1, palette=palette)
        sns.scatterplot(data=m, x="batch_size", y="measured", hue="arch", ax=ax, legend=mode == modes[-1], s=25,
                        palette=palette)
        ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="MiB", title=f"{mode}: predicted (lines), "
               "measured (points)")
    axes[0][-1].legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=7, frameon=False)
    return _save(fig, out, "memory-vs-batch.svg")


def predicted_vs_measured(rows: pd.DataFrame, out: Path, name: str = "memory-predicted-vs-measured.svg",
                          title: str = "memory: predicted vs measured peak") -> str | None:
    """Each case's prediction against its measured peak, log-log; both predictors (colour) where the sweep ran the
    traced graph, the mode as the marker."""
    d = rows.dropna(subset=["measured_peak_bytes"])
    if d.empty:
        return None
    both = "graph_predicted_bytes" in d and d["graph_predicted_bytes"].notna().any()
    parts = [d.assign(predictor="layer model", predicted=d["predicted_bytes"] / MIB)]
    if both:
        parts.append(d.dropna(subset=["graph_predicted_bytes"]).assign(
            predictor="traced graph", predicted=lambda x: x["graph_predicted_bytes"] / MIB))
    d = pd.concat(parts).assign(measured=lambda x: x["measured_peak_bytes"] / MIB)
    fig, ax = plt.subplots(figsize=(5.6, 5))
    lo, hi = 0.8 * min(d["predicted"].min(), d["measured"].min()), 1.25 * max(d["predicted"].max(),
                                                                                 d["measured"].max())
    line = np.geomspace(lo, hi, 50)
    ax.fill_between(line, 0.9 * line, 1.1 * line, color="0.85", label="±10 %")
    ax.plot(line, line, color="0.3", lw=1, label="y = x")
    sns.scatterplot(data=d, x="measured", y="predicted", hue="predictor" if both else "mode", style="mode", ax=ax,
                    alpha=0.8 if both else 1)
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured peak (MiB)",
           ylabel="predicted (MiB)", title=title)
    ax.legend(fontsize=8)
    return _save(fig, out, name)
