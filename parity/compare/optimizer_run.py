"""The run's optimizer on the NumPy side, and what the stepping run says about it (NumPy only).

A check steps with the user's optimizer class of the run's name when their module has one, else with
the book's (parity.book.optimizers), through one OptimizerDriver. After the stepping comparison, `judge`
reads both sides' trajectories (parameters, state, the gradients each update was given):
- the class computes the book's formula on its own gradients (a replay says so) and the formula is
  Keras's: nothing to say about the optimizer; whatever still differs is the layers'.
- it computes the book's formula and Keras's differs by a convention (epsilon inside the root): the
  diagnosis's `convention` finding, with its measured size, and the stepping rows it explains are
  excused. The evidence: a replay of the book's formula reproduces the class, a replay of the
  Keras-convention reference reproduces Keras, and the same layers stepped with that reference match
  Keras row by row (so the layers are right along the trajectory). Never a widened tolerance.
- otherwise the diagnosis names the cause (sign, lr twice, state reset, ...), an error on the
  optimizer class that the stepping mismatches follow from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from parity.compare.findings import Finding
from parity.diagnosis.fixes import fix_for
from parity.user_code.guard import where_defined
from parity.numpy_side.trace import Trace
from parity.user_code.attributes import hyperparameter_differences, hyperparameters_of
from parity.diagnosis.optimizer import Trajectory, computes, diagnose_optimizer, largest_difference
from parity.settings.optimizer_registry import OptimizerSettings
from parity.settings.tolerances import Tolerance
from parity.user_code.optimizer_driver import OptimizerDriver, constructor_arguments, optimizer_class_in

__all__ = ["RunOptimizer", "OptimizerVerdict", "run_optimizer", "judge"]

# What the diagnosis may say about a class that computes the book's formula on its own gradients.
_ABOUT_THE_BOOKS = ("convention", "state_mismatch")


@dataclass(frozen=True)
class RunOptimizer:
    """The optimizer a check steps the NumPy side with."""

    settings: OptimizerSettings
    cls: type | None = None  # the user's class; None: the book's reference
    source: str = ""  # where the user's class came from

    @property
    def book_class(self) -> str:
        return self.settings.info.book_class

    @property
    def class_name(self) -> str:
        return self.cls.__name__ if self.cls is not None else self.book_class

    def whose(self) -> str:
        if self.cls is not None:
            return f"yours ({self.cls.__name__} from {self.source})"
        if self.settings.name == "sgd":
            return "reference (plain SGD: p -= lr * g, in place)"
        return f"reference (the book's {self.book_class}, parity.book.optimizers.{self.book_class})"

    def stepper(self, params: dict[str, np.ndarray]):
        """What the NumPy side steps with: the learning rate for the reference's plain SGD, else a driver."""
        if self.cls is None and self.settings.name == "sgd":
            return self.settings.hyper["lr"]
        return OptimizerDriver(self.cls or self.settings.info.reference, self.settings, params)

    def convention_stepper(self, params: dict[str, np.ndarray]) -> OptimizerDriver:
        """A driver for the reference written in Keras's convention, with the run's hyperparameters."""
        return OptimizerDriver(self.settings.info.keras_reference, self.settings, params,
                               "the Keras-convention reference")


def run_optimizer(classes: dict[str, type], settings: OptimizerSettings, source: str, label: str) -> RunOptimizer:
    """The user's class of the run's optimizer among `classes`, else the book's; a class the run cannot drive is
    a ParityInputError, before any work."""
    cls = optimizer_class_in(classes, settings.name, label) if classes else None
    if cls is not None:
        constructor_arguments(cls, settings, label)  # a class the run cannot construct is refused here
    return RunOptimizer(settings, cls, source if cls is not None else "")


@dataclass
class OptimizerVerdict:
    """What the stepping run says about the optimizer: findings, the rows a convention explains, the report record."""

    findings: list[Finding]
    excused: np.ndarray | None = None  # (steps,) rows whose every difference the convention explains
    record: dict = field(default_factory=dict)  # summary.json's "optimizer"

    @property
    def root_cause(self) -> bool:
        """An error on the optimizer class: the stepping mismatches follow from it."""
        return any(f.severity == "error" for f in self.findings)


