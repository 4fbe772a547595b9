"""The README's result tables are the committed records in results/: each figure recomputed from the records, the way
the report aggregates them (latest record per seed, mean ± sample std), so a hand-edited or stale number fails."""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

import architectures
from cnnbench import records
from cnnbench.metrics import segmentation_scores
from cnnbench.report import records_frame, summary_frame
from cnnbench.report.build import pct as _mean_std

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def frame():
    """The committed records only: a developer's own runs sit beside them in results/ until they are committed (with
    the README tables that quote them). Outside a git checkout every record there is the shipped set."""
    df = records_frame(ROOT / "results")
    try:
        listed = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True)
    except OSError:  # no git
        return df
    return df if listed.returncode else df[df["file"].isin({Path(n).name for n in listed.stdout.split()})]


@pytest.fixture(scope="module")
def summary(frame):
    s = summary_frame(frame)
    return s[s["profile"] == "cpu"].set_index(["task", "arch", "weights"])


def table_after(heading: str) -> list[list[str]]:
    """The rows of the first markdown table after ``heading``, cells stripped of markup (`, **, footnote marks)."""
    lines = README[README.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([re.sub(r"[`*¹²³]", "", cell).strip() for cell in line.strip("|").split("|")])
    return rows


def per_seed(frame, task: str, arch: str, weights: str, key: str) -> str:
    ok = frame[(frame["task"] == task) & (frame["arch"] == arch) & (frame["profile"] == "cpu")
               & (frame["weights"] == weights) & (frame["outcome"] == "ok")]
    ok = ok.drop_duplicates("seed", keep="last").sort_values("seed")
    return ", ".join(f"{100 * v:.2f}" for v in ok[key])


def test_mnist_table(summary):
    rows = table_after("## Results: MNIST at the `cpu` profile")
    assert len(rows) == 15
    for arch, seeds, accuracy, shape, width, images, epochs, seconds, train_rate, infer_rate in rows:
        s = summary.loc[("mnist", arch, "scratch")]
        recorded_width = 1.0 if np.isnan(s["width"]) else s["width"]  # LeNets have no width multiplier
        assert (int(seeds), shape, float(width)) == (s["seeds"], s["input_shape"], recorded_width), arch
        assert (images, int(epochs)) == (f"{s['n_train']:,.0f}", s["epochs"]), arch
        assert accuracy == _mean_std(s["acc_mean"], s["acc_std"], s["seeds"]), arch
        assert (seconds, train_rate, infer_rate) == (f"{s['train_s']:.1f}", f"{s['train_img_s']:,.0f}",
                                                     f"{s['infer_img_s']:,.0f}"), arch


def test_segmentation_table(summary, frame):
    rows = table_after("**Result** (offline default, cpu profile: MNIST composites")
    assert len(rows) == 5
    for arch, miou, seeds, *_ in rows:
        s = summary.loc[("segmentation", arch, "scratch")]
        assert miou == _mean_std(s["miou_mean"], s["miou_std"], s["seeds"]), arch
        assert seeds == per_seed(frame, "segmentation", arch, "scratch", "miou"), arch


def test_transfer_table(summary, frame):
    (pretrained, scratch) = table_after("**Result** (offline default, cpu profile: EfficientNet-Lite0")
    s = summary.loc[("transfer", "efficientnet_lite0", "imagenet")]
    assert pretrained[1] == _mean_std(s["acc_mean"], s["acc_std"], s["seeds"])
    assert pretrained[2] == per_seed(frame, "transfer", "efficientnet_lite0", "imagenet", "test_accuracy")
    assert scratch[1] == _mean_std(s["scratch_mean"], s["scratch_std"], s["seeds"])
    assert scratch[2] == per_seed(frame, "transfer", "efficientnet_lite0", "imagenet", "scratch_accuracy")


def test_recorded_fcns_segment_except_fcn32s():
    """The README: every FCN with a skip beats labelling everything background; FCN-32s (a 2x2 score map on a 64x64
    canvas) labels every pixel background, in every seed."""
    recorded = [r for _, r in records.iter_records(ROOT / "results")
                if (r["task"], r["profile"], r["outcome"]) == ("segmentation", "cpu", "ok")]
    for record in recorded:
        confusion = np.asarray(record["metrics"]["confusion_matrix"])
        everything_background = np.zeros_like(confusion)
        everything_background[:, 0] = confusion.sum(axis=1)
        background_only = segmentation_scores(everything_background)["miou"]
        if record["arch"] == "fcn32s_vgg16":
            assert (confusion[:, 1:] == 0).all() and record["metrics"]["miou"] == pytest.approx(background_only)
        else:
            assert record["metrics"]["miou"] > background_only + 0.05, (record["arch"], record["seed"])
    assert len(recorded) >= 15


def sweep(kind: str) -> dict:
    """The newest recorded sweep of ``kind`` over registered models, as the report picks it."""
    from cnnbench.report.frames import latest_sweep

    return latest_sweep(ROOT / "results", f"{kind}_sweep")[0]


def memory_sweep(name: str) -> dict:
    """One recorded memory sweep, by the file name the README cites."""
    return json.loads((ROOT / "results" / "memory" / name).read_text())


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def sweep_claims(rows: list[dict], label: str, key: str) -> tuple[str, str]:
    """A README table row's figures for ``rows`` (median, train / infer, within 5 %, within 15 %) and its count of
    rows more than 10 % under, as the tables write them."""
    errors = np.array([r[key] for r in rows])
    train = np.abs([r[key] for r in rows if r["mode"] == "train"])
    infer = np.abs([r[key] for r in rows if r["mode"] == "infer"])
    n = len(rows)
    median = percent(np.median(np.abs(errors))) + ("**" if label.endswith("**") else "")
    return (f"{label}{median} | {percent(np.median(train))[:-2]} % / {percent(np.median(infer))} | "
            f"{int(np.sum(np.abs(errors) <= 0.05))} of {n} | {int(np.sum(np.abs(errors) <= 0.15))} of {n} |",
            f"| {int(np.sum(errors < -0.10))} of {n} |")


def assert_sweep_table(rows: list[dict], layers_label: str, graph_label: str):
    """The README table's two rows for ``rows``: the layer model's and the traced graph's figures."""
    for key, label in (("relative_error", layers_label), ("graph_relative_error", graph_label)):
        for claim in sweep_claims(rows, label, key):
            assert claim in README, claim


@pytest.mark.parametrize(("name", "layers", "graph"), [
    ("memory-sweep.20261127T064501.json", "| layer model, AVX2 EPYC | ",
     "| traced graph, AVX2 EPYC, one schedule | **"),
    ("memory-sweep.20261127T152558.json", "| layer model, AVX-512 Xeon | ", "| traced graph, AVX-512 Xeon | **")])
def test_memory_sweep_figures(name, layers, graph):
    rows = memory_sweep(name)["rows"]
    assert all(r["arch"] in architectures.list_models() for r in rows) and len(rows) == 144  # the registry sweep
    assert_sweep_table(rows, layers, graph)


def test_generated_networks_sweep_figures():
    rows = memory_sweep("memory-sweep.20261127T150814.json")["rows"]
    rows = [r for r in rows if "generator" in r and r["measured_peak_bytes"]]
    assert len(rows) == 57  # 30 networks x 2 modes, 3 train steps that crash TensorFlow
    assert_sweep_table(rows, "| layer model, AVX-512 Xeon | ", "| traced graph, AVX-512 Xeon | **")


def exercise_rows(name: str) -> dict:
    return {r["mode"]: r for r in memory_sweep(name)["rows"] if r["arch"] == "exercise"}


def vs_smallest_step(row: dict) -> str:
    """The traced prediction against the smallest of the measured steps' peaks, as the README writes it."""
    return f"{100 * (row['graph_predicted_bytes'] / row['measured_peak_min_bytes'] - 1):+.1f} %"


mib = lambda b: f"{b / 2**20:,.1f}"  # noqa: E731
PLAIN = README.replace("−", "-")  # the README's minus signs


def test_the_worked_exercise_figures():
    # the table: the sweep the README names above it
    rows = exercise_rows("memory-sweep.20261127T150814.json")
    infer, train = rows["infer"], rows["train"]
    claims = [
        f"| predicted (traced graph), inference, batch 1 | {mib(infer['graph_predicted_bytes'])} MiB |",
        f"| measured, inference, batch 1 (CPU, BFC, oneDNN) | {mib(infer['measured_peak_bytes'])} MiB "
        f"({mib(infer['measured_peak_min_bytes'])}–{mib(infer['measured_peak_bytes'])} over 5 steps): prediction "
        f"**{100 * infer['graph_relative_error']:+.1f} %**",
        f"| predicted (traced graph), training, batch 50, Adam | {mib(train['graph_predicted_bytes'])} MiB (layer "
        f"model {mib(train['predicted_bytes'])}) |",
        f"| measured, training, batch 50, Adam | {mib(train['measured_peak_min_bytes'])}–"
        f"{mib(train['measured_peak_bytes'])} MiB over 5 steps: prediction {vs_smallest_step(train)} / "
        f"**{100 * train['graph_relative_error']:+.1f} %** |",
    ]
    for claim in claims:
        assert claim in PLAIN, claim
    assert len(rows) == 2


def test_throughput_sweep_figures():
    recorded = sweep("throughput")
    covs = [r["cov"] for r in recorded["rows"]]
    steady = sum(c <= 0.05 for c in covs)
    assert (f"median {percent(np.median(covs))}; {steady} of {len(covs)} figures ({100 * steady / len(covs):.0f} %) "
            f"≤ 5 %; worst {percent(max(covs))}") in README
    assert f"Measured matmul peak: {recorded['peak_flops_per_s'] / 1e9:.0f} GFLOP/s" in README


def test_gpu_section_is_the_jax_records():
    """The GPU section's throughput table, budget and OOM figures, recomputed from results/jax/."""
    from cnnbench.measure.jax_sweep import load_records, merge, table

    merged = merge(load_records(ROOT / "results"))
    section = README[README.index("## On a GPU through Keras' JAX backend"):README.index("## Profiles")]
    rows = [line for line in section.splitlines() if re.match(r"\| (resnet50|xception) \| \d", line)]
    rendered = table(merged).splitlines()
    assert len(rows) == 6 and all(row in rendered for row in rows)
    mib = lambda n: f"{n / 2**20:,.0f}"  # noqa: E731
    b, oom, ctx = merged["budget"], merged["oom"], merged["context"]
    assert (f"largest batch **{b['batch_size']}** (predicted {mib(b['predicted_bytes'])} MiB; batch "
            f"{b['batch_size'] + 1}: {mib(b['next_predicted_bytes'])} MiB, over)") in " ".join(section.split())
    assert b["outcome"] == "ok" and f"XLA's peak {mib(b['peak_bytes'])} MiB" in section
    assert oom["outcome"] == "oom" and f"batch {oom['batch_size']:,} (predicted {mib(oom['predicted_bytes'])} MiB" \
        in section
    assert f"**{mib(ctx['nvml_process_bytes'])} MiB**" in section


def test_the_leaderboards_count_parameters_one_way_for_every_row(frame):
    """ResNet-50 v1.5 (torchvision) is referenced by its trainable count, ResNet-50 (keras) by its total; the
    leaderboard shows the trainable parameters as run for both (the stated convention), never a mix."""
    from cnnbench.report.build import leaderboards

    tables = leaderboards(summary_frame(frame[frame["profile"] == "cpu"]), "mnist", {}, None)
    shown = {row[0].text: row[table.columns.index("trainable params")].text  # one table per machine
             for table in tables for row in table.rows}
    runs = frame[frame["profile"] == "cpu"].drop_duplicates("arch", keep="last").set_index("arch")
    for arch in ("resnet50_tv", "resnet50"):
        assert shown[arch] == f"{runs.loc[arch, 'params_trainable']:,.0f}", arch
    assert runs.loc["resnet50", "params_trainable"] != runs.loc["resnet50", "params"]  # the two counts differ here


def test_other_machines_records_are_not_taken_as_done(smoke_record, tmp_path, monkeypatch):
    """What a fresh clone's `nox -s bench-cpu` (suite --resume) counts as done: only ok records from this machine and
    this model/harness code. The committed records were measured on another machine than a newcomer's, so their cells
    run again; records written before code fingerprints never count."""
    from cnnbench.suite import finished

    monkeypatch.setenv("CNNBENCH_MACHINE", "Newcomer Laptop")
    assert len(list(records.iter_records(ROOT / "results"))) > 30 and finished(ROOT / "results") == set()
    monkeypatch.delenv("CNNBENCH_MACHINE")
    here, elsewhere, old = tmp_path / "here", tmp_path / "elsewhere", tmp_path / "old"
    records.write(smoke_record, here)
    assert finished(here) == {("lenet5", "mnist", "smoke", 0)}  # this machine, this code: done
    moved = json.loads(json.dumps(smoke_record))
    moved["env"]["machine"] = {"id": "newcomer-laptop", "source": "CNNBENCH_MACHINE"}
    records.write(moved, elsewhere)
    changed = json.loads(json.dumps(smoke_record))
    changed["env"]["code_sha256"] = "0" * 64
    records.write(changed, old)
    unfingerprinted = json.loads(json.dumps(smoke_record))
    del unfingerprinted["env"]["code_sha256"]
    records.write(unfingerprinted, old)
    assert finished(elsewhere) == set() and finished(old) == set()
    monkeypatch.setenv("CNNBENCH_MACHINE", "Newcomer Laptop")
    assert finished(elsewhere) == {("lenet5", "mnist", "smoke", 0)} and finished(here) == set()
