"""The cnnbench command line. Every choice list comes from the registries."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import json
import logging
import os
import re
import sys

from cnnbench._util import check_writable_dir

EXIT_USAGE = 2


class UsageError(Exception):
    """What the user must fix — a name, a value, a combination of options: the command says so and exits 2."""


@contextlib.contextmanager
def _checking_input():
    """A KeyError or ValueError raised while a command checks its input (names, values, the cells it would run) is
    the user's to fix (``UsageError``, exit 2); the same errors once the work runs are bugs and keep their
    traceback."""
    try:
        yield
    except (KeyError, ValueError) as e:
        raise UsageError(e.args[0] if isinstance(e, KeyError) and e.args else str(e)) from e


def _number(kind, valid, what: str):
    """An argparse type: ``kind(text)`` that must satisfy ``valid``, else a usage error saying ``what``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not valid(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a positive finite number")
_seed = _number(int, lambda v: 0 <= v < 2**31, "an integer seed in [0, 2**31)")


def _batch_sizes(text: str) -> list[int]:
    return [_positive_int(v) for v in text.split(",")]


def _shape(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected H,W,C with positive integers, got {text!r}")
    return shape


UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
         "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """``"16GiB"`` → 17179869184; decimal (kB, MB, GB) and binary (KiB, MiB, GiB) units, case-insensitive."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in UNITS:
        raise ValueError(f"expected a size like 16GiB or 500MB, got {text!r}")
    value = float(match.group(1)) * UNITS[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"a memory size must be positive, got {text!r}")
    return int(value)


def _memory_size(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


DESCRIPTION = """Faithful Keras reimplementations of the classic CNNs, trained, evaluated and measured through one
harness; every number is written to a result record (results/) and the report reads only those."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help (unless the help states it), descriptions as written."""

    def _get_help_string(self, action):
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _cell_options(p):
    from cnnbench.profiles import PROFILES

    p.add_argument("--profile", default="cpu", help=f"{' | '.join(PROFILES)} (default: cpu)")
    p.add_argument("--allow-cpu", action="store_true",
                   help="let the gpu profile run without a GPU (paper-scale work on the CPU: hours)")
    p.add_argument("--epochs", type=_positive_int, help="override the profile's epochs")
    p.add_argument("--batch-size", type=_positive_int, help="override the profile's batch size")
    p.add_argument("--train-subset", type=_positive_int, help="override the profile's training images")
    p.add_argument("--learning-rate", type=_positive_float,
                   help="override the profile's learning rate (of the recipe's optimizer)")
    p.add_argument("--recipe", help="override the profile's training recipe: plain | augment (augmentation, "
                                    "warm-up, label smoothing) | sgd (SGD with momentum); classification tasks")
    p.add_argument("--hold-out", type=_positive_int, metavar="N",
                   help="train on all but the last N training images and score those after every epoch: how "
                        "settings are chosen, never on the test split (classification tasks)")
    p.add_argument("--results", default="results", help="directory for result records (default: results)")
    p.add_argument("--data-dir", help="dataset cache (default: $CNNBENCH_DATA_DIR or the user data dir)")
    p.add_argument("--no-measure-memory", dest="measure_memory", action="store_false",
                   help="record the predicted memory only (skips the measuring process)")
    p.add_argument("--no-measure-throughput", dest="measure_throughput", action="store_false",
                   help="skip the throughput timing (the record's throughput is null)")
    p.add_argument("--dataset", help="transfer: fashion_mnist (offline default), tfds:NAME or dir:PATH; "
                                     "segmentation: mnist_composites (offline default) or tfds:oxford_iiit_pet")
    p.add_argument("--weights", help="transfer: imagenet (default), scratch, or a .weights.h5 file")
    _strategy_options(p)


def _strategy_options(p):
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"], default="default",
                   help="one model on several devices: mirrored (this machine's GPUs), multiworker (hosts named "
                        "in TF_CONFIG); the batch size is per replica (default: default, one device)")
    p.add_argument("--cpu-devices", type=_positive_int, metavar="N",
                   help="with --strategy mirrored and no GPU: split the CPU into N logical devices")


def _model_options(p):
    """Which model (a registered one or a .keras file) and how it runs: shared by memory and fit."""
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("arch", nargs="?", help="a registered model")
    which.add_argument("--model-file", help="a saved .keras model (loaded with safe_mode)")
    p.add_argument("--input-shape", type=_shape, help="H,W,C (default: the model's own)")
    p.add_argument("--width", type=_positive_float, help="width multiplier (registered models)")
    p.add_argument("--mode", choices=["train", "infer"], default="train", help="a train step or an inference")
    p.add_argument("--optimizer", default="adam", help="sgd, momentum, adam, rmsprop, ... (default: adam)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _sweep_options(p):
    p.add_argument("--archs", nargs="+", help="registry names or patterns (default: every model)")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=[1, 8, 32], help="comma-separated")
    p.add_argument("--results", default="results", help="where the sweep's record goes (RESULTS/<kind>/)")
    p.add_argument("--profile", choices=["cpu", "gpu"], default="cpu",
                   help="whose input sizes and widths the models get (gpu: the papers')")


def _task_names() -> str:
    from cnnbench.tasks import TASKS

    return " | ".join(TASKS)


def _list_args(p):
    p.add_argument("pattern", nargs="?", help="shell-style filter, any case, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _run_args(p):
    p.add_argument("arch", help="a registered model (cnnbench list)")
    p.add_argument("--task", default="mnist", help=f"{_task_names()} (default: mnist)")
    _cell_options(p)
    p.add_argument("--seed", type=_seed, default=0, help="the run's seed (weights, data order, dropout)")


def _suite_args(p):
    _cell_options(p)
    p.add_argument("--archs", nargs="+", help="registry names or patterns (default: every model)")
    p.add_argument("--tasks", nargs="+", default=["mnist"], help=f"{_task_names()} (default: mnist)")
    p.add_argument("--seeds", nargs="+", type=_seed, help="default: the profile's seeds for each arch")
    _resume_option(p, "cells")
    p.add_argument("--require-gpu", action="store_true", help="refuse to run unless NVML sees a GPU")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local: one cell after another here; ray: each cell a Ray task (pip install "
                        "'cnnbench[cluster]'), records written here as they come back")
    p.add_argument("--address", help="with --executor ray: a running Ray cluster (ray://HOST:10001, or auto); "
                                     "default: a local cluster on this machine's cores")
    p.add_argument("--ablations", nargs="+", metavar="NAME", default=[],
                   help="also these ablations' paired cells ('all': every one; see `cnnbench ablation --list`)")
    p.add_argument("--plan", action="store_true",
                   help="list the cells with their resolved settings, each validated, and run nothing")


def _memory_args(p):
    _model_options(p)
    p.add_argument("--batch-size", type=_positive_int, default=32, help="images per step")
    p.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"], default="float32",
                   help="Keras precision policy")
    p.add_argument("--measure", action="store_true", help="also measure the peak in a fresh process")
    p.add_argument("--graph", action="store_true",
                   help="also simulate the traced step's graph: its peak and the tensors alive at it")


def _fit_args(p):
    _model_options(p)
    p.add_argument("--memory-budget", required=True, type=_memory_size, help="e.g. 16GiB, 500MB")
    p.add_argument("--measure", action="store_true", help="measure each applicable remedy at the batch it allows")


def _memory_sweep_args(p):
    _sweep_options(p)
    p.add_argument("--exercise", action="store_true",
                   help="also the textbook's worked network (infer batch 1, train batch 50); alone with --archs none")
    p.add_argument("--random", type=_positive_int, default=0, metavar="N",
                   help="also N generated networks that are not in the registry (train and infer at the batch each "
                        "drew); alone with --archs none")
    p.add_argument("--random-seed", type=_seed, default=0, help="the first generated network's seed (default 0)")


def _throughput_args(p):
    p.add_argument("arch", help="a registered model")
    p.add_argument("--mode", choices=["train", "infer"], default="train", help="time a train step or inference")
    p.add_argument("--batch-sizes", type=_batch_sizes, default=[1, 8, 32], help="comma-separated")
    p.add_argument("--input-shape", type=_shape, help="H,W,C (default: the model's own)")
    p.add_argument("--width", type=_positive_float, help="width multiplier")
    p.add_argument("--jit", action="store_true", help="compile the steps with XLA")
    p.add_argument("--precision", choices=["float32", "mixed_float16", "mixed_bfloat16"], default="float32",
                   help="Keras precision policy")
    p.add_argument("--compare-keras", action="store_true",
                   help="also time the keras.applications twin (resnet50/101/152, xception) in this process")
    p.add_argument("--end-to-end", action="store_true",
                   help="train: also time steps fed by the real MNIST tf.data pipeline")
    p.add_argument("--min-window", type=_positive_float, default=1.0, help="seconds per timed window (default 1)")
    p.add_argument("--repeats", type=_positive_int, default=7, help="timed windows (default 7)")
    p.add_argument("--data-dir", help="dataset cache for --end-to-end")
    _strategy_options(p)
    p.add_argument("--results", help="also record the result (with the environment) in RESULTS/scaling/")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _throughput_sweep_args(p):
    _sweep_options(p)
    p.add_argument("--precisions", nargs="+", choices=["float32", "mixed_float16", "mixed_bfloat16"],
                   default=["float32"], help="Keras precision policies to time (default: float32)")
    p.add_argument("--xla", action="store_true", help="also time every case with XLA-compiled steps")
    p.add_argument("--min-window", type=_positive_float, help="seconds per timed window (default 2)")


def _resume_option(p, what: str) -> None:
    p.add_argument("--resume", nargs="?", const="here", choices=["here", "any"],
                   help=f"skip {what} with a valid ok record from this code and settings, measured on this machine "
                        f"(--resume) or on any (--resume any: a recording split over several machines); run "
                        f"missing, invalid and failed ones")


def _ablation_args(p):
    p.add_argument("names", nargs="*", metavar="NAME", help="ablations to run, or 'all' (see --list)")
    p.add_argument("--list", action="store_true", help="the ablations, their variants and the claim each tests")
    p.add_argument("--profile", choices=["smoke", "cpu"], default="cpu", help="run sizes")
    p.add_argument("--seeds", nargs="+", type=_seed, default=[0, 1, 2], help="the same seeds for every variant")
    p.add_argument("--results", default="results", help="where the records go")
    _resume_option(p, "variants")
    p.add_argument("--table", action="store_true", help="only print the paired table from the records")
    p.add_argument("--data-dir", help="dataset cache (default: the user data dir)")


def _describe_args(p):
    p.add_argument("patterns", nargs="*", metavar="PATTERN",
                   help="registry names (glob, case-insensitive; default: every model)")
    p.add_argument("--results", default="results", help="cards go to RESULTS/architectures/<name>.json")


def _report_args(p):
    p.add_argument("--results", default="results", help="the records to read")
    p.add_argument("--out", default="reports", help="where the site (index.html, pages, figures) goes")
    p.add_argument("--baseline", help="an earlier results folder: each row's change against it, regressions marked")


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    parser = argparse.ArgumentParser(prog="cnnbench", description=DESCRIPTION, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"cnnbench {version('cnnbench')}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO level and show TensorFlow's start-up lines")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands (cnnbench COMMAND --help for each)",
                                parser_class=functools.partial(argparse.ArgumentParser, formatter_class=_HelpFormatter))
    for name, (text, arguments, _) in COMMANDS.items():
        arguments(sub.add_parser(name, help=text))
    return parser


def cmd_list(args) -> int:
    """From the registry alone (nothing is built): the reference counts, which the tests check every builder against.
    Nothing computes, so Keras gets its numpy backend unless already loaded (importing TensorFlow takes seconds);
    that backend borrows JAX's convolutions, so without JAX installed Keras keeps its default. The choice is made for
    Keras' import only: the environment the process hands on stays as it was."""
    if "keras" not in sys.modules and importlib.util.find_spec("jax") is not None and "KERAS_BACKEND" not in os.environ:
        os.environ["KERAS_BACKEND"] = "numpy"
        try:
            import keras  # noqa: F401  (reads KERAS_BACKEND once, now)
        finally:
            del os.environ["KERAS_BACKEND"]
    import architectures

    names = architectures.list_models(args.pattern)
    if not names:
        known = ", ".join(architectures.list_models())
        raise UsageError(f"no registered model matches {args.pattern!r} (models: {known})")
    rows = [architectures.model_info(name).as_dict() for name in names]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        w = max(len(r["name"]) for r in rows)
        print(f"{'name':<{w}} {'params':>12} {'counts':<9} {'input':<11} paper")
        for r in rows:
            shape = "x".join(map(str, r["default_input_shape"]))
            print(f"{r['name']:<{w}} {r['reference_params']:>12,} {r['count']:<9} {shape:<11} {r['paper']}")
    return 0


class ResultsDirError(OSError):
    """The results directory cannot be created or written."""


def _check_results_dir(path: str) -> None:
    """Fail before any work when records could not be written (the run would be lost)."""
    try:
        check_writable_dir(path)
    except OSError as e:
        raise ResultsDirError(f"results directory {path} is not writable: {e.strerror or e}") from None


def _check_device(args) -> None:
    """The gpu profile is paper-scale: without a GPU it refuses (NoGPUError, exit 2) unless ``--allow-cpu``."""
    if (args.profile == "gpu" and not args.allow_cpu) or getattr(args, "require_gpu", False):
        from cnnbench.nvml import require_gpu

        require_gpu()


def cmd_run(args) -> int:
    from cnnbench import records
    from cnnbench.distribute import is_chief
    from cnnbench.harness import run_cell
    from cnnbench.spec import RunConfig, resolve

    _check_device(args)
    cell = RunConfig(arch=args.arch, task=args.task, profile=args.profile, seed=args.seed, epochs=args.epochs,
                     batch_size=args.batch_size, train_subset=args.train_subset, learning_rate=args.learning_rate,
                     recipe=args.recipe, hold_out=args.hold_out, data_dir=args.data_dir,
                     measure_memory=args.measure_memory,
                     measure_throughput=args.measure_throughput, dataset=args.dataset, weights=args.weights,
                     strategy=args.strategy, cpu_devices=args.cpu_devices)
    with _checking_input():
        resolve(cell)
    _check_results_dir(args.results)
    record = run_cell(cell)
    if not is_chief():
        print(f"{args.arch}: {record['outcome']} on this worker; the chief writes the record")
        return 0 if record["outcome"] == "ok" else 1
    path = records.write(record, args.results)
    tag = f"{args.arch} on {args.task} [{args.profile}, seed {args.seed}]"
    if record["outcome"] != "ok":
        print(f"{tag}: {record['outcome']}: {record['error']['message']} → {path}", file=sys.stderr)
        return 1
    m, t, mem = record["metrics"], record["throughput"], record["memory"]
    if "baseline" in m:
        tag += f" ({record['config']['weights']} weights; from scratch: {m['baseline']['test_accuracy']:.4f})"
    speed = (f"{t['train_images_per_s']:.0f} train / {t['infer_images_per_s']:.0f} infer images/s (batch "
             f"{t['batch_size']})") if t else "throughput not measured"
    predicted = (f"{_mib(mem['graph_predicted_bytes'])} predicted (traced graph)" if mem.get("graph_predicted_bytes")
                 else f"{_mib(mem['predicted_bytes'])} predicted (layer model)")
    print(f"{tag}: {records.headline(m)}, {speed}, train-step memory {predicted} / "
          f"{_mib(mem.get('measured_peak_bytes'))} measured → {path}")
    return 0


def cmd_suite(args) -> int:
    from cnnbench.spec import make_task
    from cnnbench.suite import plan, run_suite

    _check_device(args)

    if args.address and args.executor != "ray":
        raise UsageError("--address is for --executor ray")
    if args.executor == "ray" and args.strategy != "default":
        raise UsageError("--executor ray runs each cell on one device of a worker: --strategy default")
    if args.strategy == "multiworker" and args.resume:
        raise UsageError("--strategy multiworker: every worker must run the same cells, so no --resume (a worker's "
                         "results differ from the chief's)")
    with _checking_input():
        cells = plan(profile=args.profile, tasks=args.tasks, archs=args.archs, seeds=args.seeds, epochs=args.epochs,
                     batch_size=args.batch_size, train_subset=args.train_subset, learning_rate=args.learning_rate,
                     recipe=args.recipe, hold_out=args.hold_out, data_dir=args.data_dir,
                     measure_memory=args.measure_memory,
                     measure_throughput=args.measure_throughput, dataset=args.dataset, weights=args.weights,
                     strategy=args.strategy, cpu_devices=args.cpu_devices)
        if args.ablations:
            from cnnbench.ablations import resolve, run_configs

            names = resolve(args.ablations)
            seeds = tuple(args.seeds or (0, 1, 2))
            cells += run_configs(names, args.profile, seeds, data_dir=args.data_dir)
    if args.plan:
        from cnnbench.suite import plan_table

        print(plan_table(cells, args.results))
        return 0
    _check_results_dir(args.results)
    for cell in {cell.task: cell for cell in cells}.values():  # each task's data fetched and verified once, first
        with _checking_input():  # an unknown --dataset source
            make_task(cell).verify_data(args.data_dir)
    return run_suite(cells, results_dir=args.results, resume=args.resume, executor=args.executor,
                     address=args.address, verbose=args.verbose)


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:,.1f} MiB"


