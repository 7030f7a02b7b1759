"""Say why a learner's optimizer parts from Keras's over a stepping run, with evidence (NumPy only).

Inputs are two trajectories along one run (the learner's optimizer and the Keras optimizer): the
parameters after each update, the state where each side exposes it under the book's names, and the
gradients each update was given. Out come findings (plain dicts):
- nothing, when every parameter and shared state agree within the dtype's tolerance at every step;
- `convention` (a warning, with its measured size) when the learner's parameters equal a replay of the
  book's formula on their gradients, Keras's equal a replay of the Keras-convention reference on
  Keras's gradients, and so the only difference is that convention; an epsilon other than the run's
  (held, or a literal found by replaying 1e-8, 1e-7, 1e-6 and 1e-5) is one such convention;
- an error naming the cause whose replay (parity.diagnosis.optimizer_variants) reproduces the learner's
  parameters at every step; `update_mismatch` when none does, with the factor between the two sides'
  steps where they part.
Every finding names the first step where the sides part and which quantity (state or parameter)
parted first. CODES (parity.diagnosis.optimizer_codes) is the table of what this module can say; the
driver (parity.user_code.optimizer_driver) adds layer_error, shape_mismatch and input_mutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from parity.diagnosis.mismatch import classify
from parity.diagnosis.optimizer_codes import CODES, Code
from parity.settings.optimizer_registry import OptimizerSettings
from parity.diagnosis.optimizer_variants import base_makers, epsilon_candidates, replay, variants_for
from parity.settings.tolerances import Tolerance

__all__ = ["CODES", "Code", "Trajectory", "computes", "diagnose_optimizer", "first_parting", "largest_difference"]


@dataclass
class Trajectory:
    """One side's stepping run: after each update, its parameters and the state it exposes."""

    params: dict[str, np.ndarray]  # name -> (steps, *shape)
    state: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # book state -> name -> (steps, *shape)
    grads: dict[str, np.ndarray] | None = None  # name -> (steps, *shape): what each update was given


