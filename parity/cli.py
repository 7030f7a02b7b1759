"""`parity` command line: parse, call, render.

Exit 0 parity holds, 1 it fails, 2 bad input (nothing written), 3 the report could not be written (a full
disk, a permission taken away: the previous report is left as it was), 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parity.config import DTYPES, WORST_GRADIENTS, RunConfig, resolve
from parity.errors import ParityInputError, ReportWriteError
from parity.native_logs import native_logs_filtered
from parity.optimizer_settings import OPTIMIZER_NAMES
from parity.outputs import check_out, check_writable
from parity.scenarios import SCENARIOS

__all__ = ["main"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_WRITE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one `error:` line and exit status 2, without the usage dump."""

    def error(self, message: str):
        flag, _, rest = message.partition(": ")
        # "argument --seed: --seed must be ..." -> "--seed must be ..."
        raise ParityInputError(rest if flag.startswith("argument ") and rest.startswith(flag[9:].split("/")[0]) else message)


def _typed(kind, flag: str, expected: str):
    def convert(text: str):
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be {expected} (received: {text})") from None
    convert.__name__ = expected  # argparse names the type in its own messages
    return convert


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="parity", allow_abbrev=False,
                     description="Prove, sample by sample, that NumPy layers compute what Keras computes.")
    parser.add_argument("--version", action="version", version=f"keras-parity {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = commands.add_parser("run", allow_abbrev=False, help="train the Keras model, copy its weights into the NumPy stack, compare both")
    _run_options(run)
    check = commands.add_parser("check", allow_abbrev=False, help="the same comparison with your own layers, and the cause of each mismatch")
    check.add_argument("--layers", required=True, help="your layers: a .py file or a dotted module name "
                       "(classes Affine, Relu/ReLU, Sigmoid, SoftmaxWithLoss, MeanSquaredError; others from the "
                       "reference), and your optimizer: the class of --optimizer's name (SGD, Momentum, Nesterov, "
                       "AdaGrad, RMSprop, Adam), else the book's")
    _run_options(check)
    selftest = commands.add_parser("selftest", allow_abbrev=False, help="plant known bugs in the reference layers; each must be caught")
    selftest.add_argument("--quiet", action="store_true", help="print nothing; the exit status is the verdict")
    bench = commands.add_parser("bench", allow_abbrev=False, help="measure the speed floors side by side; writes OUT/bench.json")
    bench.add_argument("--out", type=Path, default=Path("reports/bench"), help="folder for bench.json")
    bench.add_argument("--samples", type=_typed(int, "--samples", "an integer"), default=2_000_000,
                       help="probe samples to time (default: 2,000,000)")
    bench.add_argument("--steps", type=_typed(int, "--steps", "an integer"), default=20_000,
                       help="SGD steps to time (default: 20,000)")
    bench.add_argument("--memory-check", action="store_true",
                       help="also run 10 million samples and record the peak memory (about a minute)")
    return parser


def _run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--scenario", help="built-in scenario (default: seed): " + "; ".join(
        f"{name}: {s.description}" for name, s in SCENARIOS.items()))
    run.add_argument("--config", type=Path, help="TOML file with the run's settings; flags override it")
    run.add_argument("--model", type=Path, help="a saved Keras model (.keras, a chain of Dense layers), loaded "
                     "with safe mode on; compared at its own weights unless --epochs is given")
    run.add_argument("--data", type=Path, help="CSV file: x* columns are inputs, y* targets (or as configured)")
    run.add_argument("--dtype", help=f"{' or '.join(DTYPES)}, both sides (default: float32)")
    run.add_argument("--seed", type=_typed(int, "--seed", "an integer"),
                     help=f"seeds Keras's initial weights and fit shuffling (default: {RunConfig.seed})")
    run.add_argument("--data-seed", type=_typed(int, "--data-seed", "an integer"),
                     help=f"seeds the synthetic data (default: {RunConfig.data_seed}, the notebook's data)")
    run.add_argument("--samples", type=_typed(int, "--samples", "an integer"), help="data size (default: 200)")
    run.add_argument("--train", type=_typed(int, "--train", "an integer"),
                     help="leading samples used for fitting and stepping (default: 80%% of the samples)")
    run.add_argument("--epochs", type=_typed(int, "--epochs", "an integer"),
                     help="Keras fit epochs; 0 compares at the initial weights (default: 20)")
    run.add_argument("--lr", type=_typed(float, "--lr", "a number"),
                     help="learning rate, for the fit and for stepping (default: the scenario's for sgd, 0.01; "
                          "the book's default for the other optimizers)")
    run.add_argument("--optimizer", help="the optimizer both sides fit and step with, with the book's defaults: "
                     f"{', '.join(OPTIMIZER_NAMES)} (default: sgd); other hyperparameters in the TOML file's "
                     "[train] optimizer table")
    run.add_argument("--batch-size", type=_typed(int, "--batch-size", "an integer"),
                     help="fit batch size, and the batch probe's (default: 10)")
    run.add_argument("--out", type=Path, help="report folder (default: reports/<scenario>/)")
    run.add_argument("--format", default="csv", help="table format: csv or parquet (default: csv)")
    run.add_argument("--no-plots", action="store_true", help="write tables and summary only")
    run.add_argument("--all-gradients", action="store_true", help="write every gradient entry to the gradients "
                     f"table (default: the rows that do not pass, and the {WORST_GRADIENTS} largest differences of "
                     "each gradient per phase)")
    run.add_argument("--quiet", action="store_true", help="print nothing; the exit status is the verdict")
    run.add_argument("--verbose", action="store_true", help="print every finding in full")


