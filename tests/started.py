"""`parity` commands in processes of their own, started together and waited for when a test needs them.

Each process spends most of its time importing TensorFlow (about 5 s, on one core): a module that needs
several starts them at once, or as the session starts (conftest's started_early), and lets the machine's other
core work on them meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Started:
    """`python -m parity.cli ARGS`, started now; `wait()` waits for it (once) and returns its result."""

    def __init__(self, *args: str, env: dict | None = None):
        self.args = [sys.executable, "-m", "parity.cli", *args]
        self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})})
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
