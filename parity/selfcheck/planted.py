"""Planted optimizer bugs for `parity selftest`: one learner-style class per cause, with the code it must earn.

Each class is written out in full, as a learner would write it, not built from the diagnosis's replays
(parity.diagnosis.optimizer_variants): that the diagnosis names them proves the replays model real code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PlantedOptimizer", "PLANTED_OPTIMIZERS"]


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


@dataclass(frozen=True)
class PlantedOptimizer:
    name: str
    optimizer: str  # the run's --optimizer
    cls: type
    expected: str  # the finding code that must appear (severity error)
    description: str


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
                     "RMSprop ignores the run's decay_rate and uses 0.9"),
    PlantedOptimizer("update raises", "momentum", MomentumTypo, "layer_error", "np.zeros.like(val)"),
]
