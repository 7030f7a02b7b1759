"""Regression tests against Keras: each layer against its Keras counterpart, the seed scenario end to end."""

import numpy as np
import pytest

from parity.keras_side import backend  # sets the TensorFlow backend before keras loads
from parity.keras_side import model as keras_model
from parity.keras_side import side as keras_side
from parity.book.layers import Affine, MeanSquaredError, Relu, Sigmoid
from parity.settings.tolerances import TOLERANCES

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from testkit import KERAS_ELEMENTWISE, KERAS_MATMUL, SEEDS_DIFFER, assert_close, close


@pytest.fixture
def float64_keras():
    """Layer-level comparisons run Keras in float64 (losses and layers take floatx when made)."""
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")


def tf_grad(fn, *arrays):
    """Value and gradients of sum(fn(*arrays) * 1) by TensorFlow autodiff, in float64."""
    tensors = [tf.constant(a, dtype=tf.float64) for a in arrays]
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        out = fn(*tensors)
    return out.numpy(), [g.numpy() for g in tape.gradient(out, tensors)]


def test_relu_backward_at_zero_matches_tensorflow(float64_keras):
    x = np.array([[-1.0, -0.0, 0.0, 1e-300, 2.0]])
    _, (tf_dx,) = tf_grad(lambda t: tf.reduce_sum(keras.activations.relu(t)), x)
    layer = Relu()
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), tf_dx)
    assert tf_dx[0, 2] == 0.0  # TensorFlow's ReluGrad passes nothing at exactly 0


@pytest.mark.parametrize("seed", range(3))
def test_sigmoid_matches_keras_activation(seed, float64_keras):
    x = np.random.default_rng(seed).normal(scale=4, size=(6, 3))
    out, (tf_dx,) = tf_grad(lambda t: tf.reduce_sum(keras.activations.sigmoid(t)), x)
    layer = Sigmoid()
    assert np.sum(layer.forward(x)) == pytest.approx(out, rel=1e-14)
    assert_close(layer.backward(np.ones_like(x)), tf_dx, KERAS_ELEMENTWISE)


@pytest.mark.parametrize("seed", range(3))
def test_mean_squared_error_matches_keras_loss_and_gradient(seed, float64_keras):
    rng = np.random.default_rng(seed)
    y, t = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    loss, (tf_dy, _) = tf_grad(lambda a, b: keras.losses.MeanSquaredError()(b, a), y, t)
    layer = MeanSquaredError()
    assert layer.forward(y, t) == pytest.approx(loss, rel=1e-14)
    assert_close(layer.backward(), tf_dy, KERAS_ELEMENTWISE)


@pytest.mark.parametrize("seed", range(3))
def test_affine_matches_keras_dense_gradients(seed, float64_keras):
    rng = np.random.default_rng(seed)
    dense = keras.layers.Dense(3)
    dense.build((None, 4))
    W, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    dense.set_weights([W, b])
    x = tf.constant(rng.normal(size=(2, 4)))
    dout = rng.normal(size=(2, 3))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reduce_sum(dense(x) * dout)
    tf_dx, tf_dW, tf_db = tape.gradient(out, [x, dense.kernel, dense.bias])
    layer = Affine(W, b)
    layer.forward(x.numpy())
    assert_close(layer.backward(dout), tf_dx.numpy(), KERAS_MATMUL)
    assert_close(layer.dW, tf_dW.numpy(), KERAS_MATMUL)
    assert_close(layer.db, tf_db.numpy(), KERAS_MATMUL)


def test_seed_data_reproduce_the_notebook(seed_run):
    result = seed_run("float64")
    assert result.data.x[0, 0] == pytest.approx(-0.70854271, abs=5e-9)
    assert result.data.x.shape == (200, 1) and result.config.train == 160


def test_seed_scenario_float64_every_difference_at_most_1e_12(seed_run):
    result = seed_run("float64")
    assert result.verdict == "pass"
    diffs = result.max_abs_diff()
    assert {"probe.dW1", "probe.db1", "probe.dW2", "probe.db2", "probe.dx", "stepping.W1", "stepping.b2"} <= set(diffs)
    assert all(v <= 1e-12 for v in diffs.values()), diffs
    assert (result.probe.verdicts == "pass").all() and (result.stepping.verdicts == "pass").all()


def test_seed_scenario_float32_within_its_named_tolerance(seed_run):
    result = seed_run("float32")
    tol = TOLERANCES["float32"]
    assert result.verdict == "pass"
    for phase in (result.probe, result.stepping):
        for d in phase.diffs.values():
            bound = tol.atol + tol.rtol * np.abs(d.keras.astype(np.float64))
            assert (d.abs_diff <= bound).all(), d.name


def test_keras_side_builds_the_requested_dtype_whatever_ran_before():
    from parity.settings.spec import DenseSpec, ModelSpec

    spec = ModelSpec(input_dim=1, layers=(DenseSpec(2, "relu"), DenseSpec(1)))
    backend.configure("float64", 1)
    keras_model.build_model(spec)
    backend.configure("float32", 1)
    assert {v.dtype for v in keras_model.build_model(spec).variables} == {"float32"}


