"""Notebooks checked as files through every door (`parity check --layers x.ipynb`, `parity.check`, `assert_parity`):
the seed-style notebooks pass with what they do wrong named and pointed at, a learner's notebook is checked on its
last Relu, and `--run-all` executes the notebook on a kernel first."""

import json
import subprocess
import sys
from concurrent.futures import Executor, Future
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import parity
from parity import cli
from parity.testing import assert_parity
from testkit import FIXTURES, ROOT

NOTEBOOKS = FIXTURES / "notebooks"
LEARNER = NOTEBOOKS / "learner_relu_fixed.ipynb"
RELU = ("import numpy as np\n\n\nclass Relu:\n    def forward(self, x):\n        self.mask = x <= 0\n"
        "        return np.where(self.mask, 0, x)\n\n    def backward(self, dout):\n        return np.where(self.mask, 0, dout)\n")


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def _found(summary: dict, code: str) -> dict:
    return next(f for f in summary["findings"] if f["code"] == code)


def test_relu_and_affine_beside_a_keras_2_fit_are_checked_and_keras_classes_are_not_theirs(tmp_path, capsys):
    notebook = NOTEBOOKS / "keras2_fit.ipynb"
    assert cli.main(["check", "--layers", str(notebook), "--no-plots", "--out", str(tmp_path / "r")]) == 0
    summary = _summary(tmp_path / "r")
    assert summary["layers"]["Relu"] == f"yours (ReLU from {notebook})"
    assert summary["layers"]["Affine"] == f"yours (Affine from {notebook})"
    ignored = _found(summary, "not_yours")
    assert ignored["severity"] == "warning" and ignored["ignored"] == ["Dense", "SGD", "Sequential"]
    skipped = _found(summary, "top_level_skipped")
    assert [s["text"] for s in skipped["statements"]][-2:] == ['model.compile(loss="mse", optimizer=SGD(lr=0.01))',
                                                              "model.fit(x, y, nb_epoch=20, batch_size=10)"]
    assert "[warning] not_yours: not checked, as they were imported, not defined here: SGD (from keras" in \
        capsys.readouterr().out


def test_a_book_style_notebook_is_checked_and_its_in_place_relu_named_where_it_is(tmp_path, capsys):
    notebook = NOTEBOOKS / "book_style.ipynb"
    assert cli.main(["check", "--layers", str(notebook), "--no-plots", "--out", str(tmp_path / "r")]) == 0
    summary = _summary(tmp_path / "r")
    mutation = _found(summary, "input_mutation")
    assert (mutation["severity"], mutation["layer"], mutation["where"]) == ("warning", "Relu",
                                                                            f"{notebook}, cell 3, line 12")
    assert _found(summary, "cell_not_parsed")["where"] == f"{notebook}, cell 5, line 1"
    out = capsys.readouterr().out
    assert f"[warning] input_mutation: Relu: backward wrote into its argument dout ({notebook}, cell 3, line 12)" in out
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"at {notebook}, cell 3, line 12" in page


def test_a_learner_notebook_is_checked_on_its_last_relu_through_the_python_door():
    report = parity.check(str(LEARNER), dtype="float64")
    assert report.passed and report.result.layers["Relu"] == f"yours (Relu from {LEARNER})"
    assert {f.code for f in report.warnings} == {"import_failed"}


def test_without_the_fix_it_fails_on_relu_pointing_into_the_notebook(tmp_path):
    nb = nbformat.read(LEARNER, as_version=4)
    del nb.cells[6:8]  # the markdown and the fixed Relu
    buggy = tmp_path / "layers.ipynb"
    nbformat.write(nb, buggy)
    with pytest.raises(AssertionError) as caught:
        assert_parity(str(buggy), dtype="float64", show_fix=False)
    said = str(caught.value)
    assert "mask_mismatch [layer probe, dx, Relu]: Relu: dx at batch size 2" in said
    assert f"({buggy}, cell 4, line 9)" in said and "fix to try" not in said
    assert "fix to try: ReLU's backward must zero dout" in str(pytest.raises(
        AssertionError, assert_parity, str(buggy), dtype="float64").value)


def start_early(folder: Path, lane: Executor) -> dict[str, Future]:
    """A real `parity check --run-all` process, queued with the session (conftest's started_early): its stderr is the
    terminal's, where the kernel's own lines would show (in process, capsys never sees file descriptor 2)."""
    args = ["check", "--layers", str(NOTEBOOKS / "keras2_fit.ipynb"), "--run-all", "--timeout", "300", "--no-plots",
            "--out", str(folder / "r")]
    run = lambda: (subprocess.run([sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True,  # noqa: E731
                                  cwd=ROOT, timeout=600), folder)
    return {"keras2_fit": lane.submit(run)}


def test_run_all_names_the_cell_a_keras_2_fit_fails_in_one_line(started_early):
    done, folder = started_early[__name__]["keras2_fit"].result()
    err = done.stderr
    assert done.returncode == 2 and err.count("\n") == 1, err  # not the kernel's TCP warning nor TensorFlow's lines
    assert err.startswith(f"error: --run-all: {NOTEBOOKS / 'keras2_fit.ipynb'}, cell 3, line 38 raised ValueError: ")
    assert "lr" in err and not (folder / "r").exists()


def test_run_all_lets_a_notebook_make_its_helper_module_first(tmp_path):
    notebook = tmp_path / "layers.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("%%writefile helpers_made.py\n" + RELU),
                                       new_code_cell("from helpers_made import Relu")]), notebook)
    with pytest.raises(parity.ParityInputError, match="has none of the classes"):
        parity.check(str(notebook), epochs=2)  # definitions only: the helper was never written
    assert not (tmp_path / "helpers_made.py").exists()
    report = parity.check(str(notebook), epochs=2, run_all=True)
    assert report.passed and report.result.layers["Relu"].startswith("yours (Relu from")
