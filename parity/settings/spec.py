"""The architecture both sides build: a chain of Dense layers and a loss, optionally after a chain of
convolutions and poolings on an image input (plain data, no NumPy).

Parameters are numbered along the chain, convolutions first: a model Convolution -> Pooling -> Affine ->
Affine has W1, b1 (the kernel (FN, C, FH, FW)), W2, b2, W3, b3, as the book's SimpleConvNet names them.
An image input is (C, H, W), its rows stored flattened channel-major (NCHW), the book's order.
"""

from __future__ import annotations

from dataclasses import dataclass

from parity.settings.regularization_spec import BatchNormSpec, bn_names, bn_problems, dropout_problems, state_names

__all__ = ["ACTIVATIONS", "LOSSES", "CROSS_ENTROPIES", "IMAGE_LAYERS", "MODE_LAYERS", "LAYER_NAMES", "DenseSpec",
           "ConvSpec", "PoolSpec", "BatchNormSpec", "ModelSpec", "window_count"]

ACTIVATIONS = ("relu", "sigmoid", "linear", "softmax")
# The book fuses softmax into its loss layer, so the cross-entropies go with a softmax output layer.
LOSSES = ("mean_squared_error", "categorical_crossentropy", "sparse_categorical_crossentropy")
CROSS_ENTROPIES = LOSSES[1:]
# The book classes a NumPy stack is built from (ModelSpec.classes picks a run's), in the book's order.
IMAGE_LAYERS = ("Convolution", "Pooling")  # the book's chapter 7
MODE_LAYERS = ("Dropout", "BatchNormalization")  # the book's chapter 6: forward takes a train flag
LAYER_NAMES = ("Affine", "Relu", "Sigmoid", "SoftmaxWithLoss", "MeanSquaredError", *IMAGE_LAYERS, *MODE_LAYERS)


@dataclass(frozen=True)
class DenseSpec:
    """Dense(units) -> [BatchNormalization] -> activation -> [Dropout(rate)] (parity.settings.regularization_spec)."""

    units: int
    activation: str = "linear"
    batch_norm: BatchNormSpec | None = None
    dropout: float | None = None  # the Dropout's rate after the activation; None: no Dropout


@dataclass(frozen=True)
class ConvSpec:
    """The book's Convolution (Keras's Conv2D): `filters` kernels of `kernel` (FH, FW), symmetric zero padding."""

    filters: int
    kernel: tuple[int, int]
    stride: int = 1
    pad: int = 0
    activation: str = "relu"


@dataclass(frozen=True)
class PoolSpec:
    """The book's max Pooling (Keras's MaxPooling2D), its stride always explicit."""

    pool: tuple[int, int]
    stride: int = 2
    pad: int = 0


def window_count(size: int, window: int, stride: int, pad: int) -> int:
    """Windows along one axis: (size + 2 pad - window) // stride + 1 (parity.book.functions.output_size)."""
    return (size + 2 * pad - window) // stride + 1


