"""The published figures (README.md and the manual in docs/) are the committed records in results/: every figure is
recomputed here from the records' raw fields (accuracies per seed, byte counts, images/s, MACs) with this file's own
arithmetic — never through the report code that wrote them — so a hand-edited, stale or mis-aggregated number fails.
Records are aggregated as the docs and the report say: per (task, arch), the latest ok record of each seed; scores as
mean ± sample std (ddof 1) over seeds, train time as their mean, images/s and measured memory as their median."""

import dataclasses
import json
import re
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import architectures
from cnnbench import profiles, records

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
#: what the project publishes in prose: the README and the manual (docs/), read as one text
PAGES = [path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]]
README = "\n".join(PAGES)


# --- reading: the committed files only, parsed here -------------------------------------------------------------

def committed() -> set[str] | None:
    """Paths of the committed files under results/: a developer's own runs sit beside them until they are committed
    (with the README tables that quote them). None outside a git checkout, where every file there is the shipped set."""
    try:
        listed = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True)
    except OSError:  # no git
        return None
    return None if listed.returncode else set(listed.stdout.split())


SHIPPED = committed()


def load(path: str) -> dict:
    """One committed result file under results/, by the path the README cites."""
    assert SHIPPED is None or f"results/{path}" in SHIPPED, f"results/{path} is not committed"
    return json.loads((RESULTS / path).read_text())


@pytest.fixture(scope="module")
def runs() -> list[dict]:
    """Every committed, valid run record (results/*.json), oldest first."""
    return sorted((r for p, r in records.iter_records(RESULTS) if SHIPPED is None or f"results/{p.name}" in SHIPPED),
                  key=lambda r: r["started_at"])


def get(record: dict, dotted: str):
    """record["a"]["b"] for "a.b"; None where a key is missing."""
    for key in dotted.split("."):
        record = record.get(key) if isinstance(record, dict) else None
    return record


def latest(runs: list[dict], match=lambda r: True, **fields) -> list[dict]:
    """The latest ok record of each seed (by start time) among ``runs`` that ``match`` and have ``fields`` (dotted
    keys, "__" for "." as keywords: values), ordered by seed."""
    by_seed = {}
    for r in runs:  # oldest first: a later record of a seed replaces an earlier one
        if r["outcome"] == "ok" and match(r) and all(get(r, k.replace("__", ".")) == v for k, v in fields.items()):
            by_seed[r["seed"]] = r
    return [by_seed[s] for s in sorted(by_seed)]


def single(runs, **fields) -> list[dict]:
    """``latest`` for a published row, ablation cells and multi-device runs left out: it has records, of one machine."""
    rs = latest(runs, lambda r: not get(r, "config.ablation") and get(r, "config.strategy") in (None, "default"),
                **fields)
    assert rs and len({r["env"]["device"]["name"] for r in rs}) == 1, fields
    return rs


# --- formatting, as the README writes figures ---------------------------------------------------------------------

def pm(values, digits: int = 2) -> str:
    """Mean ± sample std of fractions, in %; one value alone has no spread."""
    v = [100 * x for x in values]
    return f"{statistics.mean(v):.{digits}f}" + (f" ± {statistics.stdev(v):.{digits}f}" if len(v) > 1 else "")


def seeds_list(values, digits: int = 2) -> str:
    return ", ".join(f"{100 * v:.{digits}f}" for v in values)


def pct(x: float, digits: int = 1) -> str:
    return f"{100 * x:.{digits}f} %"


def mib(n: float, digits: int = 1) -> str:
    return f"{n / 2**20:,.{digits}f}"


def span(values, fmt: str = ".0f") -> str:
    """lo–hi, or the one value when all are equal."""
    lo, hi = (format(v, fmt) for v in (min(values), max(values)))
    return lo if lo == hi else f"{lo}–{hi}"


def two_figures(x: float) -> str:
    """A percentage to two significant figures with the README's minus sign (−9.3, −42)."""
    return f"{x:.1f}".replace("-", "−") if abs(x) < 10 else f"{x:.0f}".replace("-", "−")


# --- the README side ---------------------------------------------------------------------------------------------

def prose(start: str, end: str | None = None) -> str:
    """The page that has ``start``, from there to ``end`` (or the page's end), whitespace collapsed, so figures can wrap
    lines."""
    page = next(page for page in PAGES if start in page)
    text = page[page.index(start):]
    return " ".join(text[:text.index(end)].split() if end else text.split())


def table_after(heading: str) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the first markdown table after ``heading``, cells stripped of markup (`, **, footnote
    marks)."""
    lines = README[README.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("|"))
    clean = lambda line: [re.sub(r"[`*¹²³]", "", c).strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
    rows = []
    for line in lines[start + 2:]:
        if not line.lstrip().startswith("|"):
            break
        rows.append(clean(line))
    return clean(lines[start]), rows


def assert_table(name: str, heading: str, expected: dict[tuple, list[str]], keys: int = 1):
    """The README table after ``heading`` has exactly the rows of ``expected``, keyed by their first ``keys`` cells,
    and in each the next cells as recomputed; columns after those are not from records."""
    header, rows = table_after(heading)
    shown = {tuple(row[:keys]): row[keys:] for row in rows}
    assert sorted(shown) == sorted(expected), f"{name}: README rows {sorted(shown)} != records {sorted(expected)}"
    wrong = {(" · ".join(key), header[keys + i]): (shown[key][i] if i < len(shown[key]) else None, want)
             for key, cells in expected.items() for i, want in enumerate(cells)
             if i >= len(shown[key]) or shown[key][i] != want}
    assert not wrong, f"{name} (README, records): {wrong}"


def assert_claims(name: str, text: str, claims: dict[str, str]):
    """Each recomputed claim is written, word for word, in ``text``."""
    missing = {label: claim for label, claim in claims.items() if claim not in text}
    assert not missing, f"{name}: not in the README (label: recomputed): {missing}"


# --- classification, transfer, segmentation -----------------------------------------------------------------------

