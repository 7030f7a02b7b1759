"""A user's data (CSV) and saved Keras models: accepted when they fit, refused with the reason when not."""

import json
from pathlib import Path

import numpy as np
import pytest

from parity import cli
from parity.keras_side import backend
from parity.settings.config import ParityInputError, resolve
from parity.prepare import prepare
from parity import pipeline

import keras  # noqa: E402  (after keras_side chose the backend)


def csv(tmp_path: Path, text: str, name="data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def linear_csv(tmp_path: Path, rows=30) -> Path:
    x = np.linspace(-1, 1, rows)
    lines = ["x,y"] + [f"{float(a)!r},{float(-(0.5 * a + 2))!r}" for a in x]
    return csv(tmp_path, "\n".join(lines) + "\n")


def test_csv_data_run_the_seed_architecture(tmp_path):
    config = resolve({"data_path": linear_csv(tmp_path), "dtype": "float64", "epochs": 2})
    prepared = prepare(config)
    assert prepared.data.x.shape == (30, 1) and prepared.config.train == 24
    result = pipeline.check(None, config).result
    assert result.verdict == "pass" and result.probe.rows.size == 30


CSV_ERRORS = [
    ("", "is empty; expected a header row"),
    ("x,y\n", "has a header but no data rows"),
    ("x,y\n1,2\n3,4,5\n", "has ragged rows"),
    ("x,y\n1,2\nnan,4\n", "row 3, column 'x': expected a finite number (received: 'nan')"),
    ("x,y\n1,2\n2,inf\n", "row 3, column 'y': expected a finite number (received: 'inf')"),
    ("x,y\n1,2\n,4\n", "row 3, column 'x': expected a finite number (received: '')"),
    ("a,b\n1,2\n", "has no input (x) columns"),
    ("x,z\n1,2\n", "has no target (y) columns"),
]


@pytest.mark.parametrize("text,message", CSV_ERRORS, ids=[m[:30] for _, m in CSV_ERRORS])
def test_bad_csv_names_the_row_or_column(tmp_path, text, message):
    with pytest.raises(ParityInputError) as error:
        prepare(resolve({"data_path": csv(tmp_path, text)}))
    assert message in str(error.value)


def test_configured_columns_must_exist(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[data]\npath = "data.csv"\nx_columns = ["a"]\ny_columns = ["target"]\n')
    csv(tmp_path, "a,b\n1,2\n3,4\n")
    with pytest.raises(ParityInputError, match="has no column 'target'"):
        prepare(resolve({}, config))


def save(model, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    model.save(path)
    return path


def sequential():
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])


def functional():
    inputs = keras.Input((1,))
    h = keras.layers.Dense(4, activation="sigmoid")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(2, activation="relu")(h)))


@pytest.mark.parametrize("make", [sequential, functional])
def test_saved_dense_chain_round_trips_with_its_own_weights(tmp_path, make):
    backend.configure("float32", 3)
    model = make()
    path = save(model, tmp_path, "model.keras")
    config = resolve({"model_path": path, "dtype": "float64"})
    assert prepare(config).config.epochs == 0  # compared as saved
    result = pipeline.check(None, config).result
    assert result.verdict == "pass"
    for k, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(list(result.fitted.values())[k], w.astype(np.float64))
    assert [layer.units for layer in result.spec.layers] == [w.shape[-1] for w in model.get_weights()[1::2]]


def refused_models():
    inputs = keras.Input((1,))
    a, b = keras.layers.Dense(2)(inputs), keras.layers.Dense(2)(inputs)
    branch = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Add(name="merge")([a, b])))
    # A Dropout is mirrored (tests/keras_side/test_saved_regularized.py); one with a noise_shape is not.
    dropout = keras.Sequential([keras.Input((1,)), keras.layers.Dense(3),
                                keras.layers.Dropout(0.1, noise_shape=(1, 3), name="drop"), keras.layers.Dense(1)])
    batchnorm = keras.Sequential([keras.Input((1,)), keras.layers.BatchNormalization(name="bn"), keras.layers.Dense(1)])
    lam = keras.Sequential([keras.Input((1,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(1)])
    tanh = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="tanh", name="th"), keras.layers.Dense(1)])
    nobias = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, use_bias=False, name="nb"), keras.layers.Dense(1)])
    wide_in = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    wide_out = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2)])
    return [
        (branch, "layer 'merge' is a Add; only Dense layers"),
        (dropout, "noise_shape"),
        (batchnorm, "layer 'bn' (BatchNormalization) follows no Dense layer"),
        (lam, "could not be loaded with safe mode on"),
        (tanh, "layer 'th' has activation 'tanh'"),
        (nobias, "layer 'nb' has no bias"),
        (wide_in, "the model takes 3 inputs but the data have 1 input columns"),
        (wide_out, "the model outputs 2 values but the data have 1 target columns"),
    ]


def test_unsupported_or_misfit_models_exit_2_naming_the_layer(tmp_path, capsys):
    backend.configure("float32", 3)
    for k, (model, message) in enumerate(refused_models()):
        path = save(model, tmp_path, f"m{k}.keras")
        out = tmp_path / f"out{k}"
        assert cli.main(["run", "--model", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
        assert not out.exists()


def test_model_file_must_be_a_keras_file(tmp_path):
    with pytest.raises(ParityInputError, match="--model must be a .keras file"):
        prepare(resolve({"model_path": csv(tmp_path, "{}", "weights.json")}))
    with pytest.raises(ParityInputError, match="--model file not found"):
        prepare(resolve({"model_path": tmp_path / "missing.keras"}))


def test_resolved_configuration_is_written_into_the_report(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[train]\nepochs = 1\n[model]\nlayers = [{units = 3, activation = "relu"}, {units = 1}]\n')
    status = cli.main(["run", "--config", str(config), "--dtype", "float64", "--no-plots", "--quiet",
                       "--out", str(tmp_path / "r")])
    assert status == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["config"]["epochs"] == 1 and summary["config"]["dtype"] == "float64"
    assert summary["config"]["layers"] == [{"units": 3, "activation": "relu"}, {"units": 1, "activation": "linear"}]
    assert summary["config"]["config_path"] == str(config)
