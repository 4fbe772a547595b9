"""Ablations: every variant builds, each switch changes exactly what it says, and a run records paired cells."""

from __future__ import annotations

import json
import math

import keras
import pytest

from architectures import create_model
from cnnbench.ablations import ABLATIONS, SIZES, get_ablation, labels, run_configs
from cnnbench.cli import main


def _variant(ablation: str, variant: str) -> keras.Model:
    (arch, kwargs), = [(a, k) for v, a, k in get_ablation(ablation).cells("smoke") if v == variant]
    return create_model(arch, classes=10, **kwargs)


def _params(model, predicate=lambda layer: True) -> int:
    return sum(math.prod(w.shape) for layer in model.layers if predicate(layer) for w in layer.trainable_weights)


def _types(model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_nine_ablations_each_with_a_reference_and_a_claim():
    assert len(ABLATIONS) >= 9
    for a in ABLATIONS.values():
        assert a.reference in a.variants and len(a.variants) >= 2 and a.claim
        for variant, arch, _ in a.cells("cpu"):
            assert arch in SIZES and SIZES[arch]["cpu"]["epochs"] >= 1, (a.name, variant)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_variant_builds_at_smoke_and_cpu_sizes(name):
    for profile in ("smoke", "cpu"):
        for variant, arch, kwargs in get_ablation(name).cells(profile):
            model = create_model(arch, classes=10, **kwargs)
            assert model.output_shape == (None, 10), (name, variant, profile)
            keras.backend.clear_session()


def test_the_switches_change_exactly_what_they_say():
    # squeeze-excitation: the parameter difference is the SE layers' own count
    plain, se = _variant("squeeze_excitation", "plain"), _variant("squeeze_excitation", "se")
    assert _params(se) - _params(plain) == _params(se, lambda layer: "_se_" in layer.name) > 0
    # residual off: the same parameters (option-A shortcuts have none), and no additions left
    res, flat = _variant("residual", "resnet20"), _variant("residual", "plain20")
    assert _params(res) == _params(flat) and "Add" in _types(res) and "Add" not in _types(flat)
    deep = _variant("residual", "plain56")
    assert sum(t in ("Conv2D", "Dense") for t in _types(deep)) == 56
    # separable: every 3x3 becomes depthwise-separable at the same width
    std, sep = _variant("separable_convolutions", "standard"), _variant("separable_convolutions", "separable")
    assert "Conv2D" not in _types(sep) and _types(sep).count("SeparableConv2D") == _types(std).count("Conv2D")
    assert _params(sep) < _params(std) / 4
    # AlexNet's switches
    tanh = _variant("relu_vs_tanh", "tanh")
    assert {layer.activation.__name__ for layer in tanh.layers if isinstance(layer, keras.layers.Conv2D)} == {"tanh"}
    assert "LocalResponseNormalization" in _types(_variant("lrn_vs_batchnorm", "lrn"))
    none, bn = _variant("lrn_vs_batchnorm", "none"), _variant("lrn_vs_batchnorm", "batch_norm")
    assert "LocalResponseNormalization" not in _types(none) + _types(bn) and _types(bn).count("BatchNormalization") == 2
    pools = lambda m: {layer.pool_size for layer in m.layers if isinstance(layer, keras.layers.MaxPooling2D)}  # noqa: E731
    assert pools(_variant("overlapping_pooling", "overlapping_3_2")) == {(3, 3)}
    assert pools(_variant("overlapping_pooling", "non_overlapping_2_2")) == {(2, 2)}
    rates = lambda m: {layer.rate for layer in m.layers if isinstance(layer, keras.layers.Dropout)}  # noqa: E731
    assert rates(_variant("dropout", "dropout_0.5")) == {0.5} and rates(_variant("dropout", "no_dropout")) == {0.0}
    strided = _variant("max_pool_vs_strided_conv", "strided_conv")
    assert "MaxPooling2D" not in _types(strided) and _types(strided).count("Conv2D") == 5 + 3
    # conv vs fully connected at equal parameters (within 1 %)
    lenet, mlp = _variant("conv_vs_fc", "lenet5"), _variant("conv_vs_fc", "mlp")
    assert abs(mlp.count_params() / lenet.count_params() - 1) < 0.01 and "Conv2D" not in _types(mlp)


def test_variants_that_run_the_same_experiment_share_one_cell():
    # the paper's AlexNet is the reference or default of five ablations: one cell per seed answers all five
    cells = run_configs(["relu_vs_tanh", "dropout", "max_pool_vs_strided_conv"], "smoke", (0, 1))
    assert [(c.seed, c.ablation["variant"]) for c in cells] == [
        (0, "relu"), (0, "tanh"), (0, "no_dropout"), (0, "strided_conv"),
        (1, "relu"), (1, "tanh"), (1, "no_dropout"), (1, "strided_conv")]
    assert [c.measure_throughput for c in cells] == [True] * 4 + [False] * 4  # measured on the first seed only
    assert not any(c.time_to_target for c in cells)  # no test evaluation after every epoch: final scores compared
    shared = {"ablation": "relu_vs_tanh", "variant": "relu", "experiment": cells[0].ablation["experiment"]}
    assert {(x["ablation"], x["variant"], x["reference"]) for x in labels(shared, "smoke")} == {
        ("relu_vs_tanh", "relu", False), ("lrn_vs_batchnorm", "lrn", False),
        ("overlapping_pooling", "overlapping_3_2", False), ("dropout", "dropout_0.5", False),
        ("max_pool_vs_strided_conv", "max_pool", True)}
    tanh = {"ablation": "relu_vs_tanh", "variant": "tanh", "experiment": cells[1].ablation["experiment"]}
    assert labels(tanh, "smoke") == [{"ablation": "relu_vs_tanh", "variant": "tanh", "reference": True,
                                      "claim": get_ablation("relu_vs_tanh").claim}]


@pytest.mark.full
def test_an_ablation_runs_paired_cells_and_reports_them(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["ablation", "conv_vs_fc", "--profile", "smoke", "--seeds", "0", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "conv_vs_fc · profile smoke" in out and "lenet5" in out and "(reference)" in out
    recs = [json.loads(p.read_text()) for p in results.glob("*.json")]
    assert sorted(r["config"]["variant"] for r in recs) == ["lenet5", "mlp"]
    for r in recs:
        assert r["task"] == "fashion_mnist" and r["dataset"]["name"] == "fashion_mnist"
        assert r["config"]["ablation"] == "conv_vs_fc" and r["config"]["reference"] == (r["arch"] == "mlp")
        assert set(r["metrics"]["shifted_test_accuracy"]) == {"2", "3", "4"}
        assert r["metrics"]["time_to_target"] is None and len(r["metrics"]["train_accuracy_curve"]) == 1
    # a failed variant is counted and its pair reported incomplete, not dropped
    failed = recs[0] | {"outcome": "error", "error": {"type": "RuntimeError", "message": "boom"}}
    failed["started_at"] = "2099-01-01T00:00:00+00:00"
    (results / "failed.json").write_text(json.dumps(failed))
    assert main(["ablation", "conv_vs_fc", "--profile", "smoke", "--table", "--results", str(results)]) == 0
    table = capsys.readouterr().out
    assert "failed=1" in table and ("no shared seed" in table or "n=0" in table)


def test_unknown_ablation_exits_2_and_writes_nothing(tmp_path, capsys):
    assert main(["ablation", "nosuch", "--results", str(tmp_path / "r")]) == 2
    assert "unknown ablation 'nosuch'" in capsys.readouterr().err and not (tmp_path / "r").exists()