def _close(ours: np.ndarray, theirs: np.ndarray, tol: Tolerance, equal_nan: bool = False) -> np.ndarray:
    """Per step: every entry within tolerance (non-finite never, unless both are NaN and equal_nan)."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    ok = tol.within(a, b)
    if equal_nan:
        ok |= (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & (a == b))
    return ok.reshape(len(a), -1).all(axis=1)


def _quantities(user: Trajectory, keras: Trajectory) -> list[tuple[str, str, str]]:
    """(kind, state name or "", parameter name): the state both sides expose first, then the parameters."""
    out = [("state", s, k) for s in user.state if s in keras.state for k in user.state[s] if k in keras.state[s]]
    return out + [("param", "", k) for k in user.params]


def _values(t: Trajectory, kind: str, state: str, name: str) -> np.ndarray:
    return t.params[name] if kind == "param" else t.state[state][name]


def first_parting(user: Trajectory, keras: Trajectory, tol: Tolerance, steps: int) -> tuple[int, list] | None:
    """(the first step where any quantity differs beyond tolerance, those quantities, state first), or None."""
    bad = {q: ~_close(_values(user, *q)[:steps], _values(keras, *q)[:steps], tol) for q in _quantities(user, keras)}
    first = min((int(np.argmax(b)) for b in bad.values() if b.any()), default=None)
    if first is None:
        return None
    return first, [q for q, b in bad.items() if b[first]]


def _say(quantities: list) -> str:
    words = [f"state {s}['{k}']" if kind == "state" else f"parameter {k}" for kind, s, k in quantities]
    rest = words[1:4] + ([f"{len(words) - 4} more"] if len(words) > 4 else [])
    return words[0] + (f" (then {', '.join(rest)})" if rest else "")


def largest_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], steps: int) -> float:
    """Largest |a - b| over the first `steps`, where the same non-finite value on both sides counts as equal."""
    worst = 0.0
    for k in a:
        x, y = np.asarray(a[k][:steps], np.float64), np.asarray(b[k][:steps], np.float64)
        with np.errstate(invalid="ignore"):
            d = np.abs(x - y)
        same = (np.isnan(x) & np.isnan(y)) | (np.isinf(x) & (x == y))
        d = np.where(same, 0.0, d)
        worst = max(worst, float(np.max(np.where(np.isnan(d), np.inf, d), initial=0.0)))
    return worst


def _matches(user: dict[str, np.ndarray], replayed: dict[str, np.ndarray], tol: Tolerance, steps: int) -> bool:
    return all(_close(user[k][:steps], replayed[k][:steps], tol, equal_nan=True).all() for k in user)


def computes(make, initial: dict[str, np.ndarray], trajectory: Trajectory, tol: Tolerance, steps: int) -> bool:
    """Whether `make`'s optimizer, replayed on a trajectory's own gradients, reproduces its parameters for `steps`."""
    return _matches(trajectory.params, replay(make, initial, trajectory.grads, steps), tol, steps)


_FIRST_STEPS = 8  # replayed before the whole run: where most candidates already part from the learner's


@dataclass
class _Run:
    """What every step of the diagnosis reads: both sides over the first `n` steps, and where they part."""

    settings: OptimizerSettings
    initial: dict[str, np.ndarray]
    user: Trajectory
    keras: Trajectory
    tol: Tolerance
    n: int
    held: dict[str, float]  # book keyword -> the learner's value, where it differs from the run's (epsilon too)
    base: dict  # the fields every finding carries
    where: dict = field(default_factory=dict)  # step, param (and state) of the first parting
    parted: str = ""  # the same, in words
    _keras_is: list = field(default_factory=list)  # keras_computes(), once: [] until asked

    def finding(self, code: str, severity: str, message: str, **extra) -> dict:
        return {**self.base, **self.where, "code": code, "severity": severity, "message": message, **extra}

    def user_is(self, make, grads=None, params=None) -> dict[str, np.ndarray] | None:
        """The replay of `make` on the learner's gradients (or `grads`), if it reproduces `params` (theirs).
        A replay that raises (a shared array NumPy cannot broadcast) reproduces nothing. The first few steps are
        replayed first: most candidates part there, and the whole run is replayed only for one that does not."""
        grads = self.user.grads if grads is None else grads
        target = self.user.params if params is None else params
        try:
            for steps in dict.fromkeys((min(self.n, _FIRST_STEPS), self.n)):
                replayed = replay(make, self.initial, grads, steps)
                if not _matches(target, replayed, self.tol, steps):
                    return None
        except (ValueError, IndexError, TypeError):
            return None
        return replayed

    def keras_computes(self) -> str | None:
        """Which formula, at the run's settings, reproduces Keras's parameters on Keras's gradients: "the book's",
        "Keras's" (its convention), or None without the evidence."""
        if not self._keras_is:
            self._keras_is.append(None if self.keras.grads is None else next(
                (label for label, make in base_makers(self.settings)
                 if self.user_is(make, self.keras.grads, self.keras.params) is not None), None))
        return self._keras_is[0]

    def epsilon_said(self, eps: float | None) -> str:
        """", with epsilon 1e-08 (...)" where the class's epsilon is not the run's; "" where it is."""
        if eps is None or math.isclose(eps, self.settings.epsilon, rel_tol=1e-9):
            return ""
        how = "which it holds" if math.isclose(eps, self.held.get("epsilon", -1.0), rel_tol=1e-9) else \
            "a literal in its update, found by replaying the common values"
        return (f", with epsilon {eps:g} ({how}) where the run's Keras optimizer was built with "
                f"{self.settings.epsilon:g}")


def diagnose_optimizer(settings: OptimizerSettings, initial: dict[str, np.ndarray], user: Trajectory,
                       keras: Trajectory, tol: Tolerance, class_name: str, held: dict | None = None,
                       steps: int | None = None) -> list[dict]:
    """Findings for a learner's optimizer against Keras's over one stepping run (see the module's docstring).

    `initial` holds the parameters before the first update (both sides start there). `held` is
    user_optimizers.hyperparameter_differences(...) of the learner's instance: keyword -> (theirs, run's);
    it is applied to every replay, and named in its own finding, but for epsilon: an epsilon other than the
    run's is a convention where the class is otherwise exact (the replays try the common values too, for
    one written as a literal). `steps` limits the comparison (to the steps before the learner's update first
    raised, say).
    """
    n = min(len(v) for v in user.params.values()) if steps is None else steps
    if n == 0:
        return []
    held = held or {}
    run = _Run(settings, initial, user, keras, tol, n, {k: v[0] for k, v in held.items()},
               {"layer": class_name, "method": "update", "optimizer": settings.name})
    parting = first_parting(user, keras, tol, n)
    if parting is not None:
        step, quantities = parting
        kind, state, name = quantities[0]
        run.where = {"step": step, "param": name, **({"state": state} if kind == "state" else {})}
        run.parted = f"they part from Keras's at step {step}, first in {_say(quantities)}"
    out, values = [], {k: v for k, v in held.items() if k != "epsilon"}
    if values:
        said = "; ".join(f"your {class_name} uses {k} {theirs:g}; the run's is {value:g}"
                         for k, (theirs, value) in values.items())
        tail = f"; {run.parted}" if parting else \
            f". Over these {n} steps its parameters still agree with Keras's within tolerance"
        out.append(run.finding("hyperparameter", "error" if parting else "warning", said + tail, held=values))
    if parting is None:
        return out
    if not _params_part(run):
        return out + [_state_mismatch(run, class_name)]
    if user.grads is not None:
        if values and any(run.user_is(make) for _, make in base_makers(settings, run.held)):
            return out  # the values it holds explain everything
        for eps in epsilon_candidates(settings, run.held):
            found = (None if values else _convention(run, class_name, eps)) or _named_cause(run, class_name, eps)
            if found is not None:
                return out + [found]
    return out + [run.finding(
        "update_mismatch", "error",
        f"{class_name}'s parameters part from Keras's {settings.info.keras_class} at step {parting[0]}, first in "
        f"{_say(parting[1])}; none of the known optimizer bugs, replayed on its gradients, reproduces them"
        + _increment_detail(run, parting[1], parting[0]))]


def _params_part(run: _Run) -> bool:
    return any(not _close(run.user.params[k][:run.n], run.keras.params[k][:run.n], run.tol).all()
               for k in run.user.params)


def _state_mismatch(run: _Run, class_name: str) -> dict:
    """The parameters agree at every step; the first state that does not, and how it relates to Keras's."""
    step, state, name = run.where["step"], run.where["state"], run.where["param"]
    verdict = classify(run.user.state[state][name][step], run.keras.state[state][name][step],
                       run.tol.rtol, run.tol.atol)
    detail = f" ({verdict[1]})" if verdict else ""
    return run.finding("state_mismatch", "warning", f"{class_name}'s parameters agree with Keras's at every step, "
                       f"but its state {state}['{name}'] does not, from step {step}{detail}")


