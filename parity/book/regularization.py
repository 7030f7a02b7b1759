"""The book's chapter 6 layers in its protocol: Dropout and BatchNormalization, each with
`forward(x, train_flg=True)` ("Deep Learning from Scratch", common/layers.py).

Conventions, and how Keras relates to them (parity.keras_side mirrors what an argument can):
- Dropout keeps a unit where `np.random.rand(*x.shape) > dropout_ratio`, as the book draws it. The
  reference `Dropout` is *inverted*, Keras's convention: kept units are scaled by 1 / (1 - ratio) in
  training and test mode is the identity. The book's own class (`BookDropout` here) does not scale in
  training and multiplies by (1 - ratio) in test mode: it equals the inverted one times (1 - ratio) in
  both modes, a convention (the report names it), not a bug.
- BatchNormalization normalizes each feature over the batch with the biased variance and epsilon
  `10e-7` (that is 1e-6, as the book writes it); its running statistics start at zero and move with
  `momentum` (0.9): `running = momentum * running + (1 - momentum) * batch`. Keras's
  `BatchNormalization(momentum=0.9, epsilon=1e-6, moving_variance_initializer="zeros")` is the same
  layer. A 4-D input (N, C, H, W) is normalized per activation (C * H * W features), as the book does.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Dropout", "BookDropout", "BatchNormalization", "BN_EPSILON"]

BN_EPSILON = 10e-7  # the book's literal: 1e-6


class Dropout:
    """Inverted dropout (Keras's convention) in the book's protocol: train mode keeps `rand > ratio`
    and scales the kept units by 1 / (1 - ratio); test mode is the identity."""

    def __init__(self, dropout_ratio: float = 0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        if not train_flg:
            return x
        self.mask = np.random.rand(*x.shape) > self.dropout_ratio
        return x * self.mask / (1.0 - self.dropout_ratio)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask / (1.0 - self.dropout_ratio)


class BookDropout:
    """The book's Dropout as printed: no scaling in training, times (1 - ratio) in test mode."""

    def __init__(self, dropout_ratio: float = 0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * self.mask


class BatchNormalization:
    """The book's batch normalization: per feature over the batch in training (biased variance), with the
    running statistics in test mode; dgamma and dbeta summed over the batch."""

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, momentum: float = 0.9,
                 running_mean: np.ndarray | None = None, running_var: np.ndarray | None = None,
                 epsilon: float = BN_EPSILON):
        self.gamma = gamma
        self.epsilon = epsilon  # the book's 10e-7; a saved Keras model's own where the harness mirrors one
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None  # 4-D for a convolution's output, 2-D after an Affine
        self.running_mean = running_mean
        self.running_var = running_var
        self.batch_size = None
        self.xc = None
        self.xn = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.input_shape = x.shape
        x = x.reshape(x.shape[0], -1)  # (N, D): a 4-D input is normalized per activation (C * H * W)
        if self.running_mean is None:
            self.running_mean = np.zeros(x.shape[1], dtype=x.dtype)
            self.running_var = np.zeros(x.shape[1], dtype=x.dtype)
        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc ** 2, axis=0)  # biased, as Keras's
            std = np.sqrt(var + self.epsilon)
            xn = xc / std
            self.batch_size, self.xc, self.xn, self.std = x.shape[0], xc, xn, std
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xn = (x - self.running_mean) / np.sqrt(self.running_var + self.epsilon)
        return (self.gamma * xn + self.beta).reshape(*self.input_shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = dout.reshape(dout.shape[0], -1)
        self.dbeta = dout.sum(axis=0)
        self.dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc = dxc + (2.0 / self.batch_size) * self.xc * dvar  # the variance term
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        return dx.reshape(*self.input_shape)
