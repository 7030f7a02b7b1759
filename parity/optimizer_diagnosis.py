"""Say why a learner's optimizer parts from Keras's over a stepping run, with evidence (NumPy only).

Inputs are two trajectories along one run (the learner's optimizer and the Keras optimizer): the
parameters after each update, the state where each side exposes it under the book's names, and the
gradients each update was given. Out come findings (plain dicts):
- nothing, when every parameter and shared state agree within the dtype's tolerance at every step;
- `convention` (a warning, with its measured size) when the learner's parameters equal a replay of the
  book's formula on their gradients, Keras's equal a replay of the Keras-convention reference on
  Keras's gradients, and so the only difference is that convention;
- an error naming the cause whose replay (parity.optimizer_variants) reproduces the learner's
  parameters at every step; `update_mismatch` when none does.
Every finding names the first step where the sides part and which quantity (state or parameter) parted first.

| code              | severity | meaning                                                                 | fix |
| ----------------- | -------- | ----------------------------------------------------------------------- | --- |
| sign_flip         | error    | the update moves the parameters the opposite way                       | see FIXES |
| scale_factor      | error    | the steps are those of lr**2: the learning rate is applied twice       | see FIXES |
| state_reset       | error    | the state is rebuilt on every update instead of carried between calls  | see FIXES |
| first_update_only | error    | only the first update changes the parameters                           | see FIXES |
| shared_state      | error    | one state array serves every parameter                                 | see FIXES |
| bias_correction   | error    | Adam without its bias correction                                        | see FIXES |
| epsilon_placement | error    | epsilon somewhere other than the book's sqrt(h) + eps                  | see FIXES |
| hyperparameter    | error    | the class uses a value other than the run's (hard-coded); a warning    | see FIXES |
|                   |          | when the trajectories still agree                                       |     |
| update_mismatch   | error    | the parameters part for a cause no replay reproduces                   | see FIXES |
| convention        | warning  | the book's formula (or the Adam paper's); Keras's differs by a         | see FIXES |
|                   |          | convention it cannot be configured to match                            |     |
| state_mismatch    | warning  | the parameters agree; the state the class exposes does not             | see FIXES |
The driver (parity.user_optimizers) adds layer_error, shape_mismatch and input_mutation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.diagnose import classify
from parity.optimizer_settings import OptimizerSettings
from parity.optimizer_variants import base_makers, replay, variants_for
from parity.tolerances import Tolerance

__all__ = ["Trajectory", "diagnose_optimizer", "first_parting", "FIXES"]

FIXES = {
    "sign_flip": "subtract the step: v = momentum * v - lr * grad, then params[key] += v (or params[key] -= lr * grad)",
    "scale_factor": "multiply by lr once: the velocity already holds lr * grad, so add it to the parameters as it is",
    "state_reset": "create the state once, under `if self.h is None:`, and keep it on self between calls",
    "first_update_only": "update every parameter on every call; only the state's creation belongs under "
                         "`if self.v is None:`",
    "shared_state": "keep one array per parameter: self.v[key] = np.zeros_like(val) for each key",
    "bias_correction": "lr_t = lr * np.sqrt(1 - beta2**iter) / (1 - beta1**iter), with iter counted from 1",
    "epsilon_placement": "divide by (np.sqrt(h) + 1e-7): epsilon added to the root, inside the parentheses",
    "hyperparameter": "take the value from the constructor (lr=..., decay_rate=...) instead of hard-coding it",
    "update_mismatch": "replay your update by hand for two steps on one parameter and compare with the book's formula",
    "convention": "nothing to fix: your optimizer computes a known formula (the book's, or the Adam paper's); Keras's "
                  "differs from it by the convention named",
    "state_mismatch": "nothing to fix for the parameters; store the state as the book does to compare it step by step",
}


@dataclass
class Trajectory:
    """One side's stepping run: after each update, its parameters and the state it exposes."""

    params: dict[str, np.ndarray]  # name -> (steps, *shape)
    state: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # book state -> name -> (steps, *shape)
    grads: dict[str, np.ndarray] | None = None  # name -> (steps, *shape): what each update was given


