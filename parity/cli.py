"""`parity` command line: parse, call, render.

Exit 0 parity holds, 1 it fails, 2 bad input (nothing written; user code that ends the check is one too),
3 the report could not be written (a full disk, a permission taken away: the previous report is left as it
was), 4 keras-parity itself failed (a bug: the traceback is printed), 130 interrupted. Exit 1 always means
a verdict: never a crash.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import traceback
import types
import warnings
from pathlib import Path

from parity.cli_parser import parser as build_parser
from parity.grading.cluster_options import cluster_options
from parity.settings.config import resolve
from parity.errors import ParityInputError, ReportWriteError, first_line
from parity.keras_side.native_logs import native_logs_filtered
from parity.report.folder import check_out
from parity.settings.scenarios import SCENARIOS
from parity.user_code.fence import fenced
from parity.user_code.guard import stopped_by_code

__all__ = ["main", "command", "few_full_collections"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_WRITE, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
_terminal = types.SimpleNamespace(progress=None)  # the running command's TerminalProgress, or None: no terminal
PATH_FLAGS = ("--out", "--config", "--model", "--data", "--layers")  # a path given as '' is said as typed


def _flags(args: argparse.Namespace) -> dict:
    """The run options as RunConfig fields (None: not given)."""
    if args.format not in ("csv", "parquet"):
        raise ParityInputError(f"--format must be csv or parquet (received: {args.format})")
    return {"scenario": args.scenario, "dtype": args.dtype, "seed": args.seed, "data_seed": args.data_seed,
            "samples": args.samples, "all_gradients": True if args.all_gradients else None,
            "train": args.train, "epochs": args.epochs, "lr": args.lr, "optimizer": args.optimizer,
            "batch_size": args.batch_size, "out": args.out, "data_path": args.data, "model_path": args.model,
            "plots": False if args.no_plots else None, "quiet": True if args.quiet else None}


def _run(args: argparse.Namespace, bars) -> int:
    """The command; `bars` is the terminal's stream for progress, or None (not a terminal, or --quiet)."""
    from parity.report.progress import TerminalProgress

    args.progress = TerminalProgress(bars) if bars is not None and not getattr(args, "quiet", False) else None
    _terminal.progress = args.progress
    try:
        commands = {"selftest": _selftest, "bench": _bench, "grade": _grade, "sweep": _sweep}
        return commands.get(args.command, _run_or_check)(args)
    finally:
        _terminal.progress = None  # the stream closes with the command


def _run_or_check(args: argparse.Namespace) -> int:
    from parity.report.plot_worker import PlotWorker

    # Started first, so that its imports overlap TensorFlow's: it draws its share of the pictures at the end.
    worker = None if args.no_plots else PlotWorker.start()
    try:
        return _check(args, worker)
    finally:
        if worker is not None:
            worker.close()


def _check(args: argparse.Namespace, worker) -> int:
    """`run` and `check`: one pipeline call, then the terminal summary."""
    from parity.pipeline import ReportFolder, check
    from parity.user_code.loader import load

    # The user's code is imported before any other work.
    user = load(args.layers) if args.command == "check" else None
    flags = _flags(args)
    config = resolve(flags, args.config)
    if config.out is not None:
        check_out(config.out)  # before the data and the model are read: a bad folder is refused at once
    report = check(user, config, folder=ReportFolder(args.format, worker),
                   progress=None if config.quiet else args.progress)
    if not config.quiet:
        from parity.report.writer import terminal_summary

        print(terminal_summary(report.result, report.folder, report.files, verbose=args.verbose))
    return EXIT_PASS if report.passed else EXIT_FAIL


def _required_out(args: argparse.Namespace, what: str, kind: str) -> Path:
    if args.out is None:
        raise ParityInputError(f"{args.command} needs --out, the {what} folder (received: no --out)")
    check_out(args.out, kind)
    return args.out


def _grade(args: argparse.Namespace) -> int:
    from parity.grading.grade import find_submissions, grade
    from parity.prepare import prepare

    if "" in args.submissions:
        raise ParityInputError("SUBMISSIONS must be .py files or folders of them (received: '')")
    submissions = find_submissions(args.submissions)
    if args.no_plots and args.all_plots:
        raise ParityInputError("--no-plots and --all-plots contradict each other; give one of them")
    flags = _flags(args) | {"out": None}
    config = resolve(flags, args.config)
    out = _required_out(args, "gradebook", "gradebook")
    cluster = cluster_options(args)
    prepare(config)  # the data file and the saved model, read before any worker starts
    book = grade(submissions, config, out, plots="none" if args.no_plots else "all" if args.all_plots else "failing",
                 fmt=args.format, progress=None if args.quiet else _submissions_bar, **cluster)
    if not args.quiet:
        counts = ", ".join(f"{n} {status}" for status, n in book.counts.items() if n)
        print(f"gradebook: {len(book.rows)} submissions: {counts}")
        print(f"written: {out / 'gradebook.csv'}, {out / 'gradebook.html'} and one report folder per checked submission")
    return EXIT_PASS


def _submissions_bar(items, label: str, total: int):
    """grade's and sweep's progress: a bar of submissions (or runs) on this command's terminal; nothing elsewhere."""
    progress = _terminal.progress
    return items if progress is None else progress(items, label, total, "submission" if label == "grading" else "run")


