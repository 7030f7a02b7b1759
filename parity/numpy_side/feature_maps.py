"""The reference Convolution, Relu and Pooling over a whole chunk of samples at once, each sample its own batch of one.

im2col unrolls every sample's windows in one call; the per-sample kernel gradient is a sum over each sample's
own windows (np.einsum, no BLAS), and every product over the window axis goes through `row_dot`, so a sample's
numbers do not depend on the samples beside it or on the chunk's size. The same arithmetic as the book's layers
(parity.book.layers) run sample by sample (tested equal to 1e-12 in float64). NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.book.functions import col2im, im2col
from parity.settings.spec import ConvSpec, ModelSpec

__all__ = ["row_dot", "FeaturePass", "features_forward"]


def row_dot(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """a @ w, each row summed over a's columns in order: a row's value does not depend on the rows beside it.

    BLAS (OpenBLAS 0.3.31 here) picks its kernel by the number of rows, so `a @ w` rounds a row
    differently in a chunk of 17 than in a chunk of 120; a run's results must not depend on its chunking.
    """
    out = a[:, :1] * w[0]  # (n, out)
    for k in range(1, a.shape[1]):
        out = out + a[:, k:k + 1] * w[k]
    return out


@dataclass
class _Stage:
    """What one feature layer kept from the forward pass for the backward one."""

    kind: str  # conv | pool
    number: int  # a convolution's parameter number; 0 for a pooling
    x_shape: tuple[int, ...]  # its input (n, C, H, W)
    window: tuple[int, int]
    stride: int
    pad: int
    col: np.ndarray | None = None  # conv: (n * OH * OW, C * FH * FW); pool: the argmax of each window
    activation: str = "linear"
    a: np.ndarray | None = None  # conv: its pre-activation (n, FN, OH, OW)
    out: np.ndarray | None = None  # conv with sigmoid: the activation's output


@dataclass
class FeaturePass:
    """The features' forward over a chunk: the flattened output, and what backward needs."""

    stages: list[_Stage]
    flat: np.ndarray  # (n, flat_dim): the last map flattened channel-major, as the book's Affine reads it

    def maps(self) -> dict[int, np.ndarray]:
        """Convolution number -> (n, FN * OH * OW) pre-activations of those with an activation."""
        return {s.number: s.a.reshape(len(s.a), -1) for s in self.stages
                if s.kind == "conv" and s.activation in ("relu", "sigmoid")}

    def backward(self, dflat: np.ndarray, weights: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each sample's own gradients ({W1: (n, FN, C, FH, FW), b1: (n, FN), ...}) and dx (n, C * H * W)."""
        n, grads = len(dflat), {}
        dout = dflat
        for stage in reversed(self.stages):
            dout = dout.reshape(n, -1)
            if stage.kind == "pool":
                dout = _pool_backward(stage, dout)
                continue
            fn = stage.a.shape[1]
            dout = dout.reshape(stage.a.shape)
            if stage.activation == "relu":
                dout = np.where(stage.a <= 0, 0, dout)
            elif stage.activation == "sigmoid":
                dout = dout * (1.0 - stage.out) * stage.out
            d = dout.transpose(0, 2, 3, 1).reshape(n, -1, fn)  # (n, OH * OW, FN)
            col = stage.col.reshape(n, d.shape[1], -1)  # (n, OH * OW, C * FH * FW)
            W = weights[f"W{stage.number}"]
            grads[f"W{stage.number}"] = np.einsum("npk,npf->nfk", col, d).reshape(n, *W.shape)
            grads[f"b{stage.number}"] = np.einsum("npf->nf", d)
            dcol = row_dot(d.reshape(-1, fn), W.reshape(fn, -1))  # (n * OH * OW, C * FH * FW)
            dout = col2im(dcol, stage.x_shape, *stage.window, stage.stride, stage.pad)
        return grads, dout.reshape(n, -1)


def features_forward(spec: ModelSpec, weights: dict[str, np.ndarray], x: np.ndarray) -> FeaturePass:
    """Run the spec's convolutions (and their activations) and poolings over x (n, C * H * W)."""
    n, stages = len(x), []
    h = x.reshape(n, *spec.input_shape)
    number = 0
    for f in spec.features:
        if isinstance(f, ConvSpec):
            number += 1
            W, b = weights[f"W{number}"], weights[f"b{number}"]
            stage = _Stage("conv", number, h.shape, f.kernel, f.stride, f.pad, activation=f.activation)
            stage.col = im2col(h, *f.kernel, f.stride, f.pad)  # (n * OH * OW, C * FH * FW)
            oh, ow = _out(h.shape, f.kernel, f.stride, f.pad)
            a = row_dot(stage.col, W.reshape(len(W), -1).T) + b  # (n * OH * OW, FN)
            stage.a = a.reshape(n, oh, ow, len(W)).transpose(0, 3, 1, 2)  # (n, FN, OH, OW)
            if f.activation == "relu":
                h = np.where(stage.a <= 0, 0, stage.a)  # a Python 0 takes a's dtype (NEP 50)
            elif f.activation == "sigmoid":
                h = stage.out = 1 / (1 + np.exp(-stage.a))
            else:
                h = stage.a
        else:
            stage = _Stage("pool", 0, h.shape, f.pool, f.stride, f.pad)
            oh, ow = _out(h.shape, f.pool, f.stride, f.pad)
            col = im2col(h, *f.pool, f.stride, f.pad).reshape(-1, f.pool[0] * f.pool[1])
            stage.col = np.argmax(col, axis=1)  # the first maximal cell, as the book's Pooling picks it
            h = np.max(col, axis=1).reshape(n, oh, ow, h.shape[1]).transpose(0, 3, 1, 2)
        stages.append(stage)
    return FeaturePass(stages, h.reshape(n, -1))


def _out(shape: tuple[int, ...], window: tuple[int, int], stride: int, pad: int) -> tuple[int, int]:
    return (shape[2] + 2 * pad - window[0]) // stride + 1, (shape[3] + 2 * pad - window[1]) // stride + 1


def _pool_backward(stage: _Stage, dout: np.ndarray) -> np.ndarray:
    """Each window's gradient to its maximal cell, then back into the input's layout (the book's Pooling.backward)."""
    n, c = stage.x_shape[:2]
    oh, ow = _out(stage.x_shape, stage.window, stage.stride, stage.pad)
    d = dout.reshape(n, c, oh, ow).transpose(0, 2, 3, 1).reshape(-1)  # (n * OH * OW * C,)
    dmax = np.zeros((d.size, stage.window[0] * stage.window[1]), dtype=dout.dtype)
    dmax[np.arange(d.size), stage.col] = d
    return col2im(dmax.reshape(n * oh * ow, -1), stage.x_shape, *stage.window, stage.stride, stage.pad)
