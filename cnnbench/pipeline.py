"""The GPU user's one command (`nox -s bench-gpu`): every measurement the suite publishes, in order, then the report.

1. a GPU, or a clear refusal (NVML; exit 2);
2. the gpu-profile suite: every model on every task, the profile's seeds (``--archs``/``--tasks`` narrow it);
3. the memory sweep at the papers' input sizes: predicted vs the TF allocator's peak, NVML beside it;
4. the throughput sweep at the same sizes in float32 and mixed precision, each with and without XLA;
5. asv over this environment at HEAD (``asv run -E existing``), then ``asv publish`` → reports/asv/ (asv's own
   site: ``asv preview`` serves it; it loads its libraries from CDNs, as every asv site does);
6. the architecture cards and the report → reports/index.html.

``--quick`` smoke-checks a GPU box in ≤ 8 minutes: LeNet-5 and ResNet-18 on MNIST, one seed, one epoch on 4,096
images; a two-model memory and throughput sweep at batch 1 and 32; asv over those two models. Each step is a
``cnnbench``/``asv`` command, printed before it runs; a failing step stops the pipeline with its exit status, except
a suite whose failed cells are recorded (exit 1), which goes on to the report that shows them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cnnbench.environment import REPO_ROOT
from cnnbench.tasks import SUITE_TASKS

#: forces the GPU check to pass (the tests prove the plumbing on a CPU with it); never set it on a real run
ASSUME_GPU_ENV = "CNNBENCH_ASSUME_GPU"
QUICK = {"archs": ["lenet5", "resnet18"], "tasks": ["mnist"], "seeds": ["0"], "epochs": "1", "train_subset": "4096",
         "batch_sizes": "1,32"}


def steps(*, quick: bool, archs: list[str] | None, tasks: list[str] | None, profile: str = "gpu",
          results: str = "results", reports: str = "reports", asv_config: str = "asv.conf.json",
          batch_sizes: str | None = None, min_window: float | None = None) -> list[tuple[str, list[str]]]:
    """(name, argv) of each step."""
    cnnbench = [sys.executable, "-m", "cnnbench"]
    archs = archs or (QUICK["archs"] if quick else None)
    tasks = tasks or (QUICK["tasks"] if quick else list(SUITE_TASKS))
    suite = [*cnnbench, "suite", "--profile", profile, "--allow-cpu", "--resume", "--results", results,
             "--tasks", *tasks]
    sweep = ["--profile", "gpu" if profile == "gpu" else "cpu", "--results", results]
    if archs:
        suite += ["--archs", *archs]
        sweep += ["--archs", *archs]
    if quick:
        suite += ["--seeds", *QUICK["seeds"], "--epochs", QUICK["epochs"], "--train-subset", QUICK["train_subset"]]
    if batch_sizes or quick:
        sweep += ["--batch-sizes", batch_sizes or QUICK["batch_sizes"]]
    asv = [sys.executable, "-m", "asv"]
    conf = ["--config", asv_config]
    return [
        ("suite", suite),
        ("memory sweep", [*cnnbench, "memory-sweep", *sweep]),
        ("throughput sweep", [*cnnbench, "throughput-sweep", *sweep, "--precisions", "float32", "mixed_float16",
                              "--xla", *(["--min-window", str(min_window)] if min_window else [])]),
        ("asv machine", [sys.executable, "-m", "cnnbench.environment", "asv-machine"]),
        ("asv run", [*asv, "run", *conf, "-E", f"existing:{sys.executable}", "--set-commit-hash", _head(),
                     "--show-stderr", *(["--quick"] if quick else [])]),
        ("asv publish", [*asv, "publish", *conf]),
        ("architecture cards", [*cnnbench, "describe", *(archs or []), "--results", results]),
        ("report", [*cnnbench, "report", "--results", results, "--out", reports]),
    ]


def _head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                          cwd=REPO_ROOT).stdout.strip()


def asv_config(results: str, reports: str, folder: str) -> str:
    """The repository's asv.conf.json with absolute paths, its results under ``results/asv`` and its site under
    ``reports/asv`` (asv resolves a config's paths against the working directory, not the file)."""
    from asv.util import load_json

    conf = load_json(str(REPO_ROOT / "asv.conf.json"), js_comments=True) | {
        "repo": str(REPO_ROOT), "benchmark_dir": str(REPO_ROOT / "benchmarks"), "env_dir": str(REPO_ROOT / ".asv/env"),
        "results_dir": str(Path(results).resolve() / "asv"), "html_dir": str(Path(reports).resolve() / "asv")}
    path = Path(folder) / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=2))
    return str(path)


def check_gpu() -> list[str]:
    """The GPU NVML and TensorFlow see (``NoGPUError`` where none); ``CNNBENCH_ASSUME_GPU=1`` skips the check."""
    if os.environ.get(ASSUME_GPU_ENV) == "1":
        print(f"{ASSUME_GPU_ENV}=1: the GPU check is skipped (plumbing test; numbers from this run are CPU numbers)")
        return []
    from cnnbench.nvml import require_gpu

    return require_gpu()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cnnbench.pipeline", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a subset sized for <= 8 minutes on one GPU")
    p.add_argument("--archs", nargs="+", help="registry names or patterns (default: every model; --quick: two)")
    p.add_argument("--tasks", nargs="+", help="mnist, transfer, segmentation (default: all; --quick: mnist)")
    p.add_argument("--profile", default="gpu", help="the suite's profile (default gpu; the tests use smoke)")
    p.add_argument("--results", default="results")
    p.add_argument("--reports", default="reports")
    p.add_argument("--batch-sizes", help="the sweeps' batch sizes, comma-separated (default 1,8,32; --quick: 1,32)")
    p.add_argument("--min-window", type=float, help="the throughput sweep's timed window in seconds (default 2)")
    args = p.parse_args(argv)
    results, reports = str(Path(args.results).resolve()), str(Path(args.reports).resolve())
    from cnnbench.nvml import NoGPUError

    try:
        names = check_gpu()
    except NoGPUError as e:
        print(f"bench-gpu: {e}", file=sys.stderr)
        return 2
    if names:
        print(f"GPU: {', '.join(names)}")
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2", "CNNBENCH_ASV_PROFILE": args.profile}
    if args.archs or args.quick:  # asv benchmarks the same models
        env["CNNBENCH_ASV_ARCHS"] = ",".join(args.archs or QUICK["archs"])
    with tempfile.TemporaryDirectory() as folder:
        conf = asv_config(results, reports, folder)
        for name, cmd in steps(quick=args.quick, archs=args.archs, tasks=args.tasks, profile=args.profile,
                               results=results, reports=reports, asv_config=conf, batch_sizes=args.batch_sizes,
                               min_window=args.min_window):
            print(f"== {name}: {' '.join(cmd)}", flush=True)
            code = subprocess.run(cmd, env=env, cwd=REPO_ROOT).returncode
            if code and not (name == "suite" and code == 1):
                print(f"bench-gpu: step '{name}' failed (exit {code})", file=sys.stderr)
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
