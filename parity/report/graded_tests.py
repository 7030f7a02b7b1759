"""A check as graded tests, what a grading system's results file lists: one test per class, one per phase.

A class test covers one class alone against Keras and everything found on it; the classes graded are the
`[grading] classes` (default: the hidden layers the run uses, Affine and Relu or Sigmoid) and any other class
of the learner's the run used (a loss layer, the optimizer). A required class the learner did not define fails
("the reference stood in"). A phase test covers the whole network in one phase of the comparison (probe, batch,
stepping). A test passes whole or not at all. What a student reads is the cause and where it is (`cause`,
`output`); the fix to try is kept apart (`fixes`), for a grader format to show only after the due date, or never.
"""

from __future__ import annotations

from dataclasses import dataclass

from parity.compare.findings import Finding
from parity.settings.grading import PHASE_TESTS, GradingPoints
from parity.settings.scenarios import SCENARIOS
from parity.settings.spec import ModelSpec

__all__ = ["GradedTest", "graded_tests", "headline", "notes", "points_at_stake", "required_classes"]

_UNITS = {"probe": "samples", "batch": "batches", "stepping": "steps"}
_LOSSES = ("SoftmaxWithLoss", "MeanSquaredError")


@dataclass(frozen=True)
class GradedTest:
    key: str  # the class (Relu) or the phase (probe) it grades: the name [grading] points uses
    name: str  # as shown: "class Relu", "whole network: probe (every sample alone at the fitted weights)"
    points: float
    max_points: float
    cause: str  # one line: why it failed, and where ("" when it passed)
    output: str  # what a student may read: the causes with where they are, warnings, numbers; never a fix
    fixes: tuple[str, ...] = ()  # the fix to try for each cause: for the instructor, or after the due date

    @property
    def passed(self) -> bool:
        return not self.cause


def said(f: Finding) -> str:
    """A finding as a student reads it: code, message, where it happened and where its code is; no fix."""
    where = f" ({f.where})" if f.where and f.where not in f.message else ""
    at = f" [{f.phase}, {f.location}]" if f.location else ""
    return f"{f.code}: {f.message}{where}{at}"


def _spec(config) -> ModelSpec:
    layers, loss = config.layers, config.loss
    if layers is None:  # a saved model's layers are read later; its scenario stands in for the classes it needs
        scenario = SCENARIOS.get(config.scenario) or SCENARIOS["seed"]
        layers, loss = scenario.layers, scenario.loss
    return ModelSpec(input_dim=1, layers=tuple(layers), loss=loss)


def required_classes(config, points: GradingPoints) -> list[str]:
    """The classes every submission is graded on: `[grading] classes`, else the run's hidden-layer classes."""
    if points.classes is not None:
        return list(points.classes)
    used = _spec(config).classes() if config is not None else {"Affine", "Relu"}
    return [n for n in ("Affine", "Relu", "Sigmoid") if n in used]


def points_at_stake(config, points: GradingPoints) -> float:
    """The points of a submission that could not be checked (bad input, a timeout, a crash)."""
    return (sum(points.of(n, "class") for n in required_classes(config, points))
            + sum(points.of(p, "phase") for p in PHASE_TESTS))


def _class_test(name: str, result, points: GradingPoints) -> GradedTest:
    worth = points.of(name, "class")
    whose = result.layers.get(name) or (result.optimizer.get("class") if result.optimizer.get("book_class") == name
                                        else None) or "reference"
    if not str(whose).startswith("yours"):
        return GradedTest(name, f"class {name}", 0.0, worth, f"{name} is not defined in your code: the reference "
                          f"{name} stood in", f"Define your own {name}: this test grades it alone against Keras.")
    mine = [f for f in result.findings if f.layer == name]
    errors = [f for f in mine if f.severity == "error"]
    roots = [f for f in errors if not f.consequence_of] or errors
    warnings = [f for f in mine if f.severity == "warning"]
    lines = [f"your {name}: {whose.removeprefix('yours ').strip('()')}"]
    lines += [said(f) for f in roots] + [f"warning {said(f)}" for f in warnings]
    if len(errors) > len(roots):
        lines.append(f"and {len(errors) - len(roots)} later mismatches that follow from these")
    if not errors:
        lines.insert(1, f"{name} computes what Keras computes" + (" (warnings do not cost points)" if warnings else ""))
    return GradedTest(name, f"class {name}", 0.0 if errors else worth, worth, said(roots[0]) if errors else "",
                      "\n".join(lines), tuple(dict.fromkeys(f.fix for f in roots if f.fix)))


