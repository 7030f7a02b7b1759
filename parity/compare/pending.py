"""PendingFinding: a whole-run finding while its rows are still coming in, chunk by chunk.

A phase's comparison finds its mismatches chunk by chunk (parity.compare.phase_findings); each is a
PendingFinding that merges with the same finding of the next chunk by adding counts, keeping the worst
difference and the first offender. Once the counts are final, `finding` says it in words and makes the
public Finding: no message exists before the numbers in it do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from parity.compare.findings import Finding
from parity.diagnosis.mismatch import Cause

__all__ = ["PendingFinding", "SAMPLE_ROWS", "merge", "finding"]

SAMPLE_ROWS = 1024  # offending rows kept per finding for diagnosis: the first ones, whatever the chunking
UNITS = {"sample": "samples", "batch": "batches", "step": "steps"}


@dataclass(frozen=True)
class PendingFinding:
    """What one chunk of a phase showed; `what` says which sentence it becomes."""

    what: str  # shape | raised | nonfinite | mismatch | mask | kink | tie | convention
    code: str  # the code as found; a Cause may name a more specific one
    severity: str
    phase: str  # probe | batch | stepping
    unit: str  # sample | batch | step: what `first` and `count` count
    rank: tuple[int, int]  # orders a phase's findings the same however its rows were chunked
    first: int | None = None  # the first offender (None for a shape, which every row shares)
    count: int | None = None  # rows it covers
    param: str | None = None
    layer: str | None = None  # the book class whose method raised
    method: str | None = None
    where: str | None = None  # "file:line" of the code that raised
    layer_number: int | None = None  # a Dense layer
    convolution: int | None = None  # a convolution (its parameter number), whose map a mask finding is about
    unit_at: str = ""  # mask: the first offender's unit ("unit 3") or map cell ("filter 2 (row 0, col 5)")
    map_cell: dict | None = None  # mask on a convolution's map: that cell as {"filter", "row", "col"} (kink_rows')
    forward: bool = False  # the quantity is an output (pred, loss, z), not a gradient
    worst: float | None = None  # the largest abs difference over its rows
    values: tuple[str, str] = ("", "")  # ours and Keras's at the first offender, each on one line
    said: str = ""  # shape and raised: what was seen, in the user's own words where they are the user's
    sides: tuple[str, ...] = ()  # nonfinite: NumPy, Keras
    quantities: tuple[str, ...] = ()  # nonfinite: every quantity that went non-finite
    rows: tuple[np.ndarray, np.ndarray] | None = None  # the first SAMPLE_ROWS offending rows (ours, Keras's)

    def key(self) -> tuple:
        """Chunks of one finding share this: nan is one finding per phase, whichever quantity went first."""
        return (self.phase, self.code, None if self.code == "nan" else self.param, self.layer, self.method,
                self.layer_number, self.convolution)

    def merged(self, later: "PendingFinding") -> "PendingFinding":
        """This chunk's finding with a later chunk's: counts added, the worst kept, the first offender this one's."""
        def union(a: tuple, b: tuple) -> tuple:
            return tuple(dict.fromkeys([*a, *b]))
        return replace(
            self, count=None if self.count is None else self.count + (later.count or 0),
            worst=None if self.worst is None else max(self.worst, later.worst),
            sides=union(self.sides, later.sides), quantities=union(self.quantities, later.quantities),
            rows=None if self.rows is None else tuple(np.concatenate([a, b])[:SAMPLE_ROWS]
                                                       for a, b in zip(self.rows, later.rows)))


def merge(found: list[PendingFinding]) -> list[PendingFinding]:
    """One finding per key, in the order one whole phase lists them (stable: within a rank, first seen)."""
    merged: dict[tuple, PendingFinding] = {}
    for p in found:
        key = p.key()
        merged[key] = p if key not in merged else merged[key].merged(p)
    return sorted(merged.values(), key=lambda p: p.rank)


def _message(p: PendingFinding, cause: Cause | None) -> str:
    units = p.unit if p.count == 1 else UNITS[p.unit]
    at = f"first at {p.unit} {p.first}"
    if p.what == "shape":
        return f"{p.phase}: {p.said}"
    if p.what == "raised":
        return f"{p.phase}: {p.said} on {p.count} {units}, {at}"
    if p.what == "nonfinite":
        sides = "both sides" if len(p.sides) == 2 else f"the {p.sides[0]} side"
        return (f"{p.phase}: non-finite values on {sides} on {p.count} {units}, {at} in {p.param}; non-finite "
                f"anywhere in: {', '.join(p.quantities)}")
    if p.what == "mismatch":
        return (f"{p.phase}: {p.param} differs beyond tolerance on {p.count} {units} (worst abs diff {p.worst:.3g}), "
                f"{at}: numpy {p.values[0]} vs keras {p.values[1]}" + (cause.sentence() if cause else ""))
    if p.what == "mask":
        whose = f"layer {p.layer_number}" if p.convolution is None else f"convolution {p.convolution}"
        return (f"{p.phase}: {whose}'s dead-ReLU mask differs on {p.count} {units} away from the kink, {at}, "
                f"{p.unit_at}")
    if p.what == "kink":
        return (f"{p.phase}: {p.count} {units} with a pre-activation within rounding of 0, where the sides may "
                f"legitimately differ; {at}")
    if p.what == "tie":
        return (f"{p.phase}: on {p.count} {units} a max-pooling window's two largest inputs lie within rounding of each "
                "other, so the sides may send its gradient to different cells; only that filter's kernel and bias "
                f"gradients and dx differ there, everything after the pooling agrees; {at}")
    return (f"{p.phase}: the loss differs on {p.count} {units} by no more than the book's log(y + 1e-7) explains "
            f"(1e-7 / y); predictions and gradients agree; {at}")


def finding(p: PendingFinding, cause: Cause | None = None, **decided) -> Finding:
    """The public Finding once the counts are final: its message said from the numbers, its code the cause's
    when one was named. `decided` holds what the run decides about it (consequence_of, layer, fix)."""
    details = {}
    if p.worst is not None:
        details["worst"] = p.worst
    if p.what == "nonfinite":
        details.update(quantities=list(p.quantities), sides=list(p.sides))
    if p.convolution is not None:
        details.update(convolution=p.convolution, map_cell=p.map_cell)
    fields = dict(code=cause.code if cause else p.code, severity=p.severity, phase=p.phase, message=_message(p, cause),
                  layer=p.layer, method=p.method, where=p.where, layer_number=p.layer_number, param=p.param,
                  count=p.count, details=details, **{p.unit: p.first})
    return Finding(**{**fields, **decided})