def _convention(run: _Run, class_name: str, eps: float | None) -> dict | None:
    """A convention finding when the learner's parameters are the book's formula (with epsilon `eps`) on their
    gradients and Keras's are a formula of the run's settings on Keras's gradients; None without both pieces of
    evidence, or with nothing to name (the book's formula is Keras's, at Keras's epsilon)."""
    info = run.settings.info
    epsilon = run.epsilon_said(eps)
    if not info.conventions and not epsilon:
        return None
    (_, book), *_ = base_makers(run.settings, run.held, eps)
    as_book = run.user_is(book)
    keras_is = run.keras_computes() if as_book is not None else None
    if keras_is is None:
        return None
    as_keras = run.user_is(dict(base_makers(run.settings))[keras_is], run.keras.grads, run.keras.params)
    n, user, keras = run.n, run.user.params, run.keras.params
    size = largest_difference(user, keras, n)
    scale = max(float(np.max(np.abs(np.asarray(keras[k][:n], np.float64)))) for k in keras)
    named = [f"{c.name}: {c.explanation}" for c in info.conventions if keras_is == "Keras's"]
    if epsilon:
        named.append(f"epsilon_value: the class uses epsilon {eps:g}, Keras {run.settings.epsilon:g}")
    evidence = {"conventions": named, "size": size, "size_relative": size / max(scale, run.tol.atol),
                "user_vs_book": largest_difference(user, as_book, n),
                "keras_vs_convention_reference": largest_difference(keras, as_keras, n),
                **({"epsilon": eps} if epsilon else {})}
    return run.finding(
        "convention", "warning",
        f"{class_name} computes the book's {info.book_class}{epsilon} (a replay on its gradients matches to "
        f"{evidence['user_vs_book']:.2g}); Keras's {info.keras_class} differs by a convention: "
        f"{'; '.join(named)} (a reference in that convention matches Keras to "
        f"{evidence['keras_vs_convention_reference']:.2g}). Measured size over {n} steps: {size:.2g} at most; "
        f"{run.parted}", **evidence)