def _model_spec(args) -> tuple[dict, tuple]:
    """The memory spec the ``model_options`` arguments describe and the model it names, built: an unknown arch, an
    unreadable model file, an input the model cannot take or an unknown optimizer fail here (exit 2)."""
    from cnnbench.measure.memory import OPTIMIZER_SLOTS
    from cnnbench.measure.steps import build_for_memory

    spec = {"arch": args.arch, "model_file": args.model_file, "mode": args.mode, "optimizer": args.optimizer,
            "input_shape": list(args.input_shape) if args.input_shape else None,
            "model_kwargs": {"width": args.width} if args.width else {}}
    with _checking_input():
        if args.optimizer not in OPTIMIZER_SLOTS:
            raise ValueError(f"unknown optimizer {args.optimizer!r} (known: {', '.join(OPTIMIZER_SLOTS)})")
        return spec, build_for_memory(spec)


def cmd_memory(args) -> int:
    from cnnbench.measure.memory import memory_report

    spec, built = _model_spec(args)
    spec |= {"batch_size": args.batch_size, "precision": args.precision}
    if args.graph and args.measure:  # the allocator's own records of the measured step, beside the simulation's
        spec["trace"] = True
    report = memory_report(spec, measure=args.measure, graph=args.graph, built=built)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    what = args.arch or args.model_file
    print(f"{what}, {args.mode}, batch {args.batch_size}, input {'x'.join(map(str, report['input_shape']))}, "
          f"{args.optimizer}, {args.precision}: {report['params']:,} parameters")
    print(f"  predicted peak     {_mib(report['predicted_bytes'])}")
    for key, value in report["breakdown"].items():
        print(f"    {key:<17}{_mib(value)}")
    print(f"  bare minimum       {_mib(report['bare_minimum_bytes'])}  (textbook: parameters + feature maps)")
    if args.measure:
        err = report["relative_error"]
        print(f"  measured peak      {_mib(report['measured_peak_bytes'])} on {report['device']}"
              + (f"  (prediction {100 * err:+.1f} %)" if err is not None else ""))
        if report["nvml_used_bytes"] is not None:
            print(f"  NVML used          {_mib(report['nvml_used_bytes'])}")
    if args.graph:
        print(f"  graph simulation   {_mib(report['graph_predicted_bytes'])}  (the traced step after Grappler)")
        for key, value in report["graph_breakdown"].items():
            print(f"    {key:<17}{_mib(value)}")
        print(f"  alive at its peak, while {report['graph_peak_at']} runs:")
        for tensor, nbytes in report["graph_alive_at_peak"]:
            print(f"    {_mib(nbytes)}  {tensor}")
    if report.get("measured_alive_at_peak"):
        m = report["measured_alive_at_peak"]
        print(f"  measured: the allocator's records of one profiled step ({m['events']} events), peak "
              f"{_mib(m['peak_bytes'])}, of it {_mib(m['resident_bytes'])} allocated before the step; alive then:")
        for a in m["alive"][:10]:
            print(f"    {_mib(a['bytes'])}  {a['op']} ({a['region']}, {a['shape']})")
    return 0


