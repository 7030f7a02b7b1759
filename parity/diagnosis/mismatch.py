"""Name the cause of a mismatch: sign, scale, shape, mask, batch reduction, or none of those.

Pure NumPy: given our values and Keras's for one quantity, say what relates them. Used on layer
probes and on whole-run mismatches alike. A factor is only claimed when it explains every entry.
"""

from __future__ import annotations

import numpy as np

from parity.settings.tolerances import within

__all__ = ["classify", "FIXES", "follow_mask", "scale_cause"]

# What to try, per finding code; the terminal prints it under each finding.
FIXES = {
    "forward_mismatch": "compare your forward with the layer's definition (bias added? activation applied?)",
    "gradient_mismatch": "re-derive this backward; compare it with central differences of your forward",
    "update_mismatch": "the parameters drift apart after SGD steps: check p -= lr * dp on every parameter",
    "sign_flip": "the gradient has the wrong sign: use dy = y - t (not t - y) and subtract lr * grad",
    "scale_factor": "drop or add the constant factor named above (see its likely cause)",
    "shape_mismatch": "return dW with W's shape (in, out): dW = x.T @ dout, db = dout.sum(axis=0)",
    "mask_mismatch": "ReLU's backward must zero dout exactly where the forward input was <= 0: np.where(mask, 0, dout)",
    "batch_reduction": "sum over the batch axis in Affine (db = dout.sum(axis=0)) and divide by the batch size once, in the loss",
    "kink": "nothing to fix: the pre-activation is within rounding of 0, where either side may round across",
    "zero_convention": "at exactly 0, TensorFlow's ReLU passes no gradient: use mask = x <= 0",
    "kernel_layout": "lay the kernel out as the book does: col_W = W.reshape(FN, -1).T, W of shape (FN, C, FH, FW)",
    "col2im_overwrite": "in col2im, add each window back: img[:, :, y:y_max:stride, x:x_max:stride] += col[...]",
    "hw_swapped": "compute out_h from H and FH, out_w from W and FW, and reshape(N, out_h, out_w, -1) in that order",
    "bias_missing": "add the bias in forward: np.dot(col, col_W) + self.b",
    "pool_routing": "send each window's dout to the cell np.argmax chose in forward: dmax[np.arange(n), arg_max] = dout",
    "flatten_order": "flatten the input as it comes: x.reshape(x.shape[0], -1), and return dx.reshape(*original_x_shape)",
    "resync": "nothing to fix: the steps before and after it are each compared from the same parameters",
    "pool_tie": "nothing to fix: which of two equal (or within rounding equal) cells takes a max-pooling window's "
                "gradient is a convention (np.argmax takes the first)",
    "input_mutation": "return new arrays (np.where(mask, 0, dout)) instead of writing into the ones you are given",
    "layer_error": "the method and line named above are where your layer failed: make it run and return an array "
                   "of the shape named",
    "label_form": "set [model] loss to the cross-entropy whose labels your class takes (categorical_crossentropy: "
                  "one-hot, sparse_categorical_crossentropy: integers), or take both in forward, as the book's "
                  "SoftmaxWithLoss does (t.size == y.size: one-hot; else integer labels)",
    "nan": "look for log(0), 0/0 or overflow in exp; the first sample named above is where it starts",
    "convention": "nothing to fix for float32; Keras computes the cross-entropy from the logits, without + 1e-7",
}


def scale_cause(c: float, batch: int) -> str:
    """A likely cause for a gradient that is c times Keras's."""
    known = [(0.5, "a 1/2 in the loss, as in 0.5*(y - t)**2: Keras's mean squared error has none (gradient 2(y - t)/n)"),
             (2.0, "a factor 2 too many, or dividing by n/2 instead of n")]
    if batch > 1:
        known += [(float(batch), f"summing over the batch of {batch} where Keras averages"),
                  (1.0 / batch, f"averaging over the batch of {batch} where Keras sums"),
                  (batch / 2.0, f"0.5 * sum((y - t)**2) over the batch of {batch} where Keras takes the mean")]
    for value, cause in known:
        if np.isclose(c, value, rtol=1e-6):
            return cause
    return "a constant factor in this layer's backward"


