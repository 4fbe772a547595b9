"""Result files → pandas frames: one row per run, one per (task, arch, profile, weights, machine), and the sweeps.

Nothing here computes a measurement: every number comes from a record; this module only selects, aggregates (mean ±
sample std over seeds, medians of timings) and derives the caveats a row needs from what its records say.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from cnnbench import records
from cnnbench.environment import machine_id
from cnnbench.tasks import TASKS, Task

log = logging.getLogger(__name__)

COLUMNS = {
    "task": "task", "arch": "arch", "profile": "profile", "seed": "seed", "outcome": "outcome",
    "metrics.test_accuracy": "test_accuracy", "metrics.train_accuracy": "train_accuracy",
    "metrics.baseline.test_accuracy": "scratch_accuracy",
    "metrics.miou": "miou", "dataset.note": "dataset_note",
    "config.weights": "weights", "dataset.name": "dataset",
    "params.total": "params", "params.trainable": "params_trainable",
    "model.reference_params": "reference_params", "model.count": "reference_counts", "model.year": "year",
    "model.innovations": "innovations",
    "dataset.n_train": "n_train", "config.input_shape": "input_shape", "config.model_kwargs.width": "width",
    "metrics.train_seconds": "train_s", "config.epochs": "epochs", "flops.macs": "macs",
    "metrics.time_to_target.reached": "ttt_reached", "metrics.time_to_target.train_seconds": "ttt_s",
    "metrics.time_to_target.epoch": "ttt_epoch", "metrics.time_to_target.target": "ttt_target",
    "throughput.batch_size": "batch",
    "throughput.train_images_per_s": "train_img_s", "throughput.infer_images_per_s": "infer_img_s",
    "throughput.train_cov": "train_cov", "throughput.infer_cov": "infer_cov",
    "memory.predicted_bytes": "mem_layer", "memory.graph_predicted_bytes": "mem_graph",
    "memory.measured_peak_bytes": "mem_measured",
    "env.device.name": "device", "env.device.type": "device_type", "env.git.sha": "git_sha",
    "env.tensorflow": "tensorflow", "env.keras": "keras",
    "env.git.dirty": "dirty", "dataset.sha256": "data_sha256", "started_at": "started_at",
    "error.type": "error_type", "error.message": "error", "config.ablation": "ablation", "config.variant": "variant",
    "config.strategy": "strategy", "env.keras_backend": "backend", "env.code_sha256": "code",
    "env.shared_code_sha256": "shared_code",
    "config.optimizer.learning_rate": "lr", "config.recipe.name": "recipe",
}
#: what a row's timing method is: records whose throughput was measured differently are not averaged silently.
TIMING_KEYS = ("warmup_steps", "timed_repeats", "jit", "precision")
#: a leaderboard row: seeds pooled over machines (accuracy belongs to code, settings, data and seed)
SUMMARY_KEYS = ["task", "arch", "profile", "weights", "backend"]
#: what belongs to the machine that measured it: a pooled row takes these from one machine (``speed machine``)
SPEED = ["train_s", "ttt_s", "train_img_s", "infer_img_s", "train_cov", "infer_cov", "mem_measured", "device",
         "device_type", "timing"]


def natural_key(name: str) -> tuple:
    """resnet18 < resnet34 < resnet101 (numbers compared as numbers)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _shape(s):
    return "x".join(map(str, s)) if isinstance(s, list) else s


def _timing_method(record: dict) -> str | None:
    t = record.get("throughput")
    return ", ".join(f"{k}={t.get(k)}" for k in TIMING_KEYS) if t else None


def _one_class_share(record: dict) -> float | None:
    """The share of test predictions in the most-predicted class (from the confusion matrix, columns = predicted)."""
    cm = (record.get("metrics") or {}).get("confusion_matrix")
    if not cm:
        return None
    predicted = np.asarray(cm, dtype=float).sum(axis=0)
    return float(predicted.max() / predicted.sum()) if predicted.sum() else None


