"""Keras weights <-> the NumPy stack's parameters, as one asserted mapping, every orientation written down.

- A Keras Dense kernel is (in, out), the book's `np.dot(x, W)` orientation: copied as is, never transposed.
- A Keras Conv2D kernel is (FH, FW, C, FN) (channels_last); the book's Convolution holds W (FN, C, FH, FW):
  W = kernel.transpose(3, 2, 0, 1), kernel = W.transpose(2, 3, 1, 0). Biases are (FN,) on both sides.
- Keras's Flatten reads a channels_last map (H, W, C) row-major, entry (h, w, c) at h*W*C + w*C + c; the book's
  Affine flattens (C, H, W), entry (c, h, w) at c*H*W + h*W + w. So the first Dense after the features gets its
  kernel rows permuted: W[i] = kernel[FLATTEN[i]] with FLATTEN = `flatten_order(C, H, W)`.
- A BatchNormalization's gamma, beta, moving_mean and moving_variance are (units,) on both sides, the book's
  gamma1, beta1, running_mean1, running_var1 (named by the Dense layer before it), in that order after b1.
- Inputs: a data row is the book's NCHW image flattened; the Keras model reshapes it to (C, H, W) and permutes it
  to (H, W, C) with its own layers (parity.keras_side.model), so dL/dx comes back in the book's order.
The count is checked first, then every shape, so a wrong architecture is an error instead of a silent broadcast.
The same mapping carries Keras's gradients, stepped parameters and optimizer state (elementwise, so it commutes
with the layout) into the book's layout, a leading row axis kept.
"""

from __future__ import annotations

import numpy as np

from parity.settings.spec import ModelSpec

__all__ = ["TransferError", "keras_to_numpy", "numpy_to_keras", "keras_shape", "to_book", "to_keras", "flatten_order",
           "map_to_book"]


class TransferError(ValueError):
    pass


def flatten_order(c: int, h: int, w: int) -> np.ndarray:
    """(C*H*W,) the Keras Flatten position of each book (channel-major) position."""
    return np.arange(c * h * w).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)


def _role(spec: ModelSpec, name: str) -> str:
    """conv_kernel | first_dense_kernel (rows permuted) | plain."""
    if not name.startswith("W"):
        return "plain"
    number, convs = int(name[1:]), len(spec.convolutions())
    if number <= convs:
        return "conv_kernel"
    if name.startswith("W") and spec.features and number == spec.dense_number(1):
        return "first_dense_kernel"
    return "plain"


def keras_shape(spec: ModelSpec, name: str) -> tuple[int, ...]:
    """The shape Keras's variable for the book parameter `name` has."""
    shape = {**spec.shapes(), **spec.state_shapes()}[name]
    return (shape[2], shape[3], shape[1], shape[0]) if _role(spec, name) == "conv_kernel" else shape


def to_book(spec: ModelSpec, name: str, value: np.ndarray, rows: bool = False) -> np.ndarray:
    """Keras's array for parameter `name` (with a leading row axis when `rows`) in the book's layout."""
    role, r = _role(spec, name), int(rows)
    if role == "conv_kernel":
        return value.transpose(*range(r), r + 3, r + 2, r, r + 1)
    if role == "first_dense_kernel":
        return value[(slice(None),) * r + (flatten_order(*spec.maps()[-1]),)]
    return value


def to_keras(spec: ModelSpec, name: str, value: np.ndarray) -> np.ndarray:
    """The book's parameter `name` in the layout of Keras's variable (the inverse of to_book)."""
    role = _role(spec, name)
    if role == "conv_kernel":
        return value.transpose(2, 3, 1, 0)
    if role == "first_dense_kernel":
        out = np.empty_like(value)
        out[flatten_order(*spec.maps()[-1])] = value
        return out
    return value


def map_to_book(value: np.ndarray) -> np.ndarray:
    """(n, [batch,] OH, OW, FN) channels_last maps -> (n, [batch *] FN * OH * OW), each sample's map flattened
    channel-major as the book's layers hold it."""
    r = value.ndim
    return value.transpose(*range(r - 3), r - 1, r - 3, r - 2).reshape(len(value), -1)


def keras_to_numpy(spec: ModelSpec, variables: list[tuple[str, np.ndarray]], dtype: str) -> dict[str, np.ndarray]:
    """Map Keras's (path, value) weights onto W1, b1, [gamma1, beta1, running_mean1, running_var1,] W2, b2, ...
    (copies, in `dtype`, book layout)."""
    shapes = {**spec.shapes(), **spec.state_shapes()}
    names = spec.variables()
    if len(variables) != len(names):
        kinds = f"{len(spec.convolutions())} Conv2D and {len(spec.layers)} Dense layers" if spec.features \
            else f"{len(spec.layers)} Dense layers"
        norms = f" and {len(spec.batch_norms())} BatchNormalization (gamma, beta, moving mean and variance)" \
            if spec.batch_norms() else ""
        raise TransferError(
            f"the Keras model has {len(variables)} {'weights' if norms else 'trainable variables'}, the NumPy stack expects "
            f"{len(names)} ({', '.join(names)}): {kinds} with kernel and bias{norms}")
    weights = {}
    for name, (path, value) in zip(names, variables):
        expected = keras_shape(spec, name)
        if value.shape != expected:
            orientation = "(FH, FW, C, FN)" if _role(spec, name) == "conv_kernel" else "(in, out)"
            raise TransferError(f"{path} has shape {value.shape}, {name} expects {expected} (kernel is {orientation})")
        weights[name] = np.array(to_book(spec, name, value), dtype=dtype, order="C", copy=True)
        assert weights[name].shape == shapes[name], (name, weights[name].shape, shapes[name])
    return weights


def numpy_to_keras(spec: ModelSpec, weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The book's W1, b1, ... (and running statistics) as the list `model.set_weights` takes, in Keras's layout."""
    return [to_keras(spec, name, weights[name]) for name in spec.variables()]