def _phase_test(phase: str, result, points: GradingPoints) -> GradedTest:
    worth = points.of(phase, "phase")
    errors = [f for f in result.findings if f.severity == "error" and f.phase == phase]
    roots = [f for f in errors if not f.consequence_of]
    follows = [f for f in errors if f.consequence_of]
    s = result.summaries[phase]
    agreed = s.verdicts["pass"] + s.verdicts["kink"] + s.verdicts["convention"]
    unjudged = s.verdicts.get("unjudged", 0)  # neither passed nor failed (parity.compare.resync)
    lines = [f"{agreed:,} of {s.rows:,} {_UNITS[phase]} agree with Keras within the tolerance"
             + (f"; {unjudged:,} not judged (the unjudged warning says why)" if unjudged else "")]
    lines += [said(f) for f in roots]
    probed = {f.layer for f in result.findings if f.phase == "layer probe" and f.severity == "error" and f.layer}
    blamed = sorted({f"class {c}" for f in follows for c in ({f.layer} if f.layer else probed
                                                             if f.consequence_of == "layer probe" else ())}
                    | {f"the {f.consequence_of}" for f in follows if not f.layer and f.consequence_of != "layer probe"})
    if follows:
        lines.append(f"{len(follows)} mismatch{'es' * (len(follows) != 1)} here follow from what was found earlier"
                     + (f" ({', '.join(blamed)})" if blamed else ""))
    cause = said(roots[0]) if roots else (lines[-1] if errors else "")
    return GradedTest(phase, f"whole network: {phase} ({PHASE_TESTS[phase]})", 0.0 if errors else worth, worth, cause,
                      "\n".join(lines), tuple(dict.fromkeys(f.fix for f in roots if f.fix)))


def graded_tests(result, points: GradingPoints) -> list[GradedTest]:
    """The tests of one check (a ParityResult): its classes, then the phases it compared."""
    classes = required_classes(result.config, points)
    yours = [n for n, w in result.layers.items() if str(w).startswith("yours")]
    if str(result.optimizer.get("class", "")).startswith("yours"):
        yours.append(result.optimizer["book_class"])
    used = result.spec.classes()
    classes += [n for n in yours if n not in classes and (n in used or n not in _LOSSES + ("Sigmoid", "Relu"))]
    return [_class_test(n, result, points) for n in classes] + \
        [_phase_test(p, result, points) for p in PHASE_TESTS if p in result.summaries]


def notes(result, tests: list[GradedTest]) -> list[str]:
    """Warnings and errors no test covers (the notebook's skipped cells and failed imports, classes not the
    learner's, a diverging fit, a class the run does not grade), as a student reads them."""
    keys = {t.key for t in tests}
    return [f"{f.severity} {said(f)}" for f in result.findings
            if f.severity != "info" and f.phase not in keys and f.layer not in keys]


def headline(result, tests: list[GradedTest]) -> str:
    c = result.config
    got, worth = sum(t.points for t in tests), sum(t.max_points for t in tests)
    passed = sum(t.passed for t in tests)
    return (f"keras-parity: {result.verdict.upper()} (scenario {c.scenario}, {c.dtype}): {passed} of {len(tests)} "
            f"tests passed, {got:g} of {worth:g} points")
