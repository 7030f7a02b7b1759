"""`parity grade` over what a class hands in: notebooks beside .py files, a folder per student as one submission
(its helper modules part of it), checkpoints never looked into, one Gradescope and PrairieLearn results file per
submission, and a timeout row that names the class and method that was running."""

import csv
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import Executor, Future
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from parity.grading.grade import grade_one
from parity.grading.grader_files import points_for
from parity.grading.submissions import find_submissions
from parity.settings.config import resolve
from testkit import FIXTURES, ROOT

NOTEBOOKS = FIXTURES / "notebooks"
RELU = ("import numpy as np\n\n\nclass Relu:\n    def forward(self, x):\n        self.mask = x <= 0\n"
        "        return np.where(self.mask, 0, x)\n\n    def backward(self, dout):\n        return np.where(self.mask, 0, dout)\n")
AFFINE = "import numpy as np\nfrom helpers import Relu  # noqa: F401\nfrom parity.book.layers import Affine as Book\n\n\n" \
         "class Affine(Book):\n    pass\n"


class _NoLimit:
    used = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def hand_in(root: Path) -> Path:
    """A class's downloads: a student's folder with layers.py and a helper, one with a notebook and its checkpoint,
    a notebook and a .py file at the top, and Jupyter's checkpoint folder beside them."""
    alice = root / "alice_1001_assignsubmission_file"
    alice.mkdir(parents=True)
    (alice / "helpers.py").write_text(RELU)
    (alice / "layers.py").write_text(AFFINE)
    bob = root / "bob_1002_assignsubmission_file"
    (bob / ".ipynb_checkpoints").mkdir(parents=True)
    nb = nbformat.read(NOTEBOOKS / "learner_relu_fixed.ipynb", as_version=4)
    del nb.cells[6:8]  # without the fix: the first Relu, which forgets the mask
    nbformat.write(nb, bob / "Lab 5.ipynb")
    nbformat.write(nb, bob / ".ipynb_checkpoints" / "Lab 5-checkpoint.ipynb")
    shutil.copy(NOTEBOOKS / "book_style.ipynb", root / "carol.ipynb")
    (root / "dave.py").write_text(RELU)
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "carol-checkpoint.ipynb").write_text("{}")
    return root


@pytest.fixture
def handed_in(tmp_path) -> Path:
    return hand_in(tmp_path / "submissions")


def grade_with_a_hang(folder: Path, env: dict) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """`parity grade` in a process of its own on the class's downloads and a notebook whose Relu hangs: (the
    submissions, the gradebook, the finished process)."""
    handed_in = hand_in(folder / "submissions")
    hang = new_notebook(cells=[new_code_cell(RELU.replace("self.mask = x <= 0", "while True: pass"))])
    nbformat.write(hang, handed_in / "erin.ipynb")
    out = folder / "book"
    done = subprocess.run([sys.executable, "-m", "parity.cli", "grade", str(handed_in), "--out", str(out), "--workers",
                           "1", "--timeout", "15", "--no-plots", "--quiet", "--epochs", "2", "--gradescope",
                           "--prairielearn"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return handed_in, out, done


def start_early(folder: Path, lane: Executor) -> Future:
    """The grade (a worker that imports TensorFlow, the hang's 15 s, a restarted worker): queued with the session
    (conftest's started_early), it runs beside the other modules' tests instead of holding this process."""
    return lane.submit(grade_with_a_hang, folder, dict(os.environ))  # the session's environment, not a test's


@pytest.fixture(scope="module")
def graded_with_a_hang(started_early) -> tuple[Path, Path, subprocess.CompletedProcess]:
    return started_early[__name__].result()


def test_a_students_folder_is_one_submission_and_checkpoints_are_never_looked_into(handed_in):
    found = find_submissions([str(handed_in)])
    assert [(s.given, s.folder) for s in found] == [
        (f"{handed_in}/carol.ipynb", "carol"), (f"{handed_in}/dave.py", "dave"),
        (f"{handed_in}/alice_1001_assignsubmission_file/layers.py", "alice_1001_assignsubmission_file"),
        (f"{handed_in}/bob_1002_assignsubmission_file/Lab 5.ipynb", "bob_1002_assignsubmission_file")]


def test_a_students_helper_module_is_part_of_the_submission(handed_in):
    (alice,) = [s for s in find_submissions([str(handed_in)]) if s.folder.startswith("alice")]
    config = resolve({"plots": False, "epochs": 2})
    extra = {"graders": ("gradescope", "prairielearn"), "points": points_for(None), "run_all": False}
    row = grade_one((alice, config, "none", "csv", extra), _NoLimit())
    assert row["status"] == "pass", row
    summary = json.loads(row["files"]["summary.json"])
    assert summary["layers"]["Relu"].startswith("yours (Relu from") and summary["layers"]["Affine"].startswith("yours")
    gradescope = json.loads(row["grader"]["gradescope"])
    assert gradescope["score"] == 5.0 and json.loads(row["grader"]["prairielearn"])["score"] == 1.0


def test_grade_writes_a_results_file_per_submission_and_names_what_a_timeout_was_running(graded_with_a_hang):
    handed_in, out, done = graded_with_a_hang
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "gradebook.csv", newline="") as f:
        rows = {Path(r["file"]).parent.name if "assignsubmission" in r["file"] else Path(r["file"]).stem: r
                for r in csv.DictReader(f)}
    assert {k: r["status"] for k, r in rows.items()} == {
        "carol": "pass", "dave": "pass", "erin": "timeout", "alice_1001_assignsubmission_file": "pass",
        "bob_1002_assignsubmission_file": "fail"}
    assert f"it was running Relu.forward ({handed_in}/erin.ipynb, cell 1, line 6)" in rows["erin"]["first_error"]
    bob = rows["bob_1002_assignsubmission_file"]["first_error"]
    assert bob.startswith("Relu: dx at batch size 2") and bob.endswith(f"Lab 5.ipynb, cell 4, line 9)")
    names = sorted(p.name for p in (out / "gradescope").iterdir())
    assert names == sorted(p.name for p in (out / "prairielearn").iterdir()) == [
        "alice_1001_assignsubmission_file.json", "bob_1002_assignsubmission_file.json", "carol.json", "dave.json",
        "erin.json"]
    timeout = json.loads((out / "gradescope" / "erin.json").read_text())
    assert timeout["score"] == 0.0 and "Relu.forward" in timeout["tests"][0]["output"]
    assert json.loads((out / "prairielearn" / "bob_1002_assignsubmission_file.json").read_text())["score"] == 0.2
