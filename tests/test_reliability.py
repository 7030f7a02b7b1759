"""A run killed or interrupted at any moment leaves the previous complete report or none; NaN never passes."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity import cli

ROOT = Path(__file__).resolve().parents[1]


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
    """The parity.plot_worker processes `pid` started (parity.plot_worker), alive now."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"parity.plot_worker" in cmdline and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(proc.name))
    return found


def assert_gone(pids: list[int], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
              for pid in pids):
        assert time.monotonic() < deadline, f"plot workers {pids} outlived their run"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def previous(tmp_path_factory):
    """A complete report from an earlier run, to be kept whole."""
    out = tmp_path_factory.mktemp("prev") / "report"
    assert cli.main(["run", "--dtype", "float64", "--epochs", "1", "--no-plots", "--quiet", "--out", str(out)]) == 0
    return {p.name: p.read_bytes() for p in out.iterdir()}


def restore(out: Path, files: dict) -> None:
    out.mkdir(parents=True)
    for name, data in files.items():
        (out / name).write_bytes(data)


def assert_whole(out: Path, files: dict) -> None:
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    summary = json.loads(files["summary.json"])
    assert sorted(summary["files"]) == sorted(files)


@pytest.mark.parametrize("had_report", [True, False])
def test_a_run_killed_mid_write_leaves_the_previous_report_or_none(tmp_path, previous, had_report):
    out = tmp_path / "report"
    if had_report:
        restore(out, previous)
    proc = start(out)  # with plots: the write phase lasts about a second
    tmp = wait_mid_write(proc, out)
    workers = plot_workers_of(proc.pid)
    assert len(workers) == 1  # the run drew with a plot worker: killing the run must end it too
    proc.kill()
    proc.wait(timeout=60)
    assert tmp.exists()  # it really was killed while writing
    assert_gone(workers)  # at end of its input
    if had_report:
        assert_whole(out, previous)
    else:
        assert not out.exists()


def test_ctrl_c_exits_130_and_leaves_nothing_half_written(tmp_path, previous):
    out = tmp_path / "report"
    restore(out, previous)
    proc = start(out)
    wait_mid_write(proc, out)
    workers = plot_workers_of(proc.pid)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert_gone(workers, timeout=5)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted; no report was written"
    assert "Traceback" not in stderr
    assert not list(tmp_path.glob(".report.tmp-*"))  # cleaned up
    assert_whole(out, previous)


def test_nan_arising_in_the_computation_fails_and_names_where(tmp_path, capsys):
    status = cli.main(["run", "--lr", "1000", "--epochs", "3", "--no-plots", "--out", str(tmp_path / "r")])
    assert status == 1
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    nan = [f for f in summary["findings"] if f["code"] == "nan"]
    assert nan and "the Keras fit diverged" in nan[0]["message"]
    assert any(f.get("sample") == 0 for f in nan)
    assert summary["max_abs_diff"]["probe.loss"] == "inf"  # valid JSON: non-finite numbers are written as strings
