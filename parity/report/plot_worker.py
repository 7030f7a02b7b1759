"""A second process that draws a report's pictures while the run's own process works.

matplotlib holds the GIL while it draws, so threads cannot share that work; a second interpreter can,
on a second core. The CLI starts one before TensorFlow loads (`PlotWorker.start`), so its own imports
(NumPy, matplotlib) and a warm-up drawing happen while the run imports TensorFlow and fits. It is handed
pictures as soon as what they read exists: the probe's pictures while the run steps, the rest once the run's
phases are final. It draws them one at a time, the most costly first (parity.report.pictures.BY_COST), says
when it starts each, and answers each with its PNG bytes as it is done.

The run takes back the cheapest picture the worker has not started (`claim`) and draws it itself, while the
worker goes on with the costly ones: the two processes end together, whatever the machine's load and whichever
pictures apply. The worker skips a picture claimed before it started it.

Messages both ways are pickles, each after its length (8 bytes, big-endian): to the worker ("draw",
names, result, curves) and ("claim", name); back (name, STARTED) as it starts one, then (name, PNG bytes,
None where the picture does not apply, SKIPPED or FAILED). It never writes a file: the run writes every picture itself, inside its
atomic report folder, so a run stopped at any moment leaves nothing of the worker's. A worker that is
missing, died, is slow or fails costs only time: the run draws what it owes (parity.report.plots.draw_all).
It runs in a session of its own, so a Ctrl-C at the terminal reaches the run alone, which ends it; a run
killed outright closes the worker's stdin, and the worker exits at end of input.

PARITY_PLOT_WORKER=0 turns it off: every picture is then drawn in the run's own process.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from parity.report.pictures import BY_COST

__all__ = ["PlotWorker", "ANSWER_TIMEOUT_S", "SKIPPED", "FAILED", "STARTED"]

ANSWER_TIMEOUT_S = 120.0  # past this without an answer the run stops waiting and draws what the worker owes
SKIPPED, FAILED = "skipped", "failed"  # a claimed picture the worker did not draw; one its drawing raised on
STARTED = "started"  # said as the worker starts a picture: the run no longer takes that one back
_LENGTH = 8


def _by_cost(names) -> list:
    """`names` (or (name, ...) tuples) most costly first, as both processes order what the worker is to draw."""
    rank = {name: k for k, name in enumerate(BY_COST)}
    return sorted(names, key=lambda n: rank.get(n if isinstance(n, str) else n[0], len(rank)))


def _send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(_LENGTH, "big") + data)
    stream.flush()


def _receive(stream):
    """The next message, or None at end of input (or a message cut short)."""
    head = stream.read(_LENGTH)
    if len(head) < _LENGTH:
        return None
    size = int.from_bytes(head, "big")
    data = stream.read(size)
    return pickle.loads(data) if len(data) == size else None  # our own process's messages


class PlotWorker:
    """A started worker process: `draw` hands it pictures, `claim` takes one back, `waiting`, `drawing`, `owed` and
    `wait` follow it, `delivered` gives what it drew; `close` ends it (always call it)."""

    def __init__(self, process: subprocess.Popen):
        self._process = process
        self._changed = threading.Condition()
        self._handed: list[str] = []  # in the worker's order
        self._claimed: set[str] = set()
        self._started: list[str] = []  # in the order the worker started them
        self._answers: dict[str, object] = {}
        self._dead = False
        self._sender = ThreadPoolExecutor(max_workers=1)  # a job of many MB never holds up the run
        self._reader = threading.Thread(target=self._read, name="parity-plot-answers", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls) -> "PlotWorker | None":
        """A worker, or None where one would not help (one core, PARITY_PLOT_WORKER=0) or cannot start."""
        if os.environ.get("PARITY_PLOT_WORKER") == "0" or len(os.sched_getaffinity(0)) < 2:
            return None
        try:
            # -P: not the current folder on the path, where a user's own parity.py could stand in for ours.
            process = subprocess.Popen([sys.executable, "-P", "-m", "parity.report.plot_worker"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError:
            return None
        return cls(process)

    @property
    def handed(self) -> list[str]:
        with self._changed:
            return list(self._handed)

    def draw(self, names: list[str], result, curves) -> bool:
        """Hand the worker `names` (those not handed before) to draw from `result` after what it has; False
        when nothing was handed (something in the result does not pickle, or the worker is gone)."""
        with self._changed:
            names = [name for name in names if name not in self._handed]
            if not names or self._dead:
                return False
        try:
            job = pickle.dumps(("draw", names, result, curves), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # something in the result that does not pickle: the run draws it all itself
            return False
        with self._changed:
            self._handed += names
        self._sender.submit(self._write, job)
        return True

    def claim(self, name: str) -> bool:
        """Take `name` back: the run draws it. False where the worker already answered it."""
        with self._changed:
            if name in self._answers or name not in self._handed:
                return False
            self._claimed.add(name)
        self._sender.submit(self._write, pickle.dumps(("claim", name), protocol=pickle.HIGHEST_PROTOCOL))
        return True

    def owed(self) -> list[str]:
        """The pictures the worker still owes (handed, neither answered nor claimed), most costly first; none once it
        is gone."""
        with self._changed:
            if self._dead:
                return []
            return _by_cost(n for n in self._handed if n not in self._answers and n not in self._claimed)

    def waiting(self) -> list[str]:
        """What the worker owes and has not started, most costly first: the last is the one the run takes back."""
        with self._changed:
            return [n for n in self.owed() if n not in self._started]

    def drawing(self) -> list[str]:
        """What the worker has started and not answered yet (one picture, or none)."""
        with self._changed:
            return [n for n in self.owed() if n in self._started]

    def wait(self, timeout: float = ANSWER_TIMEOUT_S) -> bool:
        """Wait for the worker's next word, an answer or a start (or its end); False when none came within `timeout`
        seconds."""
        with self._changed:
            now = lambda: (len(self._answers), len(self._started), self._dead)  # noqa: E731
            before = now()
            return self._changed.wait_for(lambda: now() != before, timeout)

    def delivered(self) -> dict[str, bytes | None]:
        """{name: PNG bytes, or None where the picture does not apply} for what the worker drew and the run did not
        claim."""
        with self._changed:
            return {name: png for name, png in self._answers.items()
                    if name not in self._claimed and (png is None or isinstance(png, bytes))}

    def _write(self, data: bytes) -> None:
        try:
            self._process.stdin.write(len(data).to_bytes(_LENGTH, "big") + data)
            self._process.stdin.flush()
        except (OSError, ValueError):  # the worker died, or was closed: the run draws what it owed
            self._gone()

    def _read(self) -> None:
        while True:
            try:
                answer = _receive(self._process.stdout)
            except Exception:
                answer = None
            if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], str)):
                self._gone()
                return
            name, png = answer
            with self._changed:
                if name in self._handed and png == STARTED:
                    self._started.append(name)
                elif name in self._handed:
                    self._answers[name] = png
                self._changed.notify_all()

    def _gone(self) -> None:
        with self._changed:
            self._dead = True
            self._changed.notify_all()

    def close(self) -> None:
        """End the worker if it still runs, and wait for it."""
        if self._process.poll() is None:
            self._process.kill()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self._process.stdin, self._process.stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self._gone()
        self._sender.shutdown(wait=False, cancel_futures=True)


def _warm_up() -> None:
    """Draw a small figure with text once: fonts found and loaded, caches filled, before the job comes."""
    from matplotlib.figure import Figure

    from parity.report.plots import png

    fig = Figure(figsize=(2, 1))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="warm")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("warm-up")
    png(fig)


def _listen(inbox: queue.Queue) -> None:
    """Read the run's messages into `inbox`, a thread of their own, so a claim arriving while a picture is drawn is
    seen before the next one; None at end of input."""
    while True:
        message = _receive(sys.stdin.buffer)
        inbox.put(message)
        if message is None:
            return


# The worker's garbage collection: what it imported and warmed up is never scanned again (gc.freeze), and the young
# generation is collected every 50,000 allocations instead of 700. A picture allocates some 10^5 short-lived objects,
# and matplotlib's Figures are cycles that only a collection frees: collections took 0.09 of the 1.6 CPU s of a
# cnn run's six pictures, 0.02 so. A Figure freed later costs only memory, a few MB, for a process that ends with the run.
_YOUNG_COLLECTED_EVERY = 50_000


def main() -> int:
    import gc

    from parity.report import plots

    _warm_up()
    gc.freeze()
    gc.set_threshold(_YOUNG_COLLECTED_EVERY, *gc.get_threshold()[1:])
    inbox: queue.Queue = queue.Queue()
    threading.Thread(target=_listen, args=(inbox,), daemon=True).start()
    pending: deque = deque()  # (name, result, curves), in the order handed
    claimed: set[str] = set()
    out = sys.stdout.buffer
    while True:
        while True:  # every message waiting, and wait for one when there is nothing to draw
            try:
                message = inbox.get(block=not pending)
            except queue.Empty:
                break
            if message is None:  # the run closed its end: nothing more is wanted
                return 0
            if message[0] == "draw":
                _, names, result, curves = message
                pending = deque(_by_cost([*pending, *((name, result, curves) for name in names)]))
            elif message[0] == "claim":
                claimed.add(message[1])
        name, result, curves = pending.popleft()
        if name in claimed:
            _send(out, (name, SKIPPED))
            continue
        _send(out, (name, STARTED))
        try:
            png = plots.draw([name], result, curves)[name]
        except Exception:  # the run draws it itself, and meets the error there
            png = FAILED
        _send(out, (name, png))


if __name__ == "__main__":
    sys.exit(main())
