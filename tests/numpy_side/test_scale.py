"""Scale: the fast paths equal the slow ones, chunking changes nothing, the fallback detector fires."""

import json

import numpy as np
import pandas as pd
import pytest

from parity.keras_side import side as keras_side  # TensorFlow backend first
from parity.settings.config import resolve
from parity.prepare import prepare
from parity.numpy_side.closed_form import per_sample_closed_form, steps_closed_form
from parity.numpy_side.network import build_network
from parity.settings.spec import DenseSpec, ModelSpec
from parity.book.layers import Relu
from parity.report.summary_json import summary
from parity.compare.run import compare_numpy
from parity.keras_side.reference import keras_reference

import tensorflow as tf  # noqa: E402
from testkit import CSV_ROUND_TRIP, REORDERED_ABSOLUTE, Tol, assert_close

NETS = [
    ModelSpec(1, (DenseSpec(2, "relu"), DenseSpec(1))),
    ModelSpec(3, (DenseSpec(5, "sigmoid"), DenseSpec(4, "relu"), DenseSpec(2))),
    ModelSpec(2, (DenseSpec(6, "relu"), DenseSpec(6, "relu"), DenseSpec(6, "sigmoid"), DenseSpec(1))),
    ModelSpec(4, (DenseSpec(7, "relu"), DenseSpec(3, "softmax")), loss="sparse_categorical_crossentropy"),
    ModelSpec(2, (DenseSpec(3, "sigmoid"), DenseSpec(4, "softmax")), loss="categorical_crossentropy"),
]


def random_case(spec: ModelSpec, seed: int, n: int = 64):
    rng = np.random.default_rng(seed)
    weights = {k: rng.normal(size=shape) for k, shape in spec.shapes().items()}
    x = rng.normal(size=(n, spec.input_dim))
    if spec.loss == "sparse_categorical_crossentropy":
        t = rng.integers(0, spec.output_dim, size=n)
    elif spec.loss == "categorical_crossentropy":
        t = np.eye(spec.output_dim)[rng.integers(0, spec.output_dim, size=n)]
    else:
        t = rng.normal(size=(n, spec.output_dim))
    return weights, x, t


def assert_traces_equal(a, b, tol: Tol = REORDERED_ABSOLUTE):
    for name in ("pred", "loss", "dx"):
        assert_close(getattr(a, name), getattr(b, name), tol, err_msg=name)
    for k in b.grads:
        assert_close(a.grads[k], b.grads[k], tol, err_msg=k)
    for k in b.z:
        assert_close(a.z[k], b.z[k], tol, err_msg=f"z{k}")
    for k in b.params_after:
        assert_close(a.params_after[k], b.params_after[k], tol, err_msg=k)


@pytest.mark.parametrize("spec", NETS, ids=lambda s: "-".join(f"{d.units}{d.activation[0]}" for d in s.layers))
@pytest.mark.parametrize("seed", [0, 1])
def test_vectorized_numpy_probe_equals_the_layer_objects_sample_by_sample(spec, seed):
    weights, x, t = random_case(spec, seed)
    hidden = [i for i, _ in spec.hidden()]
    fast = per_sample_closed_form(spec, weights, x, t)
    slow = build_network(spec, {k: v.copy() for k, v in weights.items()}).per_sample(x, t, hidden)
    assert_traces_equal(fast, slow)


@pytest.mark.parametrize("spec", NETS, ids=lambda s: "-".join(f"{d.units}{d.activation[0]}" for d in s.layers))
def test_closed_form_stepping_equals_the_layer_objects(spec):
    weights, x, t = random_case(spec, 3, n=40)
    hidden = [i for i, _ in spec.hidden()]
    fast = steps_closed_form(spec, weights, x, t, 0.05)
    slow = build_network(spec, {k: v.copy() for k, v in weights.items()}).step_through(x, t, 0.05, hidden)
    assert_traces_equal(fast, slow)


@pytest.mark.parametrize("spec", NETS, ids=lambda s: "-".join(f"{d.units}{d.activation[0]}" for d in s.layers))
def test_closed_form_rows_are_bitwise_the_same_whatever_the_chunk(spec):
    """BLAS rounds a row of `a @ W` by how many rows share the call; the probe must not depend on chunking."""
    weights, x, t = random_case(spec, 4, n=120)
    whole = per_sample_closed_form(spec, weights, x, t)
    parts = [per_sample_closed_form(spec, weights, x[i:i + 17], t[i:i + 17]) for i in range(0, 120, 17)]
    for name in ("pred", "loss", "dx"):
        np.testing.assert_array_equal(getattr(whole, name), np.concatenate([getattr(p, name) for p in parts]), name)
    for k in whole.z:
        np.testing.assert_array_equal(whole.z[k], np.concatenate([p.z[k] for p in parts]), f"z{k}")
    for k in whole.grads:
        np.testing.assert_array_equal(whole.grads[k], np.concatenate([p.grads[k] for p in parts]), k)


@pytest.fixture(scope="module")
def prepared_reference():
    prepared = prepare(resolve({"dtype": "float64", "scenario": "deep", "samples": 120, "epochs": 2}))
    return prepared, keras_reference(prepared)


