"""A user's module is checked before any work: every class's problems at once, with the likely fix."""

import sys
import types
from importlib import import_module

import pytest

from parity.errors import ParityInputError
from parity.user_code.loader import load
from parity.user_code.protocol import kit_from_namespace
from testkit import FIXTURES

BOOK = FIXTURES / "learner_book_layout"


def refusal(namespace) -> str:
    with pytest.raises(ParityInputError) as caught:
        kit_from_namespace(namespace, "layers=")
    return str(caught.value)


def test_method_typos_name_every_affected_class_and_the_likely_name():
    message = refusal(vars(import_module("fixtures.learner_typos")))
    assert message == ("layers=: class Affine has no backward method (rename `backword` to `backward`?); "
                       "class Relu has no forward method (rename `foward` to `forward`?) "
                       "(the book's layers have forward and backward)")


def test_an_affine_that_takes_sizes_is_refused_with_the_signature_found_and_expected():
    message = refusal(vars(import_module("fixtures.learner_sizes_affine")))
    assert "class Affine has __init__(self, input_size, output_size, weight_init_std=0.01)" in message
    assert "the harness hands Affine the weights to use: Affine(W, b) with W (in, out) and b (out,)" in message


def test_a_stateless_loss_backward_is_refused_naming_the_call_the_harness_makes():
    message = refusal(vars(import_module("fixtures.learner_stateless_loss")))
    assert message.startswith("layers=: class MeanSquaredError has backward(self, y_pred, y_true): "
                              "the harness calls backward(dout=1) after forward(y, t)")


def test_a_dict_door_matches_names_case_insensitively_and_takes_what_the_book_takes():
    class ReLU:
        def forward(self, x):
            return x

        def backward(self, dout):
            return dout

    class MeanSquaredError:  # backward without dout: called as backward()
        def forward(self, y, t, *, reduce=True):
            return 0.0

        def backward(self):
            return 0.0

    kit, names = kit_from_namespace({"ReLU": ReLU, "MeanSquaredError": MeanSquaredError, "helper": len}, "layers=")
    assert kit == {"Relu": ReLU, "MeanSquaredError": MeanSquaredError} and names == ["Relu", "MeanSquaredError"]


def test_an_activation_that_needs_constructor_arguments_is_refused():
    class Sigmoid:
        def __init__(self, slope):
            self.slope = slope

        def forward(self, x):
            return x

        def backward(self, dout):
            return dout

    assert "class Sigmoid has __init__(self, slope): it cannot be called as the harness calls it: Sigmoid()" in \
        refusal({"Sigmoid": Sigmoid})


@pytest.fixture
def clean_imports(monkeypatch):
    """Imports made by a test (the book's `common` package) are forgotten after it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(BOOK)):
            del sys.modules[name]


def test_a_module_that_imports_its_own_package_is_imported_from_the_package_root(clean_imports):
    user = load(str(BOOK / "common" / "layers.py"))
    assert user.names == ("Affine", "Relu", "SoftmaxWithLoss")
    assert user.layers["Relu"].__module__ == "common.layers"


def test_a_chapter_script_beside_the_package_is_imported_with_the_package_root_on_the_path(clean_imports):
    # It imports (the package root is on the path), but the classes it imports are not its own: the refusal
    # names them and the file that defines them (issue 24: only the learner's own classes count).
    with pytest.raises(ParityInputError) as caught:
        load(str(BOOK / "ch05" / "layer_naive.py"))
    assert "it imports Affine (from common.layers), Relu (from common.layers)" in str(caught.value)
    assert str(caught.value).endswith(f"(give the file that defines them: {BOOK / 'common' / 'layers.py'})")
    assert sys.modules["common.layers"].__file__ == str(BOOK / "common" / "layers.py")


def test_when_the_package_name_is_taken_the_refusal_gives_the_command_and_folder(clean_imports, monkeypatch):
    monkeypatch.setitem(sys.modules, "common", types.ModuleType("common"))  # another project's `common`
    source = str(BOOK / "common" / "layers.py")
    with pytest.raises(ParityInputError) as caught:
        load(source)
    assert str(caught.value).endswith(f"; it imports its own package common: from {BOOK}, "
                                      "run `parity check --layers common.layers`")
