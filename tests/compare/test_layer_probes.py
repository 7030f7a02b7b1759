"""Each user class alone against Keras: the referee, guarded calls, label forms, the protocols learners use."""

from importlib import import_module

import numpy as np
import pytest

from parity.keras_side import layer_reference as keras_probes
from parity.book import layers as ref
from parity.compare.layer_probes import probe_layers
from parity.diagnosis.referee import referee as _referee
from parity.selfcheck.selftest import ReluWithoutMask


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
    return sorted(f.code for f in findings if f.severity == severity)


def test_a_missing_relu_mask_is_a_mask_mismatch_whose_backward_is_wrong():
    [error] = [f for f in probe_layers({**KIT, "Relu": ReluWithoutMask}, ["Relu"]) if f.severity == "error"]
    assert error.code == "mask_mismatch" and error.layer == "Relu"
    assert error.message.endswith("your backward is wrong")


class ReluPassingAtZero:
    """Right away from 0; at exactly 0 it passes gradient (mask = x < 0), where TensorFlow's ReLU passes none."""

    def forward(self, x):
        self.mask = x < 0
        return np.where(self.mask, 0, x)

    def backward(self, dout):
        return np.where(self.mask, 0, dout)


class ReluMaskKeptButUnused:
    """Keeps the book's mask (x <= 0), but its backward tests x >= 0 instead: wrong at exactly 0 only."""

    def forward(self, x):
        self.x, self.mask = x, x <= 0
        return np.where(self.mask, 0, x)

    def backward(self, dout):
        return dout * (self.x >= 0)


def test_a_missing_mask_gets_no_warning_to_use_the_mask_it_already_has():
    """Its kink entries are part of the mask bug, not a convention: no zero_convention advising mask = x <= 0."""
    findings = probe_layers({**KIT, "Relu": ReluWithoutMask}, ["Relu"])
    assert codes(findings, "warning") == [] and codes(findings) == ["mask_mismatch"]


def test_a_relu_that_passes_gradient_at_exactly_0_is_a_zero_convention_warning_with_the_default_fix():
    findings = probe_layers({**KIT, "Relu": ReluPassingAtZero}, ["Relu"])
    from parity.diagnosis.fixes import fix_for

    [warning] = [f for f in findings if f.severity == "warning"]
    assert codes(findings) == [] and warning.code == "zero_convention"
    assert warning.fix == fix_for("zero_convention", "Relu")  # the table's fix
    assert "already" not in warning.message


def test_a_relu_that_already_keeps_the_books_mask_is_told_to_apply_it_not_to_make_it():
    import parity

    findings = probe_layers({**KIT, "Relu": ReluMaskKeptButUnused}, ["Relu"])
    [warning] = [f for f in findings if f.severity == "warning"]
    assert warning.code == "zero_convention"
    assert warning.message.endswith("your mask is already x <= 0, so backward does not apply it there")
    assert warning.fix == "make backward zero dout through the mask forward kept: np.where(self.mask, 0, dout)"
    report = parity.check(Relu=ReluMaskKeptButUnused, plots=False)  # the pipeline keeps the class's own fix
    [kept] = [f for f in report.warnings if f.code == "zero_convention"]
    assert kept.fix == warning.fix and "mask = x <= 0" not in kept.fix


def test_returned_none_is_named_on_the_class_and_method_where_it_happens():
    [error] = probe_layers({**KIT, "Relu": fixture("learner_relu_no_return").Relu}, ["Relu"])
    assert (error.code, error.layer, error.method) == ("layer_error", "Relu", "backward")
    assert error.message.startswith("Relu.backward returned None: did you forget `return dx`?")
    assert error.where.endswith("learner_relu_no_return.py:16")


@pytest.mark.parametrize("module,message", [
    ("learner_dw_typo", "Affine.backward set `dw`; the harness reads `dW`"),
    ("learner_forward_no_return", "Affine.forward returned None: did you forget `return out`?"),
])
def test_affine_faults_are_layer_errors_on_affine(module, message):
    found = probe_layers({**KIT, "Affine": fixture(module).Affine}, ["Affine"])
    assert codes(found) == ["layer_error"] and found[0].layer == "Affine"
    assert found[0].message.startswith(message)


@pytest.mark.parametrize("module", ["learner_private_weights", "learner_params_grads"])
def test_affine_parameters_under_other_names_or_in_params_lists_pass(module):
    assert codes(probe_layers({**KIT, "Affine": fixture(module).Affine}, ["Affine"])) == []


