"""A stack of the book's layers: forward, backward, per-sample gradients, SGD step (NumPy only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity import layers as reference_layers

__all__ = ["DenseSpec", "ModelSpec", "Network", "RowError", "Trace", "build_network", "where_raised"]

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

    def classes(self) -> set[str]:
        """The book classes a NumPy stack of this architecture is built from (see build_network)."""
        used = {"Affine", "SoftmaxWithLoss" if self.loss in CROSS_ENTROPIES else "MeanSquaredError"}
        return used | {{"relu": "Relu", "sigmoid": "Sigmoid"}[s.activation] for s in self.layers
                       if s.activation in ("relu", "sigmoid")}

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


@dataclass
class Trace:
    """One side's per-sample (or per-step) record; leading axis is the sample or step."""

    pred: np.ndarray  # (n, out)
    loss: np.ndarray  # (n,)
    grads: dict[str, np.ndarray]  # name -> (n, *param shape)
    dx: np.ndarray  # (n, in)
    z: dict[int, np.ndarray]  # hidden layer number -> pre-activations (n, units)
    params_after: dict[str, np.ndarray] = field(default_factory=dict)  # stepping only
    errors: list = field(default_factory=list)  # RowError per row on which a NumPy layer raised


class Network:
    """The book's layers in order, then a loss layer; Affine layers hold the parameters."""

    def __init__(self, layers: list, loss_layer, affine_class=reference_layers.Affine, probabilities: bool = False):
        self.layers = layers
        self.loss_layer = loss_layer
        self.probabilities = probabilities  # the loss layer applies a softmax: predictions are its output
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
        self._output = x
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
        for name, param in self.params().items():
            if np.shape(grads[name]) != param.shape:  # never let a wrong shape broadcast into W
                raise GradientShapeError(f"d{name} has shape {np.shape(grads[name])}, {name} is {param.shape}")
        for i, affine in enumerate(self.affines, start=1):
            lr_ = np.asarray(lr, dtype=affine.W.dtype)
            affine.W = affine.W - lr_ * grads[f"W{i}"]
            affine.b = affine.b - lr_ * grads[f"b{i}"]

    def per_sample(self, x: np.ndarray, t: np.ndarray, hidden: list[int], batch: int = 1) -> Trace:
        """Forward and backward on consecutive batches (one sample each by default, as the notebook does).

        A batch larger than 1 drops the remainder and records no pre-activations. An exception in a
        layer does not stop the run: the row is recorded as failed, with the error, and filled with NaN.
        """
        records, errors = [], []
        for row, i in enumerate(range(0, len(x) - batch + 1, batch)):
            try:
                records.append(self._one(x[i:i + batch], t[i:i + batch]))
            except Exception as exc:  # the user's layer raised: a finding, not a crash
                records.append(None)
                errors.append(RowError.of(row, exc, self))
        return _stack(records, hidden if batch == 1 else [], errors)

    def step_through(self, x: np.ndarray, t: np.ndarray, lr: float, hidden: list[int]) -> Trace:
        """One SGD step per sample, in order; records gradients before and parameters after."""
        rows, params, errors = [], [], []
        for i in range(len(x)):
            try:
                record = self._one(x[i:i + 1], t[i:i + 1])
                with np.errstate(all="ignore"):
                    self.sgd_step(record["grads"], lr)
            except Exception as exc:  # a failed step leaves the parameters where they were
                record = None
                errors.append(RowError.of(i, exc, self))
            rows.append(record)
            params.append({k: np.array(v, copy=True) for k, v in self.params().items()})
        trace = _stack(rows, hidden, errors)
        trace.params_after = {k: np.stack([p[k] for p in params]) for k in params[0]}
        return trace

    def _one(self, x: np.ndarray, t: np.ndarray) -> dict:
        with np.errstate(all="ignore"):  # overflow and NaN are reported as findings, not as warnings
            return self._one_row(x, t)

    def _one_row(self, x: np.ndarray, t: np.ndarray) -> dict:
        loss = self.loss(x, t)
        scores = self._output
        if self.probabilities:  # the book's SoftmaxWithLoss keeps them as .y; else take the softmax of the scores
            y = getattr(self.loss_layer, "y", None)
            pred = y if isinstance(y, np.ndarray) and y.shape == np.shape(scores) else reference_layers.softmax(scores)
        else:
            pred = scores
        z = [np.array(a, copy=True).reshape(-1) for a in self.pre_activations]
        grads, dx = self.gradient(x, t)
        return {"pred": np.array(pred, copy=True).reshape(-1), "loss": np.asarray(loss).reshape(()),
                "grads": grads, "dx": np.asarray(dx).reshape(-1), "z": z}


class GradientShapeError(ValueError):
    """A gradient whose shape is not its parameter's."""


@dataclass
class RowError:
    """An exception raised while computing one row (sample, step or batch) on the NumPy side."""

    row: int
    layer: str  # the class whose method raised, e.g. "Relu.backward"; "" when not inside a layer
    kind: str  # the exception's class
    message: str
    where: str  # "file:line" of the innermost frame

    @classmethod
    def of(cls, row: int, exc: Exception, network: "Network") -> "RowError":
        classes = {type(layer) for layer in [*network.layers, network.loss_layer]}
        layer = ""
        tb = exc.__traceback__
        while tb is not None:  # the innermost frame that runs a method of one of the network's layers
            owner = tb.tb_frame.f_locals.get("self")
            if type(owner) in classes:
                layer = f"{type(owner).__name__}.{tb.tb_frame.f_code.co_name}"
            tb = tb.tb_next
        return cls(row, layer, type(exc).__name__, str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                   where_raised(exc))


def where_raised(exc: BaseException) -> str:
    """'file:line' of the innermost frame an exception passed through."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _filled(values: list) -> np.ndarray | None:
    """Stack per-row arrays; rows that failed (None) become NaN of the successful rows' shape.

    None when no row succeeded: there is no shape to give them.
    """
    shape = next((np.shape(v) for v in values if v is not None), None)
    if shape is None:
        return None
    return np.stack([np.full(shape, np.nan) if v is None else np.asarray(v) for v in values])


def _stack(records: list[dict | None], hidden: list[int], errors: list[RowError] = ()) -> Trace:
    good = [r for r in records if r is not None]
    names = list(good[0]["grads"]) if good else []
    column = lambda key: [None if r is None else r[key] for r in records]  # noqa: E731
    return Trace(
        pred=_filled(column("pred")),
        loss=_filled(column("loss")),
        grads={k: _filled([None if r is None else r["grads"][k] for r in records]) for k in names},
        dx=_filled(column("dx")),
        z={} if not good else {layer: _filled([None if r is None else r["z"][n] for r in records])
                               for n, layer in enumerate(hidden)},
        errors=list(errors),
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
    return Network(stack, loss_layer, affine_class=kit["Affine"], probabilities=spec.loss in CROSS_ENTROPIES)


def _reference_kit() -> dict:
    return {name: getattr(reference_layers, name) for name in reference_layers.__all__}
