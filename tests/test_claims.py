"""Behaviour the docs claim and no other test checks: the atomic write's named-temp-file fallback, the report's flags
and baseline rules, an import-light ``list``, the JAX sweep's deadline, and bench-gpu stopping at a failed step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

RESULTS = Path(__file__).resolve().parent.parent / "results"
#: three committed LeNet-5 records of one code version (cpu profile, seeds 0-2)
LENET = sorted([*RESULTS.glob("lenet5.mnist.cpu.seed[12].20261125T18*.json"),
                *RESULTS.glob("lenet5.mnist.cpu.seed0.*T1818*.json")])


# --- atomic writes: the named temporary file where O_TMPFILE is unavailable -----------------------------------------

@pytest.fixture(params=["no O_TMPFILE constant", "file system refuses O_TMPFILE"])
def no_tmpfile(request, monkeypatch):
    """Force ``atomic_write``'s fallback both ways it is taken; yield the named temporary files it makes."""
    if request.param == "no O_TMPFILE constant":  # not Linux
        monkeypatch.delattr(os, "O_TMPFILE")
    else:  # e.g. an old or network file system: open(2) fails with EOPNOTSUPP
        real_open, flag = os.open, os.O_TMPFILE

        def refusing_open(path, flags, *args, **kwargs):
            if flags & flag == flag:
                raise OSError(95, "Operation not supported")
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)
    made, mkstemp = [], tempfile.mkstemp
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: made.append(mkstemp(*a, **k)) or made[-1])
    return made


def test_atomic_write_fallback_lands_the_record_whole_and_leaves_no_temp_file(no_tmpfile, tmp_path):
    """records.write through the fallback: a named temp file in the target's folder, renamed over it, none left."""
    from cnnbench import records

    record = json.loads(LENET[0].read_text())
    path = records.write(record, tmp_path)
    ((_, tmp),) = no_tmpfile
    assert Path(tmp).parent == tmp_path and Path(tmp).name.startswith(f".{path.name}.") and tmp.endswith(".tmp")
    assert records.read(path) == record and path.read_text().endswith("}\n")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_atomic_write_fallback_keeps_the_old_file_when_the_writer_fails(no_tmpfile, tmp_path):
    """A fallback write failing half-way keeps the old file and removes its temp file; the next replaces it whole."""
    from cnnbench._util import atomic_write

    target = tmp_path / "table.md"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="half-way"), atomic_write(target) as f:
        f.write("new, but only half")
        raise RuntimeError("half-way")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.md"]
    with atomic_write(target) as f:
        f.write("new\n")
    assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["table.md"]
    assert len(no_tmpfile) == 2  # both writes went through the fallback


# --- the report's flags --------------------------------------------------------------------------------------------

def _lenet(measured: int | None = 10_000_000) -> list[dict]:
    """The three LeNet-5 records with everything measured (so a clean row carries no flag)."""
    out = []
    for p in LENET:
        r = json.loads(p.read_text())
        r["memory"]["measured_peak_bytes"] = measured
        r["metrics"]["confusion_matrix"] = [[100 if i == j else 0 for j in range(10)] for i in range(10)]
        out.append(r)
    return out


