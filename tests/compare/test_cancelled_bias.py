"""A bias feeding a BatchNormalization in training mode has gradient 0 in exact arithmetic: under Adam each side
steps its own rounding. The mismatch is excused only by evidence (the same layers with Keras's bias after every
step match Keras on every step), and a real optimizer bug is still an error."""

import numpy as np
import pytest

import parity
from parity.book import optimizers as book_optimizers
from parity.compare.cancelled_bias import cancelled_biases
from parity.settings.scenarios import SCENARIOS
from parity.settings.spec import ModelSpec


@pytest.fixture(scope="module")
def adam_run():
    return parity.run(scenario="regularized", optimizer="adam", dtype="float32", plots=False)


def test_the_bias_before_each_batch_normalization_is_the_one_cancelled():
    s = SCENARIOS["regularized"]
    assert cancelled_biases(ModelSpec(2, s.layers, s.loss)) == ["b1"]


def test_the_reference_layers_pass_under_adam_with_the_cancelled_bias_named_and_its_unpinned_drift_beyond_tolerance(
        adam_run):
    assert adam_run.passed
    [found] = [f for f in adam_run.findings if f.code == "cancelled_bias"]
    assert found.severity == "warning" and found.param == "b1" and found.details["pinned"] == ["b1"]
    # Without the pin the two sides' b1 went further apart than float32's tolerance: the pin is what passes it.
    assert found.details["unpinned_max_abs_diff"]["b1"] > 1e-5
    # Pinned, b1 after each step is Keras's (the run compared), and every step passes.
    assert np.all(adam_run.result.stepping.verdicts == "pass")


class ClimbingAdam(book_optimizers.Adam):
    """Adam that adds its step: a real bug, which no pin explains."""

    def update(self, params, grads):
        before = {k: v.copy() for k, v in params.items()}
        super().update(params, grads)
        for k in params:
            params[k][...] = 2 * before[k] - params[k]


def test_an_optimizer_bug_is_still_an_error_and_nothing_is_pinned():
    report = parity.check({"Adam": ClimbingAdam}, scenario="regularized", optimizer="adam", dtype="float32",
                          plots=False)
    assert not report.passed
    assert not [f for f in report.findings if f.code == "cancelled_bias"]
    assert any(f.severity == "error" and f.layer == "Adam" for f in report.findings)