def test_the_cpu_profiles_held_out_table():
    """Every held-out run that chose the cpu profile's settings (results/selection/, committed): its settings and its
    held-out accuracy after precise BN, as the settings' table shows them."""
    expected, gaps = {}, []
    for name in sorted(p.relative_to(RESULTS).as_posix() for p in (RESULTS / "selection").rglob("*.json")):
        if SHIPPED is not None and f"results/{name}" not in SHIPPED:
            continue  # a run still going, or not yet committed with the table that quotes it
        r = load(name)
        s, m = r["config"]["settings"], r["metrics"]
        assert r["dataset"]["n_val"] == 5000 and "val_accuracy" in m  # chosen on held-out images only
        options = ", ".join(f"{k}={v}" for k, v in sorted(r["config"]["model_kwargs"].items())
                            if k not in ("input_shape", "width")) or "—"
        key = (r["arch"], s["input"], s["width"], options, s["epochs"], s["batch"], s["lr"],
               s["recipe"].replace(", 5,000 held out", ""))
        expected[key] = [f"{100 * m['val_accuracy']:.2f}"]
        gaps.append(100 * (m["test_accuracy"] - m["val_accuracy"]))
    assert expected
    assert_table("selection", "## The `cpu` profile's settings", expected, keys=8)
    assert_claims("selection text", prose("## The `cpu` profile's settings"), {
        "harder": f"in all {len(gaps)} runs the same model scored {min(gaps):.2f} to {max(gaps):.2f} points higher"})


def chosen(runs: list[dict], arch: str) -> list[dict]:
    """An architecture's cpu-profile MNIST records at its latest settings (``config.determinants``) and code: the
    latest of each seed."""
    rs = [r for r in runs if (r["task"], r["profile"], r["arch"], r["outcome"]) == ("mnist", "cpu", arch, "ok")
          and "determinants" in r["config"]]

    def version(r):
        return r["env"].get("model_code_sha256", r["env"]["code_sha256"]), sorted(r["config"]["determinants"].items())

    return latest([r for r in rs if version(r) == version(rs[-1])])


def test_mnist_chosen_settings_table(runs):
    """Every cell of the table of the cpu profile's chosen settings: seeds, median and mean ± std test accuracy, seeds
    at 99 % and the median epoch that reached it, the settings, mean training seconds and the machines."""
    expected = {}
    for arch in sorted({r["arch"] for r in runs if (r["task"], r["profile"]) == ("mnist", "cpu")
                        and "determinants" in r["config"]}):
        rs = chosen(runs, arch)
        acc, d = [r["metrics"]["test_accuracy"] for r in rs], rs[0]["config"]["determinants"]
        epochs = [r["metrics"]["time_to_target"]["epoch"] for r in rs if r["metrics"]["time_to_target"]["reached"]]
        expected[(arch,)] = [
            str(len(rs)), f"{100 * statistics.median(acc):.2f}", pm(acc), f"{len(epochs)} of {len(rs)}",
            f"{statistics.median(epochs):g}" if epochs else "—", d["input"], d["width"], d["epochs"], d["recipe"],
            f"{statistics.mean(r['metrics']['train_seconds'] for r in rs):.0f}",
            ", ".join(sorted({r["env"]["machine"]["id"] for r in rs}))]
    assert_table("mnist (chosen settings)", "## Results: MNIST at the `cpu` profile's chosen settings", expected)
    cells = [r for arch in {a for a, in expected} for r in chosen(runs, arch)]
    def clock(rs: list[dict]) -> str:  # their durations' sum, h:mm:ss
        seconds = round(sum(r["duration_s"] for r in rs))
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"

    machines = sorted({r["env"]["machine"]["id"] for r in cells})
    on = {m: [r for r in cells if r["env"]["machine"]["id"] == m] for m in machines}
    held = [a for a in architectures.list_models(kind="classification") if a != "mlp"]  # the 99 % target's models
    done = {a: [r["metrics"]["test_accuracy"] for r in chosen(runs, a)] for a, in expected if a in held}
    medians = sorted(100 * statistics.median(acc) for acc in done.values() if len(acc) >= 3)
    assert_claims("README status", prose("The MNIST part at the chosen settings"), {
        "three seeds": f"{len(medians)} of the {len(held)} classifiers held to the 99 % target have their three seeds "
                       f"(medians {medians[0]:.2f}-{medians[-1]:.2f} %)"})
    assert_claims("mnist (chosen settings) time", prose("## Results: MNIST at the `cpu` profile's chosen settings"), {
        "so far": f"the {len(cells)} cells recorded so far took {clock(cells)} (the sum of their durations: "
                  + ", ".join(f"{clock(on[m])} for {len(on[m])} on {m}" for m in machines) + ";"})


def test_mnist_table(runs):
    """Every cell of the MNIST table, one row per architecture with cpu-profile MNIST records: seeds, test accuracy
    (mean ± std), input, width, train images, epochs, train time (mean), train and infer images/s (medians)."""
    expected = {}
    runs = [r for r in runs if "determinants" not in r["config"]]  # the earlier settings' records
    for arch in {r["arch"] for r in runs if (r["task"], r["profile"]) == ("mnist", "cpu")}:
        rs = single(runs, task="mnist", profile="cpu", arch=arch)
        (width,), (n_train,), (epochs,) = ({get(r, k) for r in rs} for k in ("config.model_kwargs.width",
                                                                             "dataset.n_train", "config.epochs"))
        expected[(arch,)] = [
            str(len(rs)), pm(r["metrics"]["test_accuracy"] for r in rs),
            "x".join(map(str, rs[0]["config"]["input_shape"])), str(float(width or 1.0)), f"{n_train:,}",
            str(epochs), f"{statistics.mean(r['metrics']['train_seconds'] for r in rs):.1f}",
            *(f"{statistics.median(r['throughput'][f'{mode}_images_per_s'] for r in rs):,.0f}"
              for mode in ("train", "infer"))]
    assert_table("mnist", "## Results: MNIST at the `cpu` profile's earlier settings", expected)
    lenet = [r["metrics"] for r in single(runs, task="mnist", profile="cpu", arch="lenet5")]
    sha = lambda arch: single(runs, task="mnist", profile="cpu", arch=arch)[0]["env"]["git"]["sha"][:7]  # noqa: E731
    assert_claims("mnist notes", prose("¹ Recorded later", "These records predate"), {
        "vgg16": f"¹ Recorded later (sha {sha('vgg16')})", "mnist_cnn": f"AVX-512 (sha {sha('mnist_cnn')})"})
    assert_claims("mnist text", prose("Two things these numbers show"), {
        "LeNet-5": f"LeNet-5 reaches {pm(m['test_accuracy'] for m in lenet)} % in 12 epochs (≈ "
                   f"{statistics.mean(s for m in lenet for s in m['epoch_seconds']):.1f} s per epoch)"})


