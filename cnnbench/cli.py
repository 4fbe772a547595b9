"""The ``cnnbench`` command line: list, run, suite, report. Every choice list comes from the registries."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnbench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered models with their parameter counts")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def cell_options(p):
        p.add_argument("--profile", default="cpu", help="smoke | cpu | gpu (default: cpu)")
        p.add_argument("--epochs", type=_positive_int, help="override the profile's epochs")
        p.add_argument("--batch-size", type=_positive_int, help="override the profile's batch size")
        p.add_argument("--learning-rate", type=_positive_float, help="override the profile's (Adam) learning rate")
        p.add_argument("--results", default="results", help="directory for result records (default: results)")
        p.add_argument("--data-dir", help="dataset cache (default: $CNNBENCH_DATA_DIR or the user data dir)")

    p = sub.add_parser("run", help="train, evaluate and measure one architecture; write one result record")
    p.add_argument("arch")
    p.add_argument("--task", default="mnist", help="task name (default: mnist)")
    cell_options(p)
    p.add_argument("--seed", type=_seed, default=0)

    p = sub.add_parser("suite", help="run every (arch, task, seed) cell of a profile, one process per cell")
    cell_options(p)
    p.add_argument("--archs", nargs="+", help="registry names or patterns (default: every model)")
    p.add_argument("--tasks", nargs="+", default=["mnist"], help="default: mnist")
    p.add_argument("--seeds", nargs="+", type=_seed, help="default: the profile's seeds for each arch")
    p.add_argument("--resume", action="store_true",
                   help="skip cells that already have a valid ok record; run missing, invalid and failed ones")
    p.add_argument("--require-gpu", action="store_true", help="refuse to run unless NVML sees a GPU")

    p = sub.add_parser("report", help="write the HTML report from result records")
    p.add_argument("--results", default="results")
    p.add_argument("--out", default="reports")
    return parser


def cmd_list(args) -> int:
    import architectures
    from cnnbench.measure.params import count_params

    rows = []
    for name in architectures.list_models(args.pattern):
        info = architectures.model_info(name)
        counts = count_params(architectures.create_model(name))
        # "params" counts what the reference counts (total or trainable, per the registry entry).
        rows.append(info.as_dict() | {"params": counts[info.count], "params_total": counts["total"],
                                      "params_trainable": counts["trainable"]})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        print(f"{'name':<16} {'params':>12} {'reference':>12}  {'input':<13} paper")
        for r in rows:
            shape = "x".join(map(str, r["default_input_shape"]))
            print(f"{r['name']:<16} {r['params']:>12,} {r['reference_params']:>12,}  {shape:<13} {r['paper']}")
    return 0


class ResultsDirError(OSError):
    """The results directory cannot be created or written."""


def _check_results_dir(path: str) -> None:
    """Fail before any work when records could not be written (the run would be lost)."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ResultsDirError(f"results directory {p} is not writable: {e.strerror or e}") from None


def cmd_run(args) -> int:
    from cnnbench import records
    from cnnbench.harness import RunConfig, run_cell, validate_cell

    cell = RunConfig(arch=args.arch, task=args.task, profile=args.profile, seed=args.seed, epochs=args.epochs,
                     batch_size=args.batch_size, learning_rate=args.learning_rate, data_dir=args.data_dir)
    validate_cell(cell)
    _check_results_dir(args.results)
    record = run_cell(cell)
    path = records.write(record, args.results)
    tag = f"{args.arch} on {args.task} [{args.profile}, seed {args.seed}]"
    if record["outcome"] != "ok":
        print(f"{tag}: {record['outcome']}: {record['error']['message']} → {path}", file=sys.stderr)
        return 1
    m, t = record["metrics"], record["throughput"]
    print(f"{tag}: test accuracy {m['test_accuracy']:.4f}, {t['train_images_per_s']:.0f} train / "
          f"{t['infer_images_per_s']:.0f} infer images/s (batch {t['batch_size']}) → {path}")
    return 0


def cmd_suite(args) -> int:
    from cnnbench.suite import plan, run_suite

    if args.require_gpu:
        from cnnbench.measure.nvml import require_gpu

        require_gpu()
    from cnnbench.tasks import get_task

    cells = plan(profile=args.profile, tasks=args.tasks, archs=args.archs, seeds=args.seeds, epochs=args.epochs,
                 batch_size=args.batch_size, learning_rate=args.learning_rate, data_dir=args.data_dir)
    _check_results_dir(args.results)
    for task in dict.fromkeys(args.tasks):  # fetch and verify each dataset once, before any cell starts
        get_task(task).verify_data(args.data_dir)
    return run_suite(cells, results_dir=args.results, resume=args.resume)


def cmd_report(args) -> int:
    from cnnbench.report import build_report

    path = build_report(args.results, args.out)
    print(f"report written to {path}")
    return 0


COMMANDS = {"list": cmd_list, "run": cmd_run, "suite": cmd_suite, "report": cmd_report}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    from cnnbench.data import ChecksumError, DataUnavailableError
    from cnnbench.measure.nvml import NoGPUError

    try:
        return COMMANDS[args.command](args)
    except (KeyError, ValueError, ResultsDirError, ChecksumError, DataUnavailableError, NoGPUError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"cnnbench {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
