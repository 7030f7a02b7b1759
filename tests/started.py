"""`parity` commands in processes of their own, started together and waited for when a test needs them.

Each process spends most of its time importing TensorFlow (about 5 s, on one core): a module that needs
several starts them at once and lets the machine's second core work on them meanwhile.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class Started:
    """`python -m parity.cli ARGS`, started now; `done()` waits for it (once) and returns its result."""

    def __init__(self, *args: str, env: dict | None = None):
        self.args = [sys.executable, "-m", "parity.cli", *args]
        self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, **(env or {})})
        self.result: subprocess.CompletedProcess | None = None

    def done(self, timeout: float = 300) -> subprocess.CompletedProcess:
        if self.result is None:
            stdout, stderr = self.process.communicate(timeout=timeout)
            self.result = subprocess.CompletedProcess(self.args, self.process.returncode, stdout, stderr)
        return self.result

    def stop(self) -> None:
        """Kill it if no test waited for it (one failed first), so that nothing outlives its module."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()
