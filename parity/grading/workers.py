"""Untrusted work on Dask workers: every item in a worker process, under a wall-clock limit, and an
outcome for every item even when its worker dies, or an error when the cluster cannot finish.

Isolation, and what it is not. An item's code runs only in a Dask worker process, never in the
process that submits the work and writes the results. An item that hangs, exits (`os._exit`),
crashes the interpreter or runs past the memory limit takes down its own worker; the worker's nanny
starts a new one, and the item becomes a `timeout` or `crashed` outcome while the other workers go
on. It is not a sandbox: workers run as the same user, with the same files and network, and one
worker process checks many items in turn, so an item that changes global state (monkeypatches
NumPy, say) can change what later items on that worker compute.

The limits: time on the worker (parity/grading/limit.py: a watchdog thread, and a kernel timer where
the platform has one), memory by the nanny's `memory_limit` (Dask ends a worker past 95% of it and
logs an event), and, from this side, a deadline on every wait (parity/grading/deadlines.py): an
overdue item's worker is stopped through its nanny, and a cluster with no worker left, or one that
makes no progress, is a ToolError (exit 3) instead of a wait without end. How a dead worker's item is
told `timeout` from `crashed`: parity/grading/outcome.py.

Dask runs a task again on another worker when its worker died (`allowed-failures`); the local
cluster sets that to 0, and on any cluster an attempt that finds that an earlier attempt of its item
already started refuses to run it again, so a hang or a crash costs one limit, once.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence

from parity.errors import ParityInputError, ToolError, first_line
from parity.grading.deadlines import RESTART_S, Deadlines
from parity.grading.limit import REFUSED, attempt
from parity.grading.outcome import ATTEMPTS, Outcome, classify, timed_out

__all__ = ["Outcome", "cluster_client", "run_all", "CLUSTER_CONFIG"]

TOPIC = "keras-parity"  # scheduler events per item: f"{TOPIC}-{run}-{index}"
POLL_S = 0.05  # the longest the wait sleeps between looks at the cluster (a finished item wakes it at once)
RESULT_S = 60.0  # to fetch a finished item's value from its worker; past it the item is waited on again
CLOSE_S = 30.0  # to close the client and the local cluster, even one whose workers are gone

# The local cluster: a task whose worker died is never retried elsewhere; a worker is stopped only at
# 95% of its memory limit (no spilling: tasks hold no data; no pausing: a paused worker would wait forever).
CLUSTER_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": False,
    "distributed.worker.memory.terminate": 0.95,
}


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
    At most one item per worker thread is on the cluster at a time: Dask would otherwise queue items
    on a worker behind the one it runs, and an item queued behind a hang would wait out its limit.
    Raises ToolError when the cluster cannot finish (parity/grading/deadlines.py); the outcomes
    yielded until then stand.
    """
    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    run = uuid.uuid4().hex[:12]
    watched = _watch_exits(client)

    def topic(index: int) -> str:
        return f"{TOPIC}-{run}-{index}"

    waiting = deque((index, 0) for index in range(len(items)))  # (index, attempt) not yet submitted, in order
    futures: dict = {}  # on the cluster: future -> (index, attempt)
    deadlines = Deadlines(client, seconds, topic)
    pending = as_completed()

    def fill() -> None:
        while waiting and len(futures) < deadlines.threads:
            index, attempt_no = waiting.popleft()
            future = client.submit(attempt, fn, items[index], seconds, topic(index), pure=False,
                                   key=f"keras-parity-{run}-{index}-{attempt_no}")
            futures[future] = (index, attempt_no)
            pending.add(future)

    fill()
    while futures or waiting:
        for index, worker, where in deadlines.overdue(lambda: {f.key: i for f, (i, _) in futures.items()}):
            outcome = _stop(client, deadlines, topic(index), index, worker, where, seconds)
            if outcome is not None:  # its worker could not be stopped: the item is given up, its future let go
                future = next(f for f, (i, _) in futures.items() if i == index)
                del futures[future]
                future.cancel()
                deadlines.settled(index)
                yield index, outcome
        fill()  # workers may have joined
        if not pending.has_ready():
            with pending.thread_condition:  # woken as soon as one finishes
                pending.thread_condition.wait(timeout=POLL_S)
            continue
        for future in pending.next_batch(block=False):
            if future not in futures:  # given up on above
                continue
            index, attempt_no = futures[future]
            outcome = None
            if future.status == "finished":
                try:
                    value = future.result(timeout=RESULT_S)
                except TimeoutError:  # its worker died before handing it over: Dask runs it again
                    pending.add(future)
                    continue
                outcome = Outcome("done", value) if not (isinstance(value, str) and value == REFUSED) else \
                    classify(client, topic(index), seconds, ATTEMPTS, watched)
            elif future.status == "cancelled":
                raise ToolError("the Dask scheduler dropped the work (it restarted, or this process lost its "
                                "connection to it)")
            else:
                error = future.exception(timeout=RESULT_S)
                if isinstance(error, KilledWorker):
                    outcome = classify(client, topic(index), seconds, attempt_no, watched)
                else:  # raised by our own code around the item: a defect of keras-parity, reported on its row
                    outcome = Outcome("crashed", message=f"the check raised {type(error).__name__}: {error}")
            del futures[future]
            future.release()
            deadlines.progressed()
            deadlines.settled(index)
            if outcome is None:  # its worker died before it started: first in line again
                waiting.appendleft((index, attempt_no + 1))
            else:
                yield index, outcome
            fill()


def _stop(client, deadlines: Deadlines, topic: str, index: int, worker: str, where: str,
          seconds: float) -> Outcome | None:
    """Stop the worker of an overdue item through its nanny; the item's outcome when that failed (no
    nanny, or one that did not answer), else None (its future then ends as its worker's death)."""
    if not deadlines.still_late(index):  # it moved on meanwhile: a new clock, not a late one
        return None
    client.log_event(topic, {"event": "timeout", "by": where, "seconds": seconds, "untimed_s": deadlines.untimed_s})
    try:
        stopped = client.restart_workers([worker], timeout=RESTART_S, raise_for_error=False).get(worker) == "OK"
    except Exception:  # the scheduler could not reach it
        stopped = False
    deadlines.settled(index)
    if stopped:
        return None
    return timed_out(seconds, where, deadlines.untimed_s, stopped=False)


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
            try:
                yield client
            finally:
                client.close(timeout=CLOSE_S)
            return
        with dask.config.set(CLUSTER_CONFIG):
            try:  # everything listens on 127.0.0.1 only: whoever reaches a scheduler can run code on its workers
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       memory_limit=memory_limit, dashboard_address=None,
                                       silence_logs=logging.CRITICAL, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
            except Exception as exc:  # no worker process could be started: nothing was graded, nothing is written
                raise ToolError(f"could not start a local Dask cluster of {workers or 'one per core'} worker processes "
                                f"({first_line(exc, 200, type(exc).__name__)})") from None
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close(timeout=CLOSE_S)
        finally:
            cluster.close(timeout=CLOSE_S)
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)