def records_frame(results_dir: str | os.PathLike) -> pd.DataFrame:
    """One row per valid run record (invalid files are skipped with a warning by ``records.iter_records``); the
    parsed record itself is in ``record``, so nothing downstream reads or validates a file again."""
    rows = [r | {"file": p.name} for p, r in records.iter_records(results_dir)]
    if not rows:
        return pd.DataFrame(columns=[*COLUMNS.values(), "file", "machine", "version", "superseded", "mem_predicted",
                                     "timing", "one_class_share", "record"])
    flat = pd.json_normalize(rows)
    df = flat.reindex(columns=[*COLUMNS, "file"]).rename(columns=COLUMNS)
    df["machine"] = [machine_id(r["env"]) for r in rows]  # speed is kept and compared per machine, as asv does
    df["version"] = [_version(r) for r in rows]
    df["mem_predicted"] = _better_prediction(df)
    df["timing"] = [_timing_method(r) for r in rows]
    df["one_class_share"] = [_one_class_share(r) for r in rows]
    df["train_loss_curve"] = [(r.get("metrics") or {}).get("train_loss") for r in rows]
    df["record"] = rows
    df["input_shape"] = df["input_shape"].map(_shape)
    df["weights"] = df["weights"].astype(object).fillna("scratch")  # records from before pretrained weights existed
    df["backend"] = df["backend"].astype(object).fillna("tensorflow")  # records from before other backends ran
    # each task's ranking metric (``Task.score``: a column of COLUMNS by the same name)
    scores = df["task"].map(lambda t: task_info(t).score)
    df["score"] = [df[key].iat[i] for i, key in enumerate(scores)]
    df = df.sort_values(["task", "arch", "profile", "weights", "backend", "seed", "started_at"]).reset_index(drop=True)
    df["superseded"] = _superseded(df)
    return df


def _better_prediction(df: pd.DataFrame) -> pd.Series:
    """A train step's predicted memory: the traced graph's where the record has it (TensorFlow), else the layer
    model's (on eight held-out networks and shapes: median error 4.5 % against 17.5 %, worst 9.9 % against 30.7 %)."""
    return df["mem_graph"].astype(float).fillna(df["mem_layer"].astype(float))


def _version(record: dict) -> str:
    """What determines a record's accuracy besides data and seed: the code (its model's fingerprint) and what its cell
    resolved to (``config.determinants``; for records from before it: input, builder keywords, training images,
    epochs, batch, learning rate, recipe)."""
    c = record.get("config") or {}
    if "determinants" in c:
        return json.dumps([records.code_version(record), c["determinants"]], sort_keys=True)
    return json.dumps([records.code_version(record), c.get("input_shape"), c.get("model_kwargs"),
                       (record.get("dataset") or {}).get("n_train"), c.get("epochs"), c.get("batch_size"),
                       (c.get("optimizer") or {}).get("learning_rate"), c.get("recipe")], sort_keys=True)


def _superseded(df: pd.DataFrame) -> list[bool]:
    """Whether a record's code or settings (``version``) differ from those of the latest ok record of its cell
    (task, arch, profile, weights, backend, ablation variant, strategy): such records leave the leaderboards for the
    runs page, marked, not deleted."""
    def cell(r) -> tuple:
        return (*(getattr(r, k) for k in SUMMARY_KEYS), "" if pd.isna(r.variant) else r.variant,
                "default" if pd.isna(r.strategy) else r.strategy)

    current = {}
    for r in df[df["outcome"] == "ok"].sort_values("started_at").itertuples():
        current[cell(r)] = r.version
    return [current.get(cell(r), r.version) != r.version for r in df.itertuples()]


def task_info(name: str) -> type[Task]:
    """A task's presentation (title, score, columns, figures); a task this code does not know gets the defaults."""
    return TASKS.get(name, Task)


def latest_ok(df: pd.DataFrame) -> pd.DataFrame:
    """The latest ok record of each seed per (task, arch, profile, weights, backend, ablation variant), of the cell's
    current code and settings (not ``superseded``), wherever it ran."""
    ok = df[(df["outcome"] == "ok") & ~df["superseded"].astype(bool)]
    return ok.sort_values("started_at").drop_duplicates([*SUMMARY_KEYS, "variant", "seed"], keep="last")


def _speed_machine(g: pd.DataFrame) -> str:
    """The machine a pooled row's times and speeds come from: the latest one that measured throughput, else the
    machine that ran most of its seeds."""
    measured = g[g["train_img_s"].notna()]
    return measured["machine"].iloc[-1] if len(measured) else g["machine"].value_counts().index[0]


