"""A notebook is a layers file: its definitions run, cell by cell, and never its top-level code; what was left out
is said, each finding points into the notebook (`layers.ipynb, cell 5, line 3`), and only the learner's own classes
count. These tests read notebooks and modules without TensorFlow; test_notebook_checks.py runs the checks."""

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from parity import cli
from parity.errors import ParityInputError
from parity.user_code.guard import where_class, where_defined
from parity.user_code.loader import load
from testkit import FIXTURES

NOTEBOOKS = FIXTURES / "notebooks"
LEARNER = NOTEBOOKS / "learner_relu_fixed.ipynb"
BOOK_STYLE = NOTEBOOKS / "book_style.ipynb"

RELU = ("class Relu:\n    def forward(self, x):\n        self.mask = x <= 0\n        return np.where(self.mask, 0, x)\n\n"
        "    def backward(self, dout):\n        return np.where(self.mask, 0, dout)\n")


@pytest.fixture
def clean_modules(monkeypatch):
    """Each test's notebook module and helpers leave sys.modules and sys.path as they were."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("parity_user_layers_") or name.startswith("helpers_"):
            del sys.modules[name]


def notebook(folder: Path, *cells, name: str = "layers.ipynb") -> Path:
    """A notebook of code cells (strings) and markdown cells (("md", text)), written to folder/name."""
    made = [new_markdown_cell(c[1]) if isinstance(c, tuple) else new_code_cell(c) for c in cells]
    path = folder / name
    nbformat.write(new_notebook(cells=made), path)
    return path


def _note(user, code: str) -> dict:
    return next(n for n in user.notes if n["code"] == code)


def test_the_learner_notebook_loads_its_last_relu_in_seconds_and_runs_no_loop(clean_modules):
    started = time.monotonic()
    user = load(str(LEARNER))
    assert time.monotonic() - started < 5  # cell 5 loops 10^10 times and cell 9 forever: neither ran
    assert user.names == ("Affine", "Relu")
    relu = user.layers["Relu"]()
    relu.forward(__import__("numpy").array([[-1.0, 2.0]]))
    assert relu.backward(__import__("numpy").array([[5.0, 5.0]])).tolist() == [[0.0, 5.0]]  # the fixed one, cell 8
    assert where_class(user.layers["Relu"]) == f"{LEARNER}, cell 8, line 1"
    assert where_defined(user.layers["Relu"], "backward") == f"{LEARNER}, cell 8, line 9"


def test_what_was_left_out_is_said_cell_by_cell(clean_modules):
    user = load(str(LEARNER))
    failed = _note(user, "import_failed")
    assert failed["severity"] == "warning" and failed["where"] == f"{LEARNER}, cell 2, line 2"
    assert "`from dataset.mnist import load_mnist` failed (ModuleNotFoundError: No module named 'dataset')" in failed["message"]
    skipped = _note(user, "top_level_skipped")
    assert skipped["severity"] == "info" and skipped["count"] == 5
    assert [(s["cell"], s["line"]) for s in skipped["statements"]] == [(1, 1), (5, 2), (5, 3), (5, 4), (9, 1)]
    assert skipped["statements"][0]["text"] == "!pip install numpy matplotlib"
    assert "cell 9, line 1 `while True:`" in skipped["message"]


def test_ipython_syntax_is_dropped_where_ipython_is_not_installed(clean_modules, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython.core.inputtransformer2", None)  # `import` of it raises ImportError
    path = notebook(tmp_path, "%matplotlib inline\nimport numpy as np\n!pip install numpy", "%%time\n" + RELU,
                    "%%bash\necho not python")
    user = load(str(path))
    assert user.names == ("Relu",)
    assert where_class(user.layers["Relu"]) == f"{path}, cell 2, line 2"  # the %%time body keeps its line numbers
    assert [(s["cell"], s["text"]) for s in _note(user, "top_level_skipped")["statements"]] == [(3, "%%bash")]


def test_a_cell_that_does_not_parse_is_skipped_with_a_warning_naming_it(clean_modules):
    user = load(str(BOOK_STYLE))
    assert user.names == ("Affine", "Relu")
    note = _note(user, "cell_not_parsed")
    assert note["severity"] == "warning" and note["where"] == f"{BOOK_STYLE}, cell 5, line 1"
    assert note["message"].startswith(f"{BOOK_STYLE}, cell 5, line 1: the cell does not parse (invalid character")
    statements = _note(user, "top_level_skipped")["statements"]
    assert (2, "%matplotlib inline") in [(s["cell"], s["text"]) for s in statements]
    assert {s["cell"] for s in statements} == {2, 4, 8}  # the experiments between the classes, never run


def test_a_cell_that_does_not_parse_and_holds_a_class_the_check_needs_is_bad_input(clean_modules, tmp_path):
    path = notebook(tmp_path, "import numpy as np", ("md", "My Relu"), RELU.replace("def backward(self, dout):",
                                                                                     "def backward(self, dout)"))
    with pytest.raises(ParityInputError) as caught:
        load(str(path))
    assert str(caught.value).startswith(f"--layers {path} cell 3, line 6 does not parse (expected ':'), and it defines "
                                        "class Relu, which the check needs")


def test_a_broken_first_try_redefined_later_is_only_a_warning(clean_modules, tmp_path):
    path = notebook(tmp_path, "import numpy as np", "class Relu:\n    def forward(self, x)\n        pass", RELU)
    user = load(str(path))
    assert _note(user, "cell_not_parsed")["where"] == f"{path}, cell 2, line 2"
    assert where_class(user.layers["Relu"]) == f"{path}, cell 3, line 1"


def test_a_needed_class_that_cannot_be_defined_is_bad_input_naming_cell_and_line(clean_modules, tmp_path):
    path = notebook(tmp_path, "import numpy as np\nfrom common.layers import Layer", "class Relu(Layer):\n    pass")
    with pytest.raises(ParityInputError) as caught:
        load(str(path))
    assert str(caught.value) == (f"--layers {path} cell 2, line 1: class Relu, which the check needs, could not be "
                                 f"defined: NameError: name 'Layer' is not defined ({path}, cell 2, line 1)")


def test_later_definitions_win_and_constants_run(clean_modules, tmp_path):
    path = notebook(tmp_path, "import numpy as np\nSCALE = 2.0\nlearning_rate = 0.1",
                    RELU.replace("return np.where(self.mask, 0, x)", "return np.where(self.mask, 0, x) * SCALE"),
                    RELU)
    user = load(str(path))
    namespace = vars(sys.modules[user.layers["Relu"].__module__])
    assert namespace["SCALE"] == 2.0 and "learning_rate" not in namespace
    assert where_class(user.layers["Relu"]) == f"{path}, cell 3, line 1"


def test_the_notebooks_folder_is_on_the_import_path_and_its_helper_classes_are_the_learners(clean_modules, tmp_path):
    (tmp_path / "helpers_act.py").write_text("import numpy as np\n\n\n" + RELU)
    path = notebook(tmp_path, "import numpy as np\nfrom helpers_act import Relu\nfrom parity.book.layers import Affine")
    user = load(str(path))
    assert user.names == ("Relu",)  # beside the notebook: the learner's; parity's Affine is not
    note = _note(user, "not_yours")
    assert note["severity"] == "warning" and note["ignored"] == ["Affine"]
    assert "Affine (from parity.book.layers)" in note["message"]


def test_an_imported_optimizer_is_not_the_learners(clean_modules, tmp_path):
    module = tmp_path / "mine.py"
    module.write_text("import numpy as np\nfrom collections import OrderedDict\nfrom parity.book.optimizers import SGD\n\n\n"
                      + RELU)
    user = load(str(module))
    assert user.names == ("Relu",) and "SGD" not in user.classes and "OrderedDict" not in user.classes
    note = _note(user, "not_yours")
    assert note["ignored"] == ["OrderedDict", "SGD"]
    assert note["message"].startswith("not checked, as they were imported, not defined here: SGD (from "
                                      "parity.book.optimizers); 1 other imported class (OrderedDict)")


def test_a_module_whose_book_classes_are_all_imported_is_bad_input_naming_them(clean_modules, tmp_path):
    module = tmp_path / "reexports.py"
    module.write_text("from parity.book.layers import Affine, Relu\n")
    with pytest.raises(ParityInputError) as caught:
        load(str(module))
    assert "defines none of the book's classes itself; it imports Affine (from parity.book.layers), Relu (from " \
           "parity.book.layers)" in str(caught.value)


def test_a_kernels_globals_keep_what_the_kernel_defined(clean_modules):
    namespace = {"__name__": "__main__"}
    exec("import numpy as np\nfrom parity.book.layers import Affine\n" + RELU, namespace)
    user = load(namespace)
    assert user.names == ("Relu",) and _note(user, "not_yours")["ignored"] == ["Affine"]
    assert load(named={"Affine": namespace["Affine"]}).names == ("Affine",)  # classes given by name are chosen


@pytest.mark.parametrize("content,expected", [
    ("not json at all", "is not a notebook: it is not JSON (Expecting value at line 1)"),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": []}),
     "is not an nbformat 4 notebook (it has nbformat 3); save it from Jupyter"),
    (json.dumps([1, 2]), "is not an nbformat 4 notebook (it has no nbformat version)"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# only prose"}]}), "has no code cell"),
])
def test_a_file_that_is_no_notebook_is_one_error_line_and_exit_2(content, expected, tmp_path, capsys):
    path = tmp_path / "layers.ipynb"
    path.write_text(content)
    assert cli.main(["check", "--layers", str(path), "--no-plots", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --layers {path} {expected}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ParityInputError, match="layers=") as caught:
        __import__("parity").check(str(path))
    assert expected in str(caught.value)
