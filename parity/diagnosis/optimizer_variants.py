"""Candidate optimizer bugs as replays: the book's formula with one mistake learners make (NumPy only).

The diagnosis replays each candidate on the gradients a learner's optimizer was given, from the same
starting parameters, and names the one the learner's trajectory matches at every step. Evidence, not
guesswork: a cause is named only when its replay reproduces the learner's parameters within the run's
tolerance. Several causes only show after the first step (state not carried, update only on the first
call, one state array shared by all keys): replays over many steps are what tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from parity.book import optimizers as ref
from parity.settings.optimizer_registry import OptimizerSettings

__all__ = ["Variant", "variants_for", "replay", "base_makers"]


@dataclass(frozen=True)
class Variant:
    cause: str  # what the replay changes: sign_flip, lr_twice, state_reset, ...
    code: str  # the finding code it earns
    description: str  # what the learner's code does, in words
    make: Callable[[], object]  # a fresh optimizer with update(params, grads)
    severity: str = "error"  # "warning" for a known convention rather than a bug


def replay(make: Callable[[], object], initial: dict[str, np.ndarray], grads: dict[str, np.ndarray],
           steps: int) -> dict[str, np.ndarray]:
    """Parameters after each of `steps` updates with grads[name][step]: name -> (steps, *shape)."""
    optimizer, params = make(), {k: np.array(v, copy=True) for k, v in initial.items()}
    out = {k: np.empty((steps, *v.shape), dtype=v.dtype) for k, v in params.items()}
    with np.errstate(all="ignore"):  # a bug that divides by zero replays as the learner's did
        for step in range(steps):
            optimizer.update(params, {k: grads[k][step] for k in params})
            for k in params:
                out[k][step] = params[k]
    return out


class _Negated:
    """The base's step, applied with the opposite sign (the base's state evolves as the base's would)."""

    def __init__(self, base):
        self.base = base

    def update(self, params, grads):
        shadow = {k: v.copy() for k, v in params.items()}
        self.base.update(shadow, grads)
        for k in params:
            params[k] -= shadow[k] - params[k]


class _Fresh:
    """A new base for every update: nothing is carried between calls."""

    def __init__(self, make):
        self.make = make

    def update(self, params, grads):
        self.make().update(params, grads)


class _FirstOnly:
    """The base updates on the first call only; later calls change nothing."""

    def __init__(self, base):
        self.base, self.called = base, False

    def update(self, params, grads):
        if not self.called:
            self.base.update(params, grads)
        self.called = True


class _Shared:
    """One state for every key: the base sees each parameter in turn under one name."""

    def __init__(self, base):
        self.base = base

    def update(self, params, grads):
        for k in params:
            self.base.update({"_": params[k]}, {"_": grads[k]})


class _AdamNoBiasCorrection(ref.Adam):
    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = ref.zeros_like_each(params), ref.zeros_like_each(params)
        self.iter += 1
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= self.lr * self.m[key] / (np.sqrt(self.v[key]) + self.eps)


class _AdamEpsilonInsideRoot(ref.Adam):
    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = ref.zeros_like_each(params), ref.zeros_like_each(params)
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / np.sqrt(self.v[key] + self.eps)


class _AdamEpsilonOnStep(ref.Adam):
    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = ref.zeros_like_each(params), ref.zeros_like_each(params)
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / np.sqrt(self.v[key]) + self.eps


class _AdamPaperEpsilon(ref.Adam):
    """Algorithm 1 of the Adam paper: epsilon added to sqrt(v_hat), the bias-corrected second moment."""

    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = ref.zeros_like_each(params), ref.zeros_like_each(params)
        self.iter += 1
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            m_hat = self.m[key] / (1 - self.beta1 ** self.iter)
            v_hat = self.v[key] / (1 - self.beta2 ** self.iter)
            params[key] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class _AdaGradEpsilonOnStep(ref.AdaGrad):
    def update(self, params, grads):
        if self.h is None:
            self.h = ref.zeros_like_each(params)
        for key in params:
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / np.sqrt(self.h[key]) + self.eps


class _RMSpropEpsilonOnStep(ref.RMSprop):
    def update(self, params, grads):
        if self.h is None:
            self.h = ref.zeros_like_each(params)
        for key in params:
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / np.sqrt(self.h[key]) + self.eps


_EPSILON_ON_STEP = {"adagrad": _AdaGradEpsilonOnStep, "rmsprop": _RMSpropEpsilonOnStep, "adam": _AdamEpsilonOnStep}
_STATE_WORD = {"momentum": "velocity", "nesterov": "velocity", "adagrad": "accumulator h",
               "rmsprop": "running average h", "adam": "moments m and v (and iter)"}