def cmd_fit(args) -> int:
    from cnnbench.measure.advisor import advise

    budget = args.memory_budget
    advice = advise(_model_spec(args)[0], budget, measure=args.measure)
    if args.json:
        json.dump(advice, sys.stdout, indent=2)
        print()
        return 0
    print(f"{args.arch or args.model_file}, {args.mode}, {args.optimizer}, budget {_mib(budget)}: largest batch "
          f"{advice['largest_batch']} (predicted)")
    for row in advice["remedies"]:
        if row.get("batch_size") is None:
            print(f"  {row['remedy']:<58} not applicable: {row.get('note', '')}")
            continue
        measured = f", measured {_mib(row['measured_peak_bytes'])}" if row.get("measured_peak_bytes") else ""
        print(f"  {row['remedy']:<58} batch {row['batch_size']:>6}  predicted {_mib(row['predicted_bytes'])}"
              f"{measured}")
    return 0


def cmd_memory_sweep(args) -> int:
    from cnnbench.measure.memory_sweep import EXERCISE, run_sweep
    from cnnbench.suite import expand_archs

    with _checking_input():
        archs = [] if args.archs == ["none"] else expand_archs(args.archs)
    _check_results_dir(args.results)
    result = run_sweep(archs + [EXERCISE] * args.exercise, batch_sizes=tuple(args.batch_sizes),
                       results_dir=args.results, profile=args.profile, random=args.random,
                       random_seed=args.random_seed)
    s = result["summary"]
    groups = [("registry", {"layers": s, "graph": s["graph"]}), (EXERCISE, s[EXERCISE]), ("generated", s["generated"])]
    for label, part in ((f"{g}, {kind}", parts[key]) for g, parts in groups
                        for kind, key in (("layer model", "layers"), ("traced graph", "graph"))):
        if part["n"]:
            print(f"{label:<24} n={part['n']:<4} median |error| {100 * part['median_abs_error']:.1f} %, worst "
                  f"{100 * part['worst_abs_error']:.1f} %, most under-predicted "
                  f"{100 * part['worst_under_prediction']:+.1f} %")
    if s["not_measured"]:
        print(f"not measured (the measuring process failed): {', '.join(s['not_measured'])}")
    print(f"→ {args.results}/memory/ (`cnnbench report` renders it)")
    return 1 if s["not_measured"] else 0


