"""The memory model: the textbook exercise, the predictor's structure, the measurement probe, the CLI."""

import json

import keras
import pytest

from cnnbench.cli import main, parse_bytes
from cnnbench.measure.memory import bare_minimum, memory_report, predict_memory


@pytest.fixture(scope="module")
def exercise():
    """3 conv layers, 3x3, stride 2, same padding, 100/200/400 maps, on 200x300 RGB (the classic exercise)."""
    from cnnbench.measure.memory_sweep import exercise_model

    return exercise_model()


def test_exercise_bare_minimum_matches_the_reference(exercise):
    assert exercise.count_params() == 2_800 + 180_200 + 720_400 == 903_400
    infer = bare_minimum(exercise, batch_size=1, input_shape=(200, 300, 3), mode="infer")
    # two consecutive layers (6 MB + 3 MB) + parameters (3.6 MB) ≈ 12.6 MB
    assert infer["breakdown"] == {"parameters": 3_613_600, "feature_maps": 9_000_000}
    train = bare_minimum(exercise, batch_size=50, input_shape=(200, 300, 3), mode="train")
    # all maps (6 + 3 + 1.52 MB) x 50 + inputs (36 MB) + parameters; the reference's 564.6 MB rounds 10.52 to 10.5
    assert train["breakdown"] == {"parameters": 3_613_600, "feature_maps": 526_000_000, "inputs": 36_000_000}


def test_predictor_structure(exercise):
    kw = dict(batch_size=8, input_shape=(200, 300, 3))
    sgd, adam = (predict_memory(exercise, mode="train", optimizer=o, **kw) for o in ("sgd", "adam"))
    assert sgd["breakdown"]["optimizer_slots"] == 0
    assert adam["breakdown"]["optimizer_slots"] == 2 * 903_400 * 4
    # Adam adds its two slots, and one more temporary per variable update than SGD
    assert adam["predicted_bytes"] - sgd["predicted_bytes"] >= 2 * 903_400 * 4
    infer = predict_memory(exercise, mode="infer", **kw)
    assert infer["predicted_bytes"] < sgd["predicted_bytes"]
    half = predict_memory(exercise, mode="train", precision="mixed_float16", **kw)
    assert half["breakdown"]["activations_peak"] == pytest.approx(adam["breakdown"]["activations_peak"] / 2, rel=0.01)
    small, big = (predict_memory(exercise, mode="train", batch_size=b, input_shape=(200, 300, 3))
                  for b in (1, 32))
    assert big["predicted_bytes"] > small["predicted_bytes"]
    for bad in ({"mode": "eval"}, {"optimizer": "adamz"}, {"precision": "float8"}):
        with pytest.raises(ValueError):
            predict_memory(exercise, **(kw | {"mode": "train"} | bad))


def test_measured_peak_is_consistent(tmp_path, exercise):
    spec = {"arch": "lenet5", "batch_size": 16, "mode": "train", "optimizer": "adam"}
    report = memory_report(spec, measure=True)
    weights = 61_706 * 4
    assert report["device"] in {"CPU:0", "GPU:0"}
    assert report["measured_peak_bytes"] >= report["resident_before_step_bytes"] >= 3 * weights  # weights + Adam
    assert report["measured_peak_bytes"] >= report["measured_peak_min_bytes"] > 0


def test_relative_error_from_hand_numbers(monkeypatch):
    from cnnbench.measure import memory

    monkeypatch.setattr(memory, "predict_memory", lambda model, **kw: {
        "predicted_bytes": 1_100, "breakdown": {}, "optimizer": "adam", "precision": "float32"})
    monkeypatch.setattr(memory, "probe", lambda spec: {"measured_peak_bytes": 1_000, "device": "CPU:0"})
    report = memory_report({"arch": "lenet5", "batch_size": 4, "mode": "train"}, measure=True)
    assert report["relative_error"] == pytest.approx(0.1)  # (1,100 - 1,000) / 1,000: 10 % over


