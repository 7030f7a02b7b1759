"""Untrusted work on Dask workers: every item in a worker process, under a wall-clock limit, and an
outcome for every item even when its worker dies.

Isolation, and what it is not. An item's code runs only in a Dask worker process, never in the
process that submits the work and writes the results. An item that hangs, exits (`os._exit`),
crashes the interpreter or runs past the memory limit takes down its own worker; the worker's nanny
starts a new one, and the item becomes a `timeout` or `crashed` outcome while the other workers go
on. It is not a sandbox: workers run as the same user, with the same files and network, and one
worker process checks many items in turn, so an item that changes global state (monkeypatches
NumPy, say) can change what later items on that worker compute.

How the limits are kept, on the worker:
- a watchdog thread: at the limit it records a `timeout` event at the scheduler, then ends the
  process, the only way to stop a thread that is running someone's code;
- a kernel timer (SIGALRM, whose default action ends the process) GRACE_S later, for code that holds
  the GIL so the watchdog never runs (single-threaded workers only: the timer is per process);
- memory: the nanny's `memory_limit` (Dask ends a worker past 95% of it and logs an event).

How a dead worker's item is told `timeout` from `crashed`, on evidence: a `timeout` event from the
watchdog; a memory event from the nanny; else the worker process's exit status, which each nanny
reports through the `worker_exits.ExitWatch` plugin registered here (matched by the host and pid the
item's worker recorded when the item started): EXIT_TIMEOUT (the watchdog) or SIGALRM (the kernel
timer) is a `timeout`; any other status (a user's `os._exit(n)`, SIGSEGV, a kill from outside) is
`crashed`, however late the client notices. Only when no status arrives (a worker without a nanny, a
process that exited with status 0) does the clock decide, as a fallback: `timeout` when the item's
time had run out by the moment its death was noticed, which on a loaded machine can read a late-
noticed crash as a timeout.

Dask runs a task again on another worker when its worker died (`allowed-failures`); the local
cluster sets that to 0, and on any cluster an attempt that finds that an earlier attempt of its item
already started refuses to run it again, so a hang or a crash costs one limit, once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from parity.errors import ParityInputError
from parity.user_code.running import running_user_code

__all__ = ["Outcome", "Limit", "cluster_client", "run_all", "CLUSTER_CONFIG"]

TOPIC = "keras-parity"  # scheduler events per item: f"{TOPIC}-{run}-{index}"
GRACE_S = 5.0  # the kernel timer's margin past the watchdog
ATTEMPTS = 3  # an item whose worker died before the item started is submitted again, this many times in all
EXIT_TIMEOUT = 124  # a worker ended by the watchdog exits with this status (as timeout(1) does)
MEMORY_EVENT = "worker-restart-memory"  # the topic Dask's nanny logs a memory kill under
MEMORY_WAIT_S = 1.0  # the nanny's memory event may reach the scheduler just after the worker's death is noticed
EXIT_WAIT_S = 5.0  # so may its word on the exit status: waited for this long, where a nanny will give it
TIMED_OUT = (EXIT_TIMEOUT, -signal.SIGALRM)  # exit statuses (negative: a signal) that mean our limit ended it
KILLS = (-signal.SIGTERM, -signal.SIGKILL)  # from outside: the nanny past the memory limit, a person, the OOM killer

# The local cluster: a task whose worker died is never retried elsewhere; a worker is stopped only at
# 95% of its memory limit (no spilling: tasks hold no data; no pausing: a paused worker would wait forever).
CLUSTER_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": 0.95,
}


@dataclass(frozen=True)
class Outcome:
    """What became of one item: `done` (the task's `value`), `timeout` or `crashed` (with a `message`)."""

    status: str
    value: object = None
    message: str = ""
    seconds: float | None = None


class Limit:
    """Worker side: one item's wall-clock budget, shared by its timed parts. `with limit:` runs the
    block under what is left of it; `used` is the seconds spent inside such blocks."""

    def __init__(self, seconds: float, entered: Callable[[float], None], expired: Callable[[], None], alarm: bool):
        self.seconds, self.used = seconds, 0.0
        self._entered, self._expired, self._alarm = entered, expired, alarm
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

    def _expire(self) -> None:
        try:
            self._expired()
        finally:
            os._exit(EXIT_TIMEOUT)


_REFUSED = "keras-parity: an earlier attempt of this item started; not run again"


def _attempt(fn: Callable, item, seconds: float, topic: str):
    """Worker side: run `fn(item, limit)` unless an earlier attempt of this item already started."""
    from distributed import get_client, get_worker

    client, worker = get_client(), get_worker()
    if any(msg.get("event") == "started" for _, msg in client.get_events(topic)):
        return _REFUSED
    thread = threading.get_ident()  # the thread that runs the item: at a timeout, what it runs is named
    memory_limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
    alarm = worker.state.nthreads == 1 and signal.getsignal(signal.SIGALRM) == signal.SIG_DFL

    def entered(used: float):  # "started" the first time; the clock then runs from `time`, `used` seconds spent
        client.log_event(topic, {"event": "resumed" if used else "started", "worker": worker.address,
                                 "time": time.time(), "used": used, "memory_limit": memory_limit,
                                 # whose exit status the nanny (if any) will report: worker_exits
                                 "host": socket.gethostname(), "pid": os.getpid(), "nanny": worker.nanny is not None})

    def expired():
        client.log_event(topic, {"event": "timeout", "worker": worker.address, "seconds": seconds,
                                 "running": running_user_code(thread)})

    return fn(item, Limit(seconds, entered, expired, alarm))


def _evidence(client, start: dict, watched: bool) -> tuple[dict | None, int | None]:
    """Client side: the nannies' word on how the worker that ran `start`'s item ended: its memory
    event and its exit status (negative: a signal), each None when none arrived in time."""
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
            name = f"signal {-exitcode}"
        how = f"it was killed by {name}: " + ("a kill from outside (a person, or the system out of memory)"
                                              if exitcode in KILLS else "a crash of the interpreter or of native code")
    return f"its worker process died while checking it ({how}); the worker was replaced"


def _timed_out(seconds: float, running: str = "") -> Outcome:
    return Outcome("timeout", seconds=seconds, message=f"did not finish within the {seconds:g} s limit (--timeout)"
                   f"{'; it was running ' + running if running else ''}; its worker was stopped and replaced")


def _classify(client, topic: str, seconds: float, attempt: int, watched: bool) -> Outcome | None:
    """Client side: why an item's worker died; None when it died before the item started (submit it again).
    `watched`: the nannies report exit statuses (worker_exits.ExitWatch is registered)."""
    from dask.utils import format_bytes

    events = [msg for _, msg in client.get_events(topic)]
    if timeouts := [m for m in events if m.get("event") == "timeout"]:  # `running`: the user's class and method
        return _timed_out(seconds, timeouts[-1].get("running", ""))
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
        timed_out = start["used"] + time.time() - start["time"] >= seconds
    else:
        timed_out = exitcode in TIMED_OUT
    return _timed_out(seconds) if timed_out else Outcome("crashed", message=_death(exitcode))


def _watch_exits(client) -> bool:
    """Have every nanny of the cluster report its worker processes' exit statuses (worker_exits);
    False when that could not be set up (the clock then tells a crash from a timeout)."""
    from parity.grading.worker_exits import ExitWatch

    try:
        client.register_plugin(ExitWatch())
    except Exception:  # a nanny that cannot load the plugin (another keras-parity there, say) is no reason to stop
        return False
    return True


def run_all(client, fn: Callable, items: Sequence, seconds: float) -> Iterator[tuple[int, Outcome]]:
    """Run `fn(item, limit)` for every item on the cluster; yield (index, Outcome) as each finishes.

    `fn` must be importable by the workers (a module-level function) and times the code it does not
    trust with `with limit:`; work outside such blocks (a shared warm-up) counts against no item.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    run = uuid.uuid4().hex[:12]
    watched = _watch_exits(client)

    def submit(index: int, attempt: int):
        return client.submit(_attempt, fn, items[index], seconds, f"{TOPIC}-{run}-{index}", pure=False,
                             key=f"keras-parity-{run}-{index}-{attempt}")

    futures = {submit(i, 0): (i, 0) for i in range(len(items))}
    pending = as_completed(list(futures))
    for future in pending:
        index, attempt = futures.pop(future)
        topic = f"{TOPIC}-{run}-{index}"
        outcome = None
        if future.status == "finished":
            value = future.result()
            outcome = Outcome("done", value) if not (isinstance(value, str) and value == _REFUSED) else \
                _classify(client, topic, seconds, ATTEMPTS, watched)
        else:
            error = future.exception()
            if isinstance(error, KilledWorker):
                outcome = _classify(client, topic, seconds, attempt, watched)
            else:  # raised by our own code around the item: a defect of keras-parity, reported on its row
                outcome = Outcome("crashed", message=f"the check raised {type(error).__name__}: {error}")
        future.release()
        if outcome is None:
            again = submit(index, attempt + 1)
            futures[again] = (index, attempt + 1)
            pending.add(again)
            continue
        yield index, outcome


@contextlib.contextmanager
def cluster_client(scheduler: str | None, workers: int | None, memory_limit: str | int | None):
    """A Dask client: on a new local cluster of `workers` single-threaded worker processes with
    `memory_limit` each (Dask's "auto": the machine's memory split among them), or on the running
    cluster at `scheduler`."""
    import dask
    from distributed import Client, LocalCluster

    quiet = [logging.getLogger(name) for name in ("distributed", "tornado")]
    levels = [log.level for log in quiet]
    for log in quiet:  # a worker stopped on purpose is not news on the terminal: the gradebook says it
        log.setLevel(logging.CRITICAL)
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout=10)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ParityInputError(f"--scheduler could not reach a Dask scheduler at {scheduler} ({exc}); start one "
                                       "with `dask scheduler` and give its address, e.g. tcp://10.0.0.5:8786") from None
            with client:
                yield client
            return
        with dask.config.set(CLUSTER_CONFIG):
            # Everything listens on 127.0.0.1 only: whoever reaches a scheduler can run code on its workers.
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   memory_limit=memory_limit, dashboard_address=None, silence_logs=logging.CRITICAL,
                                   scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        with cluster, Client(cluster) as client:
            yield client
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
