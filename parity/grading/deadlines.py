"""Client side of a grade or sweep: nothing waits on the workers forever.

Checked once a TICK_S while the grader waits, each against a deadline derived from the per-item
time limit (`seconds`):

- **an item in flight**: its worker records when each of the item's timed blocks starts and ends
  (parity/grading/limit.py). Inside a block it must be done within what is left of its limit plus
  OVERDUE_S (the worker's own watchdog and kernel timer act before that); outside one (the Keras
  warm-up, writing its report: the grader's own work) within `untimed_s`, the larger of
  UNTIMED_MIN_S and UNTIMED_PER_LIMIT times the limit. An item past its deadline is overdue: the
  grader stops its worker from outside, through the worker's nanny. That is also how a worker without
  a kernel timer (Windows) is stopped when the item holds the GIL;
- **the cluster**: no worker connected for NO_WORKER_S (every worker process died, and no nanny
  started a new one), or no item started, moved on or finished for `stall_s` (the longest any single
  item may legitimately go without doing either, plus the time to restart a worker) is a ToolError:
  keras-parity cannot finish the work on this cluster.

The clocks run on this process's monotonic clock, from the moment the grader first sees each event,
never on a worker's wall clock, so they hold across machines whose clocks disagree (a deadline read
late is later, never earlier).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from parity.errors import ToolError

__all__ = ["Deadlines", "TICK_S", "OVERDUE_S", "NO_WORKER_S", "RESTART_S"]

TICK_S = 1.0  # how often the grader looks at the cluster while it waits
OVERDUE_S = 15.0  # past an item's limit: the kernel timer's 5 s grace, then time for the death to reach the grader
UNTIMED_MIN_S, UNTIMED_PER_LIMIT = 300.0, 10.0  # the grader's own work around one item (a Keras warm-up: 20-60 s)
NO_WORKER_S = 60.0  # a nanny restarts its dead worker in seconds (tens on a loaded machine)
RESTART_S = 30.0  # for a nanny to stop an overdue worker and start another
CLOCK_EVENTS = ("started", "resumed", "left", "timeout")


class Deadlines:
    """When each item in flight must be done by, and whether the cluster still works at all."""

    def __init__(self, client, seconds: float, topic: Callable[[int], str]):
        self.client, self.seconds, self.topic = client, seconds, topic
        self.untimed_s = max(UNTIMED_MIN_S, UNTIMED_PER_LIMIT * seconds)
        self.stall_s = max(seconds + OVERDUE_S, self.untimed_s) + RESTART_S + NO_WORKER_S
        self._clocks: dict[int, tuple[int, float, str]] = {}  # index -> (events seen, deadline, "timed"/"untimed")
        now = time.monotonic()
        self._progress_at, self._no_worker_since, self._next = now, None, now + TICK_S
        self.threads = self._threads()  # how many items the cluster can run at once now

    def _threads(self) -> int:
        return sum(self.client.nthreads().values())

    def progressed(self) -> None:
        """An item finished (or settled): the cluster works."""
        self._progress_at = time.monotonic()

    def settled(self, index: int) -> None:
        self._clocks.pop(index, None)

    def events(self, index: int) -> list[dict]:
        return [m for _, m in self.client.get_events(self.topic(index)) if m.get("event") in CLOCK_EVENTS]

    def overdue(self, in_flight: Callable[[], dict[str, int]]) -> list[tuple[int, str, str]]:
        """Once a TICK_S: (index, worker address, "timed"/"untimed") for each item past its deadline;
        `in_flight()` maps each unsettled future's key to its item's index. Raises ToolError when the
        cluster has had no worker for NO_WORKER_S or made no progress for `stall_s`."""
        now = time.monotonic()
        if now < self._next:
            return []
        self._next = now + TICK_S
        self.threads = self._threads()
        processing = self.client.processing()  # worker -> the keys it runs
        if not self.threads:
            self._no_worker_since = self._no_worker_since or now
            if now - self._no_worker_since >= NO_WORKER_S:
                raise ToolError(f"the Dask cluster has had no worker for {NO_WORKER_S:g} s: its worker processes "
                                "died and none was started again")
            return []
        self._no_worker_since = None
        late, index_of = [], in_flight()
        for worker, keys in processing.items():
            for key in keys:
                index = index_of.get(key)
                if index is None:  # another client's task
                    continue
                events = self.events(index)
                seen = self._clocks.get(index)
                if events and (seen is None or seen[0] != len(events)):  # the item moved on: its clock starts anew
                    self._clocks[index] = (len(events), *self._deadline(events[-1], now))
                    self._progress_at = now
                    seen = self._clocks[index]
                if seen is not None and now > seen[1]:
                    late.append((index, worker, seen[2]))
        if now - self._progress_at >= self.stall_s:
            workers = f"{len(processing)} worker{'s' * (len(processing) != 1)}"  # each connected worker is a key
            raise ToolError(f"no check started, moved on or finished for {self.stall_s:g} s while the Dask cluster "
                            f"had {workers} connected: the cluster is stuck")
        return late

    def _deadline(self, last: dict, now: float) -> tuple[float, str]:
        if last["event"] == "left":
            return now + self.untimed_s, "untimed"
        if last["event"] == "timeout":  # the watchdog fired: the process ends now
            return now + OVERDUE_S, "timed"
        return now + max(self.seconds - last.get("used", 0.0), 0.0) + OVERDUE_S, "timed"

    def still_late(self, index: int) -> bool:
        """Just before the grader stops a worker: the item has not moved on since it was found late."""
        seen = self._clocks.get(index)
        return seen is not None and len(self.events(index)) == seen[0]
