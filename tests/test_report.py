"""The report site, rendered from fixture records (copies of committed ones, plus hostile, failed, invalid and ablation
records made here): its content, escaping, figures, links, bad inputs and the baseline comparison."""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from cnnbench.cli import main
from cnnbench.report import ReportError, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RESULTS = Path(__file__).resolve().parent.parent / "results"
HOSTILE = '<script>alert("x")</script> *bold* | [link](http://x) _u_'
PAGES = ("index.html", "runs.html", "innovations.html", "memory.html", "throughput.html")


def _copy(dst: Path, pattern: str) -> list[Path]:
    out = []
    for p in sorted(RESULTS.glob(pattern)):
        target = dst / p.relative_to(RESULTS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, target)
        out.append(target)
    return out


def _write(path: Path, record: dict) -> Path:
    path.write_text(json.dumps(record))
    return path


def _samples(n=3, size=8):
    rows = lambda v: ["".join(str(v) for _ in range(size)) for _ in range(size)]  # noqa: E731
    return [{"input": rows(9), "truth": rows(1), "predicted": rows(2)} for _ in range(n)]


@pytest.fixture(scope="module")
def fixture_results(tmp_path_factory):
    """Committed records of three tasks and the sweeps, a card, and records made to be awkward."""
    d = tmp_path_factory.mktemp("results")
    lenet = _copy(d, "lenet5.mnist.cpu.seed[12].20261125T18*.json") + _copy(d, "lenet5.mnist.cpu.seed0.*T1818*.json")
    _copy(d, "efficientnet_lite0.transfer.cpu.*.json")
    seg = _copy(d, "fcn8s_vgg16.segmentation.cpu.*.json")
    _copy(d, "memory/*.json"), _copy(d, "throughput/*.json"), _copy(d, "jax/*.json")
    for p in seg:  # as a current segmentation record keeps them
        r = json.loads(p.read_text())
        r["metrics"]["samples"] = _samples()
        _write(p, r)
    base = json.loads(lenet[0].read_text())
    hostile = copy.deepcopy(base) | {"arch": "alexnet", "seed": 7, "outcome": "error",
                                     "error": {"type": "RuntimeError", "message": HOSTILE}}
    hostile["env"]["device"]["name"] = HOSTILE
    _write(d / "alexnet.mnist.cpu.seed7.hostile.json", hostile)
    weird = copy.deepcopy(base) | {"arch": "vgg16", "seed": 0}
    weird["config"]["weights"] = HOSTILE
    _write(d / "vgg16.mnist.cpu.seed0.weird.json", weird)
    (d / "resnet18.mnist.cpu.seed0.nan.json").write_text(lenet[0].read_text().replace(
        '"test_accuracy": 0.991', '"test_accuracy": NaN, "x": 0.991', 1))
    null = copy.deepcopy(base) | {"arch": "resnet34"}
    null["metrics"]["test_accuracy"] = None
    _write(d / "resnet34.mnist.cpu.seed0.null.json", null)
    for seed, (a, b) in enumerate([(0.90, 0.92), (0.91, 0.935), (0.89, 0.915)]):  # a paired ablation, 3 seeds
        for variant, score in (("none", a), ("lrn", b)):
            r = copy.deepcopy(base) | {"arch": "alexnet", "seed": seed}
            r["config"] |= {"ablation": "lrn", "variant": variant, "reference": variant == "none",
                            "claim": "AlexNet §3.3: LRN buys 1.2-1.4 % top-1"}
            r["metrics"]["test_accuracy"] = score
            _write(d / f"alexnet.ablation-lrn-{variant}.cpu.seed{seed}.json", r)
    return d


