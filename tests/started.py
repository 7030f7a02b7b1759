"""`parity` commands in processes of their own, started ahead of the tests that read them.

Each process spends most of its time importing TensorFlow (about 5 s, on one core). Started as the session starts
(conftest's started_early) and at a lower priority than the session's own process, they take the machine's idle
core instead of sharing the one the in-process tests run on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKGROUND_NICENESS = 10  # the session's own process (niceness 0) gets about nine tenths of a core it shares


def in_background(pid: int) -> None:
    """Lower the scheduling priority of a process, or of a thread by its native id: on Linux niceness is per
    thread, and a process a thread starts inherits it."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, BACKGROUND_NICENESS)
    except (AttributeError, OSError):  # no such call, or no thread ids as process ids: same priority, same results
        pass


class Started:
    """`python -m parity.cli ARGS`, started now in the background; `wait()` waits for it (once) and returns its result."""

    def __init__(self, *args: str, env: dict | None = None):
        self.args = [sys.executable, "-m", "parity.cli", *args]
        self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})})
        in_background(self.process.pid)  # before Python has started any thread of its own: they all inherit it
        self.result: subprocess.CompletedProcess | None = None

    def wait(self, timeout: float = 300) -> subprocess.CompletedProcess:
        if self.result is None:
            stdout, stderr = self.process.communicate(timeout=timeout)
            self.result = subprocess.CompletedProcess(self.args, self.process.returncode, stdout, stderr)
        return self.result

    def stop(self) -> None:
        """Kill it if no test waited for it (one failed first), so that nothing outlives its module."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


@dataclass
class Batch:
    """Processes started together, by name, and the folder they write into."""

    folder: Path
    processes: dict[str, Started]

    def __getitem__(self, name: str) -> Started:
        return self.processes[name]

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