def cmd_throughput(args) -> int:
    from datetime import UTC, datetime

    from cnnbench import distribute
    from cnnbench.measure.sweep import save
    from cnnbench.measure.throughput import check_options, throughput_report

    with _checking_input():
        distribute.check(args.strategy, args.cpu_devices)
        check_options(args.arch, width=args.width, precision=args.precision, compare_keras=args.compare_keras,
                      end_to_end=args.end_to_end, jit=args.jit, strategy=args.strategy)
    if args.cpu_devices:
        distribute.split_cpu(args.cpu_devices)
    if args.results:
        _check_results_dir(args.results)
    started = datetime.now(UTC)
    report = throughput_report(args.arch, mode=args.mode, batch_sizes=args.batch_sizes, input_shape=args.input_shape,
                               width=args.width, jit=args.jit, precision=args.precision,
                               compare_keras=args.compare_keras, end_to_end=args.end_to_end,
                               min_window_s=args.min_window, repeats=args.repeats, data_dir=args.data_dir,
                               strategy=args.strategy)
    if args.results and distribute.is_chief():
        rows = report.pop("results")
        save("scaling", started=started, rows=rows, summary={}, results_dir=args.results, **report)
        report["results"] = rows
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"{args.arch} {args.mode}, input {'x'.join(map(str, report['input_shape']))}, width {report['width']}, "
          f"{args.precision}{', XLA' if args.jit else ''} on {report['device']['name']}: "
          f"{report['macs_per_image'] / 1e6:,.1f} MMACs/image, peak {report['peak_flops_per_s'] / 1e9:.1f} GFLOP/s")
    for r in report["results"]:
        if "error" in r:
            print(f"  batch {r['batch_size']:>4}: {r['error']}")
            continue
        line = (f"  batch {r['batch_size']:>4}: {r['images_per_s']:>10,.1f} img/s (CoV {100 * r['cov']:.1f} %), "
                f"latency p50 {r['latency_ms_p50']:.2f} ms p90 {r['latency_ms_p90']:.2f} ms, "
                f"MFU {100 * r['mfu']:.1f} %, overhead vs a bare loop {100 * r['harness_overhead']:+.1f} %")
        if "keras_ratio" in r:
            line += f", keras {r['keras_images_per_s']:,.1f} img/s (ours/keras {r['keras_ratio']:.3f})"
        if "end_to_end_images_per_s" in r:
            line += f", end to end {r['end_to_end_images_per_s']:,.1f} img/s"
        if "scaling_efficiency" in r:
            line += (f"; {report['distribution']['replicas']} replicas (global batch {r['global_batch_size']}): "
                     f"{r['images_per_s_per_replica']:,.1f} img/s each, one replica alone "
                     f"{r['one_replica_images_per_s']:,.1f} → scaling efficiency {100 * r['scaling_efficiency']:.0f} %")
        print(line)
    return 0


