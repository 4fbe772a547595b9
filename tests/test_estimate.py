"""How long a suite takes: `--plan`'s estimate per cell from earlier records (this machine's, else another's scaled
by the cells both ran), the running time left, and a progress line free of TensorFlow's start-up chatter."""

import copy
import io
import os
import re
import subprocess
import sys

import pytest

from cnnbench import records
from cnnbench.estimate import Estimator, TimeLeft, clock
from cnnbench.spec import RunConfig, resolve


def _recorded(record: dict, machine: str, seconds: float, arch: str = "lenet5", seed: int = 0) -> dict:
    r = copy.deepcopy(record)
    r["env"]["machine"] = {"id": machine, "source": "CNNBENCH_MACHINE"}
    # a file name is the cell and its start time (to the second here: the duration)
    r |= {"arch": arch, "seed": seed, "duration_s": seconds, "started_at": f"2026-12-07T00:00:{seconds:02d}+00:00"}
    r["config"]["settings"] = resolve(RunConfig(arch=arch, profile="smoke")).settings()
    return r


def test_a_cell_is_estimated_from_this_machine_else_scaled_from_another(smoke_record, tmp_path):
    assert smoke_record["config"]["settings"] == resolve(RunConfig(arch="lenet5", profile="smoke")).settings()
    for r in [_recorded(smoke_record, "here", 10), _recorded(smoke_record, "here", 12, seed=1),
              _recorded(smoke_record, "slow", 22), _recorded(smoke_record, "slow", 40, arch="mnist_cnn"),
              _recorded(smoke_record, "far", 30, arch="resnet18")]:
        records.write(r, tmp_path)
    estimator = Estimator(tmp_path, ("here", "tensorflow"))

    def estimate(arch: str, **overrides):
        e = estimator.estimate(resolve(RunConfig(arch=arch, profile="smoke", **overrides)))
        return e and (e.seconds, e.source)

    assert estimate("lenet5") == (11, "here")  # the median of this machine's seeds
    assert estimate("mnist_cnn") == (20, "scaled from slow")  # slow took 22 s where this one took 11
    assert estimate("resnet18") == (30, "as on far")  # no cell in common with far: its time as it is
    assert estimate("alexnet") is None  # nobody ran it
    assert estimate("lenet5", epochs=5) is None  # other settings are another cell
    assert Estimator(tmp_path, ("here", "jax")).estimate(resolve(RunConfig(arch="lenet5", profile="smoke"))).source \
        == "as on here"  # another backend is another machine


def test_a_held_out_run_stands_in_for_the_records_of_its_settings(smoke_record, tmp_path):
    """The run that chose a model's settings (``--hold-out``, under selection/) estimates its records until one lands:
    its duration scaled from the images it trained on to the whole split; a record of the settings replaces it."""
    spec = resolve(RunConfig(arch="lenet5", profile="smoke"))
    chose = _recorded(smoke_record, "here", 44)
    chose["config"]["recipe"]["validation_images"] = 5000
    chose["config"]["settings"]["recipe"] += ", 5,000 held out"
    chose["dataset"] |= {"n_train": 55_000, "n_val": 5_000}
    records.write(chose, tmp_path / "selection" / "lenet5-12ep")
    e = Estimator(tmp_path, ("here", "tensorflow")).estimate(spec)
    assert (e.seconds, e.source) == (pytest.approx(48), "here, held-out runs")
    assert Estimator(tmp_path, ("there", "tensorflow")).estimate(spec).source == "as on here, held-out runs"
    records.write(_recorded(smoke_record, "here", 30), tmp_path)
    e = Estimator(tmp_path, ("here", "tensorflow")).estimate(spec)
    assert (e.seconds, e.source) == (30, "here")


def test_a_cell_without_an_estimate_takes_a_finished_cell_of_its_settings():
    """Seeds 1 and 2 of a model no record describes: estimated, once seed 0 is done, by its duration."""
    left = TimeLeft([None, None, None, None], keys=["a", "a", "b", "a"])
    left.done(0, 60.0)
    assert left.estimates == [None, 60.0, None, 60.0] and left.left(1) == 3 * 60.0  # b: the mean finished cell
    left.done(1, 30.0)  # half its estimate: the rest scaled by the cells done with one
    assert left.estimates[3] == 60.0 and left.left(2) == 45.0 + 0.5 * 60.0


def test_time_left_corrects_estimates_by_the_cells_done():
    left = TimeLeft([10.0, None, 30.0])
    assert left.left(0) is None  # a cell without an estimate, and nothing done to stand in for it
    left.done(0, 20.0)  # twice as long as estimated
    assert left.left(1) == 20.0 + 2 * 30.0  # the unknown cell as the mean cell done, the rest scaled
    left.skip(2)
    assert left.left(1) == 20.0
    assert [clock(s) for s in (5, 65, 3725)] == ["0:05", "1:05", "1:02:05"] and clock(None) == "—"