def test_mnist_cnn_seed_table(runs):
    """The best MNIST CNN's per-seed table (test and validation accuracy, epoch and seconds to 99 %, training and whole
    run seconds) and the figures summarising it."""
    rs = single(runs, task="mnist", profile="cpu", arch="mnist_cnn", config__recipe__name="augment")
    ttt = [r["metrics"]["time_to_target"] for r in rs]
    expected = {(str(r["seed"]),): [f"{100 * m['test_accuracy']:.2f}", f"{100 * m['val_accuracy']:.2f}",
                                    f"{t['epoch']} ({t['train_seconds']:.0f} s)", f"{m['train_seconds']:.0f}",
                                    f"{r['duration_s']:.0f}"]
                for r, m, t in zip(rs, (r["metrics"] for r in rs), ttt, strict=True)}
    assert_table("mnist_cnn", "Recorded (`results/mnist_cnn.mnist.cpu.seed*.json`", expected)
    test, val = ([r["metrics"][k] for r in rs] for k in ("test_accuracy", "val_accuracy"))
    short, reached = round(9970 - 10_000 * statistics.median(test)), sum(round(10_000 * a) >= 9970 for a in test)
    assert_claims("mnist_cnn text", prose("Recorded (`results/mnist_cnn.mnist"), {
        "summary": f"Median {100 * statistics.median(test):.2f} % test accuracy (mean {pm(test)} %, range "
                   f"{span([100 * a for a in test], '.2f')} %)",
        "target": f"is missed by {short / 100:.2f} points ({NUMBERS[short].lower()} test images in 10,000); "
                  f"{NUMBERS[reached].lower()} seed of five reaches it",
        "to 99 %": f"after its second epoch ({span([t['train_seconds'] for t in ttt])} s)",
        "training": f"({span([r['metrics']['train_seconds'] for r in rs])} s; the epochs themselves took "
                    f"{span([s for r in rs for s in r['metrics']['epoch_seconds']])} s",
        "validation": f"validation accuracy (median {100 * statistics.median(val):.2f} %, "
                      f"{100 * (statistics.median(test) - statistics.median(val)):.2f} points below",
        "sha": f"sha {rs[0]['env']['git']['sha'][:7]}"})
    assert all(t["epoch"] == 2 for t in ttt) and {r["env"]["git"]["sha"] for r in rs} == {rs[0]["env"]["git"]["sha"]}


def test_transfer_table(runs):
    """Every cell of the transfer table — test accuracy (mean ± std and per seed), validation per seed, train time per
    seed with its epochs — for the ImageNet-initialised run and the from-scratch baseline in the same records."""
    rs = single(runs, task="transfer", profile="cpu", arch="efficientnet_lite0", config__weights="imagenet")
    tuned, scratch = [r["metrics"] for r in rs], [r["metrics"]["baseline"] for r in rs]
    epochs = lambda ms, phase: span([m["phases"][phase]["epochs_run"] for m in ms])  # noqa: E731
    expected = {
        ("ImageNet (offline Lite0), frozen head then top third fine-tuned",): [
            pm(m["test_accuracy"] for m in tuned), seeds_list(m["test_accuracy"] for m in tuned),
            seeds_list((m["val_accuracy"] for m in tuned), 1),
            f"{span([m['train_seconds'] for m in tuned])} s ({epochs(tuned, 'frozen')} + "
            f"{epochs(tuned, 'fine_tune')} epochs)"],
        ("same network from scratch, same split",): [
            pm(m["test_accuracy"] for m in scratch), seeds_list(m["test_accuracy"] for m in scratch),
            seeds_list((m["val_accuracy"] for m in scratch), 1),
            f"{span([m['phases']['scratch']['seconds'] for m in scratch])} s ({epochs(scratch, 'scratch')} epochs)"]}
    assert_table("transfer", "**Result** (offline default, cpu profile: EfficientNet-Lite0", expected)
    (n_train,), (n_val,), (n_test,), (sha,) = ({get(r, k) for r in rs} for k in (
        "dataset.n_train", "dataset.n_val", "dataset.n_test", "env.git.sha"))
    wins = ", ".join(f"{100 * (t['test_accuracy'] - s['test_accuracy']):+.1f}"
                     for t, s in zip(tuned, scratch, strict=True))
    assert_claims("transfer text", prose("**Result** (offline default, cpu profile: EfficientNet", "## Segmentation"), {
        "split": f"{n_train:,} train / {n_val:,} validation / {n_test:,} test", "sha": f"clean sha {sha[:7]}",
        "seeds": f"seeds {', '.join(str(r['seed']) for r in rs)}", "wins": f"every seed ({wins} points)",
        "shirts": f"({span([100 * m['per_class_accuracy'][6] for m in tuned])} % with ImageNet weights)",
        "mfu": f"`train_mfu` ({span([100 * r['throughput']['train_mfu'] for r in rs])} %)"})
    assert all(r["env"]["git"]["dirty"] is False for r in rs)


def miou(confusion) -> float:
    """Mean IoU over the classes present in the truth or the predictions (rows: truth, columns: predicted)."""
    c = np.asarray(confusion, dtype=float)
    tp, union = np.diag(c), c.sum(axis=0) + c.sum(axis=1) - np.diag(c)
    return float(np.mean(tp[union > 0] / union[union > 0]))


