"""The CLI options no other test drives: each one through ``main(argv)``, checked by what it changed (the record, its
config, the JSON or text output), at smoke sizes."""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cnnbench.cli import main

RESULTS = Path(__file__).resolve().parent.parent / "results"
#: a run as small as the harness allows: one epoch on 256 images, no measuring process, no timing
SMALL = ["--profile", "smoke", "--epochs", "1", "--train-subset", "256", "--no-measure-memory",
         "--no-measure-throughput"]


def _run(tmp_path: Path, *argv: str) -> dict:
    results = tmp_path / "results"
    assert main(["run", *argv, *SMALL, "--results", str(results)]) == 0
    (path,) = results.glob("*.json")
    return json.loads(path.read_text())


def _json(capsys, argv: list[str]):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@contextlib.contextmanager
def _plain_root_logger():
    """The root logger as a fresh process has it (no handlers), so ``main``'s ``logging.basicConfig`` takes effect
    inside pytest; pytest's own handlers and level come back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


# --- -v ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [["-v"], ["--verbose"], []])
def test_verbose_shows_info_log_lines_that_are_hidden_without_it(flags, capsys):
    """-v/--verbose: cnnbench's INFO messages (here: a data source it falls back from) reach stderr; without it not."""
    from cnnbench.data._store import from_tfds

    with _plain_root_logger():
        assert main([*flags, "memory", "lenet5", "--batch-size", "1"]) == 0
        assert logging.getLogger("cnnbench").isEnabledFor(logging.INFO) == bool(flags)
        assert from_tfds("no_such_dataset_xyz") is None  # logs at INFO that it tries the next source
    err = capsys.readouterr().err
    assert ("INFO no usable TFDS copy of no_such_dataset_xyz" in err) == bool(flags)


# --- run -----------------------------------------------------------------------------------------------------------

def test_run_learning_rate_is_the_optimizers(tmp_path):
    """run --learning-rate replaces the profile's rate (smoke: 1e-3) in the record's optimizer config."""
    record = _run(tmp_path, "lenet5", "--learning-rate", "0.005")
    assert record["config"]["optimizer"]["learning_rate"] == 0.005
    assert record["config"]["profile"]["learning_rate"] == 1e-3  # the profile's own, overridden


@pytest.mark.parametrize(("arch", "recipe", "held_out"), [("lenet5", "augment", None), ("mnist_cnn", "plain", 5000)])
def test_run_recipe_and_hold_out_override_the_profiles(arch, recipe, held_out, tmp_path):
    """--recipe overrides the profile's (augment warms up; plain does not); --hold-out N trains on all but the last N
    training images and scores those after every epoch; without it nothing is held out."""
    from cnnbench.profiles import get_profile

    assert get_profile("smoke").setting(arch)["recipe"] != recipe  # the option, not the profile, decides
    record = _run(tmp_path, arch, "--recipe", recipe, *(["--hold-out", str(held_out)] if held_out else []))
    config, metrics, held_out = record["config"], record["metrics"], held_out or 0
    assert config["recipe"]["name"] == recipe and config["recipe"]["validation_images"] == held_out
    assert record["dataset"]["n_val"] == held_out and record["dataset"]["n_train"] == 256
    assert ("val_accuracy" in metrics) == bool(held_out) and ("val_accuracy_curve" in metrics) == bool(held_out)
    assert config["optimizer"]["warmup_epochs"] == (1.0 if recipe == "augment" else 0.0)


def test_run_recipe_is_refused_where_the_task_trains_by_its_own(tmp_path, capsys):
    """run --recipe augment on segmentation (its own recipe): exit 2 before anything is written."""
    argv = ["run", "fcn32s_vgg16", "--task", "segmentation", "--recipe", "augment", "--results", str(tmp_path / "r")]
    assert main(argv) == 2
    assert "the segmentation task trains by its own recipe" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_run_dataset_picks_the_tasks_source(tmp_path, monkeypatch):
    """--dataset mnist_composites: segmentation reads that source (never the default) and records it."""
    from cnnbench.tasks import segmentation

    monkeypatch.setattr(segmentation, "default_source", lambda: pytest.fail("--dataset was not used"))
    record = _run(tmp_path, "fcn32s_vgg16", "--task", "segmentation", "--dataset", "mnist_composites")
    assert record["outcome"] == "ok" and record["task"] == "segmentation"
    assert record["dataset"]["name"] == record["dataset"]["source"] == "mnist_composites"
    assert record["dataset"]["n_train"] == 256 and 0 <= record["metrics"]["miou"] <= 1


