"""parity check and selftest: user layers are imported, compared, and every mismatch gets its cause."""

import contextlib
import io
import json

import numpy as np
import pytest

from parity import cli
from parity.diagnosis.mismatch import classify
from parity.selfcheck.planted_conv import PLANTED_CONV
from parity.selfcheck.planted_regularization import PLANTED_REGULARIZATION
from parity.selfcheck.selftest import CORRECT_OPTIMIZERS, PLANTED, PLANTED_OPTIMIZERS, run_selftest
from testkit import FIXTURES



@pytest.fixture(scope="module")
def selftest_command():
    """`parity selftest` once, in process: its exit status, what it printed, and the rows run_selftest gave it."""
    from parity.selfcheck import selftest

    rows = []

    def recorded(*args, **kwargs):
        rows.extend(run_selftest(*args, **kwargs))  # the real selftest: 34 checks against Keras
        return rows

    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(selftest, "run_selftest", recorded)
        status = cli.main(["selftest"])
    return status, printed.getvalue(), rows


@pytest.fixture(scope="module")
def selftest_rows(selftest_command):
    rows = selftest_command[2]
    assert rows, "parity selftest never called run_selftest"
    return rows


def test_selftest_catches_every_planted_bug_with_its_code(selftest_rows):
    assert len([c for c in PLANTED if c.expected]) >= 8
    for row in selftest_rows:
        assert row["caught"], row
    by_case = {r["case"]: r for r in selftest_rows}
    assert by_case["book's Relu (correct)"]["warnings"] == ["input_mutation"]
    assert by_case["reference layers (correct)"]["warnings"] == []
    assert by_case["parameters under other names (correct)"]["warnings"] == []
    assert by_case["returned None"]["errors"] == by_case["constructor raises"]["errors"] == ["layer_error"]
    planted = [by_case[f"optimizer: {c.name}"] for c in PLANTED_OPTIMIZERS]
    assert len(planted) >= 8 and all(r["verdict"] == "fail" and r["expected"] in r["errors"] for r in planted)
    assert by_case["optimizer: book's RMSprop (correct)"]["warnings"] == ["convention"]
    chapter_7 = [by_case[f"chapter 7: {name}"] for name, _, expected, _ in PLANTED_CONV if expected]
    assert len(chapter_7) >= 7 and all(r["verdict"] == "fail" and r["expected"] in r["errors"] for r in chapter_7)
    assert "convention" in by_case["chapter 7: 2016 printing's Pooling (correct)"]["warnings"]
    chapter_6 = [by_case[f"chapter 6: {name}"] for name, _, expected, _ in PLANTED_REGULARIZATION if expected]
    assert len(chapter_6) >= 13 and all(r["verdict"] == "fail" and r["errors"] == [r["expected"]] for r in chapter_6)
    assert by_case["chapter 6: book's Dropout (correct)"]["warnings"] == ["convention"]
    assert by_case["chapter 6: reference chapter-6 layers (correct)"]["warnings"] == []


def test_findings_cover_every_diagnosis_code(selftest_rows):
    seen = {code for r in selftest_rows for code in r["errors"] + r["warnings"]}
    assert {"forward_mismatch", "gradient_mismatch", "sign_flip", "scale_factor", "shape_mismatch", "mask_mismatch",
            "batch_reduction", "input_mutation", "layer_error", "nan"} <= seen
    # zero_convention no longer rides on the planted mask bugs (their kink entries are part of the bug):
    # tests/compare/test_layer_probes.py plants the Relus that earn it
    assert {"state_reset", "first_update_only", "bias_correction", "epsilon_placement", "hyperparameter", "no_update",
            "convention"} <= seen  # the optimizers' codes
    assert {"kernel_layout", "col2im_overwrite", "hw_swapped", "bias_missing", "pool_routing",
            "flatten_order"} <= seen  # the chapter-7 traps
    assert {"dropout_mask_returned", "dropout_no_mask", "dropout_backward_scale", "dropout_convention", "keep_rate",
            "bn_variance_term", "bn_unbiased_variance", "bn_running_stats", "bn_batch_sum", "bn_dx_summed",
            "bn_layout", "bn_epsilon_split"} <= seen  # the chapter-6 traps
    # kink is covered in test_compare, pool_tie in test_pool_ties, resync and unjudged in test_resync; convention below


def test_selftest_command_exits_0_and_prints_the_table(selftest_command):
    status, out, _ = selftest_command
    assert status == 0
    total = len(PLANTED) + len(PLANTED_CONV) + len(PLANTED_REGULARIZATION) + len(PLANTED_OPTIMIZERS) + \
        len(CORRECT_OPTIMIZERS)
    assert total == 61 and f"selftest: {total} of {total} planted cases caught with the right code" in out


