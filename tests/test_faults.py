"""Each fault outcome is recorded (valid record, outcome, what happened) and nothing half-written is left."""

import dataclasses
import json
import signal
import subprocess
import sys
from datetime import UTC, datetime

import keras
import numpy as np
import pytest
import tensorflow as tf

from cnnbench import records, suite
from cnnbench.cell import EXIT_CELL_FAILED
from cnnbench.cli import main
from cnnbench.data import _store
from cnnbench.data import mnist as mnist_source
from cnnbench.harness import run_cell
from cnnbench.spec import RunConfig

CELL = RunConfig(arch="lenet5", task="mnist", profile="smoke", seed=0)


def test_oom_is_recorded_with_the_predicted_memory(mnist, monkeypatch):
    def out_of_memory(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[32,6,28,28]")

    monkeypatch.setattr(keras.Model, "fit", out_of_memory)
    record = run_cell(CELL, verbose=0)
    records.validate(record)
    assert record["outcome"] == "oom" and "OOM when allocating" in record["error"]["message"]
    memory = record["error"]["predicted_memory"]  # the prediction, and the measured step it was checked against
    assert memory["batch_size"] == 32 and memory["predicted_bytes"] > 4 * 61_706 * 4
    assert memory["measured_peak_bytes"] > 0


def test_nan_loss_is_recorded_as_diverged_with_the_step(mnist):
    # A learning rate of 1e30 sends the weights to ~1e30 in one Adam step; the next forward pass overflows.
    record = run_cell(dataclasses.replace(CELL, learning_rate=1e30), verbose=0)
    records.validate(record)
    assert record["outcome"] == "diverged", record.get("error")
    assert record["error"]["step"] >= 2 and record["error"]["epoch"] == 0
    assert record["error"]["loss"] in {"nan", "inf"}


def test_a_crash_inside_the_run_is_recorded_as_error(mnist, monkeypatch):
    import architectures

    monkeypatch.setattr(architectures, "create_model", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    record = run_cell(CELL, verbose=0)
    records.validate(record)
    assert record["outcome"] == "error" and record["error"]["type"] == "RuntimeError"
    assert record["error"]["message"] == "boom" and "create_model" in record["error"]["traceback"]
    assert record["config"]["batch_size"] == 32  # how far it got


def test_a_dead_cell_process_is_recorded_by_the_suite(tmp_path, monkeypatch, capsys):
    def dies(cell, results_dir, verbose=False):
        return subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])

    monkeypatch.setattr(suite, "_spawn", dies)
    assert suite.run_suite([CELL], results_dir=tmp_path) == 1
    ((_, record),) = list(records.iter_records(tmp_path))
    assert record["outcome"] == "error" and record["error"]["returncode"] == -signal.SIGKILL
    assert "SIGKILL" in record["error"]["message"]


def _fake_cells(monkeypatch, smoke_record, fails=()):
    """Replace the cell process by one that records ``smoke_record`` under the cell's seed, or a diverged outcome
    for the seeds in ``fails`` (the first time each runs). Returns the seeds in the order they were spawned."""
    spawned: list[int] = []

    def spawn(cell, results_dir, verbose=False):
        failed = cell.seed in fails and cell.seed not in spawned
        spawned.append(cell.seed)
        started = datetime.now(UTC).isoformat()
        if failed:
            record = {k: smoke_record[k] for k in ("schema_version", "arch", "task", "profile", "env")} | {
                "seed": cell.seed, "outcome": "diverged", "config": {}, "started_at": started, "duration_s": 1.0,
                "error": {"type": "Diverged", "message": "loss is nan", "step": 3}}
        else:
            record = smoke_record | {"seed": cell.seed, "started_at": started}
        records.write(record, results_dir)
        status = EXIT_CELL_FAILED if failed else 0
        return subprocess.Popen([sys.executable, "-c", f"raise SystemExit({status})"])

    monkeypatch.setattr(suite, "_spawn", spawn)
    return spawned


