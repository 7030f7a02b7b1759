"""Property-based tests of the reference layers: random shapes and values (hypothesis)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from parity.book.layers import Affine, MeanSquaredError, Relu, Sigmoid, SoftmaxWithLoss
from parity.settings.tolerances import TOLERANCES
from testkit import CENTRAL_DIFFERENCE_DRAWN, CENTRAL_DIFFERENCE_DRAWN_LOSS, assert_close, numerical_gradient

F32 = TOLERANCES["float32"]
SETTINGS = settings(max_examples=40, deadline=None)
unit = st.floats(-1, 1, allow_nan=False, width=64)


def matrices(rows, cols, elements=unit):
    return arrays(np.float64, st.tuples(rows, cols), elements=elements)


def close_in_float32(a32, a64):
    """float32 and float64 agree within the named float32 tolerance (values here are O(1))."""
    np.testing.assert_allclose(np.asarray(a32, dtype=np.float64), a64, rtol=F32.rtol, atol=F32.atol)


@st.composite
def affine_case(draw):
    n, i, o = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return (draw(matrices(st.just(n), st.just(i))), draw(matrices(st.just(i), st.just(o))),
            draw(arrays(np.float64, (o,), elements=unit)), draw(matrices(st.just(n), st.just(o))))


@SETTINGS
@given(affine_case())
def test_affine_backward_matches_differences_mutates_nothing_and_float32_agrees(case):
    x, W, b, dout = case
    inputs = [a.copy() for a in case]
    layer = Affine(W, b)
    f = lambda: float(np.sum(layer.forward(x) * dout))  # noqa: E731
    out = layer.forward(x)
    dx = layer.backward(dout)
    for ours, wrt in ((dx, x), (layer.dW, W), (layer.db, b)):
        assert_close(ours, numerical_gradient(f, wrt), CENTRAL_DIFFERENCE_DRAWN)
    for before, after in zip(inputs, (x, W, b, dout)):
        np.testing.assert_array_equal(before, after)
    layer32 = Affine(W.astype(np.float32), b.astype(np.float32))
    close_in_float32(layer32.forward(x.astype(np.float32)), out)
    close_in_float32(layer32.backward(dout.astype(np.float32)), dx)
    close_in_float32(layer32.dW, layer.dW)


@SETTINGS
@given(matrices(st.integers(1, 4), st.integers(1, 6), st.floats(-3, 3, allow_nan=False)), st.data())
def test_activations_backward_matches_differences_and_mutate_nothing(x, data):
    x = np.where(np.abs(x) < 1e-3, 0.5, x)  # keep the ReLU kink out of the difference stencil
    dout = data.draw(arrays(np.float64, x.shape, elements=unit))
    for cls in (Relu, Sigmoid):
        x_in, dout_in = x.copy(), dout.copy()
        layer = cls()
        f = lambda: float(np.sum(layer.forward(x_in) * dout))  # noqa: E731
        out = layer.forward(x_in)
        dx = layer.backward(dout_in)
        np.testing.assert_array_equal(x_in, x)
        np.testing.assert_array_equal(dout_in, dout)
        assert_close(dx, numerical_gradient(f, x_in), CENTRAL_DIFFERENCE_DRAWN)
        layer32 = cls()
        close_in_float32(layer32.forward(x.astype(np.float32)), out)
        close_in_float32(layer32.backward(dout.astype(np.float32)), dx)


@SETTINGS
@given(matrices(st.integers(1, 5), st.integers(1, 3)), st.data())
def test_mean_squared_error_matches_differences_and_float32(y, data):
    t = data.draw(arrays(np.float64, y.shape, elements=unit))
    layer = MeanSquaredError()
    loss = layer.forward(y, t)
    dy = layer.backward()
    y_fd = y.copy()  # the differences perturb the very array the loss reads
    assert_close(dy, numerical_gradient(lambda: float(MeanSquaredError().forward(y_fd, t)), y_fd),
                 CENTRAL_DIFFERENCE_DRAWN_LOSS)
    layer32 = MeanSquaredError()
    close_in_float32(layer32.forward(y.astype(np.float32), t.astype(np.float32)), loss)
    close_in_float32(layer32.backward(), dy)


@SETTINGS
@given(matrices(st.integers(1, 4), st.integers(2, 5), st.floats(-5, 5, allow_nan=False)), st.data())
def test_softmax_with_loss_matches_differences_and_mutates_nothing(x, data):
    t = np.array(data.draw(st.lists(st.integers(0, x.shape[1] - 1), min_size=len(x), max_size=len(x))))
    x_in, t_in = x.copy(), t.copy()
    layer = SoftmaxWithLoss()
    loss = layer.forward(x_in, t_in)
    dx = layer.backward()
    np.testing.assert_array_equal(x_in, x)
    np.testing.assert_array_equal(t_in, t)
    x_fd = x.copy()
    assert_close(dx, numerical_gradient(lambda: float(SoftmaxWithLoss().forward(x_fd, t)), x_fd),
                 CENTRAL_DIFFERENCE_DRAWN_LOSS)
    layer32 = SoftmaxWithLoss()
    close_in_float32(layer32.forward(x.astype(np.float32), t), loss)
    close_in_float32(layer32.backward(), dx)
