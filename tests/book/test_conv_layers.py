"""The reference Convolution, Pooling and im2col/col2im: hand-computed values, the definition as loops, central
differences, no input mutation, the dtype kept (NumPy only)."""

import numpy as np
import pytest

from parity.book.functions import col2im, im2col, output_size
from parity.book.layers import Affine, Convolution, Pooling
from testkit import CENTRAL_DIFFERENCE, CONV_LOOPS, FLATTENED_AFFINE, assert_close, numerical_gradient


def convolve_by_loops(x, W, b, stride, pad):
    """Cross-correlation by its definition, one output cell at a time: out[n, f, i, j] = sum x_pad[...] * W[f] + b[f]."""
    N, C, H, Wd = x.shape
    FN, _, FH, FW = W.shape
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    oh, ow = output_size(H, FH, stride, pad), output_size(Wd, FW, stride, pad)
    out = np.zeros((N, FN, oh, ow))
    for n in range(N):
        for f in range(FN):
            for i in range(oh):
                for j in range(ow):
                    window = xp[n, :, i * stride:i * stride + FH, j * stride:j * stride + FW]
                    out[n, f, i, j] = np.sum(window * W[f]) + b[f]
    return out


def test_im2col_hand_computed_rows_are_windows_in_c_fy_fx_order():
    x = np.arange(2 * 3 * 3, dtype=np.float64).reshape(1, 2, 3, 3)
    col = im2col(x, 2, 2, stride=1, pad=0)
    assert col.shape == (4, 8)
    # the window at (0, 1): channel 0 cells 1, 2, 4, 5, then channel 1 cells 10, 11, 13, 14
    np.testing.assert_array_equal(col[1], [1, 2, 4, 5, 10, 11, 13, 14])


def test_col2im_adds_where_windows_overlap():
    x_shape = (1, 1, 3, 3)
    ones = np.ones((4, 4))  # four 2x2 windows at stride 1
    np.testing.assert_array_equal(col2im(ones, x_shape, 2, 2, stride=1)[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 5, 6))
    for stride, pad in ((1, 0), (2, 1), (1, 2)):
        col = im2col(x, 3, 2, stride, pad)
        y = rng.normal(size=col.shape)
        assert np.sum(col * y) == pytest.approx(np.sum(x * col2im(y, x.shape, 3, 2, stride, pad)), rel=1e-12)


def test_convolution_hand_computed():
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    W = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # out[i, j] = x[i, j] - x[i + 1, j + 1] + b
    layer = Convolution(W, np.array([0.5]))
    np.testing.assert_array_equal(layer.forward(x), np.full((1, 1, 2, 2), -3.5))
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 0], [3, 3, -2], [0, -3, -4]])
    np.testing.assert_array_equal(layer.dW[0, 0], [[27, 37], [57, 67]])
    np.testing.assert_array_equal(layer.db, [10])


def test_pooling_hand_computed_sends_the_gradient_to_each_windows_max():
    x = np.array([[[[1, 5, 2, 0], [3, 2, 8, 1], [0, 1, 4, 4.5], [7, 2, 3, 1]]]])
    layer = Pooling(2, 2, stride=2)
    np.testing.assert_array_equal(layer.forward(x)[0, 0], [[5, 8], [7, 4.5]])
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[3, 0], expected[2, 3] = 1, 2, 3, 4
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_pooling_overlapping_windows_add_at_a_shared_max():
    x = np.array([[[[0.0, 9.0, 0.0]]]])  # both 1x2 windows at stride 1 pick the middle cell
    layer = Pooling(1, 2, stride=1)
    np.testing.assert_array_equal(layer.forward(x), [[[[9.0, 9.0]]]])
    np.testing.assert_array_equal(layer.backward(np.array([[[[2.0, 5.0]]]])), [[[[0.0, 7.0, 0.0]]]])


def test_pooling_stride_defaults_to_two_as_the_book_since_2020():
    assert Pooling(2, 2).stride == 2


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (1, 1), (2, 0)])
def test_convolution_matches_its_definition_and_central_differences(seed, stride, pad):
    rng = np.random.default_rng([seed, stride, pad])
    x = rng.normal(size=(3, 2, 5, 7))  # C > 1, H != W
    W, b = rng.normal(size=(4, 2, 3, 2)), rng.normal(size=4)  # FN != FH != FW
    layer = Convolution(W, b, stride, pad)
    out = layer.forward(x)
    assert_close(out, convolve_by_loops(x, W, b, stride, pad), CONV_LOOPS)
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)
    f = lambda: float(np.sum(Convolution(W, b, stride, pad).forward(x) * dout))  # noqa: E731
    assert_close(dx, numerical_gradient(f, x), CENTRAL_DIFFERENCE)
    assert_close(layer.dW, numerical_gradient(f, W), CENTRAL_DIFFERENCE)
    assert_close(layer.db, numerical_gradient(f, b), CENTRAL_DIFFERENCE)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("pool,stride,pad", [((2, 2), 2, 0), ((3, 2), 1, 0), ((2, 3), 2, 1)])
def test_pooling_matches_central_differences_away_from_ties(seed, pool, stride, pad):
    rng = np.random.default_rng([seed, *pool, stride, pad])
    x = rng.normal(size=(3, 2, 5, 6)) + (3.0 if pad else 0.0)  # positive: a zero of the padding is never the max
    layer = Pooling(*pool, stride=stride, pad=pad)
    out = layer.forward(x)
    assert out.shape == (3, 2, output_size(5, pool[0], stride, pad), output_size(6, pool[1], stride, pad))
    dout = rng.normal(size=out.shape)
    dx = layer.backward(dout)
    f = lambda: float(np.sum(Pooling(*pool, stride=stride, pad=pad).forward(x) * dout))  # noqa: E731
    assert_close(dx, numerical_gradient(f, x), CENTRAL_DIFFERENCE)


def test_affine_flattens_a_tensor_channel_major_and_returns_dx_in_its_shape():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 3, 2, 2))  # (N, C, H, W)
    W, b = rng.normal(size=(12, 4)), rng.normal(size=4)
    layer = Affine(W, b)
    out = layer.forward(x)
    flat = np.stack([[x[n, c, h, w] for c in range(3) for h in range(2) for w in range(2)] for n in range(2)])
    assert_close(out, flat @ W + b, FLATTENED_AFFINE)
    dout = rng.normal(size=(2, 4))
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    f = lambda: float(np.sum(Affine(W, b).forward(x) * dout))  # noqa: E731
    assert_close(dx, numerical_gradient(f, x), CENTRAL_DIFFERENCE)
    assert_close(layer.dW, numerical_gradient(f, W), CENTRAL_DIFFERENCE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_and_pool_keep_the_inputs_dtype_and_leave_their_arguments_alone(dtype):
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 2, 6, 5)).astype(dtype)
    conv = Convolution(rng.normal(size=(3, 2, 3, 3)).astype(dtype), np.zeros(3, dtype=dtype), stride=1, pad=1)
    pool = Pooling(2, 2, stride=2)
    x_before = x.copy()
    h = conv.forward(x)
    out = pool.forward(h)
    dout = rng.normal(size=out.shape).astype(dtype)
    dout_before = dout.copy()
    dh = pool.backward(dout)
    dx = conv.backward(dh)
    assert (h.dtype, out.dtype, dh.dtype, dx.dtype, conv.dW.dtype, conv.db.dtype) == (dtype,) * 6
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(dout, dout_before)
