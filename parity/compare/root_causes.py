"""Which findings are root causes and which follow from them: one function for the terminal, report.html
and assert_parity's message, so the three always group a run's findings the same way.

A finding marked `consequence_of` follows from a finding of that phase ("layer probe", "probe"), or of the
optimizer class ("optimizer": its findings are in the stepping phase, on the optimizer's book class). When a
consequence names the class at fault (`layer`), its parent is that class's finding. Among the candidates,
the finding on the same quantity comes first (a parameter after a step, W1, comes from its gradient, dW1),
then one of the same code, then one whose bug explains it (a ReLU mask bug explains a scale), then the
phase's first error. A chain is followed up to its root; a consequence whose parent is not there is a root
of its own.
"""

from __future__ import annotations

from dataclasses import replace

from parity.compare.findings import Finding
from parity.diagnosis.fixes import consequence_fix

__all__ = ["root_causes", "followers_text", "with_consequence_fixes"]

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
_EXPLAINED_BY = {"scale_factor": "mask_mismatch"}  # a missing mask leaks a fixed share of the right gradient


def _gradient_of(param: str | None) -> str | None:
    """The probe quantity a later phase's finding repeats: a parameter after a step (W1) comes from its gradient (dW1)."""
    if param and param[0] in "Wb" and param[1:].isdigit():
        return "d" + param
    return param


def _parent(f: Finding, findings: list[Finding]) -> Finding | None:
    """The finding `f` follows from directly (it may itself follow from another). Never a sibling: what follows
    from the same thing as `f` (the optimizer's other stepping mismatches, say) explains nothing about it."""
    phase = "stepping" if f.consequence_of == "optimizer" else f.consequence_of
    there = [g for g in findings if g is not f and g.phase == phase and g.severity != "info"
             and g.consequence_of != f.consequence_of]
    if f.layer is not None:
        there = [g for g in there if g.layer == f.layer] or there
    pool = [g for g in there if g.severity == "error"] if f.severity == "error" else there  # no error from a warning
    quantity = _gradient_of(f.param)
    ordered = ([g for g in pool if g.param is not None and g.param == quantity]
               + [g for g in pool if g.code == f.code]
               + [g for g in pool if g.code == _EXPLAINED_BY.get(f.code)] + pool)
    return ordered[0] if ordered else None


def _root_of(f: Finding, findings: list[Finding]) -> Finding | None:
    """The root `f` follows from, up its chain; None when there is none to find."""
    seen = {id(f)}
    parent = _parent(f, findings)
    while parent is not None and parent.consequence_of:
        if id(parent) in seen:
            return None
        seen.add(id(parent))
        parent = _parent(parent, findings)
    return parent


def root_causes(findings: list[Finding]) -> list[tuple[Finding, list[Finding]]]:
    """(root, the findings that follow from it) for every root: errors first, then warnings, then info, each
    in the run's order; consequences in the run's order too."""
    roots = {id(f): (f, []) for f in findings if not f.consequence_of}
    for f in findings:
        if not f.consequence_of:
            continue
        root = _root_of(f, findings)
        if root is None:
            roots[id(f)] = (f, [])
        else:
            roots[id(root)][1].append(f)
    order = [id(f) for f in findings if id(f) in roots]
    groups = [roots[i] for i in order]
    return sorted(groups, key=lambda g: _SEVERITY_ORDER.get(g[0].severity, 3))


def followers_text(consequences: list[Finding]) -> str:
    """'18 findings that follow from it: 3 in probe, 3 in batch, 12 in stepping'."""
    phases: dict[str, int] = {}
    for f in consequences:
        phases[str(f.phase)] = phases.get(str(f.phase), 0) + 1
    n = len(consequences)
    return (f"{n} finding{'s' * (n != 1)} that follow{'s' * (n == 1)} from it: "
            + ", ".join(f"{k} in {phase}" for phase, k in phases.items()))


def with_consequence_fixes(findings: list[Finding]) -> list[Finding]:
    """The findings in their order, each consequence's fix pointing at its root's: a layer's fix for what follows
    from an optimizer bug (or the reverse) would send the reader to code that is not wrong."""
    root_of = {id(c): root for root, consequences in root_causes(findings) for c in consequences}
    return [replace(f, fix=consequence_fix(root_of[id(f)].code, root_of[id(f)].phase, root_of[id(f)].layer,
                                           root_of[id(f)].fix)) if id(f) in root_of else f for f in findings]
