"""The command line, driven through ``main(argv)``: list, run, report, and its errors."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from architectures import list_models
from cnnbench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_list_answers_from_the_registry(capsys, monkeypatch):
    """Nothing is built (the counts it prints are the registry's, checked against every builder in test_registry)."""
    import architectures

    monkeypatch.setattr(architectures, "create_model", lambda *a, **k: pytest.fail("`list` built a model"))
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_models()
    for r in rows:
        assert r["reference_params"] > 0 and r["count"] in ("total", "trainable"), r["name"]
        assert {"paper", "year", "innovations", "default_input_shape", "param_convention"} <= set(r)


def test_list_patterns_are_case_insensitive_and_an_empty_match_says_so(capsys):
    assert main(["list", "LeNet5*"]) == 0
    out = capsys.readouterr().out
    assert "61,706" in out and "60,840" in out  # lenet5 and lenet5_1998
    assert main(["list", "nosuch*"]) == 2
    assert "no registered model matches 'nosuch*' (models: alexnet, " in capsys.readouterr().err


def test_help_lists_every_command_and_every_option_explains_itself(capsys):
    from cnnbench.cli import COMMANDS, _HelpFormatter, build_parser

    parser = build_parser()
    text = parser.format_help()
    assert all(f"    {name}" in text for name in COMMANDS) and "``" not in text
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    formatter = _HelpFormatter("cnnbench")
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"cnnbench {name} {action.option_strings or action.dest}: no help"
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                assert "default" in formatter._get_help_string(action), f"cnnbench {name} {action.dest}"
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("cnnbench 0.")


def test_gpu_profile_refuses_on_a_machine_without_a_gpu(tmp_path, capsys, monkeypatch):
    from cnnbench import nvml

    monkeypatch.setattr(nvml, "gpu_names", lambda: [])  # the machine this test describes, whatever runs it
    for command in (["run", "lenet5"], ["suite", "--archs", "lenet5"]):
        assert main([*command, "--profile", "gpu", "--results", str(tmp_path / "results")]) == 2
        assert "--allow-cpu" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # refused before anything was written


def test_a_missing_weights_file_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    from cnnbench.tasks import transfer

    monkeypatch.setattr(transfer.TransferTask, "prepare", lambda *a, **k: pytest.fail("data was loaded"))
    assert main(["run", "efficientnet_lite0", "--task", "transfer", "--weights", str(tmp_path / "missing.weights.h5"),
                 "--results", str(tmp_path / "results")]) == 2
    assert "missing.weights.h5': no such file" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


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
    assert "lenet5" in page and f"{100 * record['metrics']['test_accuracy']:.2f} (1)" in page
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


def test_a_bug_is_not_reported_as_bad_input(monkeypatch, tmp_path):
    """A KeyError or ValueError once the work runs is a bug: it keeps its traceback (exit 1 from Python), not the
    one-line usage error (exit 2) that a misspelt name gets."""
    from cnnbench.report import build

    def broken(*args, **kwargs):
        raise KeyError("score_mean")

    monkeypatch.setattr(build, "leaderboards", broken)
    with pytest.raises(KeyError, match="score_mean"):
        main(["report", "--results", str(ROOT / "results"), "--out", str(tmp_path / "site")])


def test_a_baseline_without_run_records_is_a_usage_error(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    argv = ["report", "--results", str(ROOT / "results"), "--out", str(tmp_path / "site")]
    assert main([*argv, "--baseline", str(tmp_path / "empty")]) == 2
    assert f"nothing to compare: no run records in {tmp_path / 'empty'}" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run", "lenet5", "--batch-size", "0"], ["run", "lenet5", "--epochs", "-1"],
                                  ["run", "lenet5", "--seed", "x"]])
def test_bad_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_gpu_suite_refuses_without_a_gpu(capsys, tmp_path, monkeypatch):
    from cnnbench import nvml

    monkeypatch.setattr(nvml, "gpu_names", lambda: [])
    assert main(["suite", "--profile", "gpu", "--require-gpu", "--results", str(tmp_path)]) == 2
    assert "no NVIDIA GPU visible through NVML" in capsys.readouterr().err


def test_list_runs_where_jax_is_not_installed():
    """A plain install has no JAX, which Keras' numpy backend imports: `list` must then keep Keras' default backend."""
    code = ("import importlib.util, sys; find = importlib.util.find_spec; "
            "importlib.util.find_spec = lambda n, *a: None if n == 'jax' else find(n, *a); sys.modules['jax'] = None; "
            "from cnnbench.cli import main; sys.exit(main(['list', 'lenet5']))")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "61,706" in done.stdout


def _nox_runs(session_name: str) -> list[tuple[str, ...]]:
    """The commands a noxfile session runs, with nothing installed or run (a stand-in session records them)."""
    import noxfile

    class Session:
        posargs: list[str] = []

        def __init__(self):
            self.runs = []

        def install(self, *args, **kwargs):
            pass

        def run(self, *args, **kwargs):
            self.runs.append(args)

    session = Session()
    next(f for f in vars(noxfile).values() if getattr(f, "name", None) == session_name)(session)
    return session.runs


def test_the_readme_main_command_plans_a_valid_matrix(capsys):
    """`nox -s bench-cpu`, the README's main command: its suite, resolved and validated cell by cell (``--plan``: no
    data, no training), covers every task with the models each task runs by default."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "python3 -m pip install -q nox && python3 -m nox -s bench-cpu\n" in readme
    (suite,) = [args for args in _nox_runs("bench-cpu") if args[:2] == ("cnnbench", "suite")]
    assert main([*suite[1:], "--plan"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:-1]]
    cells = {(arch, task) for _, arch, task, *_ in rows}
    assert {arch for arch, task in cells if task == "mnist"} == set(list_models(kind="classification"))
    assert {arch for arch, task in cells if task == "transfer"} == {"efficientnet_lite0"}
    assert {arch for arch, task in cells if task == "segmentation"} == set(list_models(kind="segmentation"))
    mnist = [row for row in rows if row[2] == "mnist"]  # every classifier on all 60,000 images, three seeds each
    assert {row[6] for row in mnist} == {"all"} and len(mnist) == 3 * len(list_models(kind="classification"))


def test_plan_refuses_a_cell_that_cannot_run(capsys):
    """Validation covers the resolved settings: a recipe the task cannot follow, a builder keyword the model lacks."""
    assert main(["suite", "--plan", "--tasks", "transfer", "--archs", "efficientnet_lite0", "--recipe", "augment"]) == 2
    assert "the transfer task trains by its own recipe" in capsys.readouterr().err
    from cnnbench.spec import RunConfig, resolve

    with pytest.raises(ValueError, match="builder takes no widht"):
        resolve(RunConfig(arch="lenet5", profile="smoke", model_kwargs={"widht": 0.5}))