def test_segmentation_table(runs):
    """Every cell of the segmentation table: test mIoU (mean ± std, per seed), validation mIoU, pixel and mean class
    accuracy (means), learnable parameters, GMACs, train time (mean), train images/s and measured memory (medians),
    predicted memory; and the dataset, code and split the heading names."""
    expected, shas = {}, set()
    for arch in {r["arch"] for r in runs if (r["task"], r["profile"]) == ("segmentation", "cpu")}:
        rs = single(runs, task="segmentation", profile="cpu", arch=arch)
        m = [r["metrics"] for r in rs]
        mean = lambda key: f"{100 * statistics.mean(x[key] for x in m):.2f}"  # noqa: E731, B023
        (params,), (macs,), (predicted,) = ({get(r, k) for r in rs} for k in (
            "params.trainable", "flops.macs", "memory.predicted_bytes"))
        expected[(arch,)] = [
            pm(x["miou"] for x in m), seeds_list(x["miou"] for x in m), mean("val_miou"), mean("pixel_accuracy"),
            mean("mean_accuracy"), f"{params:,}", f"{macs / 1e9:.4f}",
            f"{statistics.mean(x['train_seconds'] for x in m):.0f} s",
            f"{statistics.median(r['throughput']['train_images_per_s'] for r in rs):.0f}",
            f"{mib(predicted)} / {mib(statistics.median(r['memory']['measured_peak_bytes'] for r in rs))}"]
        shas |= {(r["dataset"]["sha256"], r["env"]["git"]["sha"], r["env"]["git"]["dirty"], r["dataset"]["n_train"],
                  r["dataset"]["n_val"], r["dataset"]["n_test"], r["dataset"]["train_pixel_frequency"][0]) for r in rs}
    assert_table("segmentation", "**Result** (offline default, cpu profile: MNIST composites", expected)
    ((data, sha, dirty, n_train, n_val, n_test, background),) = shas
    assert_claims("segmentation text", prose("**Result** (offline default, cpu profile: MNIST composites", "| model"), {
        "split": f"{n_train:,} train / {n_val:,} validation / {n_test:,} test images, {pct(background)} of the "
                 "training pixels background",
        "data": f"dataset sha256 `{data[:8]}…{data[-6:]}`", "sha": f"clean sha {sha[:7]}"})
    assert dirty is False


def test_recorded_fcns_segment_except_fcn32s(runs):
    """Each segmentation record's mIoU is its confusion matrix's; every FCN with a skip beats labelling everything
    background, while FCN-32s (a 2x2 score map on a 64x64 canvas) labels every pixel background in every seed."""
    recorded = [r for r in runs if (r["task"], r["profile"], r["outcome"]) == ("segmentation", "cpu", "ok")]
    for record in recorded:
        confusion = np.asarray(record["metrics"]["confusion_matrix"])
        assert record["metrics"]["miou"] == pytest.approx(miou(confusion)), record["arch"]
        everything_background = np.zeros_like(confusion)
        everything_background[:, 0] = confusion.sum(axis=1)
        if record["arch"] == "fcn32s_vgg16":
            assert (confusion[:, 1:] == 0).all()
        else:
            assert record["metrics"]["miou"] > miou(everything_background) + 0.05, (record["arch"], record["seed"])
    assert len(recorded) >= 15


# --- ablations ----------------------------------------------------------------------------------------------------

A, R = "alexnet_one_tower", "resnet20_cifar"
#: the README's "builder and switch" column: each ablation's variants, reference first, as (builder, the keywords it
#: sets); a cell is matched by them, so variants of several ablations that run the same network share its records
ABLATIONS = {
    "relu_vs_tanh": {"tanh": (A, {"activation": "tanh"}), "relu": (A, {})},
    "lrn_vs_batchnorm": {"none": (A, {"normalization": None}), "lrn": (A, {}),
                         "batch_norm": (A, {"normalization": "batch"})},
    "overlapping_pooling": {"non_overlapping_2_2": (A, {"pool_size": 2}), "overlapping_3_2": (A, {})},
    "dropout": {"no_dropout": (A, {"dropout": 0.0}), "dropout_0.5": (A, {})},
    "max_pool_vs_strided_conv": {"max_pool": (A, {}), "strided_conv": (A, {"downsample": "conv"})},
    "residual": {"plain20": (R, {"residual": False}), "resnet20": (R, {}),
                 "plain56": ("resnet56_cifar", {"residual": False}), "resnet56": ("resnet56_cifar", {})},
    "squeeze_excitation": {"plain": (R, {}), "se": (R, {"se_ratio": 16})},
    "separable_convolutions": {"standard": (R, {}), "separable": (R, {"separable": True})},
    "conv_vs_fc": {"mlp": ("mlp", {}), "lenet5": ("lenet5", {})},
}
#: the README's "Sizes at the cpu profile": builder → (input, width, training images, epochs)
ABLATION_SIZES = {A: ([67, 67, 3], 0.25, 10_000, 4), R: ([32, 32, 3], 0.5, 8_000, 3),
                  "resnet56_cifar": ([32, 32, 3], 0.5, 8_000, 3), "lenet5": ([28, 28, 1], None, 60_000, 8),
                  "mlp": ([28, 28, 1], None, 60_000, 8)}


def ablation_cell(runs, arch: str, switches: dict) -> list[dict]:
    """The latest record of each seed of one ablation experiment (Fashion-MNIST, cpu profile), at the README's sizes."""
    def match(r):
        kwargs = dict(r["config"]["model_kwargs"])
        sizes = (kwargs.pop("input_shape", None), kwargs.pop("width", None), r["dataset"]["n_train"],
                 r["config"]["epochs"])
        return bool(get(r, "config.ablation")) and kwargs == switches and sizes == ABLATION_SIZES[arch]

    return latest(runs, match, task="fashion_mnist", profile="cpu", arch=arch)


def ablation_notes(rs: list[dict]) -> str:
    """The notes column: train − test gap, accuracy on shifted test images, epochs to 25 % training error (means over
    seeds, of those that reach it), train images/s and measured memory (means over the seeds that measured them),
    MMACs."""
    m = [r["metrics"] for r in rs]
    epochs = [next((i + 1 for i, a in enumerate(x["train_accuracy_curve"]) if a >= 0.75), None) for x in m]
    reached = [e for e in epochs if e is not None]
    measured = lambda key: statistics.mean(get(r, key) for r in rs if get(r, key) is not None)  # noqa: E731
    return "; ".join([
        f"train−test {100 * statistics.mean(x['train_accuracy'] - x['test_accuracy'] for x in m):+.1f} pp",
        f"shifted {pct(statistics.mean(statistics.mean(x['shifted_test_accuracy'].values()) for x in m))}",
        f"epochs to 25 % train error {statistics.mean(reached):.1f}" if reached else "25 % train error not reached",
        f"{measured('throughput.train_images_per_s'):,.0f} train img/s",
        f"{mib(measured('memory.measured_peak_bytes'))} MiB",
        f"{statistics.mean(r['flops']['macs'] for r in rs) / 1e6:.1f} MMACs"])


