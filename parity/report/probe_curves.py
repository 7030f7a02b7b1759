"""The probe, reduced to what the plots draw, accumulated chunk by chunk in bounded memory (NumPy only).

Up to EXACT_LIMIT probed samples are kept one by one (one bin per sample, in order of x); above it
the probe is aggregated as it streams in: BINS bins along x (or along the sample order), each
holding its largest gradient difference, its counts per unit (dead, dW where it should not be) and its summed
predictions, plus a fixed sample of points for scatter plots. Ten million samples then plot as
fast, and as readably, as ten thousand. Kept apart from the drawing so that a run without plots,
or a test, never imports matplotlib.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BINS", "EXACT_LIMIT", "SCATTER_POINTS", "ProbeCurves", "gradient_flowed"]

EXACT_LIMIT = 10_000
BINS = 500
SCATTER_POINTS = 5_000


def gradient_flowed(trace, layer: int) -> np.ndarray | None:
    """(n, units) whether the unit's weights got gradient on that side: some entry of its column of dW is not 0 (and finite).

    A unit dead on a sample (z <= 0) passes no gradient back, so every entry of its kernel column dW[:, j]
    is exactly 0 there. Unlike the dead mask (z <= 0, which both sides compute from the same z), dW comes
    from each side's own backward: a Relu that forgets its mask shows here.
    """
    dW = trace.grads.get(f"W{layer}")
    if dW is None:
        return None
    with np.errstate(invalid="ignore"):
        return (np.isfinite(dW) & (dW != 0)).any(axis=1)  # (n, in, units) -> (n, units)


def _per_bin(b: np.ndarray, values: np.ndarray, bins: int) -> np.ndarray:
    """(bins, units) sums of `values` (rows, units) by bin: one bincount for all units."""
    units = values.shape[1]
    index = (b[:, None] * units + np.arange(units)).ravel()
    return np.bincount(index, weights=values.ravel().astype(np.float64), minlength=bins * units).reshape(bins, units)


class ProbeCurves:
    """Per bin along x (or the sample order): gradient differences, dead counts and where dW disagrees with them, predictions."""

    def __init__(self, data, spec):
        n = len(data)
        self.one_d = spec.input_dim == 1
        self.exact = n <= EXACT_LIMIT
        key = data.x[:, 0] if self.one_d else np.arange(n, dtype=np.float64)
        if self.exact:  # one bin per sample, in order of x
            self.bin = np.empty(n, dtype=np.int64)
            self.bin[np.argsort(key, kind="stable")] = np.arange(n)
            bins = n
        else:
            edges = np.linspace(key.min(), key.max(), BINS + 1)
            self.bin = np.clip(np.searchsorted(edges, key, side="right") - 1, 0, BINS - 1)
            bins = BINS
        self.count = np.bincount(self.bin, minlength=bins).astype(np.float64)
        self.centre = np.bincount(self.bin, weights=key, minlength=bins) / np.maximum(self.count, 1)
        self.bins = bins
        self.grad_max: dict[str, np.ndarray] = {}
        self.dead: dict[tuple[int, str], np.ndarray] = {}  # (layer, side) -> (bins, units) dead counts
        # (layer, side) -> (bins, units) counts of samples where a dead unit's dW was not 0 (leak), and where
        # a live unit's dW was 0 (blocked): with correct layers, leak is always 0
        self.leak: dict[tuple[int, str], np.ndarray] = {}
        self.blocked: dict[tuple[int, str], np.ndarray] = {}
        self.pred: dict[str, np.ndarray] = {}  # side -> (bins, outputs) sums
        self.points = np.unique(np.linspace(0, n - 1, min(n, SCATTER_POINTS)).astype(np.int64))
        self.point_class: dict[str, np.ndarray] = {}

    def add(self, part) -> None:
        b = self.bin[part.rows]
        order = np.argsort(b, kind="stable")  # per-bin maxima by reduceat over rows sorted by bin
        present, starts = np.unique(b[order], return_index=True)
        for name, d in part.diffs.items():
            if d.kind == "gradient":
                acc = self.grad_max.setdefault(name, np.zeros(self.bins))
                acc[present] = np.maximum(acc[present], np.maximum.reduceat(d.max_abs[order], starts))
        for layer, dead in part.dead_keras.items():  # ReLU layers
            for side, mask, trace in (("numpy", part.dead_numpy[layer], part.numpy), ("keras", dead, part.keras)):
                self._accumulate(self.dead, (layer, side), b, mask)
                flowed = gradient_flowed(trace, layer)
                if flowed is not None:
                    self._accumulate(self.leak, (layer, side), b, mask & flowed)
                    self._accumulate(self.blocked, (layer, side), b, ~mask & ~flowed)
        picked = np.isin(part.rows, self.points)
        for side, trace in (("numpy", part.numpy), ("keras", part.keras)):
            self._accumulate(self.pred, side, b, trace.pred)
            cls = self.point_class.setdefault(side, np.full(len(self.points), -1))
            cls[np.searchsorted(self.points, part.rows[picked])] = trace.pred[picked].argmax(axis=1)

    def _accumulate(self, into: dict, key, b: np.ndarray, values: np.ndarray) -> None:
        acc = into.setdefault(key, np.zeros((self.bins, values.shape[1])))
        acc += _per_bin(b, values, self.bins)

    def filled(self) -> np.ndarray:
        return self.count > 0
