"""Drive a Dropout's random draw with a mask Keras drew, without changing the class's code.

While a Dropout's forward runs in training mode, NumPy's random functions a learner draws a mask with
(`np.random.rand`, `random`, `random_sample`, `uniform`, `binomial`, and the same methods of a
`np.random.default_rng()` generator) return values that make the class keep exactly the units Keras kept:
a value near 1 where Keras kept a unit and 0 where it dropped it, so `rand(*x.shape) > ratio` keeps what
Keras kept (for `binomial(1, 1 - ratio, ...)`, the 0/1 mask itself). A draw of any other shape is left to
NumPy. `drive` then checks, from the layer's output, which units it kept: the route says whether the draw
was driven, driven with the comparison the other way round (`rand < 1 - ratio`: the values are swapped and
forward called again), or not driven (the class's own mask, recovered from its output).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Drawn", "drawn", "drive", "DRIVEN", "SWAPPED", "OWN_MASK"]

DRIVEN = "driven"  # the class kept what Keras kept
SWAPPED = "driven, comparison reversed"  # it keeps where its draw is small; driven with the values swapped
OWN_MASK = "own mask"  # its draw could not be driven: compared on the mask its output shows

_HIGH = 1.0 - 2.0 ** -20  # a uniform draw that any ratio below it keeps with `>`


@dataclass
class Drawn:
    """What a driven forward call drew: how many draws had the mask's shape, and how many were left to NumPy."""

    matched: int = 0
    other: int = 0


@contextlib.contextmanager
def drawn(keep: np.ndarray, swapped: bool = False):
    """Within the block, NumPy's uniform and binomial draws of `keep`'s shape follow `keep`."""
    keep = np.asarray(keep, dtype=bool)
    high, low = (0.0, _HIGH) if swapped else (_HIGH, 0.0)
    uniform_values = np.where(keep, high, low)
    binomial_values = (keep != swapped).astype(np.int64)
    record = Drawn()
    real = np.random.default_rng

    def shaped(values, shape, fallback):
        shape = tuple(np.atleast_1d(shape)) if shape is not None else ()
        if shape == keep.shape or (int(np.prod(shape)) == keep.size and len(shape) == 1 and keep.ndim == 1):
            record.matched += 1
            return values.reshape(shape).copy()
        record.other += 1
        return fallback()

    def rand(*shape):
        return shaped(uniform_values, shape, lambda: _real["rand"](*shape))

    def random(size=None, *args, **kwargs):
        return shaped(uniform_values, size, lambda: _real["random"](size, *args, **kwargs))

    def uniform(low_=0.0, high_=1.0, size=None):
        return shaped(uniform_values, size, lambda: _real["uniform"](low_, high_, size))

    def binomial(n, p, size=None):
        return shaped(binomial_values, size, lambda: _real["binomial"](n, p, size))

    class _Generator:
        """What `np.random.default_rng()` returns inside the block: a real generator with driven draws."""

        def __init__(self, *args, **kwargs):
            self._rng = real(*args, **kwargs)

        def random(self, size=None, *args, **kwargs):
            return shaped(uniform_values, size, lambda: self._rng.random(size, *args, **kwargs))

        def uniform(self, low_=0.0, high_=1.0, size=None):
            return shaped(uniform_values, size, lambda: self._rng.uniform(low_, high_, size))

        def binomial(self, n, p, size=None):
            return shaped(binomial_values, size, lambda: self._rng.binomial(n, p, size))

        def __getattr__(self, name):
            return getattr(self._rng, name)

    patches = {"rand": rand, "random": random, "random_sample": random, "uniform": uniform,
               "binomial": binomial, "default_rng": _Generator}
    _real = {name: getattr(np.random, name) for name in patches}
    try:
        for name, fake in patches.items():
            setattr(np.random, name, fake)
        yield record
    finally:
        for name, original in _real.items():
            setattr(np.random, name, original)


def drive(forward, x: np.ndarray, keep: np.ndarray):
    """(output, kept units, route) of `forward(x)` (a Dropout's training-mode call) driven by `keep`.

    The kept units are read from the output where x is nonzero (where x is 0 the output says nothing; there
    they are taken as Keras's). A class that keeps the complement is called again with the values swapped.
    """
    with drawn(keep):
        out = forward(x)
    seen = _kept(out, x, keep)
    if seen is not None and np.array_equal(seen, keep):
        return out, keep, DRIVEN
    if seen is not None and np.array_equal(seen, np.where(x != 0, ~keep, keep)):
        with drawn(keep, swapped=True):
            again = forward(x)
        if np.array_equal(_kept(again, x, keep), keep):
            return again, keep, SWAPPED
    return out, seen, OWN_MASK


def _kept(out, x: np.ndarray, keep: np.ndarray) -> np.ndarray | None:
    """The units an output kept (nonzero where x is nonzero; Keras's choice where x is 0); None when the output
    isn't an array of x's shape."""
    try:
        out = np.asarray(out, dtype=float)
    except (TypeError, ValueError):
        return None
    if out.shape != x.shape:
        return None
    return np.where(x != 0, out != 0, keep)
