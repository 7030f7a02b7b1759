"""A user's saved Keras model: loaded with safe mode on, accepted only as a chain of Dense layers, after Conv2D,
MaxPooling2D, ZeroPadding2D, Activation and one Flatten on an image input (channels_last); a Dense layer may be
followed by a BatchNormalization, an Activation (or ReLU) and a Dropout, the book's MultiLayerNetExtend order
(parity.keras_side.saved_regularization). Anything the book's layers
cannot compute the same way (Conv1D, depthwise or separable convolutions, dilation, groups, uneven strides or
padding, strides that leave a remainder) is refused by name before any work.

A `.keras` file is untrusted input: safe mode refuses to deserialize arbitrary code (lambdas), and
keras >= 3.13.2 is required because older releases have known safe-mode bypasses.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from parity.errors import ParityInputError, arg, first_line
from parity.keras_side.backend import keras
from parity.keras_side.saved_regularization import REGULARIZATION, RegularizationReader
from parity.settings.spec import ACTIVATIONS, ConvSpec, DenseSpec, PoolSpec

__all__ = ["MIN_KERAS", "load_dense_chain", "load_chain"]

MIN_KERAS = (3, 13, 2)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


_IMAGE = ("Conv2D", "MaxPooling2D", "ZeroPadding2D", "Flatten", "Activation")


def _chain(model) -> list:
    """The model's layers in call order, refusing branches and shared layers."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:  # the class first: it is the clearer reason
        if type(layer).__name__ not in ("Dense", *_IMAGE, *REGULARIZATION) or not isinstance(layer, keras.layers.Layer):
            raise ParityInputError(f"{arg('model_path')} layer {layer.name!r} is a {type(layer).__name__}; only Dense "
                             f"layers are supported, after {', '.join(_IMAGE[:-1])} and Activation layers on an image input "
                             f"(activations: {', '.join(ACTIVATIONS)}), each Dense followed by "
                             f"{', '.join(REGULARIZATION)} in the book's order")
    if isinstance(model, keras.Sequential) or len(layers) < 2:
        return layers
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ParityInputError(f"{arg('model_path')} must have one input and one output "
                         f"(received: {len(model.inputs)} inputs, {len(model.outputs)} outputs)")
    previous = None
    for layer in layers:
        nodes = getattr(layer, "_inbound_nodes", [])
        parents = [node.operation for n in nodes for node in n.parent_nodes]
        if len(nodes) != 1 or (previous is not None and parents != [previous]):
            raise ParityInputError(f"{arg('model_path')} must be a chain of Dense layers; layer {layer.name!r} "
                             f"({type(layer).__name__}) branches or is shared")
        previous = layer
    return layers


def load_dense_chain(path: Path) -> tuple[int, list[DenseSpec], list[np.ndarray]]:
    """(input width, Dense specs, weights [kernel, bias, ...]) of a saved chain of Dense layers."""
    input_dim, specs, weights, input_shape, _ = load_chain(path)
    if input_shape is not None:
        raise ParityInputError(f"{arg('model_path')} input must be flat, (batch, features) (received an image input)")
    return input_dim, specs, weights


def load_chain(path: Path) -> tuple[int, list[DenseSpec], list[np.ndarray], tuple | None, tuple]:
    """(input width, Dense specs, weights [kernel, bias, ...] in Keras's layouts, the image input (C, H, W) or None,
    the convolutions and poolings) of a saved chain."""
    if _version(keras.__version__) < MIN_KERAS:
        raise ParityInputError(f"{arg('model_path')} needs keras >= 3.13.2 for a safe load (installed: {keras.__version__}); "
                         "run: pip install -U 'keras>=3.13.2'")
    if path.suffix != ".keras":
        raise ParityInputError(f"{arg('model_path')} must be a .keras file saved by model.save (received: {path})")
    if not path.is_file():
        raise ParityInputError(f"{arg('model_path')} file not found (received: {path})")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # any failure to deserialize is bad input, said in one line
        first = first_line(exc, empty=type(exc).__name__)
        raise ParityInputError(f"{arg('model_path')} {path} could not be loaded with safe mode on: {first[:300]}") from None
    layers = _chain(model)
    shape = model.input_shape
    image = isinstance(shape, tuple) and len(shape) == 4 and None not in shape[1:]
    if not image and (not isinstance(shape, tuple) or len(shape) != 2 or shape[1] is None):
        raise ParityInputError(f"{arg('model_path')} input must be flat, (batch, features), or an image, (batch, H, W, C) "
                               f"(received: {shape})")
    reader = _Reader((shape[3], shape[1], shape[2]) if image else None)
    for layer in layers:
        reader.read(layer)
    reader.finish(path)
    return (int(np.prod(shape[1:])), reader.dense, reader.weights, reader.input_shape if image else None,
            tuple(reader.features))


def _refuse(layer, why: str):
    raise ParityInputError(f"{arg('model_path')} layer {layer.name!r} ({type(layer).__name__}) {why}")


def _activation(layer) -> str:
    activation = getattr(layer.activation, "__name__", str(layer.activation))
    if activation not in ACTIVATIONS:
        raise ParityInputError(f"{arg('model_path')} layer {layer.name!r} has activation {activation!r}; "
                               f"supported: {', '.join(ACTIVATIONS)}")
    return activation


def _one(layer, what: str, value) -> int:
    """One number for both axes: the book's layers take a single stride and a symmetric pad."""
    a, b = value
    if a != b:
        _refuse(layer, f"has {what} {tuple(value)}; the book's layers take one {what} for both axes")
    return int(a)


