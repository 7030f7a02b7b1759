"""Layer modules written the way learners write them, through `parity check`: no traceback, the right
exit status, and every error on the class at fault (issue 10's patterns, one fixture module each)."""

import json
import sys
from dataclasses import replace

import pytest

from parity import cli
from testkit import FIXTURES

CATEGORICAL = 'scenario = "softmax"\n\n[model]\nloss = "categorical_crossentropy"\n'

# (module, extra flags, exit status, codes of the errors that are no other's consequence, (class, method)
# every such error blames, text the root error or the one-line refusal must hold)
CASES = [
    ("learner_private_weights.py", [], 0, set(), None, ""),
    ("learner_params_grads.py", [], 0, set(), None, ""),
    ("learner_params_grads.py", ["--scenario", "softmax"], 0, set(), None, ""),
    ("learner_init_raises.py", [], 1, {"layer_error"}, ("Relu", "__init__"),
     "Relu.__init__ raised AttributeError: 'Relu' object has no attribute 'W'"),
    ("learner_relu_no_return.py", [], 1, {"layer_error"}, ("Relu", "backward"),
     "Relu.backward returned None: did you forget `return dx`?"),
    ("learner_forward_no_return.py", [], 1, {"layer_error"}, ("Affine", "forward"),
     "Affine.forward returned None: did you forget `return out`?"),
    ("learner_dw_typo.py", [], 1, {"layer_error"}, ("Affine", "backward"),
     "Affine.backward set `dw`; the harness reads `dW`"),
    ("learner_relu_flat_backward.py", [], 1, {"layer_error"}, ("Relu", "backward"),
     "Relu.backward returned shape (4,) where (2, 5) was expected"),
    ("learner_onehot_softmax.py", ["--config", "{categorical}"], 0, set(), None, ""),
    ("learner_onehot_softmax.py", ["--scenario", "softmax"], 1, {"label_form"}, ("SoftmaxWithLoss", None),
     "accepts one-hot labels (n, k) but not the integer labels (n,) this run's sparse_categorical_crossentropy feeds it"),
    ("learner_probs_in_p.py", ["--scenario", "softmax"], 0, set(), None, ""),
    ("learner_probs_in_p.py", ["--config", "{categorical}"], 0, set(), None, ""),
    ("learner_book_layout/common/layers.py", [], 0, set(), None, ""),
    # A chapter script that only imports its layers from the book's common/ checks nothing of its own (issue 24).
    ("learner_book_layout/ch05/layer_naive.py", [], 2, None, None,
     "defines none of the book's classes itself; it imports Affine (from common.layers), Relu (from common.layers)"),
    ("learner_sizes_affine.py", [], 2, None, None,
     "class Affine has __init__(self, input_size, output_size, weight_init_std=0.01): it takes sizes"),
    ("learner_stateless_loss.py", [], 2, None, None,
     "class MeanSquaredError has backward(self, y_pred, y_true): the harness calls backward(dout=1)"),
    ("learner_typos.py", [], 2, None, None,
     "class Affine has no backward method (rename `backword` to `backward`?); class Relu has no forward method "
     "(rename `foward` to `forward`?)"),
]


@pytest.fixture(scope="session")
def references():
    return {}


@pytest.fixture
def shared_keras(monkeypatch, references):
    """Keras fits once per configuration for the whole table: the reference does not depend on the layers."""
    from parity.keras_side import reference as runner

    real = runner.keras_reference

    def cached(prepared):
        key = replace(prepared.config, out=None)
        if key not in references:
            references[key] = real(prepared)
        return references[key]

    monkeypatch.setattr(runner, "keras_reference", cached)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name, module in list(sys.modules.items()):  # the book's `common` package, imported by one case
        if str(getattr(module, "__file__", None) or "").startswith(str(FIXTURES / "learner_book_layout")):
            del sys.modules[name]


@pytest.fixture(scope="session")
def categorical(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "categorical.toml"
    path.write_text(CATEGORICAL)
    return path


def case_id(case) -> str:
    module, flags = case[0].removesuffix(".py").replace("/", "."), case[1]
    return module + ("" if not flags else "-categorical" if "--config" in flags else f"-{flags[-1]}")


@pytest.mark.parametrize("module,flags,status,root_codes,blamed,text", CASES, ids=[case_id(c) for c in CASES])
def test_learner_module(module, flags, status, root_codes, blamed, text, shared_keras, categorical, tmp_path, capsys):
    out = tmp_path / "report"
    flags = [f.format(categorical=categorical) for f in flags]
    assert cli.main(["check", "--layers", str(FIXTURES / module), "--dtype", "float64", "--no-plots", "--quiet",
                     "--out", str(out), *flags]) == status
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if status == 2:
        assert err.startswith("error: ") and err.count("\n") == 1 and text in err
        assert not out.exists()
        return
    summary = json.loads((out / "summary.json").read_text())
    errors = [f for f in summary["findings"] if f["severity"] == "error"]
    roots = [f for f in errors if not f.get("consequence_of")]
    assert {f["code"] for f in roots} == root_codes, [f["message"] for f in roots]
    if blamed:
        assert all((f.get("layer"), f.get("method")) == blamed for f in roots)
        assert any(text in f["message"] for f in roots)
        assert all(f["layer"] == blamed[0] for f in errors if f.get("layer"))  # no other class is blamed
        assert all(isinstance(f.get("layer", ""), str) for f in summary["findings"])
    else:
        assert summary["verdict"] == "pass" and not errors