def test_ablation_table(runs):
    """Every cell of the ablation table: per variant its parameters, accuracy (mean ± std, n seeds), the paired
    difference to the reference over shared seeds with its 95 % Student-t interval, the verdict and the notes."""
    expected = {}
    for name, variants in ABLATIONS.items():
        (ref_arch, ref_switches), *_ = variants.values()
        ref = {r["seed"]: r["metrics"]["test_accuracy"] for r in ablation_cell(runs, ref_arch, ref_switches)}
        for variant, (arch, switches) in variants.items():
            rs = ablation_cell(runs, arch, switches)
            acc = [r["metrics"]["test_accuracy"] for r in rs]
            diffs = [100 * (r["metrics"]["test_accuracy"] - ref[r["seed"]]) for r in rs if r["seed"] in ref]
            (params,) = {r["params"]["trainable"] for r in rs}
            if arch == ref_arch and switches == ref_switches:
                paired, verdict = "reference", "reference"
            else:
                mean, n = statistics.mean(diffs), len(diffs)
                half = stats.t.ppf(0.975, n - 1) * statistics.stdev(diffs) / n**0.5
                paired = f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"
                verdict = "no difference measured" if mean - half <= 0 <= mean + half else "difference measured"
            expected[(name, variant)] = [f"{params:,}", f"{pm(acc)} ({len(rs)})", paired, verdict, ablation_notes(rs)]
    assert_table("ablations", "Recorded (cpu sizes, Fashion-MNIST", expected, keys=2)


# --- one model on two devices -------------------------------------------------------------------------------------

def test_scaling_table():
    """Every cell of the 1-vs-2-replicas table and the speed-ups in the text, from the images/s of the scaling record:
    per replica = total ÷ replicas, efficiency = total ÷ (replicas × one replica alone)."""
    name = re.search(r"`results/(scaling/scaling\.[\dT]+\.json)`", README).group(1)
    rec = load(name)
    expected, speedups = {}, []
    for row in rec["rows"]:
        total, one, n = row["images_per_s"], row["one_replica_images_per_s"], row["replicas"]
        expected[(str(row["batch_size"]),)] = [str(row["batch_size"] * n), f"{total:.1f}", f"{total / n:.1f}",
                                               f"{one:.1f}", f"{100 * total / (n * one):.0f} %"]
        speedups.append(total / one)
    assert_table("scaling", "**Recorded: 1 vs 2 replicas on this machine's CPU**", expected)
    assert [r["replicas"] for r in rec["rows"]] == [2, 2] and "| 2 replicas, images/s |" in README
    assert_claims("scaling text", prose("Both \"devices\" are the same two cores"), {
        "batch 16": f"the {speedups[0]:.2f}× at batch 16", "batch 64": f"all-reduce ({speedups[1]:.2f}×)"})


# --- throughput ---------------------------------------------------------------------------------------------------

NAMES = {"xception": "Xception", "resnet50": "ResNet-50", "resnet152": "ResNet-152", "resnet101": "ResNet-101",
         "lenet5": "LeNet", "lenet5_1998": "LeNet", "alexnet_one_tower": "one-tower AlexNet"}
MODES = {"train": "train", "infer": "inference"}
NUMBERS = dict(enumerate(("No", "One", "Two", "Three", "Four")))


def test_throughput_table():
    """Every figure of the CPU throughput sweep's table — CoV (median, share ≤ 5 %, worst, medians by mode and batch),
    our figure against the bare loop ((bare − ours) / bare), parity with keras.applications (ours ÷ keras), MFU
    (images/s × 2 FLOPs per MAC, 3x for a train step, ÷ the measured peak) — and the sweep's peak, models and timing."""
    sweep = load(re.search(r"`results/(throughput/throughput-sweep\.[\dT]+\.json)`", README).group(1))
    rows, parity, peak, n = sweep["rows"], sweep["parity"], sweep["peak_flops_per_s"], len(sweep["rows"])
    cov = np.array([r["cov"] for r in rows])
    worst = rows[int(cov.argmax())]
    cov_at = lambda m, b: pct(np.median([r["cov"] for r in rows if (r["mode"], r["batch_size"]) == (m, b)]))[:-2]  # noqa: E731
    overhead = np.array([(r["bare_images_per_s"] - r["images_per_s"]) / r["bare_images_per_s"] for r in rows])
    ratio = lambda p: f"{p['images_per_s'] / p['keras_images_per_s']:.3f}"  # noqa: E731
    ratios = lambda a, m: ", ".join(ratio(p) for p in sorted(parity, key=lambda p: p["batch_size"])  # noqa: E731
                                    if (p["arch"], p["mode"]) == (a, m))
    odd = min(parity, key=lambda p: p["images_per_s"] / p["keras_images_per_s"])
    mfu = lambda r: r["images_per_s"] * r["macs_per_image"] * {"train": 6, "infer": 2}[r["mode"]] / peak  # noqa: E731
    low, high, top = min(rows, key=mfu), max(rows, key=mfu), max(parity, key=mfu)
    shapes = {p["arch"]: "x".join(map(str, p["input_shape"][:2])) for p in parity}
    claims = {
        "CoV over windows": {
            "median": f"median {pct(np.median(cov))}; {(cov <= 0.05).sum()} of {n} figures "
                      f"({100 * (cov <= 0.05).mean():.0f} %) ≤ 5 %; worst {pct(cov.max())} ({NAMES[worst['arch']]} "
                      f"{worst['mode']}, batch {worst['batch_size']})",
            "by batch": "By batch: " + ", ".join(f"{m} {' / '.join(cov_at(m, b) for b in (1, 8, 32))} %" for m in MODES)
                        + " (medians at 1 / 8 / 32)"},
        "our figure vs a bare loop of the same compiled step": {
            "bare": f"median {pct(abs(np.median(overhead)))} {'below' if np.median(overhead) > 0 else 'above'} it; "
                    f"{(np.abs(overhead) <= 0.02).sum()} of {n} within 2 %; worst {pct(np.abs(overhead).max())}"},
        "parity with keras.applications (ours ÷ keras, full width)": {
            "ratios": "; ".join(f"{NAMES[a]} at {shapes[a]}: {ratios(a, 'train')} (train{' b1/8/32' * (i == 0)}), "
                                f"{ratios(a, 'infer')} (infer)" for i, a in enumerate(shapes)),
            "odd one": f"The {ratio(odd)} came with an {pct(odd['cov'], 0)} CoV on our side"},
        "MFU, highest": {
            "highest": f"{pct(mfu(top))} (full-width {NAMES[top['arch']]}, {MODES[top['mode']]}, batch "
                       f"{top['batch_size']})",
            "lowest": f"cpu-profile models {100 * mfu(low):.1f}–{100 * mfu(high):.0f} % ({NAMES[low['arch']]} "
                      f"{MODES[low['mode']]} batch {low['batch_size']} lowest",
            "top": f"{NAMES[high['arch']]} {MODES[high['mode']]} batch {high['batch_size']} highest"}}
    cells = dict(row[:2] for row in table_after("**Recorded CPU sweep**")[1])
    assert sorted(cells) == sorted(claims)
    for row, row_claims in claims.items():
        assert_claims(f"throughput · {row}", cells[row], row_claims)
    archs, timing = {r["arch"] for r in rows}, sweep["timing"]
    assert_claims("throughput text", prose("**Recorded CPU sweep**", "| |"), {
        "peak": f"Measured matmul peak: {peak / 1e9:.0f} GFLOP/s", "rows": f"the {n}-row table",
        "models": f"the {len(archs)} models of that sha x batch {{1, 8, 32}} x {{train, infer}}",
        "timing": f"{timing['warmup']} warm-up steps, {timing['repeats']} windows of ≥ {timing['min_window_s']:.0f} s",
        "sha": f"clean sha {sweep['env']['git']['sha'][:7]}"})
    assert sweep["env"]["git"]["dirty"] is False and n == len(archs) * 3 * 2


