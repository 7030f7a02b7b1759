"""A real notebook, executed by nbclient on an ipykernel: layers defined in cells, checked, redefined with a bug."""

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).parent / "notebooks" / "check_in_a_notebook.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebook")
    path = folder / NOTEBOOK.name
    shutil.copy(NOTEBOOK, path)
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


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
