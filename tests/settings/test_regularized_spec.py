"""The architecture with the book's chapter-6 layers: names, order, classes and the protocol's train flag."""

import numpy as np
import pytest

from parity.errors import ParityInputError
from parity.numpy_side.network import build_network
from parity.settings.regularization_spec import BatchNormSpec
from parity.settings.spec import DenseSpec, ModelSpec
from parity.user_code.protocol import kit_from_namespace

from testkit import SOFTMAX_WRITTEN_OUT, assert_close

SPEC = ModelSpec(2, (DenseSpec(8, "relu", BatchNormSpec(), 0.5), DenseSpec(3, "softmax")),
                 "sparse_categorical_crossentropy")


def test_parameters_follow_keras_order_with_the_books_names():
    assert list(SPEC.shapes()) == ["W1", "b1", "gamma1", "beta1", "W2", "b2"]
    assert SPEC.state_shapes() == {"running_mean1": (8,), "running_var1": (8,)}
    assert SPEC.variables() == ["W1", "b1", "gamma1", "beta1", "running_mean1", "running_var1", "W2", "b2"]
    assert {"Dropout", "BatchNormalization"} <= SPEC.classes() and SPEC.regularized


def test_plain_architecture_is_unchanged():
    plain = ModelSpec(2, (DenseSpec(8, "relu"), DenseSpec(3, "softmax")), "sparse_categorical_crossentropy")
    assert plain.variables() == list(plain.shapes()) == ["W1", "b1", "W2", "b2"]
    assert not plain.regularized and "Dropout" not in plain.classes()


@pytest.mark.parametrize("layer, said", [
    (DenseSpec(8, "relu", dropout=1.0), "Dropout rate must be in [0, 1)"),
    (DenseSpec(8, "relu", BatchNormSpec(momentum=1.5)), "0 <= momentum <= 1"),
    (DenseSpec(8, "relu", BatchNormSpec(gamma=(1.0,))), "gamma has 1 values"),
])
def test_unmirrorable_options_are_named(layer, said):
    problems = ModelSpec(2, (layer, DenseSpec(3, "softmax")), "sparse_categorical_crossentropy").problems()
    assert len(problems) == 1 and said in problems[0]


def test_regularization_on_the_output_layer_is_refused():
    spec = ModelSpec(2, (DenseSpec(3, "softmax", dropout=0.5),), "sparse_categorical_crossentropy")
    assert "output layer" in spec.problems()[0]


class NoFlagDropout:
    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


def test_a_dropout_without_train_flag_is_refused_naming_both_signatures():
    with pytest.raises(ParityInputError) as err:
        kit_from_namespace({"Dropout": NoFlagDropout}, "--layers x.py")
    text = str(err.value)
    assert "forward(self, x)" in text and "forward(x, train_flg=True)" in text and "\n" not in text


def _weights(rng):
    return {"W1": rng.normal(size=(2, 8)), "b1": np.zeros(8), "gamma1": np.ones(8), "beta1": np.zeros(8),
            "running_mean1": np.zeros(8), "running_var1": np.ones(8), "W2": rng.normal(size=(8, 3)), "b2": np.zeros(3)}


def test_stack_runs_test_mode_forward_only_and_train_mode_with_keras_masks():
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(20, 2)), rng.integers(0, 3, 20)
    net = build_network(SPEC, _weights(rng))
    probe = net.per_sample(x, t, [1])
    assert probe.grads == {} and probe.dx.shape == (20, 0) and probe.z[1].shape == (20, 8)
    masks = {1: rng.random((4, 5 * 8)) > 0.5}
    steps = build_network(SPEC, _weights(rng)).step_through(x, t, 0.1, [1], batch=5, masks=masks)
    assert steps.params_after["running_mean1"].shape == (4, 8) and not steps.errors
    assert not np.array_equal(steps.params_after["running_mean1"][0], steps.params_after["running_mean1"][1])


def test_a_wrapper_replaces_the_object_the_stack_uses():
    class Halved:
        def __init__(self, inner):
            self.inner = inner

        def forward(self, x, train_flg=True):
            return self.inner.forward(x, train_flg) * 0.5

        def backward(self, dout):
            return self.inner.backward(dout * 0.5)

    rng = np.random.default_rng(1)
    weights, x, t = _weights(rng), rng.normal(size=(3, 2)), rng.integers(0, 3, 3)
    plain = build_network(SPEC, weights).per_sample(x, t, [1])
    wrapped_net = build_network(SPEC, weights, wrappers={"Dropout": Halved})
    wrapped = wrapped_net.per_sample(x, t, [1])
    assert isinstance(wrapped_net.layers[3].obj, Halved)
    h = np.maximum(plain.z[1], 0)  # the Dropout's input; test mode: the identity, then halved
    assert_close(plain.pred, _softmax(h @ weights["W2"] + weights["b2"]), SOFTMAX_WRITTEN_OUT)
    assert_close(wrapped.pred, _softmax(0.5 * h @ weights["W2"] + weights["b2"]), SOFTMAX_WRITTEN_OUT)


def _softmax(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
