"""One experiment in both dtypes, and a default run that shows the lesson: a dead ReLU zeroes dW for that sample, not W."""

import numpy as np
import pytest

import parity
from parity.settings.config import RunConfig, resolve
from parity.prepare import prepare
from testkit import FIT_FLOAT32_AGAINST_FLOAT64, assert_close


def test_float32_and_float64_runs_of_one_seed_start_from_the_same_weights():
    start = {dtype: parity.run(dtype=dtype, epochs=0, plots=False).result.fitted for dtype in ("float32", "float64")}
    assert start["float32"]["W1"].dtype == np.float32 and start["float64"]["W1"].dtype == np.float64
    for name, w64 in start["float64"].items():
        np.testing.assert_array_equal(start["float32"][name], w64.astype(np.float32), err_msg=name)
    assert np.abs(start["float64"]["W1"]).min() > 0.05  # Glorot draws, not zeros: the comparison means something


def test_the_data_depend_on_the_data_seed_only():
    default = prepare(resolve({})).data
    assert RunConfig().data_seed == 1337 and default.x[0, 0] == pytest.approx(-0.70854271, abs=5e-9)
    for flags in ({"dtype": "float64"}, {"seed": 3}, {"seed": 3, "dtype": "float64"}):
        other = prepare(resolve(flags)).data
        np.testing.assert_array_equal(other.x, default.x)
        np.testing.assert_array_equal(other.y, default.y)
    assert not np.array_equal(prepare(resolve({"data_seed": 7})).data.x, default.x)


def test_the_fit_takes_the_same_path_in_both_dtypes(seed_run):
    """Shuffling and initialization do not depend on the dtype: after 320 SGD steps the fitted weights differ
    only by float32 rounding (a different shuffle order moves them by about 1e-2)."""
    w32, w64 = seed_run("float32").fitted, seed_run("float64").fitted
    for name in w64:
        assert_close(w32[name], w64[name], FIT_FLOAT32_AGAINST_FLOAT64, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_default_run_shows_each_unit_dead_on_some_samples_and_alive_on_others(seed_run, dtype):
    result = seed_run(dtype)
    assert result.config.seed == 44 and result.config.data_seed == 1337
    fractions = result.dead_units["fraction_dead"]
    assert set(fractions) == {"1.0", "1.1"}
    for unit, shares in fractions.items():
        for side in ("numpy", "keras"):
            assert 0 < shares[side] < 1, (unit, side, shares)
    x = result.data.x[:, 0]
    kinks = -result.fitted["b1"] / result.fitted["W1"][0]  # x* where w x + b = 0, one per unit
    assert ((x.min() < kinks) & (kinks < x.max())).all(), kinks
    for row in result.dead_relu_steps:  # and while stepping, each unit is dead on some steps, alive on the rest
        assert 0 < row["dead_steps"] < row["steps"], row
        assert row["dW_zero_when_dead"] == row["W_unchanged_when_dead"] == row["W_nonzero_when_dead"] == row["dead_steps"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_lesson_picture_shows_dW_exactly_0_on_every_dead_sample_while_W_is_not(seed_run, dtype):
    from parity.report.plot_lesson import lesson, lesson_data

    result = seed_run(dtype)
    units, total = lesson_data(result)
    assert total == 2 and [(u.layer, u.unit, u.phase) for u in units] == [(1, 0, "probe"), (1, 1, "probe")]
    order = np.argsort(result.data.x[:, 0], kind="stable")
    fig = lesson(result)
    for col, unit in enumerate(units):
        np.testing.assert_array_equal(unit.rows, order)  # every sample, sorted by x
        for side in ("numpy", "keras"):
            trace = getattr(result.probe, side)
            dead = trace.z[1][order, unit.unit] <= 0  # dead by the pre-activation, on that side
            np.testing.assert_array_equal(unit.dead[side], dead)
            assert 0 < dead.sum() < len(dead)
            np.testing.assert_array_equal(unit.dW[side][:, 0], trace.grads["W1"][order, 0, unit.unit])
            assert (unit.dW[side][dead] == 0).all()  # exactly 0, not merely small
            assert (unit.dW[side][~dead] != 0).all()
            np.testing.assert_array_equal(unit.W[side][:, 0], np.full(len(order), result.fitted["W1"][0, unit.unit]))
            assert (unit.W[side][dead] != 0).all()
        top, below = fig.axes[col], fig.axes[len(units) + col]
        drawn = {ax: {line.get_gid(): line.get_xydata() for line in ax.lines if line.get_gid()} for ax in (top, below)}
        np.testing.assert_array_equal(drawn[below]["keras"][:, 1], unit.dW["keras"][:, 0])
        np.testing.assert_array_equal(drawn[below]["numpy"][unit.dead["numpy"], 1], 0)
        assert (drawn[top]["keras"][unit.dead["keras"], 1] != 0).all()
        assert "leak" not in drawn[below]
    assert fig._suptitle.get_text().startswith("A dead ReLU zeroes dW for that sample, not W")
