"""Name the cause of a mismatch: sign, scale, shape, mask, batch reduction, or none of those.

Pure NumPy: given our values and Keras's for one quantity, say what relates them. Used on layer
probes and on whole-run mismatches alike. A factor is only claimed when it explains every entry.
What to try for each cause is parity.diagnosis.fixes's table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.settings.tolerances import within

__all__ = ["Cause", "cause_of", "classify", "excuse_book_log", "known_scale_cause", "said_scale", "scale_cause"]

# How a mask pattern reads, per kind of quantity: (flows where Keras's is 0, is 0 where Keras's flows).
_PATTERN = {
    "gradient": ("gradient flows at {n} entries where Keras's is exactly 0", "gradient is 0 at {n} entries where Keras's flows"),
    "output": ("the output is nonzero at {n} entries where Keras's is exactly 0",
               "the output is 0 at {n} entries where Keras's is not"),
}


def known_scale_cause(c: float, batch: int) -> str | None:
    """The known cause of a quantity that is c times Keras's, or None when c is none of the known factors."""
    known = [(0.5, "a 1/2 in the loss, as in 0.5*(y - t)**2: Keras's mean squared error has none (gradient 2(y - t)/n)"),
             (2.0, "a factor 2 too many, or dividing by n/2 instead of n")]
    if batch > 1:
        known += [(float(batch), f"summing over the batch of {batch} where Keras averages"),
                  (1.0 / batch, f"averaging over the batch of {batch} where Keras sums"),
                  (batch / 2.0, f"0.5 * sum((y - t)**2) over the batch of {batch} where Keras takes the mean")]
    return next((cause for value, cause in known if np.isclose(c, value, rtol=1e-6)), None)


def scale_cause(c: float, batch: int, part: str = "backward") -> str:
    """A likely cause for a quantity that is c times Keras's; `part` says which part of the layer computes it
    (backward for a gradient, forward for an output, loss for a loss value)."""
    return known_scale_cause(c, batch) or f"a constant factor in this layer's {part}"


def said_scale(c: float, batch: int, part: str = "backward", single: bool = False) -> str:
    """"ours = c x Keras's; likely cause: ...". A single value (a loss) is some multiple of any other, so there
    only a known factor is named as a cause; elsewhere an unknown one is put on the `part` that computes it."""
    cause = known_scale_cause(c, batch) if single else scale_cause(c, batch, part)
    return f"ours = {c:.6g} x Keras's" + (f"; likely cause: {cause}" if cause else "")


def classify(ours: np.ndarray, theirs: np.ndarray, rtol: float, atol: float,
             quantity: str = "gradient") -> tuple[str, str] | None:
    """(code, detail) for what relates ours to Keras's, or None when they agree within tolerance.

    Codes: shape_mismatch, nan, sign_flip, scale_factor (detail holds c), mask_mismatch, gradient_mismatch.
    `quantity` ("gradient" or "output") words a mask pattern: a forward's zeros are not a gradient's.
    """
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        hint = " (transposed?)" if tuple(reversed(ours.shape)) == theirs.shape and ours.ndim == 2 else ""
        return "shape_mismatch", f"shape {ours.shape}, Keras's {theirs.shape}{hint}"
    if not np.isfinite(ours).all():
        return "nan", f"{int((~np.isfinite(ours)).sum())} non-finite entries"
    close = within(ours, theirs, rtol, atol)
    if close.all():
        return None
    norm = float(np.sum(theirs * theirs))
    if norm > 0:
        c = float(np.sum(ours * theirs) / norm)
        # a factor is claimed only where it can be said: "1 x Keras's" (c within 6 digits of 1) is no factor
        if np.all(within(ours, c * theirs, rtol, atol)) and abs(c) > 1e-12 and f"{c:.6g}" != "1":
            if np.isclose(c, -1.0, rtol=1e-6):
                return "sign_flip", "ours = -1 x Keras's"
            return "scale_factor", f"{c:.6g}"
    blocked_ours, blocked_theirs = (ours == 0), (theirs == 0)
    flows_where_blocked = ~close & blocked_theirs & ~blocked_ours
    blocks_where_flows = ~close & ~blocked_theirs & blocked_ours
    if (flows_where_blocked | blocks_where_flows)[~close].all():
        flows, blocks = _PATTERN[quantity]
        parts = []
        if flows_where_blocked.any():
            parts.append(flows.format(n=int(flows_where_blocked.sum())))
        if blocks_where_flows.any():
            parts.append(blocks.format(n=int(blocks_where_flows.sum())))
        return "mask_mismatch", "; ".join(parts)
    return "gradient_mismatch", f"{int((~close).sum())} of {close.size} entries differ"


