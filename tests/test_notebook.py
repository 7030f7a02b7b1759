"""A real notebook, executed by nbclient on an ipykernel: layers defined in cells, checked, redefined with a bug."""

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from started import in_background  # noqa: E402

NOTEBOOK = Path(__file__).parent / "notebooks" / "check_in_a_notebook.ipynb"


class Execution:
    """The notebook executed by nbclient in a thread of this process, at a lower priority (tests/started.py); its
    kernel is a process of its own."""

    def __init__(self, folder: Path):
        self.folder = folder
        shutil.copy(NOTEBOOK, folder / NOTEBOOK.name)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebook")
        self.future = self.pool.submit(self._execute)

    def _execute(self):
        in_background(threading.get_native_id())  # this thread, and so the kernel it starts
        nb = nbformat.read(self.folder / NOTEBOOK.name, as_version=4)
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(self.folder)}}).execute()
        return nb

    def stop(self) -> None:
        self.pool.shutdown(wait=True)  # nbclient shuts its kernel down when the execution ends


def start_early(folder: Path) -> Execution:
    """The kernel imports TensorFlow and fits Keras (about 12 s on one core): started with the session
    (conftest's started_early), it runs on the machine's other core meanwhile."""
    return Execution(folder)


@pytest.fixture(scope="module")
def executed(started_early):
    return started_early[__name__].future.result(timeout=600)


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
