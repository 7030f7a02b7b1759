"""Keras in training mode, for an architecture with BatchNormalization or Dropout: the batch probe and batch-wise
stepping.

BatchNormalization couples a batch's samples (in training mode a batch of one normalizes to zero), so these phases
run on batches: each batch goes through the model's own layers in training mode, in order, inside one
GradientTape, which gives the gradients and, for each Dropout, the mask Keras drew in that very forward pass. A
Keras Dropout multiplies its input by mask / (1 - rate), so Keras's gradient of its output with respect to its
input is nonzero exactly where it kept a unit: the mask comes from Keras's autodiff, for every unit (its output
alone says nothing where the input is 0). A BatchNormalization's moving statistics are read after every step.
"""

from __future__ import annotations

import numpy as np

from parity.keras_side.backend import keras, tensor, tf
from parity.keras_side.transfer import to_book
from parity.numpy_side.trace import Trace
from parity.settings.regularization_spec import state_names

__all__ = ["reseed_dropouts", "per_batch", "step_through"]


def _numbered(side, kind) -> list[tuple[int, object]]:
    """(Dense parameter number, layer) of each layer of `kind` (named <kind>_<k> after the k-th Dense layer)."""
    return [(side.spec.dense_number(int(layer.name.rsplit("_", 1)[1])), layer) for layer in side.model.layers
            if isinstance(layer, kind)]


def reseed_dropouts(model, seed: int) -> None:
    """Every Dropout's seed generator back to a state drawn from the run's seed: the masks of a fit and of the
    phases after it are the same in every process."""
    for k, layer in enumerate(l_ for l_ in model.layers if isinstance(l_, keras.layers.Dropout)):
        state = layer.seed_generator.state
        state.assign(np.array([seed + 7919 * k, 0], dtype=state.dtype))


def _train_call(side, x, t):
    """One batch through the model's layers in training mode: (pred, loss, grads, dx, masks, moving statistics)."""
    model = side.model
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        h, drops = x, []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            out = layer(h, training=True)
            if isinstance(layer, keras.layers.Dropout):
                drops.append((h, out))
            h = out
        loss = side.loss_fn(t, h)
    *grads, dx = tape.gradient(loss, [*model.trainable_variables, x])
    masks = [tape.gradient(out, into, output_gradients=tf.ones_like(out)) != 0 for into, out in drops]
    del tape
    moving = [tf.identity(v) for _, bn in _numbered(side, keras.layers.BatchNormalization)
              for v in (bn.moving_mean, bn.moving_variance)]
    return h, loss, grads, dx, masks, moving


def _trace(side, records: list) -> Trace:
    """Per-batch records (pred, loss, grads, dx, masks) as a Trace in the book's layout, one row per batch."""
    flat = lambda k: np.stack([np.asarray(r[k]).reshape(-1) for r in records])  # noqa: E731
    names = list(side.spec.shapes())
    grads = {name: to_book(side.spec, name, np.stack([np.asarray(r[2][k]) for r in records]), rows=True)
             for k, name in enumerate(names)}
    numbers = [number for number, _ in _numbered(side, keras.layers.Dropout)]
    masks = {number: np.stack([np.asarray(r[4][k]).reshape(-1) for r in records]) for k, number in enumerate(numbers)}
    return Trace(pred=flat(0), loss=flat(1).reshape(-1), grads=grads, dx=flat(3), z={}, masks=masks)


def per_batch(side, x: np.ndarray, t: np.ndarray, batch: int) -> Trace:
    """Gradients of consecutive batches (remainder dropped) in training mode at the model's weights, which are put
    back afterwards: training mode moves the running statistics."""
    saved = side.model.get_weights()
    starts = range(0, len(x) - batch + 1, batch)
    records = [_train_call(side, tensor(x[i:i + batch]), tensor(t[i:i + batch])) for i in starts]
    side.model.set_weights(saved)
    return _trace(side, records)


def step_through(side, x: np.ndarray, t: np.ndarray, settings, batch: int) -> Trace:
    """One Keras optimizer step per consecutive batch (remainder dropped), in training mode, from a fresh optimizer
    state: gradients before, and parameters, running statistics and optimizer state after each step."""
    stepper = side._stepper(settings)
    variables = side.model.trainable_variables
    names, states = list(side.spec.shapes()), [n for number, _ in _numbered(side, keras.layers.BatchNormalization)
                                               for n in state_names(number)]
    records, params, slots = [], [], []
    for i in range(0, len(x) - batch + 1, batch):
        record = _train_call(side, tensor(x[i:i + batch]), tensor(t[i:i + batch]))
        stepper.optimizer.apply_gradients(zip(record[2], variables))
        records.append(record)
        params.append([v.numpy() for v in variables] + [a.numpy() for a in record[5]])
        slots.append([[v.numpy() for v in per_variable] for per_variable in stepper.slots.values()])
    trace = _trace(side, records)
    book = lambda name, a: to_book(side.spec, name, a, rows=True)  # noqa: E731
    trace.params_after = {name: book(name, np.stack([p[k] for p in params])) for k, name in enumerate(names + states)}
    trace.state_after = {slot: {name: book(name, np.stack([s[j][k] for s in slots])) for k, name in enumerate(names)}
                         for j, slot in enumerate(stepper.slots)}
    return trace
