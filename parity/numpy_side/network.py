"""A stack of the book's layers: forward, backward, per-sample gradients, optimizer steps (NumPy only); user calls guarded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.errors import first_line
from parity.user_code import guard
from parity.book import layers as reference_layers
from parity.numpy_side import mode_layers
from parity.numpy_side.loss_output import loss_probabilities
from parity.numpy_side.trace import RowError, Trace, stack_rows, stack_states
from parity.settings.spec import CROSS_ENTROPIES, MODE_LAYERS, ConvSpec, DenseSpec, ModelSpec
from parity.user_code.guard import UserCodeError, held_array, where_defined
from parity.user_code.protocol import construct

__all__ = ["Network", "GradientShapeError", "build_network"]


@dataclass
class _Slot:
    """One layer of the stack: its object, the book class it plays, and whether the class is the user's."""

    role: str  # Affine | Convolution | Pooling | Relu | Sigmoid | SoftmaxWithLoss | MeanSquaredError | Dropout | ...
    obj: object  # None when a user's constructor raised (the network is then broken)
    user: bool
    # an Affine's or Convolution's W and b, a BatchNormalization's gamma and beta: the arrays it holds, updated in place
    W: np.ndarray | None = None
    b: np.ndarray | None = None
    number: int = 0  # a BatchNormalization's or Dropout's Dense layer (its parameter number)
    feeds_activation: bool = False  # an Affine or Convolution whose output is a pre-activation (z, or a map)
    out: tuple[int, ...] | None = None  # a Convolution's or Pooling's output per sample (C, H, W)


PARAMETRIC = ("Convolution", "Affine")  # the layers holding W and b, numbered along the chain