def cmd_throughput_sweep(args) -> int:
    from cnnbench.measure.throughput_sweep import run_sweep
    from cnnbench.suite import expand_archs

    with _checking_input():
        archs = expand_archs(args.archs)
    _check_results_dir(args.results)
    result = run_sweep(archs, batch_sizes=tuple(args.batch_sizes), results_dir=args.results, profile=args.profile,
                       precisions=tuple(args.precisions), xla=args.xla, min_window_s=args.min_window)
    s = result["summary"]
    print(f"{s['n']} figures: median CoV {100 * s['median_cov']:.1f} %, worst {100 * s['worst_cov']:.1f} %, "
          f"median harness overhead {100 * s['median_overhead']:+.1f} % → {args.results}/throughput/ "
          "(`cnnbench report` renders it)")
    return 0


def cmd_ablation(args) -> int:
    from cnnbench.ablations import ABLATIONS, TASK, resolve, run_configs, table_text

    if args.list:
        for a in ABLATIONS.values():
            variants = ", ".join(f"{v}{' (reference)' if v == a.reference else ''}" for v in a.variants)
            print(f"{a.name:<26} {a.arch:<18} {variants}\n{'':<26} {a.claim}")
        return 0
    with _checking_input():
        names = resolve(args.names)  # unknown: the list, exit 2, nothing written
    if not names:
        raise UsageError("name an ablation (or 'all'); --list shows them")
    if not args.table:
        from cnnbench.suite import run_suite
        from cnnbench.tasks import get_task

        _check_results_dir(args.results)
        get_task(TASK).verify_data(args.data_dir)
        with _checking_input():
            cells = run_configs(names, args.profile, tuple(args.seeds), data_dir=args.data_dir)
        code = run_suite(cells, results_dir=args.results, resume=args.resume, verbose=args.verbose)
        if code == 130:
            return code
    print(table_text(args.results, names))
    return 0 if args.table else code


