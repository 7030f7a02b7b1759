"""What follows from what, decided once per phase as its merged findings become Findings.

One root cause, one error: a mismatch that a class's layer probe already explains is marked
`consequence_of: "layer probe"` and names that class (so are the loss rows, in any phase, that the book's
log(y + 1e-7) explains once the layer probe named that convention); one that repeats what the per-sample
probe found is marked `"probe"`; with an error on the optimizer class, the stepping mismatches are marked
`"optimizer"` and name its class. A scale beside a ReLU mask bug is that bug's doing (a unit dead on every
offending row leaks a fixed share of the right gradient). Each finding keeps its own record; the doors
group them with parity.compare.root_causes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from parity.compare.diff import ERROR
from parity.compare.findings import Finding
from parity.compare.pending import PendingFinding, finding, merge
from parity.diagnosis.fixes import fix_for
from parity.diagnosis.mismatch import cause_of

__all__ = ["Blame", "settle"]


@dataclass(frozen=True)
class Blame:
    """What the layer probes said before any whole-run phase, and what the optimizer's diagnosis said."""

    at_fault: tuple[str, ...] = ()  # classes this run uses whose layer probe found an error, in the probes' order
    mask_class: str | None = None  # the class this run uses whose layer probe found a ReLU mask bug
    book_log: str | None = None  # the class whose layer probe found the book's log(y + 1e-7)
    optimizer: str | None = None  # the optimizer's book class, when its diagnosis found an error

    @classmethod
    def of(cls, layer_findings: list[Finding], used: set[str]) -> "Blame":
        errors = [f for f in layer_findings if f.severity == ERROR and f.layer in used]
        return cls(tuple(dict.fromkeys(f.layer for f in errors)),
                   next((f.layer for f in errors if f.code == "mask_mismatch"), None),
                   next((f.layer for f in layer_findings if f.code == "convention"), None))


def settle(raw: list[PendingFinding], phase: str, blame: Blame, tol, batch_size: int,
           flagged: set) -> list[Finding]:
    """A phase's findings from every chunk, merged, each with its cause named and what it follows from.

    `flagged` holds the quantities the probe found wrong (empty for the probe itself).
    """
    merged = merge(raw)
    causes = [cause_of(p.code, p.rows, phase, p.param, p.forward, tol, batch_size, flagged) for p in merged]
    mask_here = any((c.code if c else p.code) == "mask_mismatch" for p, c in zip(merged, causes))
    out = []
    for p, cause in zip(merged, causes):
        follows, layer = None, p.layer
        if cause is not None and cause.code == "scale_factor" and (mask_here or blame.mask_class):
            cause = replace(cause, mask_leak=True)
            follows, layer = ("layer probe", blame.mask_class) if blame.mask_class else (phase, layer)
        elif p.severity != ERROR:
            if p.code == "convention" and blame.book_log:  # the layer probe's convention warning speaks for its rows
                follows, layer = "layer probe", blame.book_log
        elif blame.at_fault and (p.layer is None or p.layer in blame.at_fault):
            follows, layer = "layer probe", p.layer or blame.at_fault[0]
        elif (phase == "stepping" and flagged) or (phase == "batch" and p.param in flagged):
            follows = "probe"
        elif phase == "stepping" and blame.optimizer and p.layer is None:
            follows, layer = "optimizer", blame.optimizer
        code = cause.code if cause else p.code
        out.append(finding(p, cause, consequence_of=follows, layer=layer, fix=fix_for(code, layer)))
    return out
