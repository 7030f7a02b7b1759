"""Diff two traces (NumPy side vs Keras side), find what disagrees, and earn a verdict. Returns data.

Shapes are checked before values. Every quantity is compared per row (sample, step or batch)
against the run's named tolerance; non-finite values never pass; a ReLU mask that flips where the
pre-activation is within rounding of 0 (the kink) excuses what that flip explains, as a warning,
and nothing else on the row. A row on which a NumPy layer raised is an `error` row: reported once
as `layer_error`, not again as NaN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from parity.compare.pool_ties import near_ties, per_filter
from parity.numpy_side.trace import Trace
from parity.settings.tolerances import Tolerance

__all__ = ["Diff", "PhaseResult", "compare_traces", "row_any", "saturated", "ERROR", "WARNING", "INFO", "CODE_BY_KIND"]

ERROR, WARNING, INFO = "error", "warning", "info"
# a row's verdict, by code; unjudged: a step after an excused one that the NumPy side could not restart from (resync)
VERDICTS = np.array(["pass", "fail", "kink", "error", "convention", "tie", "unjudged"])
CODE_BY_KIND = {"forward": "forward_mismatch", "preactivation": "forward_mismatch",
                 "gradient": "gradient_mismatch", "update": "update_mismatch"}


@dataclass
class Diff:
    """One quantity on both sides, with per-entry differences; axis 0 is the row."""

    name: str  # pred, loss, dW1, db1, ..., dx, z1, ..., W1, b1, ... (parameters after a step), v_W1, ... (state)
    kind: str  # forward | gradient | preactivation | update | state
    numpy: np.ndarray
    keras: np.ndarray
    abs_diff: np.ndarray  # float64; NaN where either side is not finite
    atol: float
    within: np.ndarray  # (n,) every entry of the row finite on both sides and within tolerance
    finite: np.ndarray  # (n,) every entry of the row finite on both sides
    used: np.ndarray  # (n,) largest abs_diff / (atol + rtol |keras|) in the row: 1 is the limit
    max_abs: np.ndarray  # (n,) largest abs_diff in the row; inf where a row holds a non-finite value

    @property
    def rel_diff(self) -> np.ndarray:
        """abs_diff / max(|keras|, atol): finite, and near 0 where Keras is ~0."""
        return self.abs_diff / np.maximum(np.abs(self.keras.astype(np.float64)), self.atol)


@dataclass
class PhaseResult:
    """A probe (per sample at fixed weights), a batch probe, or a stepping run (one SGD step per sample)."""

    phase: str  # probe | batch | stepping
    rows: np.ndarray  # (n,) each row's sample in the data (probe, stepping) or first sample (batch)
    numpy: Trace
    keras: Trace
    diffs: dict[str, Diff]
    dead_numpy: dict[int, np.ndarray]  # ReLU layer -> (n, units) pre-activation <= 0
    dead_keras: dict[int, np.ndarray]
    saturated_numpy: dict[int, np.ndarray]  # sigmoid layer -> (n, units) output within rounding of 0 or 1
    saturated_keras: dict[int, np.ndarray]
    kink: np.ndarray  # (n,) some ReLU pre-activation within atol of 0 (listed; excused only by a flip there)
    verdicts: np.ndarray  # (n,) "pass" | "fail" | "kink" | "error" | "convention" | "tie" (a pooling's near tie) | "unjudged"
    shape_errors: dict[str, tuple] = field(default_factory=dict)  # name -> (numpy shape, keras shape) per row
    excused: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (n,) its difference follows from a flip at the kink
    # ReLU layer (Dense, or a convolution's map) -> (n, units) where its mask flips away from the kink; a map's units are
    # its cells, channel-major, laid out as map_shapes says
    flip_away: dict[int, np.ndarray] = field(default_factory=dict)
    # Stepping: the optimizer state both sides expose ("v_W1": velocity of W1, ...). Reported, never part of a
    # row's verdict: the optimizer's diagnosis says what a state difference means.
    state_diffs: dict[str, Diff] = field(default_factory=dict)
    map_shapes: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # a ReLU convolution -> (FN, OH, OW)

    @property
    def unit(self) -> str:
        return {"probe": "sample", "batch": "batch", "stepping": "step"}[self.phase]

    def excuse(self, name: str, label: str, explained: np.ndarray) -> None:
        """Rows that fail on `name` alone (everything else within tolerance), where `explained`, get verdict `label`."""
        others = [d.within for key, d in self.diffs.items() if key != name]
        rest = np.all(others, axis=0) if others else np.ones(len(self.rows), dtype=bool)
        for layer, dead in self.dead_keras.items():
            rest &= (dead == self.dead_numpy[layer]).all(axis=1)
        self.verdicts = np.where((self.verdicts == "fail") & rest & ~self.diffs[name].within
                                 & self.diffs[name].finite & explained, label, self.verdicts)

    def where(self, row: int) -> int:
        """The number a finding names: the sample for the probe, else the step or batch index."""
        return int(self.rows[row]) if self.phase == "probe" else int(row)


def saturated(z: np.ndarray) -> np.ndarray:
    """Sigmoid output within rounding of 0 or 1, where its gradient vanishes: |z| > -log(eps).

    Then exp(-|z|) < eps, so sigmoid(z) rounds to within eps of 0 or 1 in z's own dtype.
    """
    return np.abs(z) > -np.log(np.finfo(z.dtype).eps)


def _row_max(flat: np.ndarray) -> np.ndarray:
    """Max over axis 1, column by column: a reduction over a short axis is far slower in NumPy, and
    np.maximum propagates NaN as the verdict needs."""
    if flat.shape[1] == 0:
        return np.zeros(len(flat))
    out = flat[:, 0].copy()
    for k in range(1, flat.shape[1]):
        np.maximum(out, flat[:, k], out=out)
    return out


def row_any(flat: np.ndarray) -> np.ndarray:
    """Any over axis 1 of a (rows, k) boolean array, column by column (see _row_max)."""
    out = np.zeros(len(flat), dtype=bool)
    for k in range(flat.shape[1]):
        out |= flat[:, k]
    return out


def _diff(name: str, kind: str, ours: np.ndarray, theirs: np.ndarray, tol: Tolerance) -> Diff:
    rows = len(ours)
    theirs64 = theirs.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        abs_diff = np.abs(ours.astype(np.float64) - theirs64)  # NaN or inf exactly where a side is not finite
        ratio = abs_diff / (tol.atol + tol.rtol * np.abs(theirs64))
        if tol.atol == 0:
            ratio[abs_diff == 0] = 0.0  # 0/0: no difference uses none of a zero tolerance
        max_abs = _row_max(abs_diff.reshape(rows, -1))  # NaN propagates: a non-finite row shows
        finite = np.isfinite(max_abs)
        used = np.where(finite, _row_max(ratio.reshape(rows, -1)), np.inf)
    return Diff(name, kind, ours, theirs, abs_diff, tol.atol, within=finite & (used <= 1), finite=finite,
                used=used, max_abs=np.where(finite, max_abs, np.inf))


def _pairs(ours: Trace, theirs: Trace):
    yield "pred", "forward", ours.pred, theirs.pred
    yield "loss", "forward", ours.loss, theirs.loss
    for name in theirs.grads:
        yield f"d{name}", "gradient", ours.grads.get(name), theirs.grads[name]
    if theirs.dx.size or theirs.dx.ndim < 2 or theirs.dx.shape[1]:  # a test-mode probe with Dropout or
        yield "dx", "gradient", ours.dx, theirs.dx  # BatchNormalization has no gradients (parity.compare.modes)
    for layer in theirs.z:
        yield f"z{layer}", "preactivation", ours.z.get(layer), theirs.z[layer]
    for layer in theirs.maps:  # a convolution's maps, channel-major: compared whole, reported by their layer
        yield f"z{layer}", "preactivation", ours.maps.get(layer), theirs.maps[layer]
    for name in theirs.params_after:
        yield name, "update", ours.params_after[name], theirs.params_after[name]


def compare_traces(phase: str, rows: np.ndarray, ours: Trace, theirs: Trace, tol: Tolerance,
                   relu_layers: list[int], sigmoid_layers: list[int] = (), relu_maps: dict | None = None,
                   pools: list[tuple] = ()) -> PhaseResult:
    """Both sides' traces compared row by row. `relu_layers` are Dense layers (their units reported one by one),
    `relu_maps` maps each convolution followed by a ReLU to its output map (FN, OH, OW): its kinks are judged as a
    unit's, each map cell a unit (a flip there excuses its filter's kernel and bias). `pools`
    (ModelSpec.pooled_maps) are poolings whose windows' near ties are judged as kinks are (parity.compare.pool_ties)."""
    n = len(rows)
    diffs, shape_errors = {}, {}
    for name, kind, a, b in _pairs(ours, theirs):
        if a is None and len(ours.errors) >= n:
            a = np.full(b.shape, np.nan)  # every row raised: layer_error says so; nothing to compare
        if a is None or a.shape != b.shape:  # shapes before values: a wrong shape is never broadcast
            shape_errors[name] = (None if a is None else a.shape[1:], b.shape[1:])
        else:
            diffs[name] = _diff(name, kind, a, b, tol)
    state_diffs = {f"{book}_{name}": _diff(f"{book}_{name}", "state", a, theirs.state_after[book][name], tol)
                   for book, per_param in ours.state_after.items() if book in theirs.state_after
                   for name, a in per_param.items()
                   if name in theirs.state_after[book] and a.shape == theirs.state_after[book][name].shape}
    ours = _normalized(ours, theirs, diffs)
    failed = np.zeros(n, dtype=bool)
    failed[[e.row for e in ours.errors]] = True
    # A batch's rows hold no per-sample z: its samples' pre-activations (Trace.batch_z) judge a kink there, per unit.
    batch_kinks = [k for k in relu_layers if f"z{k}" not in diffs and k in ours.batch_z and k in theirs.batch_z
                   and ours.batch_z[k].shape == theirs.batch_z[k].shape and f"b{k}" in theirs.grads]
    relu_layers = [k for k in relu_layers if f"z{k}" in diffs]
    z_ours = ours.z
    dead_numpy = {k: z_ours[k] <= 0 for k in relu_layers}
    dead_keras = {k: theirs.z[k] <= 0 for k in relu_layers}
    # A row is at the kink when a ReLU pre-activation is within atol of 0. A mask that flips there is
    # rounding's doing, and it excuses only what it explains: what backpropagates through the flipped
    # unit (the gradients of its layer and the layers before it, dx, and those layers' stepped
    # parameters). Any other difference on the row still fails; so does a flip away from the kink.
    kink, flip_at_kink, flip_away = (np.zeros(n, dtype=bool) for _ in range(3))
    flips_at_kink, flip_away_at = {}, {}  # ReLU layer -> (n, units) flipped at the kink; (n, units) away from it
    relu_maps = {k: shape for k, shape in (relu_maps or {}).items() if f"z{k}" in diffs}
    # (layer, our pre-activations, Keras's, how a row's values reduce to its units; None: they are its units)
    sources = [(k, z_ours[k], theirs.z[k], None) for k in relu_layers]
    sources += [(k, ours.maps[k], theirs.maps[k], lambda a, shape=relu_maps[k]: per_filter(a, shape))  # (n, FN)
                for k in relu_maps]
    sources += [(k, ours.batch_z[k], theirs.batch_z[k],  # (n, batch * units) -> flipped on some sample of the batch
                 lambda a, units=theirs.grads[f"b{k}"].shape[1]: a.reshape(n, -1, units).any(axis=1))
                for k in batch_kinks]
    for k, z_k, theirs_k, to_units in sources:
        near = (np.abs(theirs_k.astype(np.float64)) <= tol.atol) | (np.abs(z_k.astype(np.float64)) <= tol.atol)
        flip = (z_k <= 0) != (theirs_k <= 0)  # NaN (a row that raised) is no flip: the row fails anyway
        flips_at_kink[k] = flip & near if to_units is None else to_units(flip & near)
        kink |= row_any(near)
        flip_at_kink |= row_any(flips_at_kink[k])
        if k not in batch_kinks:  # a batch's samples are not units: its flips away fail the row, unrecorded
            flip_away_at[k] = flip & ~near  # (n, units)
        flip_away |= row_any(flip & ~near)
    ties_at, tie = {}, np.zeros(n, dtype=bool)  # convolution -> (n, FN) filters with a near tie where it is pooled
    for k, conv, shape, pool in pools:
        if f"z{k}" in diffs:
            ties_at[k] = np.zeros((n, shape[0]), dtype=bool)
            for side in (ours, theirs):
                ties_at[k] |= near_ties(side.maps[k], shape, pool.pool, pool.stride, pool.pad, conv.activation, tol)
            tie |= ties_at[k].any(axis=1)
    excused = {}
    for name, d in diffs.items():
        for at_rows, at in ((flip_at_kink, flips_at_kink), (tie, ties_at)):
            explained = _explained(d, at, tol) if at_rows.any() else None
            if explained is not None:
                excused[name] = excused.get(name, np.zeros(n, dtype=bool)) | (at_rows & ~flip_away & explained)
    ok = np.ones(n, dtype=bool) if not shape_errors else np.zeros(n, dtype=bool)
    finite, rest = np.ones(n, dtype=bool), np.ones(n, dtype=bool)
    for name, d in diffs.items():
        ok &= d.within
        finite &= d.finite
        rest &= (d.within | excused[name]) if name in excused else d.within
    ok &= ~flip_at_kink & ~flip_away
    excused_rows = (flip_at_kink | tie) & ~flip_away & finite & rest & (not shape_errors)
    codes = np.where(ok, 0, np.where(excused_rows, np.where(flip_at_kink, 2, 5), 1)).astype(np.int8)
    codes[failed] = 3
    verdicts = VERDICTS[codes]
    sigmoid_layers = [k for k in sigmoid_layers if f"z{k}" in diffs]
    return PhaseResult(phase, rows, ours, theirs, diffs, dead_numpy, dead_keras,
                       {k: saturated(z_ours[k]) for k in sigmoid_layers},
                       {k: saturated(theirs.z[k]) for k in sigmoid_layers}, kink, verdicts, shape_errors,
                       {k: v for k, v in excused.items() if v.any()}, flip_away_at, state_diffs, relu_maps)


