"""A user's saved Keras model: loaded with safe mode on, accepted only as a chain of Dense layers.

A `.keras` file is untrusted input: safe mode refuses to deserialize arbitrary code (lambdas), and
keras >= 3.13.2 is required because older releases have known safe-mode bypasses.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parity.errors import ParityInputError, arg, first_line
from parity.keras_side.backend import keras
from parity.settings.spec import ACTIVATIONS, DenseSpec

__all__ = ["MIN_KERAS", "load_dense_chain"]

MIN_KERAS = (3, 13, 2)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _chain(model) -> list:
    """The model's layers in call order, refusing branches and shared layers."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in layers:  # the class first: it is the clearer reason
        if not isinstance(layer, keras.layers.Dense):
            raise ParityInputError(f"{arg('model_path')} layer {layer.name!r} is a {type(layer).__name__}; only Dense layers "
                             f"are supported (activations: {', '.join(ACTIVATIONS)})")
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
    specs, weights = [], []
    for layer in layers:
        activation = getattr(layer.activation, "__name__", str(layer.activation))
        if activation not in ACTIVATIONS:
            raise ParityInputError(f"{arg('model_path')} layer {layer.name!r} has activation {activation!r}; "
                             f"supported: {', '.join(ACTIVATIONS)}")
        if not layer.use_bias:
            raise ParityInputError(f"{arg('model_path')} layer {layer.name!r} has no bias; Affine(W, b) needs one (use_bias=True)")
        specs.append(DenseSpec(int(layer.units), activation))
        weights += [np.asarray(v.numpy()) for v in (layer.kernel, layer.bias)]
    if not specs:
        raise ParityInputError(f"{arg('model_path')} {path} has no Dense layers")
    shape = model.input_shape
    if not isinstance(shape, tuple) or len(shape) != 2 or shape[1] is None:
        raise ParityInputError(f"{arg('model_path')} input must be flat, (batch, features) (received: {shape})")
    return int(shape[1]), specs, weights
