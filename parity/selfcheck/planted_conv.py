"""Planted bugs of the book's chapter 7 for `parity selftest`: each class written out as a learner would write it,
with the one mistake the survey of learners' Convolution and Pooling classes found, and the code it must earn."""

from __future__ import annotations

import numpy as np

from parity.book import layers as ref
from parity.book.functions import im2col, output_size

__all__ = ["PLANTED_CONV", "ReluWritesIntoInput", "book_col2im_overwriting"]


def book_col2im_overwriting(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """The book's col2im with `=` where `+=` belongs: where windows overlap, the last one wins."""
    N, C, H, W = input_shape
    out_h, out_w = output_size(H, filter_h, stride, pad), output_size(W, filter_w, stride, pad)
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] = col[:, :, y, x, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]


class ConvolutionCol2imOverwrite(ref.Convolution):
    def backward(self, dout):
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout).transpose(1, 0).reshape(FN, C, FH, FW)
        dcol = np.dot(dout, self.col_W.T)
        return book_col2im_overwriting(dcol, self.x.shape, FH, FW, self.stride, self.pad)


class ConvolutionHWSwapped(ref.Convolution):
    def forward(self, x):
        FN, C, FH, FW = self.W.shape
        N, C, H, W = x.shape
        out_h = 1 + int((W + 2 * self.pad - FW) / self.stride)  # H and W swapped: right on square inputs only
        out_w = 1 + int((H + 2 * self.pad - FH) / self.stride)
        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = self.W.reshape(FN, -1).T
        out = np.dot(col, col_W) + self.b
        self.x, self.col, self.col_W = x, col, col_W
        return out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)


class ConvolutionKernelReshape(ref.Convolution):
    def forward(self, x):
        FN, C, FH, FW = self.W.shape
        N, C, H, W = x.shape
        out_h = 1 + int((H + 2 * self.pad - FH) / self.stride)
        out_w = 1 + int((W + 2 * self.pad - FW) / self.stride)
        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = self.W.reshape(-1, FN)  # a reshape where W.reshape(FN, -1).T belongs
        out = np.dot(col, col_W) + self.b
        self.x, self.col, self.col_W = x, col, col_W
        return out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)


class ConvolutionWithoutBias(ref.Convolution):
    def forward(self, x):
        out = super().forward(x)
        return out - self.b.reshape(1, -1, 1, 1)  # as if + b were forgotten


class PoolingRoutesToFirstCell(ref.Pooling):
    def backward(self, dout):
        self.arg_max = np.zeros_like(self.arg_max)  # every window's gradient to its first cell, not its maximum
        return super().backward(dout)


class PoolingStride1(ref.Pooling):
    """The book's 2016 printing: correct, with stride defaulting to 1."""

    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        super().__init__(pool_h, pool_w, stride, pad)


class AffineFlattenChannelsLast(ref.Affine):
    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.transpose(0, 2, 3, 1).reshape(x.shape[0], -1) if x.ndim == 4 else x.reshape(x.shape[0], -1)
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW, self.db = np.dot(self.x.T, dout), np.sum(dout, axis=0)
        n, c, h, w = self.original_x_shape if len(self.original_x_shape) == 4 else (0, 0, 0, 0)
        return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2) if n else dx.reshape(self.original_x_shape)


class AffineFlatDx:
    """The first volume's Affine before chapter 7: right on flat inputs, dx left flat for an (N, C, H, W) one."""

    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x.reshape(x.shape[0], -1)
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        self.dW, self.db = np.dot(self.x.T, dout), np.sum(dout, axis=0)
        return np.dot(dout, self.W.T)


class ReluMaskChannelsLast(ref.Relu):
    """Right on a Dense layer's (N, units); on a map it keeps its mask channels-last, as Keras holds a map, and applies it
    to the book's channels-first dout: the mask is wrong on a convolution's output only."""

    def forward(self, x):
        self.mask = np.moveaxis(x <= 0, 1, -1) if x.ndim == 4 else x <= 0  # (N, H, W, C)
        return np.where(x <= 0, 0, x)

    def backward(self, dout):
        return np.where(self.mask.reshape(dout.shape), 0, dout)


class ReluWritesIntoInput(ref.Relu):
    """Correct, with the book's in-place form in forward: it zeroes the dead entries of the x it is given, the very array
    its Affine or Convolution returned, which the harness records as z (it must not record the zeroed one)."""

    def forward(self, x):
        self.mask = x <= 0
        x[self.mask] = 0
        return x


# (case, kit, the code that must be found (an error, or "" for a correct kit), what was planted)
PLANTED_CONV = [
    ("col2im overwrites", {"Convolution": ConvolutionCol2imOverwrite}, "col2im_overwrite",
     "col2im with img[...] = col[...] where += belongs"),
    ("H and W swapped", {"Convolution": ConvolutionHWSwapped}, "hw_swapped", "out_h from W, out_w from H"),
    ("kernel reshaped, not transposed", {"Convolution": ConvolutionKernelReshape}, "kernel_layout",
     "col_W = W.reshape(-1, FN)"),
    ("conv bias missing", {"Convolution": ConvolutionWithoutBias}, "bias_missing", "forward omits + b"),
    ("pool routing", {"Pooling": PoolingRoutesToFirstCell}, "pool_routing", "each window's dout to its first cell"),
    ("Affine flattens channels-last", {"Affine": AffineFlattenChannelsLast}, "flatten_order",
     "x.transpose(0, 2, 3, 1).reshape(N, -1)"),
    ("Affine leaves dx flat", {"Affine": AffineFlatDx}, "layer_error", "no original_x_shape: dx (N, C*H*W)"),
    ("Relu mask channels-last on a map", {"Relu": ReluMaskChannelsLast}, "mask_mismatch",
     "a map's mask kept (N, H, W, C), applied to dout (N, C, H, W)"),
    ("Relu writes into its input (correct)", {"Relu": ReluWritesIntoInput}, "",
     "x[mask] = 0 on the conv map it is given: input_mutation warning only"),
    ("2016 printing's Pooling (correct)", {"Pooling": PoolingStride1}, "", "stride=1 default: convention warning only"),
    ("reference conv layers (correct)", {"Convolution": ref.Convolution, "Pooling": ref.Pooling}, "",
     "no finding of severity error"),
]
