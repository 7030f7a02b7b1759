"""The run's optimizer on the NumPy side, and what the stepping run says about it (NumPy only).

A check steps with the user's optimizer class of the run's name when their module has one (or the class
mapped to that name), else with the book's (parity.book.optimizers), through one OptimizerDriver. Before any
work, `run_optimizer` tries the user's class once (parity.user_code.optimizer_trial) and builds the run's
settings from what it holds where the user set nothing, so that the Keras optimizer mirrors the class (its
epsilon above all). After the stepping comparison, `judge` reads both sides' trajectories (parameters,
state, the gradients each update was given):
- the class computes the book's formula on its own gradients (a replay says so) and the formula is
  Keras's: nothing to say about the optimizer; whatever still differs is the layers'.
- it computes the book's formula, or a known convention of its own (the Adam paper's, another epsilon),
  and Keras's differs by that convention (epsilon inside the root, ...): the diagnosis's `convention`
  finding, with its measured size, and the stepping rows it explains are excused. The evidence: a replay
  of that formula reproduces the class, a replay of a reference in Keras's formula reproduces Keras, and
  the same layers stepped with that reference match Keras row by row (so the layers are right along the
  trajectory). Never a widened tolerance.
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
from parity.diagnosis.optimizer_variants import raises_alike, variants_for
from parity.settings.optimizer_registry import OPTIMIZERS, OptimizerSettings, mirroring
from parity.settings.tolerances import Tolerance
from parity.user_code.loader import UserCode
from parity.user_code.optimizer_driver import OptimizerDriver, optimizer_class_in
from parity.user_code.optimizer_trial import try_optimizer
from parity.user_code.unmapped import refuse_optimizer_substitute
from parity.user_code.update_source import idle_lines

__all__ = ["RunOptimizer", "OptimizerVerdict", "run_optimizer", "judge"]

# What the diagnosis may say about a class that computes the book's formula on its own gradients.
_ABOUT_THE_BOOKS = ("convention", "state_mismatch")
OPTIMIZER_BOOK_CLASSES = tuple(info.book_class for info in OPTIMIZERS.values())


@dataclass(frozen=True)
class RunOptimizer:
    """The optimizer a check steps the NumPy side with."""

    settings: OptimizerSettings  # the run's, with what the user's class holds where the user set nothing
    cls: type | None = None  # the user's class; None: the book's reference
    source: str = ""  # where the user's class came from
    mirrored: dict = field(default_factory=dict)  # keyword -> (the class's value, the default it replaced)

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
        return OptimizerDriver(self.cls or self._at_run_epsilon(self.settings.info.reference), self.settings, params)

    def driver(self, params: dict[str, np.ndarray]) -> OptimizerDriver:
        """A driver even for the reference's plain SGD (whose stepper is its learning rate alone), for what must follow
        each update (parity.compare.resync.Realigned)."""
        made = self.stepper(params)
        return made if isinstance(made, OptimizerDriver) else \
            OptimizerDriver(self.settings.info.reference, self.settings, params)

    def convention_stepper(self, params: dict[str, np.ndarray]) -> OptimizerDriver:
        """A driver for the reference written in Keras's convention, with the run's hyperparameters."""
        return OptimizerDriver(self._at_run_epsilon(self.settings.info.keras_reference), self.settings, params,
                               "the Keras-convention reference")

    def _at_run_epsilon(self, cls: type) -> type:
        """A reference class with the run's epsilon: the book's keep it as the class attribute `eps` (the
        Keras-convention ones take `epsilon` in their constructor, which the driver passes)."""
        if self.settings.epsilon is None or getattr(cls, "eps", self.settings.epsilon) == self.settings.epsilon:
            return cls
        return type(cls.__name__, (cls,), {"eps": self.settings.epsilon, "__doc__": cls.__doc__})


def run_optimizer(user: UserCode | None, settings: OptimizerSettings, shapes: dict[str, tuple],
                  dtype: str) -> RunOptimizer:
    """The user's class of the run's optimizer, else the book's, with the settings Keras is to mirror. Before any
    work, ParityInputError for a class the run cannot construct or drive, and for a module whose optimizer-like
    classes all go by names the tool does not map (the book's would silently step in their place)."""
    if user is None:
        return RunOptimizer(settings)
    cls = optimizer_class_in(user.classes, settings.name, user.label)
    if cls is None:
        if not any(n in OPTIMIZER_BOOK_CLASSES for n in user.mapped):
            refuse_optimizer_substitute(user.unmapped, settings.name, user.label, user.classes, bool(user.layers))
        return RunOptimizer(settings)
    trial = try_optimizer(cls, settings, shapes, dtype, user.label)  # refuses an update that cannot be driven
    mirrored_settings, mirrored = mirroring(settings, trial.held)
    return RunOptimizer(mirrored_settings, cls, user.source, mirrored)


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
    raw = [*_mirrored(run), *stepper.findings]
    if stepper.constructed:
        raw = [_shared_state(f, run, initial, ours) for f in raw]
    findings = [_blamed(f, run) for f in raw]
    if not stepper.constructed:
        return OptimizerVerdict(findings, None, record)
    failed = [f["step"] for f in stepper.findings if f["severity"] == "error"] + [e.row for e in ours.errors]
    steps = min(failed + [_first_non_finite(ours)], default=len(ours.loss))
    # What the optimizer updates: a BatchNormalization's running statistics step with the run, not the optimizer.
    initial = {k: v for k, v in initial.items() if k in ours.grads}
    user = Trajectory({k: v for k, v in ours.params_after.items() if k in ours.grads}, ours.state_after, ours.grads)
    theirs = Trajectory({k: v for k, v in keras.params_after.items() if k in ours.grads}, keras.state_after,
                        keras.grads)
    held = hyperparameter_differences(stepper.instance, settings)
    books = run.cls is None or (not held and steps > 0 and computes(settings.reference, initial, user, tol, steps))
    found = diagnose_optimizer(settings, initial, user, theirs, tol, run.class_name, held, steps)
    if books:
        found = [f for f in found if f["code"] in _ABOUT_THE_BOOKS]
        record["conventions"] = _conventions(settings, user, theirs, steps, tol, found)
    excused = None
    if any(f["code"] == "convention" for f in found) and not any(f["severity"] == "error" for f in found):
        # Evidence for the rows: the same layers stepped with Keras's formula match Keras's steps there.
        excused = recheck(run.convention_stepper(initial))
    findings += [_blamed({**f, "steps_compared": steps, **_in_source(f, run)}, run) for f in found]
    return OptimizerVerdict(findings, excused, record)


def _mirrored(run: RunOptimizer) -> list[dict]:
    """What the user's class holds in place of a value the user did not set: Keras was built with it. Epsilon is a
    convention (frameworks and the papers use 1e-8 to 1e-5); another value is said as a hyperparameter warning."""
    out, info = [], run.settings.info
    for key, (theirs, run_value) in run.mirrored.items():
        what = f"{run.class_name} holds {key} {theirs:g} where the run's is {run_value:g} (a default: you set " \
               f"none), so the Keras optimizer was built with {theirs:g} to compare at yours"
        if key == "epsilon":
            out.append({"code": "convention", "severity": "warning", "method": "update", "cause": "epsilon_value",
                        "fix": f"nothing to fix: set it for the whole run with --optimizer {info.name}:epsilon="
                               f"{theirs:g} (optimizer=\"{info.name}:epsilon={theirs:g}\" in Python, epsilon in the "
                               "TOML optimizer table)",
                        "message": f"{what}: epsilon is a convention (the book's 1e-7, the Adam paper's 1e-8), "
                                   f"not a bug", "held": {key: (theirs, run_value)}})
        else:
            out.append({"code": "hyperparameter", "severity": "warning", "method": "update",
                        "fix": f"nothing to fix if {theirs:g} is what you meant; give {key} to compare at another "
                               "value (a class that ignores a value you give is an error)",
                        "message": what, "held": {key: (theirs, run_value)}})
    return out


def _shared_state(finding: dict, run: RunOptimizer, initial: dict[str, np.ndarray], ours: Trace) -> dict:
    """An update that raised on the first step the way one state array shared by every parameter does (NumPy
    refusing to broadcast one parameter's velocity into the next one's shape): said on its layer_error, since a
    raising update leaves no trajectory to replay."""
    if finding["code"] != "layer_error" or finding.get("method") != "update" or finding.get("step") != 0:
        return finding
    shapes = {k: v.shape for k, v in initial.items()}
    grads = {k: v[0] for k, v in ours.grads.items()}
    for variant in variants_for(run.settings, shapes):
        if variant.cause == "shared_state" and raises_alike(variant.make, initial, grads, finding["message"]):
            return {**finding, "cause": "shared_state",
                    "message": finding["message"] + f"; {variant.description} raises the same error at the same step: "
                                                    "one state array for every parameter"}
    return finding


def _in_source(finding: dict, run: RunOptimizer) -> dict:
    """For an update that changes nothing: the lines of the class's update that assign nothing, read from its source."""
    if finding["code"] != "no_update" or run.cls is None:
        return {}
    lines = idle_lines(run.cls)
    if not lines:
        return {}
    where, text, why = lines[0]
    return {"where": where, "message": f"{finding['message']}; {where}: `{text}` {why}"}


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
    # A cause named on a finding of another code (shared_state on a layer_error) brings its own fix from the table.
    out["fix"] = fix_for(out["cause"] if out.get("cause") == "shared_state" else out["code"], run.settings.name,
                         "optimizer")
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
            "hyperparameters": {"run": settings.values(), "given": list(settings.given), "numpy": numpy_side,
                                "keras": dict(keras_record["arguments"]),
                                **({"mirrored": {k: {"yours": v, "default": d} for k, (v, d) in run.mirrored.items()}}
                                   if run.mirrored else {})},
            "keras": keras_record,
            "state_compared": sorted(s for s in ours.state_after if s in keras.state_after),
            "conventions": []}
