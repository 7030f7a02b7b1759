"""The README's recipes for the systems that grade by tests: nbgrader's locked test cell, run in a notebook on a
real kernel (nbclient), where a check writes nothing on stderr; and Otter's exception-based test file, its functions
called with the student's classes by name, as Otter calls them. The recipes are read from the README itself."""

import inspect
import re
import sys
import types
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest

from parity.user_code.loader import load
from testkit import FIXTURES, ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = FIXTURES / "notebooks"
FIX = "np.where(mask, 0, dout)"

STUDENT = '''import numpy as np


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def forward(self, x):
        self.x = x
        return np.dot(x, self.W) + self.b

    def backward(self, dout):
        self.dW, self.db = np.dot(self.x.T, dout), np.sum(dout, axis=0)
        return np.dot(dout, self.W.T)


class Relu:
    def forward(self, x):
        self.mask = x <= 0
        return np.where(self.mask, 0, x)

    def backward(self, dout):
        return np.where(self.mask, 0, dout)
'''

# Inside the check's fit only: a warning from a Keras module and a native log record on fd 2, as TensorFlow writes
# them, from Keras's train step (the fit's compiled loop traces it once: parity.keras_side.fit_loop). The control
# lines, outside any check, show that this kernel does pass fd 2 and such warnings on to the cell.
PLANT = '''import os, warnings, keras
calls = []
planted = {"__name__": "keras.src.planted", "warnings": warnings, "os": os, "keras_step": keras.Model.train_step,
           "calls": calls}
exec("def train_step(self, *args, **kwargs):\\n"
     "    calls.append(1)\\n"
     "    warnings.warn('planted: a Keras warning inside the fit', UserWarning)\\n"
     "    os.write(2, b'E0000 00:00:1795.5 13002 cuda_platform.cc:52] planted native record\\\\n')\\n"
     "    return keras_step(self, *args, **kwargs)\\n", planted)
keras.Model.train_step = planted["train_step"]
'''
CONTROL = '''os.write(2, b"control: fd 2 reaches the kernel's stderr\\n")
exec("import warnings\\nwarnings.warn('control: a Keras warning outside any check', UserWarning)",
     {"__name__": "keras.src.control"})
'''
CHECKED = '''import parity
report = parity.check(Affine=Affine, Relu=Relu, epochs=3)
assert calls == [1] and report.passed  # the planted fit ran inside this check
'''
START, END = "<<< a check starts", ">>> a check ended"  # around each check, on the kernel's own fd 2


def _marked(source: str) -> str:
    return f"import os\nos.write(2, b'{START}\\n')\ntry:\n" + "".join(f"    {line}\n" for line in source.splitlines()) \
        + f"finally:\n    os.write(2, b'{END}\\n')\n"


def _readme_block(title: str, language: str) -> str:
    section = (ROOT / "README.md").read_text().split(title, 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def _grade_cell(source: str):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "test_layers", "locked": True, "points": 4,
                                 "schema_version": 3, "solution": False, "task": False}
    return cell


def execute(folder: Path):
    """The notebook executed, and what its kernel process wrote on its own stderr (fd 2)."""
    test_cell = _readme_block("### nbgrader", "python")
    buggy = STUDENT.replace("return np.where(self.mask, 0, dout)", "return dout")
    cells = [nbformat.v4.new_code_cell(STUDENT), nbformat.v4.new_code_cell(PLANT),
             nbformat.v4.new_code_cell(_marked(CHECKED)), _grade_cell(_marked(test_cell)),
             nbformat.v4.new_code_cell(buggy), _grade_cell(_marked(test_cell)), nbformat.v4.new_code_cell(CONTROL)]
    nb = nbformat.v4.new_notebook(cells=cells)
    with open(folder / "kernel-stderr.txt", "wb") as stderr:
        nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(folder)}}).execute(stderr=stderr)
    return nb, (folder / "kernel-stderr.txt").read_text(errors="replace")