# --- memory -------------------------------------------------------------------------------------------------------

def sweep_rows(name: str, where) -> list[dict]:
    """The rows of a memory sweep the README cites by name for which ``where`` holds."""
    assert f"`{name}`" in README
    return [r for r in load(f"memory/{name}")["rows"] if where(r)]


def predictor_cells(rows: list[dict], predicted: str) -> list[str]:
    """A predictor table row: median abs error, train / infer medians, within 5 % and 15 %, the worst case and the
    count more than 10 % under — errors (predicted − measured) / measured from the recorded bytes."""
    errors = np.array([(r[predicted] - r["measured_peak_bytes"]) / r["measured_peak_bytes"] for r in rows])
    mode = np.array([r["mode"] for r in rows])
    median = {m: np.median(np.abs(errors[mode == m])) for m in ("train", "infer")}
    n, w = len(rows), int(np.abs(errors).argmax())
    return [pct(np.median(np.abs(errors))), f"{100 * median['train']:.1f} % / {pct(median['infer'])}",
            f"{(np.abs(errors) <= 0.05).sum()} of {n}", f"{(np.abs(errors) <= 0.15).sum()} of {n}",
            f"{pct(abs(errors[w]))} {'under' if errors[w] < 0 else 'over'} ({rows[w]['arch']}, {rows[w]['mode']}, "
            f"batch {rows[w]['batch_size']})", f"{(errors < -0.10).sum()} of {n}"]


def test_registry_memory_table():
    """Every cell of the registry predictor table: both predictors on both machines' sweeps, each over every
    registered model (the architecture cards) x batch {1, 8, 32} x {train, infer}."""
    registered = {p.stem for p in (RESULTS / "architectures").glob("*.json")}
    expected = {}
    for name, machine, graph in (("memory-sweep.20261127T152558.json", "AVX-512 Xeon", "traced graph, AVX-512 Xeon"),
                                 ("memory-sweep.20261127T064501.json", "AVX2 EPYC",
                                  "traced graph, AVX2 EPYC, one schedule")):
        rows = sweep_rows(name, lambda r: r["arch"] != "exercise" and "generator" not in r)
        assert {r["arch"] for r in rows} == registered and len(rows) == len(registered) * 6
        assert all(r["measured_peak_bytes"] for r in rows)
        expected[(f"layer model, {machine}",)] = predictor_cells(rows, "predicted_bytes")
        expected[(graph,)] = predictor_cells(rows, "graph_predicted_bytes")
    assert_table("memory", "**Where the predictor stands**", expected)
    assert_claims("memory text", prose("**Where the predictor stands**", "| predictor"), {
        "models": f"every registered model ({len(registered)}, the FCNs included)",
        "measured": f"{len(rows)} of {len(rows)} measured"})


def test_generated_networks_memory_table():
    """Every cell of the generated networks' predictor table: the 57 measured cases of 30 networks x 2 modes."""
    rows = sweep_rows("memory-sweep.20261127T150814.json", lambda r: "generator" in r)
    measured = [r for r in rows if r["measured_peak_bytes"]]
    assert len(rows) == 60 and len(measured) == 57  # 3 train steps crash TensorFlow
    expected = {(f"{p}, AVX-512 Xeon",): predictor_cells(measured, k)
                for p, k in (("layer model", "predicted_bytes"), ("traced graph", "graph_predicted_bytes"))}
    assert_table("generated", "**Recorded on 30 generated networks**", expected)
    assert_claims("generated text", prose("**Recorded on 30 generated networks**", "| predictor"), {
        "measured": f"{len(measured)} of {len(rows)} cases measured"})