def test_run_dataset_the_task_cannot_read_is_refused(tmp_path, capsys):
    """run --dataset on mnist (which reads MNIST only): exit 2 naming the dataset, nothing written."""
    assert main(["run", "lenet5", "--dataset", "fashion_mnist", "--results", str(tmp_path / "r")]) == 2
    assert "the mnist task reads mnist only, not 'fashion_mnist'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# --- suite ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def planned(monkeypatch):
    """``cnnbench.suite.run_suite`` replaced by a recorder (its arguments), the datasets' verification by one that
    notes the task: what a suite would run, without running it."""
    from cnnbench import suite
    from cnnbench.tasks.classification import MnistTask

    seen: dict = {"verified": []}
    monkeypatch.setattr(MnistTask, "verify_data", lambda self, data_dir=None: seen["verified"].append(self.name))
    monkeypatch.setattr(suite, "run_suite", lambda cells, **kw: seen.update(cells=cells, **kw) or 0)
    return seen


@pytest.mark.parametrize("names", [["conv_vs_fc"], ["all"]])
def test_suite_ablations_adds_their_paired_cells(names, planned, tmp_path):
    """suite --ablations NAME|all: the profile's cells plus each named ablation's paired Fashion-MNIST cells."""
    from cnnbench.ablations import ABLATIONS, run_configs

    assert main(["suite", "--profile", "smoke", "--archs", "lenet5", "--seeds", "0", "--ablations", *names,
                 "--results", str(tmp_path)]) == 0
    expected = run_configs(list(ABLATIONS) if names == ["all"] else names, "smoke", (0,))
    own, paired = planned["cells"][:1], planned["cells"][1:]
    assert [(c.arch, c.task, c.ablation) for c in own] == [("lenet5", "mnist", None)]
    assert paired == expected and {c.task for c in paired} == {"fashion_mnist"}
    assert {c.ablation["ablation"] for c in paired} <= set(ABLATIONS)
    assert planned["verified"] == ["mnist", "fashion_mnist"]


def test_suite_without_ablations_runs_none(planned, tmp_path):
    """suite without --ablations: no ablation cell, Fashion-MNIST not even verified."""
    assert main(["suite", "--profile", "smoke", "--archs", "lenet5", "--seeds", "0", "--results", str(tmp_path)]) == 0
    assert [c.ablation for c in planned["cells"]] == [None] and planned["verified"] == ["mnist"]


@pytest.mark.parametrize("address", ["ray://head:10001", "auto", None])
def test_suite_address_reaches_the_ray_executor(address, monkeypatch, tmp_path):
    """suite --executor ray --address A: every cell reaches ``cluster.run_on_ray`` with that address (none: local)."""
    from cnnbench import cluster
    from cnnbench.tasks.classification import MnistTask

    monkeypatch.setattr(MnistTask, "verify_data", lambda self, data_dir=None: {})
    calls = []

    def run_on_ray(todo, *, results_dir, address):
        calls.append((todo, results_dir, address))
        return Counter(run=len(todo))

    monkeypatch.setattr(cluster, "run_on_ray", run_on_ray)
    argv = ["suite", "--profile", "smoke", "--archs", "lenet5", "mlp", "--seeds", "0", "--executor", "ray",
            "--results", str(tmp_path)]
    assert main([*argv, *(["--address", address] if address else [])]) == 0
    ((todo, results_dir, got),) = calls
    assert got == address and Path(results_dir) == tmp_path
    assert [cell.arch for _, cell in todo] == ["lenet5", "mlp"]


def test_suite_address_without_ray_is_refused(planned, tmp_path, capsys):
    """suite --address with the local executor: exit 2, nothing run."""
    argv = ["suite", "--profile", "smoke", "--archs", "lenet5", "--address", "auto", "--results", str(tmp_path)]
    assert main(argv) == 2
    assert "--address is for --executor ray" in capsys.readouterr().err and "cells" not in planned


# --- memory and fit ------------------------------------------------------------------------------------------------

MEMORY = ["memory", "lenet5", "--batch-size", "8", "--json"]