def test_the_suite_goes_on_after_a_failed_cell_and_resume_reruns_it(smoke_record, tmp_path, monkeypatch, capsys):
    cells = [dataclasses.replace(CELL, seed=s) for s in (0, 1, 2)]
    spawned = _fake_cells(monkeypatch, smoke_record, fails={1})
    assert suite.run_suite(cells, results_dir=tmp_path) == 1  # a cell failed: exit status 1 ...
    assert spawned == [0, 1, 2]  # ... after running the cells that follow it
    assert sorted((r["seed"], r["outcome"]) for _, r in records.iter_records(tmp_path)) == [
        (0, "ok"), (1, "diverged"), (2, "ok")]
    assert "suite finished: 1 failed, 2 run" in capsys.readouterr().out
    assert suite.run_suite(cells, results_dir=tmp_path, resume="here") == 0
    assert spawned == [0, 1, 2, 1]  # --resume runs the failed cell again, and only it
    assert {key for key, _ in suite.finished(tmp_path)} == {("lenet5", "mnist", "smoke", s) for s in (0, 1, 2)}


def test_the_suite_verifies_each_dataset_once_before_the_first_cell(smoke_record, tmp_path, monkeypatch, capsys):
    from cnnbench.data import ChecksumError
    from cnnbench.tasks.classification import MnistTask

    checks = []
    monkeypatch.setattr(MnistTask, "verify_data", lambda self, data_dir=None: checks.append(data_dir))
    spawned = _fake_cells(monkeypatch, smoke_record)
    argv = ["suite", "--profile", "smoke", "--archs", "lenet5", "lenet5_1998", "--seeds", "0", "1", "--results",
            str(tmp_path), "--data-dir", str(tmp_path / "data")]
    assert main(argv) == 0
    assert checks == [str(tmp_path / "data")] and len(spawned) == 4  # once for four cells

    def corrupt(self, data_dir=None):
        raise ChecksumError("mnist: x_test has sha256 0000, expected 1111")

    monkeypatch.setattr(MnistTask, "verify_data", corrupt)
    assert main([*argv, "--results", str(tmp_path / "again")]) == 2
    assert "x_test has sha256 0000" in capsys.readouterr().err
    assert len(spawned) == 4 and not list((tmp_path / "again").glob("*.json"))  # no cell started


def test_failed_cell_exit_status(mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(keras.Model, "fit", lambda *a, **k: (_ for _ in ()).throw(MemoryError("no room")))
    assert main(["run", "lenet5", "--profile", "smoke", "--results", str(tmp_path)]) == 1
    assert "oom: no room" in capsys.readouterr().err
    assert [r["outcome"] for _, r in records.iter_records(tmp_path)] == ["oom"]


# --- bad input: one clear message, exit 2, nothing written ------------------------------------------------------------


def test_checksum_mismatch_is_a_clear_error(mnist, tmp_path, capsys):
    arrays = {k: getattr(mnist, k).copy() for k in _store.SPLITS}
    arrays["y_test"][:10] = 0
    _store.save_npz_atomic(tmp_path / "data" / mnist_source.CACHE_NAME, arrays)
    argv = ["run", "lenet5", "--profile", "smoke", "--data-dir", str(tmp_path / "data"), "--results",
            str(tmp_path / "results")]
    assert main(argv) == 2  # bad data is the user's input, not a cell outcome: no record
    err = capsys.readouterr().err
    assert "y_test has sha256" in err
    assert not list((tmp_path / "results").glob("*.json"))


def test_unwritable_results_dir_fails_before_running(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "lenet5", "--profile", "smoke", "--results", str(blocker / "results")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_suite_validates_the_whole_matrix_first(tmp_path, capsys):
    assert main(["suite", "--profile", "smoke", "--archs", "lenet5", "resnet5O", "--results", str(tmp_path)]) == 2
    assert "did you mean 'resnet50'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_report_escapes_record_text(smoke_record, tmp_path):
    hostile = json.loads(json.dumps(smoke_record))
    hostile["env"]["device"]["name"] = "<script>alert(1)</script>"
    records.write(hostile, tmp_path / "results")
    with pytest.raises(records.InvalidRecordError):  # names become file names: no paths, no markup
        records.write(hostile | {"arch": "../<script>"}, tmp_path / "results")
    assert main(["report", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "reports")]) == 0
    page = (tmp_path / "reports" / "index.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_keras_files_load_in_safe_mode(tmp_path):
    from cnnbench.modelfile import load_model_file

    inputs = keras.Input((4,))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    unsafe.save(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_model_file(tmp_path / "lambda.keras")

    from architectures import create_model

    model = create_model("lenet5_1998")
    model.save(tmp_path / "lenet.keras")
    loaded = load_model_file(tmp_path / "lenet.keras")
    x = np.random.default_rng(0).random((2, 32, 32, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