@pytest.fixture(scope="module")
def card(fixture_results):
    from cnnbench.cards import write_cards

    (path,) = write_cards("lenet5", fixture_results)
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def site(fixture_results, card, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build_report(fixture_results, out)
    return out


def test_cards_count_the_paper_network_layer_by_layer(card):
    assert card["params"]["total"] == card["model"]["reference_params"] == 61_706
    assert sum(layer["params"] for layer in card["layers"]) == 61_706
    assert sum(layer["macs"] for layer in card["layers"]) == card["flops"]["macs"] > 0
    assert card["layers"][0]["output_shape"] == [[28, 28, 6]] and card["model"]["doc"]


def test_the_index_has_a_leaderboard_per_task_with_the_records_numbers(site, fixture_results):
    page = (site / "index.html").read_text()
    for title in ("MNIST (real, 10 digits)", "Transfer learning", "Segmentation"):
        assert title in page
    # LeNet-5's three seeds: mean ± sample std computed here from the files
    accs = [json.loads(p.read_text())["metrics"]["test_accuracy"] for p in fixture_results.glob("lenet5.mnist.*")]
    assert f"{100 * statistics.mean(accs):.2f} ± {100 * statistics.stdev(accs):.2f} (3)" in page
    seg = [json.loads(p.read_text())["metrics"]["miou"] for p in fixture_results.glob("fcn8s_vgg16.*")]
    assert f"{100 * statistics.mean(seg):.2f} ± {100 * statistics.stdev(seg):.2f} (3)" in page
    assert "Reduced scale" in page and "★" in page
    assert "one seed: no spread" in page  # vgg16's single record is flagged
    # GMACs at the paper input come from the card
    assert "0.000" not in page and "0.42 M" in page  # LeNet-5: 0.416 MMACs


def test_every_figure_exists_and_every_link_resolves(site):
    pages = list(site.rglob("*.html"))
    assert {p.name for p in pages} >= set(PAGES) and (site / "arch" / "lenet5.html").is_file()
    for page in pages:
        for target in re.findall(r'(?:href|src)="([^"#:]+)"', page.read_text()):
            assert (page.parent / target).resolve().is_file(), f"{page.name} → {target}"
    figures = list((site / "figures").glob("*.svg"))
    names = {f.name for f in figures}
    assert {"mnist-training-curves.svg", "transfer-pretrained-vs-scratch.svg", "segmentation-samples.svg",
            "segmentation-fcn-miou.svg", "memory-predicted-vs-measured.svg", "memory-vs-batch.svg",
            "throughput-vs-batch.svg"} <= names, names
    assert any(n.startswith("transfer-confusion-") for n in names)
    for f in figures:
        assert f.stat().st_size > 1000 and f.read_text().lstrip().startswith("<?xml"), f.name
    for f in site.rglob("*"):
        if f.is_file():
            assert f.stat().st_mode & 0o777 == 0o644, f


def test_record_text_is_escaped_in_html_and_markdown(site):
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "<script>" not in text and 'alert("x")' not in text, page.name
    runs = (site / "runs.html").read_text()
    assert "&lt;script&gt;alert(" in runs and "RuntimeError" in runs  # the failure is shown, escaped
    md = (site / "summary.md").read_text()
    assert "\\<script\\>" in md and "\\*bold\\*" in md and "\\|" in md and "<script>" not in md


def test_invalid_records_are_skipped_with_a_warning_naming_the_file(fixture_results, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        build_report(fixture_results, tmp_path)
    assert "resnet18.mnist.cpu.seed0.nan.json" in caplog.text and "resnet34.mnist.cpu.seed0.null.json" in caplog.text
    assert "resnet18" not in (tmp_path / "runs.html").read_text()


def test_the_innovations_page_shows_paired_ablation_differences(site):
    page = (site / "innovations.html").read_text()
    d = np.array([0.92 - 0.90, 0.935 - 0.91, 0.915 - 0.89])
    half = 4.303 * d.std(ddof=1) / np.sqrt(3)
    assert f"{100 * d.mean():+.2f} [{100 * (d.mean() - half):+.2f}, {100 * (d.mean() + half):+.2f}] (3 pairs)" in page
    assert "difference measured" in page
    # stated correctly: LRN is a sum of squares across channels; AlexNet adopted dropout
    assert "sum of squares" in page and "it did not invent it" in page


def test_bad_inputs_exit_2_with_a_clear_message(tmp_path, capsys, fixture_results):
    assert main(["report", "--results", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", "--results", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no result records" in capsys.readouterr().err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["report", "--results", str(fixture_results), "--out", str(blocker / "reports")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the report" in err and "Traceback" not in err
    with pytest.raises(ReportError):
        build_report(tmp_path / "empty", tmp_path / "o")


def test_a_folder_of_failures_renders_and_shows_them(tmp_path, fixture_results):
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(fixture_results / "alexnet.mnist.cpu.seed7.hostile.json", results)
    build_report(results, tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text()
    assert "every recorded run failed" in index
    assert "1 error" in (tmp_path / "site" / "runs.html").read_text()


def test_baseline_flags_a_regression_and_not_an_identical_run(tmp_path, fixture_results, card):
    same = build_report(fixture_results, tmp_path / "same", baseline_dir=fixture_results).read_text()
    assert "No regression against the baseline" in same
    slower = tmp_path / "slower"
    shutil.copytree(fixture_results, slower)
    for p in slower.glob("lenet5.mnist.*.json"):
        r = json.loads(p.read_text())
        r["throughput"]["train_images_per_s"] *= 0.8
        p.write_text(json.dumps(r))
    page = build_report(slower, tmp_path / "slow", baseline_dir=fixture_results).read_text()
    assert "1 regression(s)" in page and "train img/s -20.0 %" in page


# --- in a real browser: headless Chromium (Debian's `chromium`, driven by Playwright) opens every page from disk ---

SCREENSHOTS = Path(__file__).resolve().parent.parent / ".screenshots"


@pytest.mark.full
def test_every_page_renders_in_chromium(site, monkeypatch):
    """What a reader sees: no console errors, every image loaded, nothing wider than a 1280 px window; a screenshot
    of each page is written (.screenshots/) for a person to look at."""
    from playwright import sync_api

    assert CHROMIUM, "no Chromium on PATH (Debian: apt-get install chromium; `nox -s tests-full` installs it as root)"
    monkeypatch.setenv("TMPDIR", "/tmp")  # Chromium's profile socket path must stay short (< 108 bytes)
    pages = sorted(site.rglob("*.html"))
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        for path in pages:
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
                                   ".map(i => i.getAttribute('src'))")
            assert not broken, f"{path.name}: images not loaded: {broken}"
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 1280, f"{path.relative_to(site)} is {width} px wide at a 1280 px window"
            shot = SCREENSHOTS / (str(path.relative_to(site)).replace("/", "-") + ".png")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        browser.close()
    assert not errors, errors


def test_memory_figures_show_the_traced_graph_where_the_sweep_ran_it(tmp_path):
    import pandas as pd

    from cnnbench.report import figures

    mib = 2**20
    rows = pd.DataFrame({"arch": ["a", "a", "b"], "mode": ["train", "infer", "train"], "batch_size": [1, 1, 8],
                         "predicted_bytes": [10 * mib, 5 * mib, 20 * mib],
                         "graph_predicted_bytes": [12 * mib, None, 21 * mib],
                         "measured_peak_bytes": [12 * mib, 6 * mib, 22 * mib]})
    assert list(figures._predicted_mib(rows)) == [12, 5, 21]  # the layer model only where the graph did not run
    name = figures.predicted_vs_measured(rows, tmp_path)
    assert "traced graph" in (tmp_path / name).read_text()
    layers_only = rows.drop(columns="graph_predicted_bytes")
    assert list(figures._predicted_mib(layers_only)) == [10, 5, 20]
    assert "traced graph" not in (tmp_path / figures.predicted_vs_measured(layers_only, tmp_path, "b.svg")).read_text()


def test_the_throughput_page_compares_backends_side_by_side(tmp_path):
    """results/backends/: a throughput sweep per backend and the same smoke cell's records; the page's table sets
    each backend's images/s and accuracy over seeds beside the others' (numbers made here: the layout, not a
    measurement)."""
    (folder := tmp_path / "backends" / "throughput").mkdir(parents=True)
    cell = json.loads(next(RESULTS.glob("lenet5.mnist.cpu.seed1.20261125T18*.json")).read_text())
    for backend, rate, accuracies in (("tensorflow", 5000.0, (0.91, 0.93)), ("jax", 4000.0, (0.92, 0.95))):
        env = cell["env"] | {"keras_backend": backend}
        rows = [{"arch": "lenet5", "mode": mode, "batch_size": 32, "images_per_s": rate * (1 + (mode == "infer")),
                 "cov": 0.01} for mode in ("train", "infer")]
        _write(folder / f"throughput-sweep.{backend}.json", {"kind": "throughput_sweep", "env": env, "rows": rows,
                                                            "started_at": "2026-12-07T05:00:00", "summary": {}})
        for seed, accuracy in enumerate(accuracies):
            record = copy.deepcopy(cell) | {"seed": seed, "env": env, "profile": "smoke"}
            record["metrics"]["test_accuracy"] = accuracy
            _write(tmp_path / "backends" / f"lenet5.mnist.smoke.seed{seed}.{backend}.json", record)
    _copy(tmp_path, "lenet5.mnist.cpu.seed1.20261125T18*.json")
    build_report(tmp_path, tmp_path / "site")
    page = (tmp_path / "site" / "throughput.html").read_text()
    assert "The same models on each Keras backend" in page
    # Welch: variances of the means 1e-4 and 2.25e-4, 1.74 degrees of freedom → t(1) = 12.7062, half-width
    # 12.7062 * sqrt(3.25e-4) = 22.91 pp around +1.50
    for figure in ("5,000", "10,000", "4,000", "8,000", "92.00 ± 1.41 (2)", "93.50 ± 2.12 (2)",
                   "jax − tensorflow (pp, 95 % CI)", "+1.50 [-21.41, +24.41]"):
        assert figure in page, figure
    assert page.index("tensorflow train img/s") < page.index("jax train img/s")


def test_each_architecture_keeps_one_colour_and_its_label_in_every_figure(tmp_path):
    """The score-vs-cost figure labels every point with its model; a model's colour is the same in every figure
    (sorted names into one palette), and distinct models get distinct colours."""
    import pandas as pd
    from matplotlib.colors import to_hex

    from cnnbench.report import figures

    names = [f"net{i:02d}" for i in range(24)]
    colours = figures.arch_colours(names)
    assert len({to_hex(c) for c in colours.values()}) == 24 and figures.arch_colours(reversed(names)) == colours
    archs = ["resnet18", "vgg16", "lenet5"]
    colours = figures.arch_colours(["alexnet", *archs])
    summary = pd.DataFrame({"task": "mnist", "arch": archs, "score_mean": [0.991, 0.99, 0.989],
                            "score_std": [0.001, np.nan, 0.002], "macs": [1.2e8, 3e8, 4e5],
                            "params_trainable": [2.8e6, 3.7e6, 6.2e4], "weights": "scratch", "profile": "cpu",
                            "machine": "m"})
    runs = pd.DataFrame({"task": "mnist", "arch": archs, "outcome": "ok", "profile": "cpu",
                         "train_loss_curve": [[1.0, 0.5], [1.2, 0.4], [0.9, 0.3]]})
    scatter = (tmp_path / figures.score_vs_cost(summary, "mnist", "accuracy", tmp_path, x="gmacs",
                                                colours=colours)).read_text()
    curves = (tmp_path / figures.training_curves(runs, "mnist", tmp_path, colours)).read_text()
    for arch in archs:
        assert f">{arch}<" in scatter and to_hex(colours[arch]) in scatter and to_hex(colours[arch]) in curves
