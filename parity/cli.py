"""`parity` command line: parse, call, render.

Exit 0 parity holds, 1 it fails, 2 bad input (nothing written; user code that ends the check is one too),
3 the report could not be written (a full disk, a permission taken away: the previous report is left as it
was) or the tool could not finish (a grading cluster left with no worker: what was graded is kept),
4 keras-parity itself failed (a bug: the traceback is printed), 124 `check --timeout` ran out, 130
interrupted. Exit 1 always means a verdict: never a crash.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import traceback
import warnings

from parity import cli_commands
from parity.cli_commands import flags_of as _flags
from parity.cli_parser import parser as build_parser
from parity.errors import SETTINGS, CheckTimedOut, ParityInputError, ReportWriteError, ToolError, first_line
from parity.keras_side.native_logs import native_logs_filtered
from parity.report.folder import check_out
from parity.user_code.fence import fenced
from parity.user_code.guard import stopped_by_code

__all__ = ["main", "command", "few_full_collections"]

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_WRITE, EXIT_BUG, EXIT_INTERRUPTED, EXIT_TIMEOUT = 0, 1, 2, 3, 4, 130, 124
# A path given as '' is said as typed.
PATH_FLAGS = (*(s.flag for s in SETTINGS.values() if s.kind == "path"), "--layers", "--reference")


def _run(args: argparse.Namespace, bars) -> int:
    """The command; `bars` is the terminal's stream for progress, or None (not a terminal, or --quiet)."""
    from parity.report.progress import TerminalProgress

    args.progress = TerminalProgress(bars) if bars is not None and not getattr(args, "quiet", False) else None
    cli_commands.TERMINAL.progress = args.progress
    try:
        commands = {"selftest": cli_commands.selftest_command, "bench": cli_commands.bench_command,
                    "grade": cli_commands.grade_command, "sweep": cli_commands.sweep_command,
                    "record": cli_commands.record_command}
        return commands.get(args.command, _run_or_check)(args)
    finally:
        cli_commands.TERMINAL.progress = None  # the stream closes with the command


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
                       progress=None if config.quiet else args.progress)
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
    if samples is None or samples > 1024:  # 1,024: the smallest probe chunk (settings.resources.chunk_rows)
        from parity.settings.resources import chunk_rows
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


def main(argv: list[str] | None = None) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        _no_empty_paths(argv)
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:  # `parity` alone: what it can do, and exit 2 as for any incomplete command
            parser.print_help(sys.stderr)
            print("error: choose a command: run, check, record, selftest, bench, grade or sweep", file=sys.stderr)
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
    except (ReportWriteError, ToolError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_WRITE
    except CheckTimedOut as exc:
        print(f"error: {exc}; no report was written", file=sys.stderr)
        return EXIT_TIMEOUT
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
            expected = "a .py file, a .ipynb notebook or a dotted module name" if flag == "--layers" else "a path"
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
    """The `parity` process (console script, `python -m parity`): its collection policy, then `main`; a `run` or
    `check` from the command line (`argv` None) then ends its process at once (_exit_now).

    `main` alone, as a test or a user's code calls it in process, leaves that process's settings as they were."""
    few_full_collections()
    code = main(argv)
    if argv is None and [w for w in sys.argv[1:] if not w.startswith("-")][:1] in (["run"], ["check"]):
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """End the process without the interpreter's teardown, once the command is done and has closed what it wrote.

    Tearing down what TensorFlow leaves (its modules, millions of objects) takes 1.6-2.0 s after a run on this
    machine, against 0.1 s for this. What was registered to run at exit still runs first (atexit: a temporary
    folder's cleanup among them); no thread of ours is left doing work (the plot worker is closed by then)."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)


if __name__ == "__main__":
    sys.exit(command())
