"""NumPy layers in the book's protocol ("Deep Learning from Scratch", common/layers.py).

Each layer has `forward` and `backward` and keeps only what `backward` needs. Unlike the book,
`backward` never writes into its argument: the harness keeps those arrays for comparison.
Conventions pinned to Keras/TensorFlow (and tested against them):
- ReLU passes no gradient at a pre-activation of exactly 0 (TensorFlow's ReluGrad uses `x > 0`).
- Mean squared error is `mean((y - t)**2)` over every element, gradient `2 * (y - t) / y.size`.
- Softmax cross-entropy is computed from the scores (log-softmax), as Keras does for a softmax
  output inside `fit` and `tf.function`: it follows the logits the softmax cached. The book's
  `log(y + 1e-7)` differs from that by about 1e-7 / y relative; Keras's clipping to [1e-7, 1 - 1e-7]
  applies only when the probabilities come without their logits.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Affine", "Relu", "Sigmoid", "MeanSquaredError", "SoftmaxWithLoss"]


class Affine:
    """y = x . W + b, with W of shape (in, out): the Keras Dense kernel's orientation."""

    def __init__(self, W: np.ndarray, b: np.ndarray):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)  # (n, in); tensor input is flattened, as in the book
        return np.dot(self.x, self.W) + self.b  # (n, out)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = np.dot(dout, self.W.T)  # (n, in)
        self.dW = np.dot(self.x.T, dout)  # (in, out)
        self.db = np.sum(dout, axis=0)  # (out,)
        return dx.reshape(*self.original_x_shape)


class Relu:
    """max(0, x); the mask marks dead units (x <= 0), which pass no gradient."""

    def __init__(self):
        self.mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        return np.where(self.mask, np.zeros_like(x), x)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return np.where(self.mask, np.zeros_like(dout), dout)


class Sigmoid:
    """1 / (1 + exp(-x)); backward uses the cached output."""

    def __init__(self):
        self.out = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = 1 / (1 + np.exp(-x))
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (1.0 - self.out) * self.out


class MeanSquaredError:
    """Keras's mean squared error: mean over every element of (y - t)**2."""

    def __init__(self):
        self.y = None
        self.t = None
        self.loss = None

    def forward(self, y: np.ndarray, t: np.ndarray) -> np.ndarray:
        self.y = y
        self.t = t
        self.loss = np.mean((y - t) ** 2)
        return self.loss

    def backward(self, dout=1) -> np.ndarray:
        return dout * 2 * (self.y - self.t) / self.y.size


def softmax(x: np.ndarray) -> np.ndarray:
    x = x - np.max(x, axis=-1, keepdims=True)  # overflow guard
    e = np.exp(x)
    return e / np.sum(e, axis=-1, keepdims=True)


class SoftmaxWithLoss:
    """Softmax of the scores, then mean cross-entropy against labels t: integers (n,) or one-hot (n, k)."""

    def __init__(self):
        self.y = None
        self.t = None
        self.loss = None

    def forward(self, x: np.ndarray, t: np.ndarray) -> np.ndarray:
        self.t = t
        self.y = softmax(x)  # (n, k)
        shifted = x - np.max(x, axis=-1, keepdims=True)
        log_y = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))  # log-softmax, no log(0)
        n = x.shape[0]
        if t.size == self.y.size:  # one-hot
            self.loss = -np.sum(t * log_y) / n
        else:
            self.loss = -np.sum(log_y[np.arange(n), t.reshape(n)]) / n
        return self.loss

    def backward(self, dout=1) -> np.ndarray:
        n = self.y.shape[0]
        if self.t.size == self.y.size:
            return dout * (self.y - self.t) / n
        onehot = np.zeros_like(self.y)
        onehot[np.arange(n), self.t.reshape(n)] = 1
        return dout * (self.y - onehot) / n
