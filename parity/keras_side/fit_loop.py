"""Keras's fit as compiled loops over its own train step, and the run's next graphs readied beside them.

`model.fit` drives Keras's own train step (`Model.train_step`: the model's call in training mode, its compiled loss,
autodiff, the optimizer's apply) through an AutoGraph-traced driver, one call an epoch, with callbacks and metric
resets between calls: 0.77-1.05 s for the cnn scenario's 40 epochs here. Here the same train step, under the model's
distribution strategy as fit calls it, runs on the same batches of the same iterator in a tf.while_loop traced
without AutoGraph, CALL_STEPS steps a call: the same ops in the same order, so the same weights bit for bit
(tests/keras_side/test_fit_loop.py: Adam, RMSprop, Momentum and SGD; a convolution, Dropout and BatchNormalization;
both dtypes), in 0.64-0.67 s. A model Keras compiles with XLA (`jit_compile`, Keras's choice where a GPU is present)
is fitted by `model.fit`.

While the steps run (TensorFlow releases the GIL), this thread traces the graphs the run calls next and makes each
one's first call, where TensorFlow optimizes it (`ready`): on the cnn scenario, the fit and those graphs took
0.9-1.1 s together against 1.2-1.55 s one after the other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from parity.keras_side.backend import tensor, tf
from parity.keras_side.model import batches, fit, run_epochs, steps_per_epoch

__all__ = ["Fitter", "compiled_fitter", "fit_epochs", "ready"]


@dataclass
class Fitter:
    """A model of the run's architecture compiled with one optimizer kind, that optimizer's fresh state, and the
    compiled loop over its train step (None: the model is fitted by model.fit)."""

    model: object
    fresh: list[np.ndarray]  # every optimizer variable as built (iterations 0, slots at their start)
    loop: object = None

    def restart(self, weights: list[np.ndarray], lr) -> None:
        """The model at `weights`, its optimizer as built (iterations, slots), with learning rate `lr`."""
        self.model.set_weights(weights)
        for variable, value in zip(self.model.optimizer.variables, self.fresh):
            variable.assign(value)
        self.model.optimizer.learning_rate.assign(lr)


def compiled_fitter(spec, optimizer, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> Fitter:
    """A new model compiled with `optimizer` (a Keras optimizer), the optimizer built, its train loop not yet traced."""
    from parity.keras_side.model import build_model

    model = build_model(spec)
    fit(model, spec, x, y, 0, batch_size, optimizer, seed)  # compiles; fits nothing
    model.optimizer.build(model.trainable_variables)
    fitter = Fitter(model, [v.numpy() for v in model.optimizer.variables])
    if not model.jit_compile:
        fitter.loop = tf.function(lambda iterator, count: _loop(model, iterator, count), autograph=False)
    return fitter


def _loop(model, iterator, count):
    """`count` train steps, each on the iterator's next batch, in order."""
    def body(i):
        model.distribute_strategy.run(model.train_step, args=(iterator.get_next(),))
        return (i + 1,)

    return tf.while_loop(lambda i: i < count, body, (tf.constant(0),))


CALL_STEPS = 128  # train steps per compiled call: a stop (Ctrl-C, --timeout) waits for one call at most


def fit_epochs(fitter: Fitter, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, seed: int,
               meanwhile: Callable[[], None] | None = None) -> None:
    """`epochs` passes over `batches` (a new seeded shuffle each), the steps in a second thread while this one calls
    `meanwhile` (which must not touch the fitter's model). An exception in either is raised here, once the steps
    have stopped: an exception here stops them after the compiled call under way."""
    model = fitter.model
    if fitter.loop is None or epochs == 0:
        if meanwhile is not None:
            meanwhile()
        run_epochs(model, x, y, epochs, batch_size, seed)
        return
    iterator = iter(batches(x, y, batch_size, seed))  # one iterator for every call: the batches go on where they were
    total = epochs * steps_per_epoch(x, batch_size)
    compiled = fitter.loop.get_concrete_function(iterator, tf.constant(CALL_STEPS))  # Keras's Python, in this thread
    failed: list[BaseException] = []
    stop = threading.Event()

    def steps():
        try:
            for done in range(0, total, CALL_STEPS):
                if stop.is_set():
                    return
                compiled(iterator, tf.constant(min(CALL_STEPS, total - done)))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=steps, name="keras-fit", daemon=True)
    thread.start()
    try:
        if meanwhile is not None:
            meanwhile()
        thread.join()
    except BaseException:  # an error, Ctrl-C or --timeout here: no step of this fit starts after it
        stop.set()
        thread.join()  # the call under way (CALL_STEPS steps at most): the next fit must not meet it
        raise
    if failed:
        raise failed[0]
    model.optimizer.finalize_variable_values(model.trainable_variables)  # as fit ends (a no-op without an EMA)


def ready(side, optimizer, x: np.ndarray, t: np.ndarray, probe_rows: int) -> None:
    """Trace the graphs a run of `side` calls after its fit (the probe of `probe_rows` samples a chunk, the batch
    gradients, the stepping loop for `optimizer`) and make each one's first call on one sample, where TensorFlow
    optimizes the graph. The stepping call moves `side.model`'s weights and its optimizer's state: the fit sets the
    weights after, and each stepping run starts from a fresh state (KerasSide._stepper)."""
    if side.spec.regularized or len(x) == 0:  # training mode steps eagerly (parity.keras_side.train_mode)
        return
    one_x, one_t = tensor(x[:1]), tensor(t[:1])
    side.probe_function(probe_rows)(one_x, one_t)
    if side.spec.features:
        side._batch(one_x, one_t)
    side.stepping_loop(optimizer)(one_x, one_t)
