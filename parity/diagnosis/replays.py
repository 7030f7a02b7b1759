"""The mistakes learners make in an optimizer, written as optimizers in the book's protocol (NumPy only).

Each is the book's formula (parity.book.optimizers) with one thing changed, so that replaying it on the
gradients a learner's class was given and comparing the parameters is evidence of that one mistake.
Wrappers change how a base optimizer is called (sign, state carried or not, shared, never applied);
the Adam forms change one term of its step.
"""

from __future__ import annotations

import numpy as np

from parity.book import optimizers as ref

__all__ = ["Negated", "Fresh", "FirstOnly", "Shared", "Unchanged", "AdamNoBiasCorrection", "AdamBeta2CorrectionOnly",
           "AdamBeta1CorrectionOnly", "AdamPaperVHatOnly", "AdamMomentsReset", "AdamEpsilonInsideRoot",
           "AdamEpsilonOnStep", "AdamPaperEpsilon", "EPSILON_ON_STEP"]


class Negated:
    """The base's step, applied with the opposite sign (the base's state evolves as the base's would)."""

    def __init__(self, base):
        self.base = base

    def update(self, params, grads):
        shadow = {k: v.copy() for k, v in params.items()}
        self.base.update(shadow, grads)
        for k in params:
            params[k] -= shadow[k] - params[k]


class Fresh:
    """A new base for every update: nothing is carried between calls."""

    def __init__(self, make):
        self.make = make

    def update(self, params, grads):
        self.make().update(params, grads)


class FirstOnly:
    """The base updates on the first call only; later calls change nothing."""

    def __init__(self, base):
        self.base, self.called = base, False

    def update(self, params, grads):
        if not self.called:
            self.base.update(params, grads)
        self.called = True


class Shared:
    """One state for every key: the base sees each parameter in turn under one name (where NumPy broadcasts it)."""

    def __init__(self, base):
        self.base = base

    def update(self, params, grads):
        for k in params:
            self.base.update({"_": params[k]}, {"_": grads[k]})


class Unchanged:
    """The base runs (its state moves) but its step never reaches the caller's parameters: `params[key] -+ step`,
    a step taken on a copy, a loop variable rebound."""

    def __init__(self, base):
        self.base = base

    def update(self, params, grads):
        self.base.update({k: v.copy() for k, v in params.items()}, grads)


class _AdamForm(ref.Adam):
    """The book's Adam with its step size and its step as methods, so that each mistake overrides one."""

    def step_size(self) -> float:
        return self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)

    def step(self, key):
        return self.step_size() * self.m[key] / (np.sqrt(self.v[key]) + self.eps)

    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = ref.zeros_like_each(params), ref.zeros_like_each(params)
        self.iter += 1
        for key in params:
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= self.step(key)


class AdamNoBiasCorrection(_AdamForm):
    def step_size(self):
        return self.lr


class AdamBeta2CorrectionOnly(_AdamForm):
    """lr_t = lr * sqrt(1 - beta2**t): the division by (1 - beta1**t) left out."""

    def step_size(self):
        return self.lr * np.sqrt(1.0 - self.beta2 ** self.iter)


class AdamBeta1CorrectionOnly(_AdamForm):
    """lr_t = lr / (1 - beta1**t): the sqrt(1 - beta2**t) left out (the paper's form without v_hat)."""

    def step_size(self):
        return self.lr / (1.0 - self.beta1 ** self.iter)


class AdamPaperVHatOnly(_AdamForm):
    """The paper's form with v_hat but the uncorrected m: lr * m / (sqrt(v_hat) + eps)."""

    def step(self, key):
        return self.lr * self.m[key] / (np.sqrt(self.v[key] / (1 - self.beta2 ** self.iter)) + self.eps)


class AdamMomentsReset(_AdamForm):
    """m and v rebuilt on every call while iter keeps counting (they are created in update, iter in __init__)."""

    def update(self, params, grads):
        self.m = None
        super().update(params, grads)


class AdamEpsilonInsideRoot(_AdamForm):
    def step(self, key):
        return self.step_size() * self.m[key] / np.sqrt(self.v[key] + self.eps)


class AdamEpsilonOnStep(_AdamForm):
    def step(self, key):
        return self.step_size() * self.m[key] / np.sqrt(self.v[key]) + self.eps


class AdamPaperEpsilon(_AdamForm):
    """Algorithm 1 of the Adam paper: epsilon added to sqrt(v_hat), the bias-corrected second moment."""

    def step(self, key):
        m_hat = self.m[key] / (1 - self.beta1 ** self.iter)
        v_hat = self.v[key] / (1 - self.beta2 ** self.iter)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


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


EPSILON_ON_STEP = {"adagrad": _AdaGradEpsilonOnStep, "rmsprop": _RMSpropEpsilonOnStep, "adam": AdamEpsilonOnStep}