def run_check(tmp_path, *args):
    out = tmp_path / "report"
    status = cli.main(["check", *args, "--no-plots", "--quiet", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else None
    return status, summary


def test_book_layers_pass_with_only_an_input_mutation_warning(tmp_path):
    status, summary = run_check(tmp_path, "--layers", str(FIXTURES / "book_layers.py"))
    assert status == 0 and summary["verdict"] == "pass"
    assert {f["code"] for f in summary["findings"] if f["severity"] != "info"} == {"input_mutation"}
    assert summary["layers"]["Relu"].startswith("yours (ReLU") and summary["layers"]["Affine"].startswith("yours")
    assert summary["layers"]["MeanSquaredError"] == "reference"


def test_dotted_module_is_imported_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    status, summary = run_check(tmp_path, "--layers", "book_layers", "--dtype", "float64")
    assert status == 0 and summary["layers"]["Relu"].startswith("yours")


def test_book_softmax_log_epsilon_is_a_convention_warning_not_a_failure(tmp_path):
    status, summary = run_check(tmp_path, "--layers", str(FIXTURES / "book_softmax.py"), "--scenario", "softmax",
                                "--dtype", "float64")
    assert status == 0
    codes = {f["code"] for f in summary["findings"] if f["severity"] != "info"}
    assert codes == {"convention"}
    assert summary["rows"]["probe"]["convention"] > 0 and summary["rows"]["probe"]["fail"] == 0


def test_an_exception_in_a_user_layer_is_a_finding_not_a_crash(tmp_path):
    status, summary = run_check(tmp_path, "--layers", str(FIXTURES / "raising_layers.py"))
    assert status == 1
    errors = [f for f in summary["findings"] if f["code"] == "layer_error"]
    assert errors and "raising_layers.py:10" in errors[0]["message"]
    assert summary["rows"]["probe"]["error"] == 200


@pytest.mark.parametrize("module,message", [
    ("failing_import.py", "--layers {path} failed to import: ZeroDivisionError: division by zero (failing_import.py, line 9)"),
    ("syntax_error.py", "failed to import: SyntaxError: expected ':' (syntax_error.py, line 2)"),
    ("no_layers.py", "has none of the classes Affine, Relu, Sigmoid, SoftmaxWithLoss, MeanSquaredError"),
    ("no_backward.py", "class Relu has no backward method"),
    ("missing.py", "--layers file not found"),
])
def test_bad_layers_module_exits_2_with_one_line(tmp_path, capsys, module, message):
    path = FIXTURES / module
    out = tmp_path / "report"
    assert cli.main(["check", "--layers", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert message.format(path=path) in err
    assert not out.exists()


def test_classify_names_sign_scale_shape_and_mask():
    keras = np.array([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]])
    assert classify(keras, keras, 1e-12, 1e-12) is None
    assert classify(-keras, keras, 1e-12, 1e-12)[0] == "sign_flip"
    assert classify(0.5 * keras, keras, 1e-12, 1e-12) == ("scale_factor", "0.5")
    assert classify(keras.T, keras, 1e-12, 1e-12) == ("shape_mismatch", "shape (3, 2), Keras's (2, 3) (transposed?)")
    leaky = keras.copy()
    leaky[0, 2] = 7.0  # flows where Keras's gradient is exactly 0
    assert classify(leaky, keras, 1e-12, 1e-12)[0] == "mask_mismatch"
    noisy = keras + np.array([[0.1, 0, 0], [0, 0, -0.2]])
    assert classify(noisy, keras, 1e-12, 1e-12)[0] == "gradient_mismatch"
    assert classify(keras * np.nan, keras, 1e-12, 1e-12)[0] == "nan"


def test_a_kink_warning_in_the_probe_does_not_hide_stepping_errors(tmp_path):
    """An Affine whose forward ignores SGD updates passes the probe but not stepping, and must say so."""
    import keras

    from parity.keras_side import backend

    backend.configure("float32", 1)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(2, activation="relu"), keras.layers.Dense(1)])
    model.set_weights([np.array([[1.0, -1.0]]), np.array([0.5, 0.25]), np.array([[1.0], [2.0]]), np.array([0.0])])
    model.save(tmp_path / "kinked.keras")  # unit 1.0's kink sits on the data point x = -0.5
    layers = tmp_path / "frozen.py"
    layers.write_text("import numpy as np\nfrom parity.book.layers import Affine as Reference\n\n\n"
                      "class Affine(Reference):\n    def __init__(self, W, b):\n        super().__init__(W, b)\n"
                      "        self.W0, self.b0 = W.copy(), b.copy()\n\n    def forward(self, x):\n"
                      "        self.x, self.original_x_shape = x, x.shape\n"
                      "        return x @ self.W0 + self.b0  # never sees an update\n")
    status, summary = run_check(tmp_path, "--layers", str(layers), "--model", str(tmp_path / "kinked.keras"),
                                "--samples", "5", "--train", "4", "--dtype", "float64")
    assert status == 1
    assert any(f["code"] == "kink" for f in summary["findings"])
    stepping = [f for f in summary["findings"] if f.get("step") is not None and f["severity"] == "error"]
    assert stepping and not any(f.get("consequence_of") for f in stepping)


def test_a_loss_layer_that_raises_is_a_layer_error_and_nothing_else(tmp_path):
    layers = tmp_path / "loss.py"
    layers.write_text("from parity.book.layers import MeanSquaredError as Reference\n\n\n"
                      "class MeanSquaredError(Reference):\n    def backward(self, dout=1):\n"
                      "        raise NotImplementedError('todo')\n")
    status, summary = run_check(tmp_path, "--layers", str(layers), "--dtype", "float64", "--epochs", "1")
    assert status == 1
    probed = {f["code"] for f in summary["findings"] if f.get("phase") == "layer probe"}
    assert probed == {"layer_error"}
