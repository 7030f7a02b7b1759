"""The Python API: parity.check / parity.run, the Report, ParityInputError naming keywords, no side effects."""

import importlib
import json
import random
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import parity
from parity import cli
from testkit import FIXTURES

BOOK = FIXTURES / "book_layers.py"
BUGGY = FIXTURES / "relu_without_mask.py"


def test_the_public_surface_is_exactly_its_all():
    assert set(parity.__all__) == {"check", "run", "Report", "Finding", "ParityInputError", "__version__"}
    assert issubclass(parity.ParityInputError, ValueError)


def test_importing_parity_does_not_import_tensorflow():
    code = "import sys, parity, parity.testing; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.fixture(scope="module")
def book_module():
    sys.path.insert(0, str(FIXTURES))
    try:
        yield importlib.import_module("book_layers")
    finally:
        sys.path.remove(str(FIXTURES))


def test_layers_given_as_module_path_dict_or_by_name_give_one_verdict(book_module):
    by_module = parity.check(book_module, dtype="float64")
    by_path = parity.check(str(BOOK), dtype="float64")
    by_dict = parity.check(dict(vars(book_module)), dtype="float64")
    by_name = parity.check(Affine=book_module.Affine, ReLU=book_module.ReLU, dtype="float64")
    for report in (by_module, by_path, by_dict, by_name):
        assert report.verdict == "pass" and report.passed
        assert [f.code for f in report.warnings] == ["input_mutation"]
        assert report.summary["layers"]["Relu"].startswith("yours (ReLU")
        assert all(isinstance(f, parity.Finding) for f in report.findings)
    assert by_path.summary["layers"]["Affine"] == f"yours (Affine from {BOOK})"


def test_a_planted_bug_fails_with_typed_findings_naming_the_class():
    report = parity.check(str(BUGGY), dtype="float64")
    assert report.verdict == "fail" and not report.passed
    roots = [f for f in report.errors if not f.consequence_of]
    assert "mask_mismatch" in {f.code for f in roots}
    layer_probe = [f for f in roots if f.phase == "layer probe"]
    assert layer_probe and all(f.layer == "Relu" for f in layer_probe)
    assert all(f.severity == "error" for f in report.errors)
    as_json = report.summary["findings"]
    assert {f["code"] for f in as_json} == {f.code for f in report.findings}


def test_run_uses_the_reference_layers_and_gives_the_tables_as_dataframes(tmp_path):
    report = parity.run(dtype="float64", plots=False)
    assert report.passed and report.summary["layers"]["Affine"] == "reference"
    assert isinstance(report.samples, pd.DataFrame) and len(report.samples) == 200
    assert len(report.steps) == 160
    assert set(report.gradients["phase"].unique()) == {"probe", "batch", "stepping"}
    report.save(tmp_path / "saved")
    on_disk = pd.read_csv(tmp_path / "saved" / "samples.csv")
    assert list(on_disk.columns) == list(report.samples.columns)
    np.testing.assert_array_equal(on_disk["loss_numpy"].to_numpy(), report.samples["loss_numpy"].to_numpy())
    assert json.loads((tmp_path / "saved" / "summary.json").read_text())["verdict"] == "pass"


def test_str_is_the_terminal_summary_and_figures_are_matplotlib_figures():
    from matplotlib.figure import Figure

    report = parity.run(dtype="float64")
    assert str(report).splitlines()[1].startswith("verdict: PASS")
    fig = report.figure("dead_relu_map")
    assert isinstance(fig, Figure) and fig.axes
    html = report._repr_html_()
    assert html.index("PASS") < html.index("<img") and html.count("data:image/png;base64,") == 5
    with pytest.raises(parity.ParityInputError, match=r"figure name must be one of .* \(received: 'nope'\)"):
        report.figure("nope")


def _without_out(summary: dict) -> dict:
    summary = json.loads(json.dumps(summary))
    summary["config"].pop("out")
    return summary


