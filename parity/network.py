"""A stack of the book's layers: forward, backward, per-sample gradients, SGD step (NumPy only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity import layers as reference_layers

__all__ = ["DenseSpec", "ModelSpec", "Network", "Trace", "build_network", "param_names"]

ACTIVATIONS = ("relu", "sigmoid", "linear", "softmax")
# The book fuses softmax into its loss layer, so the cross-entropies go with a softmax output layer.
LOSSES = ("mean_squared_error", "categorical_crossentropy", "sparse_categorical_crossentropy")
CROSS_ENTROPIES = LOSSES[1:]


@dataclass(frozen=True)
class DenseSpec:
    units: int
    activation: str = "linear"


@dataclass(frozen=True)
class ModelSpec:
    """The architecture both sides build: a chain of Dense layers and a loss."""

    input_dim: int
    layers: tuple[DenseSpec, ...]
    loss: str = "mean_squared_error"

    @property
    def output_dim(self) -> int:
        return self.layers[-1].units

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, in Keras's trainable-variable order (kernel, bias per Dense)."""
        shapes, fan_in = {}, self.input_dim
        for i, layer in enumerate(self.layers, start=1):
            shapes[f"W{i}"] = (fan_in, layer.units)
            shapes[f"b{i}"] = (layer.units,)
            fan_in = layer.units
        return shapes

    @property
    def target_dim(self) -> int:
        """Width of the targets: one integer label per sample for the sparse cross-entropy."""
        return 1 if self.loss == "sparse_categorical_crossentropy" else self.output_dim

    def hidden(self) -> list[tuple[int, DenseSpec]]:
        """(1-based layer number, spec) of each Dense with an elementwise nonlinearity (relu, sigmoid)."""
        return [(i, s) for i, s in enumerate(self.layers, start=1) if s.activation in ("relu", "sigmoid")]

    def problems(self) -> list[str]:
        """What makes this architecture unbuildable on the NumPy side; empty when fine."""
        out = []
        if not self.layers:
            out.append("the model has no Dense layers")
        for i, layer in enumerate(self.layers, start=1):
            if layer.activation not in ACTIVATIONS:
                out.append(f"layer {i} has activation {layer.activation!r}; supported: {', '.join(ACTIVATIONS)}")
            elif layer.activation == "softmax" and i != len(self.layers):
                out.append(f"layer {i} has a softmax activation; softmax is supported on the output layer only")
            if layer.units < 1:
                out.append(f"layer {i} has {layer.units} units; at least 1 is needed")
        if self.loss not in LOSSES:
            out.append(f"loss {self.loss!r} is not supported; supported: {', '.join(LOSSES)}")
        elif self.layers and (self.loss in CROSS_ENTROPIES) != (self.layers[-1].activation == "softmax"):
            out.append(f"loss {self.loss} needs {'a softmax' if self.loss in CROSS_ENTROPIES else 'a non-softmax'} "
                       f"output layer (received: {self.layers[-1].activation}); the NumPy side's SoftmaxWithLoss "
                       "fuses softmax and cross-entropy")
        return out


def param_names(spec: ModelSpec) -> list[str]:
    return list(spec.shapes())


@dataclass
class Trace:
    """One side's per-sample (or per-step) record; leading axis is the sample or step."""

    pred: np.ndarray  # (n, out)
    loss: np.ndarray  # (n,)
    grads: dict[str, np.ndarray]  # name -> (n, *param shape)
    dx: np.ndarray  # (n, in)
    z: dict[int, np.ndarray]  # hidden layer number -> pre-activations (n, units)
    params_after: dict[str, np.ndarray] = field(default_factory=dict)  # stepping only