def test_memory_optimizer_sets_the_slots_it_keeps(capsys):
    """memory --optimizer: sgd keeps no slot per weight, momentum one, adam two; the prediction grows in that order."""
    reports = {o: _json(capsys, [*MEMORY, "--optimizer", o]) for o in ("sgd", "momentum", "adam")}
    trainable = reports["adam"]["breakdown"]["optimizer_slots"] // 2
    assert trainable == 4 * reports["adam"]["params"]  # lenet5: every weight trains, float32
    for o, slots in (("sgd", 0), ("momentum", 1), ("adam", 2)):
        assert reports[o]["optimizer"] == o and reports[o]["breakdown"]["optimizer_slots"] == slots * trainable
    assert reports["sgd"]["predicted_bytes"] < reports["momentum"]["predicted_bytes"] < reports["adam"][
        "predicted_bytes"]
    assert reports["sgd"]["breakdown"]["weights"] == reports["adam"]["breakdown"]["weights"]
    capsys.readouterr()
    assert main(["memory", "lenet5", "--optimizer", "adamx"]) == 2
    assert "unknown optimizer 'adamx'" in capsys.readouterr().err


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_memory_precision_halves_what_is_held_in_16_bits(precision, capsys):
    """memory --precision mixed_*: activations and input take 2 bytes, weights and optimizer slots stay float32."""
    full, half = (_json(capsys, [*MEMORY, "--precision", p]) for p in ("float32", precision))
    assert half["precision"] == precision and full["precision"] == "float32"
    assert half["breakdown"]["input_batch"] * 2 == full["breakdown"]["input_batch"]
    assert half["breakdown"]["activations_peak"] < full["breakdown"]["activations_peak"]
    for key in ("weights", "optimizer_slots"):
        assert half["breakdown"][key] == full["breakdown"][key]
    assert half["predicted_bytes"] < full["predicted_bytes"]


def test_fit_measure_measures_each_remedy_at_the_batch_it_allows(capsys, monkeypatch):
    """fit --measure: each applicable remedy is measured once at its batch with its switch; without it, none is."""
    from cnnbench.measure import advisor, memory_probe
    from cnnbench.measure.memory import predict_memory
    from cnnbench.measure.steps import build_for_memory

    def layer_model(spec, mode, optimizer, precision, frozen):  # the traced step's cheap stand-in
        model, shape = build_for_memory(spec)
        return lambda b: predict_memory(model, batch_size=b, input_shape=shape, mode=mode, optimizer=optimizer,
                                        precision=precision, frozen_backbone=frozen)["predicted_bytes"]

    probed = []
    monkeypatch.setattr(advisor, "_traced_predictor", layer_model)
    monkeypatch.setattr(memory_probe, "measure", lambda spec: probed.append(spec) or {
        "measured_peak_bytes": 1_000_000 + len(probed)})
    argv = ["fit", "lenet5", "--memory-budget", "16MiB", "--json"]
    advice = _json(capsys, argv)
    assert probed == [] and all(r.get("measured_peak_bytes") is None for r in advice["remedies"])
    advice = _json(capsys, [*argv, "--measure"])
    rows = {r["remedy"].split(" (")[0]: r for r in advice["remedies"]}
    measurable = [r for name, r in rows.items() if r.get("batch_size") and name != "gradient checkpointing"]
    assert len(measurable) >= 3 and len(probed) == len(measurable)
    for row, spec in zip(measurable, probed, strict=True):
        assert spec["batch_size"] == row["batch_size"] > 0 and row["measured_peak_bytes"] > 1_000_000
    by_batch = {(s["batch_size"], s.get("precision"), s.get("frozen_backbone")) for s in probed}
    assert (rows["mixed precision"]["batch_size"], "mixed_float16", None) in by_batch
    assert (rows["frozen backbone"]["batch_size"], None, True) in by_batch
    assert rows["gradient checkpointing"]["measured_peak_bytes"] is None


# --- memory-sweep --exercise ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("exercise", [True, False])
def test_memory_sweep_exercise_adds_the_textbook_network(exercise, tmp_path, capsys, monkeypatch):
    """memory-sweep --exercise adds the worked network's rows (infer 1, train 50) and summary; without it, none."""
    from cnnbench.measure import memory

    probed = []
    monkeypatch.setattr(memory, "probe", lambda spec: probed.append(spec) or {"measured_peak_bytes": 50 * 2**20})
    argv = ["memory-sweep", "--batch-sizes", "1", "--results", str(tmp_path)]
    argv += ["--archs", "none", "--exercise"] if exercise else ["--archs", "lenet5"]
    assert main(argv) == 0
    (path,) = (tmp_path / "memory").glob("memory-sweep.*.json")
    sweep = json.loads(path.read_text())
    cases = [(r["arch"], r["mode"], r["batch_size"]) for r in sweep["rows"]]
    if exercise:
        assert cases == [("exercise", "infer", 1), ("exercise", "train", 50)]
        assert all(s["input_shape"] == [200, 300, 3] and s["model_file"].endswith("exercise.keras") for s in probed)
        assert sweep["summary"]["exercise"]["layers"]["n"] == 2 and sweep["summary"]["n"] == 0
        assert "exercise, layer model" in capsys.readouterr().out
    else:
        assert cases == [("lenet5", "train", 1), ("lenet5", "infer", 1)]
        assert sweep["summary"]["exercise"]["layers"]["n"] == 0


