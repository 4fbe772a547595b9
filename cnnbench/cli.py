"""The ``cnnbench`` command line: list, run, suite, report. Every choice list comes from the registries."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

EXIT_USAGE = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"seed must be in [0, 2**31), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnbench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered models with their parameter counts")
    p.add_argument("pattern", nargs="?", help="shell-style filter, e.g. 'resnet*'")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    def cell_options(p):
        p.add_argument("--task", default="mnist", help="task name (default: mnist)")
        p.add_argument("--profile", default="cpu", help="smoke | cpu | gpu (default: cpu)")
        p.add_argument("--epochs", type=_positive_int, help="override the profile's epochs")
        p.add_argument("--batch-size", type=_positive_int, help="override the profile's batch size")
        p.add_argument("--results", default="results", help="directory for result records (default: results)")
        p.add_argument("--data-dir", help="dataset cache (default: $CNNBENCH_DATA_DIR or the user data dir)")

    p = sub.add_parser("run", help="train, evaluate and measure one architecture; write one result record")
    p.add_argument("arch")
    cell_options(p)
    p.add_argument("--seed", type=_seed, default=0)

    p = sub.add_parser("suite", help="run every (arch, seed) cell of a profile; finished cells are skipped")
    cell_options(p)
    p.add_argument("--archs", nargs="+", help="registry names or patterns (default: every model)")
    p.add_argument("--seeds", nargs="+", type=_seed, help="default: the profile's seeds")
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


def _check_results_dir(path: str) -> None:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    if not os.access(p, os.W_OK):
        raise PermissionError(f"results directory {p} is not writable")


def cmd_run(args) -> int:
    from cnnbench import records
    from cnnbench.harness import RunConfig, run

    _check_results_dir(args.results)
    record = run(RunConfig(arch=args.arch, task=args.task, profile=args.profile, seed=args.seed,
                           epochs=args.epochs, batch_size=args.batch_size, data_dir=args.data_dir))
    path = records.write(record, args.results)
    m, t = record["metrics"], record["throughput"]
    print(f"{args.arch} on {args.task} [{args.profile}, seed {args.seed}]: test accuracy {m['test_accuracy']:.4f}, "
          f"{t['train_images_per_s']:.0f} train / {t['infer_images_per_s']:.0f} infer images/s "
          f"(batch {t['batch_size']}) → {path}")
    return 0


def cmd_suite(args) -> int:
    from cnnbench.suite import run_suite

    if args.require_gpu:
        from cnnbench.measure.nvml import require_gpu

        require_gpu()
    _check_results_dir(args.results)
    return run_suite(profile=args.profile, task=args.task, archs=args.archs, seeds=args.seeds,
                     results_dir=args.results, epochs=args.epochs, batch_size=args.batch_size,
                     data_dir=args.data_dir)


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
    except (KeyError, ValueError, PermissionError, ChecksumError, DataUnavailableError, NoGPUError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"cnnbench {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
