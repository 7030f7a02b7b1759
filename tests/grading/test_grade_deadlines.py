"""Nothing in grade or sweep waits forever: a worker killed mid-grade is `crashed` with its exit status, a
cluster left with no worker is exit 3 with one error line and what was graded kept, a frozen worker is
stopped from outside, and every wait has a deadline derived from the time limit.

Every grading run here starts a local cluster of its own (grade's `--workers`), on submissions that never
load TensorFlow, so each test takes seconds; the deadlines themselves are tested on a stand-in client.
"""

import csv
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from parity import cli
from parity.errors import ToolError
from parity.grading import deadlines
from parity.grading.deadlines import Deadlines

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="kills and stops worker processes with POSIX signals")

# Each records its worker's pid in $PARITY_TEST_PIDS when it starts, then sleeps past any test's patience.
SLEEPS = "import os, time\nopen(os.path.join(os.environ['PARITY_TEST_PIDS'], str(os.getpid())), 'w').close()\n" \
         "time.sleep(120)\n"
FREEZES = "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\n"  # the whole worker process stops
SYNTAX_ERROR = "class Relu(\n"


def _class(folder: Path, **sources: str) -> Path:
    folder.mkdir()
    for name, source in sources.items():
        (folder / f"{name}.py").write_text(source)
    return folder


def _kill_when_started(pids: Path, count: int, before=None) -> threading.Thread:
    """SIGKILL every worker process once `count` submissions have started on them (after `before()`)."""

    def run():
        deadline = time.monotonic() + 120
        while len(list(pids.iterdir())) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        if before is not None:
            before()
        for pid in pids.iterdir():
            os.kill(int(pid.name), signal.SIGKILL)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _grade(folder: Path, out: Path, timeout: str = "60") -> tuple[int, float]:
    start = time.monotonic()
    status = cli.main(["grade", str(folder), "--out", str(out), "--workers", "2", "--memory-limit", "1GB",
                       "--timeout", timeout, "--no-plots", "--quiet"])
    return status, time.monotonic() - start


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as f:
        return {Path(r["file"]).stem: r for r in csv.DictReader(f)}


@POSIX
def test_every_worker_killed_mid_grade_is_crashed_with_its_exit_status_and_grading_goes_on(tmp_path, monkeypatch):
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("PARITY_TEST_PIDS", str(pids))
    folder = _class(tmp_path / "class", a_sleeps=SLEEPS, b_sleeps=SLEEPS, c_syntax=SYNTAX_ERROR)
    killer = _kill_when_started(pids, 2)
    status, wall = _grade(folder, tmp_path / "book")
    killer.join(5)
    rows = _rows(tmp_path / "book")
    assert status == 0
    assert {name: r["status"] for name, r in rows.items()} == {"a_sleeps": "crashed", "b_sleeps": "crashed",
                                                               "c_syntax": "bad_input"}  # graded by a new worker
    for name in ("a_sleeps", "b_sleeps"):
        assert "it was killed by SIGKILL: a kill from outside" in rows[name]["first_error"], rows[name]
    assert wall < 90  # no limit ran out: 60 s each, and their sleep is 120 s