def test_compiled_keras_paths_equal_the_eager_ones(prepared_reference):
    prepared, reference = prepared_reference
    side, x, t = reference.side, reference.x, reference.t
    assert_traces_equal(side.per_sample(x, t), side.per_sample_eager(x, t))
    fitted = list(reference.fitted.values())
    side.model.set_weights(fitted)
    compiled = side.step_through(x[:50], t[:50], 0.01)
    side.model.set_weights(fitted)
    eager = side.step_through(x[:50], t[:50], 0.01, compiled=False)
    side.model.set_weights(fitted)
    assert_traces_equal(compiled, eager)
    assert not np.array_equal(compiled.params_after["W1"][-1], fitted[0])  # it did step
    assert side.vectorized_map_fallback is None


class ReluNaNOnLargeInputs(Relu):
    """Backward goes NaN on samples whose first pre-activation exceeds 0.8: some chunks have NaN, some not."""

    def __init__(self):
        super().__init__()
        self.x = None

    def forward(self, x):
        self.x = x
        return super().forward(x)

    def backward(self, dout):
        return super().backward(dout) * np.where(self.x[:, :1] > 0.8, np.nan, 1.0)


@pytest.mark.parametrize("kit", [None, "mask", "nan"])
def test_chunked_and_unchunked_runs_give_identical_summaries(prepared_reference, kit):
    """Two ReLU layers, a wide kink band (atol 0.3: many ledger rows), NaN in some chunks only."""
    from dataclasses import replace

    from parity.selfcheck.selftest import ReluWithoutMask

    prepared, reference = prepared_reference
    prepared = replace(prepared, config=replace(prepared.config, atol=0.3))
    kit = {None: None, "mask": {"Relu": ReluWithoutMask}, "nan": {"Relu": ReluNaNOnLargeInputs}}[kit]
    whole = compare_numpy(prepared, reference, kit)
    parts = []
    chunked = compare_numpy(prepared, reference, kit, chunk=17, on_chunk=parts.append)
    assert len(parts) == 8 and whole.probe is not None and chunked.probe is None
    assert whole.kinks and len(whole.kinks) <= 200
    assert json.dumps(summary(whole, []), sort_keys=True) == json.dumps(summary(chunked, []), sort_keys=True)


def test_vectorized_map_fallback_is_detected_and_reported(prepared_reference):
    _, reference = prepared_reference

    class Unvectorizable(keras_side.KerasSide):
        def _one(self, args):  # tf.unique has no vectorized (pfor) form: TensorFlow must fall back to a loop
            pred, loss, grads, dx, z = super()._one(args)
            return pred + 0 * tf.cast(tf.size(tf.unique(args[0])[0]), pred.dtype), loss, grads, dx, z

    side = Unvectorizable(reference.side.model, reference.side.spec)
    trace = side.per_sample(reference.x[:10], reference.t[:10])
    assert side.vectorized_map_fallback and "Unique" in side.vectorized_map_fallback
    assert_traces_equal(trace, reference.side.per_sample(reference.x[:10], reference.t[:10]))


def test_parquet_tables_hold_the_csv_columns(tmp_path):
    from parity import cli

    for fmt in ("csv", "parquet"):
        assert cli.main(["run", "--dtype", "float64", "--epochs", "1", "--no-plots", "--quiet", "--format", fmt,
                         "--out", str(tmp_path / fmt)]) == 0
    for name in ("samples", "steps", "gradients"):
        csv = pd.read_csv(tmp_path / "csv" / f"{name}.csv")
        parquet = pd.read_parquet(tmp_path / "parquet" / f"{name}.parquet")
        assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet)
        assert_close(csv.select_dtypes("number").to_numpy(dtype=float),
                     parquet[csv.select_dtypes("number").columns].to_numpy(dtype=float), CSV_ROUND_TRIP)


def test_plots_aggregate_above_ten_thousand_samples_and_draw_each_sample_below():
    from parity.report.probe_curves import BINS, EXACT_LIMIT, ProbeCurves

    for samples in (EXACT_LIMIT, 30_000):
        prepared = prepare(resolve({"samples": samples, "train": 100, "epochs": 1, "dtype": "float64"}))
        curves = ProbeCurves(prepared.data, prepared.spec)
        result = compare_numpy(prepared, keras_reference(prepared), chunk=4096, on_chunk=curves.add)
        bins = curves.filled().sum()
        assert bins == (samples if samples <= EXACT_LIMIT else BINS)
        assert curves.count.sum() == samples and len(curves.points) <= 5000
        np.testing.assert_array_equal(curves.grad_max["dW1"][curves.filled()].max(), result.max_abs_diff()["probe.dW1"])
        dead = curves.dead[(1, "keras")][curves.filled()] / curves.count[curves.filled(), None]
        assert ((0 <= dead) & (dead <= 1)).all()
        fractions = result.dead_units["fraction_dead"]
        np.testing.assert_allclose(curves.dead[(1, "keras")].sum(axis=0) / samples,
                                   [fractions["1.0"]["keras"], fractions["1.1"]["keras"]])


def test_progress_is_silent_when_not_a_terminal(capsys):
    from parity import cli_commands

    items = iter(range(5))
    # in process, with stderr no terminal, no command draws: the same iterable comes back, nothing is written
    assert cli_commands.TERMINAL.progress is None
    assert cli_commands._submissions_bar(items, "grading", 5) is items
    assert capsys.readouterr().err == ""
