"""Sessions: `nox -s tests` (default: the fast tier), `tests-full` (the slow tier), `lint`, `bench-cpu` (the CPU
suite + report), `bench-gpu` (everything, on a GPU), `bench-ablations`, `bench-memory`, `bench-throughput`,
`bench-jax` (GPU memory and throughput through Keras' JAX backend), `asv` (airspeed velocity, arguments passed
through), `report`.

Heavy environments are reused between runs (TensorFlow is a large install); benchmark sessions are opt-in.
"""

import os
import shutil
import sys

import nox

nox.needs_version = ">=2024.4"
nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True
# TF C++ start-up chatter off (CUDA probing, oneDNN notices); oneDNN's CPU kernels on, as TensorFlow's default does
# only on CPUs with AVX-512-class features: the same kernels on every x86 machine, 2x faster training on an AVX2-only
# one (ResNet-18 train step 92 → 194 images/s here), and records that say so (env.tf_enable_onednn_opts)
QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1"}
# Two test workers (tests spend much of their time tracing graphs, which one worker overlaps with the other's
# computing); tests sharing an expensive session fixture run on one worker (loadgroup: see tests/conftest.py); the 25
# slowest tests are listed so a slow newcomer shows. On a GPU, each worker takes memory as it needs it.
TEST_ARGS = ["-q", "-n", "2", "--dist", "loadgroup", "--durations", "25"]
# oneDNN (QUIET_TF): the tests ran 40 % faster with it on this AVX2-only machine (ResNet-18 smoke training 35 → 21 s)
TEST_ENV = QUIET_TF | {"TF_FORCE_GPU_ALLOW_GROWTH": "true"}
#: the fast tier: all but the slow end-to-end checks and the tests that need TensorFlow absent
FAST = "not full and not without_tf"
# The Pythons pyproject's classifiers list; sessions run on the one running nox where it is listed (one environment
# per session, reused: TensorFlow is a large install), else on the newest listed.
PYTHON_VERSIONS = nox.project.python_versions(nox.project.load_toml("pyproject.toml"))
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"
PYTHON = RUNNING if RUNNING in PYTHON_VERSIONS else PYTHON_VERSIONS[-1]