def test_a_one_hot_softmax_passes_with_one_hot_labels_and_says_it_takes_only_those():
    kit = {**KIT, "SoftmaxWithLoss": fixture("learner_onehot_softmax").SoftmaxWithLoss}
    found = probe_layers(kit, ["SoftmaxWithLoss"], loss="categorical_crossentropy")
    assert codes(found) == [] and codes(found, "warning") == ["convention"]
    [info] = [f for f in found if f.code == "label_form"]
    assert info.severity == "info" and info.message == "SoftmaxWithLoss: accepts one-hot labels (n, k) only"
    [error] = probe_layers(kit, ["SoftmaxWithLoss"], loss="sparse_categorical_crossentropy")
    assert (error.code, error.severity, error.layer) == ("label_form", "error", "SoftmaxWithLoss")
    assert "accepts one-hot labels (n, k) but not the integer labels (n,) this run's sparse_categorical" in error.message


def test_the_books_softmax_accepts_both_label_forms():
    found = probe_layers(KIT, ["SoftmaxWithLoss"], loss="sparse_categorical_crossentropy")
    assert codes(found) == []
    assert [f.message for f in found if f.code == "label_form"] == [
        "SoftmaxWithLoss: accepts integer labels (n,) and one-hot labels (n, k)"]


# -- the Keras side, kept in the process ------------------------------------------------------------------

class BookRelu:
    """The book's ReLU, in place: backward writes into the dout it is given, forward into its x."""

    def forward(self, x):
        self.mask = x <= 0
        x[self.mask] = 0
        return x

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


CASES = {  # (kit, names given, the run's loss): passing, failing with the referee, failing early, conventions
    "reference": (KIT, list(ref.__all__), "sparse_categorical_crossentropy"),
    "no mask": ({**KIT, "Relu": ReluWithoutMask}, ["Relu", "Affine"], "mean_squared_error"),
    "dw typo": ({**KIT, "Affine": fixture("learner_dw_typo").Affine}, ["Affine", "Relu"], "mean_squared_error"),
    "one-hot": ({**KIT, "SoftmaxWithLoss": fixture("learner_onehot_softmax").SoftmaxWithLoss}, ["SoftmaxWithLoss"],
                "sparse_categorical_crossentropy"),
    "in place": ({**KIT, "Relu": BookRelu}, ["Relu"], "mean_squared_error"),
}


@pytest.fixture
def keras_refuses(monkeypatch):
    """From here on, asking Keras/TensorFlow for a probe's number fails the test: only kept results may be used."""

    class Refuse:
        def __getattr__(self, name):
            raise AssertionError(f"a probe asked TensorFlow again (tf.{name})")

    def enable():
        monkeypatch.setattr(keras_probes, "_backend", lambda: Refuse().tf)
        monkeypatch.setattr(keras_probes, "_autodiff", Refuse().__getattr__)
    return enable


@pytest.mark.parametrize("case", CASES)
def test_findings_from_kept_keras_results_equal_a_cold_run_and_ask_keras_nothing(case, keras_refuses):
    kit, names, loss = CASES[case]
    keras_probes.clear_cache()
    cold = probe_layers(kit, names, loss)
    assert keras_probes._CACHE  # something was kept
    keras_refuses()
    assert probe_layers(kit, names, loss) == cold
    # Each class draws its own inputs: given alone, or in another order, it finds what it found beside the others.
    for name in names:
        assert probe_layers(kit, [name], loss) == [f for f in cold if f.layer == name]


def test_a_class_that_writes_into_its_arrays_cannot_change_what_keras_said():
    keras_probes.clear_cache()
    clean = probe_layers(KIT, ["Relu"])
    assert codes(probe_layers({**KIT, "Relu": BookRelu}, ["Relu"]), "warning") == ["input_mutation"] * 2  # x, dout
    assert probe_layers(KIT, ["Relu"]) == clean == []  # the book's layer, after the in-place one, on kept results


def test_kept_keras_results_are_handed_out_as_copies():
    x, dout = X.copy(), DOUT.copy()
    out, dx = keras_probes.activation("Relu", x, dout)
    expected = (out.copy(), dx.copy())
    out[...], dx[...] = 7.0, 7.0
    again = keras_probes.activation("Relu", x, dout)
    np.testing.assert_array_equal(again[0], expected[0])
    np.testing.assert_array_equal(again[1], expected[1])
    np.testing.assert_array_equal(again[1], np.where(X > 0, DOUT, 0.0))  # TensorFlow's ReluGrad: no gradient at 0
