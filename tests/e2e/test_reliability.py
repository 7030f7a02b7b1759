"""A run killed or interrupted at any moment leaves the previous complete report or none; NaN never passes.

The interrupted runs are real processes, killed or sent Ctrl-C while they write their report. They are queued with
the session (start_early, conftest's started_early) and run beside this process's tests, mostly importing
TensorFlow; each test then reads what its run left on disk and how the process ended."""

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest

from parity import cli
from testkit import ROOT



def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "parity.cli", "run", "--out", str(out), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_mid_write(proc: subprocess.Popen, out: Path, timeout: float = 180) -> Path:
    """Return the run's temporary report folder as soon as it holds a file: the report is half-written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for tmp in out.parent.glob(f".{out.name}.tmp-*"):
            if any(tmp.iterdir()):
                return tmp
        assert proc.poll() is None, f"the run ended before it was caught writing: {proc.communicate()}"
        time.sleep(0.002)
    proc.kill()
    pytest.fail("the run never started writing its report")


def plot_workers_of(pid: int) -> list[int]:
    """The parity.report.plot_worker processes `pid` started, alive now."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"parity.report.plot_worker" in cmdline and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(proc.name))
    return found


def gone(pids: list[int], timeout: float = 30) -> bool:
    """Whether every one of `pids` has ended (a zombie counts as ended) within `timeout` seconds."""
    def alive(pid):
        try:
            return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
        except OSError:
            return False
    deadline = time.monotonic() + timeout
    while any(alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def restore(out: Path, files: dict) -> None:
    out.mkdir(parents=True)
    for name, data in files.items():
        (out / name).write_bytes(data)


def assert_whole(out: Path, files: dict) -> None:
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    summary = json.loads(files["summary.json"])
    assert sorted(summary["files"]) == sorted(files)


# (how the run is interrupted, whether a previous report is in its folder)
CASES = [(signal.SIGKILL, True), (signal.SIGKILL, False), (signal.SIGINT, True)]


def previous_report(folder: Path) -> dict[str, bytes]:
    """A complete report from an earlier run, to be kept whole."""
    out = folder / "previous"
    done = subprocess.run([sys.executable, "-m", "parity.cli", "run", "--dtype", "float64", "--epochs", "1",
                           "--no-plots", "--quiet", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return {p.name: p.read_bytes() for p in out.iterdir()}


def interrupt(out: Path, how: signal.Signals, previous: Future | None):
    """Start a run into `out` (over the previous report, if given), send it `how` mid-write, and wait for its end."""
    out.parent.mkdir()
    if previous is not None:
        restore(out, previous.result())
    proc = start(out)  # with plots: the write phase lasts about a second
    tmp = wait_mid_write(proc, out)
    workers = plot_workers_of(proc.pid)  # the run draws with a plot worker: ending the run must end it too
    proc.send_signal(how)
    stdout, stderr = proc.communicate(timeout=60)
    workers_gone = gone(workers)
    return out, tmp, subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), (workers, workers_gone)


def start_early(folder: Path, lane: Executor) -> dict:
    """The previous report, then each interrupted run, queued with the session (conftest's started_early)."""
    previous = lane.submit(previous_report, folder)
    runs = {case: lane.submit(interrupt, folder / f"{case[0].name}-{case[1]}" / "report", case[0],
                              previous if case[1] else None) for case in CASES}
    return {"previous": previous, "runs": runs}


@pytest.fixture(scope="module")
def interrupted(started_early) -> dict:
    return started_early[__name__]


@pytest.mark.parametrize("had_report", [True, False])
def test_a_run_killed_mid_write_leaves_the_previous_report_or_none(interrupted, had_report):
    out, tmp, _, (workers, workers_gone) = interrupted["runs"][signal.SIGKILL, had_report].result()
    assert tmp.exists()  # it really was killed while writing
    assert len(workers) == 1 and workers_gone  # its plot worker exits at the end of its input
    if had_report:
        assert_whole(out, interrupted["previous"].result())
    else:
        assert not out.exists()


def test_ctrl_c_exits_130_and_leaves_nothing_half_written(interrupted):
    out, _, done, (workers, workers_gone) = interrupted["runs"][signal.SIGINT, True].result()
    assert done.returncode == 130, done.stderr
    assert len(workers) == 1 and workers_gone  # the run ends its plot worker as it stops
    assert done.stderr.strip().splitlines()[-1] == "error: interrupted; no report was written"
    assert "Traceback" not in done.stderr
    assert not list(out.parent.glob(".report.tmp-*"))  # cleaned up
    assert_whole(out, interrupted["previous"].result())


def test_nan_arising_in_the_computation_fails_and_names_where(tmp_path, capsys):
    status = cli.main(["run", "--lr", "1000", "--epochs", "3", "--no-plots", "--out", str(tmp_path / "r")])
    assert status == 1
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    nan = [f for f in summary["findings"] if f["code"] == "nan"]
    assert nan and "the Keras fit diverged" in nan[0]["message"]
    assert any(f.get("sample") == 0 for f in nan)
    assert summary["max_abs_diff"]["probe.loss"] == "inf"  # valid JSON: non-finite numbers are written as strings