def test_tensorflow_start_up_lines_are_hidden_and_kept_for_a_failure(monkeypatch):
    from cnnbench.quiet import Relay

    chatter = [  # as TensorFlow 2.21 prints them on a CPU machine, TF_CPP_MIN_LOG_LEVEL=2 notwithstanding
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        "I0000 00:00:1796644815.754118    6874 port.cc:153] oneDNN custom operations are on.\n",
        "E0000 00:00:1796644818.989374    6874 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n",
        "E0000 00:00:1796690106.511623   15879 node_def_util.cc:682] NodeDef mentions attribute "
        "use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; ...> This may be expected if "
        "your graph generating binary is newer  than this binary. Unknown attributes will be ignored.\n"]
    ours = ["Traceback (most recent call last):\n", "ValueError: a real error\n"]
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    quiet = Relay(io.StringIO("".join([chatter[0], ours[0], *chatter[1:], ours[1]])))
    quiet.thread.join()
    assert out.getvalue() == "".join(ours)
    quiet.show()
    assert out.getvalue().endswith("".join(chatter))


def test_the_cli_hides_its_own_tensorflow_start_up_lines_unless_verbose():
    """In a fresh process (the tests' own has TensorFlow loaded already): the plan's stderr holds no start-up line,
    an error still reaches it, and ``-v`` shows everything."""
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "cnnbench", *args], capture_output=True, text=True, timeout=300)

    plan = ["suite", "--plan", "--profile", "smoke", "--tasks", "mnist", "--archs"]
    quiet, wrong = cli(*plan, "lenet5"), cli(*plan, "lenet55")
    assert quiet.returncode == 0 and "lenet5" in quiet.stdout and quiet.stderr == ""
    assert wrong.returncode == 2 and "lenet5" in wrong.stderr and not suite_chatter(wrong.stderr)


def test_hidden_chatter_filters_file_descriptor_2_and_a_failed_cells_lines_still_show(capfd):
    """What C++ writes to fd 2 passes the filter (fatal lines and carriage returns too); a cell's ``Relay`` inside
    writes to the terminal, so its hidden lines reach it when the cell fails; an exception shows the CLI's own."""
    from cnnbench.quiet import Relay, hidden_chatter

    start_up = "I0000 00:00:1796644815.754118    6874 port.cc:153] oneDNN custom operations are on.\n"
    fatal = "F0000 00:00:1796644815.754118    6874 op_kernel.cc:1] Check failed\n"
    with hidden_chatter():
        os.write(2, (start_up + "ours\n" + fatal + "50%\r100%\n").encode())
    assert capfd.readouterr().err == "ours\n" + fatal + "50%\r100%\n"
    with hidden_chatter():
        cell = Relay(io.StringIO(start_up + "cell error\n"))
        cell.thread.join()
        cell.show()
    assert capfd.readouterr().err == "cell error\n(TensorFlow's log lines, hidden without -v:)\n" + start_up
    with hidden_chatter() as relay:
        os.write(2, start_up.encode())
        relay.failed = True  # as the CLI does for an exception not of the user's doing
    assert capfd.readouterr().err == "(TensorFlow's log lines, hidden without -v:)\n" + start_up


def test_a_command_that_fails_unexpectedly_shows_the_hidden_lines(capfd, monkeypatch):
    from cnnbench import cli

    def crash(args):
        os.write(2, b"I0000 00:00:1796644815.754118    6874 port.cc:153] oneDNN custom operations are on.\n")
        raise RuntimeError("not the user's doing")

    monkeypatch.setitem(cli.COMMANDS, "report", (*cli.COMMANDS["report"][:2], crash))
    with pytest.raises(RuntimeError):
        cli.main(["report"])
    assert "oneDNN custom operations" in capfd.readouterr().err


def test_the_suite_prints_elapsed_and_left_and_plans_with_what_it_took(tmp_path, capfd):
    from cnnbench.cli import main

    cell = ["--profile", "smoke", "--archs", "lenet5", "--epochs", "1", "--no-measure-throughput",
            "--no-measure-memory", "--results", str(tmp_path)]
    assert main(["suite", *cell, "--seeds", "0"]) == 0
    out, err = capfd.readouterr()
    assert "[1/1] lenet5 mnist smoke seed 0: running (est. —; run: 0:00 elapsed, — left)" in out
    assert re.search(r"\[1/1\] lenet5 mnist smoke seed 0: done in \d+:\d\d\n", out)
    assert not suite_chatter(out + err)
    (record,) = [r for _, r in records.iter_records(tmp_path)]
    took = clock(record["duration_s"])
    assert main(["suite", *cell, "--seeds", "0", "1", "--plan"]) == 0
    rows = capfd.readouterr().out.splitlines()
    assert [row.split()[-1] for row in rows[1:3]] == [took, took]  # this machine's time, for either seed
    assert rows[-1] == f"2 cells: est. {clock(2 * record['duration_s'])} on this machine for 2"


def suite_chatter(text: str) -> list[str]:
    from cnnbench.quiet import CHATTER

    return [line for line in text.splitlines() if CHATTER.match(line)]
