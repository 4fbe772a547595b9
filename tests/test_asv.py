"""asv and the bench-gpu pipeline: a slowdown committed to a throwaway copy of the repository is flagged by
`asv compare` while an identical version is not; the pipeline refuses without a GPU and, with the GPU check forced,
runs its --quick subset end to end on the CPU (every step's output is there)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: LeNet-5's smoke train step takes 11-26 ms as asv times it (README, Regression history; 2.4x apart under load):
#: with this sleep in it, 20-45x slower
SLOW_STEP = "time.sleep(0.5)"
#: the slowdown must show at this factor, and identical code must not: far above what two runs on shared cores differ
FACTOR = "5"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)
    return _git(repo, "rev-parse", "HEAD")


def _asv(repo: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    # asv drops PYTHONPATH in the benchmark processes and uses ASV_PYTHONPATH instead: the copy's code comes first
    env = os.environ | {"HOME": str(home), "ASV_PYTHONPATH": str(repo), "CNNBENCH_ASV_ARCHS": "lenet5",
                        "CNNBENCH_ASV_PROFILE": "smoke", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "asv", *args], cwd=repo, env=env, capture_output=True, text=True)


@pytest.mark.full
def test_asv_compare_flags_a_slowed_train_step_and_not_an_identical_version(tmp_path):
    repo, home = tmp_path / "repo", tmp_path / "home"
    home.mkdir()
    for name in ("architectures", "cnnbench", "benchmarks"):
        shutil.copytree(ROOT / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("asv.conf.json", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    _git(tmp_path, "init", "-q", "-b", "main", str(repo))
    base = _commit(repo, "v1")
    (repo / "NOTES").write_text("a commit that changes no code\n")
    same = _commit(repo, "v2: identical code")
    source = repo / "cnnbench/backends/tensorflow_backend.py"
    text = source.read_text()
    slowed = text.replace("    train = tf.function(model.train_step, jit_compile=jit)\n    infer",
                          "    _train = tf.function(model.train_step, jit_compile=jit)\n\n"
                          f"    def train(*a):\n        import time\n        {SLOW_STEP}\n        return _train(*a)\n\n"
                          "    infer")
    assert slowed != text, "compiled_steps changed: update where the test puts its sleep"
    source.write_text(slowed)
    slow = _commit(repo, "v3: a sleep in the train step")

    assert _asv(repo, home, "machine", "--yes", "--machine", "ci").returncode == 0
    for sha in (base, same, slow):  # each commit's code on disk while asv measures it
        _git(repo, "checkout", "-q", sha)
        run = _asv(repo, home, "run", "-E", f"existing:{sys.executable}", "--set-commit-hash", sha,
                   "--machine", "ci", "-b", "Step.time_train_step", "--show-stderr")
        assert run.returncode == 0, run.stdout + run.stderr
    results = list((repo / "results/asv/ci").glob("*.json"))
    assert len(results) == 4  # three commits and machine.json

    def compare(a: str, b: str) -> str:
        out = _asv(repo, home, "compare", "--machine", "ci", "--factor", FACTOR, "--split", a, b)
        assert out.returncode == 0, out.stderr
        return out.stdout

    flagged = compare(base, slow)
    assert "Benchmarks that have got worse" in flagged and "time_train_step" in flagged.split("got worse")[1]
    unchanged = compare(base, same)
    assert "got worse" not in unchanged and "got better" not in unchanged
    assert "time_train_step" in unchanged  # compared, and found equal


def test_bench_gpu_refuses_without_a_gpu(tmp_path):
    """On a machine where NVML answers and reports no device (tests/fake_nvml with none), whatever runs the test. The
    noxfile asks before installing anything: its check runs from the checkout with nothing but (fake) NVML
    importable (``-S``: no site-packages)."""
    assert '"python", "-m", "cnnbench.nvml"' in (ROOT / "noxfile.py").read_text()
    fake = str(ROOT / "tests" / "fake_nvml")
    env = {k: v for k, v in os.environ.items() if k != "CNNBENCH_ASSUME_GPU"} | {
        "FAKE_NVML_GPUS": "0", "PYTHONPATH": os.pathsep.join(filter(None, [fake, os.environ.get("PYTHONPATH")]))}
    nox_check = subprocess.run([sys.executable, "-S", "-m", "cnnbench.nvml"], capture_output=True, text=True,
                               env=env, cwd=ROOT)
    assert nox_check.returncode == 2 and "no NVIDIA GPU visible through NVML" in nox_check.stderr
    assert "bench-cpu" in nox_check.stderr
    pipeline = subprocess.run([sys.executable, "-m", "cnnbench.pipeline", "--quick", "--results", str(tmp_path / "r")],
                              capture_output=True, text=True, env=env, cwd=tmp_path)
    assert pipeline.returncode == 2 and "no NVIDIA GPU" in pipeline.stderr and "Traceback" not in pipeline.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.full
def test_bench_gpu_quick_runs_end_to_end_with_the_gpu_check_forced(tmp_path):
    results, reports, home = tmp_path / "results", tmp_path / "reports", tmp_path / "home"
    home.mkdir()
    env = os.environ | {"CNNBENCH_ASSUME_GPU": "1", "HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # the --quick plan at smoke sizes, one model, one batch size and short timing windows: the plumbing, on a CPU
    run = subprocess.run([sys.executable, "-m", "cnnbench.pipeline", "--quick", "--profile", "smoke",
                          "--archs", "lenet5", "--batch-sizes", "8", "--min-window", "0.05",
                          "--results", str(results), "--reports", str(reports)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    steps = [line.split(":")[0] for line in run.stdout.splitlines() if line.startswith("== ")]
    assert steps == ["== suite", "== memory sweep", "== throughput sweep", "== asv machine", "== asv run",
                     "== asv publish", "== architecture cards", "== report"]
    record, = [json.loads(p.read_text()) for p in results.glob("lenet5.mnist.smoke.seed0.*.json")]
    assert record["outcome"] == "ok" and record["config"]["epochs"] == 1 and record["dataset"]["n_train"] == 4096
    memory, = [json.loads(p.read_text()) for p in (results / "memory").glob("*.json")]
    assert {(r["mode"], r["batch_size"]) for r in memory["rows"]} == {("train", 8), ("infer", 8)}
    throughput, = [json.loads(p.read_text()) for p in (results / "throughput").glob("*.json")]
    assert {(r["precision"], r["jit"]) for r in throughput["rows"]} == {
        ("float32", False), ("mixed_float16", False), ("float32", True), ("mixed_float16", True)}
    asv_results = [p for p in (results / "asv").rglob("*.json") if p.name not in ("machine.json", "benchmarks.json")]
    assert len(asv_results) == 1
    tracked = json.loads(asv_results[0].read_text())["results"]
    assert "benchmarks.Cell.track_test_accuracy" in tracked and "benchmarks.Step.time_train_step" in tracked
    assert (reports / "asv" / "index.html").is_file() and (reports / "index.html").is_file()
    assert 'href="asv/index.html"' in (reports / "index.html").read_text()
