"""Keras's batch and stepping phases computed in a second thread while the NumPy side works on the probe
(KerasReference.train_meanwhile): the same numbers as computed in the caller's thread, Keras's pooling routes read at
the fitted weights whatever the model's weights are meanwhile, a failure raised where the phases are read, and no
thread left running when the comparison fails."""

import dataclasses
import threading
import time

import numpy as np
import pytest

from parity.keras_side.reference import KerasReference, _silent, keras_reference
from parity.prepare import prepare
from parity.settings.config import resolve


def _assert_traces_equal(a, b) -> None:
    for name in ("pred", "loss", "dx"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.grads.keys() == b.grads.keys() and a.params_after.keys() == b.params_after.keys()
    for key in a.grads:
        np.testing.assert_array_equal(a.grads[key], b.grads[key])
    for key in a.params_after:
        np.testing.assert_array_equal(a.params_after[key], b.params_after[key])


@pytest.fixture(scope="module")
def cnn():
    """A small cnn run's Keras side, fitted once for this module."""
    prepared = prepare(resolve({"scenario": "cnn", "epochs": 2, "samples": 60, "train": 40, "batch_size": 10}))
    return prepared, keras_reference(prepared)


def test_the_phases_computed_meanwhile_are_the_callers_bit_for_bit(cnn):
    _, reference = cnn
    here = dataclasses.replace(reference, _cached={})
    stepping, batch = here.training(_silent)  # in this thread, as before train_meanwhile existed
    meanwhile = dataclasses.replace(reference, _cached={})
    meanwhile.train_meanwhile()
    assert meanwhile._meanwhile is not None  # it runs in a thread
    _assert_traces_equal(meanwhile.stepping, stepping)
    assert batch is not None
    _assert_traces_equal(meanwhile.batch, batch)
    assert meanwhile._meanwhile is None


def _routes_as_the_model_computes_them(reference, rows):
    """Keras's first MaxPooling2D's input and routing with the fitted weights set in the model, the input computed by
    Keras's own functional sub-model up to the pooling (not pool_routes' walk over the layers)."""
    from parity.keras_side.backend import keras, tensor, tf
    from parity.keras_side.transfer import numpy_to_keras

    model = reference.side.model
    model.set_weights(numpy_to_keras(reference.side.spec, reference.fitted))
    pool = next(layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D))
    h = keras.Model(model.inputs, pool.input)(tensor(reference.x[rows]))
    with tf.GradientTape() as tape:
        tape.watch(h)
        total = tf.reduce_sum(pool(h))
    return np.asarray(h).transpose(0, 3, 1, 2), tape.gradient(total, h).numpy().transpose(0, 3, 1, 2)


def test_pool_routes_read_the_fitted_weights_whatever_the_model_holds_and_leave_it_alone(cnn):
    _, reference = cnn
    rows = np.array([0, 3, 7])
    values, routed = _routes_as_the_model_computes_them(reference, rows)
    model = reference.side.model
    elsewhere = [np.full_like(w, 0.5) for w in model.get_weights()]
    model.set_weights(elsewhere)  # as while the model steps in train_meanwhile's thread
    got_values, got_routed = reference.pool_routes(rows)
    np.testing.assert_array_equal(got_values, values)
    np.testing.assert_array_equal(got_routed, routed)
    assert np.abs(routed).sum() > 0
    for held, set_ in zip(model.get_weights(), elsewhere):  # pool_routes did not set the model's weights
        np.testing.assert_array_equal(held, set_)

    meanwhile = dataclasses.replace(reference, _cached={})
    meanwhile.train_meanwhile()  # the model steps while the routes are read
    got_values, got_routed = meanwhile.pool_routes(rows)
    meanwhile.train()
    np.testing.assert_array_equal(got_values, values)
    np.testing.assert_array_equal(got_routed, routed)


def _bare_reference(training) -> KerasReference:
    return KerasReference({}, None, np.zeros((1, 1)), np.zeros((1, 1)), training, {})


def test_a_failure_in_the_thread_is_raised_where_the_phases_are_read():
    def failing(stage):
        raise RuntimeError("the stepping graph failed")

    reference = _bare_reference(failing)
    reference.train_meanwhile()
    with pytest.raises(RuntimeError, match="the stepping graph failed"):
        reference.train()
    assert reference._meanwhile is None


def test_a_recorded_side_starts_no_thread():
    reference = _bare_reference(("stepping", None))
    reference.train_meanwhile()
    assert reference._meanwhile is None and reference.stepping == "stepping"


def test_a_comparison_that_fails_waits_for_the_thread_before_it_raises(cnn):
    from parity.compare.run import compare_numpy

    prepared, reference = cnn
    finished = threading.Event()

    def slow(stage):
        time.sleep(0.3)
        phases = reference.training(stage)
        finished.set()
        return phases

    slowed = dataclasses.replace(reference, training=slow, _cached={})

    def failing_writer(part):
        raise OSError("the disk is full")

    with pytest.raises(OSError, match="the disk is full"):
        compare_numpy(prepared, slowed, on_chunk=failing_writer)
    assert finished.is_set()  # nothing of this run steps the shared model after it raised
    assert slowed._meanwhile is None and not callable(slowed.training)
