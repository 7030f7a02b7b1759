"""A stack of the book's layers: forward, backward, per-sample gradients, optimizer steps (NumPy only); user calls guarded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.errors import first_line
from parity.user_code import guard
from parity.book import layers as reference_layers
from parity.numpy_side.trace import RowError, Trace, stack_rows, stack_states
from parity.settings.spec import CROSS_ENTROPIES, ConvSpec, ModelSpec
from parity.user_code.guard import UserCodeError, held_array, where_defined
from parity.user_code.protocol import construct

__all__ = ["Network", "GradientShapeError", "build_network"]


@dataclass
class _Slot:
    """One layer of the stack: its object, the book class it plays, and whether the class is the user's."""

    role: str  # Affine | Convolution | Pooling | Relu | Sigmoid | SoftmaxWithLoss | MeanSquaredError
    obj: object  # None when a user's constructor raised (the network is then broken)
    user: bool
    W: np.ndarray | None = None  # an Affine's or Convolution's parameters, the arrays the layer holds: updated in place
    b: np.ndarray | None = None
    feeds_activation: bool = False  # an Affine or Convolution whose output is a pre-activation (z, or a map)
    out: tuple[int, ...] | None = None  # a Convolution's or Pooling's output per sample (C, H, W)


PARAMETRIC = ("Convolution", "Affine")  # the layers holding W and b, numbered along the chain


