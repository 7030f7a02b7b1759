"""The Keras side: build and fit the model, and let Keras compute every number we compare against.

Gradients come from TensorFlow autodiff on the Keras model's own call, updates from the run's Keras
optimizer through its own apply. Nothing here re-derives a Keras number with our own formula.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.errors import first_line
from parity.keras_side import train_mode
from parity.keras_side.backend import keras, pfor_while_loops, tensor, tf
from parity.keras_side.model import LOSSES, build_model, pre_activations
from parity.keras_side.transfer import map_to_book, to_book
from parity.numpy_side.trace import Trace
from parity.settings.spec import ModelSpec

__all__ = ["side_for", "KerasSide"]

_SIDES: dict[tuple[ModelSpec, str], "KerasSide"] = {}


def side_for(spec: ModelSpec) -> "KerasSide":
    """The KerasSide of this architecture in the current floatx, built once per process.

    Its compiled functions read the model's variables, so a later run of the same architecture
    sets new weights and reuses them: tf.function traces once per model shape, not once per run.
    """
    key = (spec, keras.config.floatx())
    if key not in _SIDES:
        _SIDES[key] = KerasSide(build_model(spec), spec)
    return _SIDES[key]


class KerasSide:
    """Keras's per-sample computations for one model: gradients by autodiff, steps by its optimizer.

    The fast paths are compiled: per-sample gradients with tf.vectorized_map inside tf.function,
    stepping as one tf.function over a tf.while_loop. They are traced without AutoGraph: nothing here
    needs Python control flow turned into graph ops, and AutoGraph's source transformation was most of
    the cost of tracing them (about 0.5 s of a default run). The eager paths (one GradientTape call per sample
    or step, as the notebook does) are the baseline they are tested and benchmarked against.
    """

    def __init__(self, model: keras.Model, spec: ModelSpec):
        self.model, self.spec = model, spec
        self.loss_fn = LOSSES[spec.loss]()
        self.hidden = [i for i, _ in spec.hidden()]
        self.maps = [i for i, *_ in spec.activated_maps()]
        self.watched = sorted(self.hidden + self.maps)  # the layers whose pre-activations are recorded, in call order
        self.vectorized_map_fallback: str | None = None  # why vectorized_map fell back to a while loop
        floatx = keras.config.floatx()
        self._signature = [tf.TensorSpec((None, spec.input_dim), floatx), tf.TensorSpec((None, spec.target_dim), floatx)]
        self._per_sample = self._looped = self._vectorized_note = None
        self._batch = tf.function(self._probe, input_signature=self._signature, autograph=False)
        self._steppers: dict[tuple, _Stepper] = {}  # per optimizer kind: one optimizer and one compiled loop
        self._fitters: dict = {}  # per optimizer kind: one compiled fit (parity.keras_side.fit_loop.Fitter)

    # -- the fit --------------------------------------------------------------------------------
    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, optimizer, seed: int,
            probe_rows: int = 0) -> None:
        """Keras's own train step with the run's optimizer (OptimizerSettings, or a learning rate for plain SGD) on
        `epochs` seeded shuffles of the split, as `model.fit` would (parity.keras_side.fit_loop), from the model's
        current weights. Compiled once per optimizer kind, on a model of its own: later fits restore that optimizer's
        starting state instead of recompiling (tested equal to a fresh compile). While the steps run, the graphs of
        the probe (`probe_rows` samples a chunk; 0: none) and of stepping are readied (fit_loop.ready)."""
        from parity.keras_side.fit_loop import compiled_fitter, fit_epochs, ready
        from parity.keras_side.optimizers import build_keras_optimizer, optimizer_kind, typed_hyperparameter

        settings = _settings(optimizer)
        floatx = keras.config.floatx()
        key = optimizer_kind(settings, floatx)
        if key not in self._fitters:
            self._fitters[key] = compiled_fitter(self.spec, build_keras_optimizer(settings, floatx)[0], x, y,
                                                 batch_size, seed)
        fitter = self._fitters[key]
        fitter.restart(self.model.get_weights(), typed_hyperparameter(settings.hyper["lr"], floatx))
        keras.utils.set_random_seed(seed)  # the shuffles depend on nothing that ran before
        for dropped in (fitter.model, self.model):  # so do the Dropouts' masks, in the fit and the phases after it
            train_mode.reseed_dropouts(dropped, seed)
        meanwhile = (lambda: ready(self, settings, x, y, probe_rows)) if probe_rows else None
        fit_epochs(fitter, x, y, epochs, batch_size, seed, meanwhile)
        self.model.set_weights(fitter.model.get_weights())

    # -- one sample or batch, as the model computes it ------------------------------------------
    def _probe(self, x, t):
        with tf.GradientTape() as tape:
            tape.watch(x)
            pred = self.model(x, training=False)
            loss = self.loss_fn(t, pred)
        *grads, dx = tape.gradient(loss, [*self.model.trainable_variables, x])
        return pred, loss, grads, dx, pre_activations(self.model, self.spec, self.watched, x)

    def _one(self, args):
        x, t = args
        pred, loss, grads, dx, z = self._probe(x[None], t[None])  # a batch of one, inside the map
        return pred[0], loss, grads, dx[0], [a[0] for a in z]

    # -- the probe ------------------------------------------------------------------------------
    def per_sample(self, x: np.ndarray, t: np.ndarray) -> Trace:
        """Prediction, loss, gradients, dL/dx and pre-activations for each sample alone (compiled: vectorized, or a
        convolution's small probe as a loop over the samples, parity.keras_side.sample_loop)."""
        from parity.keras_side.sample_loop import LOOP_LIMIT

        compiled = self.probe_function(len(x))
        self.vectorized_map_fallback = self._vectorized_note if compiled is self._per_sample else (
            f"not used: {len(x)} samples ran as a compiled loop over them, each through the batch-gradient graph (up "
            f"to {LOOP_LIMIT}: quicker to trace)")  # this call's route, whatever ran before it
        pred, loss, grads, dx, z = compiled(tensor(x), tensor(t))
        trace = self._as_trace(pred.numpy(), loss.numpy(), [g.numpy() for g in grads], dx.numpy(),
                               [a.numpy() for a in z])
        if self.spec.regularized:  # test mode, forward only: the book's layers define backward after training mode
            trace.grads, trace.dx = {}, np.empty((len(x), 0), dtype=trace.pred.dtype)
        return trace

    def probe_function(self, rows: int):
        """The compiled probe of `rows` samples: a convolution's loop over them up to LOOP_LIMIT, else the map."""
        from parity.keras_side.sample_loop import LOOP_LIMIT, looped

        if self.spec.features and rows <= LOOP_LIMIT:
            if self._looped is None:
                self._looped = looped(self)
            return self._looped
        if self._per_sample is None:
            self._per_sample = self._compile_per_sample()
            self._vectorized_note = self.vectorized_map_fallback
        return self._per_sample

    def _compile_per_sample(self):
        """tf.vectorized_map without its while-loop fallback if it can; else with it, and say why."""
        def build(fallback):
            return tf.function(lambda xs, ts: tf.vectorized_map(self._one, (xs, ts), fallback_to_while_loop=fallback),
                               input_signature=self._signature, autograph=False)
        strict = build(False)
        try:
            with pfor_while_loops() as looped:
                strict.get_concrete_function()
            if looped:  # vectorized, but these ops one sample at a time inside the compiled map
                ops = ", ".join(sorted(set(looped)))
                self.vectorized_map_fallback = f"{ops} mapped by a while loop inside tf.vectorized_map"
            return strict
        except (ValueError, NotImplementedError) as exc:
            import re

            op = re.search(r"No (?:pfor )?(?:vectorization|converter) defined for (\w+)", str(exc))
            self.vectorized_map_fallback = (
                f"no vectorized form for op {op.group(1)}: TensorFlow maps it with a while loop (slower)" if op
                else "tf.vectorized_map could not vectorize the model: " + first_line(exc, 200))
            return build(True)

    def per_sample_eager(self, x: np.ndarray, t: np.ndarray) -> Trace:
        """The baseline: one eager GradientTape call per sample."""
        records = [self._probe(tensor(x[i:i + 1]), tensor(t[i:i + 1])) for i in range(len(x))]
        return self._trace([(p, l_, g, d, [a[0] for a in z]) for p, l_, g, d, z in records])

    def per_batch(self, x: np.ndarray, t: np.ndarray, batch: int) -> Trace:
        """Gradients of consecutive batches of `batch` samples (remainder dropped; no pre-activations).

        A few dozen batches of a Dense model run eagerly: that is quicker than tracing a function for them. A
        convolution's eager gradients cost more than the trace (cnn, 16 batches: 0.55 s CPU eager, 0.26 s traced and
        run; the same bits either way). With BatchNormalization or Dropout, in training mode
        (parity.keras_side.train_mode)."""
        if self.spec.regularized:
            return train_mode.per_batch(self, x, t, batch)
        starts = range(0, len(x) - batch + 1, batch)
        call = self._probe if len(starts) <= 64 and not self.spec.features else self._batch
        records = [call(tensor(x[i:i + batch]), tensor(t[i:i + batch])) for i in starts]
        trace = self._trace(records, with_z=False)
        trace.batch_z = {k: np.stack([np.asarray(r[4][self.watched.index(k)]).reshape(-1) for r in records])
                         for k in self.hidden}  # (n, batch * units): to judge a ReLU kink by (Trace.batch_z)
        return trace

    # -- stepping -------------------------------------------------------------------------------
    def step_through(self, x: np.ndarray, t: np.ndarray, optimizer, compiled: bool = True, batch: int = 1) -> Trace:
        """One Keras optimizer step per sample, in order, from a fresh optimizer state: gradients before and
        parameters after each step, and the optimizer's state after it under the book's names.

        `optimizer` is the run's OptimizerSettings, or a learning rate for plain SGD. With BatchNormalization or
        Dropout, one step per `batch` samples in training mode (parity.keras_side.train_mode)."""
        if self.spec.regularized:
            return train_mode.step_through(self, x, t, _settings(optimizer), batch)
        stepper = self._stepper(_settings(optimizer))
        names = list(self.spec.shapes())
        book = lambda name, a: to_book(self.spec, name, a, rows=True)  # noqa: E731
        if not compiled:
            records = [self._step(tensor(x[i:i + 1]), tensor(t[i:i + 1]), stepper) for i in range(len(x))]
            trace = self._trace([r[:5] for r in records])
            trace.params_after = {name: book(name, np.stack([r[5][k].numpy() for r in records]))
                                  for k, name in enumerate(names)}
            trace.state_after = {slot: {name: book(name, np.stack([r[6][s][k].numpy() for r in records]))
                                        for k, name in enumerate(names)} for s, slot in enumerate(stepper.slots)}
            return trace
        pred, loss, grads, dx, z, params, states = self.stepping_loop(stepper)(tensor(x), tensor(t))
        trace = self._as_trace(pred.numpy(), loss.numpy(), [g.numpy() for g in grads], dx.numpy(), [a.numpy() for a in z])
        trace.params_after = {name: book(name, p.numpy()) for name, p in zip(names, params)}
        trace.state_after = {slot: {name: book(name, a.numpy()) for name, a in zip(names, per_variable)}
                             for slot, per_variable in zip(stepper.slots, states)}
        return trace

    def stepping_loop(self, optimizer):
        """The compiled stepping loop of an optimizer kind (its _Stepper, or the run's OptimizerSettings), traced once
        per kind through get_concrete_function: later runs call the same graph."""
        stepper = optimizer if isinstance(optimizer, _Stepper) else self._stepper(_settings(optimizer))
        if stepper.loop is None:
            stepper.loop = tf.function(lambda xs, ts: self._loop(xs, ts, stepper), input_signature=self._signature,
                                       autograph=False).get_concrete_function()
        return stepper.loop

    def _stepper(self, settings) -> "_Stepper":
        """This optimizer kind's stepper, reset to a fresh state with the run's learning rate."""
        from parity.keras_side.optimizers import build_keras_optimizer, keras_state_variables, optimizer_kind, \
            typed_hyperparameter

        floatx = keras.config.floatx()
        kind = optimizer_kind(settings, floatx)
        if kind not in self._steppers:
            optimizer, _ = build_keras_optimizer(settings, floatx)
            optimizer.build(self.model.trainable_variables)
            slots = keras_state_variables(optimizer, self.model.trainable_variables, settings)
            self._steppers[kind] = _Stepper(optimizer, slots, [v.numpy() for v in optimizer.variables])
        stepper = self._steppers[kind]
        for variable, value in zip(stepper.optimizer.variables, stepper.fresh):  # iterations and slots back to 0
            variable.assign(value)
        stepper.optimizer.learning_rate.assign(typed_hyperparameter(settings.hyper["lr"], floatx))
        return stepper

    def _step(self, x1, t1, stepper: "_Stepper", probe=None):
        """One optimizer step on (x1, t1); `probe` computes its gradients (the model's own call, `_probe`, by default)."""
        variables = self.model.trainable_variables
        pred, loss, grads, dx, z = (probe or self._probe)(x1, t1)
        stepper.optimizer.apply_gradients(zip(grads, variables))
        # tf.identity snapshots each value after the update (eagerly, .value would be the live variable)
        return (pred[0], loss, grads, dx[0], [a[0] for a in z], [tf.identity(v) for v in variables],
                [[tf.identity(v) for v in per_variable] for per_variable in stepper.slots.values()])

    def _loop(self, xs, ts, stepper: "_Stepper"):
        """Every step in one compiled tf.while_loop, in order, recording into TensorArrays (one per optimizer slot)."""
        n = tf.shape(xs)[0]
        variables = self.model.trainable_variables
        arrays = ([tf.TensorArray(xs.dtype, size=n) for _ in range(3)],  # pred, loss, dx
                  [tf.TensorArray(v.dtype, size=n) for v in variables],  # gradients
                  [tf.TensorArray(v.dtype, size=n) for v in variables],  # parameters after the step
                  [tf.TensorArray(xs.dtype, size=n) for _ in self.watched],  # pre-activations
                  [[tf.TensorArray(v.dtype, size=n) for v in per_variable]  # optimizer state after the step
                   for per_variable in stepper.slots.values()])

        # A convolution's batch gradients trace _batch (per_batch): the loop calls that graph for each step's gradients
        # instead of tracing the model a second time, a third of the loop's trace (the same bits as the model's own
        # eager call: tests/keras_side/test_cnn_cost.py).
        probe = self._batch if self.spec.features else None

        def body(i, arrays):
            (pred, loss, dx), grads, params, zs, states = arrays
            p, l_, g, d, z, w, s = self._step(xs[i:i + 1], ts[i:i + 1], stepper, probe)
            return i + 1, ([pred.write(i, p), loss.write(i, l_), dx.write(i, d)],
                           [a.write(i, v) for a, v in zip(grads, g)],
                           [a.write(i, v) for a, v in zip(params, w)],
                           [a.write(i, v) for a, v in zip(zs, z)],
                           [[a.write(i, v) for a, v in zip(per, values)] for per, values in zip(states, s)])

        _, arrays = tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), arrays))
        (pred, loss, dx), grads, params, zs, states = arrays
        return (pred.stack(), loss.stack(), [a.stack() for a in grads], dx.stack(), [a.stack() for a in zs],
                [a.stack() for a in params], [[a.stack() for a in arrays] for arrays in states])

    def _as_trace(self, pred, loss, grads, dx, z, with_z: bool = True) -> Trace:
        """Keras's arrays (a leading row axis) in the book's layout and names: parity.keras_side.transfer."""
        z = dict(zip(self.watched, z))  # without z (a batch's rows), the maps only: a pooling's ties are judged on them
        return Trace(pred=pred.reshape(len(pred), -1), loss=np.asarray(loss).reshape(-1),
                     grads={name: to_book(self.spec, name, g, rows=True) for name, g in zip(self.spec.shapes(), grads)},
                     dx=dx.reshape(len(dx), -1), z={layer: z[layer].reshape(len(z[layer]), -1) for layer in self.hidden
                                                   if with_z and layer in z},
                     maps={layer: map_to_book(z[layer]) for layer in self.maps if layer in z})

    def _trace(self, records: list, with_z: bool = True) -> Trace:
        """Stack per-call records (pred, loss, grads, dx, z; z without a batch axis) into a Trace."""
        flat = lambda k: np.stack([np.asarray(r[k]).reshape(-1) for r in records])  # noqa: E731
        grads = [np.stack([np.asarray(r[2][k]) for r in records]) for k in range(len(self.spec.shapes()))]
        z = [np.stack([np.asarray(r[4][n]) for r in records]) for n in range(len(self.watched))]
        return self._as_trace(flat(0), flat(1), grads, flat(3), z, with_z)


@dataclass
class _Stepper:
    """A Keras optimizer kept for stepping: its state variables by book name, their fresh values, its compiled loop."""

    optimizer: object
    slots: dict[str, list]  # book state name -> the optimizer's variable for each model variable
    fresh: list[np.ndarray]  # every optimizer variable as built (iterations 0, slots at their start)
    loop: object = None  # the compiled stepping loop (a concrete function), traced on first use


def _settings(optimizer):
    """The run's OptimizerSettings; a bare learning rate means plain SGD (the seed notebook's)."""
    from parity.settings.optimizer_registry import optimizer_settings

    return optimizer_settings("sgd", lr=float(optimizer)) if isinstance(optimizer, (int, float)) else optimizer
