"""The book's image helpers ("Deep Learning from Scratch", common/util.py), NumPy only.

`im2col` unrolls every filter window of an NCHW batch into a row; `col2im` is its adjoint: it adds each
row back into the window it came from. Adds, never assigns: where windows overlap (stride < filter) an
input cell is in several windows, and its gradient is the sum of what each window sends back.
Unlike the book, both keep the input's dtype (the book's `np.zeros` makes every float32 run float64).
"""

from __future__ import annotations

import numpy as np

__all__ = ["output_size", "im2col", "col2im"]


def output_size(size: int, filter_size: int, stride: int, pad: int) -> int:
    """Windows along one axis: (size + 2 pad - filter) // stride + 1 (a remainder is dropped, as in Keras "valid")."""
    return (size + 2 * pad - filter_size) // stride + 1


def im2col(input_data: np.ndarray, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """(N, C, H, W) -> (N * out_h * out_w, C * filter_h * filter_w): one window per row, in (n, oy, ox) order,
    its entries in (c, fy, fx) order: the order of `W.reshape(FN, -1)` for a kernel W of shape (FN, C, FH, FW)."""
    N, C, H, W = input_data.shape
    out_h, out_w = output_size(H, filter_h, stride, pad), output_size(W, filter_w, stride, pad)
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w), dtype=input_data.dtype)
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(col: np.ndarray, input_shape: tuple[int, int, int, int], filter_h: int, filter_w: int, stride: int = 1,
           pad: int = 0) -> np.ndarray:
    """The adjoint of im2col: each row added back into its window of an (N, C, H, W) array (padding cut off)."""
    N, C, H, W = input_shape
    out_h, out_w = output_size(H, filter_h, stride, pad), output_size(W, filter_w, stride, pad)
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1), dtype=col.dtype)
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]  # +=: overlapping windows add up
    return img[:, :, pad:H + pad, pad:W + pad]