def classify(ours: np.ndarray, theirs: np.ndarray, rtol: float, atol: float) -> tuple[str, str] | None:
    """(code, detail) for what relates ours to Keras's, or None when they agree within tolerance.

    Codes: shape_mismatch, nan, sign_flip, scale_factor (detail holds c), mask_mismatch, gradient_mismatch.
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
        if np.all(within(ours, c * theirs, rtol, atol)) and abs(c) > 1e-12:
            if np.isclose(c, -1.0, rtol=1e-6):
                return "sign_flip", "ours = -1 x Keras's"
            return "scale_factor", f"{c:.6g}"
    blocked_ours, blocked_theirs = (ours == 0), (theirs == 0)
    flows_where_blocked = ~close & blocked_theirs & ~blocked_ours
    blocks_where_flows = ~close & ~blocked_theirs & blocked_ours
    if (flows_where_blocked | blocks_where_flows)[~close].all():
        parts = []
        if flows_where_blocked.any():
            parts.append(f"gradient flows at {int(flows_where_blocked.sum())} entries where Keras's is exactly 0")
        if blocks_where_flows.any():
            parts.append(f"gradient is 0 at {int(blocks_where_flows.sum())} entries where Keras's flows")
        return "mask_mismatch", "; ".join(parts)
    return "gradient_mismatch", f"{int((~close).sum())} of {close.size} entries differ"


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


def refine(f: dict, phase: str, tol, batch_size: int, probe_flagged: set) -> dict:
    """Turn a generic mismatch finding into the specific cause its offending rows show, and add the fix.

    The rows are the first SAMPLE_ROWS offenders the finding kept (`bad_rows`), so the diagnosis is
    the same however the probe was chunked. `probe_flagged` holds the quantities the per-sample probe
    already found wrong: right per sample and wrong per batch is a batch reduction.
    """
    f = dict(f)
    if f["code"] in ("gradient_mismatch", "forward_mismatch") and "bad_rows" in f:
        ours, theirs = f["bad_rows"]
        verdict = classify(ours, theirs, tol.rtol, tol.atol)
        if phase == "batch" and f.get("param") not in probe_flagged:
            detail = ""
            if verdict and verdict[0] == "scale_factor":
                detail = f"; ours = {float(verdict[1]):.6g} x Keras's: {scale_cause(float(verdict[1]), batch_size)}"
            f["code"] = "batch_reduction"
            f["detail"] = f". It matches sample by sample but not over batches of {batch_size}{detail}"
        elif f["code"] == "gradient_mismatch" and verdict and verdict[0] in ("sign_flip", "scale_factor", "mask_mismatch"):
            code, detail = verdict
            if code == "scale_factor":
                detail = f"ours = {float(detail):.6g} x Keras's; likely cause: {scale_cause(float(detail), 1)}"
            f["code"] = code
            f["detail"] = f". {detail}"
    f["fix"] = FIXES.get(f["code"], "")
    return f


def follow_mask(findings: list[dict], phase: str, mask_in_layer_probe: bool) -> list[dict]:
    """A scale_factor beside a mask bug is its consequence, not a constant in a backward: where the same
    ReLU unit is dead on every offending row, the gradient a missing mask leaks is a fixed share of the
    right one. Marked `consequence_of` the layer probe (when it found the mask bug) or this phase."""
    here = any(f["code"] == "mask_mismatch" for f in findings)
    if not (here or mask_in_layer_probe):
        return findings
    out = []
    for f in findings:
        if f["code"] == "scale_factor":
            f = dict(f, consequence_of="layer probe" if mask_in_layer_probe else phase)
            f["detail"] = (f.get("detail", "").split("; likely cause")[0]
                           + "; this follows from the ReLU mask bug: a unit dead on every offending row leaks a fixed share")
            f["fix"] = FIXES["mask_mismatch"]
        out.append(f)
    return out
