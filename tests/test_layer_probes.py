"""Each user class alone against Keras: the referee, guarded calls, label forms, the protocols learners use."""

from importlib import import_module

import numpy as np
import pytest

from parity import layers as ref
from parity.layer_probes import _referee, probe_layers
from parity.selftest import ReluWithoutMask


def fixture(name: str):
    return import_module(f"fixtures.{name}")

KIT = {name: getattr(ref, name) for name in ref.__all__}
X = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0], [1e-3, -1e-3, 3.0, -3.0, 0.0]])  # two exact kinks
DOUT = np.arange(1.0, 11.0).reshape(2, 5)


def relu_sum(x):
    return lambda: float(np.sum(np.maximum(x, 0) * DOUT))


def test_referee_judges_a_missing_mask_away_from_the_kinks_it_sits_beside():
    """dx = dout everywhere: wrong at the four dead entries, and 'wrong' at the two kinks too."""
    x = X.copy()
    theirs = np.where(X > 0, DOUT, 0.0)
    ours = DOUT.copy()
    bad = ours != theirs  # holds both kinks: they must not decide the verdict
    assert bad[X == 0].all() and bad[X < 0].all()
    assert _referee(relu_sum(x), x, ours, theirs, bad) == (
        "central differences of your forward agree with Keras: your backward is wrong")
    np.testing.assert_array_equal(x, X)  # restored after perturbing


def test_referee_at_the_kinks_alone_says_either_answer_may_hold():
    x = X.copy()
    theirs = np.where(X > 0, DOUT, 0.0)
    ours = np.where(X >= 0, DOUT, 0.0)  # passes gradient at exactly 0 only
    verdict = _referee(relu_sum(x), x, ours, theirs, ours != theirs)
    assert "a kink, where either answer may hold" in verdict


def codes(findings, severity="error"):
    return sorted(f["code"] for f in findings if f["severity"] == severity)


def test_a_missing_relu_mask_is_a_mask_mismatch_whose_backward_is_wrong():
    [error] = [f for f in probe_layers({**KIT, "Relu": ReluWithoutMask}, ["Relu"]) if f["severity"] == "error"]
    assert error["code"] == "mask_mismatch" and error["layer"] == "Relu"
    assert error["message"].endswith("your backward is wrong")


def test_returned_none_is_named_on_the_class_and_method_where_it_happens():
    [error] = probe_layers({**KIT, "Relu": fixture("learner_relu_no_return").Relu}, ["Relu"])
    assert (error["code"], error["layer"], error["method"]) == ("layer_error", "Relu", "backward")
    assert error["message"].startswith("Relu.backward returned None: did you forget `return dx`?")
    assert error["where"].endswith("learner_relu_no_return.py:16")


@pytest.mark.parametrize("module,message", [
    ("learner_dw_typo", "Affine.backward set `dw`; the harness reads `dW`"),
    ("learner_forward_no_return", "Affine.forward returned None: did you forget `return out`?"),
])
def test_affine_faults_are_layer_errors_on_affine(module, message):
    found = probe_layers({**KIT, "Affine": fixture(module).Affine}, ["Affine"])
    assert codes(found) == ["layer_error"] and found[0]["layer"] == "Affine"
    assert found[0]["message"].startswith(message)


@pytest.mark.parametrize("module", ["learner_private_weights", "learner_params_grads"])
def test_affine_parameters_under_other_names_or_in_params_lists_pass(module):
    assert codes(probe_layers({**KIT, "Affine": fixture(module).Affine}, ["Affine"])) == []


def test_a_one_hot_softmax_passes_with_one_hot_labels_and_says_it_takes_only_those():
    kit = {**KIT, "SoftmaxWithLoss": fixture("learner_onehot_softmax").SoftmaxWithLoss}
    found = probe_layers(kit, ["SoftmaxWithLoss"], loss="categorical_crossentropy")
    assert codes(found) == [] and codes(found, "warning") == ["convention"]
    [info] = [f for f in found if f["code"] == "label_form"]
    assert info["severity"] == "info" and info["message"] == "SoftmaxWithLoss: accepts one-hot labels (n, k) only"
    [error] = probe_layers(kit, ["SoftmaxWithLoss"], loss="sparse_categorical_crossentropy")
    assert (error["code"], error["severity"], error["layer"]) == ("label_form", "error", "SoftmaxWithLoss")
    assert "accepts one-hot labels (n, k) but not the integer labels (n,) this run's sparse_categorical" in error["message"]


def test_the_books_softmax_accepts_both_label_forms():
    found = probe_layers(KIT, ["SoftmaxWithLoss"], loss="sparse_categorical_crossentropy")
    assert codes(found) == []
    assert [f["message"] for f in found if f["code"] == "label_form"] == [
        "SoftmaxWithLoss: accepts integer labels (n,) and one-hot labels (n, k)"]
