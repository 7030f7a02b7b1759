"""Every built-in scenario against Keras, in both dtypes, probe and stepping."""

import numpy as np
import pytest

from parity.settings.tolerances import TOLERANCES

SCENARIOS = ["sigmoid", "softmax", "deep"]


@pytest.fixture(scope="module")
def runs(cached_run):
    """Each scenario and dtype compared once; test_terminal's runs of them reuse their Keras sides."""
    cache = {}

    def get(scenario, dtype):
        if (scenario, dtype) not in cache:
            cache[scenario, dtype] = cached_run({"scenario": scenario, "dtype": dtype})
        return cache[scenario, dtype]

    return get


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_float64_every_difference_at_most_1e_12(runs, scenario):
    result = runs(scenario, "float64")
    assert result.verdict == "pass", result.findings
    diffs = result.max_abs_diff()
    assert all(v <= 1e-12 for v in diffs.values()), diffs
    assert any(v > 0 for v in diffs.values())  # the sides really are computed separately


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_float32_within_its_named_tolerance(runs, scenario):
    result = runs(scenario, "float32")
    assert result.verdict == "pass", result.findings
    assert result.tolerance == TOLERANCES["float32"]
    assert max(result.tolerance_used().values()) <= 1.0


def test_softmax_scenario_reports_classes_and_its_data_are_three_blobs(runs):
    result = runs("softmax", "float64")
    assert result.spec.loss == "sparse_categorical_crossentropy" and result.spec.output_dim == 3
    assert sorted(np.unique(result.data.y)) == [0, 1, 2] and result.data.x.shape == (300, 2)
    ours, theirs = result.probe.numpy.pred.argmax(1), result.probe.keras.pred.argmax(1)
    np.testing.assert_array_equal(ours, theirs)
    assert (theirs == result.data.y[:, 0]).mean() > 0.9  # the fit learned the blobs


def test_deep_scenario_has_two_relu_layers_with_masks_on_both_sides(runs):
    result = runs("deep", "float64")
    assert set(result.probe.dead_keras) == {1, 2}
    for layer in (1, 2):
        np.testing.assert_array_equal(result.probe.dead_numpy[layer], result.probe.dead_keras[layer])
    assert len(result.dead_units["fraction_dead"]) == 32


def test_sigmoid_scenario_reports_saturation_instead_of_dead_units(runs):
    result = runs("sigmoid", "float64")
    assert result.dead_units["fraction_dead"] == {}
    assert set(result.saturated_units) == {"1.0", "1.1"}
    assert not result.probe.dead_keras


def test_a_pre_activation_exactly_at_the_kink_is_ledgered_with_its_float64_shadow(tmp_path):
    """Unit 1.0's kink x* = -b/w = -0.5 is a data point: z is exactly 0 there, a warning and not a failure."""
    import json

    import keras

    from parity import cli
    from parity.keras_side import backend

    backend.configure("float32", 1)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="relu"), keras.layers.Dense(1)])
    model.set_weights([np.array([[1.0, -1.0]]), np.array([0.5, 0.25]), np.array([[1.0], [2.0]]), np.array([0.0])])
    path = tmp_path / "kinked.keras"
    model.save(path)
    out = tmp_path / "r"
    # linspace(-1, 1, 5) is exactly [-1, -0.5, 0, 0.5, 1]
    assert cli.main(["run", "--model", str(path), "--samples", "5", "--train", "4", "--no-plots", "--quiet",
                     "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ledger = [k for k in summary["kinks"] if k["phase"] == "probe"]
    assert ledger and all(k["unit"] == "1.0" and k["z_float64"] == 0.0 and k["z_keras"] == 0.0 for k in ledger)
    import pandas as pd

    samples = pd.read_csv(out / "samples.csv")
    kinked = samples[samples["kink"]]
    assert list(kinked["x"]) == [-0.5] and kinked["dead1_0_keras"].all()
    assert any(f["code"] == "kink" and f["severity"] == "warning" for f in summary["findings"])
