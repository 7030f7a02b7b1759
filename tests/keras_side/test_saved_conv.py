"""`--model FILE.keras` with convolutions: chains of Conv2D, MaxPooling2D, ZeroPadding2D, Flatten, Dense and Activation
layers are rebuilt and compared as saved; anything the book's layers do not compute the same way is refused by name,
before any work, with one `error:` line (exit 2, nothing written)."""

import numpy as np
import pytest

from parity import cli, pipeline
from parity.keras_side import backend
from parity.keras_side.transfer import keras_to_numpy
from parity.settings.config import resolve

import keras  # noqa: E402  (after keras_side chose the backend)

L = keras.layers


def image_model(*layers, shape=(12, 12, 1)):
    return keras.Sequential([keras.Input(shape), *layers])


def saved(model, tmp_path, name: str):
    path = tmp_path / name
    model.save(path)
    return path


def test_a_saved_conv_chain_is_compared_as_saved_with_its_own_weights(tmp_path):
    backend.configure("float32", 3)
    model = image_model(L.Conv2D(6, 5, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                        L.Dense(16, activation="relu"), L.Dense(4, activation="softmax"))
    config = resolve({"model_path": saved(model, tmp_path, "cnn.keras"), "scenario": "cnn", "dtype": "float64"})
    result = pipeline.check(None, config).result
    assert result.verdict == "pass", result.findings
    assert result.spec.input_shape == (1, 12, 12) and len(result.spec.features) == 2 and result.config.epochs == 0
    weights = [(f"v{k}", w.astype(np.float64)) for k, w in enumerate(model.get_weights())]
    for name, value in keras_to_numpy(result.spec, weights, "float64").items():
        np.testing.assert_array_equal(result.fitted[name], value)  # the file's weights, in the book's layout


def test_same_padding_activation_layers_and_zero_padding_become_the_books_pad(tmp_path):
    backend.configure("float32", 3)
    model = image_model(L.Conv2D(3, 3, padding="same"), L.Activation("relu"), L.ZeroPadding2D(1),
                        L.MaxPooling2D(2, strides=2), L.Flatten(), L.Dense(4, activation="softmax"))
    config = resolve({"model_path": saved(model, tmp_path, "same.keras"), "scenario": "cnn", "dtype": "float64"})
    result = pipeline.check(None, config).result
    assert result.verdict == "pass", result.findings
    conv, pool = result.spec.features
    assert (conv.pad, conv.activation, pool.pad, pool.stride) == (1, "relu", 1, 2)


def refused():
    return [
        (image_model(L.Conv1D(4, 3, name="c1"), L.Flatten(), L.Dense(4), shape=(12, 1)), "layer 'c1' is a Conv1D"),
        (image_model(L.DepthwiseConv2D(3, name="dw"), L.Flatten(), L.Dense(4)), "layer 'dw' is a DepthwiseConv2D"),
        (image_model(L.Conv2D(4, 3, dilation_rate=2, name="dil"), L.Flatten(), L.Dense(4)),
         "layer 'dil' (Conv2D) has dilation_rate (2, 2)"),
        (image_model(L.Conv2D(4, 3, groups=2, name="grp"), L.Flatten(), L.Dense(4), shape=(12, 12, 2)),
         "layer 'grp' (Conv2D) has groups=2"),
        (image_model(L.Conv2D(4, 3, strides=2, name="rem"), L.Flatten(), L.Dense(4)),
         "layer 'rem' (Conv2D) has strides 2 that leave a remainder on its 12x12 input"),
        (image_model(L.Conv2D(4, 2, padding="same", name="es"), L.Flatten(), L.Dense(4)),
         "layer 'es' (Conv2D) has padding 'same' with kernel (2, 2)"),
        (image_model(L.Conv2D(4, 3, strides=(1, 2), name="uneven"), L.Flatten(), L.Dense(4)),
         "layer 'uneven' (Conv2D) has strides (1, 2); the book's layers take one strides for both axes"),
        (image_model(L.Conv2D(4, 3), L.MaxPooling2D(2, padding="same", name="ps"), L.Flatten(), L.Dense(4)),
         "layer 'ps' (MaxPooling2D) has padding 'same'"),
        (image_model(L.Conv2D(4, 3, name="c"), L.Dense(4, name="d")), "layer 'd' (Dense) reads an image map"),
    ]


def test_what_the_books_layers_do_not_compute_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    backend.configure("float32", 3)
    for k, (model, message) in enumerate(refused()):
        path = saved(model, tmp_path, f"m{k}.keras")
        out = tmp_path / f"out{k}"
        assert cli.main(["run", "--model", str(path), "--scenario", "cnn", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
        assert not out.exists()


@pytest.mark.parametrize("kernel,stride,pad", [(3, 1, 1), (5, 1, 2)])
def test_keras_same_with_an_odd_kernel_at_stride_1_is_the_books_pad_k_minus_1_over_2(tmp_path, kernel, stride, pad):
    from parity.keras_side.saved_model import load_chain

    backend.configure("float32", 3)
    model = image_model(L.Conv2D(2, kernel, padding="same"), L.Flatten(), L.Dense(4))
    _, _, _, shape, features = load_chain(saved(model, tmp_path, f"s{kernel}.keras"))
    assert shape == (1, 12, 12) and (features[0].pad, features[0].stride) == (pad, stride)