# --- ablation ------------------------------------------------------------------------------------------------------

def test_ablation_list_names_every_ablation_its_variants_and_claim(capsys, monkeypatch):
    """ablation --list: each ablation's builder, variants (reference marked) and claim; nothing runs."""
    from cnnbench import suite
    from cnnbench.ablations import ABLATIONS

    monkeypatch.setattr(suite, "run_suite", lambda *a, **k: pytest.fail("--list ran cells"))
    assert main(["ablation", "--list"]) == 0
    out = capsys.readouterr().out
    for a in ABLATIONS.values():
        assert a.name in out and a.arch in out and a.claim in out
        assert f"{a.reference} (reference)" in out
        assert all(v in out for v in a.variants)
    assert out.count("(reference)") == len(ABLATIONS)


def test_ablation_all_expands_to_every_ablation(planned, tmp_path):
    """ablation all: the cells of every ablation (shared experiments once), on Fashion-MNIST."""
    from cnnbench.ablations import ABLATIONS, labels, run_configs

    assert main(["ablation", "all", "--profile", "smoke", "--seeds", "0", "--results", str(tmp_path)]) == 0
    cells = planned["cells"]
    assert cells == run_configs(list(ABLATIONS), "smoke", (0,)) and planned["verified"] == ["fashion_mnist"]
    answered = {x["ablation"] for c in cells for x in labels(c.ablation, "smoke")}
    assert answered == set(ABLATIONS)
    assert planned["resume"] is None


def _ablation_records(results: Path) -> list:
    """An ``ok`` record of this machine and this code for every conv_vs_fc cell at smoke, seed 0."""
    from cnnbench import records
    from cnnbench.ablations import run_configs
    from cnnbench.environment import environment
    from cnnbench.spec import resolve

    (source,) = RESULTS.glob("lenet5.mnist.cpu.seed1.20261125T18*.json")
    cells = run_configs(["conv_vs_fc"], "smoke", (0,))
    for cell in cells:
        record = json.loads(source.read_text()) | {"arch": cell.arch, "task": cell.task, "profile": cell.profile,
                                                   "seed": cell.seed, "env": environment(arch=cell.arch),
                                                   "started_at": datetime.now(UTC).isoformat()}
        spec = resolve(cell)
        record["config"] |= cell.ablation | {"settings": spec.settings(), "determinants": spec.determinants()}
        records.write(record, results)
    return cells


@pytest.mark.parametrize("resume", [True, False])
def test_ablation_resume_skips_the_variants_recorded_here(resume, tmp_path, capsys, monkeypatch):
    """ablation --resume skips variants recorded ok by this machine and code; without it every variant runs."""
    from cnnbench import suite
    from cnnbench.tasks.classification import FashionMnistTask

    monkeypatch.setattr(FashionMnistTask, "verify_data", lambda self, data_dir=None: {})
    spawned = []

    class Done:
        stderr = None

        def wait(self):
            return 0

    monkeypatch.setattr(suite, "_spawn", lambda cell, results_dir, verbose=False: spawned.append(cell) or Done())
    results = tmp_path / "results"
    cells = _ablation_records(results)
    argv = ["ablation", "conv_vs_fc", "--profile", "smoke", "--seeds", "0", "--results", str(results)]
    assert main([*argv, *(["--resume"] if resume else [])]) == 0
    out = capsys.readouterr().out
    if resume:
        assert spawned == [] and out.count("recorded already, skipped") == len(cells) == 2
    else:
        assert spawned == cells and "skipped" not in out
    assert "conv_vs_fc · profile smoke" in out  # the paired table from the records


# --- report --baseline ---------------------------------------------------------------------------------------------

