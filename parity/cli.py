"""`parity` command line: parse, call, render. Exit 0 parity holds, 1 it fails, 2 bad input, 130 interrupted."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from parity.config import DTYPES, resolve
from parity.errors import ParityInputError
from parity.scenarios import SCENARIOS

__all__ = ["main"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    parser = _Parser(prog="parity", description="Prove, sample by sample, that NumPy layers compute what Keras computes.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="train the Keras model, copy its weights into the NumPy stack, compare both")
    _run_options(run)
    check = commands.add_parser("check", help="the same comparison with your own layers, and the cause of each mismatch")
    check.add_argument("--layers", required=True, help="your layers: a .py file or a dotted module name "
                       "(classes Affine, Relu/ReLU, Sigmoid, SoftmaxWithLoss, MeanSquaredError; others from the reference)")
    _run_options(check)
    selftest = commands.add_parser("selftest", help="plant known bugs in the reference layers; each must be caught")
    selftest.add_argument("--quiet", action="store_true", help="print nothing; the exit status is the verdict")
    bench = commands.add_parser("bench", help="measure the speed floors side by side; writes OUT/bench.json")
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
    run.add_argument("--seed", type=_typed(int, "--seed", "an integer"), help="seeds data, init and fit (default: 1337)")
    run.add_argument("--samples", type=_typed(int, "--samples", "an integer"), help="data size (default: 200)")
    run.add_argument("--train", type=_typed(int, "--train", "an integer"),
                     help="leading samples used for fitting and stepping (default: 80%% of the samples)")
    run.add_argument("--epochs", type=_typed(int, "--epochs", "an integer"),
                     help="Keras fit epochs; 0 compares at the initial weights (default: 20)")
    run.add_argument("--lr", type=_typed(float, "--lr", "a number"), help="SGD learning rate (default: 0.01)")
    run.add_argument("--batch-size", type=_typed(int, "--batch-size", "an integer"),
                     help="fit batch size, and the batch probe's (default: 10)")
    run.add_argument("--out", type=Path, help="report folder (default: reports/<scenario>/)")
    run.add_argument("--format", default="csv", help="table format: csv or parquet (parquet needs pyarrow: "
                     "pip install 'keras-parity[parquet]')")
    run.add_argument("--no-plots", action="store_true", help="write tables and summary only")
    run.add_argument("--quiet", action="store_true", help="print nothing; the exit status is the verdict")


def _check_out(out: Path) -> None:
    """The report folder must be creatable and writable, and replacing it must destroy nothing but an
    earlier report: a run replaces its folder whole."""
    target = out.resolve()
    if target.exists() and not target.is_dir():
        raise ParityInputError(f"--out must be a folder, and {out} is a file; choose another path")
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise ParityInputError(f"--out must be a folder of its own, not the current folder or one above it (received: {out})")
    if target.is_dir() and any(target.iterdir()) and not (target / "summary.json").is_file():
        raise ParityInputError(f"--out {out} holds files that are not a keras-parity report, and a run replaces its "
                         "folder whole; choose a new or empty folder")
    _check_writable(out)


def _check_writable(out: Path) -> None:
    """The folder, or the nearest existing folder above it, is a writable folder."""
    probe = out.resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ParityInputError(f"--out must be a folder path, and {probe} is a file (received: {out})")
    if not os.access(probe, os.W_OK):
        raise ParityInputError(f"--out must be writable, and {probe} is not (received: {out})")


def _run(args: argparse.Namespace) -> int:
    if args.command == "selftest":
        return _selftest(args)
    if args.command == "bench":
        return _bench(args)
    user = None
    if args.command == "check":
        from parity.user_layers import load_layers

        user = load_layers(args.layers)  # the user's code, imported before any other work
    flags = {"scenario": args.scenario, "dtype": args.dtype, "seed": args.seed, "samples": args.samples,
             "train": args.train, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
             "out": args.out, "data_path": args.data, "model_path": args.model,
             "plots": False if args.no_plots else None, "quiet": True if args.quiet else None}
    if args.format not in ("csv", "parquet"):
        raise ParityInputError(f"--format must be csv or parquet (received: {args.format})")
    if args.format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ParityInputError("--format parquet needs pyarrow: pip install 'keras-parity[parquet]'") from None
    config = resolve(flags, args.config)
    if config.out is not None:
        _check_out(config.out)

    from parity.inputs import prepare

    prepared = prepare(config)  # reads the data file and the saved model: still the boundary
    config = prepared.config
    _check_out(config.out)

    from parity.report import ReportWriter, atomic_folder, terminal_summary
    from parity.runner import compare_numpy, keras_reference

    reference = keras_reference(prepared)
    kit, found, whose = None, [], None
    if user is not None:
        from parity import layers as reference_layers
        from parity.layer_probes import probe_layers
        from parity.user_layers import LAYER_NAMES

        kit, names = user
        found = probe_layers({**{n: getattr(reference_layers, n) for n in LAYER_NAMES}, **kit}, names, prepared.spec.loss)
        whose = {n: f"yours ({kit[n].__name__} from {args.layers})" if n in kit else "reference" for n in LAYER_NAMES}
    with atomic_folder(config.out) as folder:
        writer = ReportWriter(folder, prepared.data, config, prepared.spec, args.format, config.plots)
        result = compare_numpy(prepared, reference, kit, found, whose, on_chunk=writer.add_probe_chunk,
                               progress=None if config.quiet else _progress)
        files = writer.finish(result)
    if not config.quiet:
        print(terminal_summary(result, config.out, files))
    return EXIT_PASS if result.verdict == "pass" else EXIT_FAIL


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
    _check_writable(args.out)  # bench adds bench.json to the folder; it replaces nothing else
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


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        return _run(args)
    except ParityInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted; no report was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