def _close(ours: np.ndarray, theirs: np.ndarray, tol: Tolerance, equal_nan: bool = False) -> np.ndarray:
    """Per step: every entry within tolerance (non-finite never, unless both are NaN and equal_nan)."""
    a, b = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = np.abs(a - b) <= tol.atol + tol.rtol * np.abs(b)
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
    return words[0] + (f" (then {', '.join(words[1:])})" if len(words) > 1 else "")


def _max_abs(a: dict[str, np.ndarray], b: dict[str, np.ndarray], steps: int) -> float:
    with np.errstate(invalid="ignore"):
        return max(float(np.max(np.abs(np.asarray(a[k][:steps], np.float64) - np.asarray(b[k][:steps], np.float64))))
                   for k in a)


def _matches(user: dict[str, np.ndarray], replayed: dict[str, np.ndarray], tol: Tolerance, steps: int) -> bool:
    return all(_close(user[k][:steps], replayed[k][:steps], tol, equal_nan=True).all() for k in user)


def diagnose_optimizer(settings: OptimizerSettings, initial: dict[str, np.ndarray], user: Trajectory,
                       keras: Trajectory, tol: Tolerance, class_name: str, held: dict | None = None,
                       steps: int | None = None) -> list[dict]:
    """Findings for a learner's optimizer against Keras's over one stepping run (see the module's docstring).

    `initial` holds the parameters before the first update (both sides start there). `held` is
    user_optimizers.hyperparameter_differences(...) of the learner's instance: keyword -> (theirs, run's);
    it is named in its own finding and applied to every replay. `steps` limits the comparison (to the
    steps before the learner's update first raised, say).
    """
    n = min(len(v) for v in user.params.values()) if steps is None else steps
    if n == 0:
        return []
    held = held or {}
    held_values = {k: v[0] for k, v in held.items()}
    base = {"layer": class_name, "method": "update", "optimizer": settings.name}
    parting = first_parting(user, keras, tol, n)
    out = []
    if held:
        said = "; ".join(f"your {class_name} uses {k} {theirs:g}; the run's is {run:g}" for k, (theirs, run) in held.items())
        agree = "" if parting else f". Over these {n} steps its parameters still agree with Keras's within tolerance"
        out.append({**base, "code": "hyperparameter", "severity": "error" if parting else "warning",
                    "fix": FIXES["hyperparameter"], "message": said + agree, "held": held})
    if parting is None:
        return out
    step, quantities = parting
    where = {"step": step, "param": quantities[0][2], **({"state": quantities[0][1]} if quantities[0][0] == "state" else {})}
    parted = f"they part from Keras's at step {step}, first in {_say(quantities)}"
    if held:
        out[0].update(where)
        out[0]["message"] += f"; {parted}"
    if all(kind == "state" for kind, _, _ in quantities) and not _params_part(user, keras, tol, n):
        kind, s, k = quantities[0]
        verdict = classify(user.state[s][k][step], keras.state[s][k][step], tol.rtol, tol.atol)
        detail = f" ({verdict[1]})" if verdict else ""
        return out + [{**base, **where, "code": "state_mismatch", "severity": "warning", "fix": FIXES["state_mismatch"],
                       "message": f"{class_name}'s parameters agree with Keras's at every step, but its state "
                                  f"{s}['{k}'] does not, from step {step}{detail}"}]
    if user.grads is not None:
        evidence = None if held else _convention(settings, initial, user, keras, tol, n)
        if evidence is not None:
            return [{**base, **where, **evidence, "code": "convention", "severity": "warning",
                     "fix": FIXES["convention"],
                     "message": f"{class_name} computes the book's {settings.info.book_class} (a replay on its gradients "
                                f"matches to {evidence['user_vs_book']:.2g}); Keras's {settings.info.keras_class} differs "
                                f"by a convention: {'; '.join(evidence['conventions'])} (a reference in that convention "
                                f"matches Keras to {evidence['keras_vs_convention_reference']:.2g}). Measured size over "
                                f"{n} steps: {evidence['size']:.2g} at most; {parted}"}]
        if held and any(_matches(user.params, replay(make, initial, user.grads, n), tol, n)
                        for _, make in base_makers(settings, held_values)):
            return out  # the held values alone explain it
        shapes = {k: v.shape[1:] for k, v in user.params.items()}
        for variant in variants_for(settings, shapes, held_values):
            replayed = replay(variant.make, initial, user.grads, n)
            if not _matches(user.params, replayed, tol, n):
                continue
            if variant.code == "convention" and not _keras_is_book(settings, initial, keras, tol, n):
                continue  # a convention needs the evidence that Keras computes the other one
            size = f"; measured size over {n} steps: {_max_abs(user.params, keras.params, n):.2g} at most" \
                if variant.code == "convention" else ""
            return out + [{**base, **where, "code": variant.code, "severity": variant.severity, "cause": variant.cause,
                           "fix": FIXES[variant.code], "evidence": _max_abs(user.params, replayed, n),
                           **({"size": _max_abs(user.params, keras.params, n)} if variant.code == "convention" else {}),
                           "message": f"{class_name} behaves as {variant.description}: a replay of that on its "
                                      f"gradients reproduces its parameters at every step (to "
                                      f"{_max_abs(user.params, replayed, n):.2g}){size}; {parted}"}]
    increments = _increment_detail(initial, user, keras, quantities, step, tol)
    return out + [{**base, **where, "code": "update_mismatch", "severity": "error", "fix": FIXES["update_mismatch"],
                   "message": f"{class_name}'s parameters part from Keras's {settings.info.keras_class} at step {step}, "
                              f"first in {_say(quantities)}; none of the known optimizer bugs, replayed on its "
                              f"gradients, reproduces them{increments}"}]


