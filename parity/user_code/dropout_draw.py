"""Drive a Dropout's random draw with a mask Keras drew, without changing the class's code.

While a Dropout's forward runs in training mode, the NumPy draws a learner makes a mask with return values that
make the class keep exactly the units Keras kept: a uniform draw (`np.random.rand`, `random`, `random_sample`,
`uniform`) gives a value near 1 where Keras kept a unit and 0 where it dropped it, so `rand(*x.shape) > ratio`
keeps what Keras kept; `binomial(1, 1 - ratio, ...)` gives the 0/1 mask itself; `choice(two values, ...)` the
second value where kept. The same methods are driven on a generator the class makes in forward
(`np.random.default_rng()`) and on one it holds (`self.rng = np.random.default_rng(0)` or a RandomState, made in
its constructor: pass the layer as `holder`). A draw of any other shape is left to NumPy. (`np.random.RandomState`
itself stays NumPy's class: default_rng checks its seed against it.)

`drive` then checks, from the layer's output, which units it kept: the route says whether the draw was driven,
driven with the comparison the other way round (`rand < 1 - ratio`: the values are swapped and forward called
again), or not driven (a `randn` draw, say: the class's own mask, recovered from its output).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Drawn", "drawn", "drive", "DRIVEN", "SWAPPED", "OWN_MASK", "DRIVEN_DRAWS"]

DRIVEN = "driven"  # the class kept what Keras kept
SWAPPED = "driven, comparison reversed"  # it keeps where its draw is small; driven with the values swapped
OWN_MASK = "own mask"  # its draw could not be driven: compared on the mask its output shows

_HIGH = 1.0 - 2.0 ** -20  # a uniform draw that any ratio below it keeps with `>`
# The draws driven, in np.random and on a generator (Generator or RandomState), for the README and the tests.
DRIVEN_DRAWS = ("rand", "random", "random_sample", "uniform", "binomial", "choice")
_GENERATORS = (np.random.Generator, np.random.RandomState)


@dataclass
class Drawn:
    """What a driven forward call drew: how many draws had the mask's shape, and how many were left to NumPy."""

    matched: int = 0
    other: int = 0


class _Values:
    """The values each kind of draw returns for `keep`, and the count of draws matched and left to NumPy."""

    def __init__(self, keep: np.ndarray, swapped: bool, record: Drawn):
        self.keep, self.swapped, self.record = keep, swapped, record
        high, low = (0.0, _HIGH) if swapped else (_HIGH, 0.0)
        self.uniform = np.where(keep, high, low)
        self.binomial = (keep != swapped).astype(np.int64)

    def shaped(self, values, shape, fallback):
        shape = tuple(np.atleast_1d(shape)) if shape is not None else ()
        keep = self.keep
        if shape == keep.shape or (int(np.prod(shape)) == keep.size and len(shape) == 1 and keep.ndim == 1):
            self.record.matched += 1
            return values.reshape(shape).copy()
        self.record.other += 1
        return fallback()

    def choice(self, a, size, fallback):
        """choice between two values: the second where kept (the first when swapped)."""
        options = np.arange(a) if np.ndim(a) == 0 and isinstance(a, (int, np.integer)) else np.asarray(a)
        if options.ndim != 1 or options.size != 2:
            self.record.other += 1
            return fallback()
        picked = np.where(self.keep != self.swapped, options[1], options[0])
        return self.shaped(picked, size, fallback)


class _Driven:
    """A generator (Generator or RandomState) whose mask-shaped draws follow the mask; anything else is its own."""

    def __init__(self, rng, values: _Values):
        self._rng, self._values = rng, values

    def random(self, size=None, *args, **kwargs):
        return self._values.shaped(self._values.uniform, size, lambda: self._rng.random(size, *args, **kwargs))

    def random_sample(self, size=None):
        return self._values.shaped(self._values.uniform, size, lambda: self._rng.random_sample(size))

    def rand(self, *shape):
        return self._values.shaped(self._values.uniform, shape, lambda: self._rng.rand(*shape))

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._values.shaped(self._values.uniform, size, lambda: self._rng.uniform(low, high, size))

    def binomial(self, n, p, size=None):
        return self._values.shaped(self._values.binomial, size, lambda: self._rng.binomial(n, p, size))

    def choice(self, a, size=None, *args, **kwargs):
        return self._values.choice(a, size, lambda: self._rng.choice(a, size, *args, **kwargs))

    def __getattr__(self, name):
        return getattr(self._rng, name)


@contextlib.contextmanager
def drawn(keep: np.ndarray, swapped: bool = False, holder=None):
    """Within the block, NumPy's uniform, binomial and two-valued choice draws of `keep`'s shape follow `keep`: those
    of np.random, of a generator made in the block, and of one `holder` (the layer) keeps as an attribute."""
    keep = np.asarray(keep, dtype=bool)
    record = Drawn()
    values = _Values(keep, swapped, record)
    real = {name: getattr(np.random, name) for name in (*DRIVEN_DRAWS, "default_rng")}
    module = _Driven(np.random.mtrand._rand, values)  # the draws of np.random's own global state

    patches = {name: getattr(module, name) for name in DRIVEN_DRAWS}
    patches["default_rng"] = lambda *args, **kwargs: _Driven(real["default_rng"](*args, **kwargs), values)
    held = getattr(holder, "__dict__", None)
    if isinstance(held, dict) and "__wrapped__" in held:  # a wrapper (numpy_side.dropout_convention): the layer's own
        held = getattr(held["__wrapped__"], "__dict__", None)
    kept = {k: v for k, v in held.items() if isinstance(v, _GENERATORS)} if isinstance(held, dict) else {}
    try:
        for name, fake in patches.items():
            setattr(np.random, name, fake)
        for name, rng in kept.items():
            held[name] = _Driven(rng, values)
        yield record
    finally:
        for name, original in real.items():
            setattr(np.random, name, original)
        for name, rng in kept.items():
            held[name] = rng


def drive(forward, x: np.ndarray, keep: np.ndarray, holder=None):
    """(output, kept units, route) of `forward(x)` (a Dropout's training-mode call) driven by `keep`; `holder` is
    the layer, whose own generators are driven too.

    The kept units are read from the output where x is nonzero (where x is 0 the output says nothing; there
    they are taken as Keras's). A class that keeps the complement is called again with the values swapped.
    """
    with drawn(keep, holder=holder):
        out = forward(x)
    seen = _kept(out, x, keep)
    if seen is not None and np.array_equal(seen, keep):
        return out, keep, DRIVEN
    if seen is not None and np.array_equal(seen, np.where(x != 0, ~keep, keep)):
        with drawn(keep, swapped=True, holder=holder):
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
