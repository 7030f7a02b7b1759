"""pool_routing.png's data: for one probe sample, where each side's max pooling sends each window's gradient.

Each side routes a gradient of 1 from every pooled output back through its own pooling: the NumPy side through the
Pooling object's backward (the user's, where they gave one) after its own forward of the sample, the Keras side by
autodiff through its MaxPooling2D (parity.keras_side.side.KerasSide.pool_routes). The cells a side chose are where
that gradient is not 0; nothing here picks a maximum for Keras. A window whose largest value is not unique (a tie:
on ReLU outputs, a window of zeros) may send its gradient to any of its maxima, so a difference there is no
disagreement. The first pooling of the model is drawn, with the filters of the convolution that feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.settings.spec import ConvSpec, PoolSpec

__all__ = ["PoolRouting", "pool_routing", "window_ties", "CANDIDATES"]

CANDIDATES = 16  # failing probe rows searched for a routing disagreement, at most (each runs the NumPy side once)


@dataclass
class PoolRouting:
    """The first pooling's routing on one probe sample, both sides, in the book's layout (C, H, W)."""

    sample: int  # the probe row (the sample's index in the data)
    why: str  # why this sample: it shows a disagreement, it fails, or it is typical
    window: tuple[int, int]
    stride: int
    values: np.ndarray  # (C, H, W) the pooling's input on the Keras side (what it took the maximum of)
    numpy: np.ndarray  # (C, H, W) the NumPy Pooling.backward of 1s: not 0 where it routed gradient
    keras: np.ndarray  # (C, H, W) Keras's autodiff of the pooled sum: not 0 where it routed gradient
    tie: np.ndarray  # (C, H, W) bool: a maximal cell of a window whose maximum is not unique
    conv: int | None  # the number of the Convolution that feeds the pooling (its filters are W{conv}); None if none
    filters: np.ndarray | None  # (FN, C, FH, FW) W{conv} after Keras's fit: the weights both sides were given
    dW: dict[str, np.ndarray]  # side -> (FN, C, FH, FW): this sample's dW{conv}, from the probe

    @property
    def differs(self) -> np.ndarray:
        """(C, H, W) bool: one side routed gradient to the cell and the other did not, outside ties."""
        return ((self.numpy != 0) != (self.keras != 0)) & ~self.tie


def window_ties(values: np.ndarray, window: tuple[int, int], stride: int) -> np.ndarray:
    """(C, H, W) bool: the cells equal to their window's maximum in windows where that maximum is not unique."""
    c, h, w = values.shape
    out = np.zeros(values.shape, dtype=bool)
    for i in range(0, h - window[0] + 1, stride):
        for j in range(0, w - window[1] + 1, stride):
            cells = values[:, i:i + window[0], j:j + window[1]]  # (C, PH, PW)
            top = cells.max(axis=(1, 2), keepdims=True)
            at = cells == top
            tied = at.sum(axis=(1, 2)) > 1  # (C,)
            out[:, i:i + window[0], j:j + window[1]] |= at & tied[:, None, None]
    return out


def _first_pool(spec) -> tuple[int, PoolSpec, int | None] | None:
    """(its position among the features, the pooling, the convolution number right before it or None)."""
    number, conv = 0, None
    for k, f in enumerate(spec.features):
        if isinstance(f, ConvSpec):
            number += 1
            conv = number
        elif isinstance(f, PoolSpec):
            return k, f, conv
    return None


def _numpy_routes(network, x: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray | None:
    """The NumPy side's routing for one sample x (1, D): its forward, then its Pooling.backward of 1s; None when a
    layer raised (the run's findings say where)."""
    from parity.user_code import guard

    pools = [s for s in network.layers if s.role == "Pooling"]
    slot = pools[0] if pools else None
    if slot is None or slot.obj is None:
        return None
    try:
        with np.errstate(all="ignore"):
            network.predict(np.array(x, copy=True))
            ones = np.ones((1, *slot.out), dtype=x.dtype)
            if slot.user:
                dx = guard.call(slot.obj, "backward", ones, book="Pooling", expect=(1, *in_shape))
            else:
                dx = slot.obj.backward(ones)
    except Exception:  # noqa: BLE001  a user layer that raises: the run's own findings name it
        return None
    return np.asarray(dx, dtype=np.float64).reshape(in_shape)


def _candidates(probe, conv: int | None) -> tuple[list[int], int]:
    """(failing probe rows, the worst first, at most CANDIDATES; a typical row: Keras's median loss)."""
    loss = probe.keras.loss
    typical = int(probe.rows[np.argsort(loss, kind="stable")[len(loss) // 2]])
    failing = np.flatnonzero(probe.verdicts == "fail")
    name = f"dW{conv}" if conv is not None and f"dW{conv}" in probe.diffs else "dx"
    worst = probe.diffs[name].max_abs[failing] if name in probe.diffs else np.zeros(len(failing))
    order = failing[np.argsort(-np.nan_to_num(worst, nan=np.inf), kind="stable")][:CANDIDATES]
    return [int(probe.rows[r]) for r in order], typical


def pool_routing(spec, reference, fresh, probe) -> PoolRouting | None:
    """The routing picture's data, or None: no pooling, no Keras model in this process (a recorded Keras side), a
    padded pooling, or no probe kept whole. `fresh()` builds the run's NumPy network at the fitted weights."""
    first = _first_pool(spec)
    if first is None or probe is None or getattr(reference, "side", None) is None:
        return None
    position, pool, conv = first
    if pool.pad:
        return None
    in_shape = tuple(spec.maps()[position])
    failing, typical = _candidates(probe, conv)
    rows = failing + [typical]
    values, keras = reference.pool_routes(np.asarray(rows))  # (len(rows), C, H, W) each
    network = fresh()
    chosen, why = None, ""
    for k, row in enumerate(rows):
        ours = _numpy_routes(network, reference.x[row:row + 1], in_shape)
        if ours is None:
            continue
        tie = window_ties(values[k], pool.pool, pool.stride)
        routed = PoolRouting(row, "", pool.pool, pool.stride, values[k], ours, keras[k], tie, conv, None, {})
        if routed.differs.any():
            chosen, why = routed, "the routing differs on this sample"
            break
        if chosen is None and k < len(failing):
            chosen, why = routed, "this sample fails, yet its pooling routes as Keras's does"
        if k == len(rows) - 1 and chosen is None:
            chosen, why = routed, "a typical sample (Keras's median loss); no probed sample fails"
    if chosen is None:
        return None
    chosen.why = why
    if conv is not None:
        at = int(np.flatnonzero(probe.rows == chosen.sample)[0])
        chosen.filters = reference.fitted[f"W{conv}"]
        chosen.dW = {"numpy": probe.numpy.grads[f"W{conv}"][at], "keras": probe.keras.grads[f"W{conv}"][at]}
    return chosen
