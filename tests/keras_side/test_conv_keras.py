"""The Keras side of a convolutional model: Conv2D (channels_last), MaxPooling2D, Flatten and Dense, differentiated by
TensorFlow autodiff, carried into the book's layout by the one asserted mapping (parity.keras_side.transfer), and
equal to the book's layers run sample by sample (float64, 1e-12)."""

import numpy as np
import pytest

from parity.book.layers import Affine, Convolution, Pooling, Relu, SoftmaxWithLoss
from parity.keras_side.transfer import (TransferError, flatten_order, keras_shape, keras_to_numpy, numpy_to_keras,
                                        to_book, to_keras)
from parity.settings.spec import ConvSpec, DenseSpec, ModelSpec, PoolSpec
from testkit import KERAS_AGAINST_BOOK, assert_close

SPEC = ModelSpec(input_dim=2 * 7 * 6, layers=(DenseSpec(5, "relu"), DenseSpec(3, "softmax")),
                 loss="sparse_categorical_crossentropy", input_shape=(2, 7, 6),
                 features=(ConvSpec(4, (3, 2), stride=1, pad=1), PoolSpec((2, 2), stride=2)))


def test_flatten_order_maps_the_books_channel_major_flatten_onto_keras_channels_last():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(3, 4, 5))  # (C, H, W)
    keras_flat = image.transpose(1, 2, 0).reshape(-1)  # Flatten of (H, W, C)
    np.testing.assert_array_equal(keras_flat[flatten_order(3, 4, 5)], image.reshape(-1))