def summary_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Per (task, arch, profile, weights, backend): the latest ok record of each seed of the current code and settings,
    from whichever machines ran them, aggregated as mean ± std over seeds; times, speeds and measured memory from one
    machine (``_speed_machine``, the row's ``machine``); the caveats the records call for in ``flags``."""
    # ablation variants: the innovations page pairs them; a model on several devices is another experiment
    ok = latest_ok(df[df["ablation"].isna() & (df["strategy"].isna() | df["strategy"].eq("default"))])
    if ok.empty:
        return pd.DataFrame(columns=[*SUMMARY_KEYS, "machine", "seeds", "acc_mean", "flags"])
    ok = ok.copy()
    speed = {key: _speed_machine(g) for key, g in ok.groupby(SUMMARY_KEYS, sort=False)}
    ok["speed_machine"] = [speed[key] for key in zip(*(ok[k] for k in SUMMARY_KEYS), strict=True)]
    ok["seed_on"] = [f"{s} on {m}" for s, m in zip(ok["seed"], ok["machine"], strict=True)]
    ok["machine_train_s"] = [(m, t) for m, t in zip(ok["machine"], ok["train_s"], strict=True)]
    elsewhere = ok["machine"] != ok["speed_machine"]
    ok.loc[elsewhere, SPEED] = np.nan
    grouped = ok.groupby(SUMMARY_KEYS, sort=True)
    out = grouped.agg(
        seeds=("seed", "nunique"),
        acc_mean=("test_accuracy", "mean"), acc_std=("test_accuracy", "std"),
        train_acc_mean=("train_accuracy", "mean"),
        scratch_mean=("scratch_accuracy", "mean"), scratch_std=("scratch_accuracy", "std"),
        miou_mean=("miou", "mean"), miou_std=("miou", "std"),
        score_mean=("score", "mean"), score_std=("score", "std"), score_median=("score", "median"),
        dataset=("dataset", "first"), year=("year", "first"), innovations=("innovations", "last"),
        params=("params", "first"), params_trainable=("params_trainable", "first"),
        reference_params=("reference_params", "first"), reference_counts=("reference_counts", "first"),
        input_shape=("input_shape", "first"), width=("width", "first"), n_train=("n_train", "first"),
        train_s=("train_s", "mean"), epochs=("epochs", "first"), macs=("macs", "first"),
        train_img_s=("train_img_s", "median"), infer_img_s=("infer_img_s", "median"),
        train_cov=("train_cov", "median"), infer_cov=("infer_cov", "median"), batch=("batch", "first"),
        ttt_runs=("ttt_reached", "count"),  # runs that evaluated after each epoch (older records did not)
        ttt_hits=("ttt_reached", lambda v: int(sum(bool(x) for x in v.dropna()))),
        ttt_s=("ttt_s", "median"), ttt_epoch=("ttt_epoch", "median"), ttt_target=("ttt_target", "first"),
        mem_graph=("mem_graph", "first"), mem_layer=("mem_layer", "first"), mem_measured=("mem_measured", "median"),
        device=("device", "first"), device_type=("device_type", "first"),
        git_shas=("git_sha", lambda v: sorted({s[:10] for s in v.dropna()})),
        timings=("timing", lambda v: sorted(set(v.dropna()))),
        one_class_share=("one_class_share", "max"),
        files=("file", list), machine=("speed_machine", "first"),
        machines=("machine", lambda v: sorted(set(v))), seeds_on=("seed_on", list),
        machine_train_s=("machine_train_s", list), lr=("lr", "first"), recipe=("recipe", "first"),
        code=("code", "last"), shared_code=("shared_code", "last"), started=("started_at", "max"),
    )
    for col in ("acc_std", "scratch_std", "miou_std", "score_std"):
        out[col] = out[col].fillna(0.0)
    out = out.reset_index()
    out["mem_predicted"] = _better_prediction(out)
    out["mem_error"] = (out["mem_predicted"] - out["mem_measured"]) / out["mem_measured"]
    out["stale"] = _stale(out)
    out["flags"] = [row_flags(r) for r in out.itertuples()]
    order = sorted(range(len(out)), key=lambda i: (out["task"][i], out["year"][i] if pd.notna(out["year"][i]) else 0,
                                                   natural_key(out["arch"][i]), out["profile"][i], out["weights"][i],
                                                   out["backend"][i]))
    return out.iloc[order].reset_index(drop=True)


def _stale(summary: pd.DataFrame) -> list[bool]:
    """Rows recorded by other shared code — training, data, scoring: what every model's fingerprint covers
    (``shared_code``) — than the newest row of their table (task, profile, backend): earlier code's numbers beside
    today's, until their cells are run again. (A model's own builders are compared where its cell has a newer record:
    superseded.) Records from before the shared fingerprint (2026-12-08) compare by the whole tree's."""
    code = summary["shared_code"].fillna(summary["code"]).fillna("")  # before fingerprints: one version
    newest = summary.assign(code=code).sort_values("started").groupby(["task", "profile", "backend"])["code"].last()
    return [c != newest[(r.task, r.profile, r.backend)] for c, r in zip(code, summary.itertuples(), strict=True)]


def row_flags(r) -> list[str]:
    """Caveats a number needs, derived from its records only."""
    flags = []
    if r.stale:
        flags.append("stale: recorded by earlier model code than this table's newest rows")
    if r.one_class_share is not None and not pd.isna(r.one_class_share) and r.one_class_share >= 0.99:
        flags.append(f"predicts one class only ({100 * r.one_class_share:.1f} % of test predictions in one class)")
    if pd.notna(r.train_acc_mean) and pd.notna(r.acc_mean) and r.train_acc_mean - r.acc_mean > 0.05:
        flags.append(f"train accuracy {100 * r.train_acc_mean:.1f} % far above test {100 * r.acc_mean:.1f} %")
    if len(r.git_shas) > 1:
        flags.append(f"seeds from {len(r.git_shas)} commits ({', '.join(r.git_shas)})")
    if len(r.machines) > 1:
        flags.append(f"seeds pooled over {len(r.machines)} machines ({', '.join(r.seeds_on)}); times and speeds "
                     f"from {r.machine} (train s per machine: {_per_machine(r.machine_train_s)})")
    if len(r.timings) > 1:
        flags.append("throughput measured by different timing methods")
    if pd.isna(r.train_img_s):
        flags.append("throughput not measured")
    if pd.isna(r.mem_measured):
        flags.append("memory not measured")
    if r.seeds < 2:
        flags.append("one seed: no spread")
    return flags


def _per_machine(pairs: list) -> str:
    by = {}
    for machine, seconds in pairs:
        by.setdefault(machine, []).append(seconds)
    return ", ".join(f"{m} {np.nanmean(v):,.0f}" for m, v in sorted(by.items()))


def failures_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["outcome"] != "ok"]


