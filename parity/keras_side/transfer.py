"""Keras Dense weights -> the NumPy stack's Affine parameters, as one asserted mapping.

Orientation: a Keras Dense kernel is (in, out), the book's `np.dot(x, W)` orientation, so it is
copied as is, never transposed. The count is checked first, then every shape, so a wrong
architecture is an error instead of a silent broadcast.
"""

from __future__ import annotations

import numpy as np

from parity.settings.spec import ModelSpec

__all__ = ["TransferError", "keras_to_numpy"]


class TransferError(ValueError):
    pass


def keras_to_numpy(spec: ModelSpec, variables: list[tuple[str, np.ndarray]], dtype: str) -> dict[str, np.ndarray]:
    """Map Keras's (path, value) trainable variables onto W1, b1, W2, b2, ... (copies, in `dtype`)."""
    shapes = spec.shapes()
    if len(variables) != len(shapes):
        raise TransferError(
            f"the Keras model has {len(variables)} trainable variables, the NumPy stack expects "
            f"{len(shapes)} ({', '.join(shapes)}): {len(spec.layers)} Dense layers with kernel and bias")
    weights = {}
    for (name, shape), (path, value) in zip(shapes.items(), variables):
        if value.shape != shape:
            raise TransferError(f"{path} has shape {value.shape}, {name} expects {shape} (kernel is (in, out))")
        weights[name] = np.array(value, dtype=dtype, copy=True)
    return weights
