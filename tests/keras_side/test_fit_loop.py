"""Keras's fit as one compiled loop over its train step (parity.keras_side.fit_loop) gives model.fit's weights bit for
bit, with the run's next graphs readied beside it, and a failure on either thread surfaces in the caller."""

import threading

import numpy as np
import pytest

from parity.keras_side import backend
from parity.keras_side import fit_loop
from parity.keras_side import model as keras_model
from parity.keras_side.side import KerasSide, _settings
from parity.prepare import prepare
from parity.settings.config import resolve


def _prepared(scenario: str, dtype: str, optimizer: str, **sizes):
    prepared = prepare(resolve({"scenario": scenario, "dtype": dtype, "optimizer": optimizer, **sizes}))
    backend.configure(dtype, prepared.config.seed)
    config, spec = prepared.config, prepared.spec
    x = prepared.data.x[:config.train].astype(dtype)
    from parity.keras_side.reference import targets

    t = targets(spec, prepared.data.y[:config.train], dtype)[1]
    return config, spec, x, t


def _keras_fit(spec, config, x, t, start) -> list[np.ndarray]:
    """Keras's own model.fit (one compiled call an epoch, callbacks and all) from `start`, seeded as a run seeds it."""
    from parity.keras_side import train_mode
    from parity.keras_side.optimizers import build_keras_optimizer

    model = keras_model.build_model(spec)
    model.set_weights(start)
    backend.keras.utils.set_random_seed(config.seed)
    train_mode.reseed_dropouts(model, config.seed)
    keras_model.fit(model, spec, x, t, config.epochs, config.batch_size,
                    build_keras_optimizer(_settings(config.optimizer), config.dtype)[0], config.seed)
    return model.get_weights()


# A convolution, a Dense stack whose epochs end on a short batch (155 = 15 x 10 + 5), Dropout and BatchNormalization
# (training mode, seeded masks, moving statistics), with optimizers that keep state.
@pytest.mark.parametrize("scenario,dtype,optimizer,sizes", [
    ("cnn", "float64", "adam", {"epochs": 3, "samples": 60, "train": 40}),
    ("seed", "float32", "rmsprop", {"epochs": 4, "samples": 200, "train": 155}),
    ("regularized", "float32", "sgd", {"epochs": 2}),
])
def test_the_compiled_loop_fits_model_fits_weights_bit_for_bit(scenario, dtype, optimizer, sizes):
    config, spec, x, t = _prepared(scenario, dtype, optimizer, **sizes)
    start = keras_model.initial_weights(spec, config.seed, dtype)
    side = KerasSide(keras_model.build_model(spec), spec)
    side.model.set_weights(start)
    side.fit(x, t, config.epochs, config.batch_size, config.optimizer, config.seed, probe_rows=len(x))
    assert side._fitters and all(f.loop is not None for f in side._fitters.values())  # the loop, not model.fit
    ours, keras = side.model.get_weights(), _keras_fit(spec, config, x, t, start)
    assert len(ours) == len(keras)
    for a, b in zip(ours, keras):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(ours[0], start[0])  # it did fit


def test_readying_the_graphs_during_the_fit_leaves_the_weights_and_the_steps_as_they_were():
    """fit_loop.ready makes the stepping loop's first call on one sample while the fit runs: the fitted weights (model.fit's,
    in float32 with momentum) and Keras's stepping afterwards equal those of a side fitted with nothing beside it."""
    config, spec, x, t = _prepared("cnn", "float32", "momentum", epochs=2, samples=40, train=30)
    start = keras_model.initial_weights(spec, config.seed, "float32")
    results = []
    for probe_rows in (len(x), 0):
        side = KerasSide(keras_model.build_model(spec), spec)
        side.model.set_weights(start)
        side.fit(x, t, config.epochs, config.batch_size, config.optimizer, config.seed, probe_rows=probe_rows)
        assert (side._looped is not None) == bool(probe_rows)  # readied, or not
        fitted = side.model.get_weights()
        results.append((fitted, side.step_through(x, t, config.optimizer), side.per_sample(x, t)))
    (w_ready, steps_ready, probe_ready), (w_plain, steps_plain, probe_plain) = results
    for a, b, c in zip(w_ready, w_plain, _keras_fit(spec, config, x, t, start)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    for name in steps_ready.params_after:
        np.testing.assert_array_equal(steps_ready.params_after[name], steps_plain.params_after[name])
        np.testing.assert_array_equal(steps_ready.state_after["v"][name], steps_plain.state_after["v"][name])
        np.testing.assert_array_equal(probe_ready.grads[name], probe_plain.grads[name])


class _Broken:
    """A compiled loop whose call raises, as a failing graph would."""

    def get_concrete_function(self, *args):
        def call(*args):
            raise RuntimeError("the graph failed")
        return call


def test_a_failure_on_either_thread_is_raised_in_the_caller_once_the_steps_stopped():
    config, spec, x, t = _prepared("seed", "float32", "sgd", epochs=2, samples=40, train=30)
    model = keras_model.build_model(spec)
    model.compile(optimizer="sgd", loss="mse")
    fitter = fit_loop.Fitter(model, [], _Broken())
    seen = []
    with pytest.raises(RuntimeError, match="the graph failed"):
        fit_loop.fit_epochs(fitter, x, t, 2, 10, 1, meanwhile=lambda: seen.append("meanwhile"))
    assert seen == ["meanwhile"]  # the caller's work ran to its end first

    def meanwhile():
        raise KeyError("tracing failed")

    fitter = fit_loop.compiled_fitter(spec, backend.keras.optimizers.SGD(0.01), x, t, 10, 1)
    with pytest.raises(KeyError, match="tracing failed"):  # 200 epochs of 3 steps: 5 calls, stopped after one
        fit_loop.fit_epochs(fitter, x, t, 200, 10, 1, meanwhile=meanwhile)
    assert not [thread for thread in threading.enumerate() if thread.name == "keras-fit"]  # joined, not left running
    assert int(fitter.model.optimizer.iterations.numpy()) in (0, fit_loop.CALL_STEPS)  # no call began after the stop