@dataclass(frozen=True)
class ModelSpec:
    """The architecture both sides build: convolutions and poolings (`features`) on an image input of
    `input_shape` (C, H, W), flattened channel-major, then a chain of Dense layers, and a loss."""

    input_dim: int
    layers: tuple[DenseSpec, ...]
    loss: str = "mean_squared_error"
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) of an image input; None: flat features
    features: tuple[ConvSpec | PoolSpec, ...] = ()

    @property
    def output_dim(self) -> int:
        return self.layers[-1].units

    def maps(self) -> list[tuple[int, int, int]]:
        """(C, H, W) after each feature layer, the input's first (empty list without an image input)."""
        if self.input_shape is None:
            return []
        out = [tuple(self.input_shape)]
        for f in self.features:
            c, h, w = out[-1]
            size = f.kernel if isinstance(f, ConvSpec) else f.pool
            out.append((f.filters if isinstance(f, ConvSpec) else c, window_count(h, size[0], f.stride, f.pad),
                        window_count(w, size[1], f.stride, f.pad)))
        return out

    @property
    def flat_dim(self) -> int:
        """The width the first Dense layer sees: the last feature map flattened, or the input."""
        maps = self.maps()
        return maps[-1][0] * maps[-1][1] * maps[-1][2] if maps else self.input_dim

    def convolutions(self) -> list[tuple[int, ConvSpec, tuple[int, int, int], tuple[int, int, int]]]:
        """(parameter number, spec, input map (C, H, W), output map (FN, OH, OW)) of each Convolution."""
        maps, out = self.maps(), []
        for k, f in enumerate(self.features):
            if isinstance(f, ConvSpec):
                out.append((len(out) + 1, f, maps[k], maps[k + 1]))
        return out

    def dense_number(self, k: int) -> int:
        """The parameter number of the k-th Dense layer (from 1): after the convolutions."""
        return k + sum(isinstance(f, ConvSpec) for f in self.features)

    def dense(self, number: int) -> DenseSpec | None:
        """The Dense layer with parameter number `number`; None for a convolution."""
        k = number - self.dense_number(0)
        return self.layers[k - 1] if 1 <= k <= len(self.layers) else None

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape (the book's), in Keras's trainable-variable order (kernel, bias per layer)."""
        shapes = {}
        for i, conv, (c, _, _), _ in self.convolutions():
            shapes[f"W{i}"] = (conv.filters, c, *conv.kernel)  # (FN, C, FH, FW)
            shapes[f"b{i}"] = (conv.filters,)
        fan_in = self.flat_dim
        for k, layer in enumerate(self.layers, start=1):
            i = self.dense_number(k)
            shapes[f"W{i}"] = (fan_in, layer.units)
            shapes[f"b{i}"] = (layer.units,)
            if layer.batch_norm is not None:
                shapes |= {name: (layer.units,) for name in bn_names(i)}
            fan_in = layer.units
        return shapes

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Running statistics (running_mean1, running_var1, ...) of each BatchNormalization: state, not trained."""
        return {name: (s.units,) for k, s in enumerate(self.layers, start=1) if s.batch_norm is not None
                for name in state_names(self.dense_number(k))}

    def variables(self) -> list[str]:
        """Every parameter and running statistic, in the order of the Keras model's weights (get_weights)."""
        state, out = self.state_shapes(), []
        for name in self.shapes():
            out.append(name)
            if name.startswith("beta"):
                out += list(state_names(int(name[4:])))
        return out

    @property
    def regularized(self) -> bool:
        """Some Dense layer carries a BatchNormalization or a Dropout: their train and test modes differ."""
        return any(s.batch_norm is not None or s.dropout is not None for s in self.layers)

    def batch_norms(self) -> list[tuple[int, DenseSpec]]:
        """(parameter number, spec) of each Dense layer with a BatchNormalization."""
        return [(self.dense_number(k), s) for k, s in enumerate(self.layers, start=1) if s.batch_norm is not None]

    def dropouts(self) -> list[tuple[int, float]]:
        """(parameter number, rate) of each Dense layer followed by a Dropout."""
        return [(self.dense_number(k), s.dropout) for k, s in enumerate(self.layers, start=1) if s.dropout is not None]

    @property
    def target_dim(self) -> int:
        """Width of the targets: one integer label per sample for the sparse cross-entropy."""
        return 1 if self.loss == "sparse_categorical_crossentropy" else self.output_dim

    def classes(self) -> set[str]:
        """The book classes a NumPy stack of this architecture is built from (see build_network)."""
        used = {"Affine", "SoftmaxWithLoss" if self.loss in CROSS_ENTROPIES else "MeanSquaredError"}
        used |= {"Convolution" if isinstance(f, ConvSpec) else "Pooling" for f in self.features}
        used |= {"BatchNormalization"} if self.batch_norms() else set()
        used |= {"Dropout"} if self.dropouts() else set()
        return used | {{"relu": "Relu", "sigmoid": "Sigmoid"}[s.activation] for s in (*self.layers, *self.features)
                       if getattr(s, "activation", None) in ("relu", "sigmoid")}

    def hidden(self) -> list[tuple[int, DenseSpec]]:
        """(parameter number, spec) of each Dense with an elementwise nonlinearity (relu, sigmoid): its units
        are reported one by one (dead, saturated)."""
        return [(self.dense_number(k), s) for k, s in enumerate(self.layers, start=1)
                if s.activation in ("relu", "sigmoid")]

    def activated_maps(self) -> list[tuple[int, ConvSpec, tuple[int, int, int], tuple[int, int, int]]]:
        """The convolutions with an elementwise nonlinearity: their pre-activation maps are compared whole,
        channel-major, and their ReLU kinks judged as a Dense unit's are (parity.compare.diff)."""
        return [c for c in self.convolutions() if c[1].activation in ("relu", "sigmoid")]

    def problems(self) -> list[str]:
        """What makes this architecture unbuildable on the NumPy side; empty when fine."""
        out = []
        if not self.layers:
            out.append("the model has no Dense layers")
        out += self._feature_problems()
        for i, layer in enumerate(self.layers, start=1):
            if layer.activation not in ACTIVATIONS:
                out.append(f"layer {i} has activation {layer.activation!r}; supported: {', '.join(ACTIVATIONS)}")
            elif layer.activation == "softmax" and i != len(self.layers):
                out.append(f"layer {i} has a softmax activation; softmax is supported on the output layer only")
            if layer.units < 1:
                out.append(f"layer {i} has {layer.units} units; at least 1 is needed")
            elif layer.batch_norm is not None:
                out += bn_problems(i, layer.units, layer.batch_norm)
            out += dropout_problems(i, layer.dropout)
            if (layer.batch_norm is not None or layer.dropout is not None) and i == len(self.layers):
                out.append(f"layer {i} is the output layer: BatchNormalization and Dropout go on hidden layers, as in "
                           "the book's MultiLayerNetExtend")
        if self.loss not in LOSSES:
            out.append(f"loss {self.loss!r} is not supported; supported: {', '.join(LOSSES)}")
        elif self.layers and (self.loss in CROSS_ENTROPIES) != (self.layers[-1].activation == "softmax"):
            out.append(f"loss {self.loss} needs {'a softmax' if self.loss in CROSS_ENTROPIES else 'a non-softmax'} "
                       f"output layer (received: {self.layers[-1].activation}); the NumPy side's SoftmaxWithLoss "
                       "fuses softmax and cross-entropy")
        return out

    def pooled_maps(self) -> list[tuple[int, ConvSpec, tuple[int, int, int], PoolSpec]]:
        """(convolution number, its spec, its output map, the pooling) of each pooling right after an activated
        convolution: where its windows' near ties can route gradient differently (parity.compare.pool_ties)."""
        out, convs = [], iter(self.convolutions())
        last = None
        for f in self.features:
            if isinstance(f, ConvSpec):
                last = next(convs)
            elif last is not None and last[1].activation in ("relu", "sigmoid"):
                out.append((last[0], last[1], last[3], f))
                last = None
            else:
                last = None
        return out

    def _feature_problems(self) -> list[str]:
        if not self.features:
            return []
        if self.input_shape is None or len(self.input_shape) != 3 or min(self.input_shape) < 1:
            return [f"convolutions need an image input (C, H, W) (received: {self.input_shape})"]
        if self.input_dim != self.input_shape[0] * self.input_shape[1] * self.input_shape[2]:
            return [f"the input has {self.input_dim} values, not C * H * W of {self.input_shape}"]
        out, maps = [], self.maps()
        for k, f in enumerate(self.features, start=1):
            name, size = ("convolution", f.kernel) if isinstance(f, ConvSpec) else ("pooling", f.pool)
            if isinstance(f, ConvSpec) and (f.filters < 1 or f.activation not in ("relu", "sigmoid", "linear")):
                out.append(f"{name} {k} needs filters >= 1 and activation relu, sigmoid or linear "
                           f"(received: {f.filters}, {f.activation})")
            if f.stride < 1 or f.pad < 0 or min(size) < 1:
                out.append(f"{name} {k} needs a window >= 1, stride >= 1 and pad >= 0 (received: {size}, "
                           f"stride {f.stride}, pad {f.pad})")
            elif min(maps[k][1:]) < 1:
                out.append(f"{name} {k}'s window {size} does not fit its {maps[k - 1][1]}x{maps[k - 1][2]} input "
                           f"with pad {f.pad}")
        return out
