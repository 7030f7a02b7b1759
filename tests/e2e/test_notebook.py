"""A real notebook, executed by nbclient on an ipykernel: layers defined in cells, checked, redefined with a bug."""

import shutil
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest
from testkit import TESTS

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = TESTS / "notebooks" / "check_in_a_notebook.ipynb"


def execute(folder: Path):
    shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
    nb = nbformat.read(folder / NOTEBOOK.name, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def start_early(folder: Path, lane: Executor) -> Future:
    """The kernel imports TensorFlow and fits Keras (about 12 s on one core): queued with the session (conftest's
    started_early), it runs on the machine's other core while other modules' tests run here."""
    return lane.submit(execute, folder)


@pytest.fixture(scope="module")
def executed(started_early):
    return started_early[__name__].result()


def _outputs(cell) -> list:
    return cell.get("outputs", [])


def test_the_notebook_runs_without_errors(executed):
    errors = [o for cell in executed.cells for o in _outputs(cell) if o.get("output_type") == "error"]
    assert errors == []


def test_a_check_shows_its_html_report_verdict_first(executed):
    shown = next(cell for cell in executed.cells if cell.source.startswith("report = parity.check"))
    html = next(o["data"]["text/html"] for o in _outputs(shown) if "text/html" in o.get("data", {}))
    assert "PASS" in html[:3000] and "<img" in html and "data:image/png;base64," in html


def test_the_redefined_class_is_checked_and_its_bug_named(executed):
    buggy = next(cell for cell in executed.cells if "buggy = parity.check" in cell.source)
    text = "".join(o.get("text", "") for o in _outputs(buggy))
    assert "FAIL" in text and "mask_mismatch" in text
    last = executed.cells[-1]
    result = next(o["data"]["text/plain"] for o in _outputs(last) if "text/plain" in o.get("data", {}))
    assert "('mask_mismatch', 'Relu'" in result


def test_a_figure_shows_as_a_picture_and_a_sample_as_text_without_matplotlib_inline(executed):
    figure = next(cell for cell in executed.cells if cell.source == 'report.figure("lesson")')
    pictures = [o["data"]["image/png"] for o in _outputs(figure) if "image/png" in o.get("data", {})]
    assert len(pictures) == 1 and pictures[0].startswith("iVBORw0KGgo")  # base64 of the PNG signature
    sample = next(cell for cell in executed.cells if cell.source == "report.sample(0)")
    text = next(o["data"]["text/plain"] for o in _outputs(sample) if "text/plain" in o.get("data", {}))
    assert text.startswith("sample 0 of 200 (train)") and "dW1" in text and "a dead ReLU zeroes dW" in text
