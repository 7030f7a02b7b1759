"""The reference NumPy layers: hand-computed values, central differences, no input mutation."""

import numpy as np
import pytest

from parity.book.layers import Affine, MeanSquaredError, Relu, Sigmoid
from testkit import CENTRAL_DIFFERENCE, CENTRAL_DIFFERENCE_LOSS, HAND_COMPUTED, SAME_PRODUCT, assert_close, numerical_gradient


def test_affine_forward_backward_hand_computed():
    W = np.array([[1.0, -2.0], [0.5, 3.0]])
    b = np.array([0.1, -0.2])
    layer = Affine(W, b)
    x = np.array([[2.0, 4.0]])
    np.testing.assert_array_equal(layer.forward(x), [[2.0 + 2.0 + 0.1, -4.0 + 12.0 - 0.2]])
    dx = layer.backward(np.array([[1.0, 10.0]]))
    np.testing.assert_array_equal(dx, [[1.0 - 20.0, 0.5 + 30.0]])
    np.testing.assert_array_equal(layer.dW, [[2.0, 20.0], [4.0, 40.0]])
    np.testing.assert_array_equal(layer.db, [1.0, 10.0])


def test_affine_accepts_tensor_input_and_returns_dx_in_its_shape():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2, 2))
    layer = Affine(rng.normal(size=(4, 5)), rng.normal(size=5))
    out = layer.forward(x)
    assert out.shape == (3, 5)
    assert_close(out, x.reshape(3, 4) @ layer.W + layer.b, SAME_PRODUCT)
    assert layer.backward(np.ones((3, 5))).shape == (3, 2, 2)


def test_relu_hand_computed_and_no_gradient_at_exactly_zero():
    layer = Relu()
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.forward(x), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.backward(np.array([[5.0, 5.0, 5.0]])), [[0.0, 0.0, 5.0]])


def test_sigmoid_hand_computed():
    layer = Sigmoid()
    out = layer.forward(np.array([[0.0, np.log(3.0)]]))
    assert_close(out, [[0.5, 0.75]], HAND_COMPUTED)
    assert_close(layer.backward(np.array([[2.0, 2.0]])), [[0.5, 2 * 0.75 * 0.25]], HAND_COMPUTED)


def test_mean_squared_error_matches_keras_convention_by_hand():
    layer = MeanSquaredError()
    y, t = np.array([[1.0], [3.0]]), np.array([[0.0], [0.0]])
    assert layer.forward(y, t) == pytest.approx(5.0, abs=0)  # mean(1, 9)
    np.testing.assert_array_equal(layer.backward(), [[1.0], [3.0]])  # 2 * (y - t) / 2


@pytest.mark.parametrize("seed", range(3))
def test_affine_backward_matches_central_differences(seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    dout = rng.normal(size=(4, 2))
    layer = Affine(W, b)
    f = lambda: float(np.sum(layer.forward(x) * dout))  # noqa: E731
    layer.forward(x)
    dx = layer.backward(dout)
    assert_close(dx, numerical_gradient(f, x), CENTRAL_DIFFERENCE)
    assert_close(layer.dW, numerical_gradient(f, W), CENTRAL_DIFFERENCE)
    assert_close(layer.db, numerical_gradient(f, b), CENTRAL_DIFFERENCE)


@pytest.mark.parametrize("cls", [Relu, Sigmoid])
@pytest.mark.parametrize("seed", range(3))
def test_activation_backward_matches_central_differences(cls, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5, 4))
    x[np.abs(x) < 1e-3] = 0.5  # keep the ReLU kink out of the finite-difference stencil
    dout = rng.normal(size=(5, 4))
    layer = cls()
    f = lambda: float(np.sum(layer.forward(x) * dout))  # noqa: E731
    layer.forward(x)
    dx = layer.backward(dout)
    assert_close(dx, numerical_gradient(f, x), CENTRAL_DIFFERENCE)


@pytest.mark.parametrize("seed", range(3))
def test_mean_squared_error_backward_matches_central_differences(seed):
    rng = np.random.default_rng(seed)
    y, t = rng.normal(size=(6, 2)), rng.normal(size=(6, 2))
    layer = MeanSquaredError()
    layer.forward(y, t)
    dy = layer.backward()
    assert_close(dy, numerical_gradient(lambda: float(layer.forward(y, t)), y), CENTRAL_DIFFERENCE_LOSS)


@pytest.mark.parametrize("make", [lambda: Affine(np.ones((3, 2)), np.ones(2)), Relu, Sigmoid])
def test_forward_and_backward_do_not_mutate_their_inputs(make):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3))
    layer = make()
    x_copy = x.copy()
    out = layer.forward(x)
    dout = rng.normal(size=out.shape)
    dout_copy = dout.copy()
    layer.backward(dout)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dout, dout_copy)
