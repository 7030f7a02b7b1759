"""Gradescope's and PrairieLearn's results.json from `parity check`: one test per class, one per phase; the cause and
where it is for the student, the fix only after the due date (Gradescope) or never (PrairieLearn); written for bad
input, a timeout and a crash too; and the README's run_autograder run in a scratch /autograder."""

import base64
import json
import os
import re
import subprocess
import sys
from concurrent.futures import Executor, Future
from pathlib import Path

import nbformat
import pytest

from parity import cli, pipeline
from parity.report.graded_tests import GradedTest
from parity.report.prairielearn import LIMIT_BYTES, prairielearn_results
from testkit import FIXTURES, ROOT

NOTEBOOKS = FIXTURES / "notebooks"
LEARNER = NOTEBOOKS / "learner_relu_fixed.ipynb"
FIX = "np.where(mask, 0, dout)"  # the mask_mismatch fix's words


@pytest.fixture
def buggy(tmp_path) -> Path:
    return buggy_notebook(tmp_path / "layers.ipynb")


def check(*args) -> int:
    return cli.main(["check", *map(str, args)])


def files(tmp_path) -> tuple[dict, dict]:
    return (json.loads((tmp_path / "gs" / "results.json").read_text()),
            json.loads((tmp_path / "pl" / "results.json").read_text()))


def grader_flags(tmp_path) -> list:
    return ["--gradescope", tmp_path / "gs" / "results.json", "--prairielearn", tmp_path / "pl" / "results.json"]


def test_a_failing_notebook_scores_its_tests_and_names_cause_and_cell_but_no_fix(buggy, tmp_path, capsys):
    assert check("--layers", buggy, "--out", tmp_path / "report", *grader_flags(tmp_path)) == 1
    gradescope, prairielearn = files(tmp_path)
    tests = {t["name"]: t for t in gradescope["tests"]}
    assert [(t["name"], t["score"], t["max_score"], t["status"]) for t in gradescope["tests"] if t["max_score"]] == [
        ("class Affine", 1.0, 1.0, "passed"), ("class Relu", 0.0, 1.0, "failed"),
        ("whole network: probe (every sample alone at the fitted weights)", 0.0, 1.0, "failed"),
        ("whole network: batch (mini-batch gradients)", 0.0, 1.0, "failed"),
        ("whole network: stepping (one optimizer step per training sample)", 0.0, 1.0, "failed")]
    assert gradescope["score"] == 1.0 and gradescope["stdout_visibility"] == "hidden"
    relu = tests["class Relu"]
    assert relu["visibility"] == "visible" and relu["output"].count("mask_mismatch") == 1
    assert f"({buggy}, cell 4, line 9)" in relu["output"]  # Relu.backward of the first try, cell 4
    fix = tests["class Relu: fix to try"]
    assert (fix["visibility"], fix["score"], fix["max_score"]) == ("after_due_date", 0.0, 0.0) and FIX in fix["output"]
    visible = json.dumps([t for t in gradescope["tests"] if t["visibility"] == "visible"] + [gradescope["output"]])
    assert FIX not in visible and "fix" not in visible.lower()
    assert f"{buggy}, cell 2, line 2: `from dataset.mnist import load_mnist` failed" in gradescope["output"]
    assert "whole network: stepping" in gradescope["output"] and "follow from what was found earlier (class Relu)" \
        in tests["whole network: stepping (one optimizer step per training sample)"]["output"]

    assert prairielearn["gradable"] is True and prairielearn["score"] == pytest.approx(0.2)
    assert FIX not in json.dumps(prairielearn) and "fix to try" not in json.dumps(prairielearn)
    pl_relu = next(t for t in prairielearn["tests"] if t["name"] == "class Relu")
    assert (pl_relu["points"], pl_relu["max_points"]) == (0.0, 1.0) and f"{buggy}, cell 4, line 9" in pl_relu["message"]
    assert [i["label"] for i in prairielearn["images"]] == ["lesson.png", "dead_relu_map.png", "stepping.png", "gradient_diffs.png",
                                                            "fit.png"]
    png = base64.b64decode(prairielearn["images"][0]["url"].removeprefix("data:image/png;base64,"))
    assert png == (tmp_path / "report" / "lesson.png").read_bytes()
    assert (tmp_path / "pl" / "results.json").stat().st_size <= LIMIT_BYTES
    assert oct((tmp_path / "gs" / "results.json").stat().st_mode & 0o777) != "0o600"
    out = capsys.readouterr().out
    assert f"mask_mismatch: Relu: dx at batch size 2" in out and f"({buggy}, cell 4, line 9)" in out