class Network:
    """The book's layers in order, then a loss layer. Every call into a user's class goes through
    `parity.user_code.guard`: what it does wrong becomes a UserCodeError naming that class and method."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], kit: dict | None = None):
        self.kit = kit or {}
        self.probabilities = spec.loss in CROSS_ENTROPIES  # the loss layer applies a softmax
        self.broken: UserCodeError | None = None  # the first user constructor that raised
        self.layers: list[_Slot] = []
        self.input_shape = spec.input_shape if spec.features else None  # rows are images flattened channel-major
        self.map_numbers = [i for i, *_ in spec.activated_maps()]
        maps = spec.maps()
        for k, f in enumerate(spec.features, start=1):
            if isinstance(f, ConvSpec):
                self._parametric("Convolution", weights, f.activation, f.stride, f.pad).out = maps[k]
            else:
                self._add(self._make("Pooling", *f.pool, f.stride, f.pad)).out = maps[k]
        for dense in spec.layers:
            self._parametric("Affine", weights, dense.activation)
        self.loss_layer = self._make("SoftmaxWithLoss" if self.probabilities else "MeanSquaredError")
        self._loss_args = (1,) if self.loss_layer.obj is None else guard.loss_backward_args(self.loss_layer.obj)
        self.pre_activations: list[np.ndarray] = []
        self._last_user: tuple[_Slot, str] | None = None  # the user call whose output the next layer consumes

    def _add(self, slot: _Slot) -> _Slot:
        self.layers.append(slot)
        return slot

    def _parametric(self, role: str, weights: dict[str, np.ndarray], activation: str, *more) -> _Slot:
        """The next Affine or Convolution, built with its W and b (and stride, pad), then its activation layer."""
        i = sum(s.role in PARAMETRIC for s in self.layers) + 1
        W, b = weights[f"W{i}"], weights[f"b{i}"]
        slot = self._add(self._make(role, W, b, *more))
        # Parameters are the arrays handed to the constructor, whatever the layer calls them.
        slot.W, slot.b = (W, b) if slot.obj is None else (held_array(slot.obj, W), held_array(slot.obj, b))
        slot.feeds_activation = activation in ("relu", "sigmoid")
        if activation in ("relu", "sigmoid"):
            self._add(self._make(activation.capitalize()))
        return slot

    def _make(self, role: str, *args) -> _Slot:
        reference = getattr(reference_layers, role)
        cls = self.kit.get(role, reference)
        if cls is reference:
            return _Slot(role, cls(*args), False)
        args, kwargs = construct(cls, role, *args)  # an image layer's stride and pad by name where it names them
        try:
            return _Slot(role, guard.call(cls, "__init__", *args, book=role, kwargs=kwargs), True)
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
            text = first_line(exc, 200)
            raise UserCodeError(blamed.role, type(blamed.obj), by, f"returned what the reference {slot.role}.{method} "
                                f"then raised on ({type(exc).__name__}: {text})",
                                where_defined(type(blamed.obj), by), type(exc).__name__) from exc

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.pre_activations, self.map_activations, self._inputs = [], [], []
        if self.input_shape is not None:
            x = x.reshape(len(x), *self.input_shape)  # (n, C, H, W): the book's NCHW
        for slot in self.layers:
            self._inputs.append(np.shape(x))
            expect = (len(x), slot.W.shape[1]) if slot.role == "Affine" else (len(x), *slot.out) if slot.out \
                else np.shape(x)
            x = self._call(slot, "forward", x, expect=expect)
            if slot.feeds_activation:
                (self.map_activations if slot.role == "Convolution" else self.pre_activations).append(x)
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
        for i, slot in enumerate([s for s in self.layers if s.role in PARAMETRIC], start=1):
            dW, db = guard.gradients(slot.obj, slot.W, slot.b, slot.role) if slot.user else (slot.obj.dW, slot.obj.db)
            grads[f"W{i}"], grads[f"b{i}"] = np.array(dW, copy=True), np.array(db, copy=True)
        return grads, dout

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for i, slot in enumerate([s for s in self.layers if s.role in PARAMETRIC], start=1):
            out[f"W{i}"], out[f"b{i}"] = slot.W, slot.b
        return out

    def sgd_step(self, grads: dict[str, np.ndarray], lr: float) -> None:
        """Plain SGD, as keras.optimizers.SGD without momentum: p <- p - lr * g, in place, so that the
        step reaches the layer whatever it calls its parameters."""
        params = self._checked(grads)
        for name, param in params.items():
            param -= np.asarray(lr, dtype=param.dtype) * grads[name]

    def optimizer_step(self, grads: dict[str, np.ndarray], driver, step: int) -> None:
        """One update by an optimizer in the book's protocol (a parity.user_code.optimizer_driver.OptimizerDriver), its
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

        A batch larger than 1 drops the remainder and records no Dense pre-activations (a convolution's maps, all
        the batch's in one row, it does). An exception in a
        layer does not stop the run: the row is recorded as failed, with the error, and filled with NaN.
        """
        records, errors = [], []
        for row, i in enumerate(range(0, len(x) - batch + 1, batch)):
            try:
                records.append(self._one(x[i:i + batch], t[i:i + batch]))
            except Exception as exc:  # the user's layer raised: a finding, not a crash
                records.append(None)
                errors.append(RowError.of(row, exc, self))
        return stack_rows(records, hidden if batch == 1 else [], errors, self.map_numbers)

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
        trace = stack_rows(rows, hidden, errors, self.map_numbers)
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
        maps = [np.array(a, copy=True).reshape(-1) for a in self.map_activations]  # (FN * OH * OW,) channel-major
        grads, dx = self.gradient(x, t)
        return {"pred": np.array(pred, copy=True).reshape(-1), "loss": np.asarray(loss).reshape(()),
                "grads": grads, "dx": np.asarray(dx).reshape(-1), "z": z, "maps": maps}

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



def build_network(spec: ModelSpec, weights: dict[str, np.ndarray], kit=None) -> Network:
    """Lay out Convolution/Pooling/Affine/activation layers for `spec` and hand each its weights.

    `kit` maps class names (Affine, Convolution, Pooling, Relu, Sigmoid, MeanSquaredError, SoftmaxWithLoss) to classes;
    missing names fall back to the reference layers. A user's constructor that raises leaves the
    network broken: every row it runs is then that error.
    """
    return Network(spec, weights, kit)