def _named_cause(run: _Run, class_name: str, eps: float | None) -> dict | None:
    """The first candidate bug whose replay (with epsilon `eps`) reproduces the learner's parameters at every step,
    as a finding."""
    shapes = {k: v.shape[1:] for k, v in run.user.params.items()}
    epsilon = run.epsilon_said(eps)
    for variant in variants_for(run.settings, shapes, run.held, eps):
        replayed = run.user_is(variant.make)
        if replayed is None:
            continue
        extra = {**({"epsilon": eps} if epsilon else {})}
        if variant.code == "convention":  # a convention also needs the evidence of what Keras computes
            if run.keras_computes() is None:
                continue
            extra["size"] = largest_difference(run.user.params, run.keras.params, run.n)
        evidence = largest_difference(run.user.params, replayed, run.n)
        size = f"; measured size over {run.n} steps: {extra['size']:.2g} at most" if "size" in extra else ""
        return run.finding(variant.code, variant.severity,
                           f"{class_name} behaves as {variant.description}{epsilon}: a replay of that on its "
                           f"gradients reproduces its parameters at every step (to {evidence:.2g}){size}; "
                           f"{run.parted}", cause=variant.cause, evidence=evidence, **extra)
    return None


def _increment_detail(run: _Run, quantities: list, step: int) -> str:
    """How the two sides' steps relate at the first parting: a sign, one factor, or the range of factors."""
    name = next((k for kind, _, k in quantities if kind == "param"), None)
    if name is None:
        return ""
    before = (lambda t: t.params[name][step - 1]) if step > 0 else (lambda t: run.initial[name])
    ours = np.asarray(run.user.params[name][step] - before(run.user), np.float64).ravel()
    theirs = np.asarray(run.keras.params[name][step] - before(run.keras), np.float64).ravel()
    verdict = classify(ours, theirs, run.tol.rtol, run.tol.atol)
    if verdict is not None and verdict[0] in ("sign_flip", "scale_factor"):
        factor = "-1" if verdict[0] == "sign_flip" else f"{float(verdict[1]):.6g}"
        return f"; at that step its step on {name} is {factor} x Keras's"
    moving = (np.abs(theirs) > 0) & np.isfinite(ours) & np.isfinite(theirs)
    if not moving.any():
        return f"; at that step Keras's step on {name} is 0 where its is up to {float(np.max(np.abs(ours))):.3g}"
    ratios = ours[moving] / theirs[moving]
    low, high = float(ratios.min()), float(ratios.max())
    if math.isclose(low, high, rel_tol=1e-3, abs_tol=1e-12):
        return f"; at that step its step on {name} is {low:.4g} x Keras's"
    return f"; at that step its step on {name} is {low:.3g} to {high:.3g} x Keras's, entry by entry: no one factor"