def test_the_fixed_notebook_scores_every_point(tmp_path):
    assert check("--layers", LEARNER, "--no-plots", "--quiet", "--out", tmp_path / "report",
                 *grader_flags(tmp_path)) == 0
    gradescope, prairielearn = files(tmp_path)
    assert gradescope["score"] == 5.0 and all(t["status"] == "passed" for t in gradescope["tests"])
    assert prairielearn["score"] == 1.0 and prairielearn["images"] == []


def test_points_come_from_the_grading_table_and_a_missing_required_class_scores_0(tmp_path):
    config = tmp_path / "parity.toml"
    config.write_text('[grading]\nclass_points = 2\nclasses = ["Affine", "Relu", "MeanSquaredError"]\n'
                      "points = {stepping = 3}\n")
    assert check("--layers", LEARNER, "--config", config, "--no-plots", "--quiet", "--out", tmp_path / "report",
                 *grader_flags(tmp_path)) == 0
    gradescope, prairielearn = files(tmp_path)
    scored = {t["name"].split(" (")[0]: (t["score"], t["max_score"]) for t in gradescope["tests"]}
    assert scored == {"class Affine": (2.0, 2.0), "class Relu": (2.0, 2.0), "class MeanSquaredError": (0.0, 2.0),
                      "whole network: probe": (1.0, 1.0), "whole network: batch": (1.0, 1.0),
                      "whole network: stepping": (3.0, 3.0)}
    assert prairielearn["score"] == pytest.approx(9 / 11)
    missing = next(t for t in prairielearn["tests"] if t["name"] == "class MeanSquaredError")
    assert missing["message"] == "MeanSquaredError is not defined in your code: the reference MeanSquaredError stood in"


