"""One sample on demand, as the seed notebook printed it: report.sample(i) and `parity run --sample N`."""

import contextlib
import io

import numpy as np
import pytest

import parity
from parity import cli
from parity.compare.phase_findings import one_line
from testkit import FIXTURES



def row(text: str, name: str) -> str:
    """The view's line for quantity `name` (dW1, z1, mask1, ...)."""
    return next(line for line in text.splitlines() if line.split()[:1] == [name])


@pytest.fixture(scope="module")
def passing():
    return parity.run(dtype="float64", plots=False)


def test_a_sample_shows_x_each_layers_w_z_and_mask_and_every_gradient_on_both_sides(passing):
    text = str(passing.sample(0))
    probe, data = passing.result.probe, passing.result.data
    assert text.splitlines()[0].startswith(f"sample 0 of 200 (train), alone through each side at the fitted weights: "
                                           f"x = {one_line(data.x[0])}, y = {one_line(data.y[0])}; verdict pass")
    assert [line.split()[0] for line in text.splitlines()[1:14]] == [
        "W1", "b1", "z1", "mask1", "W2", "b2", "pred", "loss", "dW1", "db1", "dW2", "db2", "dx"]
    assert one_line(passing.result.fitted["W1"]) in row(text, "W1")
    for name, ours, theirs in (("z1", probe.numpy.z[1], probe.keras.z[1]),
                               ("dW1", probe.numpy.grads["W1"], probe.keras.grads["W1"]),
                               ("db1", probe.numpy.grads["b1"], probe.keras.grads["b1"]),
                               ("dx", probe.numpy.dx, probe.keras.dx)):
        line = row(text, name)
        assert f"numpy {one_line(ours[0])} " in line and f"keras {one_line(theirs[0])} " in line, line
        assert line.endswith("agree"), line
    dead = probe.keras.z[1][0] <= 0  # sample 0: unit 1 dead, unit 0 alive
    assert dead.tolist() == [False, True]
    assert "numpy [False, True]" in row(text, "mask1") and "keras [False, True]" in row(text, "mask1")
    assert probe.keras.grads["W1"][0, 0, 1] == 0 and passing.result.fitted["W1"][0, 1] != 0
    assert text.splitlines()[-1] == (
        f"layer 1, unit 1 is dead here (z1 = {probe.keras.z[1][0, 1]:.6g} <= 0): dW1[:, 1] is exactly 0 on both sides, "
        f"while W1[:, 1] = {one_line(passing.result.fitted['W1'][:, 1])} is not 0: a dead ReLU zeroes dW for this "
        "sample, not W")


def test_a_missing_mask_shows_on_the_sample_as_dW_where_keras_has_exactly_0():
    report = parity.check(str(FIXTURES / "relu_without_mask.py"), dtype="float64", plots=False)
    probe = report.result.probe
    sample = int(np.flatnonzero(probe.dead_keras[1][:, 0])[0])  # unit 0 dead: Keras's dW1 column is 0, ours not
    text = str(report.sample(sample))
    assert "verdict fail" in text.splitlines()[0]
    assert " DIFFER by " in row(text, "dW1") and row(text, "z1").endswith("agree")
    assert ("dW1[:, 0] is exactly 0 on Keras's side but "
            f"{one_line(probe.numpy.grads['W1'][sample][:, 0])} on the NumPy side, which passed gradient there") in text


@pytest.mark.parametrize("given, message", [
    (200, r"sample= must be a sample's index, from 0 to 199 \(received: 200\)"),
    (-1, r"sample= must be a sample's index, from 0 to 199 \(received: -1\)"),
    ("3", r"sample= must be an integer, a sample's index \(received: '3'\)"),
    (True, r"sample= must be an integer"),
])
def test_a_sample_the_run_does_not_have_is_a_parity_input_error(passing, given, message):
    with pytest.raises(parity.ParityInputError, match=message):
        passing.sample(given)


def run_cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(list(args))
    return status, out.getvalue(), err.getvalue()


def test_run_with_sample_prints_the_view_before_the_summary(tmp_path, passing):
    status, out, err = run_cli("run", "--dtype", "float64", "--no-plots", "--sample", "0", "--out", str(tmp_path / "r"))
    assert status == 0 and err == ""
    view = str(passing.sample(0))
    assert out.startswith(view + "\n\nkeras-parity: scenario seed, float64")
    assert out.splitlines()[-1].startswith(f"report: {(tmp_path / 'r').absolute() / 'report.html'} ")


@pytest.mark.parametrize("args, message", [
    (["--sample", "200"], "error: --sample must be a sample's index, from 0 to 199 (received: 200)"),
    (["--sample", "x"], "error: --sample must be an integer, a sample's index (received: x)"),
    (["--samples", "300000", "--sample", "5"], "error: --sample needs the probe kept in memory, and a run of "
     "300,000 samples is probed in chunks: use fewer --samples (received: --sample 5)"),
])
def test_a_bad_sample_is_one_error_line_before_any_work_and_nothing_is_written(tmp_path, args, message):
    status, out, err = run_cli("run", *args, "--out", str(tmp_path / "r"))
    assert (status, out, err) == (2, "", message + "\n")
    assert not (tmp_path / "r").exists()