@pytest.mark.parametrize("layers", [None, BUGGY], ids=["reference", "planted bug"])
def test_cli_and_python_write_identical_summaries(tmp_path, layers):
    args = ["--dtype", "float64", "--no-plots", "--quiet"]
    if layers is None:
        status = cli.main(["run", *args, "--out", str(tmp_path / "cli")])
        report = parity.run(dtype="float64", plots=False, out=tmp_path / "py")
    else:
        status = cli.main(["check", "--layers", str(layers), *args, "--out", str(tmp_path / "cli")])
        report = parity.check(str(layers), dtype="float64", plots=False, out=tmp_path / "py")
    assert status == (0 if report.passed else 1)
    from_cli = json.loads((tmp_path / "cli" / "summary.json").read_text())
    from_python = json.loads((tmp_path / "py" / "summary.json").read_text())
    assert _without_out(from_cli) == _without_out(from_python)
    assert from_cli["tool"] == "keras-parity" and from_cli["version"] == parity.__version__
    assert isinstance(from_cli["schema_version"], int)


@pytest.mark.parametrize("kwargs, message", [
    ({"sample": 5}, r"unexpected keyword argument sample=; class keywords are"),
    ({"seed": "5"}, r"seed= must be an integer \(received: '5' of type str\)"),
    ({"samples": True}, r"samples= must be an integer"),
    ({"lr": "fast"}, r"lr= must be a number"),
    ({"dtype": "float16"}, r"dtype= must be float32 or float64 \(received: float16\)"),
    ({"batch_size": 0}, r"batch_size= must be at least 1 \(received: 0\)"),
    ({"train": 500}, r"train= must be between 1 and samples= \(200\) \(received: 500\)"),
    ({"scenario": "nope"}, r"scenario= must be one of seed, "),
    ({"data": "missing.csv"}, r"data= file not found \(received: missing.csv\)"),
    ({"format": "xlsx"}, r"format= must be csv or parquet"),
    ({"Relu": 42}, r"Relu= must be a class \(received: 42 of type int\)"),
])
def test_bad_keywords_raise_parity_input_error_naming_the_keyword(kwargs, message):
    with pytest.raises(parity.ParityInputError, match=message) as info:
        parity.check(**kwargs)
    assert "--" not in str(info.value)  # keywords, never CLI flags


def test_bad_layers_argument_names_what_it_accepts():
    with pytest.raises(parity.ParityInputError, match=r"layers= must be a module, a .py path"):
        parity.check(42)
    with pytest.raises(parity.ParityInputError, match=r"has none of the classes"):
        parity.check({"np": np})


def test_a_check_leaves_the_callers_session_as_it_was():
    import keras

    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    np.random.seed(7)
    random.seed(7)
    np_before, py_before = np.random.get_state(), random.getstate()
    parity.check(str(BOOK), dtype="float64")
    assert keras.config.floatx() == "float32"
    assert keras.config.dtype_policy().name == "float32"
    np_after = np.random.get_state()
    assert np_after[0] == np_before[0] and (np_after[1] == np_before[1]).all() and np_after[2:] == np_before[2:]
    assert random.getstate() == py_before


def test_repeated_checks_reuse_the_keras_side_and_never_warn_about_retracing(capfd, caplog, monkeypatch,
                                                                             library_references_kept):
    """Eight configurations of one architecture in a row: TensorFlow traces once per model shape."""
    from collections import OrderedDict

    from parity.keras_side import reference

    # the library's bound (conftest raises it for the session), over a copy of the session's Keras sides: the
    # eight new ones evict the older ones here, and the session keeps its own afterwards
    monkeypatch.setattr(reference, "REFERENCES_KEPT", library_references_kept)
    monkeypatch.setattr(reference, "_REFERENCES", OrderedDict(reference._REFERENCES))
    for seed in range(8):
        parity.run(seed=seed, samples=40, epochs=1, plots=False)
    again = parity.run(seed=0, samples=40, epochs=1, plots=False)
    assert again.passed
    captured = capfd.readouterr()
    text = captured.out + captured.err + caplog.text
    assert "retracing" not in text
    assert len(reference._REFERENCES) <= reference.REFERENCES_KEPT


def test_the_books_softmax_passes_through_the_library_as_through_the_cli(tmp_path):
    """The convention excuse lives in the pipeline, not in a door: both give pass with its warning."""
    report = parity.check(str(FIXTURES / "book_softmax.py"), scenario="softmax", dtype="float64")
    status = cli.main(["check", "--layers", str(FIXTURES / "book_softmax.py"), "--scenario", "softmax",
                       "--dtype", "float64", "--no-plots", "--quiet", "--out", str(tmp_path / "r")])
    assert report.passed and status == 0
    assert "convention" in {f.code for f in report.warnings}
