"""`parity` command line: parse, call, render.

Exit 0 parity holds, 1 it fails, 2 bad input (nothing written), 3 the report could not be written (a full
disk, a permission taken away: the previous report is left as it was) or the tool could not finish (a
grading cluster left with no worker: what was graded is kept), 124 `check --timeout` ran out, 130
interrupted.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from parity.cli_parser import parser as build_parser
from parity.settings.config import resolve
from parity.errors import CheckTimedOut, ParityInputError, ReportWriteError, ToolError
from parity.keras_side.native_logs import native_logs_filtered
from parity.report.folder import check_out, check_writable
from parity.settings.scenarios import SCENARIOS

__all__ = ["main", "command", "few_full_collections"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_WRITE, EXIT_INTERRUPTED, EXIT_TIMEOUT = 0, 1, 2, 3, 130, 124


def _flags(args: argparse.Namespace) -> dict:
    """The run options as RunConfig fields (None: not given)."""
    if args.format not in ("csv", "parquet"):
        raise ParityInputError(f"--format must be csv or parquet (received: {args.format})")
    return {"scenario": args.scenario, "dtype": args.dtype, "seed": args.seed, "data_seed": args.data_seed,
            "samples": args.samples, "all_gradients": True if args.all_gradients else None,
            "train": args.train, "epochs": args.epochs, "lr": args.lr, "optimizer": args.optimizer,
            "batch_size": args.batch_size, "out": args.out, "data_path": args.data, "model_path": args.model,
            "classes": args.classes,
            "plots": False if args.no_plots else None, "quiet": True if args.quiet else None}


def _run(args: argparse.Namespace) -> int:
    if args.command == "selftest":
        return _selftest(args)
    if args.command == "bench":
        return _bench(args)
    if args.command == "grade":
        return _grade(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "record":
        return _record(args)
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
    from parity.grading.check_guard import CheckGuard
    from parity.pipeline import ReportFolder, check
    from parity.prepare import resolve_recorded
    from parity.user_code.loader import load

    with CheckGuard.of(args) as guard:  # grader results files whatever happens, and --timeout
        flags = _flags(args)
        config = guard.config = resolve_recorded(flags, args.config, args.reference)
        if args.command == "run" and args.classes:
            raise ParityInputError(f"--class maps classes of your module: it applies to parity check and parity grade "
                                   f"(parity run checks the reference layers) (received: --class {args.classes[0]})")
        # The user's code is imported before any other work, with the classes the settings map.
        run_all = getattr(args, "run_all", False) and (args.timeout or True)
        user = load(args.layers, named=dict(config.classes), run_all=run_all) if args.command == "check" else None
        if config.out is not None:
            check_out(config.out)  # before the data and the model are read: a bad folder is refused at once
        if args.sample is not None:
            _check_sample(args.sample, config)  # a sample the run will not have is bad input, refused before any work
        report = check(user, config, folder=ReportFolder(args.format, worker),
                       progress=None if config.quiet else _progress)
        guard.checked(report)
    if not config.quiet:
        from parity.report.writer import terminal_summary

        if args.sample is not None:
            print(f"{report.sample(args.sample)}\n")
        print(_linked(terminal_summary(report.result, report.folder, report.files, verbose=args.verbose), report))
    if args.open and report.folder is not None:
        import webbrowser

        webbrowser.open((report.folder.absolute() / "report.html").as_uri())
    return EXIT_PASS if report.passed else EXIT_FAIL


def _check_sample(sample: int, config) -> None:
    """--sample names a sample of this run, whose probe is kept whole (runs above the smallest chunk are prepared
    first to know their size and chunk)."""
    from parity.report.sample_view import check_sample

    samples, whole = config.samples, True
    if samples is None or samples > 1024:  # 1,024: the smallest chunk the probe ever uses (parity.compare.run)
        from parity.compare.run import chunk_rows
        from parity.prepare import prepare

        prepared = prepare(config)
        samples, whole = prepared.config.samples, prepared.config.samples <= chunk_rows(prepared.spec)
    check_sample(sample, samples, whole)


def _linked(text: str, report) -> str:
    """The last line's report.html as an OSC 8 hyperlink where stdout is a terminal: a click opens it."""
    html = (report.folder.absolute() / "report.html") if report.folder is not None else None
    if html is None or not sys.stdout.isatty():
        return text
    head, _, last = text.rpartition("\n")
    link = f"\x1b]8;;{html.as_uri()}\x1b\\{html}\x1b]8;;\x1b\\"
    return (head + "\n" if head else "") + last.replace(str(html), link, 1)


def _progress(items, label: str, total: int, unit: str = "chunk"):
    """A progress bar on a terminal for more than one chunk (or submission, or run); nothing otherwise."""
    if total < 2 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, total=total, unit=unit, leave=False)


