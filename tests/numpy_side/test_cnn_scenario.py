"""Scenario cnn (the book's chapter 7): its data, the NumPy side computed whole-chunk against the layer objects, and
the whole check against Keras in both dtypes: every filter's dW and db, dx, the convolution's maps, the batch probe
and lock-step stepping."""

import numpy as np
import pytest

from parity.numpy_side.closed_form import per_sample_closed_form, steps_closed_form
from parity.numpy_side.network import build_network
from parity.settings.data import bars_data
from parity.settings.scenarios import SCENARIOS
from parity.settings.spec import ModelSpec
from parity.settings.tolerances import TOLERANCES
from testkit import REORDERED, assert_close

CNN = SCENARIOS["cnn"]
SPEC = ModelSpec(input_dim=144, layers=CNN.layers, loss=CNN.loss, input_shape=CNN.input_shape, features=CNN.features)


def weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(scale=0.3, size=shape) for name, shape in SPEC.shapes().items()}


def test_bars_are_four_orientations_seeded_and_continuous():
    data = bars_data(200, 160, 1337)
    assert data.x.shape == (200, 144) and data.y.shape == (200, 1)
    assert sorted(np.unique(data.y[:160])) == [0, 1, 2, 3]
    np.testing.assert_array_equal(data.x, bars_data(200, 160, 1337).x)
    images = data.x.reshape(200, 12, 12)
    bright = images > 0.5
    for n in range(200):
        rows, cols = np.nonzero(bright[n])
        label = data.y[n, 0]
        assert len(rows) >= 5
        if label == 0:
            assert len(set(rows)) == 1  # horizontal: one row
        elif label == 1:
            assert len(set(cols)) == 1  # vertical: one column
        else:
            assert len(set(rows - cols if label == 2 else rows + cols)) == 1  # a diagonal or the other
    windows = images.reshape(200, 6, 2, 6, 2).transpose(0, 1, 3, 2, 4).reshape(-1, 4)
    assert all(len(set(w)) == 4 for w in windows)  # no tie in any pooling window of the inputs


def test_the_chunk_at_once_record_equals_the_layer_objects_sample_by_sample_float64():
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(9, 144)), rng.integers(0, 4, size=9)
    ours = per_sample_closed_form(SPEC, weights(), x, t)
    objects = build_network(SPEC, weights()).per_sample(x, t, [2])
    for name in ("pred", "loss", "dx"):
        assert_close(getattr(ours, name), getattr(objects, name), REORDERED, err_msg=name)
    for name in SPEC.shapes():
        assert ours.grads[name].shape == (9, *SPEC.shapes()[name])
        assert_close(ours.grads[name], objects.grads[name], REORDERED, err_msg=name)
    assert_close(ours.z[2], objects.z[2], REORDERED)
    assert ours.maps[1].shape == (9, 6 * 8 * 8)
    assert_close(ours.maps[1], objects.maps[1], REORDERED)


def test_a_samples_numbers_do_not_depend_on_the_chunk_it_is_computed_in():
    rng = np.random.default_rng(2)
    x, t = rng.normal(size=(7, 144)), rng.integers(0, 4, size=7)
    whole = per_sample_closed_form(SPEC, weights(), x, t)
    parts = [per_sample_closed_form(SPEC, weights(), x[a:b], t[a:b]) for a, b in ((0, 3), (3, 7))]
    for name in SPEC.shapes():
        np.testing.assert_array_equal(whole.grads[name], np.concatenate([p.grads[name] for p in parts]))
    np.testing.assert_array_equal(whole.dx, np.concatenate([p.dx for p in parts]))


def test_stepping_without_layer_objects_equals_the_layer_objects_float64():
    rng = np.random.default_rng(3)
    x, t = rng.normal(size=(5, 144)), rng.integers(0, 4, size=5)
    ours = steps_closed_form(SPEC, weights(), x, t, 0.05)
    objects = build_network(SPEC, weights()).step_through(x, t, 0.05, [2])
    for name in SPEC.shapes():
        assert_close(ours.params_after[name], objects.params_after[name], REORDERED)
    assert_close(ours.maps[1], objects.maps[1], REORDERED)


@pytest.fixture(scope="module")
def runs(cached_run):
    cache = {}

    def get(dtype):
        if dtype not in cache:
            cache[dtype] = cached_run({"scenario": "cnn", "dtype": dtype})
        return cache[dtype]

    return get


def test_cnn_float64_every_difference_at_most_1e_12_on_every_filter(runs):
    result = runs("float64")
    assert result.verdict == "pass", result.findings
    diffs = result.max_abs_diff()
    assert all(v <= 1e-12 for v in diffs.values()), diffs
    assert any(v > 0 for v in diffs.values())  # the sides really are computed separately
    probe = result.probe
    assert probe.diffs["dW1"].numpy.shape == (200, 6, 1, 5, 5) and probe.diffs["db1"].numpy.shape == (200, 6)
    assert (np.abs(probe.diffs["dW1"].keras).reshape(200, 6, -1).max(axis=(0, 2)) > 0).all()  # every filter learns
    assert {"dW1", "db1", "dW2", "db2", "dW3", "db3", "dx", "z1", "z2", "pred", "loss"} <= set(probe.diffs)
    assert probe.diffs["dx"].numpy.shape == (200, 144)
    assert result.batch is not None and result.batch.verdicts.tolist() == ["pass"] * 16
    assert result.stepping.verdicts.tolist() == ["pass"] * 160


def test_cnn_float32_within_its_named_tolerance(runs):
    result = runs("float32")
    assert result.verdict == "pass", result.findings
    assert result.tolerance == TOLERANCES["float32"]
    assert max(result.tolerance_used().values()) <= 1.0


def test_cnn_keras_learned_the_bars_and_both_sides_predict_the_same_classes(runs):
    result = runs("float64")
    ours, theirs = result.probe.numpy.pred.argmax(1), result.probe.keras.pred.argmax(1)
    np.testing.assert_array_equal(ours, theirs)
    assert (theirs == result.data.y[:, 0]).mean() > 0.6


def test_the_bench_line_measures_the_cnn_probe_compiled_against_eager_per_sample_gradient_tape(monkeypatch):
    """Its 20,000 samples run vectorized; 400 would loop over the samples (parity.keras_side.sample_loop), unless the
    loop's limit is below them."""
    from parity.keras_side import sample_loop
    from parity.selfcheck.bench_cnn import CNN_FLOOR, cnn_probe

    monkeypatch.setattr(sample_loop, "LOOP_LIMIT", 0)
    record = cnn_probe(samples=400, eager_samples=8)
    assert record["samples"] == 400 and record["eager_samples"] == 8 and CNN_FLOOR == 100
    assert record["samples_per_s"] > record["eager_samples_per_s"] > 0  # the floor itself is parity bench's to judge
    assert "Conv2DBackpropFilter" in record["vectorized_map_fallback"]
