"""Planted optimizer bugs for `parity selftest`: one learner-style class per cause, with the code it must earn.

Each class is written out in full, as a learner would write it, not built from the diagnosis's replays
(parity.diagnosis.optimizer_variants): that the diagnosis names them proves the replays model real code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PlantedOptimizer", "PLANTED_OPTIMIZERS", "CORRECT_PLANTED_OPTIMIZERS"]


class MomentumVelocitySignFlipped:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] + self.lr * grads[key]  # + where the book has -
            params[key] += self.v[key]


class MomentumLrTwice:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.lr * self.v[key]  # the velocity already holds lr


class AdamWithoutBiasCorrection:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.m[key] = self.beta1 * self.m[key] + (1 - self.beta1) * grads[key]
            self.v[key] = self.beta2 * self.v[key] + (1 - self.beta2) * grads[key] ** 2
            params[key] -= self.lr * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


class AdamEpsilonInsideRoot:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / np.sqrt(self.v[key] + 1e-7)


class AdaGradAccumulatorNotCarried:
    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        self.h = {}  # rebuilt on every call: the sum of squares never grows past this step's
        for key, val in params.items():
            self.h[key] = np.zeros_like(val)
        for key in params.keys():
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class MomentumFirstUpdateOnly:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros_like(val)
                self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]  # indented one level too deep
                params[key] += self.v[key]


class RMSpropHardCodedDecay:
    def __init__(self, lr=0.01):
        self.lr = lr
        self.decay_rate = 0.9  # Keras's default rho, not the run's
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class MomentumTypo:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros.like(val)  # noqa: the typo is the planted bug
        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class SGDStepAssignsNothing:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -+ self.lr * grads[key]  # noqa: B018  (a typo of -=: the planted bug)


class AdamHalfBiasCorrection:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m = {key: np.zeros_like(val) for key, val in params.items()}
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter)  # the division by (1 - beta1**iter) left out
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


class AdamMomentsRebuilt:
    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0

    def update(self, params, grads):
        self.m = {key: np.zeros_like(val) for key, val in params.items()}  # every call: the moments restart
        self.v = {key: np.zeros_like(val) for key, val in params.items()}
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)


class AdamPaperHeldEpsilon:
    """Correct: Algorithm 1 of the Adam paper with its epsilon 1e-8 kept on self."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, 1e-8
        self.t, self.m, self.v = 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m = {k: np.zeros_like(v) for k, v in params.items()}
            self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t += 1
        for k in params:
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * grads[k]
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * grads[k] ** 2
            m_hat, v_hat = self.m[k] / (1 - self.beta1 ** self.t), self.v[k] / (1 - self.beta2 ** self.t)
            params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class AdamPaperLiteralEpsilon:
    """Correct: the same with 1e-8 written into the update, nothing on self."""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.t, self.m, self.v = 0, None, None

    def update(self, params, grads):
        if self.m is None:
            self.m = {k: np.zeros_like(v) for k, v in params.items()}
            self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.t += 1
        for k in params:
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * grads[k]
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * grads[k] ** 2
            m_hat, v_hat = self.m[k] / (1 - self.beta1 ** self.t), self.v[k] / (1 - self.beta2 ** self.t)
            params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + 1e-8)


@dataclass(frozen=True)
class PlantedOptimizer:
    name: str
    optimizer: str  # the run's --optimizer
    cls: type
    expected: str  # the finding code that must appear (severity error); "" for a correct class (it must pass)
    description: str
    given: tuple = ()  # (keyword, value) the run sets: a value the user sets is one a class must not ignore

    @property
    def settings(self) -> dict:
        """The run's optimizer as `optimizer=` takes it."""
        return {"name": self.optimizer, **dict(self.given)}


PLANTED_OPTIMIZERS = [
    PlantedOptimizer("velocity sign", "momentum", MomentumVelocitySignFlipped, "sign_flip",
                     "v = momentum * v + lr * grad, then params += v"),
    PlantedOptimizer("learning rate twice", "momentum", MomentumLrTwice, "scale_factor", "params += lr * v"),
    PlantedOptimizer("missing bias correction", "adam", AdamWithoutBiasCorrection, "bias_correction",
                     "Adam steps with lr instead of the bias-corrected lr_t"),
    PlantedOptimizer("epsilon inside the root", "adam", AdamEpsilonInsideRoot, "epsilon_placement",
                     "Adam divides by sqrt(v + 1e-7)"),
    PlantedOptimizer("accumulator not carried", "adagrad", AdaGradAccumulatorNotCarried, "state_reset",
                     "AdaGrad rebuilds h on every call"),
    PlantedOptimizer("update on the first call only", "momentum", MomentumFirstUpdateOnly, "first_update_only",
                     "the update loop sits inside `if self.v is None:`"),
    PlantedOptimizer("hard-coded decay rate", "rmsprop", RMSpropHardCodedDecay, "hyperparameter",
                     "RMSprop ignores the decay_rate the run sets (0.99) and uses 0.9", (("decay_rate", 0.99),)),
    PlantedOptimizer("update raises", "momentum", MomentumTypo, "layer_error", "np.zeros.like(val)"),
    PlantedOptimizer("step never applied", "sgd", SGDStepAssignsNothing, "no_update",
                     "params[key] -+ lr * grads[key]: an expression that assigns nothing"),
    PlantedOptimizer("half the bias correction", "adam", AdamHalfBiasCorrection, "bias_correction",
                     "lr_t = lr * sqrt(1 - beta2**t), without / (1 - beta1**t)"),
    PlantedOptimizer("moments rebuilt every call", "adam", AdamMomentsRebuilt, "state_reset",
                     "m and v created in update, iter kept in __init__"),
]
# Correct classes beside the planted bugs: each passes, with its convention named (a warning).
CORRECT_PLANTED_OPTIMIZERS = [
    PlantedOptimizer("the Adam paper's form, epsilon 1e-8 kept on self (correct)", "adam", AdamPaperHeldEpsilon, "",
                     "Keras is built with the class's epsilon; the paper's placement is a convention"),
    PlantedOptimizer("the Adam paper's form, epsilon 1e-8 a literal (correct)", "adam", AdamPaperLiteralEpsilon, "",
                     "a replay finds the epsilon; the paper's placement is a convention"),
]