def _with(make_class: type, hyper: dict, eps: float | None = None) -> Callable[[], object]:
    """A maker for `make_class(**hyper)`, with its epsilon attribute set when given."""
    def make():
        optimizer = make_class(**hyper)
        if eps is not None:
            setattr(optimizer, "eps" if hasattr(optimizer, "eps") else "epsilon", eps)
        return optimizer
    return make


def _effective(settings: OptimizerSettings, held: dict[str, float] | None) -> tuple[dict, float | None]:
    """The hyperparameters a learner's class actually uses: the run's, overridden by what it holds."""
    held = held or {}
    return {**settings.hyper, **{k: v for k, v in held.items() if k != "epsilon"}}, held.get("epsilon")


def base_makers(settings: OptimizerSettings, held: dict[str, float] | None = None) -> list[tuple[str, Callable]]:
    """(label, maker) of the formulas a learner may start from: the book's, and Keras's where it differs.

    `held`: book keyword -> the value a learner's class holds where it differs from the run's.
    """
    info = settings.info
    hyper, eps = _effective(settings, held)
    bases = [("the book's", _with(info.reference, hyper, eps))]
    if info.keras_reference is not info.reference:
        bases.append(("Keras's", _with(info.keras_reference, hyper, eps)))
    return bases


def variants_for(settings: OptimizerSettings, shapes: dict[str, tuple],
                 held: dict[str, float] | None = None) -> list[Variant]:
    """The candidate bugs (and known conventions) for this optimizer, replayed with the learner's values.

    `held` (book keyword -> value where the learner's class differs from the run) is applied to every
    candidate, so a hard-coded value and a formula bug are told apart and both named.
    """
    info, name, book = settings.info, settings.name, settings.info.book_class
    hyper, eps = _effective(settings, held)
    stateful = name != "sgd"
    out = []
    for label, make in base_makers(settings, held):
        maker_class = info.reference if label == "the book's" else info.keras_reference
        out.append(Variant("sign_flip", "sign_flip", f"{label} {book} with the step's sign flipped"
                           + (" (velocity sign: v = momentum * v + lr * grad, then params += v)"
                              if name in ("momentum", "nesterov") else " (params += the step)"),
                           lambda make=make: _Negated(make())))
        squared = {**hyper, "lr": hyper["lr"] ** 2}
        out.append(Variant("lr_twice", "scale_factor", f"{label} {book} with the learning rate applied twice "
                           f"(the steps of lr**2 = {squared['lr']:g})", _with(maker_class, squared, eps)))
        if stateful:
            out.append(Variant("state_reset", "state_reset", f"{label} {book} with its {_STATE_WORD[name]} rebuilt "
                               "on every update instead of carried between calls", lambda make=make: _Fresh(make)))
        out.append(Variant("first_update_only", "first_update_only", f"{label} {book} updating the parameters on "
                           "the first call only", lambda make=make: _FirstOnly(make())))
        if stateful and len(set(shapes.values())) == 1:  # with different shapes a shared array raises instead
            out.append(Variant("shared_state", "shared_state", f"{label} {book} with one {_STATE_WORD[name]} array "
                               "shared by every parameter", lambda make=make: _Shared(make())))
    if name == "nesterov":
        out.append(Variant("nesterov_velocity_first", "update_mismatch", "Nesterov with the velocity updated "
                           "first and the step taken with the new one (as in copies of the book's "
                           "common/optimizer.py), which no Keras optimizer computes: Keras's SGD(nesterov=True) "
                           "steps with the previous velocity (mu**2 v_old - (1 + mu) lr g, then the velocity is "
                           "updated)", _with(ref.NesterovVelocityFirst, hyper, eps)))
    if name == "adam":
        out.append(Variant("bias_correction", "bias_correction", "the book's Adam without its bias correction "
                           "(lr_t = lr)", _with(_AdamNoBiasCorrection, hyper, eps)))
        out.append(Variant("epsilon_inside_root", "epsilon_placement", "the book's Adam with epsilon inside the "
                           "root: sqrt(v + eps); the book and Keras add it to sqrt(v)",
                           _with(_AdamEpsilonInsideRoot, hyper, eps)))
        out.append(Variant("epsilon_on_corrected", "convention", "Algorithm 1 of the Adam paper: epsilon added to "
                           "sqrt(v_hat), the bias-corrected moment; Keras (whose epsilon is the paper's 'epsilon "
                           "hat') and the book add it to the uncorrected sqrt(v)",
                           _with(_AdamPaperEpsilon, hyper, eps), severity="warning"))
    if name in _EPSILON_ON_STEP:
        out.append(Variant("epsilon_on_step", "epsilon_placement", f"the book's {book} with epsilon added to the "
                           "step instead of the denominator: lr * g / np.sqrt(h) + eps (missing parentheses)",
                           _with(_EPSILON_ON_STEP[name], hyper, eps)))
    return out
