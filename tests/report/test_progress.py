"""Progress on a terminal: a status line per step and a bar per counted part, drawn on the real terminal (fd 2 before
TensorFlow's log filter took it), erased when the step ends; nothing on a pipe, nothing with --quiet.

The two real processes run on a pseudo-terminal (`pty`), queued with the session (conftest's started_early)."""

import io
import os
import pty
import subprocess
import sys
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest

from parity import cli, cli_commands
from parity.report.progress import TerminalProgress
from testkit import ROOT

RUN = ["run", "--dtype", "float64", "--epochs", "1", "--no-plots"]


def on_a_terminal(*args: str) -> tuple[int, str, bytes]:
    """(status, stdout, what reached the terminal) of `parity ARGS` with its stderr on a pseudo-terminal."""
    master, slave = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "parity.cli", *args], cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out = process.stdout.read().decode()
    return process.wait(timeout=600), out, shown


def start_early(folder: Path, lane: Executor) -> dict[str, Future]:
    return {"bars": lane.submit(on_a_terminal, *RUN, "--out", str(folder / "shown")),
            "quiet": lane.submit(on_a_terminal, *RUN, "--quiet", "--out", str(folder / "quiet"))}


@pytest.fixture(scope="module")
def terminal_runs(started_early) -> dict[str, Future]:
    return started_early[__name__]


def test_a_run_on_a_terminal_shows_each_step_and_erases_it(terminal_runs):
    status, out, shown = terminal_runs["bars"].result()
    assert status == 0 and "verdict: PASS" in out
    text = shown.decode()
    for step in ("importing TensorFlow (00:", "Keras: fitting 1 epochs (00:",
                 "comparing 200 samples, then stepping 160 on both sides (00:"):
        assert f"\r{step}" in text, text[:2000]
    assert "\n" not in text and text.endswith(" \r")  # every line erased: the terminal keeps only the summary


def test_a_quiet_run_on_a_terminal_draws_nothing(terminal_runs):
    status, out, shown = terminal_runs["quiet"].result()
    assert (status, out, shown) == (0, "", b"")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_counts_parts_and_a_status_line_shows_its_label():
    screen = Terminal()
    progress = TerminalProgress(screen)
    assert list(progress(iter(range(3)), "probe", 3)) == [0, 1, 2]
    assert "\rprobe:   0%|" in screen.getvalue() and "0/3 [00:00<?, ?chunk/s]" in screen.getvalue()
    items = [7]
    assert progress(items, "probe", 1) is items  # one part: no bar
    with progress.stage("Keras: fitting 20 epochs"):
        pass
    assert "\rKeras: fitting 20 epochs (00:00)" in screen.getvalue()


def test_a_bar_shows_on_a_terminal_that_reports_no_width():
    """A fresh pseudo-terminal says it is 0 columns wide; a bar that believes it draws as nothing (grade's did)."""
    master, slave = pty.openpty()
    with os.fdopen(slave, "w") as screen:
        assert os.get_terminal_size(slave).columns == 0
        assert list(TerminalProgress(screen)(range(2), "grading", 2, "submission")) == [0, 1]
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert b"\rgrading:   0%|          | 0/2 [00:00<?, ?submission/s]" in shown, shown


def test_grade_and_sweep_count_submissions_and_runs(monkeypatch):
    screen = Terminal()
    monkeypatch.setattr(cli_commands.TERMINAL, "progress", TerminalProgress(screen))
    assert list(cli_commands._submissions_bar(range(2), "grading", 2)) == [0, 1] and "submission" in screen.getvalue()
    assert list(cli_commands._submissions_bar(range(2), "sweeping", 2)) == [0, 1] and "run/s" in screen.getvalue()
    monkeypatch.setattr(cli_commands.TERMINAL, "progress", None)  # not a terminal, or --quiet: grade and sweep draw nothing
    items = iter(range(2))
    assert cli_commands._submissions_bar(items, "grading", 2) is items


def test_in_process_the_command_draws_nothing_when_stderr_is_no_terminal(tmp_path, capsys):
    assert cli.main([*RUN, "--quiet", "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr() == ("", "")
