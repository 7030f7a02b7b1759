"""Candidate optimizer bugs as replays: the book's formula with one mistake learners make (NumPy only).

The diagnosis replays each candidate on the gradients a learner's optimizer was given, from the same
starting parameters, and names the one the learner's trajectory matches at every step. Evidence, not
guesswork: a cause is named only when its replay reproduces the learner's parameters within the run's
tolerance. Several causes only show after the first step (state not carried, update only on the first
call, one state array shared by all keys): replays over many steps are what tell them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from parity.book import optimizers as ref
from parity.diagnosis.replays import (EPSILON_ON_STEP, AdamBeta1CorrectionOnly, AdamBeta2CorrectionOnly,
                                      AdamEpsilonInsideRoot, AdamMomentsReset, AdamNoBiasCorrection, AdamPaperEpsilon,
                                      AdamPaperVHatOnly, FirstOnly, Fresh, Negated, Shared, Unchanged)
from parity.settings.optimizer_registry import OptimizerSettings, with_epsilon

__all__ = ["Variant", "EPSILONS", "variants_for", "replay", "raises_alike", "base_makers", "effective",
           "epsilon_candidates"]


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


def raises_alike(make: Callable[[], object], initial: dict[str, np.ndarray], grads: dict[str, np.ndarray],
                 said: str) -> bool:
    """Whether one update of `make` from `initial` with `grads` raises the error `said` ("ValueError: ...")
    describes, word for word: evidence for the cause of an update that raised where its replay cannot run."""
    params = {k: np.array(v, copy=True) for k, v in initial.items()}
    try:
        with np.errstate(all="ignore"):
            make().update(params, {k: np.array(v, copy=True) for k, v in grads.items()})
    except Exception as exc:  # the replay raising is what is compared
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {text}" in said
    return False


_STATE_WORD = {"momentum": "velocity", "nesterov": "velocity", "adagrad": "accumulator h",
               "rmsprop": "running average h", "adam": "moments m and v (and iter)"}


# Epsilons learners write (the Adam paper's 1e-8, the book's and Keras's 1e-7, others'): a class that is the book's
# formula with one of them is replayed with each before anything else is said about it.
EPSILONS = (1e-8, 1e-7, 1e-6, 1e-5)


def _with(make_class: type, hyper: dict, eps: float | None = None) -> Callable[[], object]:
    """A maker for `make_class(**hyper)`, with its epsilon attribute set when given."""
    def make():
        return with_epsilon(make_class(**hyper), eps)
    return make


def effective(settings: OptimizerSettings, held: dict[str, float] | None,
              epsilon: float | None = None) -> tuple[dict, float | None]:
    """The hyperparameters a learner's class actually uses: the run's, overridden by what it holds; epsilon the
    one given, else the held one, else the run's."""
    held = held or {}
    eps = epsilon if epsilon is not None else held.get("epsilon", settings.epsilon)
    return {**settings.hyper, **{k: v for k, v in held.items() if k != "epsilon"}}, eps


def epsilon_candidates(settings: OptimizerSettings, held: dict[str, float] | None) -> list[float | None]:
    """The epsilons to replay a class with, the one it holds (else the run's) first; [None] for an optimizer
    without one."""
    if settings.epsilon is None:
        return [None]
    first = effective(settings, held)[1]
    return [first, *(e for e in EPSILONS if not math.isclose(e, first, rel_tol=1e-9))]


def base_makers(settings: OptimizerSettings, held: dict[str, float] | None = None,
                epsilon: float | None = None) -> list[tuple[str, Callable]]:
    """(label, maker) of the formulas a learner may start from: the book's, and Keras's where it differs.

    `held`: book keyword -> the value a learner's class holds where it differs from the run's; `epsilon`
    replaces the epsilon (a candidate the class may use).
    """
    info = settings.info
    hyper, eps = effective(settings, held, epsilon)
    bases = [("the book's", _with(info.reference, hyper, eps))]
    if info.keras_reference is not info.reference:
        bases.append(("Keras's", _with(info.keras_reference, hyper, eps)))
    return bases