def cmd_describe(args) -> int:
    import architectures
    from cnnbench.cards import write_cards

    if unknown := [p for p in args.patterns if not architectures.list_models(p)]:
        raise UsageError(f"no registered model matches {', '.join(map(repr, unknown))}")
    _check_results_dir(args.results)
    for pattern in args.patterns or [None]:
        for path in write_cards(pattern, args.results):
            print(path)
    return 0


def cmd_report(args) -> int:
    from cnnbench.report import build_report

    path = build_report(args.results, args.out, baseline_dir=args.baseline)
    print(f"report written to {path}")
    return 0


#: each command: its one-line help, its arguments, what runs it
COMMANDS = {
    "list": ("registered models with their reference parameter counts", _list_args, cmd_list),
    "run": ("train, evaluate and measure one architecture; write one result record", _run_args, cmd_run),
    "suite": ("run every (arch, task, seed) cell of a profile, one process per cell", _suite_args, cmd_suite),
    "memory": ("predicted (and measured) memory of a train step or an inference", _memory_args, cmd_memory),
    "fit": ("the largest batch that fits a memory budget, and what each remedy allows", _fit_args, cmd_fit),
    "memory-sweep": ("predicted vs measured memory for every model x batch x mode", _memory_sweep_args,
                     cmd_memory_sweep),
    "throughput": ("images/s, latency, FLOPs and MFU of one model over a batch-size sweep", _throughput_args,
                   cmd_throughput),
    "throughput-sweep": ("every model x batch x mode at a profile's sizes, recorded", _throughput_sweep_args,
                         cmd_throughput_sweep),
    "ablation": ("paired experiments: variants of one builder on Fashion-MNIST, same seeds", _ablation_args,
                 cmd_ablation),
    "describe": ("architecture cards: each model at its paper input, counted layer by layer", _describe_args,
                 cmd_describe),
    "report": ("write the HTML report (a static site) from result records", _report_args, cmd_report),
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from cnnbench.data import ChecksumError, DataUnavailableError
    from cnnbench.measure.memory_probe import ProbeError
    from cnnbench.nvml import NoGPUError
    from cnnbench.quiet import hidden_chatter
    from cnnbench.report import ReportError

    with contextlib.nullcontext() if args.verbose else hidden_chatter() as relay:
        try:
            return COMMANDS[args.command][2](args)
        except (UsageError, ResultsDirError, ChecksumError, DataUnavailableError, NoGPUError, ReportError) as e:
            print(f"cnnbench {args.command}: error: {e}", file=sys.stderr)
            return EXIT_USAGE
        except ProbeError as e:
            print(f"cnnbench {args.command}: {e}", file=sys.stderr)
            return 1
        except Exception:  # not the user's doing: what TensorFlow said may explain it
            if relay is not None:
                relay.failed = True
            raise


if __name__ == "__main__":
    sys.exit(main())
