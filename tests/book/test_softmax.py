"""SoftmaxWithLoss against Keras's softmax Dense with (sparse) categorical cross-entropy."""

import numpy as np
import pytest

from parity.keras_side import backend  # noqa: F401  (TensorFlow backend first)
from parity.book.layers import SoftmaxWithLoss

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from testkit import CENTRAL_DIFFERENCE_LOSS, HAND_COMPUTED, KERAS_SOFTMAX_CROSSENTROPY, assert_close, numerical_gradient


def test_softmax_with_loss_hand_computed():
    layer = SoftmaxWithLoss()
    x = np.array([[0.0, np.log(3.0)]])  # softmax = [0.25, 0.75]
    assert layer.forward(x, np.array([1])) == pytest.approx(-np.log(0.75), abs=1e-15)
    assert_close(layer.backward(), [[0.25, -0.25]], HAND_COMPUTED)
    assert layer.forward(x, np.array([[1.0, 0.0]])) == pytest.approx(-np.log(0.25), abs=1e-15)
    assert_close(layer.backward(), [[-0.75, 0.75]], HAND_COMPUTED)


@pytest.mark.parametrize("seed", range(3))
def test_softmax_with_loss_backward_matches_central_differences(seed):
    rng = np.random.default_rng(seed)
    x, t = rng.normal(size=(4, 3)), rng.integers(0, 3, size=4)
    layer = SoftmaxWithLoss()
    layer.forward(x, t)
    dx = layer.backward()
    assert_close(dx, numerical_gradient(lambda: float(layer.forward(x, t)), x), CENTRAL_DIFFERENCE_LOSS)


def test_softmax_with_loss_never_takes_log_of_zero():
    layer = SoftmaxWithLoss()
    loss = layer.forward(np.array([[1000.0, -1000.0]]), np.array([1]))
    assert np.isfinite(loss) and loss == pytest.approx(2000.0)


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_softmax_with_loss_matches_keras_softmax_dense_and_crossentropy(sparse, seed):
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=3, size=(5, 4))
    labels = rng.integers(0, 4, size=5)
    t = labels.reshape(-1, 1).astype(float) if sparse else np.eye(4)[labels]
    loss_fn = keras.losses.SparseCategoricalCrossentropy() if sparse else keras.losses.CategoricalCrossentropy()

    @tf.function  # as in fit: the softmax output carries its logits into the loss
    def keras_loss(z, target):
        with tf.GradientTape() as tape:
            tape.watch(z)
            loss = loss_fn(target, keras.activations.softmax(z))
        return loss, tape.gradient(loss, z)

    loss, dz = keras_loss(tf.constant(scores), tf.constant(t))
    layer = SoftmaxWithLoss()
    assert layer.forward(scores, labels if sparse else t) == pytest.approx(loss.numpy(), rel=1e-13)
    assert_close(layer.backward(), dz.numpy(), KERAS_SOFTMAX_CROSSENTROPY)