def variants_for(settings: OptimizerSettings, shapes: dict[str, tuple], held: dict[str, float] | None = None,
                 epsilon: float | None = None) -> list[Variant]:
    """The candidate bugs (and known conventions) for this optimizer, replayed with the learner's values.

    `held` (book keyword -> value where the learner's class differs from the run) is applied to every
    candidate, so a hard-coded value and a formula bug are told apart and both named. `epsilon` is the
    epsilon to replay with (see epsilon_candidates); the candidates that do not depend on it come with the
    first only. `shapes` are the parameters' (kept for candidates that depend on them).
    """
    info, name, book = settings.info, settings.name, settings.info.book_class
    hyper, eps = effective(settings, held, epsilon)
    first = epsilon is None or math.isclose(eps, effective(settings, held)[1], rel_tol=1e-9)
    stateful = name != "sgd"
    out = []
    for label, make in base_makers(settings, held, epsilon):
        maker_class = info.reference if label == "the book's" else info.keras_reference
        out.append(Variant("sign_flip", "sign_flip", f"{label} {book} with the step's sign flipped"
                           + (" (velocity sign: v = momentum * v + lr * grad, then params += v)"
                              if name in ("momentum", "nesterov") else " (params += the step)"),
                           lambda make=make: Negated(make())))
        squared = {**hyper, "lr": hyper["lr"] ** 2}
        out.append(Variant("lr_twice", "scale_factor", f"{label} {book} with the learning rate applied twice "
                           f"(the steps of lr**2 = {squared['lr']:g})", _with(maker_class, squared, eps)))
        if stateful:
            out.append(Variant("state_reset", "state_reset", f"{label} {book} with its {_STATE_WORD[name]} rebuilt "
                               "on every update instead of carried between calls", lambda make=make: Fresh(make)))
        out.append(Variant("first_update_only", "first_update_only", f"{label} {book} updating the parameters on "
                           "the first call only", lambda make=make: FirstOnly(make())))
        if stateful:  # where the shapes differ NumPy may refuse to broadcast: that replay raises, and is no match
            out.append(Variant("shared_state", "shared_state", f"{label} {book} with one {_STATE_WORD[name]} array "
                               "shared by every parameter", lambda make=make: Shared(make())))
    if first:
        out.append(Variant("no_update", "no_update", f"an update that changes no parameter the caller holds (the "
                           f"{book} computed, its step never applied)", lambda: Unchanged(settings.reference())))
    if name == "nesterov":
        out.append(Variant("nesterov_velocity_first", "update_mismatch", "Nesterov with the velocity updated "
                           "first and the step taken with the new one (as in copies of the book's "
                           "common/optimizer.py), which no Keras optimizer computes: Keras's SGD(nesterov=True) "
                           "steps with the previous velocity (mu**2 v_old - (1 + mu) lr g, then the velocity is "
                           "updated)", _with(ref.NesterovVelocityFirst, hyper, eps)))
    if name == "adam":
        out += _adam(hyper, eps)
    if name in EPSILON_ON_STEP:
        out.append(Variant("epsilon_on_step", "epsilon_placement", f"the book's {book} with epsilon added to the "
                           "step instead of the denominator: lr * g / np.sqrt(h) + eps (missing parentheses)",
                           _with(EPSILON_ON_STEP[name], hyper, eps)))
    return out


def _adam(hyper: dict, eps: float) -> list[Variant]:
    """Adam's own candidates: its bias correction, all or half of it missing; its moments not carried; epsilon."""
    return [
        Variant("bias_correction", "bias_correction", "the book's Adam without its bias correction (lr_t = lr)",
                _with(AdamNoBiasCorrection, hyper, eps)),
        Variant("bias_correction_beta2_only", "bias_correction", "the book's Adam with half its bias correction: "
                "lr_t = lr * sqrt(1 - beta2**t), without the division by (1 - beta1**t)",
                _with(AdamBeta2CorrectionOnly, hyper, eps)),
        Variant("bias_correction_beta1_only", "bias_correction", "the book's Adam with half its bias correction: "
                "lr_t = lr / (1 - beta1**t), without the factor sqrt(1 - beta2**t) (the paper's form without v_hat)",
                _with(AdamBeta1CorrectionOnly, hyper, eps)),
        Variant("bias_correction_v_hat_only", "bias_correction", "the Adam paper's form with half its bias "
                "correction: lr * m / (sqrt(v_hat) + eps), m not divided by (1 - beta1**t)",
                _with(AdamPaperVHatOnly, hyper, eps)),
        Variant("moments_reset", "state_reset", "the book's Adam with m and v rebuilt on every update while iter "
                "keeps counting (the moments created in update, the counter in __init__)",
                _with(AdamMomentsReset, hyper, eps)),
        Variant("epsilon_inside_root", "epsilon_placement", "the book's Adam with epsilon inside the root: "
                "sqrt(v + eps); the book and Keras add it to sqrt(v)", _with(AdamEpsilonInsideRoot, hyper, eps)),
        Variant("epsilon_on_corrected", "convention", "Algorithm 1 of the Adam paper: epsilon added to sqrt(v_hat), "
                "the bias-corrected moment; Keras (whose epsilon is the paper's 'epsilon hat') and the book add it to "
                "the uncorrected sqrt(v)", _with(AdamPaperEpsilon, hyper, eps), severity="warning"),
    ]
