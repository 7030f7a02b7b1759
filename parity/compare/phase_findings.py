"""What disagrees in one phase (or a chunk of it), as PendingFinding records; the first offender named."""

from __future__ import annotations

import numpy as np

from parity.compare.diff import CODE_BY_KIND, ERROR, WARNING, PhaseResult, row_any
from parity.compare.pending import SAMPLE_ROWS, PendingFinding

__all__ = ["findings_for", "one_line"]


def findings_for(result: PhaseResult) -> list[PendingFinding]:
    """What disagrees in one phase (or chunk of it), first offender named; kink and error rows fail nothing twice.

    Each record merges with the next chunk's (parity.compare.pending.merge) and is said in words once merged.
    """
    phase, unit = result.phase, result.unit

    def pending(what, code, severity, rank, row=None, count=None, **fields) -> PendingFinding:
        first = None if row is None else result.where(row)
        return PendingFinding(what, code, severity, phase, unit, rank, first, count, **fields)

    out = []
    for name, (ours, theirs) in result.shape_errors.items():
        hint = " (transposed?)" if ours is not None and tuple(reversed(ours)) == theirs else ""
        got = "nothing" if ours is None else f"shape {ours}"
        out.append(pending("shape", "shape_mismatch", ERROR, (0, 0), param=name,
                           said=f"{name} has {got} where Keras's has shape {theirs}{hint}"))
    seen = set()
    for error in result.numpy.errors:
        key = (error.layer, error.kind)
        if key in seen:
            continue
        seen.add(key)
        count = sum((e.layer, e.kind) == key for e in result.numpy.errors)
        code = "shape_mismatch" if error.kind == "GradientShapeError" else "layer_error"
        who = error.layer or "the NumPy side"
        out.append(pending("raised", code, ERROR, (1, 0), error.row, count, layer=error.book or None,
                           method=error.layer.split(".")[1] if "." in error.layer else None,
                           where=error.where or None, said=f"{who} {error.message} ({error.where})"))
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
        out.append(pending("nonfinite", "nan", ERROR, (2, 0), first, rows, sides=tuple(sorted(sides)),
                           param=next(name for name, bad in nonfinite.items() if bad[first]),
                           quantities=tuple(nonfinite)))
    for position, d in enumerate(result.diffs.values()):
        if d.name in nonfinite:
            continue
        bad = ~d.within & counted
        if d.name in result.excused:
            bad &= ~result.excused[d.name]
        if bad.any():
            first = int(np.argmax(bad))
            out.append(pending("mismatch", CODE_BY_KIND[d.kind], ERROR, (3, position), first, int(bad.sum()),
                               param=d.name, forward=d.kind in ("forward", "preactivation"),
                               worst=float(d.max_abs[bad].max()),
                               values=(one_line(d.numpy[first]), one_line(d.keras[first])),
                               rows=(d.numpy[bad][:SAMPLE_ROWS], d.keras[bad][:SAMPLE_ROWS])))
    for layer, away in result.flip_away.items():  # one rule for a Dense layer's units and a convolution's map cells
        flipped = row_any(away) & counted
        if flipped.any():
            first = int(np.argmax(flipped))
            cell = int(np.argmax(away[first]))  # not `unit`: pending() reads that name
            shape = result.map_shapes.get(layer)
            if shape is None:
                out.append(pending("mask", "mask_mismatch", ERROR, (4, layer), first, int(flipped.sum()),
                                   layer_number=layer, unit_at=f"unit {cell}"))
            else:
                f, y, x = (int(i) for i in np.unravel_index(cell, shape))
                out.append(pending("mask", "mask_mismatch", ERROR, (4, layer), first, int(flipped.sum()),
                                   convolution=layer, unit_at=f"filter {f} (row {y}, col {x})",
                                   map_cell={"filter": f, "row": y, "col": x}))
    if result.kink.any():
        out.append(pending("kink", "kink", WARNING, (5, 0), int(np.argmax(result.kink)), int(result.kink.sum())))
    tie = result.verdicts == "tie"
    if tie.any():
        out.append(pending("tie", "pool_tie", WARNING, (5, 1), int(np.argmax(tie)), int(tie.sum())))
    convention = result.verdicts == "convention"
    if convention.any():
        out.append(pending("convention", "convention", WARNING, (6, 0), int(np.argmax(convention)),
                           int(convention.sum()), param="loss"))
    return out


def one_line(a: np.ndarray) -> str:
    """A value for a one-line message: entries in row-major order, at most 6 shown, never a line break."""
    a = np.asarray(a)
    flat = [f"{v:.6g}" for v in a.reshape(-1).tolist()]
    if a.ndim == 0:
        return flat[0]
    return "[" + ", ".join(flat if len(flat) <= 6 else [*flat[:3], "...", *flat[-3:]]) + "]"
