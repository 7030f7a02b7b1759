"""A second process that draws some of a report's pictures while the run's own process draws the rest.

matplotlib holds the GIL while it draws, so threads cannot share that work; a second interpreter can,
on a second core. The CLI starts one before TensorFlow loads (`PlotWorker.start`), so its own imports
(NumPy, matplotlib) and a warm-up drawing happen while the run imports TensorFlow and fits. It then
waits for one job, a pickled (names, result, curves), and answers with each picture's PNG bytes.

It never writes a file: the run writes every picture itself, inside its atomic report folder, so a
run stopped at any moment leaves nothing of the worker's. A worker that is missing, died, is slow or
answers with an error costs only time: the run draws those pictures itself (parity.report.plots.draw_all).
It runs in a session of its own, so a Ctrl-C at the terminal reaches the run alone, which ends it;
a run killed outright closes the worker's stdin, and the worker exits at end of input.

PARITY_PLOT_WORKER=0 turns it off: every picture is then drawn in the run's own process.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["PlotWorker", "ANSWER_TIMEOUT_S"]

ANSWER_TIMEOUT_S = 120.0  # past this the run stops waiting and draws the worker's share itself


class PlotWorker:
    """A started worker process; `draw` hands it one job, `close` ends it (always call it)."""

    def __init__(self, process: subprocess.Popen):
        self._process = process
        self._pool: ThreadPoolExecutor | None = None

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

    def draw(self, names: list[str], result, curves) -> Future:
        """Start drawing `names`; the Future gives {name: PNG bytes, or None where it does not apply} for
        what the worker delivered: {} when it failed in any way."""
        try:
            job = pickle.dumps((names, result, curves), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # something in the result that does not pickle: the run draws it all itself
            done: Future = Future()
            done.set_result({})
            return done
        self._pool = ThreadPoolExecutor(max_workers=1)
        return self._pool.submit(self._exchange, job, names)

    def _exchange(self, job: bytes, names: list[str]) -> dict:
        try:
            out, _ = self._process.communicate(job, timeout=ANSWER_TIMEOUT_S)
            answer = pickle.loads(out)  # our own child's answer, built by main() below
        except Exception:
            self.close()
            return {}
        if not isinstance(answer, dict) or set(answer) - set(names):
            return {}
        return {name: png for name, png in answer.items() if png is None or isinstance(png, bytes)}

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
        if self._pool is not None:
            self._pool.shutdown(wait=False)


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


def main() -> int:
    from parity.report import plots

    _warm_up()
    job = sys.stdin.buffer.read()
    if not job:  # the run ended without pictures, or before it had them
        return 0
    names, result, curves = pickle.loads(job)  # from the run that started this process
    answer = plots.draw(names, result, curves)
    sys.stdout.buffer.write(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