def _sweep(args: argparse.Namespace) -> int:
    from parity.settings.config import DTYPES
    from parity.prepare import prepare
    from parity.grading.sweep import parse_choices, parse_seeds, sweep, sweep_configs

    if args.seed is not None:
        raise ParityInputError(f"sweep takes --seeds, a list or range such as 0-999 (received: --seed {args.seed})")
    if args.no_plots or args.format != "csv":
        raise ParityInputError("sweep writes no report folders, so --no-plots and --format do not apply "
                               f"(received: {'--no-plots' if args.no_plots else '--format ' + args.format})")
    seeds = parse_seeds(args.seeds)
    scenarios = parse_choices(args.scenario, "--scenario", tuple(SCENARIOS), "seed") if args.scenario else [None]
    dtypes = parse_choices(args.dtype, "--dtype", DTYPES, "float32") if args.dtype else [None]
    flags = {k: v for k, v in _flags(args).items() if k not in ("scenario", "dtype", "seed", "out", "plots")}
    configs = sweep_configs(flags, args.config, seeds, scenarios, dtypes)
    out = _required_out(args, "sweep", "sweep")
    cluster = cluster_options(args)
    for config in {(c.scenario, c.dtype): c for c in configs}.values():
        prepare(config)  # each scenario's data file and saved model, read before any worker starts
    result = sweep(configs, out, progress=None if args.quiet else _submissions_bar, **cluster)
    if not args.quiet:
        r = result.record
        print(f"sweep: {r['runs']} runs ({r['seeds']['count']} seeds x {', '.join(map(str, r['scenarios']))} x "
              f"{', '.join(map(str, r['dtypes']))}) in {result.wall_seconds:.0f} s: "
              + ", ".join(f"{n} {s}" for s, n in r["counts"].items() if n))
        print(f"false-alarm rate: {r['false_alarm_rate']:.4g} ({result.false_alarms} of {r['runs']} runs failed)")
        for dtype, worst in r["largest_share"].items():
            print(f"{dtype}: the largest share of its tolerance any run used: {worst['share']:.3g} "
                  f"({worst['quantity']}, scenario {worst['scenario']}, seed {worst['seed']})")
        print(f"written: {out / 'sweep.csv'}, {out / 'sweep.json'}")
    return EXIT_PASS if result.clean else EXIT_FAIL


def _bench(args: argparse.Namespace) -> int:
    if args.samples < 1000 or not 200 <= args.steps <= args.samples:
        raise ParityInputError(f"bench needs --samples >= 1000 and 200 <= --steps <= --samples "
                         f"(received: --samples {args.samples}, --steps {args.steps})")
    check_out(args.out, "bench")  # bench adds bench.json to a new, empty or bench folder; it replaces nothing else
    from parity.selfcheck.bench import run_bench, table

    record = run_bench(args.out, args.samples, args.steps, args.memory_check)
    print(table(record))
    print(f"written: {args.out / 'bench.json'}")
    return EXIT_PASS if all(row["met"] is not False for row in record["floors"].values()) else EXIT_FAIL


def _selftest(args: argparse.Namespace) -> int:
    from parity.selfcheck.selftest import run_selftest

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
        argv = sys.argv[1:] if argv is None else list(argv)
        _no_empty_paths(argv)
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # `parity` alone: what it can do, and exit 2 as for any incomplete command
            parser.print_help(sys.stderr)
            print("error: choose a command: run, check, selftest, bench, grade or sweep", file=sys.stderr)
            return EXIT_USAGE
        interactive = _is_terminal(sys.stderr)  # asked now: inside the filter below, fd 2 is a pipe
        with native_logs_filtered() as terminal, _own_warnings_hidden(), fenced():
            try:
                return _run(args, terminal if interactive else None)
            except BaseException as exc:  # user code that ended the check outside any call the guard watches
                stopped = stopped_by_code(exc)
                if stopped is None:
                    raise
                raise stopped from None
    except ParityInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ReportWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WRITE
    except KeyboardInterrupt:
        print("error: interrupted; no report was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError as exc:
        print(f"error: out of memory ({first_line(exc, 200, 'MemoryError')}); no report was written; use fewer "
              "--samples or a smaller --train", file=sys.stderr)
        return EXIT_USAGE
    except Exception:  # our own bug: never exit 1, which means "your layers disagree with Keras"
        traceback.print_exc()
        print("error: keras-parity failed (a bug in keras-parity, not in your layers: the traceback above says "
              "where; please report it); no report was written", file=sys.stderr)
        return EXIT_BUG


def _no_empty_paths(argv: list[str]) -> None:
    """A path given as '' is refused as typed (argparse would make it Path('.'), the current folder)."""
    for i, word in enumerate(argv):
        flag, equals, value = word.partition("=")
        if flag in PATH_FLAGS and ((equals and value == "") or (not equals and i + 1 < len(argv) and argv[i + 1] == "")):
            expected = "a .py file or a dotted module name" if flag == "--layers" else "a path"
            raise ParityInputError(f"{flag} must be {expected} (received: '')")


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def _own_warnings_hidden():
    """Our own numeric warnings (an overflow in a cast, say) never reach the terminal; what a user's code warns does."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"parity(\.|$)")
        yield


def few_full_collections() -> None:
    """Collect the oldest generation after 100 collections of the middle one instead of 10, for a process that
    runs one command. TensorFlow leaves millions of long-lived objects, and a full collection walks them all:
    six while it imports and one during a default run, 0.55 s in all here. Garbage cycles still go when the
    young generations are collected, as before; this only makes the full walks rare."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 100)


def command(argv: list[str] | None = None) -> int:
    """The `parity` process (console script, `python -m parity`): its collection policy, then `main`.

    `main` alone, as a test or a user's code calls it in process, leaves that process's settings as they were."""
    few_full_collections()
    return main(argv)


if __name__ == "__main__":
    sys.exit(command())
