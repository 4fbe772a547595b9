"""The generated networks the memory predictors are tested on: seeded, varied, within bounds, loadable, and swept."""

import json
import math

import keras

from cnnbench.cli import main
from cnnbench.measure.graph_memory import SCHEDULES
from cnnbench.measure.random_nets import BATCHES, MAX_ELEMENTS, random_network


def test_a_seed_gives_one_network_and_seeds_differ():
    (a, drawn_a), (b, drawn_b) = random_network(7), random_network(7)
    layout = lambda m: [(type(layer).__name__, layer.output.shape, layer.count_params()) for layer in m.layers]  # noqa: E731
    assert drawn_a == drawn_b and layout(a) == layout(b)
    assert len({json.dumps(random_network(s)[1]) for s in range(10)}) == 10


def test_forty_networks_cover_the_layer_kinds_within_the_bounds():
    seen = set()
    for seed in range(40):
        model, drawn = random_network(seed)
        size, _, channels = drawn["input_shape"]
        assert 17 <= size <= 160 and channels in (1, 3) and drawn["batch_size"] in BATCHES
        assert model.input_shape[1:] == tuple(drawn["input_shape"]) and len(model.output_shape) == 2
        for layer in model.layers:
            seen.add(type(layer).__name__)
            if len(layer.output.shape) == 4:  # the width cap (a concatenation holds two): no map over the budget
                assert drawn["batch_size"] * math.prod(layer.output.shape[1:]) <= 2 * MAX_ELEMENTS, layer.name
    assert {"Conv2D", "SeparableConv2D", "Add", "Concatenate", "BatchNormalization", "Dropout", "MaxPooling2D",
            "AveragePooling2D", "Flatten", "GlobalAveragePooling2D", "Dense"} <= seen


def test_memory_sweep_random_measures_generated_networks_with_both_predictors(tmp_path, capsys):
    assert main(["memory-sweep", "--archs", "none", "--random", "1", "--random-seed", "1",
                 "--results", str(tmp_path)]) == 0
    [path] = (tmp_path / "memory").glob("memory-sweep.*.json")
    result = json.loads(path.read_text())
    rows = result["rows"]
    assert [(r["arch"], r["mode"]) for r in rows] == [("random_1", "train"), ("random_1", "infer")]
    for r in rows:
        assert r["generator"] == random_network(1)[1] and r["model_file"] is None
        assert r["measured_peak_bytes"] > 0 and r["predicted_bytes"] > 0 and r["graph_predicted_bytes"] > 0
        assert r["graph_relative_error"] == (r["graph_predicted_bytes"] - r["measured_peak_bytes"]) / r[
            "measured_peak_bytes"]
        # a train step: the worst of the graph's own order and SCHEDULES runs on the inter-op threads; inference: the
        # graph's order (the CPU's allowance is none)
        assert len(r["graph_schedule_peaks"]) == {"train": 1 + SCHEDULES, "infer": 1}[r["mode"]]
        assert r["graph_predicted_bytes"] == r["graph_schedule_peaks"][-1]
    s = result["summary"]
    assert s["n"] == 0 and s["generated"]["layers"]["n"] == 2 and s["generated"]["graph"]["n"] == 2
    assert "generated, traced graph" in capsys.readouterr().out
    from cnnbench.report import build_report

    build_report(tmp_path, tmp_path / "site")  # the memory page lists them apart from the registry's
    page = (tmp_path / "site" / "memory.html").read_text()
    assert "random_1" in page and "Networks the predictors have never seen" in page and "2 cases" in page
    assert "No memory sweep recorded" in page  # a sweep of generated networks is not the registry's


def test_a_generated_network_loads_from_its_file_in_safe_mode(tmp_path):
    from cnnbench.modelfile import load_model_file

    model, _ = random_network(3)
    model.save(tmp_path / "net.keras")
    loaded = load_model_file(tmp_path / "net.keras")
    assert loaded.count_params() == model.count_params()
    assert isinstance(loaded, keras.Model)


def test_a_measuring_process_that_dies_is_one_rows_error_not_the_sweeps_end(tmp_path, capsys, monkeypatch):
    from cnnbench.measure import memory
    from cnnbench.measure.memory_probe import ProbeError

    def probe(spec):
        if spec["mode"] == "train":  # as a TF segfault on one generated network did (exit -11)
            raise ProbeError("memory probe failed (-11): Fatal Python error: Segmentation fault")
        return real(spec)

    real = memory.probe
    monkeypatch.setattr(memory, "probe", probe)
    assert main(["memory-sweep", "--archs", "none", "--random", "1", "--random-seed", "1",
                 "--results", str(tmp_path)]) == 1
    [path] = (tmp_path / "memory").glob("memory-sweep.*.json")
    result = json.loads(path.read_text())
    train, infer = result["rows"]
    assert train["measured_peak_bytes"] is None and train["relative_error"] is None
    assert train["measure_error"].startswith("memory probe failed (-11)") and train["graph_predicted_bytes"] > 0
    assert infer["measured_peak_bytes"] > 0 and "measure_error" not in infer
    assert result["summary"]["not_measured"] == [f"random_1 train batch {train['batch_size']}"]
    assert result["summary"]["generated"]["layers"]["n"] == 1
    assert "NOT MEASURED (memory probe failed (-11)" in capsys.readouterr().out


def test_a_sweep_of_the_exercise_and_generated_networks_renders_both_tables():
    """The exercise's rows sit in the same sweep as the generated ones (``--exercise --random N``): its table has no
    generator column to read."""
    import pandas as pd

    from cnnbench.report.build import _memory_table

    row = {"input_shape": [8, 8, 1], "mode": "infer", "batch_size": 1, "predicted_bytes": 2**20,
           "measured_peak_bytes": 2**21, "bare_minimum_bytes": 2**19, "graph_predicted_bytes": 2**20,
           "graph_relative_error": -0.5}
    rows = pd.DataFrame([row | {"arch": "exercise"}, row | {"arch": "random_0", "generator": {"blocks": ["conv"]}}])
    assert "network drawn" not in _memory_table(rows[rows["arch"] == "exercise"])
    assert list(_memory_table(rows)["network drawn"]) == ["—", "conv"]


def test_sweep_summary_keeps_registry_exercise_and_generated_rows_apart():
    from cnnbench.measure.memory_sweep import EXERCISE, sweep_summary

    def row(arch, error, **extra):
        return {"arch": arch, "mode": "train", "batch_size": 8, "relative_error": error,
                "graph_relative_error": None if error is None else error / 2, **extra}

    s = sweep_summary([row("lenet5", 0.1), row("alexnet", -0.3), row(EXERCISE, -0.2),
                       row("random_1", 0.05, generator={}),
                       row("random_2", None, generator={}, measure_error="exit -11")])
    assert s["n"] == 2 and s["worst_under_prediction"] == -0.3 and s["graph"]["worst_under_prediction"] == -0.15
    assert s[EXERCISE]["layers"] == {"n": 1, "median_abs_error": 0.2, "worst_abs_error": 0.2,
                                     "worst_under_prediction": -0.2, "within_15pct": 0.0}
    assert s["generated"]["layers"]["n"] == 1 and s["not_measured"] == ["random_2 train batch 8"]
