"""How a Dask worker process ended, as its nanny saw it: the exit status, or the signal that ended it.

Dask has no hook on a worker process's end, but its nanny logs a line for every worker process that
ends with a non-zero status ("Worker process 1234 exited with status 3", "Worker process 1234 was
killed by signal 14": distributed/nanny.py, `WorkerProcess._death_message`, at INFO on the
"distributed.nanny" logger). `ExitWatch`, a nanny plugin the client registers, reads those lines and
logs `{"host", "pid", "exitcode"}` under EXIT_TOPIC at the scheduler (exitcode negative for a signal,
as multiprocessing gives it); the client matches it with the host and pid its item's worker recorded.
A process that exits with status 0 leaves no line, and a worker without a nanny has no one to tell:
for those nothing arrives, and so does nothing when the line's wording changes in a later Dask.
"""

from __future__ import annotations

import logging
import re
import socket

from distributed.core import Status
from distributed.diagnostics.plugin import NannyPlugin

__all__ = ["EXIT_TOPIC", "ExitWatch", "exit_event"]

EXIT_TOPIC = "keras-parity-worker-exit"
NANNY_LOGGER = "distributed.nanny"
_DEATH = re.compile(r"Worker process (\d+) (exited with status|was killed by signal) (\d+)")


def exit_event(line: str) -> dict | None:
    """The event for one of the nanny's death lines; None for any other line."""
    found = _DEATH.fullmatch(line)
    if found is None:
        return None
    pid, how, number = found.groups()
    return {"host": socket.gethostname(), "pid": int(pid),
            "exitcode": int(number) if how.startswith("exited") else -int(number)}


class _DeathLines(logging.Filter):
    """On the nanny logger of a process that runs nannies: each death line becomes an event at each
    scheduler those nannies serve. Every record then goes on to the logger's handlers as the logger's
    own level would have let it (the watch lowers that level to INFO to see the lines)."""

    def __init__(self, logger: logging.Logger):
        super().__init__()
        self.logger, self.level, self.nannies = logger, logger.level, []

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            event = exit_event(record.getMessage())
            if event is not None:
                # One nanny per scheduler (a local cluster runs all its nannies in one process), on its own loop.
                for nanny in {n.scheduler_addr: n for n in self.nannies if n.status == Status.running}.values():
                    nanny.loop.add_callback(_tell, nanny, event)
        except Exception:  # a logging filter must not raise; without the event the client falls back
            pass
        return record.levelno >= (self.level or self.logger.parent.getEffectiveLevel())


def _tell(nanny, event: dict) -> None:
    try:
        nanny.log_event(EXIT_TOPIC, event)
    except Exception:  # the nanny closed meanwhile
        pass


_WATCH: _DeathLines | None = None  # this process's one filter, shared by its nannies


class ExitWatch(NannyPlugin):
    """Tells the scheduler how each of this nanny's worker processes ended (EXIT_TOPIC)."""

    name = "keras-parity-exit-watch"
    idempotent = True  # registered by every grade or sweep on a cluster: once is enough

    def setup(self, nanny) -> None:
        global _WATCH
        if _WATCH is None:
            logger = logging.getLogger(NANNY_LOGGER)
            _WATCH = _DeathLines(logger)
            logger.addFilter(_WATCH)
            if logger.level == logging.NOTSET or logger.level > logging.INFO:
                logger.setLevel(logging.INFO)
        if nanny not in _WATCH.nannies:
            _WATCH.nannies.append(nanny)

    def teardown(self, nanny) -> None:
        global _WATCH
        if _WATCH is None or nanny not in _WATCH.nannies:
            return
        _WATCH.nannies.remove(nanny)
        if not _WATCH.nannies:
            _WATCH.logger.removeFilter(_WATCH)
            _WATCH.logger.setLevel(_WATCH.level)
            _WATCH = None
