"""One fix table, keyed by code and by what is at fault: each of issue 20's examples gets the fix for its own
class, in its own words (a forward in forward words, a loss value as a value), and the referee never calls a
forward that returns zeros a convention."""

from importlib import import_module

import numpy as np
import pytest

import parity
from parity.book import layers as ref
from parity.compare.layer_probes import probe_layers
from parity.diagnosis.fixes import FIXES, fix_for
from parity.diagnosis.mismatch import scale_cause
from parity.diagnosis.optimizer import CODES
from parity.diagnosis.referee import referee
from testkit import FIXTURES

KIT = {name: getattr(ref, name) for name in ref.__all__}


def fixture(name: str):
    return import_module(f"fixtures.{name}")


def test_a_code_alone_and_a_code_on_a_class_have_fixes_of_their_own():
    assert fix_for("batch_reduction", "SoftmaxWithLoss") != fix_for("batch_reduction", "Affine") != fix_for("batch_reduction")
    assert fix_for("sign_flip", "momentum", "optimizer") != fix_for("sign_flip", "Relu") == fix_for("sign_flip")
    assert fix_for("sign_flip", "adagrad", "optimizer") == FIXES[("sign_flip", "optimizer")]
    assert fix_for("no_such_code", "Affine") == ""


def test_every_code_the_optimizers_diagnosis_and_driver_can_give_has_an_optimizer_row():
    for code in [*CODES, "layer_error", "shape_mismatch", "input_mutation"]:
        assert (code, "optimizer") in FIXES, code


def test_a_softmax_normalized_over_the_whole_batch_is_fixed_in_its_softmax_not_in_affine():
    kit = {**KIT, "SoftmaxWithLoss": fixture("learner_softmax_whole_batch").SoftmaxWithLoss}
    errors = [f for f in probe_layers(kit, ["SoftmaxWithLoss"], "sparse_categorical_crossentropy")
              if f.severity == "error"]
    assert [(f.code, f.param) for f in errors] == [("batch_reduction", "loss"), ("batch_reduction", "dy")]
    for f in errors:
        assert f.layer == "SoftmaxWithLoss" and "matches Keras at batch size 1 but not at 4" in f.message
        assert "softmax" in f.fix and "axis=-1" in f.fix and "by the batch size exactly once" in f.fix
        assert "Affine" not in f.fix and "db" not in f.fix
    assert "backward" not in errors[0].message  # a loss value is not a backward's


def test_the_whole_run_of_that_softmax_sends_every_error_to_its_softmax():
    report = parity.check(str(FIXTURES / "learner_softmax_whole_batch.py"), scenario="softmax", plots=False)
    assert not report.passed and report.errors
    assert report.result.summaries["probe"].verdicts["fail"] == 0  # one sample at a time it is right
    for f in report.errors:
        assert "softmax" in f.fix and "Affine" not in f.fix, f
        assert f.layer == "SoftmaxWithLoss", f


class HalfLoss:
    """A MeanSquaredError whose loss value is a third of Keras's and whose backward is right."""

    def forward(self, y, t):
        self.y, self.t = y, t
        return np.mean((y - t) ** 2) / 3

    def backward(self, dout=1):
        return 2 * (self.y - self.t) / self.y.size


def test_a_loss_value_mismatch_is_said_as_a_value_and_fixed_in_the_loss():
    [error] = probe_layers({**KIT, "MeanSquaredError": HalfLoss}, ["MeanSquaredError"])
    assert error.code == "forward_mismatch" and error.param == "loss"
    assert error.message == "MeanSquaredError: loss at batch size 1: the loss differs from Keras's (ours = 0.333333 x Keras's)"
    assert error.fix == fix_for("forward_mismatch", "MeanSquaredError") and "no 1/2" in error.fix
    assert scale_cause(0.3, 1, "loss") == "a constant factor in this layer's loss"
    assert scale_cause(0.5, 1, "loss").startswith("a 1/2 in the loss")


def test_a_forward_that_returns_zeros_is_said_in_forward_words_and_never_called_a_convention():
    found = probe_layers({**KIT, "Relu": fixture("learner_relu_forward_zeros").Relu}, ["Relu"])
    forward, dx = [f for f in found if f.severity == "error"]
    assert forward.message == ("Relu: forward at batch size 2: the output differs from Keras's (the output is 0 at 4 "
                               "entries where Keras's is not)")
    assert "gradient" not in forward.message and forward.fix == fix_for("forward_mismatch", "Relu")
    assert dx.code == "mask_mismatch" and "convention" not in dx.message
    assert dx.message.endswith("it returns a constant, such as all zeros), so they cannot judge your backward; fix the "
                               "forward first")


def test_the_referee_calls_a_constant_forward_neither_a_convention_nor_a_wrong_backward():
    x = np.array([[-1.0, 0.5, 2.0]])
    theirs, ours = np.where(x > 0, 1.0, 0.0), np.zeros_like(x)  # Keras's dx, and a dx from a forward of zeros
    verdict = referee(lambda: float(np.sum(np.zeros_like(x))), x, ours, theirs, ours != theirs)
    assert verdict.startswith("central differences of your forward are 0 there") and "convention" not in verdict


def test_an_import_errors_location_is_said_once():
    with pytest.raises(parity.ParityInputError) as info:
        parity.check(str(FIXTURES / "syntax_error.py"))
    message = str(info.value)
    assert message.count("syntax_error.py, line 2") == 1, message
    assert message.endswith("failed to import: SyntaxError: expected ':' (syntax_error.py, line 2)"), message
