"""NumPy optimizers in the book's protocol ("Deep Learning from Scratch", common/optimizer.py), and
references written in Keras's convention where Keras's formula cannot be configured to match the book's.

`update(params, grads)` updates the arrays in `params` in place, as the book does. `params` is a dict
keyed 'W1', 'b1', ... (the first volume) or a list (the second volume). State is created lazily on
the first update under the book's names: v (velocity), h (accumulator), m and v (Adam's moments),
iter (Adam's step count). Hyperparameters are used as given: NumPy treats a Python float as a weak
scalar, so a float32 run does float32 arithmetic, as the book's code does.

Which book formula equals which Keras optimizer (Keras 3, keras/src/optimizers/*.py):
- SGD, Momentum and Adam: the same formulas as keras.optimizers.SGD, SGD(momentum=...) and Adam
  (Adam on both sides adds epsilon to the uncorrected sqrt(v) and folds the bias correction into
  the step size).
- Nesterov stepping with the previous velocity equals SGD(momentum=..., nesterov=True):
  mu**2 v_old - (1 + mu) lr g = mu v_new - lr g. Issue #12 calls that form the book's current code;
  we could not read the live file. The two copies of the book's common/optimizer.py we could read
  (oreilly-japan/deep-learning-from-scratch at commits cfdcf92 and 0dda3d1) update the velocity
  first and step with the new one (NesterovVelocityFirst), which no Keras optimizer computes.
- AdaGrad and RMSprop: Keras divides by sqrt(h + epsilon), the book by sqrt(h) + epsilon. No
  Keras argument changes that, so each has a second reference in Keras's convention below; the
  tests prove it matches Keras, which makes the remaining difference a named convention.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "NesterovVelocityFirst",
           "AdaGradKerasConvention", "RMSpropKerasConvention", "BOOK_EPSILON", "keys_of", "zeros_like_each"]

BOOK_EPSILON = 1e-7  # hard-coded by the book in AdaGrad, RMSprop and Adam; Keras's default epsilon as well


def keys_of(params) -> list:
    """A dict's keys, or a list's indices (the second volume passes lists)."""
    return list(params.keys()) if isinstance(params, dict) else list(range(len(params)))


def zeros_like_each(params, fill: float = 0.0):
    """One state array per parameter, in the container the parameters come in."""
    if isinstance(params, dict):
        return {key: np.full_like(val, fill) for key, val in params.items()}
    return [np.full_like(val, fill) for val in params]


class SGD:
    """p <- p - lr * g."""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads) -> None:
        for key in keys_of(params):
            params[key] -= self.lr * grads[key]


class Momentum:
    """v <- momentum * v - lr * g; p <- p + v."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads) -> None:
        if self.v is None:
            self.v = zeros_like_each(params)
        for key in keys_of(params):
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov:
    """Nesterov as Keras computes it, in the book's protocol: the step uses the previous velocity, then the
    velocity is updated."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads) -> None:
        if self.v is None:
            self.v = zeros_like_each(params)
        for key in keys_of(params):
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]


class NesterovVelocityFirst:
    """Nesterov as the copies of the book's file we could read write it: the velocity is updated first
    and the step uses the new one, -(1 + mu + mu**2) lr g on the first step where Keras takes -(1 + mu) lr g."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads) -> None:
        if self.v is None:
            self.v = zeros_like_each(params)
        for key in keys_of(params):
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]


class AdaGrad:
    """h <- h + g * g (h starts at 0); p <- p - lr * g / (sqrt(h) + eps)."""

    eps = BOOK_EPSILON  # a class attribute so a replay can use a learner's hard-coded value

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads) -> None:
        if self.h is None:
            self.h = zeros_like_each(params)
        for key in keys_of(params):
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + self.eps)


class RMSprop:
    """h <- decay_rate * h + (1 - decay_rate) * g * g; p <- p - lr * g / (sqrt(h) + eps)."""

    eps = BOOK_EPSILON

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads) -> None:
        if self.h is None:
            self.h = zeros_like_each(params)
        for key in keys_of(params):
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + self.eps)


class Adam:
    """The book's Adam: moments by running averages, bias correction folded into lr_t, eps outside the root."""

    eps = BOOK_EPSILON

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads) -> None:
        if self.m is None:
            self.m, self.v = zeros_like_each(params), zeros_like_each(params)
        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)
        for key in keys_of(params):
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + self.eps)


class AdaGradKerasConvention:
    """keras.optimizers.Adagrad's formula in the book's protocol: p <- p - lr * g / sqrt(h + epsilon).

    The accumulator starts at `initial_accumulator_value` (Keras's default 0.1; the run sets 0, the book's).
    """

    def __init__(self, lr=0.01, initial_accumulator_value=0.0, epsilon=BOOK_EPSILON):
        self.lr = lr
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self.h = None

    def update(self, params, grads) -> None:
        if self.h is None:
            self.h = zeros_like_each(params, self.initial_accumulator_value)
        for key in keys_of(params):
            self.h[key] += grads[key] * grads[key]
            params[key] -= (self.lr * grads[key]) / np.sqrt(self.h[key] + self.epsilon)


class RMSpropKerasConvention:
    """keras.optimizers.RMSprop's formula (rho = decay_rate, no momentum, not centered): epsilon inside the root."""

    def __init__(self, lr=0.01, decay_rate=0.99, epsilon=BOOK_EPSILON):
        self.lr = lr
        self.decay_rate = decay_rate
        self.epsilon = epsilon
        self.h = None

    def update(self, params, grads) -> None:
        if self.h is None:
            self.h = zeros_like_each(params)
        for key in keys_of(params):
            self.h[key] = self.decay_rate * self.h[key] + (1 - self.decay_rate) * (grads[key] * grads[key])
            params[key] -= (self.lr * grads[key]) / np.sqrt(self.h[key] + self.epsilon)