def test_bad_input_writes_both_files_saying_why(tmp_path, capsys):
    notebook = tmp_path / "layers.ipynb"
    notebook.write_text("{not json")
    assert check("--layers", notebook, "--no-plots", "--out", tmp_path / "report", *grader_flags(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --layers {notebook} is not a notebook")
    assert not (tmp_path / "report").exists()
    gradescope, prairielearn = files(tmp_path)
    (only,) = gradescope["tests"]
    assert gradescope["score"] == 0.0 and only["visibility"] == "visible" and only["score"] == 0.0
    assert only["max_score"] == 5.0 and only["output"] == err.removeprefix("error: ").strip()
    assert prairielearn == {"gradable": False, "format_errors": [only["output"]],
                            "message": "keras-parity could not check this submission: " + only["output"]}


def test_a_bad_grading_table_is_the_instructors_error_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "parity.toml"
    config.write_text("[grading]\nclass_points = -1\n")
    assert check("--layers", LEARNER, "--config", config, "--no-plots", *grader_flags(tmp_path)) == 2
    assert "[grading] class_points must be a number of points, 0 or more (received: -1)" in capsys.readouterr().err
    assert not (tmp_path / "gs").exists()


def test_a_timeout_writes_both_files_naming_what_was_running(tmp_path):
    notebook = tmp_path / "layers.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "class Relu:\n    def forward(self, x):\n        return x\n\n    while True: pass  # a class body runs when defined\n"
        )]), notebook)
    # A process of its own, as a grader runs it: past --timeout and its grace the check ends its process (124), which
    # in this one would end the test session.
    done = subprocess.run([sys.executable, "-m", "parity.cli", "check", "--layers", str(notebook), "--no-plots",
                           "--timeout", "2", "--out", str(tmp_path / "report"), *map(str, grader_flags(tmp_path))],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 124, done.stderr
    said = f"the check did not finish within the 2 s limit (--timeout); it was running Relu ({notebook}, cell 1, line 5)"
    assert done.stderr.endswith(f"error: {said}; no report was written\n") and done.stderr.count("error:") == 1, \
        done.stderr
    gradescope, prairielearn = files(tmp_path)
    assert gradescope["tests"][0]["output"] == said and gradescope["extra_data"]["verdict"] == "timeout"
    assert prairielearn["gradable"] is True and prairielearn["score"] == 0.0 and prairielearn["tests"][0]["message"] == said
    assert not (tmp_path / "report").exists()


def test_a_crash_writes_both_files_and_exits_4(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("a defect of keras-parity")

    monkeypatch.setattr(pipeline, "check", broken)
    # a defect of ours is exit 4 with its traceback, never 1 (which means "your layers disagree with Keras")
    assert check("--layers", LEARNER, "--no-plots", "--out", tmp_path / "report", *grader_flags(tmp_path)) == 4
    assert "RuntimeError: a defect of keras-parity" in capsys.readouterr().err
    gradescope, prairielearn = files(tmp_path)
    said = "the check stopped with RuntimeError: a defect of keras-parity"
    assert gradescope["tests"][0]["output"] == said and prairielearn["message"].endswith(said)


def test_prairielearn_images_stay_within_its_1_mb_limit_and_say_what_was_left_out():
    test = GradedTest("Relu", "class Relu", 1.0, 1.0, "", "ok")
    images = {name: os.urandom(300_000) for name in ("fit.png", "stepping.png", "dead_relu_map.png")}
    results = prairielearn_results([test], "keras-parity: PASS", [], images)
    assert [i["label"] for i in results["images"]] == ["dead_relu_map.png", "stepping.png"]  # 400 KB each as base64
    assert len(json.dumps(results, indent=2).encode()) <= LIMIT_BYTES
    assert results["output"].endswith("plots left out to keep this file within PrairieLearn's 1 MB limit: fit.png")


def _readme_block(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(title, 1)[1]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def buggy_notebook(path: Path) -> Path:
    """The learner notebook without its fix (cells 7 and 8): its first Relu, which forgets the mask, is the last."""
    nb = nbformat.read(LEARNER, as_version=4)
    del nb.cells[6:8]
    nbformat.write(nb, path)
    return path


def run_autograder(tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """The README's run_autograder in a scratch /autograder, on the buggy notebook: (its root, the finished script)."""
    root = tmp_path / "autograder"
    for folder in ("source", "submission", "results"):
        (root / folder).mkdir(parents=True)
    buggy_notebook(root / "submission" / "layers.ipynb")
    (root / "source" / "parity.toml").write_text("[grading]\nclass_points = 2\n")
    script = _readme_block("#### `run_autograder`").replace("/autograder", str(root))
    script = script.replace("parity check", f"{sys.executable} -m parity check")
    (root / "run_autograder").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return root, subprocess.run(["bash", str(root / "run_autograder")], cwd=root, env=env, capture_output=True,
                                text=True, timeout=600)


def start_early(folder: Path, lane: Executor) -> Future:
    """The autograder's `parity check` process (mostly TensorFlow's import), queued with the session (conftest's
    started_early): it runs on the machine's other core while other modules' tests run here."""
    return lane.submit(run_autograder, folder)


@pytest.fixture(scope="module")
def autograder_run(started_early) -> Future:
    return started_early[__name__]


def test_the_readmes_run_autograder_writes_results_in_a_scratch_autograder(autograder_run):
    root, done = autograder_run.result()
    assert done.returncode == 0, done.stderr  # the script's own status: the results file carries the grade
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 2.0 and {t["name"]: t["max_score"] for t in results["tests"]}["class Relu"] == 2.0
    assert str(root) not in json.dumps(results)  # paths read as the student's own file: layers.ipynb
    assert "layers.ipynb, cell 4, line 9" in json.dumps(results)