def _lenet_records(folder: Path, *, memory: int, accuracy_shift: float = 0.0) -> None:
    folder.mkdir(parents=True)
    for p in [*RESULTS.glob("lenet5.mnist.cpu.seed[12].20261125T18*.json"),
              *RESULTS.glob("lenet5.mnist.cpu.seed0.*T1818*.json")]:
        r = json.loads(p.read_text())
        r["memory"]["measured_peak_bytes"] = memory
        r["metrics"]["test_accuracy"] += accuracy_shift
        (folder / p.name).write_text(json.dumps(r))


def test_report_baseline_flag_adds_the_comparison(tmp_path, capsys):
    """report --baseline DIR adds the comparison and marks a score and memory regression; without it, none."""
    _lenet_records(tmp_path / "base", memory=10_000_000)
    _lenet_records(tmp_path / "now", memory=11_100_000, accuracy_shift=-0.01)
    common = ["report", "--results", str(tmp_path / "now")]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    plain = (tmp_path / "plain" / "index.html").read_text()
    assert "Against the baseline" not in plain and "vs baseline" not in plain
    assert main([*common, "--out", str(tmp_path / "site"), "--baseline", str(tmp_path / "base")]) == 0
    page = (tmp_path / "site" / "index.html").read_text()
    assert "Against the baseline" in page and "1 regression(s)" in page and str(tmp_path / "base") in page
    assert "score -1.00 pp ▼" in page and "memory +11.0 % ▲" in page and "train img/s +0.0 %," in page
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "x"), "--baseline", str(tmp_path / "missing")]) == 2
    assert "baseline folder" in capsys.readouterr().err


# --- throughput ----------------------------------------------------------------------------------------------------

@pytest.fixture
def timing(monkeypatch):
    """The matmul peak (MFU's denominator, seconds to time per dtype) preset; the models ``throughput`` builds and the
    ``jit`` its steps are compiled with, recorded."""
    import tensorflow as tf

    import architectures
    from cnnbench.measure import throughput

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    for dtype in ("float32", "float16", "bfloat16"):
        monkeypatch.setitem(throughput._PEAKS, (device, dtype), 1e11)
    seen: dict = {"models": [], "jit": []}
    create, compiled = architectures.create_model, throughput.compiled_steps
    monkeypatch.setattr(architectures, "create_model", lambda *a, **k: seen["models"].append(create(*a, **k))
                        or seen["models"][-1])
    monkeypatch.setattr(throughput, "compiled_steps", lambda *a, jit=False: seen["jit"].append(jit)
                        or compiled(*a, jit=jit))
    return seen


THROUGHPUT = ["throughput", "lenet5", "--mode", "infer", "--batch-sizes", "2", "--min-window", "0.01", "--repeats",
              "1", "--json"]


@pytest.mark.parametrize("jit", [True, False])
def test_throughput_jit_compiles_the_steps_with_xla_and_says_so(jit, timing, capsys, tmp_path):
    """throughput --jit compiles the timed steps with XLA; the JSON and the recorded scaling file say so."""
    report = _json(capsys, [*THROUGHPUT, "--results", str(tmp_path), *(["--jit"] if jit else [])])
    assert timing["jit"] == [jit] and report["jit"] is jit
    assert report["results"][0]["images_per_s"] > 0
    (path,) = (tmp_path / "scaling").glob("*.json")
    assert json.loads(path.read_text())["jit"] is jit


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_throughput_precision_builds_the_model_under_that_policy(precision, timing, capsys):
    """throughput --precision builds the timed model under that policy, says so, and restores float32 after."""
    import keras

    report = _json(capsys, [*THROUGHPUT, "--precision", precision])
    (model,) = timing["models"]
    assert report["precision"] == precision and model.dtype_policy.name == precision
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and {layer.compute_dtype for layer in convs} == {precision.removeprefix("mixed_")}
    assert keras.mixed_precision.global_policy().name == "float32"


def test_throughput_width_scales_the_model(timing, capsys):
    """throughput --width 0.5: the JSON states it; the model built has under half the parameters and MACs."""
    full = _json(capsys, THROUGHPUT)
    half = _json(capsys, [*THROUGHPUT, "--width", "0.5"])
    wide, narrow = timing["models"]
    assert (full["width"], half["width"]) == (1.0, 0.5)
    assert narrow.count_params() < wide.count_params() / 2 and wide.count_params() == 61_706
    assert half["macs_per_image"] < full["macs_per_image"] / 2