def test_conv_kernel_orientation_is_written_down_and_inverts():
    assert keras_shape(SPEC, "W1") == (3, 2, 2, 4)  # (FH, FW, C, FN)
    assert SPEC.shapes()["W1"] == (4, 2, 3, 2)  # (FN, C, FH, FW)
    kernel = np.random.default_rng(1).normal(size=(3, 2, 2, 4))
    W = to_book(SPEC, "W1", kernel)
    np.testing.assert_array_equal(W, kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(to_keras(SPEC, "W1", W), kernel)
    rows = np.stack([kernel, 2 * kernel])
    np.testing.assert_array_equal(to_book(SPEC, "W1", rows, rows=True)[1], 2 * W)


def test_first_dense_rows_are_permuted_and_the_later_ones_are_not():
    rng = np.random.default_rng(2)
    weights = {name: rng.normal(size=shape) for name, shape in SPEC.shapes().items()}
    back = keras_to_numpy(SPEC, [(n, a) for n, a in zip(weights, numpy_to_keras(SPEC, weights))], "float64")
    for name in weights:
        np.testing.assert_array_equal(back[name], weights[name])
    keras_w2 = numpy_to_keras(SPEC, weights)[2]
    assert SPEC.maps()[-1] == (4, 3, 3)  # (C, H, W) after pooling: 7x6 padded by 1, 3x2 kernel, 2x2 pool
    np.testing.assert_array_equal(keras_w2[flatten_order(4, 3, 3)], weights["W2"])
    assert numpy_to_keras(SPEC, weights)[4] is weights["W3"]


def test_a_conv_kernel_in_the_books_layout_is_refused_with_its_orientation():
    rng = np.random.default_rng(3)
    variables = [(f"v{k}", rng.normal(size=keras_shape(SPEC, n))) for k, n in enumerate(SPEC.shapes())]
    variables[0] = ("conv_1/kernel", rng.normal(size=(4, 2, 3, 2)))
    with pytest.raises(TransferError, match=r"conv_1/kernel has shape \(4, 2, 3, 2\), W1 expects \(3, 2, 2, 4\) "
                                            r"\(kernel is \(FH, FW, C, FN\)\)"):
        keras_to_numpy(SPEC, variables, "float64")


def book_record(weights, x, t):
    """The book's layers, one sample at a time: pred, loss, grads, dx and the convolution's pre-activation."""
    rows = []
    for i in range(len(x)):
        conv = Convolution(weights["W1"], weights["b1"], 1, 1)
        relu1, pool = Relu(), Pooling(2, 2, stride=2)
        a2, relu2, a3, loss = Affine(weights["W2"], weights["b2"]), Relu(), Affine(weights["W3"], weights["b3"]), \
            SoftmaxWithLoss()
        z1 = conv.forward(x[i:i + 1].reshape(1, 2, 7, 6))
        scores = a3.forward(relu2.forward(a2.forward(pool.forward(relu1.forward(z1)))))
        value = loss.forward(scores, t[i:i + 1])
        dx = conv.backward(relu1.backward(pool.backward(a2.backward(relu2.backward(a3.backward(loss.backward()))))))
        rows.append({"pred": loss.y[0], "loss": value, "dx": dx.reshape(-1), "map": z1.reshape(-1),
                     "grads": {"W1": conv.dW, "b1": conv.db, "W2": a2.dW, "b2": a2.db, "W3": a3.dW, "b3": a3.db}})
    return rows


@pytest.fixture(scope="module")
def keras_side():
    from parity.keras_side import backend
    from parity.keras_side.model import build_model, initial_weights
    from parity.keras_side.side import KerasSide

    backend.configure("float64", 7)
    side = KerasSide(build_model(SPEC), SPEC)
    side.model.set_weights(initial_weights(SPEC, 7, "float64"))
    rng = np.random.default_rng(4)
    side.model.set_weights([w + rng.normal(scale=0.1, size=w.shape) for w in side.model.get_weights()])  # biases != 0
    return side


def test_keras_per_sample_gradients_equal_the_books_layers_in_float64(keras_side):
    from parity.keras_side.model import weights_of

    weights = keras_to_numpy(SPEC, weights_of(keras_side.model), "float64")
    rng = np.random.default_rng(5)
    x, t = rng.normal(size=(6, SPEC.input_dim)), rng.integers(0, 3, size=6)
    theirs = keras_side.per_sample(x, t.reshape(-1, 1).astype(np.float64))
    eager = keras_side.per_sample_eager(x, t.reshape(-1, 1).astype(np.float64))
    ours = book_record(weights, x, t)
    for trace in (theirs, eager):
        assert_close(trace.pred, [r["pred"] for r in ours], KERAS_AGAINST_BOOK)
        assert_close(trace.loss, [r["loss"] for r in ours], KERAS_AGAINST_BOOK)
        assert_close(trace.dx, [r["dx"] for r in ours], KERAS_AGAINST_BOOK)
        assert_close(trace.maps[1], [r["map"] for r in ours], KERAS_AGAINST_BOOK)
        assert list(trace.z) == [2] and trace.z[2].shape == (6, 5)
        for name in SPEC.shapes():
            assert_close(trace.grads[name], [r["grads"][name] for r in ours], KERAS_AGAINST_BOOK,
                                       err_msg=name)
    assert np.abs(theirs.grads["W1"]).max() > 1e-3  # not a vacuous match


def test_keras_stepping_reports_parameters_in_the_books_layout(keras_side):
    from parity.keras_side.model import weights_of

    start = keras_to_numpy(SPEC, weights_of(keras_side.model), "float64")
    rng = np.random.default_rng(6)
    x, t = rng.normal(size=(3, SPEC.input_dim)), rng.integers(0, 3, size=3)
    trace = keras_side.step_through(x, t.reshape(-1, 1).astype(np.float64), 0.1)
    keras_side.model.set_weights(numpy_to_keras(SPEC, start))
    params = {k: v.copy() for k, v in start.items()}
    for i in range(3):
        grads = book_record(params, x[i:i + 1], t[i:i + 1])[0]["grads"]
        params = {k: params[k] - 0.1 * grads[k] for k in params}
        for name in params:
            assert_close(trace.params_after[name][i], params[name], KERAS_AGAINST_BOOK)


def test_a_small_probe_loops_over_its_samples_and_gives_the_notebooks_eager_bits(keras_side):
    """Up to LOOP_LIMIT samples a convolution's probe is a compiled loop, each sample through the batch-gradient
    graph: the same bits as one eager GradientTape call per sample, and what the vectorized map gives within rounding."""
    from parity.keras_side import sample_loop

    rng = np.random.default_rng(8)
    x, t = rng.normal(size=(5, SPEC.input_dim)), rng.integers(0, 3, size=(5, 1)).astype(np.float64)
    looped = keras_side.per_sample(x, t)
    assert keras_side.vectorized_map_fallback.startswith("not used: 5 samples ran as a compiled loop")
    eager = keras_side.per_sample_eager(x, t)
    limit, sample_loop.LOOP_LIMIT = sample_loop.LOOP_LIMIT, 0
    try:
        vectorized = keras_side.per_sample(x, t)
    finally:
        sample_loop.LOOP_LIMIT = limit
    assert "vectorized_map" in keras_side.vectorized_map_fallback
    for name in ("pred", "loss", "dx"):
        np.testing.assert_array_equal(getattr(looped, name), getattr(eager, name), err_msg=name)
        assert_close(getattr(looped, name), getattr(vectorized, name), KERAS_AGAINST_BOOK)
    for name in SPEC.shapes():
        np.testing.assert_array_equal(looped.grads[name], eager.grads[name], err_msg=name)
        assert_close(looped.grads[name], vectorized.grads[name], KERAS_AGAINST_BOOK, err_msg=name)
    np.testing.assert_array_equal(looped.z[2], eager.z[2])
    np.testing.assert_array_equal(looped.maps[1], eager.maps[1])


def test_the_kernel_gradients_while_loop_inside_the_vectorized_map_is_said_not_logged(keras_side, caplog, monkeypatch):
    """TensorFlow's pfor has no vectorized Conv2DBackpropFilter for a per-sample input: it maps that one op with a
    while loop (and logs "Fix that!"); the rest stays vectorized, and the record says so. (A probe of more samples
    than LOOP_LIMIT: a small one loops over its samples instead.)"""
    from parity.keras_side import sample_loop
    from parity.keras_side.side import KerasSide

    monkeypatch.setattr(sample_loop, "LOOP_LIMIT", 0)
    fresh = KerasSide(keras_side.model, SPEC)
    fresh.per_sample(np.zeros((2, SPEC.input_dim)), np.zeros((2, 1)))
    assert fresh.vectorized_map_fallback == "Conv2DBackpropFilter mapped by a while loop inside tf.vectorized_map"
    assert not [r for r in caplog.records if "Fix that" in r.getMessage()]
