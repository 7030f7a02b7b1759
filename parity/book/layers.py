"""NumPy layers in the book's protocol ("Deep Learning from Scratch", common/layers.py).

Each layer has `forward` and `backward` and keeps only what `backward` needs. Unlike the book,
`backward` never writes into its argument: the harness keeps those arrays for comparison.
Conventions pinned to Keras/TensorFlow (and tested against them):
- ReLU passes no gradient at a pre-activation of exactly 0 (TensorFlow's ReluGrad uses `x > 0`).
- Mean squared error is `mean((y - t)**2)` over every element, gradient `2 * (y - t) / y.size`.
- Convolution and Pooling take NCHW batches and a kernel W of shape (FN, C, FH, FW), as the book does
  (Keras's Conv2D is channels_last with a (FH, FW, C, FN) kernel: parity.keras_side.transfer maps them).
  Pooling's stride defaults to 2, as in the book since 2020 (its 2016 printing defaulted to 1). A max
  with ties sends its gradient to the first maximal cell in (fy, fx) order, as np.argmax picks it.
- Softmax cross-entropy is computed from the scores (log-softmax), as Keras does for a softmax
  output inside `fit` and `tf.function`: it follows the logits the softmax cached. The book's
  `log(y + 1e-7)` differs from that by about 1e-7 / y relative; Keras's clipping to [1e-7, 1 - 1e-7]
  applies only when the probabilities come without their logits.
"""

from __future__ import annotations

import numpy as np

from parity.book.functions import col2im, im2col, output_size
from parity.book.regularization import BatchNormalization, Dropout  # the chapter-6 layers, for lookup by book name

__all__ = ["Affine", "Convolution", "Pooling", "Relu", "Sigmoid", "MeanSquaredError", "SoftmaxWithLoss", "Dropout",
           "BatchNormalization"]


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


class Convolution:
    """The book's convolution by im2col: W (FN, C, FH, FW), b (FN,), NCHW input, symmetric zero padding."""

    def __init__(self, W: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        FN, C, FH, FW = self.W.shape
        N, _, H, W = x.shape
        out_h, out_w = output_size(H, FH, self.stride, self.pad), output_size(W, FW, self.stride, self.pad)
        col = im2col(x, FH, FW, self.stride, self.pad)  # (N * out_h * out_w, C * FH * FW)
        col_W = self.W.reshape(FN, -1).T  # (C * FH * FW, FN): a transpose, not W.reshape(-1, FN)
        out = np.dot(col, col_W) + self.b  # (N * out_h * out_w, FN)
        self.x, self.col, self.col_W = x, col, col_W
        return out.reshape(N, out_h, out_w, FN).transpose(0, 3, 1, 2)  # (N, FN, out_h, out_w)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)  # (N * out_h * out_w, FN)
        self.db = np.sum(dout, axis=0)  # (FN,)
        self.dW = np.dot(self.col.T, dout).T.reshape(FN, C, FH, FW)
        dcol = np.dot(dout, self.col_W.T)  # (N * out_h * out_w, C * FH * FW)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)  # (N, C, H, W)


class Pooling:
    """Max pooling by im2col over each channel: the gradient goes to each window's maximal cell."""

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self.arg_max = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        N, C, H, W = x.shape
        out_h = output_size(H, self.pool_h, self.stride, self.pad)
        out_w = output_size(W, self.pool_w, self.stride, self.pad)
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad).reshape(-1, self.pool_h * self.pool_w)
        self.x, self.arg_max = x, np.argmax(col, axis=1)  # (N * out_h * out_w * C,): the first maximal cell
        return np.max(col, axis=1).reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)  # (N, C, out_h, out_w)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dout = dout.transpose(0, 2, 3, 1)  # (N, out_h, out_w, C)
        pool_size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, pool_size), dtype=dout.dtype)
        dmax[np.arange(self.arg_max.size), self.arg_max] = dout.reshape(-1)
        dcol = dmax.reshape(dout.shape[0] * dout.shape[1] * dout.shape[2], -1)  # (N * out_h * out_w, C * pool_size)
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


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