@dataclass(frozen=True)
class Cause:
    """What a whole-run mismatch's offending rows show: the code it earns and the numbers said after its values."""

    code: str  # batch_reduction, sign_flip, scale_factor, mask_mismatch
    scale: float | None = None  # ours = scale x Keras's
    likely: str = ""  # the scale's likely cause
    pattern: str = ""  # mask_mismatch: where gradient flows and where it does not
    batch: int | None = None  # batch_reduction: the batch size over which it fails
    mask_leak: bool = False  # a scale that a ReLU mask bug explains (it leaks a fixed share)

    def sentence(self) -> str:
        """The words after a mismatch's values, each starting with its own separator."""
        if self.code == "batch_reduction":
            scale = "" if self.scale is None else f"; ours = {self.scale:.6g} x Keras's: {self.likely}"
            return f". It matches sample by sample but not over batches of {self.batch}{scale}"
        if self.code == "sign_flip":
            return ". ours = -1 x Keras's"
        if self.code == "scale_factor":
            why = ("this follows from the ReLU mask bug: a unit dead on every offending row leaks a fixed share"
                   if self.mask_leak else f"likely cause: {self.likely}")
            return f". ours = {self.scale:.6g} x Keras's; {why}"
        return f". {self.pattern}"


def cause_of(code: str, rows: tuple[np.ndarray, np.ndarray] | None, phase: str, param: str | None, forward: bool,
             tol, batch_size: int, probe_flagged: set) -> Cause | None:
    """The specific cause a mismatch's offending rows show, or None when none of the known ones does.

    `rows` are the first offending rows (ours, Keras's), the same however the probe was chunked.
    `probe_flagged` holds the quantities the per-sample probe already found wrong: right per sample and
    wrong per batch is a batch reduction. `forward` says the quantity is an output (pred, loss, z).
    """
    if code not in ("gradient_mismatch", "forward_mismatch") or rows is None:
        return None
    verdict = classify(*rows, tol.rtol, tol.atol, "output" if forward else "gradient")
    if phase == "batch" and param not in probe_flagged:
        if verdict and verdict[0] == "scale_factor":
            scale = float(verdict[1])
            part = ("loss" if param == "loss" else "forward") if forward else "backward"
            return Cause("batch_reduction", scale, scale_cause(scale, batch_size, part), batch=batch_size)
        return Cause("batch_reduction", batch=batch_size)
    if code != "gradient_mismatch" or not verdict or verdict[0] not in ("sign_flip", "scale_factor", "mask_mismatch"):
        return None
    found, detail = verdict
    if found == "scale_factor":
        return Cause(found, float(detail), scale_cause(float(detail), 1))
    return Cause(found, -1.0 if found == "sign_flip" else None, pattern=detail if found == "mask_mismatch" else "")


def excuse_book_log(phase) -> None:
    """Rows that fail on the loss alone, by no more than the book's log(y + 1e-7) can make them differ,
    become `convention` rows (a warning): -log(p + 1e-7) differs from -log(p) by at most 1e-7 / p, and
    the label's probability p is at least the smallest class probability Keras gave that row."""
    loss, pred = phase.diffs.get("loss"), phase.diffs.get("pred")
    if loss is None or pred is None:
        return
    p_min = pred.keras.reshape(len(pred.keras), -1).astype(np.float64).min(axis=1)
    with np.errstate(divide="ignore"):
        explained = loss.abs_diff.reshape(len(loss.abs_diff), -1).max(axis=1) <= 1.01e-7 / p_min
    phase.excuse("loss", "convention", explained)