def test_seed_float32_run_is_float32_on_the_keras_side(seed_run):
    result = seed_run("float32")
    for trace in (result.probe.keras, result.stepping.keras):
        assert trace.pred.dtype == np.float32
        assert all(g.dtype == np.float32 for g in trace.grads.values())
        assert all(p.dtype == np.float32 for p in trace.params_after.values())


def test_stepping_moves_the_weights_on_both_sides(seed_run):
    result = seed_run("float64")
    for side in (result.stepping.numpy, result.stepping.keras):
        assert not np.array_equal(side.params_after["W2"][-1], result.fitted["W2"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dead_unit_has_zero_dW_and_unchanged_W_but_W_is_not_zero(seed_run, dtype):
    result = seed_run(dtype)
    rows = result.dead_relu_steps
    assert sum(r["dead_steps"] for r in rows) > 0
    for r in rows:
        assert r["dW_zero_when_dead"] == r["W_unchanged_when_dead"] == r["W_nonzero_when_dead"] == r["dead_steps"], r
    # and the Keras side agrees with the NumPy side, unit by unit
    by_side = {(r["side"], r["unit"]): r for r in rows}
    for (side, unit), r in by_side.items():
        assert r == {**by_side[("keras", unit)], "side": side}


def test_weight_copy_round_trip_gives_keras_predictions():
    from parity.numpy_side.network import build_network
    from parity.settings.spec import DenseSpec, ModelSpec
    from parity.keras_side.transfer import keras_to_numpy

    spec = ModelSpec(input_dim=3, layers=(DenseSpec(4, "relu"), DenseSpec(2, "sigmoid"), DenseSpec(1)))
    backend.configure("float64", 7)
    model = keras_model.build_model(spec)
    x = np.random.default_rng(0).normal(size=(10, 3))
    net = build_network(spec, keras_to_numpy(spec, keras_model.weights_of(model), "float64"))
    assert_close(net.predict(x), model.predict(x, verbose=0), KERAS_MATMUL)


class ReluWithoutMask(Relu):
    def backward(self, dout):
        return dout


class HalfMeanSquaredError(MeanSquaredError):
    def backward(self, dout=1):
        return super().backward(dout) / 2


@pytest.mark.parametrize("kit,param,code", [({"Relu": ReluWithoutMask}, "dW1", "mask_mismatch"),
                                            ({"MeanSquaredError": HalfMeanSquaredError}, "dW2", "scale_factor")])
def test_a_broken_numpy_layer_fails_the_verdict_with_its_cause(kit, param, code, cached_run):
    result = cached_run({"dtype": "float64", "epochs": 2}, kit=kit)
    assert result.verdict == "fail"
    [finding] = [f for f in result.findings if f.param == param and f.phase == "probe"]
    assert finding.code == code and finding.severity == "error" and finding.sample is not None, finding


def test_fitting_several_batches_per_call_gives_the_same_weights_as_one_per_call():
    from parity.settings.data import linear_data
    from parity.settings.spec import DenseSpec, ModelSpec

    spec = ModelSpec(input_dim=1, layers=(DenseSpec(2, "relu"), DenseSpec(1)))
    data = linear_data(200, 155, 1337)  # 155: every epoch ends on a short batch of 5
    weights = []
    for steps_per_execution in (1, None):
        backend.configure("float32", 1337)
        model = keras_model.build_model(spec)
        keras_model.fit(model, spec, data.x[:155].astype("float32"), data.y[:155].astype("float32"), 5, 10, 0.01,
                       1337, steps_per_execution=steps_per_execution)
        weights.append(model.get_weights())
    for one_per_call, several in zip(*weights):
        np.testing.assert_array_equal(one_per_call, several)
    assert not np.array_equal(weights[0][0], keras_model.initial_weights(spec, 1337, "float32")[0])  # it did fit


def test_a_reused_fit_equals_a_fresh_compile_and_a_new_seed_shuffles_differently():
    """KerasSide keeps one compiled model per optimizer kind and resets it for each fit: the weights
    equal those of a freshly built and compiled model fitted from the same start with the same seed."""
    from parity.settings.data import linear_data
    from parity.settings.spec import DenseSpec, ModelSpec

    spec = ModelSpec(input_dim=1, layers=(DenseSpec(2, "relu"), DenseSpec(1)))
    data = linear_data(200, 160, 1337)
    x, y = data.x[:160].astype("float64"), data.y[:160].astype("float64")
    backend.configure("float64", 5)
    start = keras_model.initial_weights(spec, 5, "float64")
    side = keras_side.side_for(spec)
    fitted = {}
    for seed in (5, 6, 5):  # the third fit reuses the compiled model the first one built
        side.model.set_weights(start)
        side.fit(x, y, 3, 10, 0.05, seed)
        fitted.setdefault(seed, []).append(side.model.get_weights())
    fresh = keras_model.build_model(spec)
    fresh.set_weights(start)
    backend.keras.utils.set_random_seed(5)
    keras_model.fit(fresh, spec, x, y, 3, 10, 0.05, 5)
    for a, b, c in zip(fitted[5][0], fitted[5][1], fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert not close(fitted[5][0][0], fitted[6][0][0], SEEDS_DIFFER)  # the seed orders the batches