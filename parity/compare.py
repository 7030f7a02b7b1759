"""Diff two traces (NumPy side vs Keras side), find what disagrees, and earn a verdict. Returns data.

Shapes are checked before values. Every quantity is compared per sample (or per step) against the
run's named tolerance; non-finite values never pass; a pre-activation within rounding of 0 (the
ReLU kink) excuses that sample, as a warning, instead of failing it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.network import Trace
from parity.tolerances import Tolerance

__all__ = ["Diff", "PhaseResult", "compare_traces", "findings_for"]

ERROR, WARNING, INFO = "error", "warning", "info"


@dataclass
class Diff:
    """One quantity on both sides, with per-entry differences; axis 0 is the sample or step."""

    name: str  # pred, loss, dW1, db1, ..., dx, z1, ... and W1, b1, ... (parameters after a step)
    kind: str  # forward | gradient | preactivation | update
    numpy: np.ndarray
    keras: np.ndarray
    abs_diff: np.ndarray
    rel_diff: np.ndarray  # abs_diff / max(|keras|, atol): finite, and near 0 where Keras is ~0
    within: np.ndarray  # (n,) every entry of the row finite on both sides and within tolerance
    finite: np.ndarray  # (n,) every entry of the row finite on both sides
    used: np.ndarray  # (n,) largest abs_diff / (atol + rtol |keras|) in the row: 1 is the limit

    def row_max(self) -> np.ndarray:
        """(n,) max abs difference per row; inf where a row holds a non-finite value."""
        flat = self.abs_diff.reshape(len(self.abs_diff), -1)
        return np.where(self.finite, flat.max(axis=1, initial=0.0), np.inf)


@dataclass
class PhaseResult:
    """A probe (per sample at fixed weights) or a stepping run (one SGD step per sample)."""

    phase: str  # probe | stepping
    rows: np.ndarray  # (n,) index of each row's sample in the data
    numpy: Trace
    keras: Trace
    diffs: dict[str, Diff]
    dead_numpy: dict[int, np.ndarray]  # ReLU layer -> (n, units) pre-activation <= 0
    dead_keras: dict[int, np.ndarray]
    saturated_numpy: dict[int, np.ndarray]  # sigmoid layer -> (n, units) output within rounding of 0 or 1
    saturated_keras: dict[int, np.ndarray]
    kink: np.ndarray  # (n,) some pre-activation within rounding of 0
    verdicts: np.ndarray  # (n,) "pass" | "fail" | "kink"


def _diff(name: str, kind: str, ours: np.ndarray, theirs: np.ndarray, tol: Tolerance) -> Diff:
    if ours.shape != theirs.shape:
        raise ValueError(f"{name}: NumPy side has shape {ours.shape}, Keras side {theirs.shape}")
    ours64, theirs64 = ours.astype(np.float64), theirs.astype(np.float64)
    finite = np.isfinite(ours64) & np.isfinite(theirs64)
    with np.errstate(invalid="ignore", over="ignore"):
        abs_diff = np.abs(ours64 - theirs64)
        rel_diff = abs_diff / np.maximum(np.abs(theirs64), tol.atol)
        bound = tol.atol + tol.rtol * np.abs(theirs64)
        ok = finite & (abs_diff <= bound)
        used = np.where(finite, abs_diff / np.where(bound > 0, bound, np.inf), np.inf)
        used = np.where(finite & (abs_diff == 0), 0.0, used)  # 0/0 with a zero tolerance is no use of it
    rows = len(ours)
    return Diff(name, kind, ours, theirs, abs_diff, rel_diff,
                within=ok.reshape(rows, -1).all(axis=1), finite=finite.reshape(rows, -1).all(axis=1),
                used=used.reshape(rows, -1).max(axis=1, initial=0.0))


def saturated(z: np.ndarray) -> np.ndarray:
    """Sigmoid output within rounding of 0 or 1, where its gradient vanishes: |z| > -log(eps).

    Then exp(-|z|) < eps, so sigmoid(z) rounds to within eps of 0 or 1 in z's own dtype.
    """
    return np.abs(z) > -np.log(np.finfo(z.dtype).eps)


def compare_traces(phase: str, rows: np.ndarray, ours: Trace, theirs: Trace, tol: Tolerance,
                   relu_layers: list[int], sigmoid_layers: list[int] = ()) -> PhaseResult:
    diffs = [_diff("pred", "forward", ours.pred, theirs.pred, tol),
             _diff("loss", "forward", ours.loss, theirs.loss, tol)]
    diffs += [_diff(f"d{name}", "gradient", ours.grads[name], theirs.grads[name], tol) for name in theirs.grads]
    diffs.append(_diff("dx", "gradient", ours.dx, theirs.dx, tol))
    diffs += [_diff(f"z{layer}", "preactivation", ours.z[layer], theirs.z[layer], tol) for layer in theirs.z]
    diffs += [_diff(name, "update", ours.params_after[name], theirs.params_after[name], tol)
              for name in theirs.params_after]
    dead_numpy = {layer: ours.z[layer] <= 0 for layer in relu_layers}
    dead_keras = {layer: theirs.z[layer] <= 0 for layer in relu_layers}
    kink = np.zeros(len(rows), dtype=bool)
    for layer in relu_layers:
        z = theirs.z[layer]
        near = (np.abs(z.astype(np.float64)) <= tol.atol) | (np.abs(ours.z[layer].astype(np.float64)) <= tol.atol)
        kink |= near.any(axis=1)
    ok = np.all([d.within for d in diffs], axis=0)
    ok &= np.all([(dead_numpy[k] == dead_keras[k]).all(axis=1) for k in dead_keras], axis=0) if dead_keras else True
    finite = np.all([d.finite for d in diffs], axis=0)
    verdicts = np.where(ok, "pass", np.where(kink & finite, "kink", "fail"))
    return PhaseResult(phase, rows, ours, theirs, {d.name: d for d in diffs}, dead_numpy, dead_keras,
                       {k: saturated(ours.z[k]) for k in sigmoid_layers},
                       {k: saturated(theirs.z[k]) for k in sigmoid_layers}, kink, verdicts)


def _finding(code: str, severity: str, message: str, **where) -> dict:
    return {"code": code, "severity": severity, "message": message, **{k: v for k, v in where.items() if v is not None}}


def findings_for(result: PhaseResult) -> list[dict]:
    """What disagrees in one phase, first offender named; a kink-excused row fails nothing."""
    unit = "sample" if result.phase == "probe" else "step"
    counted = result.verdicts != "kink"
    out = []
    for d in result.diffs.values():
        bad_finite = ~d.finite
        if bad_finite.any():
            first = int(np.argmax(bad_finite))
            out.append(_finding("nan", ERROR, f"{result.phase}: {d.name} is not finite on {int(bad_finite.sum())} "
                                f"{unit}s, first at {unit} {_where(result, first)}",
                                param=d.name, **{unit: _where(result, first)}))
            continue
        bad = ~d.within & counted
        if not bad.any():
            continue
        first = int(np.argmax(bad))
        code = {"forward": "forward_mismatch", "preactivation": "forward_mismatch",
                "gradient": "gradient_mismatch", "update": "update_mismatch"}[d.kind]
        worst = float(d.row_max()[bad].max())
        out.append(_finding(code, ERROR, f"{result.phase}: {d.name} differs beyond tolerance on {int(bad.sum())} "
                            f"{unit}s (worst abs diff {worst:.3g}), first at {unit} {_where(result, first)}: "
                            f"numpy {_fmt(d.numpy[first])} vs keras {_fmt(d.keras[first])}",
                            param=d.name, **{unit: _where(result, first)}))
    for layer, dead in result.dead_keras.items():
        flipped = (dead != result.dead_numpy[layer]).any(axis=1) & counted
        if flipped.any():
            first = int(np.argmax(flipped))
            out.append(_finding("mask_mismatch", ERROR, f"{result.phase}: layer {layer}'s dead-ReLU mask differs on "
                                f"{int(flipped.sum())} {unit}s away from the kink, first at {unit} "
                                f"{_where(result, first)}", layer=layer, **{unit: _where(result, first)}))
    if result.kink.any():
        first = int(np.argmax(result.kink))
        out.append(_finding("kink", WARNING, f"{result.phase}: {int(result.kink.sum())} {unit}s have a pre-activation "
                            f"within rounding of 0, where the sides may legitimately differ; first at {unit} "
                            f"{_where(result, first)}", **{unit: _where(result, first)}))
    return out


def _where(result: PhaseResult, row: int) -> int:
    return int(result.rows[row]) if result.phase == "probe" else row


def _fmt(a: np.ndarray) -> str:
    return np.array2string(np.asarray(a), precision=6, threshold=8)
