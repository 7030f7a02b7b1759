"""One `parity check` under guard: its grader results files written whatever happens, and its --timeout.

The check runs in this process (no worker, unlike `parity grade`), so its limit is a watchdog thread: at the limit
it notes which of the user's classes and methods the check was running, writes the results files (a timeout,
score 0), and interrupts the main thread, whose report folder then cleans up after itself as after Ctrl-C; code
that swallows the interrupt, or native code that never returns, ends the process GRACE_S later (status 124).
"""

from __future__ import annotations

import _thread
import math
import os
import sys
import threading
import time

from parity.errors import CheckTimedOut, ParityInputError, ReportWriteError, first_line
from parity.grading.grader_files import GraderFiles, points_for
from parity.user_code.running import running_user_code

__all__ = ["CheckGuard", "EXIT_TIMEOUT", "GRACE_S"]

EXIT_TIMEOUT = 124  # as timeout(1) exits
GRACE_S = 5.0


class CheckGuard:
    def __init__(self, files: GraderFiles, timeout: float | None):
        self.files, self.timeout = files, timeout
        self.timed_out = ""  # the sentence saying so, once the limit ran out
        self._timers: list[threading.Timer] = []

    @classmethod
    def of(cls, args) -> "CheckGuard":
        """From `parity check`'s flags (--gradescope, --prairielearn, --timeout, --config), checked."""
        timeout = getattr(args, "timeout", None)
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise ParityInputError(f"--timeout must be a positive number of seconds (received: {timeout:g})")
        paths = {name: getattr(args, name, None) for name in ("gradescope", "prairielearn")}
        files = GraderFiles(paths, points_for(args.config) if any(paths.values()) else None)
        return cls(files, timeout)

    @property
    def config(self):
        return self.files.config

    @config.setter
    def config(self, value) -> None:
        self.files.config = value  # what a check that stops from here on had at stake

    def __enter__(self) -> "CheckGuard":
        if self.timeout is not None:
            main = threading.get_ident()
            self._start(self.timeout, lambda: self._expire(main))
        return self

    def _start(self, seconds: float, action) -> None:
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _expire(self, main: int) -> None:
        running = running_user_code(main)
        self.timed_out = (f"the check did not finish within the {self.timeout:g} s limit (--timeout)"
                          + (f"; it was running {running}" if running else ""))
        try:
            self.files.failed("timeout", self.timed_out)
        finally:
            self._start(GRACE_S, self._hard_exit)
            _thread.interrupt_main()

    def _hard_exit(self) -> None:
        try:
            sys.stderr.write(f"error: {self.timed_out}; no report was written\n")
            sys.stderr.flush()
            time.sleep(0.2)  # the terminal's filter thread passes the line on
        finally:
            os._exit(EXIT_TIMEOUT)

    def checked(self, report) -> None:
        self.files.checked(report)

    def __exit__(self, kind, exc, tb) -> bool:
        for timer in self._timers:
            timer.cancel()
        if exc is None:
            return False
        if self.timed_out and isinstance(exc, KeyboardInterrupt):
            raise CheckTimedOut(self.timed_out) from None
        if isinstance(exc, CheckTimedOut):  # --run-all's kernel ran out of the same time
            self.files.failed("timeout", str(exc))
        elif isinstance(exc, ParityInputError):
            self.files.failed("bad_input", str(exc))
        elif isinstance(exc, ReportWriteError):
            self.files.failed("crashed", f"the report could not be written: {first_line(exc)}")
        elif not isinstance(exc, KeyboardInterrupt):  # a person's Ctrl-C writes nothing
            self.files.failed("crashed", f"the check stopped with {type(exc).__name__}: {first_line(exc, 300)}")
        return False
