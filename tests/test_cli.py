"""The command line, driven through ``main(argv)``: list, run, report, and its errors."""

import json

import pytest

from architectures import list_models
from cnnbench.cli import main


def test_list_json(capsys, monkeypatch, paper_model):
    import architectures

    monkeypatch.setattr(architectures, "create_model", paper_model)  # `list` builds each at its paper input
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_models()
    for r in rows:
        assert r["params"] == r["reference_params"], r["name"]
        assert {"paper", "year", "innovations", "default_input_shape", "param_convention"} <= set(r)


def test_list_table(capsys):
    assert main(["list", "lenet5*"]) == 0
    assert "61,706" in capsys.readouterr().out


def test_run_writes_a_record_and_report_reads_it(mnist, tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["run", "lenet5", "--task", "mnist", "--profile", "smoke", "--epochs", "1", "--batch-size", "128",
                 "--seed", "3", "--results", str(results)]) == 0
    (path,) = results.glob("lenet5.mnist.smoke.seed3.*.json")
    record = json.loads(path.read_text())
    assert record["config"]["batch_size"] == 128 and record["throughput"]["batch_size"] == 128
    capsys.readouterr()
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "reports")]) == 0
    page = (tmp_path / "reports" / "index.html").read_text()
    assert "lenet5" in page and f"<td>{100 * record['metrics']['test_accuracy']:.2f}</td>" in page
    assert "| lenet5 |" in (tmp_path / "reports" / "summary.md").read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "lenet6", "--profile", "smoke"], "did you mean 'lenet5'"),
    (["run", "lenet5", "--task", "mnsit"], "did you mean 'mnist'"),
    (["run", "lenet5", "--profile", "smokey"], "did you mean 'smoke'"),
])
def test_unknown_names_fail_clearly(argv, message, capsys, tmp_path):
    assert main([*argv, "--results", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv", [["run", "lenet5", "--batch-size", "0"], ["run", "lenet5", "--epochs", "-1"],
                                  ["run", "lenet5", "--seed", "x"]])
def test_bad_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_gpu_suite_refuses_without_a_gpu(capsys, tmp_path, monkeypatch):
    from cnnbench.measure import nvml

    monkeypatch.setattr(nvml, "gpu_names", lambda: [])
    assert main(["suite", "--profile", "gpu", "--require-gpu", "--results", str(tmp_path)]) == 2
    assert "no NVIDIA GPU visible through NVML" in capsys.readouterr().err
