"""The layer stack: per-sample records, stepping, and the spec's bookkeeping."""

from importlib import import_module

import numpy as np
import pytest

from parity.numpy_side.closed_form import per_sample_closed_form, steps_closed_form
from parity.book.layers import Affine as ReferenceAffine
from parity.book.layers import Relu
from parity.numpy_side.network import build_network
from parity.settings.spec import DenseSpec, ModelSpec
from testkit import HAND_COMPUTED, REORDERED_ABSOLUTE, assert_close

SPEC = ModelSpec(input_dim=1, layers=(DenseSpec(2, "relu"), DenseSpec(1)))
WEIGHTS = {"W1": np.array([[1.0, -1.0]]), "b1": np.array([0.0, 0.5]),
           "W2": np.array([[2.0], [3.0]]), "b2": np.array([0.25])}


def test_per_sample_gradients_by_hand():
    net = build_network(SPEC, {k: v.copy() for k, v in WEIGHTS.items()})
    x, t = np.array([[1.0], [-1.0]]), np.array([[0.0], [0.0]])
    trace = net.per_sample(x, t, [1])
    # sample 0: z = [1, -0.5] -> h = [1, 0], y = 2.25, dL/dy = 4.5; unit 1 dead
    # sample 1: z = [-1, 1.5] -> h = [0, 1.5], y = 4.75, dL/dy = 9.5; unit 0 dead
    np.testing.assert_array_equal(trace.pred, [[2.25], [4.75]])
    np.testing.assert_array_equal(trace.loss, [2.25 ** 2, 4.75 ** 2])
    np.testing.assert_array_equal(trace.z[1], [[1.0, -0.5], [-1.0, 1.5]])
    np.testing.assert_array_equal(trace.grads["W2"], [[[4.5], [0.0]], [[0.0], [9.5 * 1.5]]])
    np.testing.assert_array_equal(trace.grads["W1"], [[[9.0, 0.0]], [[0.0, -1.0 * 9.5 * 3.0]]])
    np.testing.assert_array_equal(trace.grads["b1"], [[9.0, 0.0], [0.0, 28.5]])
    np.testing.assert_array_equal(trace.dx, [[9.0], [-28.5]])


def test_stepping_updates_with_plain_sgd_and_a_dead_unit_keeps_its_weights():
    net = build_network(SPEC, {k: v.copy() for k, v in WEIGHTS.items()})
    trace = net.step_through(np.array([[1.0]]), np.array([[0.0]]), 0.1, [1])
    assert_close(trace.params_after["W1"][0], [[1.0 - 0.9, -1.0]], HAND_COMPUTED)
    np.testing.assert_array_equal(trace.params_after["b1"][0], [0.0 - 0.9, 0.5])  # unit 1 dead: unchanged
    np.testing.assert_array_equal(trace.params_after["W2"][0], [[2.0 - 0.45], [3.0]])