def _cluster(args: argparse.Namespace) -> dict:
    """--timeout, --workers, --memory-limit, --scheduler, validated: grade's and sweep's keywords."""
    import math

    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ParityInputError(f"--timeout must be a positive number of seconds (received: {args.timeout:g})")
    if args.scheduler is not None:
        for flag, given in (("--workers", args.workers), ("--memory-limit", args.memory_limit)):
            if given is not None:
                raise ParityInputError(f"{flag} applies to the local cluster; a cluster at --scheduler has its own "
                                       f"workers (set them with `dask worker --nworkers N --memory-limit SIZE`) "
                                       f"(received: {flag} {given} with --scheduler {args.scheduler})")
        return {"timeout": args.timeout, "scheduler": args.scheduler}
    if args.workers is not None and args.workers < 1:
        raise ParityInputError(f"--workers must be at least 1 (received: {args.workers})")
    return {"timeout": args.timeout, "workers": args.workers, "memory_limit": _memory_limit(args.memory_limit)}


def _memory_limit(text: str | None):
    if text is None or text == "auto":
        return "auto"
    from dask.utils import parse_bytes

    expected = f"auto or a size of at least 512MiB, such as 2GB or 1.5GiB (received: {text})"
    try:
        size = parse_bytes(text)
    except (ValueError, TypeError):
        raise ParityInputError(f"--memory-limit must be {expected}") from None
    if size < 512 * 2**20:  # a worker holding TensorFlow needs about 0.8 GB before any submission
        raise ParityInputError(f"--memory-limit must be {expected}")
    return size


def _required_out(args: argparse.Namespace, what: str) -> Path:
    if args.out is None:
        raise ParityInputError(f"{args.command} needs --out, the {what} folder (received: no --out)")
    check_out(args.out)
    return args.out


def _grade(args: argparse.Namespace) -> int:
    from parity.grading.grade import find_submissions, grade
    from parity.grading.grader_files import points_for
    from parity.prepare import prepare, resolve_recorded

    submissions = find_submissions(args.submissions)
    if args.no_plots and args.all_plots:
        raise ParityInputError("--no-plots and --all-plots contradict each other; give one of them")
    flags = _flags(args) | {"out": None}
    config = resolve_recorded(flags, args.config, args.reference)
    out = _required_out(args, "gradebook")
    cluster = _cluster(args)
    prepare(config)  # the data file and the saved model, read before any worker starts
    graders = tuple(name for name in ("gradescope", "prairielearn") if getattr(args, name))
    points = points_for(args.config) if graders else None
    book = grade(submissions, config, out, plots="none" if args.no_plots else "all" if args.all_plots else "failing",
                 fmt=args.format, progress=None if args.quiet else _submissions_bar, graders=graders, points=points,
                 run_all=args.run_all, **cluster)
    if not args.quiet:
        counts = ", ".join(f"{n} {status}" for status, n in book.counts.items() if n)
        print(f"gradebook: {len(book.rows)} submissions: {counts}")
        print(f"written: {out / 'gradebook.csv'}, {out / 'gradebook.html'} and one report folder per checked submission"
              + "".join(f"; {out / name}/ (one results.json per submission)" for name in graders))
    return EXIT_PASS


def _submissions_bar(items, label: str, total: int):
    return _progress(items, label, total, unit="submission" if label == "grading" else "run")


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
    out = _required_out(args, "sweep")
    cluster = _cluster(args)
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


def _record(args: argparse.Namespace) -> int:
    """`record --out FILE`: write the Keras side of the run options' configuration; `record --verify FILE`: recompute it."""
    from parity import record

    record.check_options(args)
    if args.verify is not None:
        outcome = record.verify(str(args.verify))
        if not args.quiet:
            print(outcome.text(args.verify))
        return EXIT_PASS if outcome.holds else EXIT_FAIL
    meta = record.record(resolve(_flags(args) | {"out": None}, args.config), args.out)
    if not args.quiet:
        print(record.written(meta, args.out))
    return EXIT_PASS


def _bench(args: argparse.Namespace) -> int:
    if args.samples < 1000 or not 200 <= args.steps <= args.samples:
        raise ParityInputError(f"bench needs --samples >= 1000 and 200 <= --steps <= --samples "
                         f"(received: --samples {args.samples}, --steps {args.steps})")
    check_writable(args.out)  # bench adds bench.json to the folder; it replaces nothing else
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
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # `parity` alone: what it can do, and exit 2 as for any incomplete command
            parser.print_help(sys.stderr)
            print("error: choose a command: run, check, record, selftest, bench, grade or sweep", file=sys.stderr)
            return EXIT_USAGE
        with native_logs_filtered():
            return _run(args)
    except ParityInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ReportWriteError, ToolError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WRITE
    except CheckTimedOut as exc:
        print(f"error: {exc}; no report was written", file=sys.stderr)
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        print("error: interrupted; no report was written", file=sys.stderr)
        return EXIT_INTERRUPTED


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