def judge(run: RunOptimizer, stepper, initial: dict[str, np.ndarray], ours: Trace, keras: Trace, tol: Tolerance,
          recheck: Callable[[OptimizerDriver], np.ndarray], keras_record: dict) -> OptimizerVerdict:
    """The optimizer's findings over one stepping run (see the module's docstring).

    `stepper` is what `ours` stepped with (run.stepper(...)); `initial` the parameters before the first
    update; `recheck(driver)` steps the same layers with another driver and returns, per row, whether
    that run matches Keras's (pass or kink).
    """
    settings = run.settings
    record = _record(run, stepper, keras_record, ours, keras)
    if not isinstance(stepper, OptimizerDriver):  # the reference's plain SGD: Keras's formula, nothing to judge
        return OptimizerVerdict([], None, record)
    findings = [_blamed(f, run) for f in stepper.findings]
    if not stepper.constructed:
        return OptimizerVerdict(findings, None, record)
    failed = [f["step"] for f in stepper.findings if f["severity"] == "error"] + [e.row for e in ours.errors]
    steps = min(failed + [_first_non_finite(ours)], default=len(ours.loss))
    user = Trajectory(ours.params_after, ours.state_after, ours.grads)
    theirs = Trajectory(keras.params_after, keras.state_after, keras.grads)
    held = hyperparameter_differences(stepper.instance, settings)
    books = run.cls is None or (not held and steps > 0 and computes(settings.reference, initial, user, tol, steps))
    found = diagnose_optimizer(settings, initial, user, theirs, tol, run.class_name, held, steps)
    excused = None
    if books:
        found = [f for f in found if f["code"] in _ABOUT_THE_BOOKS]
        if any(f["code"] == "convention" for f in found):
            excused = recheck(run.convention_stepper(initial))
        record["conventions"] = _conventions(settings, user, theirs, steps, tol, found)
    findings += [_blamed({**f, "steps_compared": steps}, run) for f in found]
    return OptimizerVerdict(findings, excused, record)


def _first_non_finite(trace: Trace) -> int:
    """The first step whose gradients or parameters are not finite (a diverging run); the step count if none.

    Replays are compared up to there: past an overflow, inf and NaN land on slightly different steps in a
    replay and in the learner's code, and the `nan` finding speaks for what follows."""
    rows = [np.isfinite(v.reshape(len(v), -1)).all(axis=1) for v in (*trace.grads.values(), *trace.params_after.values())]
    finite = np.all(rows, axis=0)
    return int(np.argmin(finite)) if not finite.all() else len(finite)


def _blamed(finding: dict, run: RunOptimizer) -> Finding:
    """A finding on the optimizer class, typed where it arrives from the diagnosis or the driver: the stepping
    phase, the book class blamed, the user's spelling and line, and the fix for this optimizer."""
    out = {**finding, "phase": "stepping", "layer": run.book_class, "class_name": run.class_name}
    if run.cls is not None and not out.get("where"):
        out["where"] = where_defined(run.cls, "update")
    out["fix"] = fix_for(out["code"], run.settings.name, "optimizer")
    return Finding.of({k: v for k, v in out.items() if v not in ("", None)})


def _conventions(settings: OptimizerSettings, user: Trajectory, keras: Trajectory, steps: int, tol: Tolerance,
                 found: list[dict]) -> list[dict]:
    """Each of the optimizer's conventions with its measured size over this run (the book's formula on both sides)."""
    size = largest_difference(user.params, keras.params, steps)
    scale = max(float(np.max(np.abs(np.asarray(v[:steps], np.float64)), initial=0.0)) for v in keras.params.values())
    within = all(_within(user.params[k][:steps], keras.params[k][:steps], tol) for k in keras.params)
    return [{"name": c.name, "explanation": c.explanation, "measured_size": size,
             "measured_size_relative": size / max(scale, tol.atol), "steps": steps, "within_tolerance": within,
             "finding": any(f["code"] == "convention" for f in found)}
            for c in settings.info.conventions]


def _within(ours: np.ndarray, theirs: np.ndarray, tol: Tolerance) -> bool:
    a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return bool(np.all(tol.within(a, b)))


def _record(run: RunOptimizer, stepper, keras_record: dict, ours: Trace, keras: Trace) -> dict:
    """summary.json's "optimizer": the optimizer, its hyperparameters on both sides, the Keras optimizer built."""
    settings = run.settings
    if not isinstance(stepper, OptimizerDriver):
        numpy_side = dict(settings.hyper)
    else:  # what the instance holds (the book's classes keep epsilon as a class attribute); {} if it never was
        numpy_side = hyperparameters_of(stepper.instance, settings.name) if stepper.constructed else {}
    return {"name": settings.name, "book_class": run.book_class, "class": run.whose(),
            "hyperparameters": {"run": dict(settings.hyper), "given": list(settings.given), "numpy": numpy_side,
                                "keras": dict(keras_record["arguments"])},
            "keras": keras_record,
            "state_compared": sorted(s for s in ours.state_after if s in keras.state_after),
            "conventions": []}