@POSIX
def test_a_cluster_whose_workers_cannot_be_restarted_is_exit_3_with_what_was_graded_kept(tmp_path, monkeypatch,
                                                                                          capsys):
    from distributed.nanny import Nanny

    async def cannot_start(self):
        raise OSError("no process can be started (taken away by the test)")

    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("PARITY_TEST_PIDS", str(pids))
    monkeypatch.setattr(deadlines, "NO_WORKER_S", 3.0)
    folder = _class(tmp_path / "class", a_sleeps=SLEEPS, b_sleeps=SLEEPS, c_syntax=SYNTAX_ERROR)
    killer = _kill_when_started(pids, 2, before=lambda: monkeypatch.setattr(Nanny, "instantiate", cannot_start))
    capsys.readouterr()
    status, wall = _grade(folder, tmp_path / "book")
    killer.join(5)
    err = capsys.readouterr().err
    assert status == 3 and wall < 90
    assert err.count("\n") == 1 and err.startswith("error: the Dask cluster has had no worker for 3 s"), err
    assert "; 2 of 3 submissions were graded and written to" in err and "marked not_graded there" in err
    rows = _rows(tmp_path / "book")
    assert {name: r["status"] for name, r in rows.items()} == {"a_sleeps": "crashed", "b_sleeps": "crashed",
                                                               "c_syntax": "not_graded"}
    assert "killed by SIGKILL" in rows["a_sleeps"]["first_error"]
    assert rows["c_syntax"]["first_error"].startswith("not graded: the Dask cluster has had no worker")
    book = json.loads((tmp_path / "book" / "gradebook.json").read_text())
    assert book["counts"] == {"pass": 0, "fail": 0, "bad_input": 0, "timeout": 0, "crashed": 2, "not_graded": 1}
    assert book["error"].startswith("the Dask cluster has had no worker for 3 s")
    page = (tmp_path / "book" / "gradebook.html").read_text()
    assert '<div class="incomplete"><b>Incomplete:</b> the Dask cluster has had no worker' in page


@POSIX
def test_a_frozen_worker_is_stopped_from_outside_and_its_submission_is_a_timeout(tmp_path, monkeypatch):
    """A stopped process runs neither its watchdog nor its kernel timer: only the grader's deadline ends it,
    as it ends a worker on a platform without a kernel timer whose submission holds the GIL."""
    monkeypatch.setattr(deadlines, "OVERDUE_S", 1.0)
    folder = _class(tmp_path / "class", freezes=FREEZES, syntax=SYNTAX_ERROR)
    status, wall = _grade(folder, tmp_path / "book", timeout="2")
    rows = _rows(tmp_path / "book")
    assert status == 0 and wall < 90
    assert {name: r["status"] for name, r in rows.items()} == {"freezes": "timeout", "syntax": "bad_input"}
    assert rows["freezes"]["first_error"] == ("did not finish within the 2 s limit (--timeout); its worker was "
                                              "stopped from outside and replaced")


# -- the deadlines, on a stand-in for a Dask client ----------------------------------------------------------

class _Cluster:
    """Stands in for a Dask client: which worker holds which keys, and each item's clock events."""

    def __init__(self, processing: dict, events: dict | None = None):
        self.held, self.topics = processing, events or {}

    def processing(self):
        return self.held

    def nthreads(self):
        return {worker: 1 for worker in self.held}

    def get_events(self, topic):
        return [(0.0, msg) for msg in self.topics.get(topic, [])]


def _watch(client, seconds: float, patience: float = 5.0) -> tuple[float, object]:
    """Call `overdue` as run_all does until it reports a late item or raises; (seconds taken, what came)."""
    watch = Deadlines(client, seconds, topic=lambda index: f"item-{index}")
    start = time.monotonic()
    while time.monotonic() - start < patience:
        try:
            late = watch.overdue(lambda: {"key-0": 0})
        except ToolError as exc:
            return time.monotonic() - start, exc
        if late:
            return time.monotonic() - start, late
        time.sleep(0.01)
    return time.monotonic() - start, None


@pytest.fixture
def quick(monkeypatch):
    """Deadlines in tenths of a second."""
    for name, value in {"TICK_S": 0.02, "OVERDUE_S": 0.3, "NO_WORKER_S": 0.4, "RESTART_S": 0.1,
                        "UNTIMED_MIN_S": 0.6}.items():
        monkeypatch.setattr(deadlines, name, value)


def test_a_cluster_with_no_worker_is_an_error_after_no_worker_s(quick):
    took, came = _watch(_Cluster({}), seconds=60)
    assert isinstance(came, ToolError) and 0.4 <= took < 2
    assert str(came) == "the Dask cluster has had no worker for 0.4 s: its worker processes died and none was " \
                        "started again"