class _Reader(RegularizationReader):
    """Reads the chain layer by layer into specs; refuses, by name, what the book's layers do not compute."""

    def __init__(self, input_shape: tuple[int, int, int] | None):
        self.input_shape, self.map = input_shape, input_shape  # (C, H, W) as it goes
        self.features, self.dense, self.weights = [], [], []
        self.flat, self.pad, self.last = input_shape is None, 0, None
        self.activated = False  # the last Conv2D or Dense has had its activation (its own or an Activation layer)

    def _fits(self, layer, window: tuple[int, int], stride: int, pad: int) -> tuple[int, int]:
        c, h, w = self.map
        sizes = [h + 2 * pad - window[0], w + 2 * pad - window[1]]
        if min(sizes) < 0:
            _refuse(layer, f"has a {window} window larger than its {h}x{w} input (pad {pad})")
        if sizes[0] % stride or sizes[1] % stride:
            _refuse(layer, f"has strides {stride} that leave a remainder on its {h}x{w} input (pad {pad}, window "
                           f"{window}); the book's im2col would drop it: use sizes the windows tile exactly")
        return sizes[0] // stride + 1, sizes[1] // stride + 1

    def read(self, layer) -> None:
        kind = type(layer).__name__
        if kind != "Dense" and getattr(layer, "data_format", "channels_last") != "channels_last":
            _refuse(layer, "is channels_first; Keras's default channels_last is the one mapped onto the book's NCHW")
        if kind in ("Conv2D", "MaxPooling2D", "ZeroPadding2D") and self.flat:
            _refuse(layer, "comes after Flatten (or on a flat input); convolutions need an image input (H, W, C)")
        getattr(self, "_" + kind.lower())(layer)
        self.last = layer if kind in ("Conv2D", "Dense") else self.last if kind in ("Activation", "ReLU",
                                                                                    "BatchNormalization") else None

    def _zeropadding2d(self, layer) -> None:
        (top, bottom), (left, right) = layer.padding
        if not top == bottom == left == right:
            _refuse(layer, f"pads {layer.padding} unevenly; the book's pad is the same on every side")
        self.pad += int(top)

    def _conv2d(self, layer) -> None:
        if tuple(layer.dilation_rate) != (1, 1):
            _refuse(layer, f"has dilation_rate {tuple(layer.dilation_rate)}; the book's Convolution has no dilation")
        if getattr(layer, "groups", 1) != 1:
            _refuse(layer, f"has groups={layer.groups}; the book's Convolution has no groups")
        if not layer.use_bias:
            _refuse(layer, "has no bias; Convolution(W, b) needs one (use_bias=True)")
        stride, (kh, kw) = _one(layer, "strides", layer.strides), layer.kernel_size
        pad = self.pad
        if layer.padding == "same":
            if stride != 1 or kh % 2 == 0 or kw % 2 == 0 or kh != kw:
                _refuse(layer, f"has padding 'same' with kernel {(kh, kw)} and strides {stride}: Keras pads that "
                               "unevenly, the book's pad is symmetric; 'same' is the book's pad (k - 1) / 2 only for "
                               "a square odd kernel at stride 1 (or use ZeroPadding2D + 'valid')")
            pad += (kh - 1) // 2
        oh, ow = self._fits(layer, (kh, kw), stride, pad)
        self.features.append(ConvSpec(int(layer.filters), (int(kh), int(kw)), stride, pad, _activation(layer)))
        self.weights += [np.asarray(layer.kernel.numpy()), np.asarray(layer.bias.numpy())]
        self.map, self.pad = (int(layer.filters), oh, ow), 0

    def _maxpooling2d(self, layer) -> None:
        if layer.padding != "valid":
            _refuse(layer, "has padding 'same'; the book's Pooling pads symmetrically (ZeroPadding2D + 'valid')")
        pool, stride = tuple(int(p) for p in layer.pool_size), _one(layer, "strides", layer.strides)
        oh, ow = self._fits(layer, pool, stride, self.pad)
        self.features.append(PoolSpec(pool, stride, self.pad))
        self.map, self.pad = (self.map[0], oh, ow), 0

    def _flatten(self, layer) -> None:
        if self.flat:
            _refuse(layer, "flattens a flat input; one Flatten, after the convolutions")
        if not self.features:
            _refuse(layer, "flattens an image no Conv2D or MaxPooling2D read; flatten the data instead")
        self.flat = True

    def _activation(self, layer, name: str | None = None) -> None:
        if self.last is None or _activation(self.last) != "linear" or self.activated:
            _refuse(layer, "follows no Conv2D or Dense without an activation of its own; the book applies an "
                           "activation right after its Convolution or Affine (or its BatchNormalization)")
        name = name or _activation(layer)
        if type(self.last).__name__ == "Conv2D":
            self.features[-1] = ConvSpec(**{**self.features[-1].__dict__, "activation": name})
        else:
            self.dense[-1] = replace(self.dense[-1], activation=name)
        self.activated = True

    def _dense(self, layer) -> None:
        if not self.flat:
            _refuse(layer, "reads an image map; put a Flatten before the first Dense")
        if not layer.use_bias:
            raise ParityInputError(f"{arg('model_path')} layer {layer.name!r} has no bias; Affine(W, b) needs one "
                                   "(use_bias=True)")
        self.dense.append(DenseSpec(int(layer.units), _activation(layer)))
        self.weights += [np.asarray(v.numpy()) for v in (layer.kernel, layer.bias)]
        self.activated = _activation(layer) != "linear"

    def finish(self, path: Path) -> None:
        if self.pad:
            raise ParityInputError(f"{arg('model_path')} ends its image layers with a ZeroPadding2D; pad before a "
                                   "Conv2D or MaxPooling2D")
        if not self.flat:
            raise ParityInputError(f"{arg('model_path')} has no Flatten before its Dense layers")
        if not self.dense:
            raise ParityInputError(f"{arg('model_path')} {path} has no Dense layers")
