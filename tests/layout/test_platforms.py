"""Portability: what Windows lacks, the package does not need to import, parse its commands or keep time.

Windows has no SIGALRM, setitimer, SIGKILL or `resource` module. Each test runs a fresh interpreter that
removes them before it imports anything of ours (the names deleted from `signal`, `resource` made
unimportable from our modules), as a stand-in for a Windows machine that CI does not have.
"""

import subprocess
import sys
import textwrap
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest
from testkit import ROOT


WITHOUT_POSIX = """
import builtins, signal

for name in ("SIGALRM", "setitimer", "getitimer", "ITIMER_REAL", "alarm", "SIGKILL"):
    delattr(signal, name)

# `import resource` in our code raises ImportError, as on Windows. Only in ours: a library's own Linux
# backend (psutil's) needs it here, and on Windows it has another one.
_import = builtins.__import__


def _without_resource(name, globals=None, locals=None, fromlist=(), level=0):
    if name == "resource" and str((globals or {}).get("__name__", "")).startswith("parity"):
        raise ImportError("No module named 'resource'", name="resource")
    return _import(name, globals, locals, fromlist, level)


builtins.__import__ = _without_resource
"""


def _run(code: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_POSIX + textwrap.dedent(code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def every_module_and_the_doors(tmp_path: Path) -> subprocess.CompletedProcess:
    """Every module imported (TensorFlow with them) and grade, sweep and bench parsed and validated, in one fresh
    interpreter without the POSIX-only names."""
    return _run(f"""
        import importlib, pkgutil
        import parity

        # All but parity.__main__, which is `python -m parity` itself: importing it runs the command.
        names = [m.name for m in pkgutil.walk_packages(parity.__path__, "parity.") if m.name != "parity.__main__"]
        for name in names:
            importlib.import_module(name)
        print(len(names), "modules")

        from parity.cli import main
        from parity.cli_parser import parser

        args = parser().parse_args(["grade", "a.py", "--out", "book", "--timeout", "30", "--workers", "2"])
        assert (args.command, args.submissions, args.timeout, args.workers) == ("grade", ["a.py"], 30.0, 2), args
        args = parser().parse_args(["sweep", "--seeds", "0-9", "--out", "sweep", "--memory-limit", "2GB"])
        assert (args.command, args.seeds, args.memory_limit) == ("sweep", "0-9", "2GB"), args
        args = parser().parse_args(["bench", "--samples", "5000", "--steps", "500"])
        assert (args.command, args.samples, args.steps) == ("bench", 5000, 500), args
        # Each door goes on to validate its input (exit 2, one error line) on its way to the work.
        assert main(["grade", "missing.py", "--out", {str(tmp_path / "book")!r}]) == 2
        assert main(["sweep", "--seeds", "9-1", "--out", {str(tmp_path / "sweep")!r}]) == 2
        assert main(["bench", "--samples", "10", "--out", {str(tmp_path / "bench")!r}]) == 2

        from parity.grading.limit import KERNEL_TIMER
        from parity.selfcheck.bench import _peak_rss_mb

        print("kernel timer:", KERNEL_TIMER, "peak rss:", _peak_rss_mb())
    """)


def start_early(folder: Path, lane: Executor) -> Future:
    """The interpreter that imports every module (about 9 s, mostly TensorFlow), queued with the session (conftest's
    started_early): it runs on the machine's other core while other modules' tests run here."""
    return lane.submit(every_module_and_the_doors, folder)


@pytest.fixture(scope="module")
def every_module_run(started_early) -> Future:
    return started_early[__name__]


def test_every_module_imports_and_grade_sweep_bench_parse_their_arguments_without_posix_only_names(every_module_run):
    done = every_module_run.result()
    assert done.returncode == 0, done.stderr[-3000:]
    every = [p for p in (ROOT / "parity").rglob("*.py") if p.parent.name != "parity" or p.stem not in ("__init__", "__main__")]
    lines = done.stdout.splitlines()
    assert lines[0] == f"{len(every)} modules", lines  # each module and subpackage once
    assert lines[-1] == "kernel timer: False peak rss: None"
    assert done.stderr.count("error: ") == 3  # the three bad inputs, one line each


def test_without_a_kernel_timer_the_watchdog_alone_ends_a_submission_that_runs_past_its_limit():
    done = _run("""
        import time
        from parity.grading.limit import EXIT_TIMEOUT, Limit

        expired = []
        limit = Limit(0.5, lambda used: None, lambda: print("expired", flush=True), alarm=True)
        start = time.monotonic()
        with limit:
            while time.monotonic() - start < 30:  # a loop that never ends by itself (30 s: the test's own bound)
                pass
        print("not stopped")
    """, timeout=60)
    assert done.returncode == 124 and done.stdout == "expired\n", (done.returncode, done.stdout, done.stderr[-2000:])