def test_the_worked_exercise_figures():
    """The worked exercise's table (parameters, feature maps, bare minimum, traced and layer-model predictions,
    measured peaks over the steps, errors) and the layer model's errors in the text, from the sweep's two rows."""
    rows = {r["mode"]: r for r in sweep_rows("memory-sweep.20261127T150814.json", lambda r: r["arch"] == "exercise")}
    infer, train = rows["infer"], rows["train"]

    def error(r, key, measured="measured_peak_bytes"):
        return f"{100 * (r[key] / r[measured] - 1):+.1f} %".replace("-", "−")

    bare = lambda r: f"{r['bare_minimum_bytes']:,} B ({r['bare_minimum_bytes'] / 1e6:.1f} MB)"  # noqa: E731
    expected = {
        ("parameters",): [f"{infer['params']:,} ({infer['breakdown']['weights']:,} B)"],
        ("bare minimum, inference, 1 image",): [bare(infer)],
        ("bare minimum, training, batch 50",): [bare(train)],
        ("predicted (traced graph), inference, batch 1",): [f"{mib(infer['graph_predicted_bytes'])} MiB"],
        ("measured, inference, batch 1 (CPU, BFC, oneDNN)",): [
            f"{mib(infer['measured_peak_bytes'])} MiB ({mib(infer['measured_peak_min_bytes'])}–"
            f"{mib(infer['measured_peak_bytes'])} over 5 steps): prediction {error(infer, 'graph_predicted_bytes')}"],
        ("predicted (traced graph), training, batch 50, Adam",): [
            f"{mib(train['graph_predicted_bytes'])} MiB (layer model {mib(train['predicted_bytes'])})"],
        ("measured, training, batch 50, Adam",): [
            f"{mib(train['measured_peak_min_bytes'])}–{mib(train['measured_peak_bytes'])} MiB over 5 steps: prediction "
            f"{error(train, 'graph_predicted_bytes', 'measured_peak_min_bytes')} / "
            f"{error(train, 'graph_predicted_bytes')}"]}
    _, table = table_after("The exercise network (3 conv layers")
    assert train["batch_size"] == 50 and infer["batch_size"] == 1
    feature_maps = next(row[1] for row in table if row[0] == "feature maps per image")
    maps = [float(x) * 1e6 for x in re.findall(r"[\d.]+", feature_maps)]  # the first two: inference's two maps
    assert sum(maps[:2]) == infer["bare_minimum_breakdown"]["feature_maps"]
    assert sum(maps) == pytest.approx(train["bare_minimum_breakdown"]["feature_maps"] / train["batch_size"])
    expected[("feature maps per image",)] = [feature_maps]  # checked above
    assert_table("exercise", "The exercise network (3 conv layers", expected)
    assert_claims("exercise text", prose("Recorded by the sweep above"), {
        "infer": f"inference at batch 1 (the layer model: {error(infer, 'predicted_bytes')})",
        "train": f"the Adam step at batch 50 (the layer model: {error(train, 'predicted_bytes')})"})


# --- the GPU section (JAX on an H200) -----------------------------------------------------------------------------

def jax_parts() -> dict:
    """Each part of the JAX sweeps from the latest committed sweep that ran it (skipped cases are not a run)."""
    found = sorted((load(f"jax/{p.name}") for p in (RESULTS / "jax").glob("*.json")
                    if SHIPPED is None or f"results/jax/{p.name}" in SHIPPED), key=lambda s: s["started_at"])
    parts = {}
    for s in found:
        for part in ("rows", "throughput"):
            if [x for x in s[part] if x.get("outcome") != "skipped"]:
                parts[part] = [x for x in s[part] if x.get("outcome") != "skipped"]
        parts |= {part: s[part] for part in ("context", "budget", "oom") if s.get(part)}
    return parts


def test_gpu_throughput_table():
    """Every cell of the GPU section's throughput table — images/s ours and keras', their ratio, MFU = images/s x 6 x
    MACs (a train step: 3 x the forward's 2 per MAC) ÷ the matmul peak measured in that process — and the text's ratio
    range, peaks (the best process's) and ResNet-50's TFLOP/s."""
    timed, expected = jax_parts()["throughput"], {}
    flops = lambda t, ips: ips * 6 * t["macs_per_image"]  # noqa: E731
    for t in timed:
        expected[(t["arch"], "x".join(map(str, t["input_shape"])), t["precision"], t["mode"], str(t["batch_size"]))] = [
            f"{t['images_per_s']:,.1f}", f"{t['keras_images_per_s']:,.1f}",
            f"{t['images_per_s'] / t['keras_images_per_s']:.3f}",
            *(pct(flops(t, t[k]) / t["peak_flops_per_s"]) for k in ("images_per_s", "keras_images_per_s"))]
    assert_table("gpu throughput", "## On a GPU through Keras' JAX backend", expected, keys=5)
    ratios = [t["images_per_s"] / t["keras_images_per_s"] for t in timed]
    peak = {p: max(t["peak_flops_per_s"] for t in timed if t["precision"] == p) / 1e12 for p in ("float32",
                                                                                                   "mixed_float16")}
    (r50,) = (t for t in timed if (t["arch"], t["precision"], t["batch_size"]) == ("resnet50", "float32", 64))
    assert_claims("gpu throughput text", prose("Ours and keras.applications", "Not measured on a GPU yet"), {
        "ratios": f"the same speed on XLA ({min(ratios):.3f}–{max(ratios):.3f})",
        "peak": f"the matmul peak was measured at {peak['float32']:.1f} TFLOP/s",
        "resnet50": f"ResNet-50 at batch 64 does {flops(r50, r50['images_per_s']) / 1e12:.0f} TFLOP/s",
        "float16": f"(float16: {peak['mixed_float16']:.0f} TFLOP/s)"})


