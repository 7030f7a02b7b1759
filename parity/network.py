"""A stack of the book's layers: forward, backward, per-sample gradients, optimizer steps (NumPy only); user calls guarded."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity import guard
from parity import layers as reference_layers
from parity.guard import UserCodeError, held_array, where_defined, where_raised

__all__ = ["DenseSpec", "ModelSpec", "Network", "RowError", "Trace", "UserCodeError", "build_network", "stack_states",
           "where_raised"]

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
    # stepping with a stateful optimizer: book state name (v, h, m) -> parameter name -> (n, *param shape)
    state_after: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    errors: list = field(default_factory=list)  # RowError per row on which a NumPy layer raised


@dataclass
class _Slot:
    """One layer of the stack: its object, the book class it plays, and whether the class is the user's."""

    role: str  # Affine | Relu | Sigmoid | SoftmaxWithLoss | MeanSquaredError
    obj: object  # None when a user's constructor raised (the network is then broken)
    user: bool
    W: np.ndarray | None = None  # an Affine's parameters, the very arrays the layer holds: updated in place
    b: np.ndarray | None = None
    feeds_activation: bool = False  # an Affine whose output is a pre-activation (z)


class Network:
    """The book's layers in order, then a loss layer. Every call into a user's class goes through
    `parity.guard`: what it does wrong becomes a UserCodeError naming that class and method."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], kit: dict | None = None):
        self.kit = kit or {}
        self.probabilities = spec.loss in CROSS_ENTROPIES  # the loss layer applies a softmax
        self.broken: UserCodeError | None = None  # the first user constructor that raised
        self.layers: list[_Slot] = []
        for i, dense in enumerate(spec.layers, start=1):
            W, b = weights[f"W{i}"], weights[f"b{i}"]
            affine = self._make("Affine", W, b)
            # Parameters are the arrays handed to the constructor, whatever the layer calls them.
            affine.W, affine.b = (W, b) if affine.obj is None else (held_array(affine.obj, W), held_array(affine.obj, b))
            affine.feeds_activation = dense.activation in ("relu", "sigmoid")
            self.layers.append(affine)
            if dense.activation == "relu":
                self.layers.append(self._make("Relu"))
            elif dense.activation == "sigmoid":
                self.layers.append(self._make("Sigmoid"))
        self.loss_layer = self._make("SoftmaxWithLoss" if self.probabilities else "MeanSquaredError")
        self._loss_args = (1,) if self.loss_layer.obj is None else guard.loss_backward_args(self.loss_layer.obj)
        self.pre_activations: list[np.ndarray] = []
        self._last_user: tuple[_Slot, str] | None = None  # the user call whose output the next layer consumes

    def _make(self, role: str, *args) -> _Slot:
        reference = getattr(reference_layers, role)
        cls = self.kit.get(role, reference)
        if cls is reference:
            return _Slot(role, cls(*args), False)
        try:
            return _Slot(role, guard.call(cls, "__init__", *args, book=role), True)
        except UserCodeError as err:
            self.broken = self.broken or err
            return _Slot(role, None, True)

    def _call(self, slot: _Slot, method: str, *args, expect=None):
        """slot.obj.method(*args); a reference layer that raises on a user layer's output blames that layer."""
        if slot.user:
            out = guard.call(slot.obj, method, *args, book=slot.role, expect=expect)
            self._last_user = (slot, method)
            return out
        try:
            return getattr(slot.obj, method)(*args)
        except Exception as exc:
            if self._last_user is None:
                raise
            blamed, by = self._last_user
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise UserCodeError(blamed.role, type(blamed.obj), by, f"returned what the reference {slot.role}.{method} "
                                f"then raised on ({type(exc).__name__}: {text})",
                                where_defined(type(blamed.obj), by), type(exc).__name__) from exc

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.pre_activations, self._inputs = [], []
        for slot in self.layers:
            self._inputs.append(np.shape(x))
            expect = (len(x), slot.W.shape[1]) if slot.role == "Affine" else np.shape(x)
            x = self._call(slot, "forward", x, expect=expect)
            if slot.feeds_activation:
                self.pre_activations.append(x)
        self._output = x
        return x

    def loss(self, x: np.ndarray, t: np.ndarray):
        return self._call(self.loss_layer, "forward", self.predict(x), t, expect=guard.SCALAR)

    def gradient(self, x: np.ndarray, t: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Backpropagate from the loss; returns ({W1: dW1, b1: db1, ...}, dx). Call after `loss`."""
        dout = self._call(self.loss_layer, "backward", *self._loss_args, expect=np.shape(self._output))
        for slot, shape in zip(reversed(self.layers), reversed(self._inputs)):
            dout = self._call(slot, "backward", dout, expect=shape)
        grads = {}
        for i, slot in enumerate([s for s in self.layers if s.role == "Affine"], start=1):
            dW, db = guard.gradients(slot.obj, slot.W, slot.b) if slot.user else (slot.obj.dW, slot.obj.db)
            grads[f"W{i}"], grads[f"b{i}"] = np.array(dW, copy=True), np.array(db, copy=True)
        return grads, dout

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for i, slot in enumerate([s for s in self.layers if s.role == "Affine"], start=1):
            out[f"W{i}"], out[f"b{i}"] = slot.W, slot.b
        return out

    def sgd_step(self, grads: dict[str, np.ndarray], lr: float) -> None:
        """Plain SGD, as keras.optimizers.SGD without momentum: p <- p - lr * g, in place, so that the
        step reaches the layer whatever it calls its parameters."""
        params = self._checked(grads)
        for name, param in params.items():
            param -= np.asarray(lr, dtype=param.dtype) * grads[name]

    def optimizer_step(self, grads: dict[str, np.ndarray], driver, step: int) -> None:
        """One update by an optimizer in the book's protocol (a parity.user_optimizers.OptimizerDriver), its
        result copied into the parameters in place: the layers keep the very arrays they were given."""
        params = self._checked(grads)
        if driver.update(grads, step):  # a failed update is the driver's finding and changes nothing
            for name, param in params.items():
                param[...] = driver.params[name]

    def _checked(self, grads: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The parameters, once every gradient has its parameter's shape (never let a wrong shape broadcast into W)."""
        params = self.params()
        for name, param in params.items():
            if np.shape(grads[name]) != param.shape:
                raise GradientShapeError(f"d{name} has shape {np.shape(grads[name])}, {name} is {param.shape}")
        return params

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

    def step_through(self, x: np.ndarray, t: np.ndarray, optimizer, hidden: list[int]) -> Trace:
        """One optimizer step per sample, in order; records gradients before and parameters (and the
        optimizer's state) after. `optimizer` is a learning rate (plain SGD) or an OptimizerDriver."""
        driver = None if isinstance(optimizer, (int, float)) else optimizer
        rows, params, states, errors = [], [], [], []
        for i in range(len(x)):
            try:
                record = self._one(x[i:i + 1], t[i:i + 1])
                with np.errstate(all="ignore"):
                    if driver is None:
                        self.sgd_step(record["grads"], optimizer)
                    else:
                        self.optimizer_step(record["grads"], driver, i)
            except Exception as exc:  # a failed step leaves the parameters where they were
                record = None
                errors.append(RowError.of(i, exc, self))
            rows.append(record)
            params.append({k: np.array(v, copy=True) for k, v in self.params().items()})
            if driver is not None:
                states.append(driver.state())
        trace = _stack(rows, hidden, errors)
        trace.params_after = {k: np.stack([p[k] for p in params]) for k in params[0]}
        trace.state_after = stack_states(states)
        return trace

    def _one(self, x: np.ndarray, t: np.ndarray) -> dict:
        if self.broken is not None:  # a constructor raised: no row can run
            raise self.broken
        self._last_user = None
        with np.errstate(all="ignore"):  # overflow and NaN are reported as findings, not as warnings
            # Copies: a layer that writes into its input must not change the data both sides share.
            return self._one_row(np.array(x, copy=True), np.array(t, copy=True))

    def _one_row(self, x: np.ndarray, t: np.ndarray) -> dict:
        loss_layer = self.loss_layer
        before = dict(getattr(loss_layer.obj, "__dict__", {})) if self.probabilities and loss_layer.user else None
        loss = self.loss(x, t)
        scores = self._output
        pred = self._probabilities(before, scores, t) if self.probabilities else scores
        z = [np.array(a, copy=True).reshape(-1) for a in self.pre_activations]
        grads, dx = self.gradient(x, t)
        return {"pred": np.array(pred, copy=True).reshape(-1), "loss": np.asarray(loss).reshape(()),
                "grads": grads, "dx": np.asarray(dx).reshape(-1), "z": z}

    def _probabilities(self, before: dict | None, scores: np.ndarray, t: np.ndarray) -> np.ndarray:
        """A user's loss layer's probabilities where exactly one attribute its forward just set holds
        them (rows on the simplex, neither the scores nor the labels: its name says nothing, `.y` may be
        the labels); else the softmax of the scores."""
        if before is not None:
            found = [v for k, v in getattr(self.loss_layer.obj, "__dict__", {}).items()
                     if isinstance(v, np.ndarray) and v.shape == scores.shape and before.get(k) is not v
                     and not np.array_equal(v, scores) and not np.array_equal(v, t) and _on_simplex(v)]
            if len(found) == 1:
                return found[0]
        return reference_layers.softmax(scores)


def _on_simplex(p: np.ndarray) -> bool:
    """Rows of non-negative numbers summing to 1: probabilities (a loose test: it only picks an attribute)."""
    with np.errstate(all="ignore"):
        return bool(np.isfinite(p).all() and (p >= 0).all() and np.allclose(p.sum(axis=-1), 1.0, rtol=0, atol=1e-3))


class GradientShapeError(ValueError):
    """A gradient whose shape is not its parameter's."""


@dataclass
class RowError:
    """What went wrong while computing one row (sample, step or batch) on the NumPy side."""

    row: int
    layer: str  # the class and method at fault, as the user spelled it, e.g. "ReLU.backward"; "" when none
    kind: str  # the exception's class, or what was wrong (None, type, shape, gradient)
    message: str  # completes the sentence that starts with `layer`: "raised ValueError: ...", "returned None: ..."
    where: str  # "file:line" in the user's code where it can be said, else of the innermost frame
    book: str = ""  # the book class blamed (Affine, Relu, ...); "" when none

    @classmethod
    def of(cls, row: int, exc: Exception, network: "Network") -> "RowError":
        if isinstance(exc, UserCodeError):
            return cls(row, f"{exc.class_name}.{exc.method}", exc.kind, exc.message, exc.where, exc.book)
        slots = {type(s.obj): s.role for s in [*network.layers, network.loss_layer] if s.obj is not None}
        layer, book = "", ""
        tb = exc.__traceback__
        while tb is not None:  # the innermost frame that runs a method of one of the network's layers
            owner = tb.tb_frame.f_locals.get("self")
            if type(owner) in slots:
                layer, book = f"{type(owner).__name__}.{tb.tb_frame.f_code.co_name}", slots[type(owner)]
            tb = tb.tb_next
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return cls(row, layer, type(exc).__name__, f"raised {type(exc).__name__}: {text}", where_raised(exc), book)


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


def stack_states(states: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Per-step optimizer states -> book state -> parameter -> (steps, *shape), for what every step exposed."""
    if not states:
        return {}
    names = set.intersection(*(set(s) for s in states))
    return {book: {k: np.stack([s[book][k] for s in states]) for k in states[0][book]
                   if all(k in s[book] for s in states)} for book in sorted(names)}


def build_network(spec: ModelSpec, weights: dict[str, np.ndarray], kit=None) -> Network:
    """Lay out Affine/activation layers for `spec` and hand each Affine its weights.

    `kit` maps class names (Affine, Relu, Sigmoid, MeanSquaredError, SoftmaxWithLoss) to classes;
    missing names fall back to the reference layers. A user's constructor that raises leaves the
    network broken: every row it runs is then that error.
    """
    return Network(spec, weights, kit)
