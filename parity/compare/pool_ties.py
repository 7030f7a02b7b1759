"""Near ties in max-pooling windows: where rounding alone may decide which cell gets a window's gradient (NumPy only).

A max-pooling window sends its whole gradient to one cell, its maximum. Where its two largest inputs lie within the
run's tolerance of each other, the two sides' rounding may rank them differently and route the gradient to different
cells; which cell takes a tie is a convention besides (np.argmax takes the first). That changes the gradient of the
convolution before the pooling (that filter's kernel and bias) and everything before it (dx), by the whole window's
gradient, and nothing after it: the pooled value is the same either way. parity.compare.diff excuses exactly that, as
it excuses a ReLU mask flip at its kink.
"""

from __future__ import annotations

import numpy as np

from parity.settings.tolerances import Tolerance

__all__ = ["near_ties", "per_filter"]


def per_filter(cells: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(n, [batch *] FN * OH * OW) flags of map cells -> (n, FN): whether any of filter f's cells is flagged."""
    return cells.reshape(len(cells), -1, shape[0], shape[1] * shape[2]).any(axis=(1, 3))


def near_ties(z: np.ndarray, shape: tuple[int, int, int], window: tuple[int, int], stride: int, pad: int,
              activation: str, tol: Tolerance) -> np.ndarray:
    """(n, FN): whether any pooling window over filter f's map has its two largest cells within tolerance.

    `z` holds a convolution's pre-activation maps (n, [batch *] FN * OH * OW) channel-major; the pooling sees them
    after the activation. A window whose largest cell a ReLU left at 0 passes no gradient: its ties do not count."""
    n, batch = len(z), z.shape[1] // int(np.prod(shape))  # a batch phase's row holds its samples' maps in turn
    a = z.astype(np.float64).reshape(n * batch, *shape)
    a = np.maximum(a, 0) if activation == "relu" else 1 / (1 + np.exp(-a)) if activation == "sigmoid" else a
    a = np.pad(a, [(0, 0), (0, 0), (pad, pad), (pad, pad)])  # the book's Pooling pads with zeros (Keras: ZeroPadding2D)
    ph, pw = window
    oh, ow = (a.shape[2] - ph) // stride + 1, (a.shape[3] - pw) // stride + 1
    cells = np.stack([a[:, :, y:y + stride * oh:stride, x:x + stride * ow:stride]
                      for y in range(ph) for x in range(pw)], axis=-1)  # (n, FN, OH, OW, ph * pw)
    top = np.sort(cells, axis=-1)[..., -2:]
    tied = tol.within(top[..., 0], top[..., 1]) & (top[..., 1] > 0 if activation == "relu" else True)
    return tied.reshape(n, batch, shape[0], -1).any(axis=(1, 3))