def _write_all(folder: Path, recs: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, r in enumerate(recs):
        (folder / f"{r['arch']}.{r['task']}.{r['profile']}.seed{r['seed']}.{i}.json").write_text(json.dumps(r))
    return folder


def _flags(folder: Path) -> list[str]:
    from cnnbench.report.frames import records_frame, summary_frame

    (flags,) = summary_frame(records_frame(folder))["flags"]
    return flags


def _one_class(share: float):
    """Every record's test predictions: ``share`` of them in class 3, the rest in class 4."""
    def mutate(recs):
        for r in recs:
            r["metrics"]["confusion_matrix"] = [[0, 0, 0, round(1000 * share), 1000 - round(1000 * share), 0, 0, 0,
                                                 0, 0] for _ in range(10)]
    return mutate


def _gap(points: float):
    def mutate(recs):
        for r in recs:
            r["metrics"] |= {"test_accuracy": 0.90, "train_accuracy": 0.90 + points / 100}
    return mutate


def _code_versions(recs):
    recs[0]["env"]["git"]["sha"] = "f" * 40


def _two_machines(recs):
    recs[0]["env"]["machine"] = {"id": "elsewhere", "source": "CNNBENCH_MACHINE"}


def _no_memory(recs):
    for r in recs:
        r["memory"]["measured_peak_bytes"] = None


def _no_throughput(recs):
    for r in recs:
        r["throughput"] = None


FLAGS = [
    (_one_class(1.0), "predicts one class only (100.0 % of test predictions in one class)"),
    (_one_class(0.99), "predicts one class only (99.0 %"),
    (_gap(6), "train accuracy 96.0 % far above test 90.0 %"),
    (_code_versions, "seeds from 2 commits (2b959a8a65, ffffffffff)"),
    (_two_machines, "seeds pooled over 2 machines (0 on elsewhere, 1 on "),
    (_no_memory, "memory not measured"),
    (_no_throughput, "throughput not measured"),
]
NOT_FLAGGED = [_one_class(0.98), _gap(4)]


@pytest.mark.parametrize(("mutate", "flag"), FLAGS, ids=[f for _, f in FLAGS])
def test_each_report_flag_appears_exactly_when_its_condition_holds(mutate, flag, tmp_path):
    """Each flag (one class ≥ 99 %, train > test + 5 pts, code versions, missing measurement) needs its condition."""
    assert _flags(_write_all(tmp_path / "clean", _lenet())) == []
    recs = _lenet()
    mutate(recs)
    assert [f for f in _flags(_write_all(tmp_path / "flagged", recs)) if f.startswith(flag)] != []


@pytest.mark.parametrize("mutate", NOT_FLAGGED, ids=["one class 98 %", "train 4 points above test"])
def test_conditions_just_short_of_a_flag_raise_none(mutate, tmp_path):
    """98 % in one class and a 4-point train/test gap stay unflagged (the thresholds are 99 % and 5 points)."""
    recs = _lenet()
    mutate(recs)
    assert _flags(_write_all(tmp_path, recs)) == []


def test_a_pooled_row_takes_accuracy_from_every_machine_and_speed_from_one(tmp_path):
    """Seeds of the same code and settings pool over machines; times and speeds come from the machine that measured
    throughput, never averaged across machines; a later run with other settings supersedes the cell's records."""
    from cnnbench.report.frames import records_frame, summary_frame

    recs = _lenet()
    _two_machines(recs)
    recs[0]["metrics"]["train_seconds"], recs[0]["throughput"] = 999.0, None  # the other machine: slower, untimed
    df = records_frame(_write_all(tmp_path / "pooled", recs))
    (row,) = summary_frame(df).itertuples()
    assert row.seeds == 3 and row.machines == sorted({"elsewhere", row.machine}) and row.machine != "elsewhere"
    assert row.acc_mean == pytest.approx(sum(r["metrics"]["test_accuracy"] for r in recs) / 3)
    assert row.train_s == pytest.approx((recs[1]["metrics"]["train_seconds"] + recs[2]["metrics"]["train_seconds"]) / 2)
    recs[2]["config"]["epochs"] += 1  # seed 2 ran last, with another epoch count: the others are superseded
    df = records_frame(_write_all(tmp_path / "superseded", recs))
    assert list(df.sort_values("seed")["superseded"]) == [True, True, False]
    (row,) = summary_frame(df).itertuples()
    assert row.seeds == 1 and row.epochs == recs[2]["config"]["epochs"]


def test_rows_of_earlier_model_code_are_flagged_stale(tmp_path):
    """A table whose newest row was recorded by other model code flags the rows of the earlier code, not its own."""
    from cnnbench.report.frames import records_frame, summary_frame

    def table(shared_code_changed: bool) -> dict[str, bool]:
        recs, newer = _lenet(), _lenet()
        for r in recs:
            r["env"] |= {"model_code_sha256": "a" * 64, "shared_code_sha256": "c" * 64}
        for r in newer:  # another model, so another model fingerprint, recorded later
            r["arch"], r["started_at"] = "lenet5_1998", "2099-01-01T00:00:00+00:00"
            r["env"] |= {"code_sha256": "f" * 64, "model_code_sha256": "b" * 64,
                         "shared_code_sha256": ("d" if shared_code_changed else "c") * 64}
        summary = summary_frame(records_frame(_write_all(tmp_path / str(shared_code_changed), recs + newer)))
        return {r.arch: any(f.startswith("stale: recorded by earlier model code") for f in r.flags)
                for r in summary.itertuples()}

    assert table(shared_code_changed=True) == {"lenet5": True, "lenet5_1998": False}
    # each model's own builders differ by nature: the same training, data and scoring code is the same version
    assert table(shared_code_changed=False) == {"lenet5": False, "lenet5_1998": False}


def test_a_measurement_from_some_seeds_is_not_flagged_missing(tmp_path):
    """Memory measured on one seed of three: the row has a measured figure, so no "memory not measured"."""
    recs = _lenet()
    _no_memory(recs[1:])
    assert "memory not measured" not in _flags(_write_all(tmp_path, recs))


def test_flags_are_shown_in_the_reports_leaderboard(tmp_path):
    """The generated index.html shows every raised flag in the row's flags cell, and none for clean records."""
    from cnnbench.report import build_report

    clean = build_report(_write_all(tmp_path / "clean", _lenet()), tmp_path / "clean-site").read_text()
    recs = _lenet()
    for mutate, _ in FLAGS[:1] + FLAGS[2:]:
        mutate(recs)
    page = build_report(_write_all(tmp_path / "flagged", recs), tmp_path / "site").read_text()
    for _, flag in FLAGS[:1] + FLAGS[2:]:
        assert flag in page and flag not in clean
    assert '<td class="flags"></td>' in clean


# --- --baseline: what counts as a regression -----------------------------------------------------------------------

def _changes(tmp_path: Path, base: list[dict], now: list[dict]):
    from cnnbench.report.build import compare
    from cnnbench.report.frames import records_frame, summary_frame

    frames = [summary_frame(records_frame(_write_all(tmp_path / name, recs))) for name, recs in
              (("now", now), ("base", base))]
    (row,) = compare(*frames).to_dict("records")
    return row


def _scored(accuracies, memory=10_000_000) -> list[dict]:
    recs = _lenet(measured=memory)
    for r, a in zip(recs, accuracies, strict=False):
        r["metrics"]["test_accuracy"] = a
    return recs[:len(accuracies)]


BASE = (0.990, 0.992, 0.994)  # mean 0.992, sample std 0.002: a regression below 0.988


@pytest.mark.parametrize(("shift", "memory", "score_regressed", "memory_regressed"), [
    (-0.0035, 10_000_000, False, False),  # mean 0.9885: within 2 std
    (-0.0045, 10_000_000, True, False),  # mean 0.9875: below mean - 2 std
    (+0.0050, 10_000_000, False, False),  # better
    (0.0, 10_900_000, False, False),  # memory +9 %
    (0.0, 11_100_000, False, True),  # memory +11 %
    (0.0, 5_000_000, False, False),  # memory halved
    (-0.0045, 11_100_000, True, True),
])
def test_baseline_score_and_memory_rules(shift, memory, score_regressed, memory_regressed, tmp_path):
    """Regression: score mean below the baseline's mean − 2 std, or measured memory +10 % or more; nothing else."""
    row = _changes(tmp_path, _scored(BASE), _scored([a + shift for a in BASE], memory))
    assert row["score_delta"] == pytest.approx(shift, abs=1e-9)
    assert row["memory_change"] == pytest.approx(memory / 10_000_000 - 1)
    assert (row["score_regressed"], row["memory_regressed"]) == (score_regressed, memory_regressed)
    assert row["regressed"] == (score_regressed or memory_regressed) and not row["throughput_regressed"]


def test_baseline_of_one_seed_counts_any_drop_and_unmeasured_memory_counts_none(tmp_path):
    """A one-seed baseline (std 0) makes any drop a regression; an unmeasured baseline peak compares no memory."""
    row = _changes(tmp_path, _scored([0.992], memory=None), _scored([0.9915], memory=50_000_000))
    assert row["score_regressed"] and row["regressed"]
    assert row["memory_change"] != row["memory_change"] and not row["memory_regressed"]


# --- `cnnbench list` imports no TensorFlow -------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["list"], ["list", "resnet*", "--json"]])
def test_list_imports_no_tensorflow(argv):
    """`cnnbench list` answers from the registry with TensorFlow never imported (seconds saved on every call)."""
    code = ("import os, sys; from cnnbench.cli import main; rc = main(sys.argv[1:]); "
            "tf = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'); "
            "print('TF-MODULES', len(tf), tf[:5], file=sys.stderr); "
            "print('KERAS_BACKEND', os.environ.get('KERAS_BACKEND'), file=sys.stderr); sys.exit(rc)")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TF-MODULES 0 []" in done.stderr, done.stderr[-2000:]
    assert "KERAS_BACKEND None" in done.stderr  # what the process hands its children is left as it was
    assert "resnet50" in done.stdout


# --- the JAX sweep's --deadline ------------------------------------------------------------------------------------

@pytest.fixture
def jax_sweep_stubs(monkeypatch, tmp_path):
    """``jax_sweep.run`` in-process, every measurement (probes, peak, XLA steps, timed windows) stubbed and counted."""
    from cnnbench import nvml
    from cnnbench.measure import jax_sweep, timing

    calls: dict = {"measure_case": [], "peak_flops": [], "compiled_steps": [], "time_step": []}
    monkeypatch.setattr(jax_sweep, "CHILD_ENV", {})  # run() would export KERAS_BACKEND=jax into this process
    monkeypatch.setattr(nvml, "gpu_info", lambda: None)
    monkeypatch.setattr(jax_sweep, "run_probe", lambda spec, **kw: {"outcome": "ok"})
    monkeypatch.setattr(jax_sweep, "measure_case", lambda spec, **kw: calls["measure_case"].append(spec) or {
        "outcome": "ok", "peak_bytes": 2**20, "wall_s": 0.0})
    monkeypatch.setattr(jax_sweep, "peak_flops", lambda dtype="float32": calls["peak_flops"].append(dtype) or 1e12)
    monkeypatch.setattr(jax_sweep, "compiled_steps", lambda model, x, y: calls["compiled_steps"].append(model.name)
                        or {"train": lambda: None, "infer": lambda: None})
    monkeypatch.setattr(timing, "time_step", lambda *a, **k: calls["time_step"].append(a) or pytest.fail("timed"))

    def run(parts, deadline_s):
        result = jax_sweep.run(archs=("lenet5",), batches=(1,), precisions=("float32",), parity=("resnet50",),
                               points=(("float32", 2),), input_shape=(32, 32, 3), workers=1, deadline_s=deadline_s,
                               results_dir=tmp_path, budget_bytes=1, parts=parts)
        (path,) = (tmp_path / "jax").glob("jax-sweep.*.json")
        return result, json.loads(path.read_text())

    return SimpleNamespace(run=run, calls=calls)


def test_jax_sweep_past_deadline_skips_every_timing_and_records_why(jax_sweep_stubs):
    """--deadline already past: no throughput window is timed; each row is recorded skipped, error "deadline"."""
    result, record = jax_sweep_stubs.run(("throughput",), deadline_s=-1)
    assert jax_sweep_stubs.calls["time_step"] == []
    rows = record["throughput"]
    assert [(r["mode"], r["outcome"], r["error"]) for r in rows] == [("train", "skipped", "deadline"),
                                                                     ("infer", "skipped", "deadline")]
    assert record["summary"]["keras_ratio_median"] is None and result["throughput"] == rows


def test_jax_sweep_past_deadline_skips_the_memory_part(jax_sweep_stubs):
    """--deadline already past: the memory part does not start, and the record names it skipped."""
    _, record = jax_sweep_stubs.run(("memory",), deadline_s=-1)
    assert jax_sweep_stubs.calls["measure_case"] == []
    assert record["rows"] == [] and record["skipped"] == ["memory"]


def test_jax_sweep_past_deadline_starts_no_throughput_work(jax_sweep_stubs):
    """--deadline already past: the throughput part neither measures the peak nor compiles a step."""
    jax_sweep_stubs.run(("throughput",), deadline_s=-1)
    assert jax_sweep_stubs.calls["peak_flops"] == [] and jax_sweep_stubs.calls["compiled_steps"] == []


def test_jax_sweep_with_time_left_measures(jax_sweep_stubs):
    """The control: with time left the same sweep measures every memory case (the stubs count it)."""
    _, record = jax_sweep_stubs.run(("memory",), deadline_s=3600)
    assert len(jax_sweep_stubs.calls["measure_case"]) == 2 and {r["outcome"] for r in record["rows"]} == {"ok"}


# --- bench-gpu: a failing step stops the pipeline with its status --------------------------------------------------

@pytest.mark.parametrize(("failing", "status", "last_run", "exit_status"), [
    ("memory sweep", 5, "memory sweep", 5),
    ("suite", 2, "suite", 2),
    ("throughput sweep", 1, "throughput sweep", 1),  # exit 1 stops every step but the suite
    ("report", 4, "report", 4),
    ("suite", 1, "report", 0),  # the suite's recorded failed cells: on to the report that shows them
])
def test_a_failing_pipeline_step_stops_bench_gpu_with_its_status(failing, status, last_run, exit_status, tmp_path,
                                                                 monkeypatch, capsys):
    """bench-gpu stops at the first failing step with its exit status, running no later step (suite exit 1 goes on)."""
    from cnnbench import pipeline

    monkeypatch.setenv(pipeline.ASSUME_GPU_ENV, "1")
    monkeypatch.setattr(pipeline, "_head", lambda: "0" * 40)
    planned, ran, steps = [], [], pipeline.steps
    monkeypatch.setattr(pipeline, "steps", lambda **kw: planned.extend(steps(**kw)) or planned)

    def run(cmd, **kwargs):
        (name,) = [n for n, c in planned if c is cmd]
        ran.append(name)
        return SimpleNamespace(returncode=status if name == failing else 0)

    monkeypatch.setattr(pipeline, "subprocess", SimpleNamespace(run=run))
    code = pipeline.main(["--profile", "smoke", "--results", str(tmp_path / "r"), "--reports", str(tmp_path / "o")])
    names = [n for n, _ in planned]
    assert len(names) == 8 and names[0] == "suite" and names[-1] == "report"
    assert code == exit_status and ran == names[:names.index(last_run) + 1]
    err = capsys.readouterr().err
    assert (f"bench-gpu: step '{failing}' failed (exit {status})" in err) == (exit_status != 0)

