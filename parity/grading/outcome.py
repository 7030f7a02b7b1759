"""Client side of a grade or sweep: what became of an item whose worker died, told on evidence.

In order: a `timeout` event (the worker's watchdog, or the grader that stopped an overdue worker); a
memory event from the nanny; else the worker process's exit status, which each nanny reports through
the `worker_exits.ExitWatch` plugin (matched by the host and pid the item's worker recorded when the
item started): EXIT_TIMEOUT (the watchdog) or SIGALRM (the kernel timer) is a `timeout`; any other
status (a user's `os._exit(n)`, SIGSEGV, a kill from outside) is `crashed`, however late the client
notices. Only when no status arrives (a worker without a nanny, a process that exited with status 0)
does the clock decide, as a fallback: `timeout` when the item's time had run out by the moment its
death was noticed, which on a loaded machine can read a late-noticed crash as a timeout.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

from parity.grading.limit import EXIT_TIMEOUT

__all__ = ["Outcome", "classify", "timed_out", "ATTEMPTS", "MEMORY_EVENT", "TIMED_OUT", "KILLS"]

ATTEMPTS = 3  # an item whose worker died before the item started is submitted again, this many times in all
MEMORY_EVENT = "worker-restart-memory"  # the topic Dask's nanny logs a memory kill under
# The nanny's memory event and its word on the exit status may reach the scheduler after the worker's death
# is noticed, seconds after on a loaded machine. Each wait ends as soon as the word arrives; only a process
# that exits with status 0 (no word) costs the whole EXIT_WAIT_S.
MEMORY_WAIT_S = 1.0  # after a SIGTERM or SIGKILL (the same nanny sent a memory kill's event first), or with no nanny
EXIT_WAIT_S = 30.0  # for the exit status, where a nanny will give it
# Exit statuses are negative for a signal. The numbers are POSIX's (Linux and macOS agree); a Windows client
# has no SIGALRM or SIGKILL of its own, but its workers cannot die of them either, and remote ones can.
SIGALRM, SIGTERM, SIGKILL = (getattr(signal, name, number) for name, number in
                             (("SIGALRM", 14), ("SIGTERM", 15), ("SIGKILL", 9)))
TIMED_OUT = (EXIT_TIMEOUT, -SIGALRM)  # our limit ended it: the watchdog, or the kernel timer
KILLS = (-SIGTERM, -SIGKILL)  # from outside: the nanny past the memory limit, a person, the OOM killer


@dataclass(frozen=True)
class Outcome:
    """What became of one item: `done` (the task's `value`), `timeout` or `crashed` (with a `message`)."""

    status: str
    value: object = None
    message: str = ""
    seconds: float | None = None


def timed_out(seconds: float, by: str | None = None, untimed_s: float | None = None,
              stopped: bool = True, running: str = "") -> Outcome:
    """A `timeout`. `by`: where the grader found its worker overdue and stopped it from outside: inside
    the item's timed blocks ("timed"), or after `untimed_s` seconds of the grader's own work around them
    ("untimed"); `stopped` False: that failed, and the worker was left running it."""
    fate = "stopped and replaced" if not by else \
        "stopped from outside and replaced" if stopped else "left running: it could not be stopped"
    if by == "untimed":
        return Outcome("timeout", message=f"its worker spent more than {untimed_s:g} s in the grader's own untimed "
                                          f"work after importing it (the Keras warm-up, writing its report) and was "
                                          f"{fate}")
    return Outcome("timeout", message=f"did not finish within the {seconds:g} s limit (--timeout)"
                                      f"{'; it was running ' + running if running else ''}; its worker "
                                      f"was {fate}", seconds=seconds)


def _evidence(client, start: dict, watched: bool) -> tuple[dict | None, int | None]:
    """The nannies' word on how the worker that ran `start`'s item ended: its memory event and its
    exit status (negative: a signal), each None when none arrived in time."""
    from parity.grading.worker_exits import EXIT_TOPIC

    told = watched and start.get("nanny") and "pid" in start  # someone will report the exit status
    deadline = time.monotonic() + (EXIT_WAIT_S if told else MEMORY_WAIT_S)
    exitcode = None
    while True:
        memory = [m for _, m in client.get_events(MEMORY_EVENT) if m.get("worker") == start["worker"]]
        if memory:
            return memory[-1], exitcode
        if told and exitcode is None:
            ended = [m["exitcode"] for _, m in client.get_events(EXIT_TOPIC)
                     if (m.get("host"), m.get("pid")) == (start["host"], start["pid"])]
            if ended:
                exitcode = ended[-1]
                # A memory kill's event was logged before its SIGTERM: wait for it only after such a kill.
                deadline = min(deadline, time.monotonic() + (MEMORY_WAIT_S if exitcode in KILLS else 0.0))
        if time.monotonic() >= deadline:
            return None, exitcode
        time.sleep(0.1)


def _death(exitcode: int | None) -> str:
    """Why a worker died while checking an item, in words, from its exit status where there is one."""
    if exitcode is None:
        how = "os._exit, a crash of the interpreter, or a kill from outside"
    elif exitcode >= 0:
        how = f"it exited with status {exitcode}: os._exit({exitcode}), or an exit from native code"
    else:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = {SIGKILL: "SIGKILL", SIGALRM: "SIGALRM"}.get(-exitcode, f"signal {-exitcode}")
        how = f"it was killed by {name}: " + ("a kill from outside (a person, or the system out of memory)"
                                              if exitcode in KILLS else "a crash of the interpreter or of native code")
    return f"its worker process died while checking it ({how})"  # replaced by its nanny, where it has one


def classify(client, topic: str, seconds: float, attempt: int, watched: bool) -> Outcome | None:
    """Why an item's worker died; None when it died before the item started (submit it again).
    `watched`: the nannies report exit statuses (worker_exits.ExitWatch is registered)."""
    from dask.utils import format_bytes

    events = [msg for _, msg in client.get_events(topic)]
    stopped = [m for m in events if m.get("event") == "timeout"]
    if stopped:
        return timed_out(seconds, stopped[0].get("by"), stopped[0].get("untimed_s"),
                         running=stopped[0].get("running", ""))
    timed = [m for m in events if m.get("event") in ("started", "resumed")]
    if not timed:
        if attempt + 1 < ATTEMPTS:
            return None
        return Outcome("crashed", message=f"its worker died {ATTEMPTS} times before the check could start "
                                          "(is the memory limit too small for TensorFlow?)")
    start = timed[-1]
    memory, exitcode = _evidence(client, start, watched)
    if memory:
        limit = start.get("memory_limit")
        return Outcome("crashed", message=f"its worker went past the memory limit"
                       f"{f' ({format_bytes(limit)})' if limit else ''} with {format_bytes(memory['rss'])} in "
                       "use and was stopped and replaced (--memory-limit)")
    if exitcode is None:  # no word on the exit status: the fallback, by the clock (see the module docstring)
        timed_out_now = start["used"] + time.time() - start["time"] >= seconds
    else:
        timed_out_now = exitcode in TIMED_OUT
    return timed_out(seconds) if timed_out_now else Outcome("crashed", message=_death(exitcode))
