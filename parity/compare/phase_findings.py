"""What disagrees in one phase (or a chunk of it), as finding records; the first offender named."""

from __future__ import annotations

import numpy as np

from parity.compare.diff import CODE_BY_KIND, ERROR, WARNING, PhaseResult

__all__ = ["finding", "findings_for", "one_line", "SAMPLE_ROWS"]


def finding(code: str, severity: str, message: str, **where) -> dict:
    return {"code": code, "severity": severity, "message": message, **{k: v for k, v in where.items() if v is not None}}


def _counted(code: str, severity: str, result: PhaseResult, template: str, row: int, count: int, **fields) -> dict:
    """A finding that merges across chunks: `template` is rendered with its fields once counts are summed."""
    singular, plural = result.unit, {"sample": "samples", "batch": "batches", "step": "steps"}[result.unit]
    f = finding(code, severity, "", **{result.unit: result.where(row)}, **fields)
    f.update(count=int(count), template=template, phase_name=result.phase, phase_label=result.phase,
             unit=singular, units=plural, first=result.where(row), raw_code=code)
    return f


SAMPLE_ROWS = 1024  # offending rows kept per finding for diagnosis: the first ones, whatever the chunking


def findings_for(result: PhaseResult) -> list[dict]:
    """What disagrees in one phase (or chunk of it), first offender named; kink and error rows fail nothing twice.

    Messages are templates: `parity.compare.stats.merge_findings` renders them after merging chunks.
    """
    out = []  # each finding's `rank` orders the merged findings the same however the rows were chunked
    for name, (ours, theirs) in result.shape_errors.items():
        hint = " (transposed?)" if ours is not None and tuple(reversed(ours)) == theirs else ""
        got = "nothing" if ours is None else f"shape {ours}"
        out.append(finding("shape_mismatch", ERROR, f"{result.phase}: {name} has {got} where Keras's has shape "
                           f"{theirs}{hint}", param=name, phase=result.phase, rank=(0, 0)))
    seen = set()
    for error in result.numpy.errors:
        key = (error.layer, error.kind)
        if key in seen:
            continue
        seen.add(key)
        count = sum((e.layer, e.kind) == key for e in result.numpy.errors)
        code = "shape_mismatch" if error.kind == "GradientShapeError" else "layer_error"
        who = error.layer or "the NumPy side"
        text = f"{who} {error.message} ({error.where})".replace("{", "{{").replace("}", "}}")
        out.append(_counted(code, ERROR, result, "{phase_label}: " + text + " on {count} {units}, first at {unit} {first}",
                            error.row, count, layer=error.book or None,
                            method=error.layer.split(".")[1] if "." in error.layer else None, where=error.where or None,
                            rank=(1, 0)))
    counted = np.isin(result.verdicts, ("pass", "fail"))
    nonfinite = {name: ~d.finite & counted for name, d in result.diffs.items() if (~d.finite & counted).any()}
    if nonfinite:  # one finding: where it first appears, on which side, in which quantities
        first = min(int(np.argmax(rows)) for rows in nonfinite.values())
        sides = set()
        for name in nonfinite:
            d = result.diffs[name]
            sides |= {side for side, v in (("NumPy", d.numpy), ("Keras", d.keras))
                      if not np.isfinite(v.astype(np.float64)).all()}
        rows = int(np.any(list(nonfinite.values()), axis=0).sum())
        f = _counted("nan", ERROR, result, "{phase_label}: non-finite values on {side_text} on {count} {units}, "
                     "first at {unit} {first} in {param}; non-finite anywhere in: {quantity_text}", first, rows,
                     param=next(name for name, bad in nonfinite.items() if bad[first]))
        f.update(quantities=list(nonfinite), sides=sorted(sides), rank=(2, 0))
        out.append(f)
    for position, d in enumerate(result.diffs.values()):
        if d.name in nonfinite:
            continue
        bad = ~d.within & counted
        if d.name in result.excused:
            bad &= ~result.excused[d.name]
        if bad.any():
            first = int(np.argmax(bad))
            values = f"numpy {one_line(d.numpy[first])} vs keras {one_line(d.keras[first])}".replace("{", "{{").replace("}", "}}")
            f = _counted(CODE_BY_KIND[d.kind], ERROR, result,
                         "{phase_label}: {param} differs beyond tolerance on {count} {units} (worst abs diff "
                         "{worst:.3g}), first at {unit} {first}: " + values + "{detail}",
                         first, int(bad.sum()), param=d.name, worst=float(d.max_abs[bad].max()), detail="",
                         rank=(3, position))
            f["bad_rows"] = (d.numpy[bad][:SAMPLE_ROWS], d.keras[bad][:SAMPLE_ROWS])
            out.append(f)
    for layer, dead in result.dead_keras.items():
        flipped = result.flip_away.get(layer, (dead != result.dead_numpy[layer]).any(axis=1)) & counted
        if flipped.any():
            first = int(np.argmax(flipped))
            out.append(_counted("mask_mismatch", ERROR, result, "{phase_label}: layer {layer_number}'s dead-ReLU mask differs "
                                "on {count} {units} away from the kink, first at {unit} {first}",
                                first, int(flipped.sum()), layer_number=layer, rank=(4, layer)))
    if result.kink.any():
        first = int(np.argmax(result.kink))
        out.append(_counted("kink", WARNING, result, "{phase_label}: {count} {units} with a pre-activation within "
                            "rounding of 0, where the sides may legitimately differ; first at {unit} {first}",
                            first, int(result.kink.sum()), rank=(5, 0)))
    tie = result.verdicts == "tie"
    if tie.any():
        first = int(np.argmax(tie))
        out.append(_counted("pool_tie", WARNING, result, "{phase_label}: on {count} {units} a max-pooling window's two "
                            "largest inputs lie within rounding of each other, so the sides may send its gradient to "
                            "different cells; only that filter's kernel and bias gradients and dx differ there, everything "
                            "after the pooling agrees; first at {unit} {first}",
                            first, int(tie.sum()), rank=(5, 1)))
    convention = result.verdicts == "convention"
    if convention.any():
        first = int(np.argmax(convention))
        out.append(_counted("convention", WARNING, result, "{phase_label}: the loss differs on {count} {units} by no "
                            "more than the book's log(y + 1e-7) explains (1e-7 / y); predictions and gradients agree; "
                            "first at {unit} {first}", first, int(convention.sum()), param="loss", rank=(6, 0)))
    return out


def one_line(a: np.ndarray) -> str:
    """A value for a one-line message: entries in row-major order, at most 6 shown, never a line break."""
    a = np.asarray(a)
    flat = [f"{v:.6g}" for v in a.reshape(-1).tolist()]
    if a.ndim == 0:
        return flat[0]
    return "[" + ", ".join(flat if len(flat) <= 6 else [*flat[:3], "...", *flat[-3:]]) + "]"