class Network:
    """The book's layers in order, then a loss layer; Affine layers hold the parameters."""

    def __init__(self, layers: list, loss_layer, affine_class=reference_layers.Affine):
        self.layers = layers
        self.loss_layer = loss_layer
        self.affines = [layer for layer in layers if isinstance(layer, affine_class)]
        # Positions of the Affine layers whose output feeds an activation: pre-activations.
        self._pre_act_at = {
            i for i, layer in enumerate(layers[:-1])
            if isinstance(layer, affine_class) and not isinstance(layers[i + 1], affine_class)
        }
        self.pre_activations: list[np.ndarray] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.pre_activations = []
        for i, layer in enumerate(self.layers):
            x = layer.forward(x)
            if i in self._pre_act_at:
                self.pre_activations.append(x)
        return x

    def loss(self, x: np.ndarray, t: np.ndarray):
        return self.loss_layer.forward(self.predict(x), t)

    def gradient(self, x: np.ndarray, t: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Backpropagate from the loss; returns ({W1: dW1, b1: db1, ...}, dx). Call after `loss`."""
        dout = self.loss_layer.backward(1)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        grads = {}
        for i, affine in enumerate(self.affines, start=1):
            grads[f"W{i}"] = np.array(affine.dW, copy=True)
            grads[f"b{i}"] = np.array(affine.db, copy=True)
        return grads, dout

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for i, affine in enumerate(self.affines, start=1):
            out[f"W{i}"], out[f"b{i}"] = affine.W, affine.b
        return out

    def sgd_step(self, grads: dict[str, np.ndarray], lr: float) -> None:
        """Plain SGD, as keras.optimizers.SGD without momentum: p <- p - lr * g."""
        for i, affine in enumerate(self.affines, start=1):
            lr_ = np.asarray(lr, dtype=affine.W.dtype)
            affine.W = affine.W - lr_ * grads[f"W{i}"]
            affine.b = affine.b - lr_ * grads[f"b{i}"]

    def per_sample(self, x: np.ndarray, t: np.ndarray, hidden: list[int]) -> Trace:
        """Forward and backward one sample at a time (batch of 1), as the notebook does."""
        records = [self._one(x[i:i + 1], t[i:i + 1]) for i in range(len(x))]
        return _stack(records, hidden)

    def step_through(self, x: np.ndarray, t: np.ndarray, lr: float, hidden: list[int]) -> Trace:
        """One SGD step per sample, in order; records gradients before and parameters after."""
        records = []
        for i in range(len(x)):
            record = self._one(x[i:i + 1], t[i:i + 1])
            self.sgd_step(record["grads"], lr)
            record["params"] = {k: np.array(v, copy=True) for k, v in self.params().items()}
            records.append(record)
        trace = _stack(records, hidden)
        trace.params_after = {k: np.stack([r["params"][k] for r in records]) for k in records[0]["params"]}
        return trace

    def _one(self, x: np.ndarray, t: np.ndarray) -> dict:
        loss = self.loss(x, t)
        pred = self.loss_layer.y  # the network's output, or the softmax probabilities
        z = [np.array(a, copy=True)[0] for a in self.pre_activations]
        grads, dx = self.gradient(x, t)
        return {"pred": np.array(pred, copy=True)[0], "loss": loss, "grads": grads,
                "dx": np.asarray(dx).reshape(len(x), -1)[0], "z": z}


def _stack(records: list[dict], hidden: list[int]) -> Trace:
    names = list(records[0]["grads"])
    return Trace(
        pred=np.stack([r["pred"] for r in records]),
        loss=np.asarray([r["loss"] for r in records]),
        grads={k: np.stack([r["grads"][k] for r in records]) for k in names},
        dx=np.stack([r["dx"] for r in records]),
        z={layer: np.stack([r["z"][n] for r in records]) for n, layer in enumerate(hidden)},
    )


def build_network(spec: ModelSpec, weights: dict[str, np.ndarray], kit=None) -> Network:
    """Lay out Affine/activation layers for `spec` and hand each Affine its weights.

    `kit` maps class names (Affine, Relu, Sigmoid, MeanSquaredError, SoftmaxWithLoss) to classes;
    missing names fall back to the reference layers.
    """
    kit = {**_reference_kit(), **(kit or {})}
    stack = []
    for i, layer in enumerate(spec.layers, start=1):
        stack.append(kit["Affine"](weights[f"W{i}"], weights[f"b{i}"]))
        if layer.activation == "relu":
            stack.append(kit["Relu"]())
        elif layer.activation == "sigmoid":
            stack.append(kit["Sigmoid"]())
    loss_layer = kit["SoftmaxWithLoss"]() if spec.loss in CROSS_ENTROPIES else kit["MeanSquaredError"]()
    return Network(stack, loss_layer, affine_class=kit["Affine"])


def _reference_kit() -> dict:
    return {name: getattr(reference_layers, name) for name in reference_layers.__all__}
