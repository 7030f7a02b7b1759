"""Progress on a terminal: a bar for work in counted parts (probe chunks, submissions, runs), and a one-line
status with its elapsed time for a step that has no parts to count (importing TensorFlow, the Keras fit, the
stepping, the report and its plots).

The CLI decides whether stderr is a terminal before TensorFlow's log filter takes fd 2 (after that, fd 2 is a
pipe) and hands this the terminal's own stream; without a terminal, or with --quiet, it makes none and the
run draws nothing. Every bar and status line is erased when its step ends (tqdm's leave=False), so what
stays on the screen is the run's summary.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from typing import TextIO

__all__ = ["TerminalProgress"]

TICK_S = 0.5  # how often a status line's elapsed time is redrawn


class TerminalProgress:
    """The `progress` a door hands to the pipeline, grade and sweep: `progress(items, label, total, unit)` wraps
    an iterable in a bar; `progress.stage(label)` is a context manager that shows a status line while it lasts."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def __call__(self, items: Iterable, label: str, total: int, unit: str = "chunk") -> Iterable:
        if total < 2:
            return items
        from tqdm import tqdm

        return tqdm(items, desc=label, total=total, unit=unit, leave=False, file=self.stream, ncols=self._columns())

    def _columns(self) -> int | None:
        """The terminal's width; None (tqdm's fixed layout) where it reports none: a fresh pseudo-terminal says 0,
        and a bar 0 columns wide is drawn as nothing at all."""
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or None
        except (AttributeError, OSError, ValueError):
            return None

    @contextlib.contextmanager
    def stage(self, label: str):
        from tqdm import tqdm

        line = tqdm(total=None, desc=label, bar_format="{desc} ({elapsed})", leave=False, file=self.stream)
        done = threading.Event()

        def tick() -> None:
            while not done.wait(TICK_S):
                line.refresh()

        ticker = threading.Thread(target=tick, name="parity-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            line.close()