def test_spec_shapes_follow_keras_kernel_orientation():
    spec = ModelSpec(input_dim=3, layers=(DenseSpec(4, "relu"), DenseSpec(2, "sigmoid"), DenseSpec(1)))
    assert spec.shapes() == {"W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,), "W3": (2, 1), "b3": (1,)}
    assert [i for i, _ in spec.hidden()] == [1, 2]


# User classes: every call guarded, parameters tracked by identity, the right class blamed.
RNG = np.random.default_rng(5)
X, T = RNG.normal(size=(12, 1)), RNG.normal(size=(12, 1))


def fixture(name: str):
    return import_module(f"fixtures.{name}")


def fresh(kit, spec=SPEC, weights=WEIGHTS):
    return build_network(spec, {k: v.copy() for k, v in weights.items()}, kit)


@pytest.mark.parametrize("module", ["learner_private_weights", "learner_params_grads"])
def test_sgd_steps_reach_an_affine_whatever_it_calls_its_weights(module):
    ours = fresh({"Affine": fixture(module).Affine}).step_through(X, T, 0.1, [1])
    reference = steps_closed_form(SPEC, WEIGHTS, X, T, 0.1)
    assert not ours.errors
    for k in WEIGHTS:
        assert_close(ours.params_after[k], reference.params_after[k], REORDERED_ABSOLUTE, err_msg=k)
    assert_close(ours.loss, reference.loss, REORDERED_ABSOLUTE)  # later steps saw the updates


def test_a_constructor_that_raises_fails_every_row_on_that_class_without_a_traceback():
    trace = fresh({"Relu": fixture("learner_init_raises").Relu}).per_sample(X, T, [1])
    assert [e.row for e in trace.errors] == list(range(len(X)))
    error = trace.errors[0]
    assert (error.book, error.layer, error.kind) == ("Relu", "Relu.__init__", "AttributeError")
    assert error.message == "raised AttributeError: 'Relu' object has no attribute 'W'"
    assert error.where.endswith("learner_init_raises.py:9")


@pytest.mark.parametrize("module,layer,message", [
    ("learner_relu_no_return", "Relu.backward", "returned None: did you forget `return dx`?"),
    ("learner_forward_no_return", "Affine.forward", "returned None: did you forget `return out`?"),
    ("learner_relu_flat_backward", "Relu.backward", "returned shape (1,) where (1, 2) was expected"),
    ("learner_dw_typo", "Affine.backward", "set `dw`; the harness reads `dW` (the book's name)"),
])
def test_a_bad_result_is_blamed_on_the_method_that_produced_it(module, layer, message):
    kit = {name: getattr(fixture(module), name) for name in ("Affine", "Relu") if hasattr(fixture(module), name)}
    x = np.array([[1.0], [-1.0], [2.0]])  # sample 0 keeps one unit alive: a flattened dout has one entry
    errors = fresh(kit).per_sample(x, np.zeros((3, 1)), [1]).errors
    assert errors and (errors[0].layer, errors[0].message) == (layer, message)
    assert errors[0].book == layer.split(".")[0]


class _NoArithmetic(np.ndarray):
    def __array_ufunc__(self, *args, **kwargs):
        raise TypeError("this array does no arithmetic")


class AffineOddArray(ReferenceAffine):
    def forward(self, x):
        return super().forward(x).view(_NoArithmetic)


def test_a_reference_layer_that_raises_on_a_user_layers_output_blames_the_user_layer():
    [error, *_] = fresh({"Affine": AffineOddArray}).per_sample(X[:1], T[:1], [1]).errors
    assert (error.book, error.layer) == ("Affine", "AffineOddArray.forward")
    assert error.message.startswith("returned what the reference Relu.forward then raised on (TypeError")


class AffineWritesIntoX(ReferenceAffine):
    def forward(self, x):
        out = super().forward(x)
        x[...] = 0.0  # a learner's in-place edit of its input
        return out


def test_a_layer_writing_into_its_input_does_not_change_the_shared_data():
    x = X.copy()
    fresh({"Affine": AffineWritesIntoX}).per_sample(x, T, [1])
    np.testing.assert_array_equal(x, X)


SOFTMAX = ModelSpec(input_dim=2, layers=(DenseSpec(4, "relu"), DenseSpec(3, "softmax")), loss="categorical_crossentropy")


def test_predictions_come_from_the_attribute_holding_probabilities_not_from_y():
    """The learner keeps probabilities in .p and the one-hot labels in .y; the reference keeps .y as probabilities."""
    rng = np.random.default_rng(1)
    weights = {k: rng.normal(size=shape) for k, shape in SOFTMAX.shapes().items()}
    x, t = rng.normal(size=(20, 2)), np.eye(3)[rng.integers(0, 3, size=20)]
    ours = fresh({"SoftmaxWithLoss": fixture("learner_probs_in_p").SoftmaxWithLoss}, SOFTMAX, weights).per_sample(x, t, [1])
    reference = per_sample_closed_form(SOFTMAX, weights, x, t)
    assert not ours.errors
    assert_close(ours.pred, reference.pred, REORDERED_ABSOLUTE)
    assert_close(ours.loss, reference.loss, REORDERED_ABSOLUTE)


def test_reference_layers_are_not_wrapped_into_user_errors():
    assert not fresh({"Relu": Relu}).per_sample(X, T, [1]).errors  # the reference class, passed as a kit entry