def test_an_item_inside_its_limit_is_overdue_at_what_was_left_of_it_plus_the_grace(quick):
    started = {"event": "resumed", "used": 0.5, "time": 0.0}  # 0.5 s of its 1 s spent before this block
    took, came = _watch(_Cluster({"tcp://w:1": ["key-0"]}, {"item-0": [started]}), seconds=1.0)
    assert came == [(0, "tcp://w:1", "timed")] and 0.8 <= took < 1.5  # 0.5 s left + 0.3 s grace


def test_outside_its_timed_blocks_an_item_has_the_untimed_allowance(quick):
    events = [{"event": "started", "used": 0.0}, {"event": "left", "used": 0.1}]  # imported; the warm-up runs
    took, came = _watch(_Cluster({"tcp://w:1": ["key-0"]}, {"item-0": events}), seconds=0.01)
    assert came == [(0, "tcp://w:1", "untimed")] and 0.6 <= took < 1.5  # UNTIMED_MIN_S, not the 0.01 s limit


def test_an_item_not_started_has_no_clock_but_a_cluster_making_no_progress_is_an_error(quick):
    took, came = _watch(_Cluster({"tcp://w:1": ["key-0"]}), seconds=0.01, patience=10)
    stall = 0.6 + 0.1 + 0.4  # the longest an item may go quiet (UNTIMED_MIN_S), a restart, a worker's return
    assert isinstance(came, ToolError) and stall <= took < stall + 1.5
    assert str(came) == "no check started, moved on or finished for 1.1 s while the Dask cluster had 1 worker " \
                        "connected: the cluster is stuck"


def test_the_deadlines_grow_with_the_time_limit():
    small, large = Deadlines(_Cluster({}), 10, str), Deadlines(_Cluster({}), 120, str)
    assert (small.untimed_s, large.untimed_s) == (300, 1200)  # a warm-up (20-60 s) never counts as overdue
    assert small.stall_s == 300 + deadlines.RESTART_S + deadlines.NO_WORKER_S
    assert large.stall_s == 1200 + deadlines.RESTART_S + deadlines.NO_WORKER_S


def test_a_sweep_the_cluster_cannot_finish_keeps_the_runs_that_finished_and_exits_3(tmp_path, monkeypatch, capsys):
    """The sweep's side of exit 3, on a stand-in cluster that finishes one run and is then lost."""
    import contextlib

    from parity.grading import workers
    from parity.grading.outcome import Outcome

    def one_then_lost(client, fn, items, seconds):
        yield 1, Outcome("done", {"status": "pass", "error_codes": [], "warnings": [],
                                  "tolerance_used": {"probe.pred": 0.25}, "seconds": 1.5})
        raise ToolError("the Dask cluster has had no worker for 60 s: its worker processes died and none was "
                        "started again")

    monkeypatch.setattr(workers, "cluster_client", lambda *args: contextlib.nullcontext())
    monkeypatch.setattr(workers, "run_all", one_then_lost)
    capsys.readouterr()
    assert cli.main(["sweep", "--seeds", "3-5", "--out", str(tmp_path / "sweep"), "--quiet"]) == 3
    assert capsys.readouterr().err == ("error: the Dask cluster has had no worker for 60 s: its worker processes died "
                                       f"and none was started again; 1 of 3 runs finished and were written to "
                                       f"{tmp_path / 'sweep'} (the other 2 are marked not_run there)\n")
    with open(tmp_path / "sweep" / "sweep.csv", newline="") as f:
        rows = [(r["seed"], r["status"], r["largest_share"]) for r in csv.DictReader(f)]
    assert rows == [("3", "not_run", ""), ("4", "pass", "0.25"), ("5", "not_run", "")]
    record = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert record["counts"] == {"pass": 1, "fail": 0, "timeout": 0, "crashed": 0, "not_run": 2}
    assert record["error"].startswith("the Dask cluster has had no worker") and record["false_alarm_rate"] == 0.0