def _explained(d: Diff, flips_at_kink: dict[int, np.ndarray], tol: Tolerance) -> np.ndarray | None:
    """(n,) rows on which a mask flip at the kink explains every out-of-tolerance entry of `d`; None for a
    quantity no flip can change (pred, loss, z).

    A flip in layer k reaches what backpropagates through the flipped unit: all of dx and of the
    gradients (and stepped parameters) of layers before k, and in layer k the flipped unit's own
    kernel column and bias entry (a convolution's map cell: its filter's kernel and bias). Forward, the unit's output
    is within atol of 0 on one side and 0 on the other: in the Dense layer after a Dense layer k, the kernel's row that
    reads that unit (its gradient is that output times the layer's, so an optimizer that divides by a gradient's size,
    as Adam does, moves that row by a step's size on one side and not at all on the other). Nothing else after k.
    """
    if d.kind in ("gradient", "update"):  # dW2, dgamma1, W2, running_mean1: the layer is the trailing number
        layer = 0 if d.name == "dx" else int(re.search(r"\d+$", d.name).group())
    else:
        return None
    rows = len(d.numpy)
    out = np.zeros(rows, dtype=bool)
    for k, at in flips_at_kink.items():
        if layer < k:
            out |= row_any(at)
        elif layer == k:
            entry_ok = tol.within(d.numpy, d.keras.astype(np.float64), abs_diff=d.abs_diff)  # NaN fails
            # a convolution's filters (n, FN): its kernel (n, FN, C, FH, FW) and bias (n, FN); a Dense layer's units
            # (n, units): its kernel (n, in, units) and bias
            unit = at[:, :, None, None, None] if d.numpy.ndim == 5 else at[:, None, :] if d.numpy.ndim == 3 else at
            out |= row_any(at) & (entry_ok | unit).reshape(rows, -1).all(axis=1)
        elif layer == k + 1 and d.numpy.ndim == 3 and d.numpy.shape[1] == at.shape[1]:  # (n, units of k, out): a Dense
            entry_ok = tol.within(d.numpy, d.keras.astype(np.float64), abs_diff=d.abs_diff)
            out |= row_any(at) & (entry_ok | at[:, :, None]).reshape(rows, -1).all(axis=1)
    return out


def _normalized(ours: Trace, theirs: Trace, diffs: dict[str, Diff]) -> Trace:
    """The NumPy side as compared: every quantity in Keras's shape, NaN where it could not be compared
    (its rows raised, or its shape was wrong: both are findings of their own)."""
    def pick(name, like):
        return diffs[name].numpy if name in diffs else np.full(like.shape, np.nan)
    return Trace(pred=pick("pred", theirs.pred), loss=pick("loss", theirs.loss),
                 grads={k: pick(f"d{k}", v) for k, v in theirs.grads.items()}, dx=pick("dx", theirs.dx),
                 z={k: pick(f"z{k}", v) for k, v in theirs.z.items()},
                 params_after={k: pick(k, v) for k, v in theirs.params_after.items()}, state_after=ours.state_after,
                 errors=ours.errors, maps={k: pick(f"z{k}", v) for k, v in theirs.maps.items()},
                 observed=ours.observed, batch_z=ours.batch_z)  # not compared: Trace.observed, Trace.batch_z