class Network:
    """The book's layers in order, then a loss layer. Every call into a user's class goes through
    `parity.user_code.guard`: what it does wrong becomes a UserCodeError naming that class and method."""

    def __init__(self, spec: ModelSpec, weights: dict[str, np.ndarray], kit: dict | None = None,
                 wrappers: dict | None = None):
        self.kit = kit or {}
        # book class -> a callable taking the built object and returning the one the stack uses (an adapter)
        self.wrappers = wrappers or {}
        self.train = False  # the mode a Dropout or BatchNormalization is told (the probe's is test mode)
        self.masks: dict[int, np.ndarray] = {}  # Dense number -> Keras's keep mask for its Dropout's next train call
        self.routes: dict[int, set[str]] = {}  # Dense number -> how its Dropout's draws were driven (dropout_draw)
        self.observed: dict[str, np.ndarray] = {}  # this row's chapter-6 observations (Trace.observed)
        self.forward_only = False  # test mode: the book's chapter-6 layers define backward after a train-mode forward
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
            self._parametric("Affine", weights, dense.activation, dense=dense)
        self.loss_layer = self._make("SoftmaxWithLoss" if self.probabilities else "MeanSquaredError")
        self._loss_args = (1,) if self.loss_layer.obj is None else guard.loss_backward_args(self.loss_layer.obj)
        self.pre_activations: list[np.ndarray] = []
        self._last_user: tuple[_Slot, str] | None = None  # the user call whose output the next layer consumes

    def _add(self, slot: _Slot) -> _Slot:
        self.layers.append(slot)
        return slot

    def _parametric(self, role: str, weights: dict[str, np.ndarray], activation: str, *more,
                    dense: DenseSpec | None = None) -> _Slot:
        """The next Affine or Convolution, built with its W and b (and stride, pad), then its activation layer; a
        Dense's BatchNormalization before the activation and its Dropout after it (MultiLayerNetExtend's order)."""
        i = sum(s.role in PARAMETRIC for s in self.layers) + 1
        W, b = weights[f"W{i}"], weights[f"b{i}"]
        slot = self._add(self._make(role, W, b, *more))
        # Parameters are the arrays handed to the constructor, whatever the layer calls them.
        slot.W, slot.b = (W, b) if slot.obj is None else (held_array(slot.obj, W), held_array(slot.obj, b))
        slot.feeds_activation = activation in ("relu", "sigmoid")
        if dense is not None and dense.batch_norm is not None:
            gamma, beta, mean, var = mode_layers.bn_arguments(weights, i)
            bn = self._add(self._make("BatchNormalization", gamma, beta, dense.batch_norm.momentum, mean, var,
                                      epsilon=dense.batch_norm.epsilon))
            bn.W, bn.b = (gamma, beta) if bn.obj is None else (held_array(bn.obj, gamma), held_array(bn.obj, beta))
            bn.number, bn.feeds_activation, slot.feeds_activation = i, slot.feeds_activation, False
        if activation in ("relu", "sigmoid"):
            self._add(self._make(activation.capitalize()))
        if dense is not None and dense.dropout is not None:
            self._add(self._make("Dropout", dense.dropout)).number = i
        return slot

    def _make(self, role: str, *args, epsilon: float | None = None) -> _Slot:
        """The slot of book class `role`: the user's class where the kit has one, else the reference (the only one
        told a BatchNormalization's epsilon: the book's class hard-codes its own); then its wrapper, if any."""
        reference = getattr(reference_layers, role)
        cls = self.kit.get(role, reference)
        if cls is reference:
            slot = _Slot(role, cls(*args) if epsilon is None else cls(*args, epsilon=epsilon), False)
        else:
            args, kwargs = construct(cls, role, *args)  # an image layer's stride and pad by name where it names them
            try:
                slot = _Slot(role, guard.call(cls, "__init__", *args, book=role, kwargs=kwargs), True)
            except UserCodeError as err:
                self.broken = self.broken or err
                return _Slot(role, None, True)
        if role in self.wrappers:
            slot.obj = self.wrappers[role](slot.obj)
        return slot

    def _call(self, slot: _Slot, method: str, *args, expect=None, kwargs: dict | None = None):
        """slot.obj.method(*args); a reference layer that raises on a user layer's output blames that layer."""
        if slot.user:
            out = guard.call(slot.obj, method, *args, book=slot.role, expect=expect, kwargs=kwargs)
            self._last_user = (slot, method)
            return out
        try:
            return getattr(slot.obj, method)(*args, **(kwargs or {}))
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
            x = mode_layers.mode_forward(self, slot, x, expect) if slot.role in MODE_LAYERS \
                else self._call(slot, "forward", x, expect=expect)
            if slot.feeds_activation:  # kept as it is now: an activation that writes into its input changes x
                (self.map_activations if slot.role == "Convolution" else self.pre_activations).append(np.array(x, copy=True))
        self._output = x
        return x

    def loss(self, x: np.ndarray, t: np.ndarray):
        return self._call(self.loss_layer, "forward", self.predict(x), t, expect=guard.SCALAR)

    def gradient(self, x: np.ndarray, t: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Backpropagate from the loss; returns ({W1: dW1, b1: db1, ...}, dx). Call after `loss`."""
        dout = self._call(self.loss_layer, "backward", *self._loss_args, expect=np.shape(self._output))
        for slot, shape in zip(reversed(self.layers), reversed(self._inputs)):
            into, dout = dout, self._call(slot, "backward", dout, expect=shape)
            mode_layers.observe_backward(self, slot, into, dout)
        grads = {}
        for (w, b), slot in self._parameters():
            if slot.role == "BatchNormalization":
                dW, db = mode_layers.bn_gradients(slot)
            else:
                dW, db = guard.gradients(slot.obj, slot.W, slot.b, slot.role) if slot.user else (slot.obj.dW, slot.obj.db)
            grads[w], grads[b] = np.array(dW, copy=True), np.array(db, copy=True)
        return grads, dout

    def _parameters(self) -> list[tuple[tuple[str, str], _Slot]]:
        """((W1, b1), slot), ((gamma1, beta1), slot), ...: each slot's parameter names, in Keras's variable order."""
        out, i = [], 0
        for slot in self.layers:
            if slot.role in PARAMETRIC:
                i += 1
                out.append(((f"W{i}", f"b{i}"), slot))
            elif slot.role == "BatchNormalization":
                out.append(((f"gamma{slot.number}", f"beta{slot.number}"), slot))
        return out

    def params(self) -> dict[str, np.ndarray]:
        out = {}
        for (w, b), slot in self._parameters():
            out[w], out[b] = slot.W, slot.b
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Each BatchNormalization's running statistics (running_mean1, running_var1, ...), copied."""
        return mode_layers.running_statistics([s for s in self.layers if s.role == "BatchNormalization"])

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

    def per_sample(self, x: np.ndarray, t: np.ndarray, hidden: list[int], batch: int = 1, train: bool = False,
                   masks: dict[int, np.ndarray] | None = None) -> Trace:
        """Forward and backward on consecutive batches (one sample each by default, as the notebook does).

        A batch larger than 1 drops the remainder and records no Dense pre-activations (a convolution's maps, all
        the batch's in one row, it does). An exception in a
        layer does not stop the run: the row is recorded as failed, with the error, and filled with NaN.
        `train` is the mode Dropout and BatchNormalization run in (test mode: forward only, no gradients); `masks`
        maps a Dropout's Dense number to Keras's keep masks, one row (batch * units) per batch.
        """
        records, errors = [], []
        for row, i in enumerate(range(0, len(x) - batch + 1, batch)):
            try:
                self._mode(train, masks, row)
                records.append(self._one(x[i:i + batch], t[i:i + batch]))
            except Exception as exc:  # the user's layer raised: a finding, not a crash
                records.append(None)
                errors.append(RowError.of(row, exc, self))
        return stack_rows(records, hidden if batch == 1 else [], errors, self.map_numbers, hidden if batch > 1 else [])

    def step_through(self, x: np.ndarray, t: np.ndarray, optimizer, hidden: list[int], batch: int = 1,
                     masks: dict[int, np.ndarray] | None = None) -> Trace:
        """One optimizer step per sample (or per consecutive `batch`, the remainder dropped), in order, in training
        mode (Dropouts driven by `masks`, as per_sample); records gradients before and parameters, running
        statistics (and the optimizer's state) after. `optimizer` is a learning rate (plain SGD) or an OptimizerDriver."""
        driver = None if isinstance(optimizer, (int, float)) else optimizer
        rows, params, states, errors = [], [], [], []
        for i, start in enumerate(range(0, len(x) - batch + 1, batch)):
            try:
                self._mode(True, masks, i)
                record = self._one(x[start:start + batch], t[start:start + batch])
                with np.errstate(all="ignore"):
                    if driver is None:
                        self.sgd_step(record["grads"], optimizer)
                    else:
                        self.optimizer_step(record["grads"], driver, i)
            except Exception as exc:  # a failed step leaves the parameters where they were
                record = None
                errors.append(RowError.of(i, exc, self))
            rows.append(record)
            params.append({k: np.array(v, copy=True) for k, v in {**self.params(), **self.state()}.items()})
            if driver is not None:
                states.append(driver.state())
        trace = stack_rows(rows, hidden if batch == 1 else [], errors, self.map_numbers)
        trace.params_after = {k: np.stack([p[k] for p in params]) for k in params[0]}
        trace.state_after = stack_states(states)
        return trace

    def _mode(self, train: bool, masks: dict[int, np.ndarray] | None, row: int) -> None:
        """Tell the chapter-6 layers the next row's mode, and hand each Dropout Keras's mask for that row."""
        self.train = train
        self.masks, self.observed = {k: v[row] for k, v in (masks or {}).items()}, {}
        self.forward_only = not train and any(s.role in MODE_LAYERS for s in self.layers)

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
        pred = loss_probabilities(self.loss_layer.obj, before, scores, t) if self.probabilities else scores
        z = [a.reshape(-1) for a in self.pre_activations]  # copies already (predict)
        maps = [a.reshape(-1) for a in self.map_activations]  # (FN * OH * OW,) channel-major
        grads, dx = ({}, np.empty(0)) if self.forward_only else self.gradient(x, t)
        return {"pred": np.array(pred, copy=True).reshape(-1), "loss": np.asarray(loss).reshape(()),
                "grads": grads, "dx": np.asarray(dx).reshape(-1), "z": z, "maps": maps, "observed": dict(self.observed)}


class GradientShapeError(ValueError):
    """A gradient whose shape is not its parameter's."""


def build_network(spec: ModelSpec, weights: dict[str, np.ndarray], kit=None, wrappers=None) -> Network:
    """Lay out Convolution/Pooling/Affine/[BatchNormalization]/activation/[Dropout] layers for `spec` and hand each its
    weights (and a BatchNormalization its running statistics).

    `kit` maps class names (Affine, ..., SoftmaxWithLoss, Dropout, BatchNormalization) to classes; missing names fall
    back to the reference layers. `wrappers` maps class names to a callable that takes the built object and returns
    the one the stack uses (an adapter). A user's constructor that raises leaves the network broken: every row it
    runs is then that error.
    """
    return Network(spec, weights, kit, wrappers)