def _keras_is_book(settings: OptimizerSettings, initial: dict, keras: Trajectory, tol: Tolerance, steps: int) -> bool:
    """Keras's parameters equal a replay of the book's formula on Keras's gradients."""
    if keras.grads is None:
        return False
    return _matches(keras.params, replay(settings.reference, initial, keras.grads, steps), tol, steps)


def _params_part(user: Trajectory, keras: Trajectory, tol: Tolerance, steps: int) -> bool:
    return any(not _close(user.params[k][:steps], keras.params[k][:steps], tol).all() for k in user.params)


def _convention(settings: OptimizerSettings, initial: dict, user: Trajectory, keras: Trajectory,
                tol: Tolerance, steps: int) -> dict | None:
    """The evidence for a convention, or None: user = book replay on its gradients, Keras = convention replay on Keras's."""
    info = settings.info
    if not info.conventions or keras.grads is None:
        return None
    (_, book), (_, convention) = base_makers(settings)
    as_book = replay(book, initial, user.grads, steps)
    as_keras = replay(convention, initial, keras.grads, steps)
    if not (_matches(user.params, as_book, tol, steps) and _matches(keras.params, as_keras, tol, steps)):
        return None
    size = _max_abs(user.params, keras.params, steps)
    scale = max(float(np.max(np.abs(np.asarray(keras.params[k][:steps], np.float64)))) for k in keras.params)
    return {"conventions": [f"{c.name}: {c.explanation}" for c in info.conventions], "size": size,
            "size_relative": size / max(scale, tol.atol), "user_vs_book": _max_abs(user.params, as_book, steps),
            "keras_vs_convention_reference": _max_abs(keras.params, as_keras, steps)}


def _increment_detail(initial: dict, user: Trajectory, keras: Trajectory, quantities: list, step: int,
                      tol: Tolerance) -> str:
    """What relates the two sides' steps at the first parting (a sign or a factor), when one thing does."""
    name = next((k for kind, _, k in quantities if kind == "param"), None)
    if name is None:
        return ""
    before = (lambda t: t.params[name][step - 1]) if step > 0 else (lambda t: initial[name])
    ours, theirs = user.params[name][step] - before(user), keras.params[name][step] - before(keras)
    verdict = classify(ours, theirs, tol.rtol, tol.atol)
    if verdict is None or verdict[0] not in ("sign_flip", "scale_factor"):
        return ""
    factor = "-1" if verdict[0] == "sign_flip" else f"{float(verdict[1]):.6g}"
    return f"; at that step its step on {name} is {factor} x Keras's"
