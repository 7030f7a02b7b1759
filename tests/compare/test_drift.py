"""Rounding that compounds over a float32 trajectory is told from a bug by evidence (parity.compare.resync.settle_drift):
the failing step is stepped again from Keras's own parameters and optimizer state before it, and only if it then
agrees is it drift.

The run: `parity run --scenario cnn --optimizer momentum --dtype float32 --seed 0`. A convolution's sums of 64
positions in another order than TensorFlow's, and a velocity that keeps every step's difference, move the two
trajectories apart until step 154's gradients differ by 2-3 times the tolerance (by the CPU's float32 kernels); every
step agrees from Keras's state."""

import re

import numpy as np
import pytest

import parity
from testkit import FIXTURES

RUN = {"scenario": "cnn", "optimizer": "momentum", "dtype": "float32", "seed": 0, "plots": False}


class Momentum:
    """The book's Momentum, less one line of state: every 128 updates it starts its velocity again from zero, a
    learner's reset that only shows from update 128 on."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v, self.count = lr, momentum, None, 0

    def update(self, params, grads):
        self.count += 1
        if self.v is None or self.count % 128 == 0:  # the bug: the book sets v once
            self.v = {key: np.zeros_like(val) for key, val in params.items()}
        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


@pytest.fixture(scope="module")
def reference_run():
    return parity.check(**RUN)


def test_float32_drift_of_a_cnn_with_momentum_is_a_warning_not_a_failure(reference_run):
    report = reference_run
    assert report.passed
    [drift] = [f for f in report.findings if f.code == "drift"]
    assert (drift.severity, drift.step) == ("warning", 154)
    # How far apart the sides are by then is float32 rounding on this CPU's kernels: db1 at 2.16 times the tolerance on
    # the Intel machine this was written on, 3.19 times on an AMD EPYC. Beyond the tolerance, by less than 10x, and
    # every step agrees from Keras's state.
    ratio = re.search(r"\(db1 at ([\d.]+) times the tolerance\)", drift.message)
    assert ratio and 1 < float(ratio.group(1)) < 10, drift.message
    assert "after step 153, step 154 agrees" in drift.message
    assert report.summary["rows"]["stepping"]["pass"] == 160


def test_a_momentum_that_resets_its_velocity_still_fails_where_it_does(reference_run):
    """From Keras's state before step 127 (its 128th update) the reset still differs: no drift is claimed."""
    report = parity.check({"Momentum": Momentum}, **RUN)
    assert not report.passed
    assert not any(f.code == "drift" for f in report.findings)
    failing = [f for f in report.errors if f.phase == "stepping"]
    assert failing and min(f.step for f in failing) == 127
    assert report.summary["rows"]["stepping"]["pass"] == 127


def test_your_own_correct_convolution_layers_drift_as_the_books_do(reference_run):
    """A user's layers are restarted as they are, their own objects realigned in place with Keras's parameters and
    state (resync.Realigned): the book's conv layers as yours pass with drift named, as the reference does."""
    report = parity.check(str(FIXTURES / "book_conv_layers.py"), **RUN)
    assert report.passed
    assert [f.step for f in report.findings if f.code == "drift"] == [149]
    assert report.result.layers["Convolution"].startswith("yours")