def _install(session: nox.Session, *extras: str) -> None:
    """The package, editable (records carry the git sha of this checkout), with ``extras``; TensorFlow, the default
    Keras backend, unless the extras name another backend (``jax``, ``torch``) or TensorFlow's CUDA build (``gpu``)."""
    if not {"jax", "torch", "gpu"} & set(extras):
        extras = ("tensorflow", *extras)
    session.install("-e", f".[{','.join(extras)}]")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The fast tier, the README's test command: every README claim at smoke scale (tiny profiles; minutes on two
    cores). Extra args go to pytest."""
    _install(session, "test")
    session.run("pytest", "-m", FAST, *(session.posargs or TEST_ARGS), env=TEST_ENV)


@nox.session(name="tests-full", python=PYTHON, default=False)
def tests_full(session: nox.Session) -> None:
    """The slow tier (`-m full`): end-to-end checks — bench-gpu --quick, the Ray executor, the suite killed at 20
    points, every architecture's smoke training, asv compare, the JAX sweep, the report in Chromium; then the fast
    tier again where NVML reports a GPU (tests/fake_nvml) that TensorFlow does not see. Extra args go to pytest."""
    _install(session, "test")
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        if not (shutil.which("apt-get") and os.geteuid() == 0):
            session.error("the full tier opens the report in Chromium: install it (Debian: apt-get install chromium)")
        session.run("apt-get", "update", "-qq", external=True)
        session.run("apt-get", "install", "-y", "-qq", "chromium", external=True)
    session.run("pytest", "-m", "full", *(session.posargs or TEST_ARGS), env=TEST_ENV)
    if not session.posargs:
        session.run("pytest", "-m", FAST, *TEST_ARGS, env=TEST_ENV | {"CNNBENCH_FAKE_NVML": "1"})


def _without_tensorflow(session: nox.Session, backend: str) -> None:
    """The ``without_tf`` tests on Keras' ``backend``, in an environment without TensorFlow, with
    tests/without_tensorflow on PYTHONPATH as well: importing TensorFlow fails even where something brought it."""
    _install(session, backend, "test")
    blocker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests", "without_tensorflow")
    # only its own file: the other test modules import TensorFlow at collection
    session.run("pytest", "tests/test_backends.py", "-m", "without_tf", *(session.posargs or TEST_ARGS),
                env=TEST_ENV | {"KERAS_BACKEND": backend, "PYTHONPATH": blocker})


@nox.session(name="tests-jax", python=PYTHON, default=False)
def tests_jax(session: nox.Session) -> None:
    """The suite on Keras' JAX backend without TensorFlow (what a GPU machine without it runs): every classifier and
    FCN through the smoke suite, and `bench-gpu --quick` end to end with the GPU check forced."""
    _without_tensorflow(session, "jax")


@nox.session(name="tests-torch", python=PYTHON, default=False)
def tests_torch(session: nox.Session) -> None:
    """The same on Keras' PyTorch backend. PyTorch's CPU build is the wheel on this machine's disk (pip takes it for
    torch==2.13.0; a newer release would be a CUDA build of several GB)."""
    session.install("torch==2.13.0")
    _without_tensorflow(session, "torch")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")


def _bench(session: nox.Session, profile: str, *extra: str) -> None:
    # --resume: a rerun completes what is missing (move results/ away to re-measure). Exit 1 means some cell
    # recorded a failure outcome (oom, diverged, error): the report still gets built and shows it.
    session.run("cnnbench", "suite", "--profile", profile, "--resume", *extra, *session.posargs,
                success_codes=[0, 1], env=QUIET_TF)
    _report(session)


def _report(session: nox.Session) -> None:
    # the architecture cards (each model at its paper input, layer by layer) are results the report reads too
    session.run("cnnbench", "describe", "--results", "results", env=QUIET_TF)
    session.run("cnnbench", "report", "--results", "results", "--out", "reports")


@nox.session(name="bench-cpu", python=PYTHON, default=False)
def bench_cpu(session: nox.Session) -> None:
    """The CPU suite — every registered model on all three tasks, the profile's seeds — then the HTML report. Extra
    args go to suite: `nox -s bench-cpu -- --tasks mnist` is the quicker MNIST-only selection."""
    _install(session)
    _bench(session, "cpu", "--tasks", "mnist", "transfer", "segmentation")


@nox.session(name="bench-ablations", python=PYTHON, default=False)
def bench_ablations(session: nox.Session) -> None:
    """The nine paired ablations on Fashion-MNIST at the cpu profile (3 seeds), then the report's innovations page.
    Extra args go to `cnnbench ablation` (default: all): `nox -s bench-ablations -- residual --seeds 0 1 2 3 4`."""
    _install(session)
    session.run("cnnbench", "ablation", *(session.posargs or ["all"]), "--resume", success_codes=[0, 1],
                env=QUIET_TF)
    _report(session)


@nox.session(name="bench-gpu", python=PYTHON, default=False)
def bench_gpu(session: nox.Session) -> None:
    """The GPU user's one command: refuses (exit 2) unless NVML sees a GPU; installs the backend's CUDA build
    (TensorFlow's; with KERAS_BACKEND=jax, JAX's and no TensorFlow); runs the gpu-profile suite on every task, the
    memory sweep with NVML readings, the throughput sweep in float32 and mixed precision with and without XLA, asv run
    + publish, and the report (cnnbench/pipeline.py). Extra args go to the pipeline: `-- --quick` (a <= 8 min smoke
    check), `-- --archs resnet50 xception --tasks mnist`."""
    session.install("nvidia-ml-py")
    session.run("python", "-m", "cnnbench.nvml")  # NVML's answer before anything large is installed
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    _install(session, "gpu" if backend == "tensorflow" else backend, "bench")
    if backend == "jax":
        session.install("jax[cuda13]")  # CUDA 13 needs driver >= 580; older drivers: jax[cuda12]
    session.run("python", "-m", "cnnbench.pipeline", *session.posargs, env=QUIET_TF | {"KERAS_BACKEND": backend})


@nox.session(python=PYTHON, default=False)
def asv(session: nox.Session) -> None:
    """airspeed velocity with this repository's asv.conf.json; extra args go to asv (default: `run --quick`, HEAD,
    in asv's own virtualenv built from the package index). `nox -s asv -- run HEAD~5..HEAD`, `-- publish`,
    `-- compare A B`, `-- continuous main HEAD`. CNNBENCH_ASV_PROFILE and CNNBENCH_ASV_ARCHS pick the profile and
    the models. The machine is recorded under the suite's machine id, with its GPU where there is one."""
    _install(session, "bench")
    session.run("python", "-m", "cnnbench.environment", "asv-machine", env=QUIET_TF)
    session.run("asv", *(session.posargs or ["run", "--quick"]), env=QUIET_TF)


@nox.session(name="bench-memory", python=PYTHON, default=False)
def bench_memory(session: nox.Session) -> None:
    """Predicted vs measured memory, every model x batch {1, 8, 32} x {train, infer} and the textbook's worked
    network (results/memory/), then the report (reports/memory.html)."""
    _install(session)
    session.run("cnnbench", "memory-sweep", *(session.posargs or ["--exercise"]), env=QUIET_TF)
    _report(session)


@nox.session(name="bench-throughput", python=PYTHON, default=False)
def bench_throughput(session: nox.Session) -> None:
    """Images/s, CoV, latency, MFU and keras parity of every model x batch x mode (results/throughput/), then the
    report (reports/throughput.html)."""
    _install(session)
    session.run("cnnbench", "throughput-sweep", *session.posargs, env=QUIET_TF)
    _report(session)


@nox.session(name="bench-jax", python=PYTHON, default=False)
def bench_jax(session: nox.Session) -> None:
    """The registry's models on the GPU through Keras' JAX backend (XLA), where TensorFlow's CUDA build cannot be
    installed: memory predicted vs XLA's peak vs NVML, a budget, the OOM path, throughput vs keras.applications
    (results/jax/, reports/jax.md). Extra args go to the sweep (--parts, --modes, --deadline, --quick)."""
    _install(session, "jax")  # no TensorFlow: what the GPU machines carry
    if shutil.which("nvidia-smi"):
        session.install("jax[cuda13]")  # JAX's CUDA build (CUDA 13 needs driver >= 580; older drivers: jax[cuda12])
    session.run("python", "-m", "cnnbench.measure.jax_sweep", *session.posargs,
                env=QUIET_TF | {"KERAS_BACKEND": "jax"})


@nox.session(python=PYTHON, default=False)
def report(session: nox.Session) -> None:
    """Rebuild the report site (reports/index.html and its pages) from results/."""
    _install(session)
    _report(session)
