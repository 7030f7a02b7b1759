"""The `parity` commands beyond run and check: grade, sweep, record, bench, selftest. Each translates its flags,
calls one function and renders what it returns; exit statuses as parity.cli's."""

from __future__ import annotations

import argparse
import types
from pathlib import Path

from parity.errors import SETTINGS, ParityInputError
from parity.grading.cluster_options import cluster_options
from parity.report.folder import check_out
from parity.settings.config import resolve
from parity.settings.scenarios import SCENARIOS

__all__ = ["TERMINAL", "flags_of", "grade_command", "sweep_command", "record_command", "bench_command",
           "selftest_command"]

EXIT_PASS, EXIT_FAIL = 0, 1
TERMINAL = types.SimpleNamespace(progress=None)  # the running command's TerminalProgress, or None: no terminal






def _required_out(args: argparse.Namespace, what: str, kind: str) -> Path:
    if args.out is None:
        raise ParityInputError(f"{args.command} needs --out, the {what} folder (received: no --out)")
    check_out(args.out, kind)  # a folder of another kind (a run's report, a sweep) is refused, never replaced
    return args.out


def grade_command(args: argparse.Namespace) -> int:
    from parity.grading.grade import find_submissions, grade
    from parity.grading.grader_files import points_for
    from parity.prepare import prepare, resolve_recorded

    if "" in args.submissions:
        raise ParityInputError("SUBMISSIONS must be .py files, notebooks or folders of them (received: '')")
    submissions = find_submissions(args.submissions)
    if args.no_plots and args.all_plots:
        raise ParityInputError("--no-plots and --all-plots contradict each other; give one of them")
    flags = flags_of(args) | {"out": None}
    config = resolve_recorded(flags, args.config, args.reference)
    out = _required_out(args, "gradebook", "gradebook")
    cluster = cluster_options(args)
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
    """grade's and sweep's progress: a bar of submissions (or runs) on this command's terminal; nothing elsewhere."""
    progress = TERMINAL.progress
    return items if progress is None else progress(items, label, total, "submission" if label == "grading" else "run")


def sweep_command(args: argparse.Namespace) -> int:
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
    flags = {k: v for k, v in flags_of(args).items() if k not in ("scenario", "dtype", "seed", "out", "plots")}
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


def record_command(args: argparse.Namespace) -> int:
    """`record --out FILE`: write the Keras side of the run options' configuration; `record --verify FILE`: recompute it."""
    from parity import record

    record.check_options(args)
    if args.verify is not None:
        outcome = record.verify(str(args.verify))
        if not args.quiet:
            print(outcome.text(args.verify))
        return EXIT_PASS if outcome.holds else EXIT_FAIL
    meta = record.record(resolve(flags_of(args) | {"out": None}, args.config), args.out)
    if not args.quiet:
        print(record.written(meta, args.out))
    return EXIT_PASS


def bench_command(args: argparse.Namespace) -> int:
    if args.samples < 1000 or not 200 <= args.steps <= args.samples:
        raise ParityInputError(f"bench needs --samples >= 1000 and 200 <= --steps <= --samples "
                         f"(received: --samples {args.samples}, --steps {args.steps})")
    from parity.selfcheck.bench import ALONE, run_bench, table

    if args.only is not None and args.only not in ALONE:
        raise ParityInputError(f"--only must be one of {', '.join(ALONE)} (received: --only {args.only})")
    check_out(args.out, "bench")  # bench adds bench.json to a new, empty or bench folder; it replaces nothing else
    record = run_bench(args.out, args.samples, args.steps, args.memory_check, args.only)
    print(table(record))
    print(f"written: {args.out / 'bench.json'}")
    return EXIT_PASS if all(row["met"] is not False for row in record["floors"].values()) else EXIT_FAIL


def selftest_command(args: argparse.Namespace) -> int:
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


def flags_of(args: argparse.Namespace) -> dict:
    """The run options as RunConfig fields (None: not given)."""
    if args.format not in ("csv", "parquet"):
        raise ParityInputError(f"--format must be csv or parquet (received: {args.format})")
    flags = {}
    for name, setting in SETTINGS.items():
        if name == "config_path":
            continue  # the command reads the file itself, under the flags
        value = getattr(args, setting.dest)
        if setting.kind in ("switch", "off"):  # a flag given says True (off: False); not given, the file or default
            value = (setting.kind == "switch") if value else None
        flags[name] = value
    return flags