def start_early(folder: Path, lane: Executor) -> Future:
    """The kernel imports TensorFlow and runs three checks: queued with the session (conftest's started_early), it
    runs on the machine's other core while other modules' tests run here."""
    return lane.submit(execute, folder)


@pytest.fixture(scope="module")
def executed(started_early):
    return started_early[__name__].result()


def _outputs(cell, kind: str) -> list:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == kind]


def test_a_check_in_a_kernel_writes_nothing_on_stderr(executed):
    nb, kernel_stderr = executed
    cells = nb.cells
    assert [o for cell in cells[:5] for o in _outputs(cell, "error")] == []  # of the checks, only cell 6 raised
    checks = [cells[2], cells[3], cells[5]]  # the planted check, and the nbgrader cell twice
    assert [o for cell in checks for o in _outputs(cell, "stream") if o.get("name") == "stderr"] == []
    during = re.findall(f"{START}\\n(.*?){END}", kernel_stderr, re.S)
    assert during == ["", "", ""], during  # the planted native record, among others, was dropped
    said = "".join(o["text"] for o in _outputs(cells[6], "stream") if o.get("name") == "stderr")
    assert "control: a Keras warning outside any check" in said
    assert "control: fd 2 reaches the kernel's stderr" in kernel_stderr.split(END)[-1]


def test_the_nbgrader_cell_passes_correct_layers_and_names_cause_and_cell_of_a_bug(executed):
    nb, _ = executed
    assert _outputs(nb.cells[3], "error") == []
    (error,) = _outputs(nb.cells[5], "error")
    assert error["ename"] == "AssertionError"
    assert "mask_mismatch" in error["evalue"] and "(Cell In[5], line 22)" in error["evalue"]  # Relu.backward, cell 5
    assert FIX not in error["evalue"] and "fix to try" not in error["evalue"]


@pytest.fixture
def otter_tests(monkeypatch) -> dict:
    """The README's Otter test file, loaded as Otter loads it: `test_case` records each function's points."""
    test_files = types.ModuleType("otter.test_files")
    test_files.test_case = lambda **meta: (lambda fn: setattr(fn, "otter", meta) or fn)
    monkeypatch.setitem(sys.modules, "otter", types.ModuleType("otter"))
    monkeypatch.setitem(sys.modules, "otter.test_files", test_files)
    namespace = {"__name__": "otter_layers"}
    exec(_readme_block("### Otter Grader", "python"), namespace)
    assert namespace["OK_FORMAT"] is False
    return {k: v for k, v in namespace.items() if k.startswith("test_") and hasattr(v, "otter")}


def _as_otter_calls(fn, env: dict):
    """Otter passes each argument the student's global of that name (None when there is none)."""
    return fn(**{name: env.get(name) for name in inspect.signature(fn).parameters})


def test_otters_tests_take_the_students_classes_by_name(otter_tests, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "path", list(sys.path))
    fixed = vars(sys.modules[load(str(NOTEBOOKS / "learner_relu_fixed.ipynb")).layers["Relu"].__module__])
    assert sorted(otter_tests) == ["test_affine", "test_relu"]
    assert all(fn.otter == {"points": 2} for fn in otter_tests.values())
    for fn in otter_tests.values():
        _as_otter_calls(fn, fixed)  # raises nothing

    nb = nbformat.read(NOTEBOOKS / "learner_relu_fixed.ipynb", as_version=4)
    del nb.cells[6:8]
    nbformat.write(nb, tmp_path / "layers.ipynb")
    buggy = vars(sys.modules[load(str(tmp_path / "layers.ipynb")).layers["Relu"].__module__])
    _as_otter_calls(otter_tests["test_affine"], buggy)
    with pytest.raises(AssertionError) as caught:
        _as_otter_calls(otter_tests["test_relu"], buggy)
    said = str(caught.value)
    assert "mask_mismatch" in said and f"({tmp_path / 'layers.ipynb'}, cell 4, line 9)" in said and FIX not in said
    with pytest.raises(AssertionError, match="define a class Relu"):
        _as_otter_calls(otter_tests["test_relu"], {"Affine": fixed["Affine"]})