def test_gpu_budget_oom_and_memory_figures():
    """The GPU section's overhead, budget and OOM figures, and the memory medians: predicted against XLA's peak,
    (predicted − peak) / peak, by batch and mode, per model for batch-32 float32 train steps, and NVML − XLA's peak."""
    parts = jax_parts()
    budget, oom, ctx, memory = parts["budget"], parts["oom"], parts["context"], parts["rows"]
    m = lambda n: mib(n, 0)  # noqa: E731
    measured = [r for r in memory if r.get("peak_bytes")]
    error = {(r["arch"], r["precision"], r["mode"], r["batch_size"]): 100 * (r["predicted_bytes"] / r["peak_bytes"] - 1)
             for r in measured}  # keyed by case: (arch, precision, mode, batch)
    median = lambda f: two_figures(np.median([e for k, e in error.items() if f(*k)]))  # noqa: E731
    per_model = ", ".join(f"{label} {two_figures(error[(arch, 'float32', 'train', 32)])} %" for arch, label in (
        ("resnet50", "ResNet-50"), ("xception", "Xception"), ("efficientnet_lite0", "EfficientNet-Lite0"),
        ("googlenet", "GoogLeNet"), ("seresnet50", "SE-ResNet-50"), ("vgg16", "VGG16")))
    assert_claims("gpu", prose("**Recorded on one NVIDIA H200**", "| model"), {
        "overhead": f"**{m(ctx['nvml_process_bytes'])} MiB**",
        "budget": f"{budget['budget_bytes'] / 2**30:.0f} GiB → largest batch **{budget['batch_size']}** (predicted "
                  f"{m(budget['predicted_bytes'])} MiB; batch {budget['batch_size'] + 1}: "
                  f"{m(budget['next_predicted_bytes'])} MiB, over)",
        "budget run": f"XLA's peak {m(budget['peak_bytes'])} MiB, compilation included (NVML: "
                      f"{m(budget['nvml_process_bytes'])} MiB for the process)",
        "oom": f"batch {oom['batch_size']:,} (predicted {m(oom['predicted_bytes'])} MiB against the GPU's "
               f"{m(oom['gpu_bytes'])} MiB): outcome **{oom['outcome']}**, \"{oom['error'].split(' with ')[0]}\" after "
               f"{oom['wall_s']:.0f} s",
        "train 32": f"batch-32 train steps median {median(lambda *case: case[2:] == ('train', 32))} % ({per_model})",
        "infer 32": f"batch-32 inference median {median(lambda *case: case[2:] == ('infer', 32))} %",
        "batch 1": f"batch 1 median {median(lambda *case: case[3] == 1)} %",
        "failed": f"{NUMBERS[len(memory) - len(measured)]} of {len(memory)} cases failed",
        "nvml": f"NVML minus XLA's peak: median "
                f"{m(np.median([r['nvml_process_bytes'] - r['peak_bytes'] for r in measured]))} MiB per process"})
    assert budget["outcome"] == "ok" and all(e < 0 for e in error.values())  # under-predicted in every case


# --- not a README figure: what a fresh clone's suite counts as done ---------------------------------------------

def test_other_machines_records_are_not_taken_as_done(smoke_record, tmp_path, monkeypatch):
    """What a fresh clone's `nox -s bench-cpu` (suite --resume) counts as done: only ok records from this machine,
    this model/harness code and the cell's settings. The committed records were measured on another machine than a
    newcomer's, so their cells run again; records written before code fingerprints never count."""
    from cnnbench.spec import RunConfig
    from cnnbench.suite import cell_finished, finished

    monkeypatch.setenv("CNNBENCH_MACHINE", "Newcomer Laptop")
    assert len(list(records.iter_records(ROOT / "results"))) > 30 and finished(ROOT / "results") == set()
    monkeypatch.delenv("CNNBENCH_MACHINE")
    here, elsewhere, old = tmp_path / "here", tmp_path / "elsewhere", tmp_path / "old"
    records.write(smoke_record, here)
    assert {k for k, _ in finished(here)} == {("lenet5", "mnist", "smoke", 0)}  # this machine, this code: done
    moved = json.loads(json.dumps(smoke_record))
    moved["env"]["machine"] = {"id": "newcomer-laptop", "source": "CNNBENCH_MACHINE"}
    records.write(moved, elsewhere)
    changed = json.loads(json.dumps(smoke_record))
    changed["env"]["model_code_sha256"] = "0" * 64  # its model's code has changed since
    records.write(changed, old)
    unfingerprinted = json.loads(json.dumps(smoke_record))
    del unfingerprinted["env"]["code_sha256"], unfingerprinted["env"]["model_code_sha256"]
    records.write(unfingerprinted, old)
    assert finished(elsewhere) == set() and finished(old) == set()
    other_model = json.loads(json.dumps(smoke_record))
    other_model["env"]["code_sha256"] = "0" * 64  # another model's code changed since, not this one's: still done
    records.write(other_model, tmp_path / "other_model")
    assert {k for k, _ in finished(tmp_path / "other_model")} == {("lenet5", "mnist", "smoke", 0)}
    monkeypatch.setenv("CNNBENCH_MACHINE", "Newcomer Laptop")
    assert {k for k, _ in finished(elsewhere)} == {("lenet5", "mnist", "smoke", 0)} and finished(here) == set()
    # a recording split over machines (--resume any): this code's records count wherever they were measured ...
    assert finished(here, any_machine=True) == finished(elsewhere) and finished(old, any_machine=True) == set()
    # ... but only for the settings they ran with: another epoch count is another experiment
    other = json.loads(json.dumps(smoke_record))
    other["config"]["determinants"]["epochs"] = "99"
    records.write(other, tmp_path / "other")
    cell = RunConfig(arch="lenet5", task="mnist", profile="smoke", seed=0)
    assert cell_finished(elsewhere, cell) and not cell_finished(tmp_path / "other", cell)
    assert not cell_finished(here, cell) and cell_finished(here, cell, any_machine=True)
    # ... and what the profile sets for this cell, not the profile's source: another model's entry may change
    smoke = profiles.PROFILES["smoke"]
    for edit, done in (({"arch_settings": (*smoke.arch_settings, ("vgg16", {"epochs": 99}))}, True),
                       ({"arch_settings": (*smoke.arch_settings, ("lenet5", {}))}, True),
                       ({"arch_settings": (*smoke.arch_settings, ("lenet5", {"epochs": 99}))}, False),
                       ({"precise_bn_images": 99}, False), ({"test_subset": 99}, False)):
        monkeypatch.setitem(profiles.PROFILES, "smoke", dataclasses.replace(smoke, **edit))
        assert cell_finished(elsewhere, cell) == done, edit


def test_determinants_name_the_weights_data_and_replicas_only_where_they_apply():
    """A transfer run from scratch is not the ImageNet-initialised cell done; an MNIST cell names none of them (so the
    records of the MNIST recording keep matching)."""
    from cnnbench.spec import RunConfig, resolve

    transfer = lambda **kw: resolve(RunConfig(arch="efficientnet_lite0", task="transfer", profile="smoke", **kw))  # noqa: E731
    assert transfer().determinants()["weights"] == "imagenet"
    assert transfer(weights="scratch").determinants()["weights"] == "scratch"
    assert transfer(dataset="fashion_mnist").determinants()["dataset"] == "fashion_mnist"
    mnist = resolve(RunConfig(arch="lenet5", profile="smoke")).determinants()
    assert not {"weights", "dataset", "cpu devices"} & set(mnist)
    assert resolve(RunConfig(arch="lenet5", profile="smoke", strategy="mirrored", cpu_devices=2)).determinants()[
        "cpu devices"] == "2"