def _run(args: argparse.Namespace) -> int:
    if args.command == "selftest":
        return _selftest(args)
    if args.command == "bench":
        return _bench(args)
    from parity.pipeline import UserLayers, check

    user = None
    if args.command == "check":
        from parity.user_layers import load_module

        kit, names, classes = load_module(args.layers)  # the user's code, imported before any other work
        user = UserLayers(kit, args.layers, tuple(names), classes)
    flags = {"scenario": args.scenario, "dtype": args.dtype, "seed": args.seed, "data_seed": args.data_seed,
             "samples": args.samples, "all_gradients": True if args.all_gradients else None,
             "train": args.train, "epochs": args.epochs, "lr": args.lr, "optimizer": args.optimizer,
             "batch_size": args.batch_size,
             "out": args.out, "data_path": args.data, "model_path": args.model,
             "plots": False if args.no_plots else None, "quiet": True if args.quiet else None}
    if args.format not in ("csv", "parquet"):
        raise ParityInputError(f"--format must be csv or parquet (received: {args.format})")
    config = resolve(flags, args.config)
    if config.out is not None:
        check_out(config.out)  # before the data and the model are read: a bad folder is refused at once
    report = check(user, config, write=True, fmt=args.format, progress=None if config.quiet else _progress)
    if not config.quiet:
        from parity.report import terminal_summary

        print(terminal_summary(report.result, report.folder, report.files, verbose=args.verbose))
    return EXIT_PASS if report.passed else EXIT_FAIL


def _progress(items, label: str, total: int):
    """A progress bar on a terminal for runs of more than one chunk; nothing otherwise."""
    if total < 2 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, total=total, unit="chunk", leave=False)


def _bench(args: argparse.Namespace) -> int:
    if args.samples < 1000 or not 200 <= args.steps <= args.samples:
        raise ParityInputError(f"bench needs --samples >= 1000 and 200 <= --steps <= --samples "
                         f"(received: --samples {args.samples}, --steps {args.steps})")
    check_writable(args.out)  # bench adds bench.json to the folder; it replaces nothing else
    from parity.bench import run_bench, table

    record = run_bench(args.out, args.samples, args.steps, args.memory_check)
    print(table(record))
    print(f"written: {args.out / 'bench.json'}")
    return EXIT_PASS if all(row["met"] is not False for row in record["floors"].values()) else EXIT_FAIL


def _selftest(args: argparse.Namespace) -> int:
    from parity.selftest import run_selftest

    rows = run_selftest()
    if not args.quiet:
        width = max(len(r["case"]) for r in rows)
        for r in rows:
            mark = "caught" if r["caught"] else "MISSED"
            found = ", ".join(r["errors"]) or "no errors"
            if r["warnings"]:
                found += f" (warnings: {', '.join(r['warnings'])})"
            print(f"{mark:7} {r['case']:{width}}  expected {r['expected']:17} got {r['verdict']}: {found}")
        missed = sum(not r["caught"] for r in rows)
        print(f"selftest: {len(rows) - missed} of {len(rows)} planted cases caught with the right code")
    return EXIT_PASS if all(r["caught"] for r in rows) else EXIT_FAIL


def _version() -> str:
    from parity import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command is None:  # `parity` alone: what it can do, and exit 2 as for any incomplete command
            parser.print_help(sys.stderr)
            print("error: choose a command: run, check, selftest or bench", file=sys.stderr)
            return EXIT_USAGE
        with native_logs_filtered():
            return _run(args)
    except ParityInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ReportWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WRITE
    except KeyboardInterrupt:
        print("error: interrupted; no report was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
