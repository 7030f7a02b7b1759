"""The architecture both sides build: a chain of Dense layers and a loss (plain data, no NumPy)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACTIVATIONS", "LOSSES", "CROSS_ENTROPIES", "LAYER_NAMES", "DenseSpec", "ModelSpec"]

ACTIVATIONS = ("relu", "sigmoid", "linear", "softmax")
# The book fuses softmax into its loss layer, so the cross-entropies go with a softmax output layer.
LOSSES = ("mean_squared_error", "categorical_crossentropy", "sparse_categorical_crossentropy")
CROSS_ENTROPIES = LOSSES[1:]
# The book classes a NumPy stack is built from (ModelSpec.classes picks a run's), in the book's order.
LAYER_NAMES = ("Affine", "Relu", "Sigmoid", "SoftmaxWithLoss", "MeanSquaredError")


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