def test_probe_measures_models_that_are_not_classifiers(tmp_path):
    inputs = keras.Input((20, 30, 3))
    outputs = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "maps.keras")
    report = memory_report({"model_file": str(tmp_path / "maps.keras"), "batch_size": 4, "mode": "train"},
                           measure=True)
    assert report["measured_peak_bytes"] > 0 and report["input_shape"] == [20, 30, 3]


def test_a_failed_measurement_is_reported_or_raised(monkeypatch):
    from cnnbench.measure import memory

    def crash(spec):
        raise memory.ProbeError("memory probe failed (-9): killed")

    monkeypatch.setattr(memory, "probe", crash)
    spec = {"arch": "lenet5", "batch_size": 4, "mode": "train"}
    report = memory_report(spec, measure=True, strict=False)  # a run records it and goes on
    assert report["measured_peak_bytes"] is None and report["relative_error"] is None
    assert "killed" in report["measure_error"] and report["predicted_bytes"] > 0
    with pytest.raises(memory.ProbeError):  # `cnnbench memory --measure` fails loudly
        memory_report(spec, measure=True)


@pytest.mark.parametrize(("text", "value"), [("16GiB", 16 * 2**30), ("500MB", 500 * 10**6), ("1.5 kib", 1536),
                                             ("42", 42)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "GiB", "-1GB", "16 parsecs", "0"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError):
        parse_bytes(text)


def test_memory_cli_json(capsys, exercise, tmp_path):
    exercise.save(tmp_path / "exercise.keras")
    assert main(["memory", "--model-file", str(tmp_path / "exercise.keras"), "--batch-size", "50", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("predicted_bytes", "breakdown", "bare_minimum_bytes", "measured_peak_bytes", "nvml_used_bytes",
                "relative_error", "device"):
        assert key in report
    assert report["bare_minimum_bytes"] == 565_613_600 and report["measured_peak_bytes"] is None
    assert main(["memory", "lenet5", "--batch-size", "8", "--mode", "infer"]) == 0
    assert "predicted peak" in capsys.readouterr().out
    assert main(["memory", "lenet6"]) == 2


def test_largest_batch_search():
    from cnnbench.measure.advisor import largest_batch, largest_batch_near

    assert largest_batch(lambda b: 1000 + 10 * b, 1000 + 10 * 37) == (37, 1370)
    calls = []

    def steps(b):  # near-linear with the allocator's steps: the answer is exact, in a few calls
        calls.append(b)
        return 1000 + 10 * b + 256 * (b // 16)

    assert largest_batch_near(steps, 2000, guess=200) == (47, 1982)
    assert len(calls) == len(set(calls)) <= 9  # each batch once; a bisection from 1 takes 12 calls to find 47
    assert largest_batch_near(steps, 500, guess=8) == (0, 1010)
    assert largest_batch(lambda b: 1000 + 10 * b, 500) == (0, 1010)
    assert largest_batch(lambda b: b, 10**12)[0] == 1 << 16  # capped


def test_fit_advisor_remedies(capsys):
    budget = 8 * 2**20
    assert main(["fit", "mnist_cnn", "--width", "0.5", "--memory-budget", "8MiB", "--json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    rows = {r["remedy"].split(" (")[0]: r for r in advice["remedies"]}
    assert set(rows) == {"batch size", "mixed precision", "half input size", "frozen backbone",
                         "gradient checkpointing"}
    base = rows["batch size"]["batch_size"]
    assert base == advice["largest_batch"] > 0
    for name, row in rows.items():
        assert row["predicted_bytes"] <= budget, name
        assert row["batch_size"] >= base, name  # every remedy allows at least the plain batch
    assert rows["frozen backbone"]["batch_size"] > base and rows["half input size"]["batch_size"] > base
    with pytest.raises(SystemExit) as usage:  # not a size: argparse's usage error
        main(["fit", "resnet18", "--memory-budget", "lots"])
    assert usage.value.code == 2 and "expected a size like 16GiB" in capsys.readouterr().err
