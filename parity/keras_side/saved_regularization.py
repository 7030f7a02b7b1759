"""A saved model's BatchNormalization, ReLU and Dropout layers read into the Dense layer they follow, in the book's
MultiLayerNetExtend order (Dense -> BatchNormalization -> Activation or ReLU -> Dropout); what the NumPy side can't
mirror (a Dropout's noise_shape, BatchNormalization without center or scale, renorm, another axis) is refused by
name before any work."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from parity.errors import ParityInputError, arg
from parity.settings.regularization_spec import BatchNormSpec

__all__ = ["REGULARIZATION", "RegularizationReader"]

REGULARIZATION = ("BatchNormalization", "ReLU", "Dropout")


def _refuse(layer, why: str):
    raise ParityInputError(f"{arg('model_path')} layer {layer.name!r} ({type(layer).__name__}) {why}")


class RegularizationReader:
    """The saved_model reader's methods for these layers (mixed into its _Reader: self.dense, self.weights, self.last,
    self.activated, self.flat)."""

    def _after_dense(self, layer, what: str) -> None:
        if not self.flat or self.last is None or type(self.last).__name__ != "Dense":
            _refuse(layer, f"follows no Dense layer; the NumPy side has {what} only after a Dense (Affine), in the "
                           "book's order Dense -> BatchNormalization -> activation -> Dropout")
        if self.dense[-1].dropout is not None:
            _refuse(layer, "follows a Dropout; a Dropout ends its Dense layer's group (Dense -> BatchNormalization -> "
                           "activation -> Dropout)")

    def _batchnormalization(self, layer) -> None:
        self._after_dense(layer, "a BatchNormalization")
        if self.activated or self.dense[-1].batch_norm is not None:
            _refuse(layer, "comes after an activation; the book normalizes the pre-activation: Dense (no activation) "
                           "-> BatchNormalization -> Activation")
        axis = layer.axis if isinstance(layer.axis, int) else list(layer.axis)
        if axis not in (-1, 1, [-1], [1]):
            _refuse(layer, f"normalizes axis {layer.axis}; the NumPy side normalizes the features, the last axis (-1)")
        for option, why in (("center", "has center=False (no beta); the book's BatchNormalization has beta"),
                            ("scale", "has scale=False (no gamma); the book's BatchNormalization has gamma")):
            if not getattr(layer, option, True):
                _refuse(layer, why)
        if getattr(layer, "renorm", False):
            _refuse(layer, "has renorm=True; the book's BatchNormalization has no batch renormalization")
        values = [np.asarray(v.numpy()) for v in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance)]
        as_tuple = [tuple(float(a) for a in v.reshape(-1)) for v in values]
        self.dense[-1] = replace(self.dense[-1], batch_norm=BatchNormSpec(float(layer.momentum), float(layer.epsilon),
                                                                          *as_tuple))
        self.weights += values

    def _relu(self, layer) -> None:
        plain = (layer.max_value is None and float(layer.negative_slope) == 0 and float(layer.threshold) == 0)
        if not plain:
            _refuse(layer, f"has max_value={layer.max_value}, negative_slope={layer.negative_slope}, "
                           f"threshold={layer.threshold}; the book's Relu is max(0, x): ReLU() with its defaults")
        self._activation(layer, "relu")

    def _dropout(self, layer) -> None:
        self._after_dense(layer, "a Dropout")
        if layer.noise_shape is not None:
            _refuse(layer, f"has noise_shape={layer.noise_shape}; the book's Dropout draws one mask entry per unit "
                           "(noise_shape=None)")
        self.dense[-1] = replace(self.dense[-1], dropout=float(layer.rate))
        self.activated = True  # nothing but the next Dense may follow
