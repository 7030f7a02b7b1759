"""Worker side of a grade or sweep: one item's wall-clock budget, kept inside the worker process.

- a watchdog thread, on every platform: at the limit it records a `timeout` event at the scheduler, then
  ends the process (EXIT_TIMEOUT), the only way to stop a thread that is running someone's code;
- a kernel timer (SIGALRM, whose default action ends the process) GRACE_S later, for code that holds
  the GIL so the watchdog never runs. POSIX only, and single-threaded workers only (the timer is per
  process): on Windows there is no such timer, and the grader stops such a worker from outside, through
  its nanny, when the item is overdue (parity/grading/deadlines.py);
- every timed block's start and end is an event at the scheduler, so the grader knows how long each
  item may still take.

Nothing here is evaluated at import that a platform may lack: `signal.SIGALRM` and `signal.setitimer`
are looked up only where KERNEL_TIMER says they exist.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable

__all__ = ["Limit", "attempt", "KERNEL_TIMER", "EXIT_TIMEOUT", "GRACE_S", "REFUSED"]

GRACE_S = 5.0  # the kernel timer's margin past the watchdog
EXIT_TIMEOUT = 124  # a worker ended by the watchdog exits with this status (as timeout(1) does)
KERNEL_TIMER = hasattr(signal, "setitimer") and hasattr(signal, "SIGALRM")  # Linux, macOS; not Windows
REFUSED = "keras-parity: an earlier attempt of this item started; not run again"


class Limit:
    """One item's wall-clock budget, shared by its timed parts. `with limit:` runs the block under what
    is left of it; `used` is the seconds spent inside such blocks. `entered(used)` and `left(used)` are
    told at each block's start and end (the grader's clock); `expired()` just before the process ends."""

    def __init__(self, seconds: float, entered: Callable[[float], None], expired: Callable[[], None], alarm: bool,
                 left: Callable[[float], None] = lambda used: None):
        self.seconds, self.used = seconds, 0.0
        self._entered, self._left, self._expired = entered, left, expired
        self._alarm = alarm and KERNEL_TIMER
        self._timer, self._t0 = None, 0.0

    def __enter__(self) -> "Limit":
        self._entered(self.used)  # recorded at the scheduler before the item's code runs
        left = max(self.seconds - self.used, 0.0)
        self._timer = threading.Timer(left, self._expire)
        self._timer.daemon = True
        self._t0 = time.monotonic()
        self._timer.start()
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, left + GRACE_S)
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        if self._alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.used += time.monotonic() - self._t0
        self._left(self.used)

    def _expire(self) -> None:
        try:
            self._expired()
        finally:
            os._exit(EXIT_TIMEOUT)


def attempt(fn: Callable, item, seconds: float, topic: str):
    """Run `fn(item, limit)` on this worker, unless an earlier attempt of this item already started."""
    from distributed import get_client, get_worker

    client, worker = get_client(), get_worker()
    if any(msg.get("event") == "started" for _, msg in client.get_events(topic)):
        return REFUSED
    memory_limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    thread = threading.get_ident()  # the thread that runs the item: at a timeout, what it runs is named
    alarm = KERNEL_TIMER and worker.state.nthreads == 1 and signal.getsignal(signal.SIGALRM) == signal.SIG_DFL

    def entered(used: float):  # "started" the first time; the clock then runs from `time`, `used` seconds spent
        client.log_event(topic, {"event": "resumed" if used else "started", "worker": worker.address,
                                 "time": time.time(), "used": used, "memory_limit": memory_limit,
                                 # whose exit status the nanny (if any) will report: worker_exits
                                 "host": socket.gethostname(), "pid": os.getpid(), "nanny": worker.nanny is not None})

    def left(used: float):  # the item's own clock stops; what follows (a warm-up, its report) is the grader's
        # Sent without waiting for the scheduler's answer (the worker's own stream): the item goes on at once,
        # and a worker that dies before it is sent leaves only an earlier deadline, for a dead worker.
        worker.log_event(topic, {"event": "left", "worker": worker.address, "time": time.time(), "used": used})

    def expired():
        from parity.user_code.running import running_user_code

        client.log_event(topic, {"event": "timeout", "worker": worker.address, "seconds": seconds,
                                 "running": running_user_code(thread)})

    return fn(item, Limit(seconds, entered, expired, alarm, left))
