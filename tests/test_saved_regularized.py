"""`--model FILE.keras` with the book's chapter-6 layers: Dropout, BatchNormalization (its momentum, epsilon and
values taken from the file) and Activation/ReLU layers in a Dense chain are compared as saved, at float64's 1e-12;
what the NumPy side can't mirror is refused by name before any work (exit 2, one `error:` line, nothing written)."""

import json

import numpy as np
import pytest

from parity import cli
from parity.keras_side import backend

import keras  # noqa: E402  (after keras_side chose the backend)

L = keras.layers


def dense_model(*layers):
    return keras.Sequential([keras.Input((2,)), *layers])


def saved(model, tmp_path, name: str):
    path = tmp_path / name
    model.save(path)
    return path


@pytest.mark.parametrize("name, layers", [
    ("dropout", lambda: [L.Dense(8, activation="relu"), L.Dropout(0.3), L.Dense(3, activation="softmax")]),
    ("bn_dropout", lambda: [L.Dense(8), L.BatchNormalization(momentum=0.8, epsilon=1e-3, name="bn"), L.Activation("relu"),
                            L.Dropout(0.2),
                            L.Dense(3, activation="softmax")]),
])
def test_a_saved_regularized_chain_passes_at_float64(tmp_path, name, layers):
    backend.configure("float32", 3)
    model = dense_model(*layers())
    if name == "bn_dropout":  # values no initializer gives: they must come from the file
        bn = model.get_layer("bn")
        rng = np.random.default_rng(0)
        bn.set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(size=8), rng.normal(size=8), rng.uniform(0.5, 2.0, 8)])
    out = tmp_path / "out"
    code = cli.main(["run", "--model", str(saved(model, tmp_path, f"{name}.keras")), "--scenario", "softmax",
                     "--dtype", "float64", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0, [f["message"] for f in summary["findings"]]
    assert summary["verdict"] == "pass" and max(summary["max_abs_diff"].values()) <= 1e-12
    assert summary["modes"]["dropout_routes"] == {"layer 1": ["driven"]}
    layer = summary["model"]["layers"][0]
    assert layer["dropout"] == pytest.approx(0.3 if name == "dropout" else 0.2)
    if name == "bn_dropout":
        assert layer["batch_norm"] == {"momentum": pytest.approx(0.8), "epsilon": pytest.approx(1e-3)}
        assert summary["fitted_weights"]["running_var1"] == pytest.approx(model.get_layer("bn").get_weights()[3])
        assert "stepping.running_var1" in summary["max_abs_diff"]


def refused():
    return [
        (dense_model(L.Dense(8, activation="relu"), L.Dropout(0.3, noise_shape=(None, 1), name="d"), L.Dense(3)),
         "layer 'd' (Dropout) has noise_shape"),
        (dense_model(L.Dense(8), L.BatchNormalization(center=False, name="b"), L.Dense(3)),
         "layer 'b' (BatchNormalization) has center=False"),
        (dense_model(L.Dense(8), L.BatchNormalization(scale=False, name="b"), L.Dense(3)),
         "layer 'b' (BatchNormalization) has scale=False"),
        (dense_model(L.Dense(8, activation="relu"), L.BatchNormalization(name="b"), L.Dense(3)),
         "layer 'b' (BatchNormalization) comes after an activation"),
        (dense_model(L.Dense(8), L.ReLU(max_value=6.0, name="r"), L.Dense(3)), "layer 'r' (ReLU) has max_value=6.0"),
    ]


def test_what_the_numpy_side_cannot_mirror_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    backend.configure("float32", 3)
    for k, (model, message) in enumerate(refused()):
        path = saved(model, tmp_path, f"m{k}.keras")
        out = tmp_path / f"out{k}"
        assert cli.main(["run", "--model", str(path), "--scenario", "softmax", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
        assert not out.exists()


def test_transfer_maps_gamma_beta_and_moving_statistics_in_keras_order_and_counts_them():
    from parity.keras_side.model import build_model, initial_weights, weights_of
    from parity.keras_side.transfer import TransferError, keras_to_numpy, numpy_to_keras
    from parity.settings.regularization_spec import BatchNormSpec
    from parity.settings.spec import DenseSpec, ModelSpec

    backend.configure("float64", 3)
    spec = ModelSpec(2, (DenseSpec(4, "relu", BatchNormSpec(momentum=0.8, moving_variance=(1.0, 2.0, 3.0, 4.0)), 0.5),
                         DenseSpec(3, "softmax")), "sparse_categorical_crossentropy")
    model = build_model(spec)
    model.set_weights(initial_weights(spec, 3, "float64"))
    paths = [path for path, _ in weights_of(model)]
    assert paths[2:6] == ["batch_norm_1/gamma", "batch_norm_1/beta", "batch_norm_1/moving_mean",
                          "batch_norm_1/moving_variance"]
    book = keras_to_numpy(spec, weights_of(model), "float64")
    assert list(book) == spec.variables()
    np.testing.assert_array_equal(book["running_var1"], [1.0, 2.0, 3.0, 4.0])  # the spec's start, not Keras's ones
    np.testing.assert_array_equal(book["gamma1"], np.ones(4))
    for ours, theirs in zip(numpy_to_keras(spec, book), model.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(TransferError, match="has 7 weights, the NumPy stack expects 8 .* and 1 BatchNormalization"):
        keras_to_numpy(spec, weights_of(model)[:7], "float64")
