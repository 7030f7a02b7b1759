"""The cnn run's cost: the convolution's batch gradients traced give Keras's eager bits (in float32 a few ulps apart
on some CPUs), and `parity bench --only` measures one line alone and judges its floor."""

import json

import numpy as np
import pytest

from parity import cli
from parity.selfcheck import bench
from testkit import CPU_TRACED_FLOAT32_ULPS


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_convolutions_traced_batch_gradients_are_the_eager_ones(dtype):
    from parity.keras_side.backend import tensor
    from parity.keras_side.reference import reference_for
    from parity.prepare import prepare
    from parity.settings.config import resolve

    prepared = prepare(resolve({"scenario": "cnn", "dtype": dtype}))
    reference = reference_for(prepared)
    side, x, t = reference.side, reference.x[:160], reference.t[:160]
    from parity.keras_side.transfer import numpy_to_keras

    side.model.set_weights(numpy_to_keras(prepared.spec, reference.fitted))
    traced = side.per_batch(x, t, 10)
    eager = side._trace([side._probe(tensor(x[i:i + 10]), tensor(t[i:i + 10])) for i in range(0, 160, 10)],
                        with_z=False)
    # float64: the same bits. float32: the same bits on an Intel CPU, a few ulps apart on an AMD EPYC (testkit).
    def same(a, b, err_msg=""):
        if dtype == "float64":
            np.testing.assert_array_equal(a, b, err_msg=err_msg)
        else:
            atol = CPU_TRACED_FLOAT32_ULPS * np.spacing(np.abs(b).max())
            np.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=err_msg)
    for name in traced.grads:
        same(traced.grads[name], eager.grads[name], err_msg=name)
    for name in ("pred", "loss", "dx"):
        same(getattr(traced, name), getattr(eager, name), err_msg=name)
    same(traced.maps[1], eager.maps[1])
    np.testing.assert_array_equal(traced.grads["W1"], reference.batch.grads["W1"])  # what the run compared with


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_convolutions_compiled_steps_are_the_eager_ones_bit_for_bit(dtype):
    """The compiled loop takes each step's gradients from the traced batch-gradient graph: the same bits as the model's
    own eager call and Keras's optimizer, step by step (40 steps with momentum, so its state is checked too)."""
    from parity.keras_side.reference import reference_for
    from parity.keras_side.transfer import numpy_to_keras
    from parity.prepare import prepare
    from parity.settings.config import resolve
    from parity.settings.optimizer_registry import optimizer_settings

    prepared = prepare(resolve({"scenario": "cnn", "dtype": dtype}))
    reference = reference_for(prepared)
    side, x, t = reference.side, reference.x[:40], reference.t[:40]
    momentum = optimizer_settings("momentum")
    runs = []
    for compiled in (True, False):
        side.model.set_weights(numpy_to_keras(prepared.spec, reference.fitted))
        runs.append(side.step_through(x, t, momentum, compiled=compiled))
    side.model.set_weights(numpy_to_keras(prepared.spec, reference.fitted))
    traced, eager = runs
    for name in traced.grads:
        np.testing.assert_array_equal(traced.grads[name], eager.grads[name], err_msg=name)
        np.testing.assert_array_equal(traced.params_after[name], eager.params_after[name], err_msg=name)
        np.testing.assert_array_equal(traced.state_after["v"][name], eager.state_after["v"][name], err_msg=name)
    for name in ("pred", "loss", "dx"):
        np.testing.assert_array_equal(getattr(traced, name), getattr(eager, name), err_msg=name)
    assert set(traced.z) == set(eager.z) and set(traced.maps) == set(eager.maps) == {1}
    for k in traced.z:
        np.testing.assert_array_equal(traced.z[k], eager.z[k])
    np.testing.assert_array_equal(traced.maps[1], eager.maps[1])
    assert np.abs(traced.params_after["W1"][-1] - reference.fitted["W1"]).max() > 0  # it stepped


@pytest.mark.parametrize("beyond,met", [(2.4, True), (3.6, False)])
def test_bench_only_cnn_run_measures_that_line_alone_and_judges_its_floor(tmp_path, monkeypatch, capsys, beyond, met):
    line = {"cnn_run_s": 7.5 + beyond, "cnn_run_no_plots_s": 8.0, "bare_import_s": 9.0, "bare_import_exit_now_s": 7.5,
            "cnn_run_beyond_import_s": beyond, "cnn_run_no_plots_beyond_import_s": 0.5, "repeats": 3,
            "cnn_run_beyond_import_with_teardown_s": beyond - 1.5, "load_average_before": [1.0, 1.5, 2.0],
            "load_average_after": [1.2, 1.4, 1.9]}
    monkeypatch.setitem(bench.ALONE, "cnn_run", (lambda: line, *bench.ALONE["cnn_run"][1:]))
    code = cli.main(["bench", "--only", "cnn_run", "--out", str(tmp_path / "bench")])
    record = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert code == (0 if met else 1)
    assert record["floors"] == {"cnn_run_beyond_import_s": {"floor": 3.0, "measured": beyond, "met": met}}
    assert record["cnn_run"] == line and "probe" not in record
    out = capsys.readouterr().out
    assert "load average 1.00 / 1.50 / 2.00 before" in out and "cnn_run_beyond_import_s" in out
    assert (f"bare import ending at once as the run does 7.50 s (with its teardown 9.00 s, {beyond - 1.5:.2f} s beyond "
            "that); best of 3 each") in out


def test_bench_only_names_its_lines_when_given_another(tmp_path, capsys):
    assert cli.main(["bench", "--only", "probe", "--out", str(tmp_path / "bench")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "error: --only must be one of cnn_probe, cnn_run (received: --only probe)"
    assert not (tmp_path / "bench").exists()