# --- sweeps and cards: result files under results/<kind>/ --------------------------------------------------------

def _json_files(folder: Path) -> list[tuple[Path, dict]]:
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text(), parse_constant=records._reject_constant)))
        except (OSError, ValueError) as e:
            log.warning("skipping unreadable result file %s: %s", path, e)
    return out


def registry_row(row: dict) -> bool:
    """A sweep row of a registered model (not the worked exercise, not a generated network)."""
    return row.get("arch") != "exercise" and "generator" not in row


def latest_sweep(results_dir: str | os.PathLike, kind: str, where=registry_row) -> tuple[dict | None, str | None]:
    """The latest sweep record of ``kind`` (``memory_sweep``, ``throughput_sweep``) with a row ``where`` holds (by
    default a registry model's), and its path under results."""
    found = [(p, d) for p, d in _json_files(Path(results_dir) / kind.removesuffix("_sweep"))
             if d.get("kind") == kind and any(map(where, d.get("rows", [])))]
    if not found:
        return None, None
    path, data = max(found, key=lambda pd_: pd_[1].get("started_at", ""))
    return data, f"{kind.removesuffix('_sweep')}/{path.name}"


def jax_sweeps(results_dir: str | os.PathLike) -> list[tuple[str, dict]]:
    """The GPU sweeps through Keras' JAX backend (results/jax/), oldest first."""
    return _recorded(results_dir, "jax")


def scaling_records(results_dir: str | os.PathLike) -> list[tuple[str, dict]]:
    """One model's throughput on several replicas against one (results/scaling/, ``cnnbench throughput --strategy
    ... --results``), oldest first."""
    return _recorded(results_dir, "scaling")


def _recorded(results_dir, folder: str) -> list[tuple[str, dict]]:
    found = [(f"{folder}/{p.name}", d) for p, d in _json_files(Path(results_dir) / folder)]
    return sorted(found, key=lambda x: x[1].get("started_at", ""))


def backend_comparison(results_dir: str | os.PathLike) -> tuple[dict[str, tuple[str, dict]], pd.DataFrame]:
    """The same models on each Keras backend (``results/backends/``): each backend's latest throughput sweep (file,
    record) and the run records (cells) beside them."""
    folder = Path(results_dir) / "backends"
    sweeps: dict[str, tuple[str, dict]] = {}
    for path, sweep in _json_files(folder / "throughput"):
        backend = sweep["env"].get("keras_backend", "tensorflow")
        if backend not in sweeps or sweep["started_at"] > sweeps[backend][1]["started_at"]:
            sweeps[backend] = (f"backends/throughput/{path.name}", sweep)
    return sweeps, records_frame(folder)
